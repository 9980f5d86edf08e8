package main

// Unit tests of the plugin, run in process over the same gRPC contract the
// broker uses (sdk/plugintest). examples/plugin's tests run the built
// binary in a broker.

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vanemq/vanemq/plugins/sdk"
	"github.com/vanemq/vanemq/plugins/sdk/plugintest"
)

// readLines reads the audit file's lines.
func readLines(t *testing.T, path string) []line {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []line
	for _, s := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		if s == "" {
			continue
		}
		d := json.NewDecoder(strings.NewReader(s))
		d.DisallowUnknownFields()
		var l line
		if err := d.Decode(&l); err != nil {
			t.Fatalf("audit line %q: %v", s, err)
		}
		out = append(out, l)
	}
	return out
}

// events are what the tests observe, and want the lines they should give.
func events() ([]sdk.Event, []line) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 123456789, time.FixedZone("CET", 3600))
	alice := &sdk.Client{ID: "pub-1", Username: "alice"}
	evs := []sdk.Event{
		{Kind: sdk.EventPublished, Client: alice, Time: at, Msg: &sdk.Message{Topic: "a/b", Payload: []byte("héllo"), QoS: 1, Origin: "pub-1"}},
		{Kind: sdk.EventPublished, Client: alice, Time: at, Msg: &sdk.Message{Topic: "a/bin", Payload: []byte{0xff, 0x00, 0x01}, Retain: true, Origin: "pub-1"}},
		// A message the broker published itself: no client.
		{Kind: sdk.EventPublished, Time: at, Msg: &sdk.Message{Topic: "a/sys", Payload: nil}},
		// Not a published message: ignored.
		{Kind: sdk.EventSubscribed, Client: alice, Filter: "a/#", Time: at},
	}
	want := []line{
		{Time: "2026-12-01T09:00:00.123456789Z", ClientID: "pub-1", Username: "alice", Topic: "a/b", QoS: 1, Payload: "héllo"},
		{Time: "2026-12-01T09:00:00.123456789Z", ClientID: "pub-1", Username: "alice", Topic: "a/bin", Retain: true, PayloadBase64: "/wAB"},
		{Time: "2026-12-01T09:00:00.123456789Z", Topic: "a/sys"},
	}
	return evs, want
}

// The plugin observes published messages on its topics, and appends one
// line per message; flushed after each event by default, so the lines
// are in the file as soon as Observe has returned.
func TestObserveWritesLines(t *testing.T) {
	file := filepath.Join(t.TempDir(), "audit.jsonl")
	if err := os.WriteFile(file, []byte(`{"time":"x","client_id":"","username":"","topic":"old","qos":0,"retain":false}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := plugintest.Start(t, &auditPlugin{}, map[string]any{"file": file, "topics": []string{"a/#"}})
	d := h.Description()
	wantDesc := sdk.Description{Name: "audit", Handlers: []sdk.Handler{{Event: sdk.EventPublished, Mode: sdk.ModeObserver, Topics: []string{"a/#"}},
		{Event: sdk.EventStopped, Mode: sdk.ModeObserver}}}
	if !reflect.DeepEqual(d, wantDesc) {
		t.Fatalf("description %+v, want %+v", d, wantDesc)
	}
	evs, want := events()
	h.Observe(evs...)
	got := readLines(t, file)
	if len(got) == 0 || got[0].Topic != "old" {
		t.Fatalf("the file's earlier line is gone: %+v", got)
	}
	if !reflect.DeepEqual(got[1:], want) {
		t.Errorf("audit lines\n got %+v\nwant %+v", got[1:], want)
	}
}

// With flush_interval, lines reach the file within the interval.
func TestFlushInterval(t *testing.T) {
	file := filepath.Join(t.TempDir(), "audit.jsonl")
	h := plugintest.Start(t, &auditPlugin{}, map[string]any{"file": file, "flush_interval": "20ms"})
	evs, want := events()
	h.Observe(evs...)
	deadline := time.Now().Add(5 * time.Second)
	for len(readLines(t, file)) < len(want) {
		if time.Now().After(deadline) {
			t.Fatalf("lines not flushed: %+v", readLines(t, file))
		}
		time.Sleep(10 * time.Millisecond) // polling, bounded
	}
	if got := readLines(t, file); !reflect.DeepEqual(got, want) {
		t.Errorf("audit lines\n got %+v\nwant %+v", got, want)
	}
}

// The broker's last event, stopped, flushes what the buffer holds: with a
// flush interval longer than the test, the lines are in the file as soon
// as the stopped event has been observed.
func TestStoppedFlushes(t *testing.T) {
	file := filepath.Join(t.TempDir(), "audit.jsonl")
	h := plugintest.Start(t, &auditPlugin{}, map[string]any{"file": file, "flush_interval": "1m"})
	evs, want := events()
	h.Observe(evs...)
	h.Observe(sdk.Event{Kind: sdk.EventStopped, Time: time.Now()})
	if got := readLines(t, file); !reflect.DeepEqual(got, want) {
		t.Errorf("audit lines after stopped\n got %+v\nwant %+v", got, want)
	}
}

// A bad config block makes Init fail (and the broker not start).
func TestBadConfig(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		cfg  map[string]any
		want string
	}{
		{map[string]any{}, "file: required"},
		{map[string]any{"file": filepath.Join(dir, "no", "such", "dir.jsonl")}, "no such file or directory"},
		{map[string]any{"file": filepath.Join(dir, "a"), "flush_interval": "soon"}, `flush_interval: "soon"`},
		{map[string]any{"file": filepath.Join(dir, "a"), "flush_interval": "-1s"}, `flush_interval: "-1s"`},
		{map[string]any{"file": filepath.Join(dir, "a"), "topic": "x"}, `unknown field "topic"`},
	}
	for _, tc := range tests {
		b, err := json.Marshal(tc.cfg)
		if err != nil {
			t.Fatal(err)
		}
		_, err = (&auditPlugin{}).Init(context.Background(), sdk.InitRequest{Config: b})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Init(%s): %v, want an error with %q", b, err, tc.want)
		}
	}
}
