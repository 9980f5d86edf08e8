package core_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/vanemq/vanemq/core"
)

// storeHook is a storage hook's loading side: it hands the server the
// state a store would have saved.
type storeHook struct {
	retained []core.StoredMessage
	sessions []core.StoredSession
	err      error
}

func (h *storeHook) ID() string            { return "test.store" }
func (h *storeHook) Events() core.EventSet { return 0 }
func (h *storeHook) LoadRetained(context.Context) ([]core.StoredMessage, error) {
	return h.retained, h.err
}
func (h *storeHook) LoadSessions(context.Context) ([]core.StoredSession, error) {
	return h.sessions, h.err
}

// A Loader hook's retained messages and sessions are in place before the
// first client connects: a resumed session has Session Present set
// [MQTT-3.2.2-3], keeps its subscriptions and gets its queued message; a
// new subscriber gets the retained message [MQTT-3.3.1-9].
func TestE2ELoaderRestoresState(t *testing.T) {
	store := &storeHook{
		retained: []core.StoredMessage{{Message: core.Message{Topic: "stored/retained", Payload: []byte("kept"), QoS: 1}}},
		sessions: []core.StoredSession{{
			ClientID:      "sleeper",
			Expiry:        300,
			Subscriptions: []core.StoredSubscription{{Filter: "news/#", QoS: 1}},
			Deliveries:    []core.StoredDelivery{{Seq: 1, QoS: 1, Message: &core.StoredMessage{Message: core.Message{Topic: "news/queued", Payload: []byte("while you slept"), QoS: 1}}}},
		}},
	}
	tb := hookBroker(t, hkOpts{allowAnonymous: true, hooks: []hookPrio{{store, 0}}})

	cp := v5Connect("sleeper")
	cp.CleanStart = false
	cp.Properties.SessionExpiryInterval = u32(300)
	c := connectV5(t, tb.Addr, cp)
	if !c.sessionPresent() {
		t.Fatal("resuming a restored session: Session Present is 0 [MQTT-3.2.2-3]")
	}
	if m := c.next(); m.Topic != "news/queued" || string(m.Payload) != "while you slept" {
		t.Fatalf("first message after resuming: %v, want the stored queued message", m)
	}
	pub := connectV5(t, tb.Addr, v5Connect("pub"))
	pub.pub("news/live", 1, "now")
	if m := c.next(); m.Topic != "news/live" {
		t.Fatalf("restored subscription news/# did not deliver news/live: got %v", m)
	}

	fresh := connectV5(t, tb.Addr, v5Connect("fresh"))
	fresh.sub("stored/#", 1)
	if m := fresh.next(); m.Topic != "stored/retained" || string(m.Payload) != "kept" || !m.Retain {
		t.Fatalf("restored retained message: got %v", m)
	}
}

// A Loader that fails, or stored state that is invalid, fails Start with
// an error naming the hook.
func TestE2ELoaderErrorsFailStart(t *testing.T) {
	tests := []struct {
		name string
		hook *storeHook
		want string
	}{
		{"load error", &storeHook{err: errors.New("disk on fire")}, "disk on fire"},
		{"invalid filter", &storeHook{sessions: []core.StoredSession{{ClientID: "x", Subscriptions: []core.StoredSubscription{{Filter: "a/#/b"}}}}}, `subscription "a/#/b"`},
		{"no client ID", &storeHook{sessions: []core.StoredSession{{}}}, "without a client ID"},
		{"inflight at QoS 0", &storeHook{sessions: []core.StoredSession{{ClientID: "x", Deliveries: []core.StoredDelivery{{PacketID: 7, Message: &core.StoredMessage{Message: core.Message{Topic: "t"}}}}}}}, "at QoS 0"},
		{"delivery without message", &storeHook{sessions: []core.StoredSession{{ClientID: "x", Deliveries: []core.StoredDelivery{{Seq: 3}}}}}, "without a message"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, err := core.New(core.Options{SysInterval: -1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				t.Fatal(err)
			}
			if err := srv.AddHook(tc.hook, 0); err != nil {
				t.Fatal(err)
			}
			err = srv.Start(context.Background())
			if err == nil {
				t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
				t.Fatal("Start succeeded with bad stored state")
			}
			if !strings.Contains(err.Error(), "test.store") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Start error %q, want it to name the hook and %q", err, tc.want)
			}
		})
	}
}
