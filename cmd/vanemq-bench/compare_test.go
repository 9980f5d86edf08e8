package main

import (
	"bytes"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{5}, 5},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{10, 10, 1, 1000, 11}, 10},
		{[]float64{-1, 1}, 0},
	} {
		in := slices.Clone(tc.in)
		if got := median(in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
		if !slices.Equal(in, tc.in) {
			t.Errorf("median modified its input: %v", in)
		}
	}
	if got := median(nil); !math.IsNaN(got) {
		t.Errorf("median(nil) = %v, want NaN", got)
	}
}

func TestRatio(t *testing.T) {
	for _, tc := range [][3]float64{{300, 150, 2}, {0, 1, 0}, {1, 0, math.Inf(1)}} {
		if r, ok := ratio(tc[0], tc[1]); !ok || r != tc[2] {
			t.Errorf("ratio(%v, %v) = %v, %v; want %v, true", tc[0], tc[1], r, ok, tc[2])
		}
	}
	for _, tc := range [][2]float64{{0, 0}, {-1, 2}, {2, -1}, {math.NaN(), 1}, {1, math.Inf(1)}, {math.Inf(1), 1}} {
		if r, ok := ratio(tc[0], tc[1]); ok {
			t.Errorf("ratio(%v, %v) = %v, true; want not ok", tc[0], tc[1], r)
		}
	}
}

func TestRoundOrder(t *testing.T) {
	brokers := brokerNames()
	want := [][]string{
		{"vanemq", "mochi", "mosquitto"},
		{"mosquitto", "mochi", "vanemq"},
		{"vanemq", "mochi", "mosquitto"},
		{"mosquitto", "mochi", "vanemq"},
	}
	for round, w := range want {
		if got := roundOrder(brokers, round); !slices.Equal(got, w) {
			t.Errorf("round %d: order %v, want %v", round, got, w)
		}
	}
	if !slices.Equal(brokers, brokerNames()) {
		t.Errorf("roundOrder modified its input: %v", brokers)
	}
	if got := roundOrder([]string{"a", "b"}, 1); !slices.Equal(got, []string{"b", "a"}) {
		t.Errorf("two brokers, round 1: %v", got)
	}
}

func TestSummarize(t *testing.T) {
	rec := func(b string, round int, perCPU, loss float64) runRecord {
		return runRecord{Scenario: "fanin-q0-64", Broker: b, Round: round, Result: benchResult{
			Scenario: "fanin", DeliveriesPerBrokerCPUS: perCPU, LossPct: loss, DeliveriesPerS: perCPU / 2,
		}}
	}
	records := []runRecord{
		rec("vanemq", 0, 100, 0),
		rec("vanemq", 1, 300, 1),
		rec("vanemq", 2, 200, 0.5),
		rec("mochi", 0, 50, 0),
		{Scenario: "fanin-q0-64", Broker: "mochi", Round: 1, Err: errors.New("boom")},
		rec("mochi", 2, 70, 0),
		{Scenario: "fanin-q0-64", Broker: "mosquitto", Round: 0, Err: errors.New("boom")},
	}
	cells := summarize(records)
	v := cells[cellKey{"fanin-q0-64", "vanemq"}]
	if v.OK != 3 || v.Failed != 0 || v.PerCPU != 200 || v.LossPct != 0.5 || v.DeliveriesPerS != 100 ||
		v.PerCPUMin != 100 || v.PerCPUMax != 300 {
		t.Errorf("vanemq cell = %+v", v)
	}
	m := cells[cellKey{"fanin-q0-64", "mochi"}]
	if m.OK != 2 || m.Failed != 1 || m.PerCPU != 60 || m.PerCPUMin != 50 || m.PerCPUMax != 70 {
		t.Errorf("mochi cell = %+v, want OK 2, Failed 1, PerCPU 60 (50 to 70)", m)
	}
	q, ok := cells[cellKey{"fanin-q0-64", "mosquitto"}]
	if !ok || q.OK != 0 || q.Failed != 1 {
		t.Errorf("mosquitto cell = %+v, %v; want a cell with one failure", q, ok)
	}
	if got := runsCell(m); got != "2/3" {
		t.Errorf("runsCell(mochi) = %q, want 2/3", got)
	}
}

// cellsFor builds cells with one successful run each.
func cellsFor(scenario string, stats map[string]cellStats) map[cellKey]cellStats {
	cells := map[cellKey]cellStats{}
	for b, c := range stats {
		c.OK = 1
		cells[cellKey{scenario, b}] = c
	}
	return cells
}

