package js

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/packets"
)

// connect may set the client's policy: each field is checked, and a bad
// value fails the call with a message saying why, leaving the policy as
// it was.
func TestConnectPolicy(t *testing.T) {
	// The client's username is the body of the rule, run on the policy.
	h, logs := newHook(t, `
"use strict";
var kept; // one runtime: the next call sees it
function connect(client, policy) {
	if (client.username === "keep") { kept = policy; return; }
	if (client.username === "late") { kept.mountpoint = "x/"; return; }
	new Function("policy", '"use strict";' + client.username)(policy);
}`, Config{Pool: 1})
	given := core.ClientPolicy{MaxInflight: 5, Mountpoint: "m/"}
	tests := []struct {
		body  string
		want  core.ClientPolicy
		cause string // in the failure's log line; "" for a good call
	}{
		{`policy.mountpoint = "tenant-a/"`, core.ClientPolicy{MaxInflight: 5, Mountpoint: "tenant-a/"}, ""},
		{`policy.maxQueuedMessages = 100; policy.maxInflight = 10; policy.maxPacketSize = 4294967295; policy.sessionExpiryMax = 60.0`,
			core.ClientPolicy{MaxQueuedMessages: 100, MaxInflight: 10, MaxPacketSize: 4294967295, SessionExpiryMax: 60, Mountpoint: "m/"}, ""},
		{`if (policy.maxInflight !== 5 || policy.mountpoint !== "m/" || policy.maxPacketSize !== 0) throw new Error("read " + JSON.stringify(policy))`, given, ""},
		{`policy.mountpoint = ""`, core.ClientPolicy{MaxInflight: 5}, ""},
		{`policy.maxInflight = 65536`, given, "TypeError: policy.maxInflight: 65536 is not an integer from 0 to 65535"},
		{`policy.maxInflight = -1`, given, "policy.maxInflight: -1 is not an integer from 0 to 65535"},
		{`policy.maxQueuedMessages = 1.5`, given, "policy.maxQueuedMessages: 1.5 is not an integer from 0 to 2147483647"},
		{`policy.sessionExpiryMax = "60"`, given, "policy.sessionExpiryMax: string 60 is not a number"},
		{`policy.maxPacketSize = 4294967296`, given, "policy.maxPacketSize: 4294967296 is not an integer from 0 to 4294967295"},
		{`policy.mountpoint = 5`, given, "policy.mountpoint: int64 5 is not a string"},
		{`policy.mountpoint = "a/+/"`, given, `policy.mountpoint: "a/+/" holds a wildcard`},
		{`policy.mountpoint = "$SYS/"`, given, `policy.mountpoint: "$SYS/" starts with $`},
		{`policy.mountPoint = "x/"`, given, `policy has no field "mountPoint" (fields: mountpoint, maxQueuedMessages, maxInflight, maxPacketSize, sessionExpiryMax)`},
		{`policy.maxInflight = 9; throw new Error("after setting")`, given, "Error: after setting"},
		{`delete policy.maxInflight`, given, "TypeError"},
	}
	for _, tc := range tests {
		h.logged.Store(0) // log every failure, not one a second
		p := given
		got := h.Connect(context.Background(), &core.ClientInfo{ID: "c", Username: tc.body}, &p)
		if p != tc.want {
			t.Errorf("%s: policy %+v, want %+v", tc.body, p, tc.want)
		}
		if tc.cause == "" {
			if got != core.Next {
				t.Errorf("%s: %+v, want next", tc.body, got)
			}
			continue
		}
		if got != failVerdict {
			t.Errorf("%s: %+v, want the failure's refusal", tc.body, got)
		}
		if !logHas(logs, tc.cause) {
			t.Errorf("%s: the log lacks %q:\n%s", tc.body, tc.cause, logs)
		}
	}
	// The object is the call's: kept, it can no longer be set.
	h.Connect(context.Background(), &core.ClientInfo{ID: "c", Username: "keep"}, &core.ClientPolicy{})
	h.logged.Store(0)
	p := core.ClientPolicy{}
	if got := h.Connect(context.Background(), &core.ClientInfo{ID: "c", Username: "late"}, &p); got.Decision != core.DecisionDeny || p.Mountpoint != "" {
		t.Errorf("setting a kept policy: %+v %+v", got, p)
	}
	if !logHas(logs, "policy.mountpoint: the policy can only be set during connect") {
		t.Errorf("log:\n%s", logs)
	}
}

