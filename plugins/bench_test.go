package plugins

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/mqtttest"
	"github.com/vanemq/vanemq/listeners/tcp"
)

// BenchmarkDecisionLatency is one synchronous AuthorizePublish through the
// plugin binary (gRPC over a local socket, AutoMTLS); it reports p50 and
// p99 in µs.
//
//	go test -run '^$' -bench DecisionLatency -benchtime 20000x ./plugins/
func BenchmarkDecisionLatency(b *testing.B) {
	h, err := New(Config{Path: testPlugin(b), Timeout: time.Second, Config: map[string]any{"mode": "acl"}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = h.Close() }()
	cl := &core.ClientInfo{ID: "c1", Username: "u"}
	m := &core.Message{Topic: "ok/1", Payload: []byte("21.5"), QoS: 1}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if v := h.AuthorizePublish(context.Background(), cl, m); v != core.Allow {
			b.Fatalf("%+v", v)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	reportLatency(b, lat)
}

// BenchmarkRoundTripFloor is a 1-byte ping-pong with another process over
// a unix socket: the least a call into a plugin can cost on this machine,
// to set BenchmarkDecisionLatency against.
func BenchmarkRoundTripFloor(b *testing.B) {
	sock := filepath.Join(b.TempDir(), "echo.sock")
	cmd := exec.Command(testPlugin(b))
	cmd.Env = append(os.Environ(), "TESTPLUGIN_ECHO="+sock)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	var conn net.Conn
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		c, err := net.Dial("unix", sock)
		if err == nil {
			conn = c
			break
		}
		if time.Now().After(deadline) {
			b.Fatal(err)
		}
	}
	defer conn.Close()
	buf := []byte{1}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if _, err := conn.Write(buf); err != nil {
			b.Fatal(err)
		}
		if _, err := conn.Read(buf); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	reportLatency(b, lat)
}

// reportLatency reports the p50 and p99 of lat, in µs.
func reportLatency(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkObserverEvents is the rate of observed events through the
// batching stream into the plugin: b.N OnPublished events, fed as fast as
// the queue takes them (none dropped), until all are sent.
//
//	go test -run '^$' -bench ObserverEvents -benchtime 1000000x ./plugins/
func BenchmarkObserverEvents(b *testing.B) {
	h, err := New(Config{Path: testPlugin(b), Config: map[string]any{"mode": "acl", "observe": []any{"published"}}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = h.Close() }()
	cl := &core.ClientInfo{ID: "c1", Username: "u"}
	m := &core.Message{Topic: "sensors/1/temp", Payload: make([]byte, 64), QoS: 0}
	base := h.sent.Load()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		for h.queue.len() >= h.cfg.QueueSize {
			time.Sleep(50 * time.Microsecond) // the queue is full: let the sender drain it
		}
		h.OnPublished(context.Background(), cl, m)
	}
	for h.sent.Load()-base < uint64(b.N) {
		time.Sleep(100 * time.Microsecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	if lost := h.Stats().Lost; lost != 0 {
		b.Fatalf("%d events lost", lost)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
}

// BenchmarkBrokerQoS0Observer is the broker's QoS 0 throughput with no
// hook and with a plugin observing every publish: 4 publishers, one
// subscriber. Compare the rows' msg/s:
//
//	go test -run '^$' -bench BrokerQoS0Observer -benchtime 400000x -count 3 ./plugins/
func BenchmarkBrokerQoS0Observer(b *testing.B) {
	for _, mode := range []string{"none", "observer"} {
		b.Run(mode, func(b *testing.B) { benchBrokerObserver(b, mode) })
	}
}

func benchBrokerObserver(b *testing.B, mode string) {
	srv, err := core.New(core.Options{Logger: slog.New(slog.DiscardHandler), SysInterval: -1, AllowAnonymous: true})
	if err != nil {
		b.Fatal(err)
	}
	var h *Hook
	if mode == "observer" {
		h, err = New(Config{Path: testPlugin(b), Config: map[string]any{"observe": []any{"published"}, "observe_only": true}}, srv)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = h.Close() }) // after the server's shutdown
		if err := srv.AddHook(h, 10); err != nil {
			b.Fatal(err)
		}
	}
	addr := mqtttest.Serve(b, srv, tcp.New("tcp", "127.0.0.1:0"))
	pid := 0
	if h != nil {
		pid = h.cur.Load().client.ReattachConfig().Pid
	}
	self0, plug0 := processCPU(b, 0), processCPU(b, pid)
	mqtttest.FanInQoS0(b, addr, "", "bench/x", "bench/#", 4)
	self1, plug1 := processCPU(b, 0), processCPU(b, pid)
	b.ReportMetric(float64((self1-self0).Nanoseconds())/float64(b.N), "broker-cpu-ns/msg")
	if h != nil {
		b.ReportMetric(float64((plug1-plug0).Nanoseconds())/float64(b.N), "plugin-cpu-ns/msg")
		b.ReportMetric(float64(h.Stats().Lost), "events-lost")
	}
}

// processCPU is the CPU time (user and system) a process has used: this
// one (the broker and the benchmark's clients) for pid 0, else the
// plugin's, from /proc (10ms ticks).
func processCPU(b *testing.B, pid int) time.Duration {
	if pid == 0 {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			b.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		b.Fatal(err)
	}
	// The fields after the command name (which may hold spaces):
	// utime and stime are the 12th and 13th.
	f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+1:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}
