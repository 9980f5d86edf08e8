package js

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/packets"
)

// Every core event has a script function, named as the event's Go
// method in camelCase: "on" on notifications only.
func TestFunctionNames(t *testing.T) {
	seen := map[string]core.Event{}
	n := 0
	for e := range core.AllEvents().All() {
		n++
		name := Function(e)
		m := e.Method()
		want := string(unicode.ToLower(rune(m[0]))) + m[1:]
		if name != want {
			t.Errorf("%s: function %q, want %q (the Go method %s in camelCase)", e, name, want, m)
		}
		if on := strings.HasPrefix(name, "on"); on != (e.Kind() == core.KindNotification) {
			t.Errorf("%s (%s): function %q: only notifications begin with on", e, e.Kind(), name)
		}
		if other, dup := seen[name]; dup {
			t.Errorf("%s and %s are both %q", other, e, name)
		}
		seen[name] = e
	}
	if n != int(numFns) {
		t.Errorf("core has %d events, the script %d functions", n, numFns)
	}
	for f, s := range fnSpecs {
		if s.event != core.Event(f) {
			t.Errorf("fnSpecs[%d] is %s's, want them in core's order", f, s.event)
		}
	}
	if got := Function(core.Event(200)); got != "" {
		t.Errorf("Function of an unknown event: %q", got)
	}
}

// Events lists exactly the events of the functions the script defines:
// the broker's publish helper is not a publish function, and a global
// that is not a function is no function.
func TestEventsAreTheScriptsFunctions(t *testing.T) {
	var all strings.Builder
	for e := range core.AllEvents().All() {
		all.WriteString("function " + Function(e) + "() {}\n")
	}
	for _, tc := range []struct {
		name, script string
		want         core.EventSet
	}{
		{"all", all.String(), core.AllEvents()},
		{"one", `function authorizePublish() { publish("x", "y"); }`, core.Events(core.EventAuthorizePublish)},
		{"notifications", `function onStarted() {} var onStopped = function () {}; const onSysTick = () => {}; var will = 3;`,
			core.Events(core.EventStarted, core.EventStopped, core.EventSysTick)},
		{"publish", `function publish(c, m) { mqtt.publish("copy", m.payload); }`, core.Events(core.EventPublish)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, _ := newHook(t, tc.script, Config{})
			if got := h.Events(); got != tc.want {
				t.Errorf("Events: %s, want %s", got, tc.want)
			}
		})
	}
	// The decision cache adds disconnected, to forget a connection's
	// decisions.
	h, _ := newHook(t, `function authorizePublish() {}`, Config{CacheTTL: 1e9})
	if got, want := h.Events(), core.Events(core.EventAuthorizePublish, core.EventDisconnected); got != want {
		t.Errorf("Events with the cache: %s, want %s", got, want)
	}
}

// The old names still work, as the new ones; the load warns once per old
// name, naming the new one.
func TestOldFunctionNames(t *testing.T) {
	h, logs := newHook(t, `
function onConnect(c) { return c.clientId === "no" ? false : undefined; }
function onPublish(c, m) { return {topic: "renamed"}; }
function onDisconnect(c, r) { log.info("bye", c.clientId); }
function onMessageDropped(id, m, why) { log.info("dropped", id, why); }
`, Config{})
	want := core.Events(core.EventConnect, core.EventPublish, core.EventDisconnected, core.EventDropped)
	if got := h.Events(); got != want {
		t.Errorf("Events: %s, want %s", got, want)
	}
	ctx := context.Background()
	if got := h.Connect(ctx, &core.ClientInfo{ID: "no"}, nil); got.Decision != core.DecisionDeny {
		t.Errorf("onConnect: %+v", got)
	}
	m := msg("t", "x")
	if got := h.Publish(ctx, alice, m); got != core.Next || m.Topic != "renamed" {
		t.Errorf("onPublish: %+v %s", got, m.Topic)
	}
	h.OnDisconnected(ctx, alice, packets.Success, nil)
	h.OnDropped(ctx, "dev-2", msg("t", ""), "queue full")
	out := logs.String()
	for old, now := range map[string]string{"onConnect": "connect", "onPublish": "publish", "onDisconnect": "onDisconnected", "onMessageDropped": "onDropped"} {
		line := `level=WARN msg="script function under its old name; rename it" script=` + h.cfg.Script + " function=" + old + " new_name=" + now
		if n := strings.Count(out, line); n != 1 {
			t.Errorf("%d lines %q, want 1:\n%s", n, line, out)
		}
	}
	for _, want := range []string{`msg="bye dev-1"`, `msg="dropped dev-2 queue full"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
}

// A script with both a function's name and its old name is refused,
// naming the file and both names.
func TestBothFunctionNames(t *testing.T) {
	path := filepath.Join(t.TempDir(), "both.js")
	if err := os.WriteFile(path, []byte(`function connect() {} function onConnect() {}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := New(Config{Script: path}, nil)
	if err == nil || !strings.Contains(err.Error(), path+" defines both connect and onConnect, the old name of connect: keep connect only") {
		t.Fatalf("New: %v, want the file and both names", err)
	}
}