func TestPerCPUTarget(t *testing.T) {
	s := scenarioSpec{ID: "pairs-q1-64", Kind: "pairs"}
	for _, tc := range []struct {
		name       string
		stats      map[string]cellStats
		want       string
		measured   string // substring of Measured
		wantMargin string // substring of Margin
	}{
		{"exactly 2x", map[string]cellStats{
			"vanemq": {PerCPU: 200}, "mochi": {PerCPU: 100}, "mosquitto": {PerCPU: 80},
		}, statusPass, "2.00× mochi", "+0.00× vs 2.0×"},
		{"just under 2x", map[string]cellStats{
			"vanemq": {PerCPU: 199}, "mochi": {PerCPU: 100}, "mosquitto": {PerCPU: 80},
		}, statusFail, "1.99× mochi", "-0.01× vs 2.0×"},
		{"better peer is mosquitto", map[string]cellStats{
			"vanemq": {PerCPU: 300}, "mochi": {PerCPU: 100}, "mosquitto": {PerCPU: 120},
		}, statusPass, "2.50× mosquitto", "+0.50×"},
		{"loss equal", map[string]cellStats{
			"vanemq": {PerCPU: 300, LossPct: 1.5}, "mochi": {PerCPU: 100, LossPct: 1.5}, "mosquitto": {PerCPU: 50},
		}, statusPass, "loss 1.50 % vs 1.50 %", ""},
		{"loss within rounding", map[string]cellStats{
			"vanemq": {PerCPU: 300, LossPct: 0.004}, "mochi": {PerCPU: 100}, "mosquitto": {PerCPU: 50},
		}, statusPass, "loss 0.00 % vs 0.00 %", ""},
		{"loss worse", map[string]cellStats{
			"vanemq": {PerCPU: 300, LossPct: 0.02}, "mochi": {PerCPU: 100, LossPct: 0}, "mosquitto": {PerCPU: 50, LossPct: 5},
		}, statusFail, "loss 0.02 % vs 0.00 %", "loss +0.02 pp"},
		{"only one peer", map[string]cellStats{
			"vanemq": {PerCPU: 300}, "mosquitto": {PerCPU: 100},
		}, statusPass, "3.00× mosquitto", ""},
		{"no peer", map[string]cellStats{"vanemq": {PerCPU: 300}}, statusNoData, "no peer result", ""},
		{"no vanemq", map[string]cellStats{"mochi": {PerCPU: 300}}, statusNoData, "no vanemq result", ""},
		// A broker that delivered nothing has a result: zero.
		{"vanemq zero", map[string]cellStats{"vanemq": {}, "mochi": {PerCPU: 300}}, statusFail, "0.00× mochi", "-2.00× vs 2.0×"},
		{"peers zero", map[string]cellStats{
			"vanemq": {PerCPU: 300, LossPct: 5}, "mochi": {LossPct: 100}, "mosquitto": {LossPct: 100},
		}, statusPass, "∞ mochi (300 vs 0.00); loss 5.00 % vs 100.00 %", "+∞ vs 2.0×"},
		{"all zero", map[string]cellStats{"vanemq": {}, "mochi": {}}, statusNoData, "no broker delivered anything", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := perCPUTarget(s, cellsFor(s.ID, tc.stats))
			if got.Status != tc.want || !strings.Contains(got.Measured, tc.measured) || !strings.Contains(got.Margin, tc.wantMargin) {
				t.Errorf("got %+v; want status %s, measured containing %q, margin containing %q", got, tc.want, tc.measured, tc.wantMargin)
			}
		})
	}
}

func TestLatencyTarget(t *testing.T) {
	s := scenarioSpec{ID: "latency-q1-64", Kind: "latency"}
	for _, tc := range []struct {
		vanemq, mochi, mosquitto float64
		want, margin             string
	}{
		{100, 50, 100, statusPass, "0.00 µs under"}, // equal passes; mochi does not count
		{99, 500, 100, statusPass, "1.00 µs under"},
		{101, 50, 100, statusFail, "1.00 µs over"},
		{2500, 1, 1000, statusFail, "1,500 µs over"},
		{100, 50, 0, statusNoData, ""},
	} {
		got := latencyTarget(s, cellsFor(s.ID, map[string]cellStats{
			"vanemq": {P99: tc.vanemq}, "mochi": {P99: tc.mochi}, "mosquitto": {P99: tc.mosquitto},
		}))
		if got.Status != tc.want || got.Margin != tc.margin {
			t.Errorf("p99 %v vs mosquitto %v: got %+v; want %s with margin %q", tc.vanemq, tc.mosquitto, got, tc.want, tc.margin)
		}
	}
}