// enhancedAuth's return values: a verdict, an allowance with the server's
// data, or another round with a challenge; mixed or misspelt answers are
// bad return values.
func TestEnhancedAuthAnswers(t *testing.T) {
	h, logs := newHook(t, `
function enhancedAuth(client, step) {
	switch (step.data) {
	case "next": return;
	case "allow": return true;
	case "deny": return {allow: false, code: 0x8C, reason: "bad method"};
	case "round": return {continue: true, response: "nonce:" + step.method + ":" + step.reauth};
	case "bytes": return {continue: true, response: new Uint8Array([0, 255, 1]).subarray(1)};
	case "welcome": return {allow: true, response: step.dataBytes};
	case "continue-false": return {continue: false};
	case "continue-allow": return {continue: true, allow: true};
	case "deny-response": return {allow: false, response: "x"};
	case "response-number": return {continue: true, response: 5};
	case "typo": return {continu: true};
	}
	return "what";
}`, Config{})
	tests := []struct {
		data     string
		want     core.Verdict
		cont     bool
		response string
		cause    string
	}{
		{"next", core.Next, false, "", ""},
		{"allow", core.Allow, false, "", ""},
		{"deny", core.Deny(packets.BadAuthenticationMethod, "bad method"), false, "", ""},
		{"round", core.Next, true, "nonce:SCRAM:true", ""},
		{"bytes", core.Next, true, "\xff\x01", ""},
		{"welcome", core.Allow, false, "welcome", ""},
		{"continue-false", failVerdict, false, "", "enhancedAuth returned continue: false"},
		{"continue-allow", failVerdict, false, "", "enhancedAuth returned continue with allow"},
		{"deny-response", failVerdict, false, "", "enhancedAuth returned a response with allow: false"},
		{"response-number", failVerdict, false, "", "enhancedAuth returned response: a int64, want a string or bytes"},
		{"typo", failVerdict, false, "", `unknown field "continu"`},
		{"other", failVerdict, false, "", "enhancedAuth returned string what"},
	}
	for _, tc := range tests {
		h.logged.Store(0)
		step := &core.AuthStep{Method: "SCRAM", Data: []byte(tc.data), Reauth: true}
		got := h.EnhancedAuth(context.Background(), alice, step)
		if got != tc.want || step.Continue != tc.cont || string(step.Response) != tc.response {
			t.Errorf("%s: %+v continue %v response %q, want %+v %v %q", tc.data, got, step.Continue, step.Response, tc.want, tc.cont, tc.response)
		}
		if tc.cause != "" && !logHas(logs, tc.cause) {
			t.Errorf("%s: the log lacks %q:\n%s", tc.data, tc.cause, logs)
		}
	}
}

