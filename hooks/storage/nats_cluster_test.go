package storage

import (
	"context"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/mqtttest"
)

// storeState is what a store holds, as one comparable value.
type storeState struct {
	Sessions []core.StoredSession
	Retained []core.StoredMessage
}

// loadState reads every session and retained message of st.
func loadState(t *testing.T, st *Store) storeState {
	t.Helper()
	s, err := readState(t.Context(), st)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func readState(ctx context.Context, st *Store) (storeState, error) {
	ret, err := st.LoadRetained(ctx)
	if err != nil {
		return storeState{}, err
	}
	sessions, err := st.LoadSessions(ctx)
	if err != nil {
		return storeState{}, err
	}
	slices.SortFunc(sessions, func(a, b core.StoredSession) int { return cmpString(a.ClientID, b.ClientID) })
	return storeState{Sessions: sessions, Retained: ret}, nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// clusterOps is a store's worth of changes: sessions with subscriptions,
// queued and inflight deliveries sharing a message, inbound QoS 2, and a
// retained message.
func clusterOps(client string, seq uint64) []core.StoreOp {
	m := core.StoredMessage{Message: core.Message{Topic: "a/" + client, Payload: []byte("for " + client), QoS: 1}}
	inflight := msgOp(core.OpQueueAdd, client, seq+1, seq+100, m)
	inflight.PacketID = 7
	retained := core.StoreOp{Kind: core.OpRetainedPut}
	retained.SetMessage(&core.StoredMessage{Message: core.Message{Topic: "r/" + client, Payload: []byte("kept"), QoS: 1, Retain: true}})
	return []core.StoreOp{
		{Kind: core.OpSessionPut, ClientID: client, Expiry: 600, Owner: core.Identity{Username: "user-" + client}},
		{Kind: core.OpSubscriptionPut, ClientID: client, Subscription: core.StoredSubscription{Filter: "a/#", QoS: 1}},
		msgOp(core.OpQueueAdd, client, seq, seq+100, m),
		inflight,
		{Kind: core.OpInboundPut, ClientID: client, PacketID: 3},
		retained,
	}
}

// A store written through one server of a 3-server NATS cluster is read
// back whole through another: the bucket is replicated (R3 by default
// with three servers), so any node of a vanemq cluster can load a
// session another wrote.
func TestNATSClusterReadThroughAnother(t *testing.T) {
	c := startNATS(t, 3)
	writer := openStore(t, Config{Type: TypeNATS, NATS: NATSConfig{URLs: []string{c.URL(0)}, Prefix: "shared"}})
	apply(t, writer, clusterOps("alice", 10)...)
	apply(t, writer, clusterOps("bob", 20)...)
	apply(t, writer, core.StoreOp{Kind: core.OpQueueDelete, ClientID: "bob", Seq: 20, MessageID: 120})

	_, js := rawNATS(t, c.URL(1))
	s, err := js.Stream(t.Context(), "KV_shared_state")
	if err != nil {
		t.Fatal(err)
	}
	if r := s.CachedInfo().Config.Replicas; r != 3 {
		t.Errorf("the bucket has %d replicas, want 3 (one per server)", r)
	}

	reader := openStore(t, Config{Type: TypeNATS, NATS: NATSConfig{URLs: []string{c.URL(2)}, Prefix: "shared"}})
	alice, ok, err := reader.LoadSession(t.Context(), "alice")
	if err != nil || !ok || len(alice.Deliveries) != 2 || alice.Owner == nil || alice.Owner.Username != "user-alice" {
		t.Fatalf("LoadSession(alice) through %s: ok %v, err %v, %+v", c.Name(2), ok, err, alice)
	}
	got := loadState(t, reader)
	_ = writer.Close()
	want := loadState(t, openStore(t, Config{Type: TypeNATS, NATS: NATSConfig{URLs: []string{c.URL(0)}, Prefix: "shared"}}))
	if !reflect.DeepEqual(got, want) {
		t.Errorf("read through %s:\n%+v\nthrough %s:\n%+v", c.Name(2), got, c.Name(0), want)
	}
	if len(got.Sessions) != 2 || len(got.Retained) != 2 || len(got.Sessions[1].Deliveries) != 1 {
		t.Errorf("read through %s: %+v, want alice with 2 deliveries and bob with 1, and 2 retained messages", c.Name(2), got)
	}
}

// The bucket's stream leader stopped between two commits: the store
// reconnects to the other servers and goes on writing, and nothing it
// committed is lost, on the survivors nor on the stopped server once it
// is back.
func TestNATSClusterLeaderStopped(t *testing.T) {
	c := startNATS(t, 3)
	cfg := Config{Type: TypeNATS, NATS: NATSConfig{URLs: c.URLs(), Prefix: "failover", Timeout: 2 * time.Second}}
	st := openStore(t, cfg)
	apply(t, st, clusterOps("first", 10)...)

	_, js := rawNATS(t, c.URL(0))
	s, err := js.Stream(t.Context(), "KV_failover_state")
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context())
	if err != nil || info.Cluster == nil {
		t.Fatalf("stream info: %+v, %v", info, err)
	}
	leader := slices.IndexFunc([]int{0, 1, 2}, func(i int) bool { return c.Name(i) == info.Cluster.Leader })
	if leader < 0 {
		t.Fatalf("stream leader %q is none of the servers", info.Cluster.Leader)
	}
	t.Logf("stopping the stream leader %s", c.Name(leader))
	c.Stop(leader)

	// The second commit succeeds once a new leader is elected; a failed
	// attempt is what a client would see as a refused acknowledgement,
	// and it sends its message again: a new one, with new sequence
	// numbers (a failed attempt may still have been stored, its
	// acknowledgement lost).
	var seq uint64
	mqtttest.Eventually(t, 30*time.Second, "a commit with the leader "+c.Name(leader)+" stopped", func() bool {
		seq += 10
		return applyResult(t, st, clusterOps("second", 20+seq)...) == nil
	})
	_ = st.Close()

	other := (leader + 1) % 3
	survivor := openStore(t, Config{Type: TypeNATS, NATS: NATSConfig{URLs: []string{c.URL(other)}, Prefix: "failover"}})
	got := loadState(t, survivor)
	committed := func(s storeState) bool {
		if len(s.Sessions) != 2 || len(s.Retained) != 2 || len(s.Sessions[0].Deliveries) != 2 {
			return false
		}
		n := 0
		for _, d := range s.Sessions[1].Deliveries {
			if d.Seq == 20+seq || d.Seq == 21+seq {
				n++
			}
		}
		return n == 2
	}
	if !committed(got) {
		t.Fatalf("through %s after the failover: %+v, want both commits whole", c.Name(other), got)
	}

	ctx, cancel := context.WithTimeout(t.Context(), natsStartTimeout)
	defer cancel()
	if err := c.Restart(ctx, leader); err != nil {
		t.Fatal(err)
	}
	// The old leader catches up; read through it alone.
	mqtttest.Eventually(t, 30*time.Second, c.Name(leader)+" serving both commits after its restart", func() bool {
		st, err := Open(t.Context(), Config{Type: TypeNATS, NATS: NATSConfig{URLs: []string{c.URL(leader)}, Prefix: "failover", Timeout: 2 * time.Second}})
		if err != nil {
			return false
		}
		defer func() { _ = st.Close() }()
		s, err := readState(t.Context(), st)
		return err == nil && committed(s)
	})
}
