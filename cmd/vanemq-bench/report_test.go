package main

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestWriteJSONFields checks that -json prints exactly the documented
// fields, in snake case.
func TestWriteJSONFields(t *testing.T) {
	want := []string{"scenario", "transport", "mqtt", "qos", "size", "publishers", "subscribers", "pairs", "conns",
		"duration_s", "topics", "filter", "sent", "expected", "received", "loss_pct", "deliveries_per_s", "broker_cpu_s",
		"deliveries_per_broker_cpu_s", "bench_cpu_s", "bench_cpu_share", "p50_us", "p99_us", "p999_us",
		"connect_per_s", "broker_rss_bytes", "bytes_per_conn", "label",
		"waves", "send", "silent_connect", "bytes_per_conn_from_start", "closed_by_broker",
		"healthy_attempts", "healthy_failed", "healthy_connect_p50_us", "healthy_connect_max_us"}
	var buf bytes.Buffer
	if err := writeJSON(&buf, &runResult{Scenario: "fanin", Label: "l"}); err != nil {
		t.Fatal(err)
	}
	if strings.Count(buf.String(), "\n") != 1 || !strings.HasSuffix(buf.String(), "}\n") {
		t.Errorf("output %q: want one line", buf.String())
	}
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	got := slices.Sorted(maps.Keys(m))
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("fields:\n got %v\nwant %v", got, want)
	}
}

// TestFinish checks the derived figures.
func TestFinish(t *testing.T) {
	r := runResult{brokerPIDs: []int{1}, DurationS: 2, Sent: 1000, Expected: 3000, Received: 2970, arrived: 3100}
	r.setCPU(cpuSample{broker: time.Second, self: time.Second}, cpuSample{broker: 3 * time.Second, self: 1500 * time.Millisecond})
	r.finish()
	if r.LossPct != 1 || r.DeliveriesPerS != 1550 || r.BrokerCPUS != 2 || r.DeliveriesPerBrokerCPUS != 1550 ||
		r.BenchCPUS != 0.5 || r.BenchCPUShare != 0.2 {
		t.Errorf("finish: %+v", r)
	}
	over := runResult{Expected: 10, Received: 11}
	over.finish()
	if over.LossPct != 0 || over.BenchCPUShare != 0 || over.DeliveriesPerBrokerCPUS != 0 {
		t.Errorf("more received than expected, no broker: %+v", over)
	}
}

