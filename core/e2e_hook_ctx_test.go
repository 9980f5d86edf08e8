package core_test

import (
	"context"
	"testing"

	"github.com/eclipse/paho.golang/paho"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/packets"
)

// blockingHook blocks AuthorizePublish on the topic "block" until the
// call's context ends, and says when it entered and when it returned.
type blockingHook struct {
	entered, cancelled chan string
}

var _ core.AuthorizePublishHook = (*blockingHook)(nil)

func (*blockingHook) ID() string { return "test.blocking" }

func (h *blockingHook) AuthorizePublish(ctx context.Context, cl *core.ClientInfo, m *core.Message) core.Verdict {
	if m.Topic != "block" {
		return core.Next
	}
	h.entered <- cl.ID
	<-ctx.Done()
	h.cancelled <- cl.ID
	return core.Deny(packets.NotAuthorized, "cut short")
}

// A hook's decision gets the connection's context, which ends when the
// connection is closed from outside while the decision runs (hook.go):
// an operator's disconnect and a takeover by the same client ID each cut
// short a decision that would otherwise block the connection's reader,
// and the server, until Shutdown.
func TestE2EHookContextEndsWithKick(t *testing.T) {
	t.Parallel()
	h := &blockingHook{entered: make(chan string, 4), cancelled: make(chan string, 4)}
	tb := hookBroker(t, withHooks(h))
	kicks := []struct {
		name string
		kick func(t *testing.T, id string)
	}{
		{"operator disconnect", func(t *testing.T, id string) {
			if err := tb.Disconnect(id, packets.AdministrativeAction, "test"); err != nil {
				t.Fatal(err)
			}
		}},
		{"takeover", func(t *testing.T, id string) { connectV5(t, tb.Addr, v5Connect(id)) }},
	}
	for _, k := range kicks {
		t.Run(k.name, func(t *testing.T) {
			id := "ctx-" + k.name[:4]
			c := connectV5(t, tb.Addr, v5Connect(id))
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			go func() { _, _ = c.Cli.Publish(ctx, &paho.Publish{Topic: "block", QoS: 1}) }()
			if got := waitFor(t, h.entered, waitTimeout, "the hook's decision to start"); got != id {
				t.Fatalf("decision for %q, want %q", got, id)
			}
			k.kick(t, id)
			if got := waitFor(t, h.cancelled, waitTimeout, "the decision's context to end"); got != id {
				t.Fatalf("cancelled %q, want %q", got, id)
			}
		})
	}
}
