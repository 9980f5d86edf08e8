package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"math"
	"os"
	"slices"
	"strconv"
	"testing"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/mqtttest"
	"github.com/vanemq/vanemq/listeners/tcp"
)

// benchTestBroker starts an in-process vanemq broker with a TCP listener on
// 127.0.0.1:0 for one test and returns its address.
func benchTestBroker(t *testing.T) string {
	t.Helper()
	return startBenchBroker(t, tcp.New("tcp", "127.0.0.1:0"))
}

// startBenchBroker starts an in-process vanemq broker on listener l for one
// test and returns l's address. Its session queues are large enough that
// QoS 1/2 messages are never dropped, so the tests can demand no loss.
func startBenchBroker(t *testing.T, l core.Listener) string {
	t.Helper()
	srv, err := core.New(core.Options{
		AllowAnonymous:    true,
		MaxQueuedMessages: 1 << 20,
		SysInterval:       -1,
		Logger:            slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatalf("core.New: %v", err)
	}
	return mqtttest.Serve(t, srv, l)
}

// runBenchJSON runs the command line args through runCLI, as main does,
// with -json, and returns the decoded result.
func runBenchJSON(t *testing.T, args ...string) runResult {
	t.Helper()
	var stdout, stderr bytes.Buffer
	args = append(args, "-json")
	if code := runCLI(t.Context(), args, &stdout, &stderr); code != 0 {
		t.Fatalf("vanemq-bench %q: exit status %d, stderr:\n%s", args, code, stderr.String())
	}
	var res runResult
	dec := json.NewDecoder(&stdout)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&res); err != nil {
		t.Fatalf("vanemq-bench %q: JSON output: %v", args, err)
	}
	if dec.More() {
		t.Fatalf("vanemq-bench %q: more than one JSON value on stdout", args)
	}
	return res
}

// TestBenchSmoke runs every scenario briefly against an in-process broker,
// with MQTT 3.1.1 and 5 and QoS 0 and 1, using the test's own process as
// the broker to measure.
func TestBenchSmoke(t *testing.T) {
	pid := strconv.Itoa(os.Getpid())
	type scenario struct {
		name string
		args []string
	}
	messages := []scenario{
		{"fanin", []string{"-scenario", "fanin", "-publishers", "2"}},
		{"fanout", []string{"-scenario", "fanout", "-subscribers", "3"}},
		{"pairs", []string{"-scenario", "pairs", "-pairs", "3"}},
		{"latency", []string{"-scenario", "latency", "-rate", "2000"}},
	}
	for _, mqtt := range []string{"4", "5"} {
		for _, qos := range []string{"0", "1"} {
			for _, sc := range messages {
				t.Run(sc.name+"/mqtt"+mqtt+"/qos"+qos, func(t *testing.T) {
					t.Parallel()
					// QoS 0 publishers run flat out, filling the socket
					// buffers faster than the broker under the race
					// detector drains them: a short drain bounds the
					// test. QoS 1 must deliver everything.
					drain := "300ms"
					if qos == "1" {
						drain = "10s"
					}
					addr := benchTestBroker(t)
					args := slices.Concat(sc.args, []string{"-addr", addr, "-mqtt", mqtt, "-qos", qos,
						"-duration", "300ms", "-warmup", "0", "-drain", drain,
						"-broker-pid", pid, "-label", t.Name()})
					res := runBenchJSON(t, args...)
					checkMessageResult(t, res, sc.name, qos == "1")
				})
			}
		}
		t.Run("conns/mqtt"+mqtt, func(t *testing.T) {
			t.Parallel()
			addr := benchTestBroker(t)
			res := runBenchJSON(t, "-scenario", "conns", "-conns", "50", "-hold", "50ms",
				"-addr", addr, "-mqtt", mqtt, "-broker-pid", pid)
			if res.Scenario != "conns" || res.Conns != 50 {
				t.Errorf("scenario %q with %d conns, want conns with 50", res.Scenario, res.Conns)
			}
			if res.ConnectPerS <= 0 || res.DurationS <= 0 {
				t.Errorf("connect_per_s %v over %v s, want both positive", res.ConnectPerS, res.DurationS)
			}
			if res.BrokerRSSBytes <= 0 || res.BytesPerConn < 0 {
				t.Errorf("broker_rss_bytes %d, bytes_per_conn %d", res.BrokerRSSBytes, res.BytesPerConn)
			}
		})
		// vanemq closes a connection whose CONNECT declares more than
		// max_connect_size (64 KiB) at once, and keeps one that declared a
		// 1 MiB PUBLISH after CONNECT.
		for _, sc := range []struct {
			name     string
			args     []string
			closeAll bool
		}{
			{"silent", nil, true},
			{"silent-connect", []string{"-silent-connect", "-send", "30faff3f"}, false},
		} {
			t.Run(sc.name+"/mqtt"+mqtt, func(t *testing.T) {
				t.Parallel()
				addr := benchTestBroker(t)
				res := runBenchJSON(t, slices.Concat([]string{"-scenario", "silent", "-conns", "50", "-waves", "2", "-hold", "1s",
					"-addr", addr, "-mqtt", mqtt, "-broker-pid", pid}, sc.args)...)
				closed := 0
				if sc.closeAll {
					closed = 50
				}
				checkSilentResult(t, res, 50, 2, closed)
			})
		}
	}
}

