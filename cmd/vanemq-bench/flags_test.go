package main

import (
	"bytes"
	"errors"
	"flag"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestParseBenchFlags checks parsing, defaults and validation.
func TestParseBenchFlags(t *testing.T) {
	cfg, err := parseBenchFlags([]string{"-scenario", "fanin"}, &bytes.Buffer{})
	if err != nil {
		t.Fatalf("defaults: %v", err)
	}
	want := benchConfig{
		Scenario: "fanin", Addr: "127.0.0.1:1883", SubAddr: "127.0.0.1:1883", Transport: "tcp", WSPath: "/mqtt", MQTT: 4, QoS: 0, Size: 64,
		Publishers: 8, Subscribers: 50, Pairs: 100, Conns: 10000, Duration: 10 * time.Second, Warmup: time.Second,
		Inflight: 100, Drain: 2 * time.Second, Hold: 2 * time.Second, Dialers: 64, Waves: 3, Send: "10faff3f",
		Topics: 1, TopicPattern: "bench/fanout",
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", cfg, want)
	}
	if cfg.rate() != 0 {
		t.Errorf("fanin rate %d, want 0 (flat out)", cfg.rate())
	}

	cfg, err = parseBenchFlags(strings.Fields("-scenario latency -addr 10.0.0.1:8883 -transport wss -ws-path /ws -tls-insecure "+
		"-mqtt 5 -qos 2 -size 8 -duration 3s -warmup 0 -inflight 7 -broker-pid 42 -label x -json"), &bytes.Buffer{})
	if err != nil {
		t.Fatalf("every flag: %v", err)
	}
	if cfg.Transport != "wss" || cfg.WSPath != "/ws" || !cfg.TLSInsecure || cfg.MQTT != 5 || cfg.QoS != 2 || cfg.Size != 8 ||
		cfg.Duration != 3*time.Second || cfg.Warmup != 0 || cfg.Inflight != 7 || !slices.Equal(cfg.BrokerPIDs, []int{42}) || cfg.Label != "x" || !cfg.JSON {
		t.Errorf("every flag: %+v", cfg)
	}
	if cfg.rate() != defaultLatencyRate {
		t.Errorf("latency rate %d, want %d", cfg.rate(), defaultLatencyRate)
	}

	// The silent scenario's -conns defaults to 2000; given, it is kept.
	for args, conns := range map[string]int{"-scenario silent": 2000, "-scenario silent -conns 10000": 10000, "-scenario conns": 10000} {
		cfg, err := parseBenchFlags(strings.Fields(args), &bytes.Buffer{})
		if err != nil || cfg.Conns != conns {
			t.Errorf("%q: -conns %d (%v), want %d", args, cfg.Conns, err, conns)
		}
	}
	cfg, err = parseBenchFlags([]string{"-scenario", "silent", "-waves", "1", "-send", "", "-silent-connect", "-hold", "0s"}, &bytes.Buffer{})
	if err != nil || cfg.Waves != 1 || cfg.Send != "" || !cfg.SilentConnect || cfg.Hold != 0 {
		t.Errorf("silent flags: %+v, %v", cfg, err)
	}

	bad := []struct {
		args string
		want string
	}{
		{"", "-scenario is required"},
		{"-scenario nope", `-scenario "nope" is not one of`},
		{"-scenario fanin -transport quic", `-transport "quic"`},
		{"-scenario fanin -mqtt 3", "-mqtt 3 is not 4 or 5"},
		{"-scenario fanin -qos 3", "-qos 3"},
		{"-scenario fanin -size 7", "-size 7"},
		{"-scenario fanin -publishers 0", "-publishers 0"},
		{"-scenario fanout -subscribers -1", "-subscribers -1"},
		{"-scenario pairs -pairs 0", "-pairs 0"},
		{"-scenario conns -conns 0", "-conns 0"},
		{"-scenario silent -conns 0", "-conns 0"},
		{"-scenario silent -waves 0", "-waves 0 is outside 1..1000"},
		{"-scenario silent -send 10fz", `-send "10fz" is not hex`},
		{"-scenario silent -send 10f", `-send "10f" is not hex`},
		{"-scenario fanin -duration 0s", "-duration 0s must be positive"},
		{"-scenario fanin -warmup -1s", "-warmup -1s"},
		{"-scenario fanin -rate -5", "-rate -5"},
		{"-scenario fanin -inflight 0", "-inflight 0"},
		{"-scenario fanin -inflight 65536", "-inflight 65536"},
		{"-scenario fanin -ws-path mqtt", "-ws-path"},
		{"-scenario fanin -dialers 0", "-dialers 0"},
		{"-scenario fanin extra", `unexpected argument "extra"`},
		{"-scenario fanout -topics 0", "-topics 0 is outside 1..1000000"},
		{"-scenario fanout -topics 2", "-topics 2 needs -filter"},
		{"-scenario fanout -topics 4 -filter # -topic-pattern a/{n},b", `makes "b" twice in -topics 4`},
		{"-scenario fanout -topic-pattern a/+", `-topic-pattern "a/+": topic 0, "a/+"`},
		{"-scenario fanout -topic-pattern a,,b -topics 3 -filter #", `topic 1, ""`},
		{"-scenario fanout -filter a/#/b", `-filter "a/#/b"`},
		{"-scenario fanin -password x", "-password needs -username"},
		{"-scenario fanin -bogus", "flag provided but not defined"},
		{"-scenario pairs -sub-addr 127.0.0.1", `-sub-addr "127.0.0.1"`},
		{"-scenario pairs -broker-pid x", `-broker-pid "x": "x" is not a process ID`},
		{"-scenario pairs -broker-pid 1,,2", `-broker-pid "1,,2": "" is not a process ID`},
		{"-scenario pairs -broker-pid 0", `-broker-pid "0": 0 is not a positive process ID`},
		{"-scenario pairs -broker-pid 7,-3", `-3 is not a positive process ID`},
		{"-scenario pairs -broker-pid 7,8,7", `-broker-pid "7,8,7": 7 twice`},
		{"-scenario pairs -broker-pid " + strings.Repeat("1,", maxPIDs) + "1", "PIDs, at most 64"},
	}
	for _, tc := range bad {
		var stderr bytes.Buffer
		_, err := parseBenchFlags(strings.Fields(tc.args), &stderr)
		if err == nil {
			t.Errorf("%q: no error", tc.args)
			continue
		}
		if msg := err.Error() + stderr.String(); !strings.Contains(msg, tc.want) {
			t.Errorf("%q: %q does not mention %q", tc.args, msg, tc.want)
		}
	}
	// Fan-out's topics and credentials.
	cfg, err = parseBenchFlags(strings.Fields("-scenario fanout -filter # -topics 5 -topic-pattern public/{n},sensors/{n}/t "+
		"-username u-{c} -password pw"), &bytes.Buffer{})
	if err != nil {
		t.Fatalf("fan-out topics: %v", err)
	}
	topics, err := cfg.fanoutTopics()
	if want := []string{"public/0", "sensors/0/t", "public/1", "sensors/1/t", "public/2"}; err != nil || !slices.Equal(topics, want) {
		t.Errorf("fanoutTopics = %q, %v; want %q", topics, err, want)
	}
	if plan := planMessages(&cfg); len(plan.pubTopics) != 1 || !slices.Equal(plan.pubTopics[0], topics) ||
		len(plan.subFilters) != 50 || plan.subFilters[0] != "#" || plan.fan != 50 {
		t.Errorf("plan = %+v", plan)
	}
	if u := cfg.username('s', 12); u != "u-s12" || cfg.Password != "pw" {
		t.Errorf("username('s', 12) = %q, password %q; want u-s12, pw", u, cfg.Password)
	}
	// By default fan-out is one topic, its subscribers' filter.
	cfg, _ = parseBenchFlags(strings.Fields("-scenario fanout"), &bytes.Buffer{})
	if plan := planMessages(&cfg); !slices.Equal(plan.pubTopics[0], []string{"bench/fanout"}) || plan.subFilters[0] != "bench/fanout" {
		t.Errorf("default fan-out plan = %+v", plan)
	}
	if u := cfg.username('s', 1); u != "" {
		t.Errorf("no -username: username %q", u)
	}

	// The subscribers connect to -sub-addr; -broker-pid sums a list.
	for _, tc := range []struct {
		args    []string
		subAddr string
		pids    []int
	}{
		{[]string{"-scenario", "pairs", "-addr", "127.0.0.1:1", "-sub-addr", "[::1]:2", "-broker-pid", "10,11,12"}, "[::1]:2", []int{10, 11, 12}},
		{[]string{"-scenario", "pairs", "-addr", "127.0.0.1:1", "-broker-pid", "10"}, "127.0.0.1:1", []int{10}},
		{[]string{"-scenario", "pairs", "-sub-addr", "127.0.0.1:3", "-broker-pid", " 4, 5"}, "127.0.0.1:3", []int{4, 5}},
		{[]string{"-scenario", "pairs"}, "127.0.0.1:1883", nil},
	} {
		cfg, err := parseBenchFlags(tc.args, &bytes.Buffer{})
		if err != nil || cfg.SubAddr != tc.subAddr || !slices.Equal(cfg.BrokerPIDs, tc.pids) {
			t.Errorf("%q: -sub-addr %q, -broker-pid %v (%v); want %q, %v", tc.args, cfg.SubAddr, cfg.BrokerPIDs, err, tc.subAddr, tc.pids)
		}
	}

	// A flag that only another scenario uses is not checked.
	if _, err := parseBenchFlags(strings.Fields("-scenario fanin -conns 0 -pairs 0"), &bytes.Buffer{}); err != nil {
		t.Errorf("fanin with -conns 0: %v", err)
	}
}

// TestRunCLIUsage checks the exit statuses of help and bad usage.
func TestRunCLIUsage(t *testing.T) {
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"-h"}, 0, "Usage: vanemq-bench -scenario"},
		{[]string{"-scenario", "nope"}, 2, "-scenario \"nope\""},
		{[]string{"-scenario", "fanin", "-addr", "no-port"}, 2, "-addr \"no-port\""},
	}
	for _, tc := range cases {
		var stdout, stderr bytes.Buffer
		if code := runCLI(t.Context(), tc.args, &stdout, &stderr); code != tc.code {
			t.Errorf("%q: exit status %d, want %d", tc.args, code, tc.code)
		}
		if !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%q: stderr %q does not mention %q", tc.args, stderr.String(), tc.want)
		}
	}
	if _, err := parseBenchFlags([]string{"-h"}, &bytes.Buffer{}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v, want flag.ErrHelp", err)
	}
}
