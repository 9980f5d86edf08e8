package cluster

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/vanemq/vanemq/core/mqtttest"
)

// durableSub connects id to n with a session that outlives the
// connection (MQTT 5 Session Expiry Interval of an hour), collecting what
// it receives.
func durableSub(t *testing.T, n *testNode, id string, clean bool) (*v5Sub, bool) {
	t.Helper()
	s := &v5Sub{id: id, news: make(chan struct{}, 1)}
	expiry := uint32(3600)
	c, ack, err := mqtttest.ConnectPaho(t, n.addr, &paho.Connect{ClientID: id, CleanStart: clean, KeepAlive: 30,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry}}, s.collect)
	if err != nil {
		t.Fatal(err)
	}
	s.c = c
	return s, ack.SessionPresent
}

// TestE2EHandoffWaitsForNode: QoS 1 messages for a node that is down are
// acknowledged to their publisher once JetStream holds them in the node's
// inbox, and reach the node's persistent session when it starts again,
// in order, each once.
func TestE2EHandoffWaitsForNode(t *testing.T) {
	nats := startNATS(t, 1)
	n1 := startNode(t, "n1", nats.URL(0))
	dir := t.TempDir()
	cfg := Config{URLs: []string{nats.URL(0)}}
	n2 := startNodeWith(t, "n2", cfg, dir, "127.0.0.1:0")
	s, _ := durableSub(t, n2, "durable", true)
	s.subscribe(t, 1, "h/#")
	waitRoutes(t, n1, "h/x", 1)
	if err := s.c.Disconnect(&paho.Disconnect{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := n2.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n1.hook.Health(); err != nil {
		t.Fatal(err)
	}
	if got := n1.hook.routes.nodesFor("h/x"); len(got) != 1 {
		t.Fatalf("n1's route table lost n2's offline session's interest when n2 stopped: %v", got)
	}

	pub := connectV5(t, n1, "pub")
	const count = 100
	for i := range count {
		pub.publish(t, "h/x", 1, fmt.Sprint(i)) // acknowledged while n2 is down
	}
	n2 = startNodeWith(t, "n2", cfg, dir, "127.0.0.1:0")
	s, present := durableSub(t, n2, "durable", false)
	if !present {
		t.Fatal("n2 lost the persistent session over its restart")
	}
	checkOrdered(t, "durable", payloads(s.waitCount(t, count)), count)
}

// TestE2EHandoffRefusedWithoutNATS: while NATS is away a QoS 1 message
// with interest on another node cannot be handed off: its PUBACK is
// withheld and, after handoff_timeout, the publisher is disconnected, so
// that it sends the message again; once NATS is back, one sent again
// arrives, and a subscription made meanwhile is known to the cluster (the
// node writes its route table entries again).
func TestE2EHandoffRefusedWithoutNATS(t *testing.T) {
	nats := startNATS(t, 1)
	cfg := Config{URLs: []string{nats.URL(0)}, HandoffTimeout: 500 * time.Millisecond, ReconnectWait: 50 * time.Millisecond}
	n1 := startNodeWith(t, "n1", cfg, "", "127.0.0.1:0")
	n2 := startNodeWith(t, "n2", cfg, "", "127.0.0.1:0")
	sub := connectV5(t, n2, "sub")
	sub.subscribe(t, 1, "r/#")
	local := connectV5(t, n1, "local")
	local.subscribe(t, 1, "r/#")
	waitRoutes(t, n1, "r/x", 1)
	nats.Stop(0)
	mqtttest.Eventually(t, waitTimeout, "n1 not ready", func() bool { return n1.hook.Health() != nil })

	pub := connectV5(t, n1, "pub")
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	acked := make(chan error, 1)
	go func() {
		_, err := pub.c.Publish(ctx, &paho.Publish{Topic: "r/x", QoS: 1, Payload: []byte("lost?")})
		acked <- err
	}()
	local.waitCount(t, 1) // the node's own subscribers got it meanwhile
	mqtttest.Eventually(t, waitTimeout, "the publisher disconnected", func() bool {
		st, ok := n1.srv.Client("pub")
		return !ok || !st.Connected
	})
	cancel()
	if err := <-acked; err == nil {
		t.Fatal("a QoS 1 message was acknowledged although no node but its own could take it")
	}
	if n := n1.hook.stats.handoffFailures.Load(); n == 0 {
		t.Fatal("the refused hand-off was not counted")
	}

	// A subscription made while NATS is away is known to the cluster once
	// it is back.
	late := connectV5(t, n2, "late")
	late.subscribe(t, 1, "late/#")

	rctx, rcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer rcancel()
	if err := nats.Restart(rctx, 0); err != nil {
		t.Fatal(err)
	}
	mqtttest.Eventually(t, waitTimeout, "n1 ready again", func() bool { return n1.hook.Health() == nil })
	waitRoutes(t, n1, "late/x", 1)
	pub = connectV5(t, n1, "pub")
	pub.publish(t, "r/x", 1, "again")
	// The refused message may arrive too: it waited in the connection's
	// reconnect buffer and JetStream stored it once NATS was back, too
	// late for its acknowledgement. QoS 1 allows the duplicate.
	mqtttest.Eventually(t, waitTimeout, "the message sent again on n2", func() bool {
		return slices.Contains(payloads(sub.messages()), "again")
	})
	pub.publish(t, "late/x", 1, "late")
	if got := payloads(late.waitCount(t, 1)); got[0] != "late" {
		t.Fatalf("the subscription made without NATS got %v", got)
	}
}

// TestE2ERestartedNodeLetsClaimedSessionsGo: a node that was down while
// its client resumed on another node (which found no node to hand the
// session over, and started it there) does not bring the old session
// back when it restarts from its store: the record names the other node.
// One the record still gives it, it keeps.
func TestE2ERestartedNodeLetsClaimedSessionsGo(t *testing.T) {
	nats := startNATS(t, 1)
	cfg := Config{URLs: []string{nats.URL(0)}}
	n1 := startNode(t, "n1", nats.URL(0))
	dir := t.TempDir()
	n2 := startNodeWith(t, "n2", cfg, dir, "127.0.0.1:0")
	for _, id := range []string{"moves", "stays"} {
		s, _ := durableSub(t, n2, id, true)
		s.subscribe(t, 1, "z/"+id)
		if err := s.c.Disconnect(&paho.Disconnect{}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := n2.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, present := durableSub(t, n1, "moves", false); present {
		t.Fatal("n1 found the session of a node that is down")
	}
	if n := n1.hook.stats.takeoverLost.Load(); n != 1 {
		t.Fatalf("sessions lost = %d, want 1 (n2 did not answer)", n)
	}
	n2 = startNodeWith(t, "n2", cfg, dir, "127.0.0.1:0")
	if _, ok := n2.srv.Client("moves"); ok {
		t.Fatal("n2 restored a session n1 holds now")
	}
	if _, ok := n2.srv.Client("stays"); !ok {
		t.Fatal("n2 let go a session it still holds")
	}
}