func TestConnsTargets(t *testing.T) {
	s := scenarioSpec{ID: "conns-10000", Kind: "conns"}
	for _, tc := range []struct {
		bytes                 float64
		vConn, mConn, qConn   float64
		wantBytes, wantConn   string
		bytesMargin, connMeas string
	}{
		{6144, 150, 100, 80, statusPass, statusPass, "0.00 B under", "1.50× mochi"},
		{6145, 149, 100, 80, statusFail, statusFail, "1.00 B over", "1.49× mochi"},
		{2000, 300, 100, 120, statusPass, statusPass, "4,144 B under", "2.50× mosquitto"},
	} {
		got := evaluateTargets([]scenarioSpec{s}, cellsFor(s.ID, map[string]cellStats{
			"vanemq":    {BytesPerConn: tc.bytes, ConnectPerS: tc.vConn},
			"mochi":     {BytesPerConn: 9000, ConnectPerS: tc.mConn},
			"mosquitto": {BytesPerConn: 3000, ConnectPerS: tc.qConn},
		}))
		if len(got) != 2 {
			t.Fatalf("got %d targets, want 2: %+v", len(got), got)
		}
		if got[0].Status != tc.wantBytes || got[0].Margin != tc.bytesMargin {
			t.Errorf("bytes/conn %v: got %+v; want %s, margin %q", tc.bytes, got[0], tc.wantBytes, tc.bytesMargin)
		}
		if got[1].Status != tc.wantConn || !strings.HasPrefix(got[1].Measured, tc.connMeas) {
			t.Errorf("connect %v: got %+v; want %s, measured %q…", tc.vConn, got[1], tc.wantConn, tc.connMeas)
		}
	}
	got := evaluateTargets([]scenarioSpec{s}, map[cellKey]cellStats{})
	if got[0].Status != statusNoData || got[1].Status != statusNoData {
		t.Errorf("no data: got %+v", got)
	}
}

func TestComputeRatios(t *testing.T) {
	scen := []scenarioSpec{
		{ID: "fanout-q0-64", Kind: "fanout"},
		{ID: "latency-q0-64", Kind: "latency"},
		{ID: "conns-10000", Kind: "conns"},
	}
	cells := cellsFor("fanout-q0-64", map[string]cellStats{
		"vanemq": {PerCPU: 600}, "mochi": {PerCPU: 200}, "mosquitto": {PerCPU: 300},
	})
	for k, v := range cellsFor("latency-q0-64", map[string]cellStats{
		"vanemq": {P99: 80}, "mochi": {P99: 40}, "mosquitto": {P99: 160},
	}) {
		cells[k] = v
	}
	for k, v := range cellsFor("conns-10000", map[string]cellStats{"vanemq": {ConnectPerS: 100}}) {
		cells[k] = v
	}
	rows := computeRatios(scen, cells)
	if len(rows) != 3 {
		t.Fatalf("got %d rows, want 3", len(rows))
	}
	if r := rows[0]; r.VsMochi != 3 || r.VsMosquitto != 2 || r.VsBetter != 2 || r.BetterPeer != "mosquitto" {
		t.Errorf("fanout row = %+v", r)
	}
	// For latency the better peer is the one with the lower p99.
	if r := rows[1]; r.VsMochi != 2 || r.VsMosquitto != 0.5 || r.VsBetter != 2 || r.BetterPeer != "mochi" {
		t.Errorf("latency row = %+v", r)
	}
	if r := rows[2]; r.VsMochi != 0 || r.VsMosquitto != 0 || r.VsBetter != 0 || r.Values["vanemq"] != 100 {
		t.Errorf("conns row without peers = %+v", r)
	}
}

// fixtureJSON is a result as the load generator prints it.
const fixtureJSON = `{"scenario":"fanin","transport":"tcp","mqtt":4,"qos":1,"size":64,
"publishers":8,"subscribers":1,"pairs":0,"conns":0,"duration_s":10.0,"sent":1000000,
"expected":1000000,"received":999000,"loss_pct":0.1,"deliveries_per_s":99900,
"broker_cpu_s":4.5,"deliveries_per_broker_cpu_s":222000,"bench_cpu_s":6.1,"bench_cpu_share":0.61,
"p50_us":120.5,"p99_us":900,"p999_us":2100,"connect_per_s":0,"broker_rss_bytes":12345678,
"bytes_per_conn":0,"broker_cpu_s_by_pid":[4,0.5],"label":"vanemq"}`

