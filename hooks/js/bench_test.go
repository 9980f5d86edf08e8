package js

import (
	"context"
	"testing"
	"time"

	"github.com/vanemq/vanemq/core"
)

// aclScript is a typical ACL rule set: users own users/{username}/#,
// admins read everything, nobody else touches $SYS.
const aclScript = `
var admins = ["root"];
function authorizePublish(client, msg) {
	if (msg.topic.indexOf("$SYS") === 0) return false;
	if (mqtt.match("users/" + client.username + "/#", msg.topic)) return true;
	return {allow: false, reason: "not your topic"};
}`

// BenchmarkAuthorizePublish is one authorizePublish call of aclScript,
// with the timeout armed (and, for cached, answered by the decision
// cache):
//
//	go test -run '^$' -bench AuthorizePublish -benchmem ./hooks/js/
func BenchmarkAuthorizePublish(b *testing.B) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		// The timeout is armed on every call whatever its length; a long
		// one keeps a stall of this shared machine from failing a run.
		{"script", Config{Pool: 1, Timeout: time.Second}},
		{"script-10ms", Config{Pool: 1, Timeout: 10 * time.Millisecond}},
		{"cached", Config{Pool: 1, Timeout: time.Second, CacheTTL: time.Minute}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			h, logs := newHook(b, aclScript, tc.cfg)
			defer func() { _ = h.Close() }()
			m := msg("users/alice/temp", "21.5")
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if v := h.AuthorizePublish(ctx, alice, m); v.Decision != 1 {
					b.Fatalf("%+v\n%s", v, logs)
				}
			}
		})
	}
}

// BenchmarkDeliver is one deliver call that reads the subscriber, as the
// ID string it was given before and the client object it is given now
// (the same expression: the object converts to its ID), for a connected
// subscriber (its ClientInfo, and so its object, reused) and one whose
// session was restored from storage (a ClientInfo per call):
//
//	go test -run '^$' -bench Deliver -benchmem ./hooks/js/
func BenchmarkDeliver(b *testing.B) {
	h, logs := newHook(b, `function deliver(sub, msg) { if ("x/" + sub === "x/muted") return false; }`,
		Config{Pool: 1, Timeout: time.Second})
	defer func() { _ = h.Close() }()
	m := msg("users/alice/temp", "21.5")
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		cl   func() *core.ClientInfo
	}{
		{"connected", func() *core.ClientInfo { return alice }},
		{"restored", func() *core.ClientInfo { return &core.ClientInfo{ID: "dev-2", Username: "bob"} }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if v := h.Deliver(ctx, tc.cl(), m); v.Decision != core.DecisionNext {
					b.Fatalf("%+v\n%s", v, logs)
				}
			}
		})
	}
}
