package js

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/packets"
)

// logBuffer collects log lines for checks.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// newHook writes script to a temp file and makes a hook for it.
func newHook(t testing.TB, script string, cfg Config) (*Hook, *logBuffer) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "test.js")
	if err := os.WriteFile(path, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	cfg.Script = path
	if cfg.Timeout == 0 {
		// The timeout is wall clock: on a shared two-core machine under
		// -race a trivial call is now and then descheduled for more than
		// the 10ms default. Tests of the timeout set their own.
		cfg.Timeout = time.Second
	}
	no := false
	if cfg.Watch == nil {
		cfg.Watch = &no
	}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h, err := New(cfg, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h, logs
}

var alice = &core.ClientInfo{ID: "dev-1", Username: "alice", Listener: "tcp", Remote: "127.0.0.1:5000", ProtocolVersion: 5}

func msg(topic, payload string) *core.Message {
	return &core.Message{Topic: topic, Payload: []byte(payload), QoS: 1, Origin: "dev-1"}
}

// Return values map onto verdicts.
func TestDecisions(t *testing.T) {
	h, _ := newHook(t, `
function authorizePublish(client, msg) {
	switch (msg.topic) {
	case "allow": return true;
	case "deny": return false;
	case "next": return undefined;
	case "null": return null;
	case "obj-allow": return {allow: true};
	case "obj-deny": return {allow: false, reason: "quota", code: 0x97};
	case "obj-deny-default": return {allow: false, reason: "no"};
	case "fields": return client.clientId + "|" + client.username + "|" + client.listener + "|" + client.remoteAddr + "|" + client.protocolVersion + "|" + msg.payload + "|" + msg.qos + "|" + msg.retain + "|" + msg.origin === "dev-1|alice|tcp|127.0.0.1:5000|5|hi|1|false|dev-1";
	case "match": return mqtt.match("users/+/#", "users/alice/x") && !mqtt.match("users/+", "users/alice/x");
	case "bytes": return new Uint8Array(msg.payloadBytes)[0] === 104;
	}
}`, Config{})
	tests := []struct {
		topic string
		want  core.Verdict
	}{
		{"allow", core.Permit},
		{"deny", core.Refuse(packets.NotAuthorized, "")},
		{"next", core.Pass},
		{"null", core.Pass},
		{"other", core.Pass},
		{"obj-allow", core.Permit},
		{"obj-deny", core.Refuse(0x97, "quota")},
		{"obj-deny-default", core.Refuse(packets.NotAuthorized, "no")},
		{"fields", core.Permit},
		{"match", core.Permit},
		{"bytes", core.Permit},
	}
	for _, tc := range tests {
		if got := h.AuthorizePublish(context.Background(), alice, msg(tc.topic, "hi")); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.topic, got, tc.want)
		}
	}
	if h.Failures() != 0 {
		t.Errorf("%d failures", h.Failures())
	}
	if ev := h.Events(); !ev.Has(core.EventAuthorizePublish) || ev.Has(core.EventAuthenticate) || ev.Has(core.EventPublish) {
		t.Errorf("events %b: want authorize_publish only (and stopped)", ev)
	}
}

// A timeout, a throw, a huge allocation, a bad return value, deep
// recursion: the decision fails closed (0x83), the log names the script
// and line, and the hook goes on working.
func TestFailuresFailClosed(t *testing.T) {
	h, logs := newHook(t, `
function authorizePublish(client, msg) {
	switch (msg.topic) {
	case "loop": for (;;) {}
	case "throw": throw new Error("broken rule");
	case "repeat": return "x".repeat(1e9).length > 0;
	case "fill": return new Array(5e7).fill(0).length > 0;
	case "pad": return "x".padStart(1e9).length > 0;
	case "number": return 42;
	case "string": return "yes";
	case "array": return [true];
	case "badcode": return {allow: false, code: 0x10};
	case "typo": return {allow: false, reasn: "x"};
	case "noallow": return {reason: "x"};
	case "recurse": return (function f(n) { return f(n + 1); })(0);
	case "ok": return true;
	}
}`, Config{Timeout: 50 * time.Millisecond})
	fail := core.Refuse(packets.ImplementationSpecificError, "js hook failed")
	for _, topic := range []string{"loop", "throw", "repeat", "fill", "pad", "number", "string", "array", "badcode", "typo", "noallow", "recurse"} {
		h.logged.Store(0) // log every failure here
		start := time.Now()
		if got := h.AuthorizePublish(context.Background(), alice, msg(topic, "")); got != fail {
			t.Errorf("%s: %+v, want the failure verdict", topic, got)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%s took %s", topic, d)
		}
		if got := h.AuthorizePublish(context.Background(), alice, msg("ok", "")); got != core.Permit {
			t.Fatalf("after %s the hook no longer works: %+v", topic, got)
		}
	}
	out := logs.String()
	for _, want := range []string{"timed out", "broken rule", "test.js:5:", "String.prototype.repeat", "test.js:6:", "Array.prototype.fill", "returned int64 42", "unknown field \\\"reasn\\\"", "call stack deeper than 256 calls at"} {
		if !strings.Contains(out, want) {
			t.Errorf("log does not mention %q:\n%s", want, out)
		}
	}
	if h.Failures() != 12 {
		t.Errorf("Failures = %d, want 12", h.Failures())
	}
}

// With on_failure next, a failed decision is no opinion.
func TestFailNext(t *testing.T) {
	h, _ := newHook(t, `function authorizePublish() { throw 1; }`, Config{OnFailure: FailNext})
	if got := h.AuthorizePublish(context.Background(), alice, msg("t", "")); got != core.Pass {
		t.Errorf("%+v, want Pass", got)
	}
}

// A script that does not compile, throws while loading, defines no hook
// function, or is missing: New fails naming the file (and line:column).
func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name, script, want string
	}{
		{"syntax", "function authorizePublish( {\n}", "test.js: Line 2:2"},
		{"throws", "throw new Error('no config');\nfunction authorizePublish() {}", "no config at "},
		{"nothing", "var x = 1;", "defines none of the hook functions"},
		{"bad topics", "var topics = ['a/#/b']; function authorizePublish() {}", `topics: "a/#/b"`},
		{"loop at load", "for(;;){}", "timed out"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "test.js")
			if err := os.WriteFile(path, []byte(tc.script), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := New(Config{Script: path, Timeout: 10 * time.Millisecond}, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "test.js") {
				t.Fatalf("New: %v, want an error naming test.js and %q", err, tc.want)
			}
		})
	}
	_, err := New(Config{Script: filepath.Join(t.TempDir(), "missing.js")}, nil)
	if err == nil || !strings.Contains(err.Error(), "missing.js") {
		t.Fatalf("missing file: %v", err)
	}
}
