package core_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/eclipse/paho.golang/paho"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/packets"
)

// readHook denies each user reading the topics under "deny/<user>/", and
// counts its calls by topic. With transient set, its denials are marked
// Transient (not to be cached).
type readHook struct {
	transient atomic.Bool
	mu        sync.Mutex
	calls     map[string]int
	seen      map[string]string // client ID -> user name seen in Deliver
}

func newReadHook() *readHook {
	return &readHook{calls: make(map[string]int), seen: make(map[string]string)}
}

func (*readHook) ID() string { return "test.read" }

var (
	_ core.AuthorizeReadHook = (*readHook)(nil)
	_ core.DeliverHook       = (*readHook)(nil)
)

func (h *readHook) AuthorizeRead(_ context.Context, cl *core.ClientInfo, topic string) core.Verdict {
	h.mu.Lock()
	h.calls[topic]++
	h.mu.Unlock()
	if strings.HasPrefix(topic, "deny/"+cl.Username+"/") {
		v := core.Deny(packets.NotAuthorized, "not yours")
		v.Transient = h.transient.Load()
		return v
	}
	if strings.HasPrefix(topic, "all/") {
		v := core.Allow
		v.SameForAll = true
		return v
	}
	return core.Next
}

// Deliver records the subscriber it is given: the Deliver hook sees the
// subscriber's ClientInfo, user name included.
func (h *readHook) Deliver(_ context.Context, cl *core.ClientInfo, _ *core.Message) core.Verdict {
	h.mu.Lock()
	h.seen[cl.ID] = cl.Username
	h.mu.Unlock()
	return core.Next
}

func (h *readHook) callsFor(topic string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.calls[topic]
}

// userConnect is a clean-start CONNECT as user.
func userConnect(clientID, user string) *paho.Connect {
	cp := v5Connect(clientID)
	cp.Username, cp.UsernameFlag = user, true
	return cp
}

// TestReadCheckedPerSubscriber: read permission is asked per subscriber
// with its identity; a denied delivery reaches the others; the verdict is
// cached per session and topic (one call however many messages), except a
// Transient one; the Deliver hook gets the subscriber's ClientInfo.
func TestReadCheckedPerSubscriber(t *testing.T) {
	h := newReadHook()
	b := hookBroker(t, hkOpts{allowAnonymous: true, hooks: []hookPrio{{h, 0}}})
	alice := connectV5(t, b.Addr, userConnect("alice-1", "alice"))
	bob := connectV5(t, b.Addr, userConnect("bob-1", "bob"))
	alice.sub("deny/#", 1)
	alice.sub("marker", 1)
	bob.sub("deny/#", 1)
	bob.sub("marker", 1)
	pub := connectV5(t, b.Addr, v5Connect("pub"))
	for range 5 {
		pub.pub("deny/alice/x", 1, "for bob only")
	}
	pub.pub("marker", 1, "end")
	alice.expectNone("marker", "deny/alice/x is not alice's to read")
	if got := bob.until("marker"); len(got) != 5 {
		t.Errorf("bob got %d messages, want 5: %v", len(got), got)
	}
	// alice's and bob's sessions each asked once, then hit the cache.
	if n := h.callsFor("deny/alice/x"); n != 2 {
		t.Errorf("AuthorizeRead was called %d times for deny/alice/x, want 2 (one per subscriber, then cached)", n)
	}
	h.mu.Lock()
	seen := h.seen["bob-1"]
	h.mu.Unlock()
	if seen != "bob" {
		t.Errorf("Deliver saw subscriber bob-1 as user %q, want bob", seen)
	}
	if n := b.Stats().DroppedBy[core.DropNotAuthorized]; n != 5 {
		t.Errorf("dropped not_authorized = %d, want 5", n)
	}

	t.Run("verdicts the same for all are cached once", func(t *testing.T) {
		for _, c := range []*v5Client{alice, bob} {
			c.sub("all/#", 1)
		}
		for range 4 {
			pub.pub("all/x", 1, "for everyone")
		}
		pub.pub("marker", 1, "end")
		for _, c := range []*v5Client{alice, bob} {
			if got := c.until("marker"); len(got) != 4 {
				t.Errorf("%s got %v, want 4 messages on all/x", c.ID, got)
			}
		}
		if n := h.callsFor("all/x"); n != 1 {
			t.Errorf("AuthorizeRead was called %d times for all/x, want 1 (SameForAll: one verdict for both subscribers)", n)
		}
	})

	t.Run("transient verdicts are not cached", func(t *testing.T) {
		h.transient.Store(true)
		before := h.callsFor("deny/alice/y")
		for range 3 {
			pub.pub("deny/alice/y", 1, "x")
		}
		pub.pub("marker", 1, "end")
		alice.expectNone("marker", "denied, transiently")
		bob.until("marker")
		// alice asked every time; bob's Next verdicts were cached.
		if n := h.callsFor("deny/alice/y") - before; n != 3+1 {
			t.Errorf("AuthorizeRead was called %d times, want 4 (alice each time, bob once)", n)
		}
	})
}

