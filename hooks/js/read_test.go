package js

import (
	"context"
	"testing"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/packets"
)

// authorizeRead(client, topic) (issue 17): read permission, asked at
// delivery for each subscriber.

// readScript denies reading secret/#, and private/USER/# to other users
// than USER.
const readScript = `
"use strict";
function authorizeRead(client, topic) {
	if (mqtt.match("secret/#", topic)) return false;
	if (mqtt.match("private/#", topic) && topic.indexOf("private/" + client.username + "/") !== 0)
		return {allow: false, code: 0x87, reason: "not yours"};
}`

// authorizeRead returns a decision's verdicts (authorizeSubscribe's, with
// no qos); it gets the subscriber's client object and the topic, and a
// bad return value is a failure, Transient.
func TestAuthorizeReadVerdicts(t *testing.T) {
	h, logs := newHook(t, `
"use strict";
function authorizeRead(client, topic) {
	switch (topic) {
	case "next": return;
	case "allow": return true;
	case "deny": return false;
	case "object": return {allow: false, code: 0x97, reason: "quota " + client.clientId + " " + client.username};
	case "qos": return {allow: true, qos: 0};
	case "throw": throw new Error("no rules");
	}
	return "what";
}`, Config{})
	restored := &core.ClientInfo{ID: "dev-2", Username: "bob"} // a session restored from storage
	for _, tc := range []struct {
		topic string
		cl    *core.ClientInfo
		want  core.Verdict
		cause string
	}{
		{"next", alice, core.Next, ""},
		{"allow", alice, core.Allow, ""},
		{"deny", alice, core.Deny(packets.NotAuthorized, ""), ""},
		{"object", alice, core.Deny(packets.QuotaExceeded, "quota dev-1 alice"), ""},
		{"object", restored, core.Deny(packets.QuotaExceeded, "quota dev-2 bob"), ""},
		{"qos", alice, failVerdict, "authorizeRead returned a qos, which only authorizeSubscribe may"},
		{"throw", alice, failVerdict, "Error: no rules"},
		{"other", alice, failVerdict, "authorizeRead returned string what"},
	} {
		h.logged.Store(0)
		if got := h.AuthorizeRead(context.Background(), tc.cl, tc.topic); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.topic, got, tc.want)
		}
		if tc.cause != "" && !logHas(logs, tc.cause) {
			t.Errorf("%s: the log lacks %q:\n%s", tc.topic, tc.cause, logs)
		}
	}
	if got := h.Events(); got != core.Events(core.EventAuthorizeRead) {
		t.Errorf("Events %s, want authorize_read", got)
	}
}

// A subscription to # is granted, and the script filters what reaches it
// at delivery, against the subscriber: public/x and its own private topic
// arrive, secret/x and another user's do not; retained messages sent on
// subscribe are checked alike.
func TestE2EAuthorizeRead(t *testing.T) {
	b := serve(t, readScript, core.Options{AllowAnonymous: true})
	alice := b.mustConnect(t, "a-1", "alice", nil)
	alice.subscribe(t, "#")
	pub := b.mustConnect(t, "pub", "", nil)
	for _, topic := range []string{"secret/x", "public/x", "private/bob/x", "private/alice/x", "end"} {
		pub.publish(t, topic, "hi", false)
	}
	alice.expect(t, "public/x", "hi")
	alice.expect(t, "private/alice/x", "hi")
	alice.expect(t, "end", "hi")
	if n := b.srv.Stats().DroppedBy[core.DropNotAuthorized]; n != 2 {
		t.Errorf("dropped not_authorized %d, want 2 (secret/x, private/bob/x)", n)
	}

	pub.publish(t, "secret/r", "kept", true)
	pub.publish(t, "public/r", "kept", true)
	bob := b.mustConnect(t, "b-1", "bob", nil)
	bob.subscribe(t, "#")
	pub.publish(t, "end", "bye", false)
	bob.expect(t, "public/r", "kept")
	bob.expect(t, "end", "bye")
}

// A read decision the script fails (it throws; on_failure deny) drops that
// delivery, but is not cached: the next message on the topic asks the
// script again, which now answers, and the subscriber receives it, with
// no InvalidateAuthorization.
func TestE2EAuthorizeReadFailureNotCached(t *testing.T) {
	// One runtime, so the script's state is the same for every call.
	b := serveWith(t, `
"use strict";
var failures = 1;
function authorizeRead(client, topic) {
	if (failures > 0) { failures--; throw new Error("the rules are not loaded yet"); }
	return true;
}`, core.Options{AllowAnonymous: true}, Config{Pool: 1, OnFailure: core.FailDeny})
	sub := b.mustConnect(t, "sub", "", nil)
	sub.subscribe(t, "#")
	pub := b.mustConnect(t, "pub", "", nil)
	pub.publish(t, "public/x", "while failing", false)
	b.waitLog(t, `function=authorizeRead client=sub detail=public/x cause="Error: the rules are not loaded yet`)
	pub.publish(t, "public/x", "recovered", false)
	sub.expect(t, "public/x", "recovered")
	if n := b.srv.Stats().DroppedBy[core.DropNotAuthorized]; n != 1 {
		t.Errorf("dropped not_authorized %d, want 1", n)
	}
}

// Reloading the script has the server forget the old script's read
// verdicts: a topic allowed before is refused after, and one refused
// before is allowed.
func TestE2EAuthorizeReadReload(t *testing.T) {
	b := serve(t, readScript, core.Options{AllowAnonymous: true})
	sub := b.mustConnect(t, "sub", "", nil)
	sub.subscribe(t, "#")
	pub := b.mustConnect(t, "pub", "", nil)
	pub.publish(t, "secret/x", "before", false)
	pub.publish(t, "public/x", "before", false)
	sub.expect(t, "public/x", "before")

	writeScript(t, b.hook.cfg.Script, `function authorizeRead(client, topic) { return !mqtt.match("public/#", topic); }`)
	if err := b.hook.Reload(); err != nil {
		t.Fatal(err)
	}
	pub.publish(t, "public/x", "after", false)
	pub.publish(t, "secret/x", "after", false)
	sub.expect(t, "secret/x", "after")
}