func TestParseBenchResult(t *testing.T) {
	res, err := parseBenchResult([]byte("\n" + fixtureJSON + "\n\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := benchResult{Scenario: "fanin", Transport: "tcp", MQTT: 4, QoS: 1, Size: 64, Publishers: 8, Subscribers: 1,
		DurationS: 10, Sent: 1000000, Expected: 1000000, Received: 999000, LossPct: 0.1, DeliveriesPerS: 99900,
		BrokerCPUS: 4.5, DeliveriesPerBrokerCPUS: 222000, BenchCPUS: 6.1, BenchCPUShare: 0.61,
		P50us: 120.5, P99us: 900, P999us: 2100, BrokerRSSBytes: 12345678, BrokerCPUSByPID: []float64{4, 0.5}, Label: "vanemq"}
	if !reflect.DeepEqual(res, want) {
		t.Errorf("parsed\n%+v\nwant\n%+v", res, want)
	}
	// Fields the tool may add later are ignored.
	if _, err := parseBenchResult([]byte(`{"scenario":"conns","new_field":[1,2]}`)); err != nil {
		t.Errorf("unknown field: %v", err)
	}

	for _, tc := range []struct {
		name, in, want string
	}{
		{"empty", "  \n", "no JSON result"},
		{"text", "stub\n", "invalid character"},
		{"two objects", fixtureJSON + fixtureJSON, "more than one JSON value"},
		{"trailing text", fixtureJSON + "\ndone", "after the object"},
		{"truncated", fixtureJSON[:40], "parse JSON result"},
		{"wrong type", `{"scenario":"fanin","sent":"many"}`, "cannot unmarshal"},
		{"no scenario", `{"sent":1}`, "no scenario field"},
		{"null", `null`, "no scenario field"},
		{"array", `[1]`, "cannot unmarshal array"},
	} {
		_, err := parseBenchResult([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want one containing %q", tc.name, err, tc.want)
		}
	}
	if _, err := parseBenchResult(nil); !errors.Is(err, errNoResult) {
		t.Errorf("nil output: err = %v, want errNoResult", err)
	}
}

func TestMosquittoConfig(t *testing.T) {
	want := `# Written by vanemq-bench compare.
listener 41883 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 1000
max_inflight_messages 1024
set_tcp_nodelay true
sys_interval 0
log_dest stderr
log_type error
`
	if got := mosquittoConfig(41883); got != want {
		t.Errorf("mosquittoConfig:\n%s\nwant:\n%s", got, want)
	}
}

func TestVanemqConfig(t *testing.T) {
	var cfg struct {
		Listeners []struct {
			ID, Type, Address string
		}
		AllowAnonymous bool `yaml:"allow_anonymous"`
		MQTT           struct {
			SysInterval int `yaml:"sys_interval"`
		}
		Log     struct{ Level string }
		Storage struct{ Type string }
	}
	dec := yaml.NewDecoder(strings.NewReader(vanemqConfig(41883)))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Listeners) != 1 || cfg.Listeners[0].Address != "127.0.0.1:41883" || cfg.Listeners[0].Type != "tcp" || cfg.Listeners[0].ID != "tcp" {
		t.Errorf("listeners = %+v", cfg.Listeners)
	}
	if cfg.MQTT.SysInterval != 0 || cfg.Log.Level != "warn" {
		t.Errorf("mqtt/log = %+v %+v", cfg.MQTT, cfg.Log)
	}
	if !cfg.AllowAnonymous {
		t.Error("allow_anonymous is not true: the generator's clients connect anonymously, as they do to the peers")
	}
	if cfg.Storage.Type != "memory" {
		t.Errorf("storage.type = %q, want memory: the peers persist nothing, and the benchmark must not write a data directory", cfg.Storage.Type)
	}
}

func TestBrokerCommand(t *testing.T) {
	dir := t.TempDir()
	bins := brokerBinaries{vanemq: "bin/vanemq", mochi: "bin/peer-mochi", mosquitto: "/usr/sbin/mosquitto"}
	for _, tc := range []struct {
		broker string
		want   []string
	}{
		{"vanemq", []string{"bin/vanemq", "--config", dir + "/vanemq.yaml"}},
		{"mochi", []string{"bin/peer-mochi", "-addr", "127.0.0.1:1234"}},
		{"mosquitto", []string{"/usr/sbin/mosquitto", "-c", dir + "/mosquitto.conf"}},
	} {
		got, err := brokerCommand(tc.broker, bins, dir, 1234)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s: %q, %v; want %q", tc.broker, got, err, tc.want)
		}
	}
	got, err := brokerCommand(brokerVanemqAuthFile, bins, dir, 1234)
	if want := []string{"bin/vanemq", "--config", dir + "/vanemq-auth-file.yaml"}; err != nil || !slices.Equal(got, want) {
		t.Errorf("%s: %q, %v; want %q", brokerVanemqAuthFile, got, err, want)
	}
	for _, f := range []string{"users.yaml", "acl.yaml"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s: %v", brokerVanemqAuthFile, err)
		}
	}
	if _, err := brokerCommand("emqx", bins, dir, 1234); err == nil {
		t.Error("unknown broker: no error")
	}
}

