package main

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fakeBrokerSrc is a stand-in for all three brokers. It finds its address
// the way each real one is configured (vanemq --config FILE, peer-mochi
// -addr ADDR, mosquitto -c FILE), accepts connections until SIGTERM and then
// exits 0. "-h" prints a version line like mosquitto's; "-fail" exits 1 at
// once; "-mute" never listens. "cluster dev --nodes N ..." listens on N free
// ports and prints a node line for each, then a ready line, as vanemq
// cluster dev does; with $FAKE_DEV_FAIL set it exits 1 at once.
const fakeBrokerSrc = `package main

import (
	"fmt"
	"net"
	"os"
	"os/signal"
	"regexp"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	args := os.Args[1:]
	if len(args) == 0 {
		os.Exit(2)
	}
	var addr string
	var ls []net.Listener
	switch args[0] {
	case "cluster":
		if os.Getenv("FAKE_DEV_FAIL") != "" {
			fmt.Fprintln(os.Stderr, "fake cluster dev: failing as asked")
			os.Exit(1)
		}
		n := 0
		fmt.Sscan(args[3], &n) // cluster dev --nodes N
		for i := 1; i <= n; i++ {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				panic(err)
			}
			ls = append(ls, l)
			fmt.Printf("n%d mqtt=%s nats=nats://127.0.0.1:%d\n", i, l.Addr(), 4221+i)
		}
		fmt.Println("ready: fake")
	case "-h":
		fmt.Println("mosquitto version 0.0-fake")
		os.Exit(3)
	case "-fail":
		fmt.Fprintln(os.Stderr, "fake broker: failing as asked")
		os.Exit(1)
	case "-mute":
		<-sigs
		return
	case "-addr":
		addr = args[1]
	case "--config":
		data, err := os.ReadFile(args[1])
		if err != nil {
			panic(err)
		}
		addr = regexp.MustCompile(` + "`address: \"([^\"]+)\"`" + `).FindStringSubmatch(string(data))[1]
	case "-c":
		data, err := os.ReadFile(args[1])
		if err != nil {
			panic(err)
		}
		m := regexp.MustCompile(` + "`(?m)^listener (\\d+) (\\S+)$`" + `).FindStringSubmatch(string(data))
		addr = m[2] + ":" + m[1]
	}
	if addr != "" {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			panic(err)
		}
		ls = append(ls, l)
	}
	for _, l := range ls {
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
	}
	<-sigs
	os.Exit(0)
}
`

