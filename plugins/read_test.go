package plugins

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/mqtttest"
)

// AuthorizeRead end to end (issue 17): a real broker, the test plugin's
// binary, real MQTT 5 clients. The plugin denies reading secret/# and
// other users' private/USER/#.

// subscribe subscribes c to filter at QoS 1, which must be granted.
func (c *client) subscribe(t *testing.T, filter string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	sa, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}})
	if err != nil || len(sa.Reasons) != 1 || sa.Reasons[0] != 1 {
		t.Fatalf("subscribe %s: %v %+v", filter, err, sa)
	}
}

// expect fails the test unless c receives want ("topic payload"), in
// order, and nothing before them.
func (c *client) expect(t *testing.T, id string, want ...string) {
	t.Helper()
	for _, w := range want {
		select {
		case m := <-c.msgs:
			if got := m.Topic + " " + string(m.Payload); got != w {
				t.Fatalf("%s received %q, want %q", id, got, w)
			}
		case <-time.After(waitTimeout):
			t.Fatalf("%s: %q not delivered", id, w)
		}
	}
}

// A subscription to # is granted, and the plugin filters what reaches it
// at delivery, against the subscriber: it gets public/x and its own
// private topic, never secret/x or another user's; retained messages sent
// on subscribe are checked alike. Each refused delivery is counted as
// dropped, not_authorized.
func TestPluginAuthorizeRead(t *testing.T) {
	b := startBroker(t, Config{Config: map[string]any{"decide": []any{"authorize_read"}}})
	if ev := b.srv.Hooks()[0].Events; !ev.Has(core.EventAuthorizeRead) {
		t.Fatalf("events %s: want authorize_read, which the plugin described", ev)
	}
	alice := dial(t, b.addr, "alice") // username u-alice
	alice.subscribe(t, "#")
	pub := dial(t, b.addr, "pub")
	for _, topic := range []string{"secret/x", "public/x", "private/u-bob/x", "private/u-alice/x", "end"} {
		pub.publish(t, topic, "hi")
	}
	alice.expect(t, "alice", "public/x hi", "private/u-alice/x hi", "end hi")
	if n := b.srv.Stats().DroppedBy[core.DropNotAuthorized]; n != 2 {
		t.Errorf("dropped not_authorized %d, want 2 (secret/x, private/u-bob/x)", n)
	}

	// Retained messages, sent on subscribe.
	for _, topic := range []string{"secret/r", "public/r"} {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		if _, err := pub.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Retain: true, Payload: []byte("kept")}); err != nil {
			t.Fatal(err)
		}
		cancel()
	}
	bob := dial(t, b.addr, "bob")
	bob.subscribe(t, "#")
	pub.publish(t, "end", "bye")
	bob.expect(t, "bob", "public/r kept", "end bye")
}

// A read decision the plugin fails (it panics; on_failure deny) drops
// that delivery, but is not cached: once the plugin answers again the
// subscriber receives the topic again, with no InvalidateAuthorization.
func TestPluginAuthorizeReadFailureNotCached(t *testing.T) {
	fail := filepath.Join(t.TempDir(), "fail")
	b := startBroker(t, Config{OnFailure: core.FailDeny, Config: map[string]any{"decide": []any{"authorize_read"}, "fail_read_while": fail}})
	sub := dial(t, b.addr, "sub")
	sub.subscribe(t, "#")
	pub := dial(t, b.addr, "pub")

	if err := os.WriteFile(fail, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	pub.publish(t, "public/x", "while failing")
	mqtttest.Eventually(t, waitTimeout, "the failed read decision to be counted", func() bool {
		return b.hook.Stats().Failures > 0 && b.srv.Stats().DroppedBy[core.DropNotAuthorized] == 1
	})
	if err := os.Remove(fail); err != nil {
		t.Fatal(err)
	}
	pub.publish(t, "public/x", "recovered")
	sub.expect(t, "sub", "public/x recovered")
}

// A restarted plugin decides reads anew: the adapter has the server forget
// the verdicts of the process before it, so a topic allowed before is
// refused after, and one refused before is allowed.
func TestPluginAuthorizeReadRestart(t *testing.T) {
	rules := filepath.Join(t.TempDir(), "deny")
	if err := os.WriteFile(rules, []byte("secret/"), 0o600); err != nil {
		t.Fatal(err)
	}
	b := startBroker(t, Config{Config: map[string]any{"decide": []any{"authorize_read"}, "deny_read_from": rules}})
	sub := dial(t, b.addr, "sub")
	sub.subscribe(t, "#")
	pub := dial(t, b.addr, "pub")
	for _, topic := range []string{"secret/x", "public/x"} {
		pub.publish(t, topic, "before")
	}
	sub.expect(t, "sub", "public/x before")

	if err := os.WriteFile(rules, []byte("public/"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := b.hook.Restart(ctx); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	for _, topic := range []string{"public/x", "secret/x"} {
		pub.publish(t, topic, "after")
	}
	sub.expect(t, "sub", "secret/x after")
}
