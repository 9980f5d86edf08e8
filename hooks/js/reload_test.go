package js

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vanemq/vanemq/core"
)

// writeScript replaces the script file the way editors and tools do: a
// new file renamed over the old.
func writeScript(t *testing.T, path, src string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// Reloading while calls run: no call fails and none is mis-decided; every
// call sees the old script or the new one.
func TestReloadUnderLoad(t *testing.T) {
	const v1 = `function authorizePublish(c, m) { return m.topic === "a"; }`
	const v2 = `function authorizePublish(c, m) { return m.topic === "a" || m.topic === "b"; }`
	// A generous timeout: the test is about the swap, and under -race on
	// two busy cores a trivial call can be descheduled past 10ms of wall
	// clock.
	h, logs := newHook(t, v1, Config{Pool: 2, Timeout: time.Second})
	path := h.cfg.Script
	var (
		wrong atomic.Int64
		calls atomic.Int64
		stop  = make(chan struct{})
		wg    sync.WaitGroup
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if h.AuthorizePublish(context.Background(), alice, msg("a", "")) != core.Allow {
					wrong.Add(1)
				}
				calls.Add(1)
			}
		}()
	}
	for i := range 20 {
		src := v1
		if i%2 == 0 {
			src = v2
		}
		writeScript(t, path, src)
		if err := h.Reload(); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
	}
	close(stop)
	wg.Wait()
	if wrong.Load() != 0 || h.Failures() != 0 {
		t.Fatalf("%d of %d calls mis-decided, %d failed during 20 reloads:\n%s", wrong.Load(), calls.Load(), h.Failures(), logs)
	}
	if calls.Load() == 0 {
		t.Fatal("no call ran")
	}
	// The last script (v1) is in force.
	if got := h.AuthorizePublish(context.Background(), alice, msg("b", "")); got.Decision != core.DecisionDeny {
		t.Errorf("after the last reload: %+v, want v1's refusal", got)
	}
}

// A reload that fails to compile keeps the old script and reports the
// file, line and column.
func TestReloadErrorKeepsOld(t *testing.T) {
	h, logs := newHook(t, `function authorizePublish() { return true; }`, Config{})
	writeScript(t, h.cfg.Script, "function authorizePublish() {\n  return (;\n}")
	err := h.Reload()
	if err == nil || !strings.Contains(err.Error(), "test.js: Line 2:11") {
		t.Fatalf("Reload: %v, want a syntax error at test.js line 2:11", err)
	}
	if !strings.Contains(logs.String(), "previous script stays in force") {
		t.Errorf("log:\n%s", logs)
	}
	if got := h.AuthorizePublish(context.Background(), alice, msg("x", "")); got != core.Allow {
		t.Errorf("after a failed reload: %+v, want the old script's answer", got)
	}
}

// Saving the file reloads it.
func TestReloadOnFileChange(t *testing.T) {
	yes := true
	h, _ := newHook(t, `function authorizePublish() { return false; }`, Config{Watch: &yes})
	writeScript(t, h.cfg.Script, `function authorizePublish() { return true; }`)
	deadline := time.Now().Add(10 * time.Second)
	for h.AuthorizePublish(context.Background(), alice, msg("x", "")) != core.Allow {
		if time.Now().After(deadline) {
			t.Fatal("the changed script was not loaded within 10s")
		}
		time.Sleep(10 * time.Millisecond) // polling, bounded by the deadline
	}
}

