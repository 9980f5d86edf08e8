package main

import (
	"os"
	"strings"
	"testing"
	"time"
)

// TestParseProcStat checks utime+stime extraction from /proc/PID/stat lines.
func TestParseProcStat(t *testing.T) {
	cases := []struct {
		name string
		line string
		want uint64
		err  string
	}{
		{"plain", "11288 (vanemq) S 1 11288 706 0 -1 4194560 3105 0 0 0 5123 877 0 0 20 0 9 0 270898 2149152000 7655 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n", 6000, ""},
		{"name with spaces and parentheses", "42 (a (b) c) R 1 42 42 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 5 100 10 0", 10, ""},
		{"name ending in ) and digits", "42 (x) 1 2) S 1 42 42 0 -1 0 0 0 0 0 100 200 0 0", 300, ""},
		{"no parenthesis", "42 vanemq S 1", 0, "no ')'"},
		{"too short", "42 (vanemq) S 1 42 42 0 -1 0 0 0 0 0 5", 0, "fields after the command name"},
		{"not a number", "42 (vanemq) S 1 42 42 0 -1 0 0 0 0 0 x 3 0", 0, "utime"},
		{"empty", "", 0, "no ')'"},
	}
	for _, tc := range cases {
		got, err := parseProcStat(tc.line)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: error %v, want one mentioning %q", tc.name, err, tc.err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("%s: %d, %v; want %d", tc.name, got, err, tc.want)
		}
	}
}

// TestParseVmRSS checks the VmRSS extraction from /proc/PID/status.
func TestParseVmRSS(t *testing.T) {
	status := "Name:\tvanemq\nState:\tS (sleeping)\nVmPeak:\t 2149152 kB\nVmHWM:\t   31000 kB\nVmRSS:\t   30620 kB\nRssAnon:\t   20000 kB\n"
	cases := []struct {
		name   string
		status string
		want   int64
		err    string
	}{
		{"status", status, 30620 << 10, ""},
		{"no VmRSS (kernel thread)", "Name:\tkthreadd\nState:\tS (sleeping)\n", 0, "no VmRSS"},
		{"unit missing", "VmRSS:\t 12\n", 0, "is not"},
		{"not a number", "VmRSS:\t 1x2 kB\n", 0, "VmRSS"},
	}
	for _, tc := range cases {
		got, err := parseVmRSS(tc.status)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: error %v, want one mentioning %q", tc.name, err, tc.err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("%s: %d, %v; want %d", tc.name, got, err, tc.want)
		}
	}
}

// TestProcProbeSelf reads this process's own /proc entries.
func TestProcProbeSelf(t *testing.T) {
	p, err := newProcProbe(t.Context(), []int{os.Getpid()})
	if err != nil {
		t.Fatalf("newProcProbe: %v", err)
	}
	if p.ticks <= 0 {
		t.Errorf("clock ticks %d", p.ticks)
	}
	if rss, err := p.brokerRSS(); err != nil || rss <= 0 {
		t.Errorf("brokerRSS: %d, %v", rss, err)
	}
	// Burn a little CPU so that both clocks advance.
	deadline := time.Now().Add(50 * time.Millisecond)
	for n := 0; time.Now().Before(deadline); n++ {
		_ = n * n
	}
	s, err := p.sample()
	if err != nil || s.broker <= 0 || s.self <= 0 {
		t.Errorf("sample: %+v, %v; want positive CPU times", s, err)
	}
	none, err := newProcProbe(t.Context(), nil)
	if err != nil {
		t.Fatalf("newProcProbe(0): %v", err)
	}
	if rss, err := none.brokerRSS(); rss != 0 || err != nil {
		t.Errorf("without a pid: brokerRSS %d, %v; want 0, nil", rss, err)
	}
}

// TestWatchRSS checks the VmRSS watch of a hold: the highest reading of a
// live process, zero without a PID, and the error of a process that is
// gone.
func TestWatchRSS(t *testing.T) {
	self := &procProbe{pids: []int{os.Getpid()}, ticks: defaultClockTicks}
	now, err := self.brokerRSS()
	if err != nil {
		t.Fatal(err)
	}
	peak, err := self.watchRSS()()
	if err != nil || peak <= 0 || peak < now/2 {
		t.Errorf("own peak %d (%v), want near %d", peak, err, now)
	}
	if peak, err := (&procProbe{}).watchRSS()(); peak != 0 || err != nil {
		t.Errorf("without a PID: %d, %v; want 0, nil", peak, err)
	}
	if _, err := (&procProbe{pids: []int{2147483647}}).watchRSS()(); err == nil || !strings.Contains(err.Error(), "broker memory") {
		t.Errorf("gone: %v, want a broker memory error", err)
	}
}
