# vanemq developer targets. `make run` starts a broker on 127.0.0.1:1883;
# `make test` is what CI runs (see .ci/run).

GO       ?= go
BIN      := bin/vanemq
# How long `make fuzz` fuzzes each target (timeout(1)'s syntax: 90s, 5m, 1h), and
# the most it tries to minimize one new input, in runs (Nx) or time: Go's default,
# 60s, can take all of FUZZTIME, as minimizing an n-byte input takes up to n²/2 runs
# (a 10 KB input, 5e7): FuzzBatchDecoder spent 50 of its 60s minimizing.
FUZZTIME ?= 60s
FUZZMINIMIZETIME ?= 10000x
SOAKTIME ?= 10m
# Upper bound for the whole test run (the race detector is slow).
TEST_TIMEOUT ?= 15m

.PHONY: run build test deps bench fuzz soak soak-cluster lint bench-compare bench-acl bench-cluster bench-tool peer-mochi install-mosquitto proto

## build: compile the broker into bin/vanemq
build:
	$(GO) build -o $(BIN) ./cmd/vanemq

## run: build, then run the broker with the embedded default config
run: build
	mkdir -p data
	./$(BIN)

## deps: install what the tests use, if missing: the MQTT command-line
## clients, Debian's mosquitto broker for the bridge's tests, Debian's
## redis-server for the Redis store's tests, Debian's
## chromium and examples/web's npm packages (MQTT.js and playwright-core)
## for the browser test
deps:
	@if ! command -v mosquitto_pub >/dev/null 2>&1; then \
		sudo=; if [ "$$(id -u)" -ne 0 ]; then sudo=sudo; fi; \
		echo "installing mosquitto-clients"; \
		$$sudo apt-get -qq update && \
		DEBIAN_FRONTEND=noninteractive $$sudo apt-get -qq install -y mosquitto-clients; \
	fi
	@if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then \
		sudo=; if [ "$$(id -u)" -ne 0 ]; then sudo=sudo; fi; \
		echo "installing mosquitto"; \
		$$sudo apt-get -qq update && \
		DEBIAN_FRONTEND=noninteractive $$sudo apt-get -qq install -y mosquitto; \
	fi
	@if ! command -v redis-server >/dev/null 2>&1; then \
		sudo=; if [ "$$(id -u)" -ne 0 ]; then sudo=sudo; fi; \
		echo "installing redis-server"; \
		$$sudo apt-get -qq update && \
		DEBIAN_FRONTEND=noninteractive $$sudo apt-get -qq install -y redis-server; \
	fi
	@if [ ! -x /usr/bin/chromium ]; then \
		sudo=; if [ "$$(id -u)" -ne 0 ]; then sudo=sudo; fi; \
		echo "installing chromium"; \
		$$sudo apt-get -qq update && \
		DEBIAN_FRONTEND=noninteractive $$sudo apt-get -qq install -y chromium; \
	fi
	@if [ ! -d examples/web/node_modules ]; then \
		echo "installing examples/web's npm packages"; \
		cd examples/web && npm ci --no-audit --no-fund; \
	fi

## test: vet, then run every test with the race detector
test: deps
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...

## bench: run the core benchmarks
bench:
	$(GO) test -run='^$$' -bench=. -benchmem ./core/...

## fuzz: fuzz the packet decoder, topic matching and the plugin SDK's batch decoder, FUZZTIME each (default 60s)
# A target is stopped after FUZZTIME by an interrupt, as ^C stops it, not by
# -fuzztime: Go 1.26's fuzzing coordinator may report its own -fuzztime deadline
# as a failure, "context deadline exceeded" with no failing input
# (go.dev/issue/75804, fixed in Go 1.27), and handles an interrupt without that
# race. The interrupt goes to the test binary only: its workers then stop when it
# tells them. (A count of runs, -fuzztime=1000000x, has no deadline either, but
# how long it takes varies with the machine and the target.)
FUZZ = $(GO) test -run='^$$' -fuzzminimizetime=$(FUZZMINIMIZETIME) \
	-exec='timeout --foreground --preserve-status -s INT -k 30s $(FUZZTIME)'
fuzz:
	$(FUZZ) -fuzz='^FuzzDecode$$' ./core/packets
	$(FUZZ) -fuzz='^FuzzMatch$$' ./core/topics
	$(FUZZ) -fuzz='^FuzzBatchDecoder$$' ./plugins/sdk

## soak: run the vanemq binary (race detector on) under a mixed load for SOAKTIME (default 10m), then check nothing was lost or leaked
soak:
	VANEMQ_SOAK=$(SOAKTIME) $(GO) test -race -count=1 -timeout 3h -run '^TestSoak$$' -v ./cmd/vanemq/vanemqcmd