// deliver and will rewrite or drop as publish does, and a modifier may
// change the message's properties. deliver's first argument is the
// subscriber's client object, which in a string context is its client ID,
// as the ID string deliver got before (== and + go on working).
func TestModifiers(t *testing.T) {
	h, logs := newHook(t, `
"use strict";
function deliver(subscriber, msg) {
	if (subscriber == "muted") return false;
	if (subscriber.clientId === "quiet") return {allow: false, reason: "quiet"};
	if (subscriber.clientId === "wild") return {topic: "a/+"};
	if (subscriber.clientId === "number") return {topic: 7};
	return {topic: "for/" + subscriber + "/" + subscriber.username + "/" + msg.topic, payload: msg.payload + "!", qos: 0};
}
function will(client, msg) {
	if (msg.payload === "suppress") return false;
	return {topic: "wills/" + client.clientId, retain: true, properties: {contentType: "text/plain", messageExpiry: 30, userProperties: [{key: "from", value: client.clientId}]}};
}
function publish(client, msg) {
	switch (msg.topic) {
	case "clear": return {properties: {contentType: null, correlationData: null, userProperties: null}};
	case "set": return {properties: {payloadFormat: 1, responseTopic: "replies/1", correlationData: new Uint8Array([1, 2])}};
	case "bad-format": return {properties: {payloadFormat: 2}};
	case "bad-topic": return {properties: {responseTopic: "a/#"}};
	case "bad-field": return {properties: {contenttype: "x"}};
	case "bad-ups": return {properties: {userProperties: "k=v"}};
	}
}`, Config{})
	ctx := context.Background()
	m := msg("a/b", "hi")
	if got := h.Deliver(ctx, &core.ClientInfo{ID: "sub-1", Username: "bob"}, m); got != core.Next || m.Topic != "for/sub-1/bob/a/b" || string(m.Payload) != "hi!" || m.QoS != 0 {
		t.Errorf("deliver rewrite: %+v %+v", got, m)
	}
	if got := h.Deliver(ctx, &core.ClientInfo{ID: "muted"}, msg("a", "")); got.Decision != core.DecisionDeny {
		t.Errorf("deliver false: %+v", got)
	}
	if got := h.Deliver(ctx, &core.ClientInfo{ID: "quiet"}, msg("a", "")); got != core.Deny(packets.NotAuthorized, "quiet") {
		t.Errorf("deliver refusal: %+v", got)
	}
	for sub, cause := range map[string]string{
		"wild":   `deliver returned topic "a/+": invalid topic name: wildcard '+' at byte 2`,
		"number": "deliver returned topic int64 7; want a string",
	} {
		h.logged.Store(0)
		m := msg("a", "")
		if got := h.Deliver(ctx, &core.ClientInfo{ID: sub}, m); got.Decision != core.DecisionDeny || m.Topic != "a" {
			t.Errorf("deliver to %s: %+v %+v, want the failure's drop", sub, got, m)
		}
		if !logHas(logs, cause) {
			t.Errorf("deliver to %s: the log lacks %q:\n%s", sub, cause, logs)
		}
	}
	m = msg("will/x", "gone")
	if got := h.Will(ctx, alice, m); got != core.Next || m.Topic != "wills/dev-1" || !m.Retain ||
		m.Properties.ContentType != "text/plain" || !m.Properties.Has(packets.PropContentType) ||
		m.Properties.MessageExpiry != 30 || !m.Properties.Has(packets.PropMessageExpiry) ||
		len(m.Properties.UserProperties) != 1 || m.Properties.UserProperties[0] != (packets.UserProperty{Key: "from", Value: "dev-1"}) {
		t.Errorf("will rewrite: %+v %+v", got, m)
	}
	if got := h.Will(ctx, alice, msg("will/x", "suppress")); got.Decision != core.DecisionDeny {
		t.Errorf("will suppressed: %+v", got)
	}

	m = msg("clear", "")
	m.Properties.ContentType, m.Properties.CorrelationData = "text/plain", []byte("c")
	m.Properties.Set(packets.PropContentType)
	m.Properties.Set(packets.PropCorrelationData)
	m.Properties.UserProperties = []packets.UserProperty{{Key: "k", Value: "v"}}
	if got := h.Publish(ctx, alice, m); got != core.Next || m.Properties.Has(packets.PropContentType) ||
		m.Properties.Has(packets.PropCorrelationData) || len(m.Properties.UserProperties) != 0 {
		t.Errorf("clearing properties: %+v %+v", got, m.Properties)
	}
	m = msg("set", "")
	if got := h.Publish(ctx, alice, m); got != core.Next || m.Properties.PayloadFormat != 1 || m.Properties.ResponseTopic != "replies/1" ||
		string(m.Properties.CorrelationData) != "\x01\x02" || !m.Properties.Has(packets.PropResponseTopic) {
		t.Errorf("setting properties: %+v %+v", got, m.Properties)
	}
	for topic, cause := range map[string]string{
		"bad-format": "publish returned properties: payloadFormat 2; want 0 (bytes) or 1 (UTF-8)",
		"bad-topic":  `publish returned properties: responseTopic "a/#": invalid topic name: wildcard '#' at byte 2`,
		"bad-field":  `unknown field "contenttype"`,
		"bad-ups":    "publish returned properties: userProperties: a string, want an array of {key, value} strings",
	} {
		h.logged.Store(0)
		m := msg(topic, "")
		if got := h.Publish(ctx, alice, m); got.Decision != core.DecisionDeny || m.Topic != topic {
			t.Errorf("%s: %+v %+v, want the failure's drop", topic, got, m)
		}
		if !logHas(logs, cause) {
			t.Errorf("%s: the log lacks %q:\n%s", topic, cause, logs)
		}
	}
}

