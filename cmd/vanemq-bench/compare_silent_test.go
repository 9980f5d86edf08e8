package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestSilentTarget(t *testing.T) {
	s := scenarioSpec{ID: "silent-2000", Kind: "silent"}
	served := cellStats{OK: 3, HealthyAttempts: 45, HealthyMax: 1500}
	with := func(c cellStats, perWave, fromStart float64, failed int) cellStats {
		c.BytesPerConn, c.BytesPerConnFromStart, c.HealthyFailed = perWave, fromStart, failed
		return c
	}
	for _, tc := range []struct {
		name             string
		vanemq           cellStats
		status, measured string
		margin           string
	}{
		{"at the target", with(served, 8192, 9000, 0), statusPass,
			"8,192 B (9,000 B from the start); healthy client served 45 of 45, connect max 1.5ms (mosquitto 4,700 B)", "0.00 B under"},
		{"over it", with(served, 8193, 8193, 0), statusFail,
			"8,193 B (8,193 B from the start); healthy client served 45 of 45", "1.00 B over"},
		{"healthy client starved", with(served, 2000, 2000, 3), statusFail,
			"2,000 B (2,000 B from the start); healthy client served 42 of 45", "6,192 B under; 3 healthy attempts failed"},
		{"no healthy attempt", with(cellStats{OK: 1}, 2000, 2000, 0), statusNoData, "no vanemq result", ""},
	} {
		got := evaluateTargets([]scenarioSpec{s}, cellsFor(s.ID, map[string]cellStats{
			"vanemq":    tc.vanemq,
			"mochi":     with(served, 1<<20, 1<<20, 0),
			"mosquitto": with(served, 4700, 4600, 0),
		}))
		if len(got) != 1 {
			t.Fatalf("%s: %d targets, want 1: %+v", tc.name, len(got), got)
		}
		if g := got[0]; g.Status != tc.status || !strings.HasPrefix(g.Measured, tc.measured) || g.Margin != tc.margin {
			t.Errorf("%s: got %+v; want %s, measured %q…, margin %q", tc.name, g, tc.status, tc.measured, tc.margin)
		}
	}
	if got := evaluateTargets([]scenarioSpec{s}, map[cellKey]cellStats{}); got[0].Status != statusNoData {
		t.Errorf("no data: %+v", got)
	}
}

// TestSilentCompareReport checks the silent rows' medians, sums and maxima
// and how the report shows them.
func TestSilentCompareReport(t *testing.T) {
	scen := selectScenarios(scenarioMatrix(), regexp.MustCompile(`^silent-2000$`))
	var records []runRecord
	add := func(b string, res benchResult) {
		for round := range 3 {
			r := res
			r.Scenario, r.Label = "silent", b
			r.BytesPerConn *= 1 + 0.1*float64(round-1) // the median is the middle round's
			r.HealthyMaxUS *= float64(round + 1)       // the maximum is the last round's
			r.HealthyAttempts = 15
			if round == 2 {
				r.HealthyFailed = res.HealthyFailed
			} else {
				r.HealthyFailed = 0
			}
			records = append(records, runRecord{Scenario: "silent-2000", Broker: b, Round: round, Result: r})
		}
	}
	add("vanemq", benchResult{BytesPerConn: 2000, BytesPerConnFromStart: 2500, BrokerRSSBytes: 40 << 20, ClosedByBroker: 6000,
		HealthyP50us: 300, HealthyMaxUS: 500})
	add("mochi", benchResult{BytesPerConn: 1 << 20, BytesPerConnFromStart: 1 << 20, BrokerRSSBytes: 2 << 30,
		HealthyP50us: 900, HealthyMaxUS: 20000, HealthyFailed: 2})
	add("mosquitto", benchResult{BytesPerConn: 4700, BytesPerConnFromStart: 4700, BrokerRSSBytes: 12 << 20,
		HealthyP50us: 200, HealthyMaxUS: 400})
	o := &compareOptions{rounds: 3, duration: 10 * time.Second, warmup: 2 * time.Second}
	rep := buildReport(envInfo{}, o, scen, brokerNames(), records)
	if c := rep.Cells[cellKey{"silent-2000", "mochi"}]; c.HealthyAttempts != 45 || c.HealthyFailed != 2 || c.HealthyMax != 60000 {
		t.Errorf("mochi cell %+v: want 45 attempts, 2 failed, max 60000 µs", c)
	}
	var b bytes.Buffer
	renderTables(&b, rep)
	for _, re := range []string{
		`## Silent connections \(medians\)`,
		`\| silent-2000 +\| vanemq +\| +2,000 \| +2,500 \| +40.0 MiB \| +6,000 \| +45/45 \| +300µs \| +1.5ms \| +3/3 \|`,
		`\| silent-2000 +\| mochi +\| +1,048,576 \| +1,048,576 \| +2048.0 MiB \| +0 \| +43/45 \| +900µs \| +60ms \| +3/3 \|`,
		`\| silent-2000 +\| bytes per silent connection \(lower is better\) +\| +2,000 \| +1,048,576 \| +4,700 \| +0.00× \| +0.43× \| +0.43× \(mosquitto\) \|`,
		`\| silent bytes/conn ≤ 8192, healthy client served +\| silent-2000 +\| PASS +\| 2,000 B \(2,500 B from the start\); healthy client served 45 of 45, connect max 1.5ms \(mosquitto 4,700 B\) +\| 6,192 B under +\|`,
	} {
		if !regexp.MustCompile(re).MatchString(b.String()) {
			t.Errorf("tables lack a line matching %s", re)
		}
	}
	if t.Failed() || testing.Verbose() {
		t.Log(b.String())
	}
	if err := checkResult(scen[0], benchResult{Scenario: "silent", HealthyAttempts: 15}); err != nil {
		t.Errorf("silent result: %v", err)
	}
	if err := checkResult(scen[0], benchResult{Scenario: "silent"}); err == nil || !strings.Contains(err.Error(), "no healthy client attempt") {
		t.Errorf("silent result without a healthy attempt: %v", err)
	}
}