## soak-cluster: three vanemq processes on embedded NATS, QoS 1 across nodes while n2 and n3 are SIGKILLed in turn (their subscribers move to the other, which adopts the dead node's sessions), for SOAKTIME_CLUSTER (default 2m), then no acknowledged message may be missing; and a node frozen 20 s (SIGSTOP) must be fenced
SOAKTIME_CLUSTER ?= 2m
soak-cluster:
	VANEMQ_SOAK_CLUSTER=$(SOAKTIME_CLUSTER) $(GO) test -race -count=3 -timeout 20m -run '^TestE2ETakeoverUnderLoad$$' -v ./hooks/cluster
	VANEMQ_SOAK_CLUSTER=$(SOAKTIME_CLUSTER) $(GO) test -count=1 -timeout 1h -run '^TestSoakCluster(Freeze)?$$' -v ./cmd/vanemq/vanemqcmd

## lint: fail on unformatted files, then go vet
lint:
	@unformatted=$$(gofmt -l .); \
	if [ -n "$$unformatted" ]; then echo "gofmt -l: these files need gofmt -w:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

# `make bench-compare`: rounds per scenario and broker (pairs-q1-64 runs at least 9, its runs
# having been bimodal), and the measured time of each run.
ROUNDS         ?= 3
BENCH_DURATION ?= 10s

## bench-compare: benchmark vanemq against mochi-mqtt and Mosquitto; writes docs/benchmarks.md
bench-compare: build bench-tool peer-mochi install-mosquitto
	./bin/vanemq-bench compare -rounds $(ROUNDS) -duration $(BENCH_DURATION) -out docs/benchmarks.md

# `make bench-acl`: rounds per scenario and configuration, and the measured time of each run.
ACL_ROUNDS   ?= 5
ACL_DURATION ?= 5s

## bench-acl: fan-out 1→50 on # with and without auth.file, interleaved (issue 17); writes docs/benchmarks-acl.md
bench-acl: build bench-tool
	./bin/vanemq-bench acl -rounds $(ACL_ROUNDS) -duration $(ACL_DURATION) -out docs/benchmarks-acl.md

## bench-cluster: pairs, fan-out and latency on one node, with the cluster hook, and across 2 nodes,
## interleaved (issue 18; ROUNDS and BENCH_DURATION as for bench-compare); writes docs/benchmarks-cluster.md
bench-cluster: build bench-tool
	./bin/vanemq-bench cluster -rounds $(ROUNDS) -duration $(BENCH_DURATION) -out docs/benchmarks-cluster.md

## bench-tool: compile the load generator into bin/vanemq-bench
bench-tool:
	$(GO) build -o bin/vanemq-bench ./cmd/vanemq-bench

## peer-mochi: compile the mochi-mqtt peer (its own module) into bin/peer-mochi
peer-mochi:
	cd cmd/vanemq-bench/peers/mochi && $(GO) build -o ../../../../bin/peer-mochi .

## proto: regenerate plugins/proto/pluginv1 from plugin.proto (installs
## Debian's protoc and the pinned Go generators into bin/ when missing)
PROTOC_GEN_GO := google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PROTOC_GEN_GO_GRPC := google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.5.1
proto:
	@if ! command -v protoc >/dev/null 2>&1; then \
		sudo=; if [ "$$(id -u)" -ne 0 ]; then sudo=sudo; fi; \
		echo "installing protobuf-compiler"; \
		$$sudo apt-get -qq update && \
		DEBIAN_FRONTEND=noninteractive $$sudo apt-get -qq install -y protobuf-compiler; \
	fi
	GOBIN=$(CURDIR)/bin $(GO) install $(PROTOC_GEN_GO)
	GOBIN=$(CURDIR)/bin $(GO) install $(PROTOC_GEN_GO_GRPC)
	cd plugins/proto/pluginv1 && PATH=$(CURDIR)/bin:$$PATH protoc --proto_path=. \
		--go_out=. --go_opt=paths=source_relative \
		--go-grpc_out=. --go-grpc_opt=paths=source_relative plugin.proto

## install-mosquitto: install Debian's mosquitto broker, if missing
install-mosquitto:
	@if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then \
		sudo=; if [ "$$(id -u)" -ne 0 ]; then sudo=sudo; fi; \
		echo "installing mosquitto"; \
		$$sudo apt-get -qq update && \
		DEBIAN_FRONTEND=noninteractive $$sudo apt-get -qq install -y mosquitto; \
	fi