// checkSilentResult checks the figures of a silent result of waves waves of
// conns connections, closed of each closed by the broker.
func checkSilentResult(t *testing.T, res runResult, conns, waves, closed int) {
	t.Helper()
	if res.Scenario != "silent" || res.Conns != conns || res.Waves != waves || len(res.WaveResults) != waves {
		t.Fatalf("scenario %q, %d conns, %d waves, %d wave results; want silent, %d, %d, %d",
			res.Scenario, res.Conns, res.Waves, len(res.WaveResults), conns, waves, waves)
	}
	if res.HealthyAttempts != waves*healthyAttempts || res.HealthyFailed != 0 {
		t.Errorf("healthy client served %d of %d attempts, want all %d", res.HealthyAttempts-res.HealthyFailed,
			res.HealthyAttempts, waves*healthyAttempts)
	}
	if !(0 < res.HealthyP50us && res.HealthyP50us <= res.HealthyMaxUS) {
		t.Errorf("healthy connect p50 %v µs, max %v µs: want 0 < p50 <= max", res.HealthyP50us, res.HealthyMaxUS)
	}
	if res.ClosedByBroker != waves*closed {
		t.Errorf("closed_by_broker %d, want %d", res.ClosedByBroker, waves*closed)
	}
	if res.BrokerRSSBytes <= 0 || res.BytesPerConn < 0 || res.BytesPerConnFromStart < 0 || res.DurationS <= 0 || res.BrokerCPUS <= 0 {
		t.Errorf("broker_rss_bytes %d, bytes_per_conn %d, from start %d, duration %v s, broker CPU %v s",
			res.BrokerRSSBytes, res.BytesPerConn, res.BytesPerConnFromStart, res.DurationS, res.BrokerCPUS)
	}
	worst, worstStart := int64(0), int64(0)
	for i, w := range res.WaveResults {
		if w.Wave != i+1 || w.Conns != conns || w.ClosedByBroker != closed || w.OpenS <= 0 {
			t.Errorf("wave %d: %+v; want wave %d, %d conns, %d closed, open_s > 0", i+1, w, i+1, conns, closed)
		}
		if w.RSSBeforeBytes <= 0 || w.RSSPeakBytes <= 0 || w.HealthyAttempts != healthyAttempts || w.HealthyFailed != 0 ||
			w.HealthyError != "" || w.HealthyP50us <= 0 || w.HealthyMaxUS < w.HealthyP50us {
			t.Errorf("wave %d: %+v", i+1, w)
		}
		if want := max(0, w.RSSPeakBytes-w.RSSBeforeBytes) / int64(conns); w.BytesPerConn != want {
			t.Errorf("wave %d: bytes_per_conn %d, want (%d - %d) / %d = %d", i+1, w.BytesPerConn, w.RSSPeakBytes, w.RSSBeforeBytes, conns, want)
		}
		if want := max(0, w.RSSPeakBytes-res.WaveResults[0].RSSBeforeBytes) / int64(conns); w.BytesPerConnFromStart != want {
			t.Errorf("wave %d: bytes_per_conn_from_start %d, want %d", i+1, w.BytesPerConnFromStart, want)
		}
		worst, worstStart = max(worst, w.BytesPerConn), max(worstStart, w.BytesPerConnFromStart)
	}
	if res.BytesPerConn != worst || res.BytesPerConnFromStart != worstStart {
		t.Errorf("bytes_per_conn %d, from start %d: want the worst wave's, %d and %d", res.BytesPerConn, res.BytesPerConnFromStart, worst, worstStart)
	}
}

