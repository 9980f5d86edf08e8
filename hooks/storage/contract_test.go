package storage

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/packets"
)

// opener returns the config of a fresh, empty store of one engine; two
// calls with the same t return the same store's config (for reopening).
type opener func(t *testing.T) Config

// pebbleOpener keeps a store in a temp directory of the test.
func pebbleOpener() opener {
	var (
		mu   sync.Mutex
		dirs = map[*testing.T]string{}
	)
	return func(t *testing.T) Config {
		mu.Lock()
		defer mu.Unlock()
		d, ok := dirs[t]
		if !ok {
			d = filepath.Join(t.TempDir(), "data")
			dirs[t] = d
		}
		return Config{Type: TypePebble, Path: d}
	}
}

func TestPebbleContract(t *testing.T) { runContract(t, pebbleOpener()) }

// runContract is the contract every engine meets: what Apply wrote is what
// Load returns after a reopen.
func runContract(t *testing.T, open opener) {
	tests := []struct {
		name string
		run  func(t *testing.T, open opener)
	}{
		{"round trip", contractRoundTrip},
		{"session delete purges", contractSessionDelete},
		{"message bodies counted", contractMessageRefs},
		{"done in order after write", contractDoneOrder},
		{"apply after close fails", contractClosed},
		{"durability none", contractNoSync},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, open) })
	}
}

// openStore opens a store and closes it at the end of the test.
func openStore(t *testing.T, cfg Config) *Store {
	t.Helper()
	st, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// apply writes ops and waits until they are stored.
func apply(t *testing.T, st *Store, ops ...core.StoreOp) {
	t.Helper()
	done := make(chan error, 1)
	st.Apply(ops, func(err error) { done <- err })
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Apply: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Apply: done not called within 10s")
	}
}

// reopen closes st and opens the same store again.
func reopen(t *testing.T, st *Store, cfg Config) *Store {
	t.Helper()
	if err := st.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return openStore(t, cfg)
}

func msgOp(kind core.StoreOpKind, client string, seq, msgID uint64, m core.StoredMessage) core.StoreOp {
	op := core.StoreOp{Kind: kind, ClientID: client, Seq: seq, MessageID: msgID, QoS: m.QoS}
	op.SetMessage(&m)
	return op
}

