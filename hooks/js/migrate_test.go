package js

import (
	"context"
	"strings"
	"testing"

	"github.com/vanemq/vanemq/core"
)

// A deliver function that uses its first argument as the ID string it
// was is found; one that uses the client object, or the ID in a string
// context (where the object is its ID), is not.
func TestOldDeliverUse(t *testing.T) {
	for _, tc := range []struct {
		src, param, use string
	}{
		{`function deliver(sub, msg) { if (sub === "muted") return false; }`, "sub", `sub ===`},
		{`function deliver(sub, msg) { if ("muted" !== sub) return; }`, "sub", `!== sub`},
		{`function (s, m) { return typeof s === "string"; }`, "s", `typeof s`},
		{`function deliver(sub) { return sub.indexOf("a") === 0; }`, "sub", `sub.indexOf`},
		{`(s, m) => s === "y"`, "s", `s ===`},
		{`s => s.startsWith("x")`, "s", `s.startsWith`},
		{`async function deliver($s) { return $s.length > 3; }`, "$s", `$s.length`},
		{`function deliver(client, msg) { if (client.clientId === "muted") return false; }`, "client", ""},
		{`function deliver(client, msg) { if ("muted" === client.clientId) return false; }`, "client", ""},
		{`function deliver(client, msg) { return client == "muted" ? false : {topic: "for/" + client}; }`, "client", ""},
		{`function deliver(client, msg) { return client.username.indexOf("a") === 0; }`, "client", ""},
		{`function deliver(c, msg) { var cc = 1; return cc === 1 || msg.topic === c.clientId; }`, "c", ""},
		{`function deliver() { return false; }`, "", ""},
	} {
		param, use, ok := oldDeliverUse(tc.src)
		if param != tc.param || use != tc.use || ok != (tc.use != "") {
			t.Errorf("%s: %q %q %v, want %q %q", tc.src, param, use, ok, tc.param, tc.use)
		}
	}
}

// Loading a script whose deliver treats its first argument as a string
// warns, naming the script, the use and what to write instead; the ID
// still works in a string context.
func TestOldDeliverWarns(t *testing.T) {
	h, logs := newHook(t, `
function deliver(subscriber, msg) {
	if (subscriber === "muted") return false;
	if (subscriber == "quiet") return false;
	return {topic: "for/" + subscriber};
}`, Config{})
	out := logs.String()
	want := `level=WARN msg="deliver's first argument is the subscriber's client object, no longer its client ID: compare subscriber.clientId`
	if !strings.Contains(out, want) || !strings.Contains(out, "script="+h.cfg.Script) || !strings.Contains(out, `use="subscriber ==="`) {
		t.Errorf("log lacks the warning %s:\n%s", want, out)
	}
	ctx := context.Background()
	if got := h.Deliver(ctx, &core.ClientInfo{ID: "quiet"}, msg("a", "")); got.Decision != core.DecisionDeny {
		t.Errorf("== with the ID: %+v, want the delivery dropped", got)
	}
	m := msg("a", "")
	if got := h.Deliver(ctx, &core.ClientInfo{ID: "muted"}, m); got != core.Next || m.Topic != "for/muted" {
		t.Errorf("=== with the ID: %+v %s, want it never true (the case the warning is for)", got, m.Topic)
	}

	_, logs = newHook(t, `function deliver(client, msg) { if (client.clientId === "muted") return false; }`, Config{})
	if strings.Contains(logs.String(), "first argument") {
		t.Errorf("a deliver using the client object warned:\n%s", logs)
	}
}

// A client object is its client ID in every string context, and what
// makes it so cannot be changed by a script.
func TestClientAsString(t *testing.T) {
	h, logs := newHook(t, `
"use strict";
function deliver(c, m) {
	if (m.topic === "proto") { Object.getPrototypeOf(c).toString = function () { return "x"; }; return; }
	return {topic: [String(c), `+"`${c}`"+`, c.toString(), "" + c, c == "sub-1", JSON.stringify(c.clientId)].join("|")};
}`, Config{})
	ctx := context.Background()
	m := msg("a", "")
	if got := h.Deliver(ctx, &core.ClientInfo{ID: "sub-1"}, m); got != core.Next || m.Topic != `sub-1|sub-1|sub-1|sub-1|true|"sub-1"` {
		t.Errorf("%+v %s", got, m.Topic)
	}
	if got := h.Deliver(ctx, &core.ClientInfo{ID: "sub-1"}, msg("proto", "")); got != failVerdict {
		t.Errorf("changing the prototype: %+v, want the failure", got)
	}
	if !logHas(logs, "TypeError") {
		t.Errorf("log:\n%s", logs)
	}
}
