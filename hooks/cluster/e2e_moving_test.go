package cluster

import (
	"context"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/eclipse/paho.golang/paho"

	"github.com/vanemq/vanemq/core/mqtttest"
)

// TestE2ETakeoverUnderLoad: a persistent QoS 1 subscriber moves between
// n2 and n3 again and again while a publisher sends numbered QoS 1
// messages as fast as they are acknowledged, from a third node (n1) or
// from one of the two (n2: its messages for the session are local before
// a move and remote after it). Every acknowledged message reaches it
// [MQTT-4.3.2-1], across each takeover [MQTT-3.1.4-3]: those published
// while its session was moving included. A full-speed load run:
// `make soak-cluster` (VANEMQ_SOAK_CLUSTER) runs it. With a core kept
// busy by another process it still loses one message in several runs
// (issue 18's note).
func TestE2ETakeoverUnderLoad(t *testing.T) {
	if os.Getenv("VANEMQ_SOAK_CLUSTER") == "" {
		t.Skip("VANEMQ_SOAK_CLUSTER unset: `make soak-cluster` runs this")
	}
	for _, tc := range []struct {
		name string
		pub  int
	}{{"publisher on a third node", 0}, {"publisher on a node the session leaves", 1}} {
		t.Run(tc.name, func(t *testing.T) { takeoverUnderLoad(t, tc.pub) })
	}
}

func takeoverUnderLoad(t *testing.T, pubNode int) {
	nodes := startCluster(t, 3)
	n1 := nodes[0]
	var (
		mu  sync.Mutex
		got = map[int]int{}
	)
	onMsg := func(p *paho.Publish) {
		if n, err := strconv.Atoi(string(p.Payload)); err == nil {
			mu.Lock()
			got[n]++
			mu.Unlock()
		}
	}
	expiry := uint32(3600)
	dial := func(n *testNode, clean bool) *paho.Client {
		t.Helper()
		var (
			c   *paho.Client
			ack *paho.Connack
			err error
		)
		// Refused while the holder is busy (0x88): connect again, as
		// clients do.
		if !mqtttest.Until(waitTimeout, func() bool {
			c, _, ack, err = mqtttest.DialPaho(n.addr, &paho.Connect{ClientID: "mover", CleanStart: clean, KeepAlive: 30,
				Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry}}, onMsg)
			return err == nil
		}) {
			t.Fatalf("cannot connect to %s: %v", n.name, err)
		}
		if !clean && !ack.SessionPresent {
			t.Fatalf("the session did not move to %s", n.name)
		}
		return c
	}
	c := dial(nodes[1], true)
	sctx, scancel := context.WithTimeout(context.Background(), waitTimeout)
	if _, err := c.Subscribe(sctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "mv/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	scancel()
	waitRoutes(t, n1, "mv/x", 1)
	waitRoutes(t, nodes[2], "mv/x", 1)

	pub := connectV5(t, nodes[pubNode], "mv-pub")
	var (
		acked   []bool
		ackMu   sync.Mutex
		stop    atomic.Bool
		pubDone = make(chan error, 1)
	)
	go func() {
		for i := 0; !stop.Load(); i++ {
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			_, err := pub.c.Publish(ctx, &paho.Publish{Topic: "mv/" + strconv.Itoa(i%4), QoS: 1, Payload: []byte(strconv.Itoa(i))})
			cancel()
			ackMu.Lock()
			acked = append(acked, err == nil)
			ackMu.Unlock()
			if err != nil {
				pubDone <- err
				return
			}
		}
		pubDone <- nil
	}()
	count := func() int { ackMu.Lock(); defer ackMu.Unlock(); return len(acked) }
	const moves = 12
	for i := range moves {
		at := count()
		mqtttest.Eventually(t, waitTimeout, "messages flowing", func() bool { return count() >= at+100 })
		old := c
		c = dial(nodes[1+(i+1)%2], false)
		mqtttest.ClosePaho(old, nil)
	}
	stop.Store(true)
	if err := <-pubDone; err != nil {
		t.Fatalf("publisher: %v", err)
	}
	defer mqtttest.ClosePaho(c, nil)
	missing := func() (int, int) {
		mu.Lock()
		defer mu.Unlock()
		n, first := 0, -1
		for i, ok := range acked {
			if ok && got[i] == 0 {
				if first < 0 {
					first = i
				}
				n++
			}
		}
		return n, first
	}
	var n, first int
	if !mqtttest.Until(waitTimeout, func() bool { n, first = missing(); return n == 0 }) {
		t.Fatalf("%d of %d acknowledged messages never reached the moving subscriber (the first #%d) across %d takeovers", n, len(acked), first, moves)
	}
	mu.Lock()
	dups := 0
	for _, c := range got {
		dups += c - 1
	}
	mu.Unlock()
	t.Logf("%d messages across %d takeovers, none lost (%d copies, allowed at QoS 1)", len(acked), moves, dups)
}