// fakeToolSrc is a stand-in for vanemq-bench: it checks that the broker's
// processes (-broker-pid) are alive and its addresses (-addr, -sub-addr)
// up, logs "label scenario" to $FAKE_TOOL_LOG (and "label scenario PIDS
// SUB" to $FAKE_TOOL_TARGETS, PIDS the number of processes, SUB whether
// -sub-addr was another address), fails when $FAKE_TOOL_FAIL is
// "label/scenario", and prints a fixed result per label and scenario, with
// the -topics and -filter it was given (and, for two processes, 95 % of
// the CPU time on the first).
const fakeToolSrc = `package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	scenario := flag.String("scenario", "", "")
	addr := flag.String("addr", "", "")
	pids := flag.String("broker-pid", "", "")
	subAddr := flag.String("sub-addr", "", "")
	label := flag.String("label", "", "")
	asJSON := flag.Bool("json", false, "")
	flag.String("transport", "", "")
	silentConnect := flag.Bool("silent-connect", false, "")
	send := flag.String("send", "10faff3f", "")
	topics := flag.Int("topics", 0, "")
	filter := flag.String("filter", "", "")
	for _, n := range []string{"topic-pattern", "username", "password"} {
		flag.String(n, "", "")
	}
	for _, n := range []string{"mqtt", "qos", "size", "publishers", "subscribers", "pairs", "conns", "rate", "inflight"} {
		flag.Int(n, 0, "")
	}
	flag.Duration("duration", 0, "")
	flag.Duration("hold", 0, "")
	flag.Duration("warmup", 0, "")
	flag.Parse()
	if !*asJSON || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "fake tool: want -json and no arguments")
		os.Exit(2)
	}
	for _, p := range strings.Split(*pids, ",") {
		pid, err := strconv.Atoi(p)
		if err == nil {
			err = syscall.Kill(pid, 0)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "fake tool: broker pid %q: %v\n", p, err)
			os.Exit(1)
		}
	}
	for _, a := range []string{*addr, *subAddr} {
		if a == "" {
			continue
		}
		c, err := net.DialTimeout("tcp", a, 5*time.Second)
		if err != nil {
			fmt.Fprintf(os.Stderr, "fake tool: %v\n", err)
			os.Exit(1)
		}
		c.Close()
	}
	if p := os.Getenv("FAKE_TOOL_TARGETS"); p != "" {
		f, err := os.OpenFile(p, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			panic(err)
		}
		fmt.Fprintf(f, "%s %s %d %v\n", *label, *scenario, len(strings.Split(*pids, ",")), *subAddr != "" && *subAddr != *addr)
		f.Close()
	}
	if p := os.Getenv("FAKE_TOOL_LOG"); p != "" {
		f, err := os.OpenFile(p, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			panic(err)
		}
		fmt.Fprintf(f, "%s %s\n", *label, *scenario)
		f.Close()
	}
	if os.Getenv("FAKE_TOOL_FAIL") == *label+"/"+*scenario {
		fmt.Fprintln(os.Stderr, "fake tool: failing as asked")
		os.Exit(1)
	}
	perCPU := map[string]float64{"vanemq": 300000, "mochi": 100000, "mosquitto": 140000, "vanemq+auth.file": 270000,
		"single": 300000, "single+hook": 285000, "across": 120000}[*label]
	p99 := map[string]float64{"vanemq": 90, "mochi": 200, "mosquitto": 120,
		"single": 100, "single+hook": 104, "across": 900}[*label]
	connect := map[string]float64{"vanemq": 20000, "mochi": 15000, "mosquitto": 10000}[*label]
	res := map[string]any{
		"scenario": *scenario, "transport": "tcp", "mqtt": 4, "label": *label,
		"deliveries_per_s": perCPU / 2, "deliveries_per_broker_cpu_s": perCPU, "loss_pct": 0,
		"bench_cpu_share": 0.5, "sent": 1000, "expected": 1000, "received": 1000,
		"topics": *topics, "filter": *filter,
	}
	if strings.Count(*pids, ",") == 1 {
		res["broker_cpu_s"], res["broker_cpu_s_by_pid"] = 1.0, []float64{0.95, 0.05}
	}
	switch *scenario {
	case "latency":
		res["p50_us"], res["p99_us"], res["p999_us"] = p99/2, p99, p99*2
	case "conns":
		res["connect_per_s"], res["bytes_per_conn"] = connect, 5000
	case "silent":
		perConn := map[string]float64{"vanemq": 3000, "mochi": 1048576, "mosquitto": 4700}[*label]
		if *silentConnect && *send == "30faff3f" {
			perConn *= 2
		}
		res["bytes_per_conn"], res["bytes_per_conn_from_start"] = perConn, perConn
		res["healthy_attempts"], res["healthy_connect_p50_us"], res["healthy_connect_max_us"] = 15, 300, 900
	}
	json.NewEncoder(os.Stdout).Encode(res)
}
`

// buildFake compiles a one-file Go program into dir and returns the binary.
func buildFake(t *testing.T, dir, name, src string) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command to build the fake %s: %v", name, err)
	}
	srcDir := filepath.Join(dir, name+"-src")
	if err := os.MkdirAll(srcDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(srcDir, "go.mod"), []byte("module fake/"+name+"\n\ngo 1.26\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(srcDir, "main.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, name)
	cmd := exec.Command(goBin, "build", "-o", bin, ".")
	cmd.Dir = srcDir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod", "GOTOOLCHAIN=local")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build fake %s: %v\n%s", name, err, out)
	}
	return bin
}

