package js

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/logtest"
	"github.com/vanemq/vanemq/core/packets"
)

type logBuffer = logtest.Buffer

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

// failVerdict is what a failed call becomes under on_failure deny:
// refused with 0x83, and Transient, holding for that call only (the
// server does not cache a read verdict so made).
var failVerdict = core.Verdict{Decision: core.DecisionDeny, Code: packets.ImplementationSpecificError,
	Reason: "js hook failed", Transient: true}

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
		{"allow", core.Allow},
		{"deny", core.Deny(packets.NotAuthorized, "")},
		{"next", core.Next},
		{"null", core.Next},
		{"other", core.Next},
		{"obj-allow", core.Allow},
		{"obj-deny", core.Deny(0x97, "quota")},
		{"obj-deny-default", core.Deny(packets.NotAuthorized, "no")},
		{"fields", core.Allow},
		{"match", core.Allow},
		{"bytes", core.Allow},
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
	case "from": return Array.from({length: 2e7}).length > 0;
	case "buffer": return new ArrayBuffer(1 << 30).byteLength > 0;
	case "typed": return new Float64Array(1e9).length > 0;
	case "ok": return true;
	}
}`, Config{Timeout: 50 * time.Millisecond})
	fail := failVerdict
	for _, topic := range []string{"loop", "throw", "repeat", "fill", "pad", "number", "string", "array", "badcode", "typo", "noallow", "recurse", "from", "buffer", "typed"} {
		h.logged.Store(0) // log every failure here
		start := time.Now()
		if got := h.AuthorizePublish(context.Background(), alice, msg(topic, "")); got != fail {
			t.Errorf("%s: %+v, want the failure verdict", topic, got)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%s took %s", topic, d)
		}
		if got := h.AuthorizePublish(context.Background(), alice, msg("ok", "")); got != core.Allow {
			t.Fatalf("after %s the hook no longer works: %+v", topic, got)
		}
	}
	out := logs.String()
	for _, want := range []string{"timed out", "broken rule", "test.js:5:", "String.prototype.repeat", "test.js:6:", "Array.prototype.fill", "returned int64 42", "unknown field \\\"reasn\\\"", "call stack deeper than 256 calls at"} {
		if !strings.Contains(out, want) {
			t.Errorf("log does not mention %q:\n%s", want, out)
		}
	}
	for _, want := range []string{"Array.from: the result", "ArrayBuffer: the result", "Float64Array: the result"} {
		if !strings.Contains(out, want) {
			t.Errorf("log does not mention %q", want)
		}
	}
	if h.Failures() != 15 {
		t.Errorf("Failures = %d, want 15", h.Failures())
	}
}

// With on_failure next, a failed decision is no opinion.
func TestFailNext(t *testing.T) {
	h, _ := newHook(t, `function authorizePublish() { throw 1; }`, Config{OnFailure: core.FailNext})
	if got := h.AuthorizePublish(context.Background(), alice, msg("t", "")); got != (core.Verdict{Transient: true}) {
		t.Errorf("%+v, want Next, Transient", got)
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

// After Close a call fails at once (closed), it does not hang.
func TestCallAfterClose(t *testing.T) {
	h, _ := newHook(t, `function authorizePublish() { return true; }`, Config{})
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	done := make(chan core.Verdict, 1)
	go func() { done <- h.AuthorizePublish(context.Background(), alice, msg("t", "")) }()
	select {
	case v := <-done:
		if v.Decision != core.DecisionDeny {
			t.Errorf("after Close: %+v, want the failure verdict", v)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a call after Close hangs")
	}
}

// A message object kept past its call is detached: it reads as undefined,
// never as another call's message.
func TestMessageObjectDetached(t *testing.T) {
	h, _ := newHook(t, `
var kept;
function authorizePublish(c, m) {
	if (m.topic === "first") { kept = m; return true; }
	return kept.topic === undefined && kept.payload === undefined;
}`, Config{Pool: 1})
	h.AuthorizePublish(context.Background(), alice, msg("first", "a"))
	if got := h.AuthorizePublish(context.Background(), alice, msg("second", "b")); got != core.Allow {
		t.Errorf("a kept message object still reads its old message: %+v", got)
	}
}

// A typed array view gives the bytes of the view, not of its buffer.
func TestTypedArrayPayload(t *testing.T) {
	h, _ := newHook(t, `
function publish(c, m) {
	var all = new Uint16Array([0x4142, 0x4344, 0x4546, 0x4748]);
	return {payload: all.subarray(1, 2)};
}`, Config{})
	m := msg("t", "x")
	if v := h.Publish(context.Background(), alice, m); v != core.Next || len(m.Payload) != 2 {
		t.Errorf("%+v payload %x, want the view's 2 bytes", v, m.Payload)
	}
}

// With watch false the file is not watched, but SIGHUP still reloads.
func TestSIGHUPWithoutWatch(t *testing.T) {
	h, _ := newHook(t, `function authorizePublish() { return false; }`, Config{})
	writeScript(t, h.cfg.Script, `function authorizePublish() { return true; }`)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for h.AuthorizePublish(context.Background(), alice, msg("x", "")) != core.Allow {
		if time.Now().After(deadline) {
			t.Fatal("SIGHUP did not reload the script")
		}
		time.Sleep(10 * time.Millisecond) // polling, bounded by the deadline
	}
}
