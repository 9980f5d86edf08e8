package cluster

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vanemq/vanemq/core/mqtttest"
)

// TestE2EFanOutAcrossNodes: a publisher on n1 reaches subscribers on n2
// (MQTT 5) and n3 (3.1.1), every message once and, for each QoS, in
// order [MQTT-4.6.0-5] (QoS 0 travels on core NATS, QoS 1 through
// JetStream, so the two may interleave differently); a subscriber on n1
// itself gets each once too, NATS not echoing n1's messages back to it.
func TestE2EFanOutAcrossNodes(t *testing.T) {
	nodes := startCluster(t, 3)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]

	local := connectV5(t, n1, "local")
	local.subscribe(t, 1, "fan/#")
	remote := connectV5(t, n2, "remote")
	remote.subscribe(t, 1, "fan/#")
	v3 := newV3Client(t, n3, "v3")
	v3.subscribe(t, "fan/+", 1)
	waitReach(t, n1, "fan/x", 2)

	pub := connectV5(t, n1, "pub")
	const count = 200
	for i := range count {
		pub.publish(t, "fan/x", byte(i%2), fmt.Sprint(i))
	}
	for _, s := range []*v5Sub{local, remote} {
		checkOrderedByQoS(t, s.id, payloads(s.waitCount(t, count)), count)
	}
	checkOrderedByQoS(t, "v3", v3.waitCount(t, count), count)
	if d := n1.hook.stats.received.Load(); d != 0 {
		t.Fatalf("n1 received %d of its own messages back from NATS", d)
	}
}

// checkOrderedByQoS fails unless got holds "0" … "n-1" once each, the
// even ones (QoS 0) in order and the odd ones (QoS 1) in order.
func checkOrderedByQoS(t *testing.T, who string, got []string, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("%s: %d messages, want %d", who, len(got), n)
	}
	next := [2]int{0, 1}
	for _, p := range got {
		var i int
		if _, err := fmt.Sscan(p, &i); err != nil {
			t.Fatalf("%s: payload %q", who, p)
		}
		if q := i % 2; i != next[q] {
			t.Fatalf("%s: got %d where QoS %d's next is %d (in order per QoS, once each): %v", who, i, q, next[q], got)
		}
		next[i%2] += 2
	}
}

// TestE2EOverlappingFiltersOneCopy: a client whose filters overlap gets
// one copy of a message from another node [MQTT-3.3.4-2], although its
// node receives a QoS 0 one once for each of its NATS subscriptions; a
// QoS 1 one comes through its inbox once.
func TestE2EOverlappingFiltersOneCopy(t *testing.T) {
	nodes := startCluster(t, 2)
	s := connectV5(t, nodes[1], "overlap")
	s.subscribe(t, 1, "a/+", "a/#", "+/b", "#")
	waitReach(t, nodes[0], "a/b", 1)
	waitReach(t, nodes[0], "end", 1) // "#" alone: its own NATS subscription
	pub := connectV5(t, nodes[0], "pub")
	for _, qos := range []byte{0, 1} {
		s.reset()
		received := nodes[1].hook.stats.received.Load()
		for i := range 50 {
			pub.publish(t, "a/b", qos, fmt.Sprint(i))
		}
		pub.publish(t, "end", qos, "end")
		// Copies of a message arrive before later messages: once "end"
		// is in, any duplicate of the 50 is too.
		if !mqtttest.Until(waitTimeout, func() bool {
			got := s.messages()
			return len(got) > 0 && string(got[len(got)-1].Payload) == "end"
		}) {
			t.Fatalf("QoS %d: no end marker last after %v: got %v", qos, waitTimeout, payloads(s.messages()))
		}
		got := payloads(s.messages())
		checkOrdered(t, fmt.Sprintf("overlap, QoS %d", qos), got[:len(got)-1], 50)
		if r := nodes[1].hook.stats.received.Load() - received; r != 51 {
			t.Fatalf("QoS %d: n2 routed %d messages, want 51", qos, r)
		}
	}
	// a/+, a/# (a.>), +/b and # are four NATS subscriptions matching
	// a/b: NATS brought the QoS 0 copies, and the node routed one.
	if d := nodes[1].hook.stats.duplicates.Load(); d == 0 {
		t.Fatal("n2 dropped no copies: the test did not exercise the dedup")
	}
}

