package js

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/packets"
)

// authenticate, authorizeSubscribe (which may lower the QoS), connect
// and publish (which may change or drop a message) map onto the hook
// contract; the objects passed in cannot be changed by the script.
func TestEventFunctions(t *testing.T) {
	h, logs := newHook(t, `
"use strict";
function authenticate(client, cred) {
	if (cred.username === "alice" && cred.password === "secret" && cred.hasPassword) return true;
	if (cred.username === "mallory") return {allow: false, code: 0x86, reason: "bad user name or password"};
}
function authorizeSubscribe(client, sub) {
	if (sub.filter === "low/#") return {allow: true, qos: 0};
	if (sub.filter === "$SYS/#") return false;
	return true;
}
function connect(client) { return client.clientId.indexOf("banned") === 0 ? false : undefined; }
function publish(client, msg) {
	if (msg.topic === "drop") return false;
	if (msg.topic === "rename") return {topic: "renamed/" + client.username, payload: msg.payload.toUpperCase(), qos: 0, retain: true};
	if (msg.topic === "mutate") { msg.topic = "hacked"; return; }
	if (msg.topic === "props") return msg.properties.contentType === "text/plain" && msg.properties.userProperties[0].value === "v" ? undefined : false;
}`, Config{})
	ctx := context.Background()
	if got := h.Authenticate(ctx, alice, &core.Credentials{Username: "alice", UsernameSet: true, Password: []byte("secret"), PasswordSet: true}); got != core.Allow {
		t.Errorf("authenticate alice: %+v", got)
	}
	if got := h.Authenticate(ctx, alice, &core.Credentials{Username: "mallory"}); got != core.Deny(packets.BadUsernameOrPassword, "bad user name or password") {
		t.Errorf("authenticate mallory: %+v", got)
	}
	if got := h.Authenticate(ctx, alice, &core.Credentials{Username: "bob"}); got != core.Next {
		t.Errorf("authenticate bob: %+v, want no opinion", got)
	}
	qos := byte(2)
	if got := h.AuthorizeSubscribe(ctx, alice, "low/#", &qos); got != core.Allow || qos != 0 {
		t.Errorf("subscribe low/#: %+v QoS %d, want allowed at 0", got, qos)
	}
	qos = 1
	if got := h.AuthorizeSubscribe(ctx, alice, "$SYS/#", &qos); got.Decision != core.DecisionDeny {
		t.Errorf("subscribe $SYS/#: %+v", got)
	}
	if got := h.Connect(ctx, &core.ClientInfo{ID: "banned-1"}, &core.ClientPolicy{}); got.Decision != core.DecisionDeny {
		t.Errorf("connect banned: %+v", got)
	}
	if got := h.Connect(ctx, alice, &core.ClientPolicy{}); got != core.Next {
		t.Errorf("connect alice: %+v", got)
	}

	m := msg("rename", "hello")
	if got := h.Publish(ctx, alice, m); got != core.Next || m.Topic != "renamed/alice" || string(m.Payload) != "HELLO" || m.QoS != 0 || !m.Retain {
		t.Errorf("publish rename: %+v %+v", got, m)
	}
	m = msg("drop", "x")
	if got := h.Publish(ctx, alice, m); got.Decision != core.DecisionDeny || got.Code != packets.ImplementationSpecificError {
		t.Errorf("publish drop: %+v", got)
	}
	m = msg("mutate", "x")
	if got := h.Publish(ctx, alice, m); m.Topic != "mutate" {
		t.Errorf("a script changed the message object it was handed: %+v %+v", got, m)
	}
	if !strings.Contains(logs.String(), "Cannot assign") && !strings.Contains(logs.String(), "TypeError") {
		t.Errorf("assigning to a read-only object in strict mode was not an error:\n%s", logs)
	}
	m = msg("props", "x")
	m.Properties.ContentType = "text/plain"
	m.Properties.Set(packets.PropContentType)
	m.Properties.UserProperties = []packets.UserProperty{{Key: "k", Value: "v"}}
	if got := h.Publish(ctx, alice, m); got != core.Next {
		t.Errorf("publish props: %+v", got)
	}
}