func TestScenarioMatrix(t *testing.T) {
	m := scenarioMatrix()
	seen := map[string]bool{}
	v5 := 0
	kinds := map[string]int{}
	for _, s := range m {
		if seen[s.ID] {
			t.Errorf("duplicate ID %s", s.ID)
		}
		seen[s.ID] = true
		kinds[s.Kind]++
		switch s.MQTT {
		case 4:
		case 5:
			v5++
		default:
			t.Errorf("%s: MQTT %d", s.ID, s.MQTT)
		}
	}
	if v5 != 1 {
		t.Errorf("%d MQTT 5 rows, want 1", v5)
	}
	if want := map[string]int{"fanin": 5, "fanout": 1, "pairs": 2, "latency": 2, "conns": 1, "silent": 2}; !mapsEqual(kinds, want) {
		t.Errorf("kinds = %v, want %v", kinds, want)
	}
	byID := map[string]scenarioSpec{}
	for _, s := range m {
		byID[s.ID] = s
	}
	for id, want := range map[string]string{
		"fanin-q1-1024":  "-scenario fanin -transport tcp -mqtt 4 -qos 1 -size 1024 -publishers 8 -subscribers 1 -duration 10s -warmup 2s",
		"fanout-q0-64":   "-scenario fanout -transport tcp -mqtt 4 -qos 0 -size 64 -publishers 1 -subscribers 50 -duration 10s -warmup 2s",
		"pairs-q1-64":    "-scenario pairs -transport tcp -mqtt 4 -qos 1 -size 64 -pairs 100 -duration 10s -warmup 2s",
		"latency-q0-64":  "-scenario latency -transport tcp -mqtt 4 -qos 0 -size 64 -publishers 1 -subscribers 1 -rate 10000 -duration 10s -warmup 2s",
		"conns-10000":    "-scenario conns -transport tcp -mqtt 4 -qos 0 -conns 10000 -duration 10s -warmup 2s",
		"fanin-q1-64-v5": "-scenario fanin -transport tcp -mqtt 5 -qos 1 -size 64 -publishers 8 -subscribers 1 -duration 10s -warmup 2s",
		"silent-2000":    "-scenario silent -transport tcp -mqtt 4 -qos 0 -conns 2000 -hold 1s -duration 10s -warmup 2s",
		"silent-publish-2000": "-scenario silent -transport tcp -mqtt 4 -qos 0 -conns 2000 -silent-connect -send 30faff3f " +
			"-hold 1s -duration 10s -warmup 2s",
	} {
		s, ok := byID[id]
		if !ok {
			t.Errorf("no scenario %s", id)
			continue
		}
		if got := strings.Join(s.toolArgs(10*time.Second, 2*time.Second), " "); got != want {
			t.Errorf("%s args:\n got %s\nwant %s", id, got, want)
		}
	}
	for _, s := range m {
		want := 0
		if s.ID == "pairs-q1-64" {
			want = pairsQoS1Rounds
		}
		if s.Rounds != want {
			t.Errorf("%s: Rounds %d, want %d", s.ID, s.Rounds, want)
		}
	}
	if got := selectScenarios(m, regexp.MustCompile(`^latency`)); len(got) != 2 {
		t.Errorf("select ^latency: %d scenarios", len(got))
	}
	if got := selectScenarios(m, nil); len(got) != len(m) {
		t.Errorf("select nil: %d scenarios", len(got))
	}
}

// mapsEqual compares two string→int maps.
func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestRoundsOf checks that a scenario's own least number of rounds
// raises -rounds, never lowers it, and that -quick keeps its one round.
func TestRoundsOf(t *testing.T) {
	pairs := scenarioSpec{ID: "pairs-q1-64", Rounds: 9}
	fanin := scenarioSpec{ID: "fanin-q0-64"}
	scen := []scenarioSpec{fanin, pairs}
	for _, tc := range []struct {
		rounds       int
		quick        bool
		pairs, fanin int
		more         string
	}{
		{3, false, 9, 3, " (9 for pairs-q1-64)"},
		{9, false, 9, 9, ""},
		{12, false, 12, 12, ""},
		{1, true, 1, 1, ""},
	} {
		o := &compareOptions{rounds: tc.rounds, quick: tc.quick}
		if got := o.roundsOf(pairs); got != tc.pairs {
			t.Errorf("-rounds %d quick %v: pairs run %d rounds, want %d", tc.rounds, tc.quick, got, tc.pairs)
		}
		if got := o.roundsOf(fanin); got != tc.fanin {
			t.Errorf("-rounds %d quick %v: fanin runs %d rounds, want %d", tc.rounds, tc.quick, got, tc.fanin)
		}
		if got := moreRounds(scen, o); got != tc.more {
			t.Errorf("-rounds %d quick %v: moreRounds = %q, want %q", tc.rounds, tc.quick, got, tc.more)
		}
	}
}

