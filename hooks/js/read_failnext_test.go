package js

import (
	"testing"

	"github.com/vanemq/vanemq/core"
)

// TestE2EAuthorizeReadFailNextNotCached: with on_failure next, a failed
// read decision falls back to Next, which lets the delivery through this
// once and must not be cached either: after the script recovers, its deny
// holds.
func TestE2EAuthorizeReadFailNextNotCached(t *testing.T) {
	b := serveWith(t, `
"use strict";
var failures = 1;
function authorizeRead(client, topic) {
	if (failures > 0) { failures--; throw new Error("not loaded yet"); }
	return !topic.startsWith("secret/");
}`, core.Options{AllowAnonymous: true}, Config{Pool: 1, OnFailure: core.FailNext})
	sub := b.mustConnect(t, "sub", "", nil)
	sub.subscribe(t, "#")
	pub := b.mustConnect(t, "pub", "", nil)
	pub.publish(t, "secret/x", "while failing", false) // fails open: delivered
	sub.expect(t, "secret/x", "while failing")
	pub.publish(t, "secret/x", "recovered", false) // the script now denies it
	pub.publish(t, "end", "", false)
	sub.expect(t, "end", "")
}
