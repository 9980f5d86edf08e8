package cluster

import (
	"context"
	"runtime"
	"testing"

	"github.com/eclipse/paho.golang/paho"

	"github.com/vanemq/vanemq/core/mqtttest"
)

// TestE2ENoGoroutineLeak: two nodes that route QoS 0 and 1, move a
// session between them and stop leave no goroutine behind, NATS servers
// included.
func TestE2ENoGoroutineLeak(t *testing.T) {
	baseline := runtime.NumGoroutine()
	t.Run("cluster", func(t *testing.T) {
		nodes := startCluster(t, 2)
		s, _ := durableSub(t, nodes[1], "leaky", true)
		s.subscribe(t, 1, "l/#")
		waitReach(t, nodes[0], "l/x", 1)
		pub := connectV5(t, nodes[0], "pub")
		pub.publish(t, "l/x", 0, "0")
		pub.publish(t, "l/x", 1, "1")
		s.waitCount(t, 2)
		moved, _ := durableSub(t, nodes[0], "leaky", false) // takes the session over to n1
		if err := moved.c.Disconnect(&paho.Disconnect{}); err != nil {
			t.Fatal(err)
		}
		for _, n := range nodes {
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			err := n.srv.Shutdown(ctx)
			cancel()
			if err != nil {
				t.Fatal(err)
			}
		}
	})
	mqtttest.CheckGoroutines(t, "after two nodes and their NATS servers stopped", baseline)
}
