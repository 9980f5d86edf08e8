package cluster

import (
	"strings"
	"testing"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/mqtttest"
)

// TestClusterStatusNotStarted: a hook whose server has not started is
// not connected, and says why it is not ready.
func TestClusterStatusNotStarted(t *testing.T) {
	srv, err := core.New(core.Options{AllowAnonymous: true, SysInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(ID, Config{URLs: []string{"nats://127.0.0.1:1"}, Node: "lone"}, srv, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.AddHook(h, 0); err != nil {
		t.Fatal(err)
	}
	st, ok := srv.ClusterStatus()
	if !ok {
		t.Fatal("Server.ClusterStatus: not clustered, want the hook's status")
	}
	if st.Node != "lone" || st.Connected || st.Server != "" || st.JetStream || !strings.Contains(st.Unhealthy, "not connected") {
		t.Errorf("status before start = %+v, want node lone, not connected, no JetStream, unhealthy", st)
	}
	if len(st.Peers) != 1 || !st.Peers[0].Self || st.Peers[0].Name != "lone" {
		t.Errorf("peers before start = %+v, want only this node", st.Peers)
	}
}

// TestE2EClusterStatus: Server.ClusterStatus reports the NATS server a
// node is connected to, its peers, and counts a QoS 1 message forwarded
// by one node and received and delivered by the other.
func TestE2EClusterStatus(t *testing.T) {
	nodes := startCluster(t, 2)
	sub := connectV5(t, nodes[1], "sub")
	sub.subscribe(t, 1, "st/a")
	waitReach(t, nodes[0], "st/a", 1)
	pub := connectV5(t, nodes[0], "pub")
	pub.publish(t, "st/a", 1, "hello")
	sub.waitCount(t, 1)

	mqtttest.Eventually(t, waitTimeout, "both nodes alive in n1's status", func() bool {
		st, _ := nodes[0].srv.ClusterStatus()
		alive := 0
		for _, p := range st.Peers {
			if p.Alive {
				alive++
			}
		}
		return alive == 2
	})
	st1, ok := nodes[0].srv.ClusterStatus()
	if !ok {
		t.Fatal("n1: not clustered")
	}
	if st1.Node != "n1" || !st1.Connected || st1.Server != nodes[0].nats.URL(0) || !st1.JetStream || st1.Unhealthy != "" {
		t.Errorf("n1's status = %+v, want connected to %s with JetStream", st1, nodes[0].nats.URL(0))
	}
	if st1.Counters.Forwarded != 1 || st1.Counters.HandoffFailures != 0 {
		t.Errorf("n1's counters = %+v, want 1 forwarded and no hand-off failures", st1.Counters)
	}
	var n2 core.ClusterPeer
	for _, p := range st1.Peers {
		if p.Name == "n2" {
			n2 = p
		}
	}
	if n2.Self || !n2.Alive || n2.Routes != 1 || n2.Since.IsZero() || n2.LastSeen.IsZero() {
		t.Errorf("n1 sees n2 as %+v, want alive with 1 route", n2)
	}
	mqtttest.Eventually(t, waitTimeout, "n2 counts the message received and delivered", func() bool {
		st, _ := nodes[1].srv.ClusterStatus()
		return st.Counters.Received == 1 && st.Counters.Delivered == 1
	})
}