func contractRoundTrip(t *testing.T, open opener) {
	cfg := open(t)
	st := openStore(t, cfg)
	disc := time.Unix(1_700_000_000, 123)
	expires := time.Now().Add(time.Hour).Round(0)
	props := packets.Properties{ContentType: "text/plain", UserProperties: []packets.UserProperty{{Key: "k", Value: "v"}}}
	props.Set(packets.PropContentType)
	m1 := core.StoredMessage{Message: core.Message{Topic: "a/b", Payload: []byte("one"), QoS: 2, Origin: "pub", Properties: props}, Expires: expires}
	m2 := core.StoredMessage{Message: core.Message{Topic: "a/c", Payload: []byte("two"), QoS: 1}}
	inflight := msgOp(core.OpQueueAdd, "c1", 10, 100, m1)
	inflight.PacketID, inflight.QoS, inflight.SubscriptionIDs = 7, 2, []uint32{3, 4}
	pubrec := inflight
	pubrec.Kind, pubrec.Pubrec = core.OpQueueUpdate, true
	queued := msgOp(core.OpQueueAdd, "c1", 11, 101, m2)
	queued.Retain = true
	shared := msgOp(core.OpQueueAdd, "c2", 12, 100, m1)
	shared.QoS = 1
	retained := core.StoreOp{Kind: core.OpRetainedPut}
	retained.SetMessage(&core.StoredMessage{Message: core.Message{Topic: "r/1", Payload: []byte("kept"), QoS: 1, Retain: true}})
	apply(t, st,
		core.StoreOp{Kind: core.OpSessionPut, ClientID: "c1", Expiry: 300, Disconnected: disc},
		core.StoreOp{Kind: core.OpSessionPut, ClientID: "c2", Expiry: 60},
		core.StoreOp{Kind: core.OpSubscriptionPut, ClientID: "c1", Subscription: core.StoredSubscription{Filter: "a/#", QoS: 2, NoLocal: true, RetainHandling: 2, Identifier: 3}},
		core.StoreOp{Kind: core.OpSubscriptionPut, ClientID: "c1", Subscription: core.StoredSubscription{Filter: "$share/g/x", QoS: 1, RetainAsPublished: true}},
		core.StoreOp{Kind: core.OpSubscriptionPut, ClientID: "c1", Subscription: core.StoredSubscription{Filter: "gone"}},
		core.StoreOp{Kind: core.OpSubscriptionDelete, ClientID: "c1", Subscription: core.StoredSubscription{Filter: "gone"}},
		inflight, pubrec, queued, shared,
		core.StoreOp{Kind: core.OpInboundPut, ClientID: "c1", PacketID: 9},
		core.StoreOp{Kind: core.OpInboundPut, ClientID: "c1", PacketID: 10},
		core.StoreOp{Kind: core.OpInboundDelete, ClientID: "c1", PacketID: 10},
		retained,
	)
	gone := core.StoreOp{Kind: core.OpRetainedPut}
	gone.SetMessage(&core.StoredMessage{Message: core.Message{Topic: "r/2", Payload: []byte("x"), Retain: true}})
	apply(t, st, gone, core.StoreOp{Kind: core.OpRetainedDelete, Topic: "r/2"})

	st = reopen(t, st, cfg)
	ret, err := st.LoadRetained(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var topics []string
	for _, r := range ret {
		topics = append(topics, r.Topic)
	}
	if len(ret) != 1 || ret[0].Topic != "r/1" || string(ret[0].Payload) != "kept" || !ret[0].Retain || ret[0].QoS != 1 {
		t.Fatalf("retained after reopen: %v (%+v), want only r/1 = kept", topics, ret)
	}
	sessions, err := st.LoadSessions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(sessions) != 2 {
		t.Fatalf("got %d sessions, want 2: %+v", len(sessions), sessions)
	}
	byID := map[string]core.StoredSession{}
	for _, s := range sessions {
		byID[s.ClientID] = s
	}
	c1 := byID["c1"]
	if c1.Expiry != 300 || !c1.Disconnected.Equal(disc) {
		t.Errorf("c1 expiry %d disconnected %v, want 300 and %v", c1.Expiry, c1.Disconnected, disc)
	}
	if len(c1.Subscriptions) != 2 {
		t.Fatalf("c1 subscriptions %+v, want a/# and $share/g/x", c1.Subscriptions)
	}
	for _, s := range c1.Subscriptions {
		switch s.Filter {
		case "a/#":
			if s.QoS != 2 || !s.NoLocal || s.RetainHandling != 2 || s.Identifier != 3 || s.RetainAsPublished {
				t.Errorf("a/# options: %+v", s)
			}
		case "$share/g/x":
			if s.QoS != 1 || !s.RetainAsPublished || s.NoLocal {
				t.Errorf("$share/g/x options: %+v", s)
			}
		default:
			t.Errorf("unexpected subscription %q", s.Filter)
		}
	}
	if len(c1.Inbound) != 1 || c1.Inbound[0] != 9 {
		t.Errorf("c1 inbound %v, want [9]", c1.Inbound)
	}
	if len(c1.Deliveries) != 2 {
		t.Fatalf("c1 deliveries %+v, want 2", c1.Deliveries)
	}
	d0, d1 := c1.Deliveries[0], c1.Deliveries[1]
	if d0.Seq != 10 || d0.PacketID != 7 || !d0.Pubrec || d0.QoS != 2 || len(d0.SubscriptionIDs) != 2 || d0.SubscriptionIDs[1] != 4 {
		t.Errorf("c1 first delivery: %+v", d0)
	}
	if m := d0.Message; m.Topic != "a/b" || string(m.Payload) != "one" || m.Origin != "pub" || m.QoS != 2 ||
		!m.Expires.Equal(expires) || m.Properties.ContentType != "text/plain" || len(m.Properties.UserProperties) != 1 || m.ID != 100 {
		t.Errorf("c1 first message: %+v", m)
	}
	if d1.Seq != 11 || d1.PacketID != 0 || !d1.Retain || d1.Message.Topic != "a/c" {
		t.Errorf("c1 second delivery: %+v", d1)
	}
	c2 := byID["c2"]
	if !c2.Disconnected.IsZero() || len(c2.Deliveries) != 1 || c2.Deliveries[0].Message.ID != 100 || c2.Deliveries[0].QoS != 1 {
		t.Errorf("c2: %+v", c2)
	}
}

func contractSessionDelete(t *testing.T, open opener) {
	cfg := open(t)
	st := openStore(t, cfg)
	m := core.StoredMessage{Message: core.Message{Topic: "t", Payload: []byte("p"), QoS: 1}}
	apply(t, st,
		core.StoreOp{Kind: core.OpSessionPut, ClientID: "gone", Expiry: 10},
		core.StoreOp{Kind: core.OpSubscriptionPut, ClientID: "gone", Subscription: core.StoredSubscription{Filter: "t"}},
		core.StoreOp{Kind: core.OpInboundPut, ClientID: "gone", PacketID: 1},
		msgOp(core.OpQueueAdd, "gone", 1, 1, m),
		// A client whose ID extends the other's must survive the purge.
		core.StoreOp{Kind: core.OpSessionPut, ClientID: "gone2", Expiry: 10},
		core.StoreOp{Kind: core.OpSubscriptionPut, ClientID: "gone2", Subscription: core.StoredSubscription{Filter: "u"}},
	)
	apply(t, st,
		core.StoreOp{Kind: core.OpQueueDelete, ClientID: "gone", Seq: 1, MessageID: 1},
		core.StoreOp{Kind: core.OpSessionDelete, ClientID: "gone"},
	)
	st = reopen(t, st, cfg)
	sessions, err := st.LoadSessions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(sessions) != 1 || sessions[0].ClientID != "gone2" || len(sessions[0].Subscriptions) != 1 {
		t.Fatalf("after deleting session gone: %+v, want only gone2 with its subscription", sessions)
	}
	_ = st.Close()
	counts, err := Check(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if counts != (Counts{Sessions: 1, Subscriptions: 1}) {
		t.Errorf("Check after the purge: %+v, want one session with one subscription and nothing dangling", counts)
	}
}

func contractMessageRefs(t *testing.T, open opener) {
	cfg := open(t)
	st := openStore(t, cfg)
	m := core.StoredMessage{Message: core.Message{Topic: "t", Payload: []byte("shared"), QoS: 1}}
	ops := []core.StoreOp{}
	for _, c := range []string{"a", "b", "c"} {
		ops = append(ops, core.StoreOp{Kind: core.OpSessionPut, ClientID: c, Expiry: 100})
	}
	ops = append(ops, msgOp(core.OpQueueAdd, "a", 1, 42, m), msgOp(core.OpQueueAdd, "b", 2, 42, m), msgOp(core.OpQueueAdd, "c", 3, 42, m))
	apply(t, st, ops...)
	apply(t, st,
		core.StoreOp{Kind: core.OpQueueDelete, ClientID: "a", Seq: 1, MessageID: 42},
		core.StoreOp{Kind: core.OpQueueDelete, ClientID: "b", Seq: 2, MessageID: 42},
	)
	_ = st.Close()
	counts, err := Check(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if counts.Messages != 1 || counts.Queued != 1 || counts.Dangling != 0 {
		t.Fatalf("one of three deliveries left: %+v, want 1 message, 1 queued, nothing dangling", counts)
	}
	st = openStore(t, cfg)
	if _, err := st.LoadSessions(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The counts were rebuilt by the load: the last delivery takes the
	// message with it.
	apply(t, st, core.StoreOp{Kind: core.OpQueueDelete, ClientID: "c", Seq: 3, MessageID: 42})
	_ = st.Close()
	counts, err = Check(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if counts.Messages != 0 || counts.Queued != 0 || counts.Dangling != 0 {
		t.Fatalf("all deliveries gone: %+v, want no message and nothing dangling", counts)
	}
}

func contractDoneOrder(t *testing.T, open opener) {
	st := openStore(t, open(t))
	const n = 200
	var (
		mu    sync.Mutex
		order []int
		wg    sync.WaitGroup
	)
	wg.Add(n)
	for i := range n {
		st.Apply([]core.StoreOp{{Kind: core.OpSessionPut, ClientID: "c", Expiry: uint32(i + 1)}}, func(err error) {
			if err != nil {
				t.Errorf("Apply %d: %v", i, err)
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			wg.Done()
		})
	}
	wg.Wait()
	for i, v := range order {
		if v != i {
			t.Fatalf("done calls out of order at %d: %v", i, order[:i+1])
		}
	}
	// A barrier (no ops) completes after what came before.
	apply(t, st)
}

func contractClosed(t *testing.T, open opener) {
	st := openStore(t, open(t))
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	st.Apply([]core.StoreOp{{Kind: core.OpSessionPut, ClientID: "late"}}, func(err error) { done <- err })
	if err := <-done; !errors.Is(err, errClosed) {
		t.Fatalf("Apply after Close: %v, want errClosed", err)
	}
}

func contractNoSync(t *testing.T, open opener) {
	cfg := open(t)
	cfg.Durability = DurabilityNone
	st := openStore(t, cfg)
	if st.Durable() {
		t.Fatal("durability none reports Durable")
	}
	apply(t, st, core.StoreOp{Kind: core.OpSessionPut, ClientID: "x", Expiry: 5})
	st = reopen(t, st, cfg)
	sessions, err := st.LoadSessions(context.Background())
	if err != nil || len(sessions) != 1 {
		t.Fatalf("after a clean close with durability none: %v %+v, want the session", err, sessions)
	}
}

// Bad configs are refused with an error naming the key.
func TestConfigErrors(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{Type: "mongo"}, `unknown type "mongo"`},
		{Config{Type: TypeMemory}, "memory keeps no store"},
		{Config{Durability: "fsync"}, `unknown durability "fsync"`},
		{Config{CommitInterval: 2 * time.Second}, "commit_interval"},
		{Config{CommitMaxOps: -1}, "commit_max_ops"},
		{Config{Type: TypeRedis}, "needs an address"},
	}
	for _, tc := range tests {
		_, err := Open(context.Background(), tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%+v) = %v, want an error containing %q", tc.cfg, err, tc.want)
		}
	}
}