// Notifications run the script; a failure is logged, nothing else.
func TestNotifications(t *testing.T) {
	h, logs := newHook(t, `
function onDisconnected(client, r) { log.info("bye", client.clientId, r.code, r.reason, r.error); }
function onSubscribed(client, s) { log.warn("sub", s.filter, s.qos); }
function onDropped(id, msg, why) { throw new Error("dropped " + id + " " + msg.topic + " " + why); }
`, Config{})
	ctx := context.Background()
	h.OnDisconnected(ctx, alice, packets.KeepAliveTimeout, errors.New("idle"))
	h.OnSubscribed(ctx, alice, "a/#", 1)
	h.OnDropped(ctx, "dev-9", msg("t/1", ""), "queue full")
	out := logs.String()
	for _, want := range []string{`msg="bye dev-1 141 keep alive timeout (0x8D) idle" script=test.js line=2`, `msg="sub a/# 1" script=test.js`, "dropped dev-9 t/1 queue full"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if h.Failures() != 1 {
		t.Errorf("Failures %d, want 1", h.Failures())
	}
}

// config is the hook's config block, frozen; topics limits the hook's
// message events.
func TestConfigAndTopics(t *testing.T) {
	h, _ := newHook(t, `
"use strict";
var topics = ["sensors/#", "cmd/+"];
function authorizePublish(c, m) {
	try { config.vars.admins.push("me"); return false; } catch (e) {}
	return config.vars.admins[1] === "root" && config.vars.limits.max === 3 && config.timeout === "1s" && config.script === "test.js";
}`, Config{Vars: map[string]any{"admins": []any{"ops", "root"}, "limits": map[string]any{"max": 3}}})
	if got := h.AuthorizePublish(context.Background(), alice, msg("sensors/1", "")); got != core.Allow {
		t.Errorf("config read: %+v", got)
	}
	if ts := h.Topics(); len(ts) != 2 || ts[0] != "sensors/#" || ts[1] != "cmd/+" {
		t.Errorf("Topics %v", ts)
	}
}

// The decision cache answers repeated decisions without calling the
// script, per connection and topic.
func TestDecisionCache(t *testing.T) {
	h, _ := newHook(t, `
var n = 0;
function authorizePublish(c, m) { n++; return m.topic !== "no"; }
function connect(c) { return {allow: true, reason: String(n)}; }`, Config{CacheTTL: 1e12, Pool: 1})
	ctx := context.Background()
	for range 5 {
		h.AuthorizePublish(ctx, alice, msg("yes", ""))
		h.AuthorizePublish(ctx, alice, msg("no", ""))
	}
	again := *alice // the same client connected again
	h.AuthorizePublish(ctx, &again, msg("yes", ""))
	if got := h.Connect(ctx, alice, nil); got.Reason != "" && got != core.Allow {
		t.Fatalf("%+v", got)
	}
	calls := scriptCounter(t, h)
	if calls != 3 {
		t.Errorf("the script ran %d times for 11 decisions on 3 keys, want 3", calls)
	}
	if got := h.AuthorizePublish(ctx, alice, msg("no", "")); got.Decision != core.DecisionDeny {
		t.Errorf("cached refusal: %+v", got)
	}
	// A connection's decisions go with it.
	c := h.cache.Load()
	if c.entries.Load() != 3 {
		t.Errorf("%d cached decisions, want 3", c.entries.Load())
	}
	h.OnDisconnected(ctx, alice, 0, nil)
	if _, ok := c.conns.Load(alice); ok || c.entries.Load() != 1 {
		t.Errorf("after the disconnect: %d decisions left, want 1 (the other connection's)", c.entries.Load())
	}
}

// scriptCounter reads the script's global n.
func scriptCounter(t *testing.T, h *Hook) int64 {
	t.Helper()
	p := h.cur.Load()
	v, err := p.get()
	if err != nil {
		t.Fatal(err)
	}
	defer p.put(v)
	return v.rt.Get("n").ToInteger()
}
