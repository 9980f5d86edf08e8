package core_test

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/mqtttest"
)

// The operator's view: Clients, Client and Subscriptions describe the
// sessions; Stats splits messages by QoS and drops by reason; Hooks
// counts each hook's calls.
func TestE2EStatus(t *testing.T) {
	counter := &sessionCounter{}
	tb := hookBroker(t, hkOpts{allowAnonymous: true, hooks: []hookPrio{{counter, 0}}})

	cp := v5Connect("small")
	cp.Properties.MaximumPacketSize = u32(64)
	small := connectV5(t, tb.Addr, cp)
	small.sub("status/#", 1)
	pub := connectV5(t, tb.Addr, v5Connect("pub"))
	pub.pub("status/big", 1, strings.Repeat("x", 200)) // too large for "small" [MQTT-3.1.2-25]
	pub.pub("status/ok", 1, "fits")
	if m := small.next(); m.Topic != "status/ok" {
		t.Fatalf("small got %v, want status/ok (the big one skipped)", m)
	}

	st, ok := tb.Client("small")
	if !ok || !st.Connected || st.Subscriptions != 1 || st.ProtocolVersion != 5 || st.Dropped != 1 {
		t.Errorf("Client(small) = %+v, %v; want connected, 1 subscription, v5, 1 dropped", st, ok)
	}
	if _, ok := tb.Client("nobody"); ok {
		t.Error("Client(nobody) found a session")
	}
	ids := []string{}
	for _, c := range tb.Clients() {
		ids = append(ids, c.ID)
	}
	if strings.Join(ids, ",") != "pub,small" {
		t.Errorf("Clients() = %v, want [pub small]", ids)
	}
	subs := tb.Subscriptions()
	if len(subs) != 1 || subs[0].ClientID != "small" || subs[0].Filter != "status/#" || subs[0].QoS != 1 {
		t.Errorf("Subscriptions() = %+v", subs)
	}
	// Readers and writers add their counts once per batch, so the
	// counters may trail a delivery by one batch: wait (bounded) for them.
	var s core.Stats
	counted := func() bool {
		s = tb.Stats()
		return s.MessagesInByQoS[1] == 2 && s.DroppedBy[core.DropTooLarge] == 1 && s.MessagesOutByQoS[1] == 1
	}
	deadline := time.Now().Add(waitTimeout)
	for !counted() && time.Now().Before(deadline) {
		runtime.Gosched()
	}
	if !counted() {
		t.Errorf("Stats: in by QoS %v, out by QoS %v, dropped by reason %v; want 2 in at QoS 1, 1 out at QoS 1, 1 too large",
			s.MessagesInByQoS, s.MessagesOutByQoS, s.DroppedBy)
	}
	ls := tb.Listeners()
	if len(ls) != 1 || ls[0].ID != "tcp" || ls[0].Protocol != "tcp" || ls[0].Open != 2 || ls[0].Accepted != 2 {
		t.Errorf("Listeners() = %+v, want tcp with 2 open and 2 accepted connections", ls)
	}
	pub.disconnect(0)
	mqtttest.Eventually(t, waitTimeout, "the tcp listener counts 1 open connection after pub left", func() bool {
		ls := tb.Listeners()
		return len(ls) == 1 && ls[0].Open == 1 && ls[0].Accepted == 2
	})
	for _, h := range tb.Hooks() {
		if h.ID == counter.ID() && h.Calls < 2 {
			t.Errorf("hook %s: %d calls counted, want at least 2 (two sessions created)", h.ID, h.Calls)
		}
	}
}

// sessionCounter is a hook that only listens to session changes.
type sessionCounter struct{}

func (*sessionCounter) ID() string                                                            { return "test.sessions" }
func (*sessionCounter) Events() core.EventSet                                                 { return core.Events(core.EventSession) }
func (*sessionCounter) OnSession(_ context.Context, _ *core.ClientInfo, _ core.SessionChange) {}