// TestReadCheckedForSharedSubscriptions: a share group's message goes to a
// member that may read it [MQTT-4.8.2-1 one member gets it], never to one
// that may not; with no such member it goes to none.
func TestReadCheckedForSharedSubscriptions(t *testing.T) {
	h := newReadHook()
	b := hookBroker(t, hkOpts{allowAnonymous: true, hooks: []hookPrio{{h, 0}}})
	alice := connectV5(t, b.Addr, userConnect("alice-s", "alice"))
	bob := connectV5(t, b.Addr, userConnect("bob-s", "bob"))
	for _, c := range []*v5Client{alice, bob} {
		c.sub("$share/g/deny/#", 1)
		c.sub("marker", 1)
	}
	pub := connectV5(t, b.Addr, v5Connect("pub-s"))
	for range 6 {
		pub.pub("deny/alice/x", 1, "bob's")
	}
	pub.pub("marker", 1, "end")
	alice.expectNone("marker", "the group's messages on deny/alice/ must skip alice")
	if got := bob.until("marker"); len(got) != 6 {
		t.Errorf("bob got %d of the group's 6 messages: %v", len(got), got)
	}
}

// TestInvalidateAuthorization: what a session holds is checked again when
// the hooks' rules change: its queued and unacknowledged messages that it
// may no longer read are dropped and counted.
func TestInvalidateAuthorization(t *testing.T) {
	h := &switchReadHook{}
	b := hookBroker(t, hkOpts{allowAnonymous: true, hooks: []hookPrio{{h, 0}}})
	cp := userConnect("off", "alice")
	cp.CleanStart = false
	cp.Properties.SessionExpiryInterval = u32(300)
	off := connectV5(t, b.Addr, cp)
	off.sub("news/#", 1)
	off.disconnect(0)
	waitConnected(t, b, 0)
	pub := connectV5(t, b.Addr, v5Connect("pub-i"))
	pub.pub("news/a", 1, "1")
	pub.pub("news/b", 1, "2")
	pub.pub("news/a", 1, "3")
	if st, _ := b.Client("off"); st.Queued != 3 {
		t.Fatalf("queued %d, want 3", st.Queued)
	}
	if n := b.InvalidateAuthorization(); n != 0 {
		t.Errorf("InvalidateAuthorization with nothing denied dropped %d", n)
	}
	h.deny.Store("news/a")
	if n := b.InvalidateAuthorization(); n != 2 {
		t.Errorf("InvalidateAuthorization dropped %d messages, want the 2 on news/a", n)
	}
	if st, _ := b.Client("off"); st.Queued != 1 {
		t.Errorf("queued %d after the re-check, want 1 (news/b)", st.Queued)
	}
	cp.CleanStart = false
	back := connectV5(t, b.Addr, cp)
	back.sub("marker", 1)
	pub.pub("marker", 1, "end")
	got := back.until("marker")
	if len(got) != 1 || got[0].Topic != "news/b" {
		t.Errorf("resumed session received %v, want news/b only", got)
	}
}

// switchReadHook denies reading the one topic in deny.
type switchReadHook struct{ deny atomic.Value }

func (*switchReadHook) ID() string { return "test.switch" }

func (h *switchReadHook) AuthorizeRead(_ context.Context, _ *core.ClientInfo, topic string) core.Verdict {
	if d, _ := h.deny.Load().(string); d == topic {
		return core.Deny(packets.NotAuthorized, "")
	}
	return core.Next
}
