package cluster

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/eclipse/paho.golang/paho"

	"github.com/vanemq/vanemq/core/mqtttest"
)

// waitRetained waits until n holds want retained messages.
func waitRetained(t *testing.T, n *testNode, want int64) {
	t.Helper()
	mqtttest.Eventually(t, waitTimeout, fmt.Sprintf("%d retained messages on %s", want, n.name), func() bool {
		return n.srv.Stats().Retained == want
	})
}

// retainedOf subscribes a new client on n to filter and returns the
// retained messages it is sent, by topic, up to the marker.
func retainedOf(t *testing.T, n *testNode, id, filter string, want int) map[string]*paho.Publish {
	t.Helper()
	s := connectV5(t, n, id)
	s.subscribe(t, 1, filter)
	got := map[string]*paho.Publish{}
	for _, p := range s.waitCount(t, want) {
		if !p.Retain {
			t.Fatalf("%s: %s came without RETAIN set [MQTT-3.3.1-8]", id, p.Topic)
		}
		got[p.Topic] = p
	}
	return got
}

// TestE2ERetainedAcrossNodes: a retained message published on one node is
// sent to a wildcard subscription made later on any other [MQTT-3.3.1-6],
// with its Message Expiry Interval counted down [MQTT-3.3.2-6]; an empty
// retained message clears the topic everywhere [MQTT-3.3.1-10]; a node
// that joins later has them all; topics too long for a key are kept too.
func TestE2ERetainedAcrossNodes(t *testing.T) {
	nodes := startCluster(t, 3)
	pub := connectV5(t, nodes[0], "pub")
	long := "r/" + strings.Repeat("x", 2000)
	expiry := uint32(3600)
	for _, p := range []*paho.Publish{
		{Topic: "r/a", QoS: 1, Payload: []byte("a")},
		{Topic: "r/b", QoS: 1, Payload: []byte("b")},
		{Topic: "r/c/d", QoS: 0, Payload: []byte("cd")},
		{Topic: "r/e", QoS: 1, Payload: []byte("e"), Properties: &paho.PublishProperties{MessageExpiry: &expiry}},
		{Topic: long, QoS: 1, Payload: []byte("long")},
		{Topic: "r/b", QoS: 1}, // clears r/b
	} {
		p.Retain = true
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		_, err := pub.c.Publish(ctx, p)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range nodes {
		waitRetained(t, n, 4)
	}
	got := retainedOf(t, nodes[2], "late", "r/#", 4)
	for topic, want := range map[string]string{"r/a": "a", "r/c/d": "cd", "r/e": "e", long: "long"} {
		if p := got[topic]; p == nil || string(p.Payload) != want {
			t.Fatalf("n3 sent %v for %.20s, want %q", p, topic, want)
		}
	}
	if e := got["r/e"].Properties; e == nil || e.MessageExpiry == nil || *e.MessageExpiry > expiry || *e.MessageExpiry < expiry-60 {
		t.Fatalf("r/e's expiry on n3: %+v, want at most %d, counted down", e, expiry)
	}

	n4 := startNode(t, "n4", nodes[0].nats.URL(0))
	waitRetained(t, n4, 4) // read from the bucket before it was ready
	// r/+ matches r/a, r/e and the long topic (two levels).
	if got := retainedOf(t, n4, "later", "r/+", 3); got["r/a"] == nil || got["r/e"] == nil || got[long] == nil {
		t.Fatalf("n4 sent %d retained messages for r/+, want r/a, r/e and the long topic", len(got))
	}

	// Cleared on another node than the one that set it.
	other := connectV5(t, nodes[1], "other")
	for _, topic := range []string{"r/a", long} {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		_, err := other.c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Retain: true})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range append(nodes, n4) {
		waitRetained(t, n, 2)
	}
}