func TestWarmupFor(t *testing.T) {
	for d, want := range map[time.Duration]time.Duration{
		10 * time.Second:       2 * time.Second,
		5 * time.Second:        time.Second,
		2 * time.Second:        400 * time.Millisecond,
		500 * time.Millisecond: 200 * time.Millisecond,
		time.Minute:            2 * time.Second,
	} {
		if got := warmupFor(d); got != want {
			t.Errorf("warmupFor(%s) = %s, want %s", d, got, want)
		}
	}
}

func TestParseCompareFlags(t *testing.T) {
	o, err := parseCompareFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.vanemqBin != "bin/vanemq" || o.mochiBin != "bin/peer-mochi" || o.mosquittoBin != "mosquitto" ||
		o.rounds != 3 || o.duration != 10*time.Second || o.out != "docs/benchmarks.md" || o.filter != nil {
		t.Errorf("defaults: %+v", o)
	}
	o, err = parseCompareFlags([]string{"-quick", "-rounds", "5", "-duration", "1m", "-run", "^conns"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.rounds != 1 || o.duration != 2*time.Second || o.warmup != 400*time.Millisecond || o.filter.String() != "^conns" {
		t.Errorf("-quick: rounds %d, duration %s, warmup %s, filter %v", o.rounds, o.duration, o.warmup, o.filter)
	}
	for _, args := range [][]string{
		{"-rounds", "0"},
		{"-duration", "0s"},
		{"-run", "("},
		{"-nope"},
		{"extra"},
	} {
		if _, err := parseCompareFlags(args, io.Discard); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
}

func TestRunCompareBadUsage(t *testing.T) {
	var stderr bytes.Buffer
	err := runCompare(t.Context(), []string{"compare", "-rounds", "-1"}, io.Discard, &stderr)
	if err == nil || !strings.Contains(err.Error(), "-rounds must be at least 1") {
		t.Errorf("err = %v", err)
	}
	err = runCompare(t.Context(), []string{"-vanemq", "/nonexistent/vanemq", "-mochi", "/nonexistent/mochi",
		"-mosquitto", "/nonexistent/mosquitto", "-out", ""}, io.Discard, &stderr)
	if err == nil || !strings.Contains(err.Error(), "make build") || !strings.Contains(err.Error(), "apt-get install mosquitto") {
		t.Errorf("missing binaries: err = %v", err)
	}
}

func TestFormatting(t *testing.T) {
	for v, want := range map[float64]string{
		0:          "0.00",
		1.234:      "1.23",
		45.25:      "45.2",
		99.96:      "100.0",
		100:        "100",
		1234.5:     "1,235",
		999999.6:   "1,000,000",
		1234567:    "1,234,567",
		-1234:      "-1,234",
		math.NaN(): "–",
	} {
		if got := fmtNum(v); got != want {
			t.Errorf("fmtNum(%v) = %q, want %q", v, got, want)
		}
	}
	if got := fmtPct(0.125); got != "0.12 %" && got != "0.13 %" {
		t.Errorf("fmtPct = %q", got)
	}
	if got := fmtRatio(2.345); got != "2.35×" && got != "2.34×" {
		t.Errorf("fmtRatio = %q", got)
	}
	if got := fmtShare(0.614); got != "61 %" {
		t.Errorf("fmtShare = %q", got)
	}
	if got := fmtMiB(3 << 20); got != "3.0 MiB" {
		t.Errorf("fmtMiB = %q", got)
	}
	if got := commandLine([]string{"-rounds", "1", "-run", "fanin|conns", "-out", ""}); got != `bin/vanemq-bench compare -rounds 1 -run 'fanin|conns' -out ''` {
		t.Errorf("commandLine = %s", got)
	}
}

func TestWriteTable(t *testing.T) {
	var b bytes.Buffer
	writeTable(&b, []string{"name", "µs"}, "lr", [][]string{{"a", "1"}, {"longer", "1,000"}})
	want := "| name   |    µs |\n" +
		"| ------ | ----: |\n" +
		"| a      |     1 |\n" +
		"| longer | 1,000 |\n\n"
	if b.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestTailBuffer(t *testing.T) {
	tb := newTailBuffer(5)
	for _, s := range []string{"ab", "cdef", "g"} {
		if n, err := tb.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	if got := tb.String(); got != "cdefg" {
		t.Errorf("tail = %q, want cdefg", got)
	}
}

func TestCPUModel(t *testing.T) {
	info := "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\nflags\t\t: fpu\n\nprocessor\t: 1\nmodel name\t: other\n"
	if got := cpuModel([]byte(info)); got != "Intel(R) Xeon(R) CPU @ 2.20GHz" {
		t.Errorf("cpuModel = %q", got)
	}
	if got := cpuModel([]byte("processor : 0\n")); got != "" {
		t.Errorf("cpuModel without model name = %q", got)
	}
}

// testReport is a small report with every kind of row.
func testReport() *report {
	scen := selectScenarios(scenarioMatrix(), regexp.MustCompile(`^(fanin-q0-64|latency-q0-64|conns-10000)$`))
	var records []runRecord
	add := func(id, kind, b string, res benchResult) {
		for round := range 3 {
			r := res
			r.Scenario, r.Label = kind, b
			r.DeliveriesPerBrokerCPUS *= 1 + 0.1*float64(round-1) // median is the middle round
			records = append(records, runRecord{Scenario: id, Broker: b, Round: round, Result: r})
		}
	}
	add("fanin-q0-64", "fanin", "vanemq", benchResult{DeliveriesPerS: 500000, DeliveriesPerBrokerCPUS: 300000, BenchCPUShare: 0.5})
	add("fanin-q0-64", "fanin", "mochi", benchResult{DeliveriesPerS: 300000, DeliveriesPerBrokerCPUS: 100000, BenchCPUShare: 0.4})
	add("fanin-q0-64", "fanin", "mosquitto", benchResult{DeliveriesPerS: 250000, DeliveriesPerBrokerCPUS: 250000, LossPct: 1.25})
	add("latency-q0-64", "latency", "vanemq", benchResult{P50us: 40, P99us: 90, P999us: 300, DeliveriesPerS: 10000})
	add("latency-q0-64", "latency", "mochi", benchResult{P50us: 50, P99us: 150, P999us: 400, DeliveriesPerS: 10000})
	add("latency-q0-64", "latency", "mosquitto", benchResult{P50us: 30, P99us: 80, P999us: 200, DeliveriesPerS: 10000})
	add("conns-10000", "conns", "vanemq", benchResult{ConnectPerS: 30000, BytesPerConn: 4000, BrokerRSSBytes: 50 << 20})
	add("conns-10000", "conns", "mochi", benchResult{ConnectPerS: 15000, BytesPerConn: 9000, BrokerRSSBytes: 100 << 20})
	records = append(records, runRecord{Scenario: "conns-10000", Broker: "mosquitto", Round: 0, Err: errors.New("broker exited during the run: exit status 1\nsecond line")})
	o := &compareOptions{rounds: 3, duration: 10 * time.Second, warmup: 2 * time.Second, args: []string{"-rounds", "3"}}
	env := envInfo{Started: time.Date(2026, 11, 25, 12, 30, 0, 0, time.UTC), CPU: "Test CPU", Cores: 2, Kernel: "Linux 6.1.0",
		GoVersion: "go1.26.8", Vanemq: "v0.1.0-3-gabc", Mochi: "v2.7.9", Mosquitto: "mosquitto version 2.0.11"}
	env.NoFile.Cur = 20000
	return buildReport(env, o, scen, brokerNames(), records)
}

func TestRenderMarkdown(t *testing.T) {
	var b bytes.Buffer
	renderMarkdown(&b, testReport())
	md := b.String()
	for _, want := range []string{
		"# Benchmarks: vanemq, mochi-mqtt and Mosquitto",
		"| date             | 2026-11-25 12:30 UTC",
		"| machine          | Test CPU, 2 logical CPUs, Linux 6.1.0",
		"| Go               | go1.26.8",
		"| vanemq           | v0.1.0-3-gabc (git describe)",
		"| mochi-mqtt       | v2.7.9",
		"| Mosquitto        | mosquitto version 2.0.11",
		"| open files limit | 20000 for every process",
		"make bench-compare ",
		"bin/vanemq-bench compare -rounds 3\n",
		"- 3 rounds. The brokers are interleaved",
		"listener 1883 127.0.0.1\n",
		`address: "127.0.0.1:1883"`,
		"## Throughput (medians)",
		"## Spread of deliveries/CPU-s",
		"## Latency (medians)",
		"## Connections (medians)",
		"## vanemq ÷ peers",
		"## Targets",
		"2 of 4 targets pass.",
		"## Failed runs",
		"- conns-10000, round 1, mosquitto: broker exited during the run: exit status 1 second line\n",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
	for _, re := range []string{
		`\| fanin-q0-64 +\| vanemq +\| +500,000 \| +300,000 \| +0.00 % \| +50 % \| +3/3 \|`,
		`\| fanin-q0-64 +\| mosquitto +\| +250,000 \| +250,000 \| +1.25 % \| +0 % \| +3/3 \|`,
		`\| fanin-q0-64 +\| vanemq +\| +270,000 \| +300,000 \| +330,000 \| +1.22× \| +3/3 \|`,
		`\| latency-q0-64 +\| vanemq +\| +40.0 \| +90.0 \| +300 \| +10,000 \|`,
		`\| conns-10000 +\| vanemq +\| +30,000 \| +4,000 \| +50.0 MiB \| +3/3 \|`,
		`\| conns-10000 +\| mosquitto +\| +– \| +– \| +– \| +0/1 \|`,
		`\| fanin-q0-64 +\| deliveries per broker CPU-s +\| +300,000 \| +100,000 \| +250,000 \| +3.00× \| +1.20× \| +1.20× \(mosquitto\) \|`,
		`\| latency-q0-64 +\| p99 latency µs \(lower is better\) +\| +90.0 \| +150 \| +80.0 \| +0.60× \| +1.12× \| +1.12× \(mosquitto\) \|`,
		`\| deliveries/CPU-s ≥ 2.0× better peer, loss ≤ its loss +\| fanin-q0-64 +\| FAIL +\| 1.20× mosquitto \(300,000 vs 250,000\); loss 0.00 % vs 1.25 % \| -0.80× vs 2.0× +\|`,
		`\| latency p99 ≤ mosquitto's +\| latency-q0-64 +\| FAIL +\| 90.0 µs vs 80.0 µs \(1.12×\) +\| 10.0 µs over +\|`,
		`\| bytes/conn ≤ 6144 +\| conns-10000 +\| PASS +\| 4,000 B +\| 2,144 B under +\|`,
		`\| connect rate ≥ 1.5× better peer +\| conns-10000 +\| PASS +\| 2.00× mochi \(30,000/s vs 15,000/s\) +\| \+0.50× vs 1.5× \|`,
	} {
		if !regexp.MustCompile(re).MatchString(md) {
			t.Errorf("markdown lacks a line matching %s", re)
		}
	}
	if t.Failed() {
		t.Log(md)
	}

	// The tables printed to stdout are the result sections of the file.
	var tables bytes.Buffer
	renderTables(&tables, testReport())
	if !strings.Contains(md, tables.String()) {
		t.Error("the stdout tables are not part of the markdown")
	}
	if strings.Contains(tables.String(), "## Method") {
		t.Error("the stdout tables include the method")
	}

	var quick bytes.Buffer
	rep := testReport()
	rep.Quick = true
	renderMarkdown(&quick, rep)
	if !strings.Contains(quick.String(), "quick smoke run") {
		t.Error("a -quick report does not say so")
	}
}

func TestCheckResult(t *testing.T) {
	fanin := scenarioSpec{ID: "fanin-q0-64", Kind: "fanin"}
	if err := checkResult(fanin, benchResult{Scenario: "fanin", Sent: 10, Expected: 10}); err != nil {
		t.Errorf("good result: %v", err)
	}
	if err := checkResult(fanin, benchResult{Scenario: "pairs", Sent: 10, Expected: 10}); err == nil || !strings.Contains(err.Error(), `scenario "pairs", want "fanin"`) {
		t.Errorf("wrong scenario: %v", err)
	}
	if err := checkResult(fanin, benchResult{Scenario: "fanin"}); err == nil || !strings.Contains(err.Error(), "no message was published") {
		t.Errorf("nothing sent: %v", err)
	}
	if err := checkResult(scenarioSpec{ID: "conns-10000", Kind: "conns"}, benchResult{Scenario: "conns", ConnectPerS: 5}); err != nil {
		t.Errorf("conns without messages: %v", err)
	}
}

func TestFailureError(t *testing.T) {
	ok := func(b string) runRecord { return runRecord{Scenario: "s", Broker: b} }
	bad := func(b string) runRecord { return runRecord{Scenario: "s", Broker: b, Err: errors.New("x")} }
	for _, tc := range []struct {
		name    string
		records []runRecord
		err     string // "" for none
		warning string // "" for none
	}{
		{"all good", []runRecord{ok("vanemq"), ok("mochi"), ok("mosquitto")}, "", ""},
		{"a peer failed once", []runRecord{ok("vanemq"), ok("mochi"), ok("mosquitto"), ok("vanemq"), bad("mochi"), ok("mosquitto")},
			"", "warning: 1 of 6 peer runs failed"},
		{"vanemq failed once", []runRecord{ok("vanemq"), ok("mochi"), ok("mosquitto"), bad("vanemq"), bad("mochi"), ok("mosquitto")},
			"2 of 6 runs failed (listed in the report), 1 of them vanemq's", ""},
		{"a peer never ran", []runRecord{ok("vanemq"), ok("mochi"), bad("mosquitto"), ok("vanemq"), ok("mochi"), bad("mosquitto")},
			"2 of 6 runs failed (listed in the report); no run of mosquitto succeeded", ""},
	} {
		var stderr bytes.Buffer
		err := failureError(tc.records, brokerNames(), &stderr)
		if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.err)
		}
		if !strings.Contains(stderr.String(), tc.warning) || (tc.warning == "" && stderr.Len() > 0) {
			t.Errorf("%s: stderr = %q, want %q", tc.name, stderr.String(), tc.warning)
		}
	}
}