// A reload that adds or removes functions switches the server's pipeline
// to the new events, so the new function is called and a removed one
// costs nothing.
func TestReloadChangesEvents(t *testing.T) {
	srv, err := core.New(core.Options{Logger: slog.New(slog.DiscardHandler), SysInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "acl.js")
	writeScript(t, path, `function authorizePublish() { return true; }`)
	no := false
	h, err := New(Config{Script: path, Watch: &no}, srv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	if err := srv.AddHook(h, 50); err != nil {
		t.Fatal(err)
	}
	events := func() core.EventSet { return srv.Hooks()[0].Events }
	if ev := events(); !ev.Has(core.EventAuthorizePublish) || ev.Has(core.EventAuthorizeSubscribe) {
		t.Fatalf("events before: %b", ev)
	}
	writeScript(t, path, `var topics = ["x/#"]; function authorizeSubscribe() { return false; }`)
	if err := h.Reload(); err != nil {
		t.Fatal(err)
	}
	if ev := events(); ev.Has(core.EventAuthorizePublish) || !ev.Has(core.EventAuthorizeSubscribe) {
		t.Errorf("events after: %b, want authorize_subscribe instead of authorize_publish", ev)
	}
	if ts := srv.Hooks()[0].Topics; len(ts) != 1 || ts[0] != "x/#" {
		t.Errorf("topics after: %v", ts)
	}
}

// Calls wait for a free runtime, at most the wait; there are never more
// runtimes than the pool size.
func TestPoolBounded(t *testing.T) {
	h, logs := newHook(t, `
function authorizePublish(c, m) {
	var end = Date.now() + Number(m.payload);
	while (Date.now() < end) {}
	return true;
}`, Config{Pool: 1, Timeout: 400 * time.Millisecond, Wait: 400 * time.Millisecond})
	var wg sync.WaitGroup
	results := make([]core.Verdict, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = h.AuthorizePublish(context.Background(), alice, msg("t", "100"))
		}()
	}
	wg.Wait()
	if results[0] != core.Allow || results[1] != core.Allow {
		t.Fatalf("two 100ms calls on one runtime with a 400ms timeout: %+v", results)
	}
	// While the one runtime is held for 390ms, a call that may wait only
	// 50ms for it fails (closed), naming the pool.
	h2, logs2 := newHook(t, h.cfg.scriptSource(t), Config{Pool: 1, Timeout: time.Second, Wait: 50 * time.Millisecond})
	done := make(chan core.Verdict, 1)
	go func() { done <- h2.AuthorizePublish(context.Background(), alice, msg("t", "390")) }()
	p := h2.cur.Load()
	for deadline := time.Now().Add(10 * time.Second); len(p.free) != 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first call never took the runtime")
		}
	}
	if got := h2.AuthorizePublish(context.Background(), alice, msg("t", "0")); got.Decision != core.DecisionDeny {
		t.Errorf("call with no free runtime: %+v, want the failure verdict", got)
	}
	if got := <-done; got != core.Allow {
		t.Errorf("the call holding the runtime: %+v", got)
	}
	if !strings.Contains(logs2.String(), "no free runtime within the wait") {
		t.Errorf("log:\n%s", logs2)
	}
	_ = logs
	if n := len(h.cur.Load().vms); n != 1 {
		t.Errorf("%d runtimes for pool 1", n)
	}
}

// mqtt.publish publishes through the server, as the broker; publish is
// its old name, for scripts without a publish function of their own.
func TestPublishHelper(t *testing.T) {
	srv, err := core.New(core.Options{Logger: slog.New(slog.DiscardHandler), SysInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	got := make(chan core.InlineMessage, 2)
	if _, err := srv.Subscribe("joined/#", func(m core.InlineMessage) { got <- m }); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, script string }{
		{"publish", `function connect(c) { publish("joined/" + c.clientId, "hello " + c.username, {qos: 1, retain: true}); }`},
		{"mqtt.publish", `
function connect(c) { mqtt.publish("joined/" + c.clientId, "hello " + c.username, {qos: 1, retain: true}); }
function publish(c, m) { return {topic: "renamed"}; }`},
	} {
		path := filepath.Join(t.TempDir(), "hello.js")
		writeScript(t, path, tc.script)
		no := false
		h, err := New(Config{Script: path, Watch: &no}, srv)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = h.Close() })
		if v := h.Connect(context.Background(), alice, nil); v != core.Next {
			t.Fatalf("%s: connect: %+v", tc.name, v)
		}
		select {
		case m := <-got:
			if m.Topic != "joined/dev-1" || string(m.Payload) != "hello alice" || m.QoS != 1 {
				t.Errorf("%s: published %+v", tc.name, m)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s did not publish", tc.name)
		}
	}
}

// scriptSource returns the script the config names.
func (c *Config) scriptSource(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(c.Script)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