// TestE2EFanInAcrossNodes: publishers on three nodes, one subscriber;
// each publisher's messages arrive in order.
func TestE2EFanInAcrossNodes(t *testing.T) {
	nodes := startCluster(t, 3)
	sub := connectV5(t, nodes[0], "sink")
	sub.subscribe(t, 1, "in/+")
	for _, n := range nodes[1:] {
		waitReach(t, n, "in/x", 1)
	}
	const per = 100
	var wg sync.WaitGroup
	for i, n := range nodes {
		p := connectV5(t, n, fmt.Sprintf("p%d", i))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range per {
				p.publish(t, fmt.Sprintf("in/%d", i), 1, fmt.Sprint(j))
			}
		}()
	}
	wg.Wait()
	got := sub.waitCount(t, 3*per)
	by := map[string][]string{}
	for _, m := range got {
		by[m.Topic] = append(by[m.Topic], string(m.Payload))
	}
	for i := range nodes {
		checkOrdered(t, fmt.Sprintf("publisher %d", i), by[fmt.Sprintf("in/%d", i)], per)
	}
}

// TestE2ESharedAcrossNodes: a share group with members on three nodes,
// the publisher's among them, gets each message once in all [MQTT-4.8.2-2
// is the single-node rule; the cluster keeps it], spread over the nodes,
// at QoS 0 (to the picked node's subject) and QoS 1 (its inbox); an
// ordinary subscription to the same filter gets every message.
func TestE2ESharedAcrossNodes(t *testing.T) {
	nodes := startCluster(t, 3)
	var members []*v5Sub
	where := []string{"n1", "n2", "n2", "n3"}
	for i, n := range []*testNode{nodes[0], nodes[1], nodes[1], nodes[2]} {
		m := connectV5(t, n, fmt.Sprintf("m%d", i))
		m.subscribe(t, 1, "$share/g/work/#")
		members = append(members, m)
	}
	plain := connectV5(t, nodes[2], "plain")
	plain.subscribe(t, 1, "work/#")
	waitReach(t, nodes[0], "work/j", 1)  // n3's ordinary subscription
	waitRoutes(t, nodes[0], "work/j", 2) // and n2's and n3's members
	pub := connectV5(t, nodes[0], "pub")
	for _, qos := range []byte{0, 1} {
		t.Run(fmt.Sprintf("QoS %d", qos), func(t *testing.T) {
			plain.reset()
			for _, m := range members {
				m.reset()
			}
			const count = 90
			for i := range count {
				pub.publish(t, "work/j", qos, fmt.Sprint(i))
			}
			checkOrdered(t, "plain", payloads(plain.waitCount(t, count)), count)
			total := func() int {
				n := 0
				for _, m := range members {
					n += len(m.messages())
				}
				return n
			}
			mqtttest.Eventually(t, waitTimeout, "every message taken by a member", func() bool { return total() >= count })
			pub.publish(t, "work/end", qos, "end") // to one member: copies of the 90 are in before it
			mqtttest.Eventually(t, waitTimeout, "the end marker", func() bool { return total() == count+1 })
			seen := map[string]int{}
			perNode := map[string]int{}
			for i, m := range members {
				for _, p := range m.messages() {
					seen[string(p.Payload)]++
					perNode[where[i]]++
				}
			}
			for p, n := range seen {
				if n != 1 {
					t.Fatalf("message %s went to %d members of the group, want 1", p, n)
				}
			}
			if len(seen) != count+1 {
				t.Fatalf("the group got %d distinct messages, want %d", len(seen), count+1)
			}
			for _, n := range []string{"n1", "n2", "n3"} {
				if perNode[n] < count/6 {
					t.Fatalf("messages by node %v: the group's messages should be spread over the three nodes", perNode)
				}
			}
		})
	}
}

// TestE2EInterestFollowsSubscriptions: a node subscribes in NATS while it
// has a subscriber for a filter and unsubscribes when the last one goes.
func TestE2EInterestFollowsSubscriptions(t *testing.T) {
	nodes := startCluster(t, 1)
	n := nodes[0]
	subs := func() int {
		n.hook.mu.Lock()
		defer n.hook.mu.Unlock()
		return len(n.hook.subs)
	}
	a := connectV5(t, n, "a")
	a.subscribe(t, 0, "x/#", "y")
	b := connectV5(t, n, "b")
	b.subscribe(t, 0, "x/#")
	mqtttest.Eventually(t, waitTimeout, "two NATS filters", func() bool { return subs() == 2 })
	n.hook.mu.Lock()
	got := len(n.hook.subs[interestKey{"", "x/#"}])
	n.hook.mu.Unlock()
	if got != 2 {
		t.Fatalf("x/# has %d NATS subscriptions, want 2 (x.> and x)", got)
	}
	_ = a.c.Disconnect(&paho.Disconnect{})
	mqtttest.Eventually(t, waitTimeout, "y's NATS subscription gone", func() bool { return subs() == 1 })
	_ = b.c.Disconnect(&paho.Disconnect{})
	mqtttest.Eventually(t, waitTimeout, "no NATS subscriptions", func() bool { return subs() == 0 })
}