// TestWriteText checks the text report of each kind of result.
func TestWriteText(t *testing.T) {
	msgs := runResult{Scenario: "fanin", Transport: "tcp", MQTT: 4, QoS: 1, Size: 64, Publishers: 8, Subscribers: 1,
		DurationS: 5, Sent: 1234567, Expected: 1234567, Received: 1234000, LossPct: 0.046, DeliveriesPerS: 246800,
		P50us: 100, P99us: 200, P999us: 300, latN: 1234000, brokerPIDs: []int{77}, BrokerCPUS: 4.5, BenchCPUS: 0.5,
		BenchCPUShare: 0.1, DeliveriesPerBrokerCPUS: 274222, BrokerRSSBytes: 30 << 20, fan: 1, inflight: 100,
		arrived: 1234000, Label: "run 1"}
	conns := runResult{Scenario: "conns", Transport: "ws", MQTT: 5, Conns: 10000, DurationS: 0.5, ConnectPerS: 20000,
		rssBefore: 10 << 20, BrokerRSSBytes: 50 << 20, BytesPerConn: 4194, hold: 2 * time.Second}
	silent := runResult{Scenario: "silent", Transport: "tcp", MQTT: 4, Conns: 2000, Waves: 2, Send: "30faff3f", SilentConnect: true,
		DurationS: 7.5, brokerPIDs: []int{77}, BrokerCPUS: 0.25, BenchCPUS: 0.25, BenchCPUShare: 0.5, hold: 2 * time.Second,
		BrokerRSSBytes: 30 << 20, BytesPerConn: 3000, BytesPerConnFromStart: 3500, ClosedByBroker: 1,
		HealthyAttempts: 10, HealthyFailed: 1, HealthyP50us: 412.3, HealthyMaxUS: 12034.5, healthyErr: "wave 2: healthy client 9: timeout",
		WaveResults: []waveResult{
			{Wave: 1, Conns: 2000, OpenS: 0.25, RSSBeforeBytes: 20 << 20, RSSPeakBytes: 25 << 20, BytesPerConn: 2621, BytesPerConnFromStart: 2621,
				HealthyAttempts: 5, HealthyP50us: 400, HealthyMaxUS: 500},
			{Wave: 2, Conns: 2000, OpenS: 0.5, ClosedByBroker: 1, RSSBeforeBytes: 24 << 20, RSSPeakBytes: 30 << 20, BytesPerConn: 3000,
				BytesPerConnFromStart: 3500, HealthyAttempts: 5, HealthyFailed: 1, HealthyP50us: 420, HealthyMaxUS: 12034.5,
				HealthyError: "healthy client 9: timeout"},
		}}
	cases := []struct {
		r    runResult
		want []string
	}{
		{silent, []string{
			"vanemq-bench silent: tcp, MQTT 3.1.1, 2 waves × 2,000 connections, each completing CONNECT, then sending 30faff3f (4 bytes) and nothing more\n",
			"  wave 1      2,000 opened in 0.250 s, held 2s; 0 closed by the broker before the end of the hold\n" +
				"              VmRSS 20.0 MiB before, peak 25.0 MiB: 2,621 bytes per connection (2,621 over the first wave's start)\n" +
				"              healthy client served 5 of 5 times: connect p50 400µs, max 500µs\n",
			"  wave 2      2,000 opened in 0.500 s, held 2s; 1 closed by the broker",
			"healthy client served 4 of 5 times: connect p50 420µs, max 12.035ms; FAILED 1, first: healthy client 9: timeout\n",
			"  worst       3,000 bytes per connection (wave 2), 3,500 over the first wave's start (wave 2); VmRSS peak 30.0 MiB\n",
			"  healthy     client served 9 of 10 times: connect p50 412µs, max 12.035ms; FAILED 1, first: wave 2: healthy client 9: timeout\n",
			"  closed      1 connection closed by the broker over 2 waves\n",
			"  broker      pid 77, 0.250 s CPU during the run (7.500 s)\n",
		}},
		{msgs, []string{"vanemq-bench fanin: tcp, MQTT 3.1.1, QoS 1, 64-byte payloads, 8 publishers → 1 subscriber, flat out, inflight 100",
			"label       run 1", "1,234,567 messages", "loss 0.046 %", "246,800 deliveries/s", "p50 100.0 µs, p99 200.0 µs, p99.9 300.0 µs",
			"pid 77, 4.500 s CPU during the window: 274,222 deliveries per CPU-second", "VmRSS 30.0 MiB", "10.0 % of generator + broker CPU"}},
		{conns, []string{"vanemq-bench conns: ws, MQTT 5\n", "10,000 connections in 0.500 s: 20,000 connects/s",
			"not measured (no -broker-pid)"}},
	}
	for _, tc := range cases {
		var buf bytes.Buffer
		if err := writeText(&buf, &tc.r); err != nil {
			t.Fatal(err)
		}
		for _, w := range tc.want {
			if !strings.Contains(buf.String(), w) {
				t.Errorf("%s report lacks %q:\n%s", tc.r.Scenario, w, buf.String())
			}
		}
	}
}

// TestThousands checks the thousands separators.
func TestThousands(t *testing.T) {
	cases := map[int64]string{0: "0", 7: "7", 999: "999", 1000: "1,000", 1234567: "1,234,567", -1234: "-1,234", 100000: "100,000"}
	for n, want := range cases {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}
