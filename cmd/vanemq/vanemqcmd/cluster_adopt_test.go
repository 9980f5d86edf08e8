//go:build unix

package vanemqcmd

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/vanemq/vanemq/core/mqtttest"
)

// fromDead is the metric of the sessions a node adopted from dead nodes.
const fromDead = `vanemq_cluster_sessions_moved_total{direction="from_dead"}`

// TestClusterAdoptsDeadNode: two vanemq processes keep their state in
// NATS (a bucket each). n2 holds a connected and an offline persistent
// session when it is killed (SIGKILL) just after n1 acknowledged QoS 1
// messages for both. Their clients connect to n1, which adopts n2's
// sessions: each resumes with session present and gets every message n1
// acknowledged [MQTT-4.3.2-1] [MQTT-3.2.2-2]. n2 starts again and lets
// the adopted sessions go; a session moves back to it with nothing lost.
// Then n2, killed again with an offline session and no client
// reconnecting, has it adopted by n1 after adopt_after.
func TestClusterAdoptsDeadNode(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	exe, nodes := startClusterProcs(t, 2, natsStore)
	n1, n2 := nodes[0], nodes[1]
	closeSub := func(s *soakSubscriber) {
		s.mu.Lock()
		c := s.conn
		s.conn = nil
		s.mu.Unlock()
		if c != nil {
			mqtttest.ClosePaho(c, nil)
		}
	}
	newSub := func(id string) *soakSubscriber {
		s := &soakSubscriber{id: id, node: n2, got: make(map[int]int)}
		if err := s.connect(ctx, true); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { closeSub(s) })
		return s
	}
	live, off := newSub("adopt-live"), newSub("adopt-off")

	pub, _, _, err := mqtttest.DialPaho(n1.mqtt, &paho.Connect{ClientID: "adopt-pub", CleanStart: true, KeepAlive: 30}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer mqtttest.ClosePaho(pub, nil)
	publish := func(from, to int) []bool {
		acked := make([]bool, to)
		for i := from; i < to; i++ {
			pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := pub.Publish(pctx, &paho.Publish{Topic: "soak/" + strconv.Itoa(i%4), QoS: 1, Payload: []byte(strconv.Itoa(i))})
			pcancel()
			if err != nil {
				t.Fatalf("publish %d: %v", i, err)
			}
			acked[i] = true
		}
		return acked
	}
	// n2's subscriptions reach n1's route table through JetStream.
	mqtttest.Eventually(t, 30*time.Second, "a first message on n2", func() bool {
		publish(0, 1)
		live.mu.Lock()
		defer live.mu.Unlock()
		return live.got[0] > 0
	})
	closeSub(off) // offline from here, its session kept (expiry 3600)
	const count = 300
	acked := publish(0, count)
	n2.kill(t)

	for _, s := range []*soakSubscriber{live, off} {
		s.node = n1
		if err := s.connect(ctx, false); err != nil { // fails without session present
			t.Fatal(err)
		}
	}
	awaitAll := func(s *soakSubscriber, acked []bool) {
		t.Helper()
		var n, first int
		if !mqtttest.Until(30*time.Second, func() bool {
			n, first = s.missing(acked)
			return n == 0
		}) {
			t.Fatalf("%s (on %s): %d of %d acknowledged messages never arrived, the first #%d", s.id, s.node.name, n, len(acked), first)
		}
	}
	awaitAll(live, acked)
	awaitAll(off, acked)
	if v := mustMetric(t, "http://"+n1.http+"/metrics", fromDead); v != 2 {
		t.Fatalf("n1 adopted %v sessions from dead nodes, want 2", v)
	}

	// n2 returns, and holds none of the sessions n1 adopted: one moves
	// back to it whole, with what was published meanwhile.
	n2.start(t, exe)
	acked = publish(count, count+50)
	awaitAll(live, acked)
	closeSub(live)
	acked = publish(count+50, count+100)
	live.node = n2
	if err := live.connect(ctx, false); err != nil {
		t.Fatal(err)
	}
	awaitAll(live, acked)

	// Killed again, with an offline session and no client to ask for it:
	// n1 adopts it after adopt_after.
	watched := newSub("adopt-watchdog")
	mqtttest.Eventually(t, 30*time.Second, "n2's new subscription on n1", func() bool {
		publish(count+100, count+101)
		watched.mu.Lock()
		defer watched.mu.Unlock()
		return watched.got[count+100] > 0
	})
	closeSub(watched)
	closeSub(live)
	acked = publish(count+101, count+200)
	n2.kill(t)
	mqtttest.Eventually(t, 60*time.Second, "n1 adopting n2's sessions on its own", func() bool {
		v, err := metrics("http://"+n1.http+"/metrics", fromDead)
		return err == nil && v[0] >= 4
	})
	// The sessions are here now: connecting takes no adoption.
	for _, s := range []*soakSubscriber{watched, live} {
		s.node = n1
		if err := s.connect(ctx, false); err != nil {
			t.Fatal(err)
		}
		awaitAll(s, acked)
	}
	if v := mustMetric(t, "http://"+n1.http+"/metrics", fromDead); v != 4 {
		t.Fatalf("n1 adopted %v sessions from dead nodes, want 4 (2 + 2)", v)
	}
	t.Logf("%d QoS 1 messages acknowledged across two kills of n2: none lost", count+200)
}