// TestE2EMosquittoAcrossNodes: Debian's mosquitto_pub on n1 and
// mosquitto_sub on n2, in MQTT 5 and 3.1.1.
func TestE2EMosquittoAcrossNodes(t *testing.T) {
	for _, tool := range []string{"mosquitto_sub", "mosquitto_pub"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing (Debian package mosquitto-clients; `make test` installs it): %v", tool, err)
		}
	}
	nodes := startCluster(t, 2)
	hostPort := func(n *testNode) (string, string) {
		i := strings.LastIndexByte(n.addr, ':')
		return n.addr[:i], n.addr[i+1:]
	}
	for _, v := range []string{"mqttv5", "mqttv311"} {
		t.Run(v, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			h2, p2 := hostPort(nodes[1])
			id := "mosq-sub-" + v
			sub := exec.CommandContext(ctx, "mosquitto_sub", "-h", h2, "-p", p2, "-V", v, "-i", id,
				"-t", "m/"+v+"/#", "-q", "1", "-C", "3", "-W", "15", "-F", "%t %p")
			var out strings.Builder
			sub.Stdout, sub.Stderr = &out, &out
			if err := sub.Start(); err != nil {
				t.Fatal(err)
			}
			mqtttest.Eventually(t, waitTimeout, "mosquitto_sub's subscription", func() bool {
				st, ok := nodes[1].srv.Client(id)
				return ok && st.Subscriptions == 1
			})
			waitReach(t, nodes[0], "m/"+v+"/0", 1)
			h1, p1 := hostPort(nodes[0])
			for i := range 3 {
				pub := exec.CommandContext(ctx, "mosquitto_pub", "-h", h1, "-p", p1, "-V", v, "-i", "mosq-pub-"+v,
					"-t", fmt.Sprintf("m/%s/%d", v, i), "-q", "1", "-m", fmt.Sprint(i))
				if o, err := pub.CombinedOutput(); err != nil {
					t.Fatalf("mosquitto_pub: %v\n%s", err, o)
				}
			}
			if err := sub.Wait(); err != nil {
				t.Fatalf("mosquitto_sub: %v\n%s", err, out.String())
			}
			var want strings.Builder
			for i := range 3 {
				fmt.Fprintf(&want, "m/%s/%d %d\n", v, i, i)
			}
			if got := out.String(); got != want.String() {
				t.Errorf("mosquitto_sub printed %q, want %q", got, want.String())
			}
		})
	}
}

// payloads returns the messages' payloads.
func payloads(ms []*paho.Publish) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = string(m.Payload)
	}
	return out
}

// checkOrdered fails unless got is "0" … "n-1" in order.
func checkOrdered(t *testing.T, who string, got []string, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("%s: %d messages, want %d", who, len(got), n)
	}
	for i, p := range got {
		if p != fmt.Sprint(i) {
			t.Fatalf("%s: message %d is %q, want %q (in order, once each)", who, i, p, fmt.Sprint(i))
		}
	}
}

// v3Client is a paho.mqtt.golang (3.1.1) client collecting payloads.
type v3Client struct {
	c   mqtt.Client
	id  string
	mu  sync.Mutex
	got []string
}

func newV3Client(t *testing.T, n *testNode, id string) *v3Client {
	t.Helper()
	v := &v3Client{id: id}
	o := mqtt.NewClientOptions().AddBroker("tcp://" + n.addr).SetClientID(id).SetProtocolVersion(4).SetCleanSession(true).SetAutoReconnect(false)
	v.c = mqtt.NewClient(o)
	if tok := v.c.Connect(); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		t.Fatalf("%s: connect: %v", id, tok.Error())
	}
	t.Cleanup(func() { v.c.Disconnect(100) })
	return v
}

func (v *v3Client) subscribe(t *testing.T, filter string, qos byte) {
	t.Helper()
	tok := v.c.Subscribe(filter, qos, func(_ mqtt.Client, m mqtt.Message) {
		v.mu.Lock()
		v.got = append(v.got, string(m.Payload()))
		v.mu.Unlock()
	})
	if !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		t.Fatalf("%s: subscribe: %v", v.id, tok.Error())
	}
}

