package main

import (
	"bytes"
	"errors"
	"flag"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestClusterMatrix checks the cluster command's scenarios: the issue's
// pairs and fan-out at QoS 0 and 1, and its latency at 2,000 msg/s.
func TestClusterMatrix(t *testing.T) {
	var ids []string
	for _, s := range clusterMatrix() {
		ids = append(ids, s.ID)
	}
	want := []string{"pairs-q0-64", "pairs-q1-64", "fanout-q0-64", "fanout-q1-64", "latency-q1-64-r2000"}
	if !slices.Equal(ids, want) {
		t.Errorf("IDs %q, want %q", ids, want)
	}
	lat := clusterMatrix()[4]
	if args := strings.Join(lat.toolArgs(5e9, 1e9), " "); !strings.Contains(args, "-scenario latency") ||
		!strings.Contains(args, "-qos 1") || !strings.Contains(args, "-rate 2000") {
		t.Errorf("latency flags %q", args)
	}
}

// TestClusterConfigs checks single's and single+hook's configurations:
// one listener, a pebble store, and the cluster section only in the
// second.
func TestClusterConfigs(t *testing.T) {
	type config struct {
		Listeners []struct {
			ID, Type, Address string
		}
		AllowAnonymous bool `yaml:"allow_anonymous"`
		Storage        struct{ Type, Path string }
		Cluster        *struct {
			URLs []string
			Node string
		}
	}
	decode := func(text string) config {
		t.Helper()
		var c config
		dec := yaml.NewDecoder(strings.NewReader(text))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil {
			t.Fatalf("%v in:\n%s", err, text)
		}
		return c
	}
	single := decode(singleConfig(41883, "/tmp/a b/store"))
	if len(single.Listeners) != 1 || single.Listeners[0].Address != "127.0.0.1:41883" || !single.AllowAnonymous ||
		single.Storage.Type != "pebble" || single.Storage.Path != "/tmp/a b/store" || single.Cluster != nil {
		t.Errorf("single: %+v", single)
	}
	hook := decode(singleHookConfig(41883, "/tmp/s", "nats://127.0.0.1:4222"))
	if hook.Cluster == nil || !slices.Equal(hook.Cluster.URLs, []string{"nats://127.0.0.1:4222"}) || hook.Cluster.Node != clusterHookNode ||
		hook.Listeners[0].Address != "127.0.0.1:41883" || hook.Storage.Path != "/tmp/s" {
		t.Errorf("single+hook: %+v", hook)
	}
}

// TestParseDevNodes reads cluster dev's node lines up to its ready line.
func TestParseDevNodes(t *testing.T) {
	l := &lineBuffer{max: 1 << 10}
	_, _ = l.Write([]byte("n1 mqtt=127.0.0.1:1883 nats=nats://127.0.0.1:4222\nn2 mqtt=127.0.0.1:1884 "))
	if _, ok := l.ready(); ok {
		t.Fatal("ready before the ready line")
	}
	_, _ = l.Write([]byte("nats=nats://127.0.0.1:4223\nready: 2 nodes (data in /tmp/x); Ctrl-C stops them\nlater\n"))
	out, ok := l.ready()
	if !ok {
		t.Fatalf("no ready line in %q", l.buf)
	}
	nodes, err := parseDevNodes(out, 2)
	want := []devNodeAddrs{{"n1", "127.0.0.1:1883", "nats://127.0.0.1:4222"}, {"n2", "127.0.0.1:1884", "nats://127.0.0.1:4223"}}
	if err != nil || !slices.Equal(nodes, want) {
		t.Errorf("parseDevNodes = %+v, %v; want %+v", nodes, err, want)
	}
	if _, err := parseDevNodes(out, 3); err == nil || !strings.Contains(err.Error(), "2 node lines") {
		t.Errorf("3 nodes wanted: %v", err)
	}
	// What does not fit is dropped, not an error.
	small := &lineBuffer{max: 4}
	if n, err := small.Write([]byte("ready: x\n")); n != 9 || err != nil || string(small.buf) != "read" {
		t.Errorf("Write = %d, %v, kept %q", n, err, small.buf)
	}
}

// TestClusterRatios checks the ratios to single and the latency added,
// round by round, with a failed run and a scenario without runs.
func TestClusterRatios(t *testing.T) {
	rec := func(sc, c string, round int, perCPU, p50, p99 float64) runRecord {
		return runRecord{Scenario: sc, Broker: c, Round: round,
			Result: benchResult{DeliveriesPerBrokerCPUS: perCPU, P50us: p50, P99us: p99}}
	}
	failed := rec("pairs", clusterAcross, 1, 0, 0, 0)
	failed.Err = errors.New("boom")
	// single+hook's broker used 3/4 of its CPU in round 1, 1/2 in round 3;
	// in round 2 its processes' times are missing.
	hook0, hook2 := rec("pairs", clusterSingleHook, 0, 96, 0, 0), rec("pairs", clusterSingleHook, 2, 170, 0, 0)
	hook0.Result.BrokerCPUS, hook0.Result.BrokerCPUSByPID = 1, []float64{0.75, 0.25}
	hook2.Result.BrokerCPUS, hook2.Result.BrokerCPUSByPID = 2, []float64{1, 1}
	records := []runRecord{
		rec("pairs", clusterSingle, 0, 100, 0, 0), hook0, rec("pairs", clusterAcross, 0, 40, 0, 0),
		failed, rec("pairs", clusterSingleHook, 1, 80, 0, 0), rec("pairs", clusterSingle, 1, 100, 0, 0),
		rec("pairs", clusterSingle, 2, 200, 0, 0), hook2, rec("pairs", clusterAcross, 2, 100, 0, 0),
		rec("lat", clusterSingle, 0, 1, 100, 300), rec("lat", clusterAcross, 0, 1, 400, 1300),
		rec("lat", clusterAcross, 1, 1, 500, 900), rec("lat", clusterSingle, 1, 1, 120, 500),
	}
	scenarios := []scenarioSpec{{ID: "pairs", Kind: scenarioPairs}, {ID: "none", Kind: scenarioFanout}, {ID: "lat", Kind: scenarioLatency}}
	rows := clusterRatios(scenarios, records)
	if len(rows) != 6 {
		t.Fatalf("%d rows, want 6: %+v", len(rows), rows)
	}
	hook, only, across, none := rows[0], rows[1], rows[2], rows[3]
	if hook.Config != clusterSingleHook || !slices.Equal(hook.Spread.Values, []float64{0.96, 0.8, 0.85}) || hook.Spread.Median != 0.85 ||
		hook.Spread.Min != 0.8 || hook.Spread.Max != 0.96 || hook.Single != 100 || hook.Other != 96 || hook.Status != statusFail {
		t.Errorf("single+hook: %+v", hook)
	}
	if only.Config != hookBrokerOnly || !slices.Equal(only.Spread.Values, []float64{1.28, 1.7}) || only.Other != 234 ||
		only.Status != "" || only.OfMedians != 2.34 {
		t.Errorf("single+hook, broker only: %+v", only)
	}
	if across.Config != clusterAcross || !slices.Equal(across.Spread.Values, []float64{0.4, 0.5}) || across.Spread.Median != 0.45 ||
		across.OfMedians != 0.7 || across.Status != "" || across.Target != 0 {
		t.Errorf("across (a round without its run): %+v", across)
	}
	if none.Status != statusNoData || none.SingleOK || none.OtherOK || len(none.Spread.Values) != 0 || !math.IsNaN(none.Spread.Median) {
		t.Errorf("no runs: %+v", none)
	}

	lat := clusterLatencies(scenarios, records)
	if len(lat) != 2 {
		t.Fatalf("%d latency rows, want 2: %+v", len(lat), lat)
	}
	if h := lat[0]; h.Config != clusterSingleHook || h.OK || !math.IsNaN(h.AddedP50) || len(h.P50.Values) != 0 {
		t.Errorf("single+hook without runs: %+v", h)
	}
	a := lat[1]
	if !a.OK || a.AddedP50 != 340 || a.AddedP99 != 700 || !slices.Equal(a.P50.Values, []float64{300, 380}) ||
		!slices.Equal(a.P99.Values, []float64{1000, 400}) {
		t.Errorf("across: %+v", a)
	}
	if got := fmtSpread(a.P99, fmtAdded); got != "+400 – +1,000" {
		t.Errorf("fmtSpread = %q", got)
	}
	if got := fmtRatio3(0.8953); got != "0.895×" {
		t.Errorf("fmtRatio3(0.8953) = %q", got)
	}
	if got := fmtAdded(-3.5); got != "-3.50" {
		t.Errorf("fmtAdded(-3.5) = %q", got)
	}
}

// TestClusterExec runs the whole cluster command against a fake vanemq
// (which also fakes cluster dev) and a fake load generator.
func TestClusterExec(t *testing.T) {
	dir := t.TempDir()
	broker := buildFake(t, dir, "broker", fakeBrokerSrc)
	tool := buildFake(t, dir, "tool", fakeToolSrc)
	logPath, targetsPath := filepath.Join(dir, "cluster.log"), filepath.Join(dir, "targets.log")
	t.Setenv("FAKE_TOOL_LOG", logPath)
	t.Setenv("FAKE_TOOL_TARGETS", targetsPath)
	t.Setenv("FAKE_TOOL_FAIL", "")
	t.Setenv("FAKE_DEV_FAIL", "")
	out := filepath.Join(dir, "cluster.md")
	o, err := parseClusterFlags([]string{"-vanemq", broker, "-out", out, "-rounds", "2", "-duration", "1s", "-run", "^(pairs-q1-64|latency)"}, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	o.tool = tool
	var stdout, stderr bytes.Buffer
	if err := o.runCluster(t.Context(), &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\nstderr:\n%s", err, stderr.String())
	}
	var want, wantTargets []string
	for _, sc := range []string{"pairs", "latency"} {
		for _, c := range []string{"single", "single+hook", "across", "across", "single+hook", "single"} {
			want = append(want, c+" "+sc)
			wantTargets = append(wantTargets, c+" "+sc+" "+map[string]string{
				"single": "1 false", "single+hook": "2 false", "across": "1 true"}[c])
		}
	}
	if got := strings.TrimSpace(string(mustRead(t, logPath))); got != strings.Join(want, "\n") {
		t.Errorf("run order:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	if got := strings.TrimSpace(string(mustRead(t, targetsPath))); got != strings.Join(wantTargets, "\n") {
		t.Errorf("processes and subscriber addresses:\n%s\nwant:\n%s", got, strings.Join(wantTargets, "\n"))
	}
	md := mustRead(t, out)
	for _, re := range []string{
		`\| pairs-q1-64 +\| single\+hook +\| +142,500 \| +285,000 \| +0.00 % \| +50 % \| +2/2 \|`,
		`\| pairs-q1-64 +\| single\+hook ÷ single +\| +300,000 \| +285,000 \| +0.950× \| +0.950× \| +0.950× – 0.950× \| +2 \| PASS \(≥ 0.90×\) \|`,
		`\| pairs-q1-64 +\| single\+hook \(broker only\) ÷ single +\| +300,000 \| +300,000 \| +1.000× \| +1.000× \| +1.000× – 1.000× \| +2 \| – +\|`,
		`\| pairs-q1-64 +\| across ÷ single +\| +300,000 \| +120,000 \| +0.400× \| +0.400× \| +0.400× – 0.400× \| +2 \| – +\|`,
		`\| latency-q1-64-r2000 \| across +\| +\+400 \| +\+400 – \+400 \| +\+800 \| +\+800 – \+800 \| +2 \|`,
		`\| latency-q1-64-r2000 \| single\+hook \| +\+2.00 \|`,
		"bin/vanemq-bench cluster -vanemq ",
		"make bench-cluster ROUNDS=2 BENCH_DURATION=1s",
		"`-scenario latency -transport tcp -mqtt 4 -qos 1 -size 64 -publishers 1 -subscribers 1 -rate 2000 ",
		"both NATS servers included",
	} {
		if !regexp.MustCompile(re).Match(md) {
			t.Errorf("report lacks a line matching %s", re)
		}
	}
	if !strings.Contains(string(md), stdout.String()) || !strings.Contains(stdout.String(), "## ÷ single") {
		t.Errorf("stdout is not the report's tables:\n%s", stdout.String())
	}
	if !strings.Contains(stderr.String(), "cluster: 2 scenarios × 2 rounds × 3 brokers = 12 runs") {
		t.Errorf("progress lacks the run count:\n%s", stderr.String())
	}
	if t.Failed() {
		t.Logf("report:\n%s\nstderr:\n%s", md, stderr.String())
	}

	t.Run("cluster dev fails", func(t *testing.T) {
		t.Setenv("FAKE_TOOL_LOG", "")
		t.Setenv("FAKE_TOOL_TARGETS", "")
		t.Setenv("FAKE_DEV_FAIL", "1")
		o, err := parseClusterFlags([]string{"-vanemq", broker, "-quick", "-run", "^pairs-q0"}, os.Stderr)
		if err != nil {
			t.Fatal(err)
		}
		o.tool = tool
		var stdout, stderr bytes.Buffer
		err = o.runCluster(t.Context(), &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), "2 of 3 runs failed") {
			t.Errorf("err = %v, want 2 of 3 runs failed", err)
		}
		if !regexp.MustCompile(`pairs-q0-64, round 1, across: start \S+ cluster dev --nodes 2 --port 0 --dir \S+: exited before its ready line: exit status 1; output: fake cluster dev: failing as asked`).Match(stdout.Bytes()) ||
			!regexp.MustCompile(`\| pairs-q0-64 +\| single\+hook ÷ single +\| +300,000 \| +– \| +– \| +– \| +– \| +0 \| NO DATA`).Match(stdout.Bytes()) {
			t.Errorf("tables:\n%s", stdout.String())
		}
	})
}

// TestParseClusterFlags checks the cluster command's defaults and bad
// usage.
func TestParseClusterFlags(t *testing.T) {
	o, err := parseClusterFlags(nil, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if o.rounds != defaultClusterRounds || o.duration != defaultClusterDuration || o.out != "" || o.vanemqBin != "bin/vanemq" ||
		o.startTimeout != devStartTimeout {
		t.Errorf("defaults: %+v", o)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-rounds", "0"}, "-rounds must be at least 1"},
		{[]string{"-run", "("}, "cluster: -run"},
		{[]string{"extra"}, `unexpected argument "extra"`},
	} {
		if _, err := parseClusterFlags(tc.args, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.args, err, tc.want)
		}
	}
	if _, err := parseClusterFlags([]string{"-h"}, &bytes.Buffer{}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v, want flag.ErrHelp", err)
	}
	var stdout, stderr bytes.Buffer
	if code := runCLI(t.Context(), []string{"cluster", "-run", "nothing-matches"}, &stdout, &stderr); code != 1 ||
		!strings.Contains(stderr.String(), `cluster: -run "nothing-matches" matches no scenario`) {
		t.Errorf("no scenario: exit %d, stderr %q", code, stderr.String())
	}
}
