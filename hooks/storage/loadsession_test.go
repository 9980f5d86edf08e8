package storage

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/vanemq/vanemq/core"
)

// LoadSession reads one client's session as LoadSessions reads it, on
// every engine: nothing of another client, false for a client without
// one (or whose session was deleted), deliveries without their message
// left out.
func TestLoadSession(t *testing.T) {
	engines := []struct {
		name string
		open func(t *testing.T) opener
	}{
		{"pebble", func(*testing.T) opener { return pebbleOpener() }},
		{"redis", func(t *testing.T) opener { addr, _ := startRedis(t); return redisOpener(addr) }},
		{"nats", func(t *testing.T) opener { return natsOpener(startNATS(t, 1).URLs()) }},
	}
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			cfg := eng.open(t)(t)
			st := openStore(t, cfg)
			m1 := core.StoredMessage{Message: core.Message{Topic: "a/b", Payload: []byte("one"), QoS: 1}}
			m2 := core.StoredMessage{Message: core.Message{Topic: "a/c", Payload: []byte("two"), QoS: 2}}
			inflight := msgOp(core.OpQueueAdd, "c1", 5, 100, m2)
			inflight.PacketID, inflight.QoS = 3, 2
			apply(t, st,
				core.StoreOp{Kind: core.OpSessionPut, ClientID: "c1", Expiry: 300, Owner: core.Identity{Username: "u1"}},
				core.StoreOp{Kind: core.OpSubscriptionPut, ClientID: "c1", Subscription: core.StoredSubscription{Filter: "z/#", QoS: 1}},
				core.StoreOp{Kind: core.OpSubscriptionPut, ClientID: "c1", Subscription: core.StoredSubscription{Filter: "a/+", QoS: 2}},
				msgOp(core.OpQueueAdd, "c1", 4, 101, m1),
				inflight,
				core.StoreOp{Kind: core.OpInboundPut, ClientID: "c1", PacketID: 9},
				core.StoreOp{Kind: core.OpInboundPut, ClientID: "c1", PacketID: 2},
				// A client whose ID extends c1's, sharing a message.
				core.StoreOp{Kind: core.OpSessionPut, ClientID: "c10", Expiry: 60},
				core.StoreOp{Kind: core.OpSubscriptionPut, ClientID: "c10", Subscription: core.StoredSubscription{Filter: "other"}},
				msgOp(core.OpQueueAdd, "c10", 6, 101, m1),
			)
			got, ok, err := st.LoadSession(t.Context(), "c1")
			if err != nil || !ok {
				t.Fatalf("LoadSession(c1): ok %v, err %v", ok, err)
			}
			if _, ok, err := st.LoadSession(t.Context(), "nobody"); ok || err != nil {
				t.Errorf("LoadSession(nobody): ok %v, err %v, want no session", ok, err)
			}

			st = reopen(t, st, cfg)
			all, err := st.LoadSessions(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			i := slices.IndexFunc(all, func(s core.StoredSession) bool { return s.ClientID == "c1" })
			if i < 0 {
				t.Fatalf("LoadSessions has no c1: %+v", all)
			}
			want := all[i]
			slices.SortFunc(want.Subscriptions, func(a, b core.StoredSubscription) int { return strings.Compare(a.Filter, b.Filter) })
			slices.Sort(want.Inbound)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("LoadSession(c1) =\n%+v\nLoadSessions has\n%+v", got, want)
			}
			if len(got.Deliveries) != 2 || got.Deliveries[0].Seq != 4 || got.Deliveries[1].Message.ID != 100 || got.Owner == nil || got.Owner.Username != "u1" {
				t.Errorf("LoadSession(c1): %+v", got)
			}

			// A delivery whose message is gone is left out.
			apply(t, st,
				core.StoreOp{Kind: core.OpQueueDelete, ClientID: "c10", Seq: 6, MessageID: 101},
				core.StoreOp{Kind: core.OpQueueDelete, ClientID: "c1", Seq: 4, MessageID: 101},
			)
			b := st.eng.newBatch()
			b.set(spaceDelivery, "c1", u64key(4), encodeDelivery(nil, &core.StoreOp{MessageID: 101, QoS: 1}))
			if err := b.commit(t.Context(), true); err != nil {
				t.Fatal(err)
			}
			b.release()
			if s, ok, err := st.LoadSession(t.Context(), "c1"); err != nil || !ok || len(s.Deliveries) != 1 || s.Deliveries[0].Seq != 5 {
				t.Errorf("LoadSession(c1) with message 101 gone: ok %v, err %v, %+v; want only delivery 5", ok, err, s.Deliveries)
			}

			apply(t, st, core.StoreOp{Kind: core.OpSessionDelete, ClientID: "c1"})
			if _, ok, err := st.LoadSession(t.Context(), "c1"); ok || err != nil {
				t.Errorf("LoadSession(c1) after its deletion: ok %v, err %v", ok, err)
			}
			if s, ok, err := st.LoadSession(t.Context(), "c10"); !ok || err != nil || len(s.Subscriptions) != 1 {
				t.Errorf("LoadSession(c10) after c1's deletion: ok %v, err %v, %+v", ok, err, s)
			}
		})
	}
}