func (v *v3Client) waitCount(t *testing.T, n int) []string {
	t.Helper()
	var got []string
	mqtttest.Eventually(t, waitTimeout, fmt.Sprintf("%s: %d messages", v.id, n), func() bool {
		v.mu.Lock()
		defer v.mu.Unlock()
		got = append(got[:0], v.got...)
		return len(got) >= n
	})
	return got
}

// TestE2ELongTopicStaysLocal: a QoS 0 message on a topic whose subject
// would be longer than NATS takes (each non-ASCII byte is three in a
// subject) is delivered on its node only, and does not cost the node its
// NATS connection; at QoS 1 it travels through the inbox, which does not
// put the topic in the subject.
func TestE2ELongTopicStaysLocal(t *testing.T) {
	nodes := startCluster(t, 2)
	long := strings.Repeat("é", 1000) // 2000 bytes, a 6000-byte subject
	local := connectV5(t, nodes[0], "local")
	local.subscribe(t, 1, long, "short")
	remote := connectV5(t, nodes[1], "remote")
	remote.subscribe(t, 1, "#")
	waitReach(t, nodes[0], "short", 1)
	pub := connectV5(t, nodes[0], "pub")
	pub.publish(t, long, 0, "0")
	pub.publish(t, long, 1, "1")
	pub.publish(t, "short", 0, "2")
	if got := payloads(local.waitCount(t, 3)); strings.Join(got, ",") != "0,1,2" {
		t.Fatalf("local subscriber got %v", got)
	}
	got := payloads(remote.waitCount(t, 2))
	slices.Sort(got)
	if strings.Join(got, ",") != "1,2" {
		t.Fatalf("remote subscriber got %v, want the long topic's QoS 1 message and the short topic's", got)
	}
	if err := nodes[0].hook.Health(); err != nil {
		t.Fatalf("n1 lost NATS over a long topic: %v", err)
	}
	if n := nodes[0].hook.stats.unrouted.Load(); n != 1 {
		t.Fatalf("unrouted = %d, want 1", n)
	}
}

// TestE2EQoS2AcrossNodes: QoS 2 messages published on n1 reach a QoS 2
// subscriber on n2 exactly once each, in order [MQTT-4.3.3-10]
// [MQTT-4.6.0-5], through n2's inbox.
func TestE2EQoS2AcrossNodes(t *testing.T) {
	nodes := startCluster(t, 2)
	s := connectV5(t, nodes[1], "q2")
	s.subscribe(t, 2, "q2/#")
	waitRoutes(t, nodes[0], "q2/x", 1)
	pub := connectV5(t, nodes[0], "pub")
	const count = 100
	for i := range count {
		pub.publish(t, "q2/x", 2, fmt.Sprint(i))
	}
	pub.publish(t, "q2/end", 2, "end")
	got := s.waitCount(t, count+1)
	for _, m := range got {
		if m.QoS != 2 {
			t.Fatalf("delivered at QoS %d, want 2", m.QoS)
		}
	}
	checkOrdered(t, "q2", payloads(got)[:count], count)
}

// TestE2EWillAcrossNodes: the will of a client whose connection to n1
// ends without DISCONNECT reaches a subscriber on n2 [MQTT-3.1.2-8]; one
// that disconnects cleanly publishes none [MQTT-3.1.2-10].
func TestE2EWillAcrossNodes(t *testing.T) {
	nodes := startCluster(t, 2)
	s := connectV5(t, nodes[1], "watcher")
	s.subscribe(t, 1, "wills/#")
	waitRoutes(t, nodes[0], "wills/x", 1)
	for _, tc := range []struct {
		id    string
		clean bool
	}{{"clean", true}, {"dies", false}} {
		c, conn, _, err := mqtttest.DialPaho(nodes[0].addr, &paho.Connect{ClientID: tc.id, CleanStart: true, KeepAlive: 30,
			WillMessage: &paho.WillMessage{Topic: "wills/" + tc.id, QoS: 1, Payload: []byte(tc.id)}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if tc.clean {
			mqtttest.ClosePaho(c, nil)
		} else {
			mqtttest.ClosePaho(c, conn) // the connection drops
		}
	}
	got := s.waitCount(t, 1)
	if len(got) != 1 || got[0].Topic != "wills/dies" {
		t.Fatalf("wills on n2: %v, want only wills/dies", payloads(got))
	}
	pub := connectV5(t, nodes[0], "pub")
	pub.publish(t, "wills/end", 1, "end")
	if got := payloads(s.waitCount(t, 2)); got[1] != "end" {
		t.Fatalf("after the marker: %v (a will for the clean disconnect?)", got)
	}
}
