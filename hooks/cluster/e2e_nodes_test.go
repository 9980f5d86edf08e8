package cluster

import (
	"context"
	"fmt"
	"testing"

	"github.com/vanemq/vanemq/core/mqtttest"
)

// TestE2EPeers: each node lists the cluster's nodes from the registry,
// with the routes each holds; a node that stops leaves the registry.
func TestE2EPeers(t *testing.T) {
	nodes := startCluster(t, 3)
	s := connectV5(t, nodes[1], "s")
	s.subscribe(t, 1, "p/a", "p/b")
	alive := func(n *testNode) string {
		out := ""
		for _, p := range n.hook.Peers() {
			if p.Alive {
				out += fmt.Sprintf("%s:%d ", p.Name, p.Routes)
			}
		}
		return out
	}
	mqtttest.Eventually(t, waitTimeout, "n1 sees three nodes, n2 with its two routes", func() bool {
		return alive(nodes[0]) == "n1:0 n2:2 n3:0 "
	})
	for _, p := range nodes[1].hook.Peers() {
		if p.Self != (p.Name == "n2") || p.Since.IsZero() {
			t.Fatalf("n2's peers: %+v", nodes[1].hook.Peers())
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := nodes[2].srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	mqtttest.Eventually(t, waitTimeout, "n3 gone from n1's list", func() bool {
		return alive(nodes[0]) == "n1:0 n2:2 "
	})
}
