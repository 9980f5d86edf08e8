# vanemq developer targets. `make run` starts a broker on 127.0.0.1:1883;
# `make test` is what CI runs (see .ci/run).

GO       ?= go
BIN      := bin/vanemq
# How much `make fuzz` fuzzes each target: a count of executions (Nx),
# not a duration. Go 1.26's fuzzing coordinator can fail a run bounded by a
# duration at its deadline with "context deadline exceeded" and no failing
# input (a race at shutdown, golang/go#75804, fixed in Go 1.27); a count
# has no deadline. FUZZTIME=60s still works, with that risk.
FUZZTIME ?= 1000000x
SOAKTIME ?= 10m
# Upper bound for the whole test run (the race detector is slow).
TEST_TIMEOUT ?= 15m

.PHONY: run build test deps bench fuzz soak lint bench-compare bench-tool peer-mochi install-mosquitto proto

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

## fuzz: fuzz the packet decoder, topic matching and the plugin SDK's batch decoder, FUZZTIME each (default 1000000x executions)
fuzz:
	$(GO) test -run='^$$' -fuzz='^FuzzDecode$$' -fuzztime=$(FUZZTIME) ./core/packets
	$(GO) test -run='^$$' -fuzz='^FuzzMatch$$' -fuzztime=$(FUZZTIME) ./core/topics
	$(GO) test -run='^$$' -fuzz='^FuzzBatchDecoder$$' -fuzztime=$(FUZZTIME) ./plugins/sdk

## soak: run the vanemq binary (race detector on) under a mixed load for SOAKTIME (default 10m), then check nothing was lost or leaked
soak:
	VANEMQ_SOAK=$(SOAKTIME) $(GO) test -race -count=1 -timeout 3h -run '^TestSoak$$' -v ./cmd/vanemq/vanemqcmd

## lint: fail on unformatted files, then go vet
lint:
	@unformatted=$$(gofmt -l .); \
	if [ -n "$$unformatted" ]; then echo "gofmt -l: these files need gofmt -w:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

# `make bench-compare`: rounds per scenario and broker, and the measured time of each run.
ROUNDS         ?= 3
BENCH_DURATION ?= 10s

## bench-compare: benchmark vanemq against mochi-mqtt and Mosquitto; writes docs/benchmarks.md
bench-compare: build bench-tool peer-mochi install-mosquitto
	./bin/vanemq-bench compare -rounds $(ROUNDS) -duration $(BENCH_DURATION) -out docs/benchmarks.md

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