// Notifications get the Go methods' arguments.
func TestNotificationArguments(t *testing.T) {
	h, logs := newHook(t, `
function onSession(c, change) { log.info("session", c.clientId, change); }
function onUnsubscribed(c, s) { log.info("unsubscribed", c.clientId, s.filter); }
function onPublished(c, m) { log.info("published", c.clientId, m.topic, m.payload, m.received); }
function onAcked(id, m) { log.info("acked", id, m.topic, m.received); }
function onRetained(m) { log.info("retained", m.topic, m.payload.length); }
function onStarted() { log.info("started", arguments.length); }
function onStopped() { log.info("stopped", arguments.length); }
function onSysTick(st) { log.info("tick", st.clientsConnected, st.messagesIn, st.droppedBy.outbound_queue_full, st.refusedBy.max_subscriptions, st.messagesInByQoS.join(","), Object.isFrozen(st)); }
`, Config{})
	ctx := context.Background()
	for _, c := range []core.SessionChange{core.SessionCreated, core.SessionResumed, core.SessionTakenOver, core.SessionExpired} {
		h.OnSession(ctx, alice, c)
	}
	h.OnUnsubscribed(ctx, alice, "a/#")
	pm := msg("t/1", "p")
	pm.Received = time.UnixMilli(1700000000123)
	h.OnPublished(ctx, alice, pm)
	h.OnAcked(ctx, "dev-3", msg("t/2", ""))
	h.OnRetained(ctx, msg("t/3", ""))
	h.OnStarted(ctx)
	h.OnStopped(ctx)
	st := core.Stats{ClientsConnected: 3, MessagesIn: 40, MessagesInByQoS: [3]int64{1, 2, 3}}
	st.DroppedBy[core.DropOutboundQueueFull] = 7
	st.RefusedBy[core.LimitSubscriptions] = 2
	h.OnSysTick(ctx, st)
	out := logs.String()
	for _, want := range []string{
		`"session dev-1 created"`, `"session dev-1 resumed"`, `"session dev-1 takenOver"`, `"session dev-1 expired"`,
		`"unsubscribed dev-1 a/#"`, `"published dev-1 t/1 p 1700000000123"`, `"acked dev-3 t/2 undefined"`, `"retained t/3 0"`,
		`"started 0"`, `"stopped 0"`, `"tick 3 40 7 2 1,2,3 true"`,
	} {
		if !strings.Contains(out, "msg="+want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
	if h.Failures() != 0 {
		t.Errorf("%d failures:\n%s", h.Failures(), out)
	}
}

// logHas reports whether the log holds s, with the quotes the text
// handler escapes in quoted values unescaped.
func logHas(logs *logBuffer, s string) bool {
	return strings.Contains(strings.ReplaceAll(logs.String(), `\"`, `"`), s)
}