// TestClusterWillsOfDeadNode: the wills n2 still owed when it was killed
// are published once, by the node that adopts its sessions: a connected
// client's will without a delay, and the will of a client whose session
// lived in memory only (expiry 0) [MQTT-3.1.2-8]. A will its client
// settled with DISCONNECT 0x00 is not published [MQTT-3.14.4-3], nor a
// delayed one whose client resumed the session on n1 within the delay
// [MQTT-3.1.3-9].
func TestClusterWillsOfDeadNode(t *testing.T) {
	_, nodes := startClusterProcs(t, 2, natsStore)
	n1, n2 := nodes[0], nodes[1]
	wills := make(chan string, 100)
	watcher, _, _, err := mqtttest.DialPaho(n1.mqtt, &paho.Connect{ClientID: "will-watcher", CleanStart: true, KeepAlive: 30},
		func(p *paho.Publish) { wills <- p.Topic })
	if err != nil {
		t.Fatal(err)
	}
	defer mqtttest.ClosePaho(watcher, nil)
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	_, err = watcher.Subscribe(sctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "will/#", QoS: 1}}})
	scancel()
	if err != nil {
		t.Fatal(err)
	}
	hour, two := uint32(3600), uint32(2)
	dial := func(id string, expiry, delay *uint32) *paho.Client {
		t.Helper()
		cp := &paho.Connect{ClientID: id, KeepAlive: 30, CleanStart: true,
			WillMessage: &paho.WillMessage{Topic: "will/" + id, QoS: 1, Payload: []byte("gone")}}
		if expiry != nil {
			cp.Properties = &paho.ConnectProperties{SessionExpiryInterval: expiry}
		}
		if delay != nil {
			cp.WillProperties = &paho.WillProperties{WillDelayInterval: delay}
		}
		c, _, _, err := mqtttest.DialPaho(n2.mqtt, cp, nil)
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		return c
	}
	_ = dial("now", &hour, nil)
	_ = dial("memory", nil, nil)
	_ = dial("delayed", &hour, &two)
	clean := dial("clean", &hour, nil)
	mqtttest.ClosePaho(clean, nil) // DISCONNECT 0x00: the will is discarded
	// The watcher's subscription reaches n2's route table: a will
	// published on n2 reaches it.
	probe := dial("probe", nil, nil)
	mqtttest.ClosePaho(probe, nil)
	_ = dial("probe", nil, nil)
	_ = dial("probe", nil, nil) // takes over: the earlier connection's will goes out
	mqtttest.Eventually(t, 30*time.Second, "the probe's will from n2", func() bool {
		select {
		case topic := <-wills:
			return topic == "will/probe"
		case <-time.After(100 * time.Millisecond):
			return false
		}
	})
	n2.kill(t)

	// The delayed will's client resumes on n1 within the delay: that has
	// n1 adopt n2's sessions.
	expiry := hour
	resumed, _, ack, err := mqtttest.DialPaho(n1.mqtt, &paho.Connect{ClientID: "delayed", KeepAlive: 30,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer mqtttest.ClosePaho(resumed, nil)
	if !ack.SessionPresent {
		t.Fatal("the session of n2 was not adopted by n1")
	}
	got := map[string]int{}
	for len(got) < 3 || got["will/now"] == 0 || got["will/memory"] == 0 {
		select {
		case topic := <-wills:
			got[topic]++
		case <-time.After(30 * time.Second):
			t.Fatalf("wills published after n2 died: %v; want will/now, will/memory and will/probe's", got)
		}
	}
	// Anything more would come within the delayed will's delay, twice over.
	deadline := time.After(4 * time.Second)
	for done := false; !done; {
		select {
		case topic := <-wills:
			got[topic]++
		case <-deadline:
			done = true
		}
	}
	want := map[string]int{"will/now": 1, "will/memory": 1, "will/probe": 1}
	for topic, n := range got {
		if n != want[topic] {
			t.Errorf("%s published %d times after n2 died, want %d", topic, n, want[topic])
		}
	}
}