// TestCompareExec runs the whole compare command against fake brokers and
// a fake load generator, built from source into a temporary directory.
func TestCompareExec(t *testing.T) {
	dir := t.TempDir()
	broker := buildFake(t, dir, "broker", fakeBrokerSrc)
	tool := buildFake(t, dir, "tool", fakeToolSrc)

	newOpts := func(t *testing.T, out string, args ...string) *compareOptions {
		t.Helper()
		args = append([]string{"-vanemq", broker, "-mochi", broker, "-mosquitto", broker, "-out", out}, args...)
		o, err := parseCompareFlags(args, os.Stderr)
		if err != nil {
			t.Fatal(err)
		}
		o.tool = tool
		return o
	}

	t.Run("interleaved", func(t *testing.T) {
		logPath := filepath.Join(dir, "interleaved.log")
		t.Setenv("FAKE_TOOL_LOG", logPath)
		t.Setenv("FAKE_TOOL_FAIL", "")
		out := filepath.Join(dir, "interleaved.md")
		o := newOpts(t, out, "-rounds", "2", "-duration", "1s", "-run", `^(fanin-q0-64|latency-q1-64|conns-10000)$`)
		var stdout, stderr bytes.Buffer
		if err := o.run(t.Context(), &stdout, &stderr); err != nil {
			t.Fatalf("run: %v\nstderr:\n%s", err, stderr.String())
		}
		log, err := os.ReadFile(logPath)
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, sc := range []string{"fanin", "latency", "conns"} {
			for _, b := range []string{"vanemq", "mochi", "mosquitto", "mosquitto", "mochi", "vanemq"} {
				want = append(want, b+" "+sc)
			}
		}
		if got := strings.Fields(strings.ReplaceAll(string(log), " ", "_")); strings.Join(got, ",") != strings.ReplaceAll(strings.Join(want, ","), " ", "_") {
			t.Errorf("run order:\n%s\nwant:\n%s", log, strings.Join(want, "\n"))
		}
		md, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		for _, re := range []string{
			`\| fanin-q0-64 +\| vanemq +\| +150,000 \| +300,000 \| +0.00 % \| +50 % \| +2/2 \|`,
			`\| deliveries/CPU-s ≥ 2.0× better peer, loss ≤ its loss +\| fanin-q0-64 +\| PASS +\| 2.14× mosquitto`,
			`\| latency p99 ≤ mosquitto's +\| latency-q1-64 +\| PASS +\| 90.0 µs vs 120 µs \(0.75×\) +\| 30.0 µs under`,
			`\| bytes/conn ≤ 6144 +\| conns-10000 +\| PASS +\| 5,000 B`,
			`\| connect rate ≥ 1.5× better peer +\| conns-10000 +\| FAIL +\| 1.33× mochi`,
			`\| Mosquitto +\| mosquitto version 0.0-fake \(Debian package\)`,
			"bin/vanemq-bench compare -vanemq ",
		} {
			if !regexp.MustCompile(re).Match(md) {
				t.Errorf("report lacks a line matching %s", re)
			}
		}
		if !strings.Contains(string(md), stdout.String()) || !strings.Contains(stdout.String(), "## Targets") {
			t.Errorf("stdout is not the report's tables:\n%s", stdout.String())
		}
		if !strings.Contains(stderr.String(), "[18/18] conns-10000 round 2 vanemq: 20,000 connects/s") {
			t.Errorf("progress lacks the last run:\n%s", stderr.String())
		}
		if t.Failed() {
			t.Logf("report:\n%s\nstderr:\n%s", md, stderr.String())
		}
	})

	t.Run("more rounds", func(t *testing.T) {
		logPath := filepath.Join(dir, "rounds.log")
		t.Setenv("FAKE_TOOL_LOG", logPath)
		t.Setenv("FAKE_TOOL_FAIL", "")
		out := filepath.Join(dir, "rounds.md")
		o := newOpts(t, out, "-rounds", "2", "-duration", "1s", "-run", `^(fanin-q0-64|pairs-q1-64)$`)
		var stdout, stderr bytes.Buffer
		if err := o.run(t.Context(), &stdout, &stderr); err != nil {
			t.Fatalf("run: %v\nstderr:\n%s", err, stderr.String())
		}
		log, err := os.ReadFile(logPath)
		if err != nil {
			t.Fatal(err)
		}
		runs := map[string]int{}
		for _, line := range strings.Split(strings.TrimSpace(string(log)), "\n") {
			runs[line]++
		}
		want := map[string]int{}
		for _, b := range brokerNames() {
			want[b+" fanin"], want[b+" pairs"] = 2, pairsQoS1Rounds
		}
		if !mapsEqual(runs, want) {
			t.Errorf("runs = %v, want %v", runs, want)
		}
		md, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		for _, re := range []string{
			`- 2 rounds \(9 for pairs-q1-64\)\. The brokers are interleaved`,
			`\| pairs-q1-64 +\| vanemq +\| +300,000 \| +300,000 \| +300,000 \| +1.00× \| +9/9 \|`,
		} {
			if !regexp.MustCompile(re).Match(md) {
				t.Errorf("report lacks a line matching %s", re)
			}
		}
		if !strings.Contains(stderr.String(), "2 scenarios × 2 rounds (9 for pairs-q1-64) × 3 brokers = 33 runs") ||
			!strings.Contains(stderr.String(), "[33/33] pairs-q1-64 round 9 ") {
			t.Errorf("progress lacks the run count or the last run:\n%s", stderr.String())
		}
		if t.Failed() {
			t.Logf("report:\n%s\nstderr:\n%s", md, stderr.String())
		}
	})

	t.Run("silent", func(t *testing.T) {
		t.Setenv("FAKE_TOOL_LOG", "")
		t.Setenv("FAKE_TOOL_FAIL", "")
		out := filepath.Join(dir, "silent.md")
		o := newOpts(t, out, "-quick", "-run", `^silent`)
		var stdout, stderr bytes.Buffer
		if err := o.run(t.Context(), &stdout, &stderr); err != nil {
			t.Fatalf("run: %v\nstderr:\n%s", err, stderr.String())
		}
		md, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		for _, re := range []string{
			`\| silent-2000 +\| 3 waves × 2000 connections sending a CONNECT header declaring 1 MiB, then nothing +\| ` +
				"`-scenario silent -transport tcp -mqtt 4 -qos 0 -conns 2000 -hold 1s -duration 2s -warmup 400ms`",
			`\| silent-publish-2000 +\| vanemq +\| +6,000 \| +6,000 \|`,
			`\| silent bytes/conn ≤ 8192, healthy client served +\| silent-2000 +\| PASS +\| 3,000 B \(3,000 B from the start\); healthy client served 15 of 15, connect max 900µs \(mosquitto 4,700 B\)`,
			`\| silent bytes/conn ≤ 8192, healthy client served +\| silent-publish-2000 +\| PASS +\| 6,000 B`,
		} {
			if !regexp.MustCompile(re).Match(md) {
				t.Errorf("report lacks a line matching %s", re)
			}
		}
		if !strings.Contains(stderr.String(), "[6/6] silent-publish-2000 round 1 mosquitto: 9,400 bytes/conn (9,400 from the start), 0 closed by the broker, healthy client served 15 of 15, connect max 900µs") {
			t.Errorf("progress lacks the last run:\n%s", stderr.String())
		}
		if t.Failed() {
			t.Logf("report:\n%s\nstderr:\n%s", md, stderr.String())
		}
	})

	t.Run("failed run", func(t *testing.T) {
		t.Setenv("FAKE_TOOL_LOG", "")
		t.Setenv("FAKE_TOOL_FAIL", "mosquitto/fanin")
		out := filepath.Join(dir, "failed.md")
		o := newOpts(t, out, "-quick", "-run", `^fanin-q0-64$`)
		var stdout, stderr bytes.Buffer
		err := o.run(t.Context(), &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), "1 of 3 runs failed (listed in the report); no run of mosquitto succeeded") {
			t.Fatalf("err = %v, want 1 of 3 runs failed, none of mosquitto's succeeded", err)
		}
		md, rerr := os.ReadFile(out)
		if rerr != nil {
			t.Fatal(rerr)
		}
		for _, re := range []string{
			`quick smoke run`,
			`\| fanin-q0-64 +\| mosquitto +\| +– \| +– \| +– \| +– \| +0/1 \|`,
			// With mosquitto's run failed, mochi is the better peer.
			`\| fanin-q0-64 +\| PASS +\| 3.00× mochi`,
			`- fanin-q0-64, round 1, mosquitto: .*fake tool: failing as asked`,
		} {
			if !regexp.MustCompile(re).Match(md) {
				t.Errorf("report lacks a line matching %s\n%s", re, md)
			}
		}
	})

	t.Run("broker exits at start", func(t *testing.T) {
		_, err := startBroker(t.Context(), []string{broker, "-fail"}, "127.0.0.1:1", 30*time.Second)
		if err == nil || !strings.Contains(err.Error(), "exited before accepting connections") ||
			!strings.Contains(err.Error(), "fake broker: failing as asked") {
			t.Errorf("err = %v", err)
		}
	})

	t.Run("broker never listens", func(t *testing.T) {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		_, err = startBroker(t.Context(), []string{broker, "-mute"}, "127.0.0.1:"+strconv.Itoa(port), 100*time.Millisecond)
		if err == nil || !strings.Contains(err.Error(), "accepted no connection within 100ms") {
			t.Errorf("err = %v", err)
		}
	})

	t.Run("broker dies during the run", func(t *testing.T) {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		argv, err := brokerCommand(brokerMochi, brokerBinaries{mochi: broker}, dir, port)
		if err != nil {
			t.Fatal(err)
		}
		p, err := startBroker(t.Context(), argv, "127.0.0.1:"+strconv.Itoa(port), 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		p.kill()
		if err := p.stop(time.Second); err == nil || !strings.Contains(err.Error(), "broker exited during the run") {
			t.Errorf("stop after death: err = %v", err)
		}
	})

	t.Run("broker ignores SIGTERM", func(t *testing.T) {
		// The process listens nowhere, so a listener of the test's own
		// stands in for its port.
		p, err := startBroker(t.Context(), []string{"sh", "-c", "trap '' TERM; exec sleep 60"}, addrOfListener(t), 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.stop(50 * time.Millisecond); err != nil {
			t.Errorf("stop: %v", err)
		}
		select {
		case <-p.done:
		default:
			t.Error("process still running after stop")
		}
	})
}

// addrOfListener returns the address of a loopback listener that lives
// until the test ends.
func addrOfListener(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l.Addr().String()
}