// checkMessageResult checks the figures of a message scenario's result.
func checkMessageResult(t *testing.T, res runResult, scenario string, noLoss bool) {
	t.Helper()
	if res.Scenario != scenario || res.Label != t.Name() {
		t.Errorf("scenario %q label %q, want %q and %q", res.Scenario, res.Label, scenario, t.Name())
	}
	if res.Sent <= 0 || res.Received <= 0 {
		t.Fatalf("sent %d, received %d: want both positive", res.Sent, res.Received)
	}
	if res.Received > res.Expected {
		t.Errorf("received %d > expected %d", res.Received, res.Expected)
	}
	if noLoss && (res.LossPct != 0 || res.Received != res.Expected) {
		t.Errorf("QoS 1: received %d of %d (loss %v %%), want all", res.Received, res.Expected, res.LossPct)
	}
	if res.BrokerCPUS <= 0 || res.BenchCPUS <= 0 || res.DeliveriesPerBrokerCPUS <= 0 {
		t.Errorf("broker_cpu_s %v, bench_cpu_s %v, deliveries_per_broker_cpu_s %v: want all positive",
			res.BrokerCPUS, res.BenchCPUS, res.DeliveriesPerBrokerCPUS)
	}
	if res.BenchCPUShare <= 0 || res.BenchCPUShare > 1 {
		t.Errorf("bench_cpu_share %v, want within (0, 1]", res.BenchCPUShare)
	}
	if res.BrokerRSSBytes <= 0 {
		t.Errorf("broker_rss_bytes %d, want positive", res.BrokerRSSBytes)
	}
	if !(0 < res.P50us && res.P50us <= res.P99us && res.P99us <= res.P999us) {
		t.Errorf("latency p50 %v, p99 %v, p99.9 %v µs: want 0 < p50 <= p99 <= p99.9", res.P50us, res.P99us, res.P999us)
	}
}

// TestBenchSubAddr runs pairs with the subscribers on another listener than
// the publishers (-sub-addr, as across the nodes of a cluster), with
// -broker-pid listing two processes (the test's and its parent): the
// subscribers must have connected to the second listener only, the
// publishers to the first, and every message must arrive.
func TestBenchSubAddr(t *testing.T) {
	srv, err := core.New(core.Options{
		AllowAnonymous:    true,
		MaxQueuedMessages: 1 << 20,
		SysInterval:       -1,
		Logger:            slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatalf("core.New: %v", err)
	}
	pubAddr := mqtttest.Serve(t, srv, tcp.New("pub", "127.0.0.1:0"), tcp.New("sub", "127.0.0.1:0"))
	var subAddr string
	for _, l := range srv.Listeners() {
		if l.ID == "sub" {
			subAddr = l.Address
		}
	}
	if subAddr == "" || subAddr == pubAddr {
		t.Fatalf("listeners %+v: no second address", srv.Listeners())
	}
	pids := strconv.Itoa(os.Getpid()) + "," + strconv.Itoa(os.Getppid())
	res := runBenchJSON(t, "-scenario", "pairs", "-pairs", "3", "-qos", "1", "-addr", pubAddr, "-sub-addr", subAddr,
		"-duration", "300ms", "-warmup", "0", "-drain", "10s", "-broker-pid", pids, "-label", t.Name())
	checkMessageResult(t, res, "pairs", true)
	if by := res.BrokerCPUSByPID; len(by) != 2 || math.Abs(by[0]+by[1]-res.BrokerCPUS) > 0.0025 {
		t.Errorf("broker_cpu_s_by_pid %v, want 2 summing to broker_cpu_s %v", by, res.BrokerCPUS)
	}
	for _, l := range srv.Listeners() {
		if l.Accepted != 3 {
			t.Errorf("listener %s (%s) accepted %d connections, want 3 (the %s)", l.ID, l.Address, l.Accepted,
				map[string]string{"pub": "publishers", "sub": "subscribers"}[l.ID])
		}
	}
}
