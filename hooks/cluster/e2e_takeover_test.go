package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/mqtttest"
	"github.com/vanemq/vanemq/core/packets"
)

// rawDurable connects id to n over a raw MQTT 5 connection with a session
// of an hour, subscribed to filter at QoS 1.
func rawDurable(t *testing.T, n *testNode, id, filter string) *mqtttest.Conn {
	t.Helper()
	cp := &packets.Packet{}
	cp.Connect.ClientID, cp.Connect.KeepAlive = id, 30
	cp.Properties.SessionExpiry = 3600
	cp.Properties.Set(packets.PropSessionExpiry)
	c := mqtttest.DialConnect(t, n.addr, cp)
	c.Subscribe(t, filter, 1)
	return c
}

// waitDisconnect reads c until a DISCONNECT comes and returns its reason
// code, failing when the connection ends or goes quiet first.
func waitDisconnect(t *testing.T, c *mqtttest.Conn) packets.ReasonCode {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for time.Now().Before(deadline) {
		p := c.Read(time.Until(deadline))
		if p == nil {
			t.Fatal("the connection closed without a DISCONNECT")
		}
		if p.Type == packets.Disconnect {
			return p.ReasonCode
		}
	}
	t.Fatal("no DISCONNECT")
	return 0
}

// TestE2ETakeoverAcrossNodes: a client that connects to another node
// takes its session over there: the connection on the old node is closed
// with DISCONNECT Session taken over [MQTT-3.1.4-3], the new CONNACK says
// the session is present [MQTT-3.2.2-2], and the subscriptions and the
// messages queued while the client was away move with it, in order
// [MQTT-4.6.0-5], in both directions and across three nodes; a clean
// start on yet another node discards it everywhere [MQTT-3.1.2-4].
func TestE2ETakeoverAcrossNodes(t *testing.T) {
	nodes := startCluster(t, 3)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	old := rawDurable(t, n1, "mover", "t/#")
	waitRoutes(t, n2, "t/x", 1)

	// Live takeover, n1 -> n2.
	s, present := durableSub(t, n2, "mover", false)
	if !present {
		t.Fatal("CONNACK on n2: session not present; it was on n1")
	}
	if code := waitDisconnect(t, old); code != packets.SessionTakenOver {
		t.Fatalf("the old connection on n1 got DISCONNECT 0x%02x, want 0x8E Session taken over", byte(code))
	}
	if _, ok := n1.srv.Client("mover"); ok {
		t.Fatal("n1 still has the session after it moved")
	}
	pub := connectV5(t, n1, "pub")
	waitRoutes(t, n1, "t/x", 1) // n2's, now
	pub.publish(t, "t/x", 1, "live")
	if got := payloads(s.waitCount(t, 1)); got[0] != "live" {
		t.Fatalf("on n2 the moved subscription got %v", got)
	}

	// Offline queue, n2 -> n3 -> n1.
	next := 0
	for _, to := range []*testNode{n3, n1} {
		if err := s.c.Disconnect(&paho.Disconnect{}); err != nil {
			t.Fatal(err)
		}
		mqtttest.Eventually(t, waitTimeout, "the client gone", func() bool {
			for _, n := range nodes {
				if st, ok := n.srv.Client("mover"); ok && st.Connected {
					return false
				}
			}
			return true
		})
		const queued = 20
		for range queued {
			pub.publish(t, "t/x", 1, fmt.Sprint(next))
			next++
		}
		s, present = durableSub(t, to, "mover", false)
		if !present {
			t.Fatalf("CONNACK on %s: session not present", to.name)
		}
		mqtttest.Until(waitTimeout, func() bool { return len(s.messages()) >= queued })
		got := payloads(s.messages())
		if len(got) != queued {
			t.Fatalf("on %s: got %v, want %d messages", to.name, got, queued)
		}
		for i, p := range got {
			if want := fmt.Sprint(next - queued + i); p != want {
				t.Fatalf("on %s: message %d is %q, want %q (the queue in order): %v", to.name, i, p, want, got)
			}
		}
	}

	// A clean start on n2 discards the session on n1.
	fresh, present := durableSub(t, n2, "mover", true)
	if present {
		t.Fatal("a clean start found a session present")
	}
	mqtttest.Eventually(t, waitTimeout, "n1 let the session go", func() bool {
		_, ok := n1.srv.Client("mover")
		return !ok
	})
	_ = fresh
	if n := n2.hook.stats.adopted.Load() + n3.hook.stats.adopted.Load() + n1.hook.stats.adopted.Load(); n != 3 {
		t.Fatalf("sessions adopted: %d, want 3", n)
	}
}

// TestE2ETakeoverV311: a 3.1.1 client (paho.mqtt.golang) resuming its
// session on another node has its old connection closed [MQTT-3.1.4-2]
// and finds its subscription and queued messages there.
func TestE2ETakeoverV311(t *testing.T) {
	nodes := startCluster(t, 2)
	lost := make(chan error, 1)
	connect := func(n *testNode) (mqtt.Client, chan string) {
		got := make(chan string, 100)
		o := mqtt.NewClientOptions().AddBroker("tcp://" + n.addr).SetClientID("v3mover").SetProtocolVersion(4).
			SetCleanSession(false).SetAutoReconnect(false).
			SetConnectionLostHandler(func(_ mqtt.Client, err error) { lost <- err }).
			SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { got <- string(m.Payload()) })
		c := mqtt.NewClient(o)
		if tok := c.Connect(); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
			t.Fatalf("connect to %s: %v", n.name, tok.Error())
		}
		t.Cleanup(func() { c.Disconnect(100) })
		return c, got
	}
	c1, _ := connect(nodes[0])
	if tok := c1.Subscribe("v3/#", 1, nil); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	c1.Disconnect(100)
	waitRoutes(t, nodes[1], "v3/a", 1)
	pub := connectV5(t, nodes[1], "pub")
	for i := range 5 {
		pub.publish(t, "v3/a", 1, fmt.Sprint(i))
	}
	_, got := connect(nodes[1])
	for i := range 5 {
		select {
		case p := <-got:
			if p != fmt.Sprint(i) {
				t.Fatalf("message %d is %q", i, p)
			}
		case <-time.After(waitTimeout):
			t.Fatalf("after %d messages, no more", i)
		}
	}
	// And a live takeover back: the connection on n2 is closed.
	connect(nodes[0])
	select {
	case <-lost:
	case <-time.After(waitTimeout):
		t.Fatal("the connection on n2 stayed open after the session moved to n1")
	}
}

// TestE2ETakeoverForeignIdentity: a client of another identity claiming a
// session on another node meets the single node's rule
// (foreign_session): with discard, the owner's session is discarded (its
// connection closed) and the newcomer starts clean; with refuse, the
// newcomer is refused with Not authorized (0x87) and the owner's
// connection and session stay where they were.
func TestE2ETakeoverForeignIdentity(t *testing.T) {
	for _, policy := range []core.ForeignSessionPolicy{core.ForeignSessionDiscard, core.ForeignSessionRefuse} {
		t.Run(policy.String(), func(t *testing.T) {
			nats := startNATS(t, 2)
			opts := core.Options{AllowAnonymous: true, SysInterval: -1, ForeignSession: policy}
			n1 := startNodeOpts(t, "n1", Config{URLs: []string{nats.URL(0)}}, "", "127.0.0.1:0", opts)
			n2 := startNodeOpts(t, "n2", Config{URLs: []string{nats.URL(1)}}, "", "127.0.0.1:0", opts)
			cp := &packets.Packet{}
			cp.Connect.ClientID, cp.Connect.KeepAlive = "shared-id", 30
			cp.Connect.Username, cp.Connect.UsernameFlag = "alice", true
			cp.Properties.SessionExpiry = 3600
			cp.Properties.Set(packets.PropSessionExpiry)
			alice := mqtttest.DialConnect(t, n1.addr, cp)
			alice.Subscribe(t, "f/#", 1)

			expiry := uint32(3600)
			_, ack, err := mqtttest.ConnectPaho(t, n2.addr, &paho.Connect{ClientID: "shared-id", KeepAlive: 30, Username: "bob", UsernameFlag: true,
				Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry}}, nil)
			if policy == core.ForeignSessionRefuse {
				if err == nil {
					t.Fatal("bob resumed alice's session on another node")
				}
				if ack == nil || ack.ReasonCode != byte(packets.NotAuthorized) {
					t.Fatalf("bob's CONNACK: %+v, %v; want 0x87 Not authorized", ack, err)
				}
				if st, ok := n1.srv.Client("shared-id"); !ok || !st.Connected || st.Subscriptions != 1 {
					t.Fatalf("alice's session on n1 after the refused claim: %+v, %v", st, ok)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ack.SessionPresent {
				t.Fatal("bob was given alice's session")
			}
			if code := waitDisconnect(t, alice); code != packets.SessionTakenOver {
				t.Fatalf("alice got DISCONNECT 0x%02x, want 0x8E", byte(code))
			}
			if st, ok := n2.srv.Client("shared-id"); !ok || st.Subscriptions != 0 {
				t.Fatalf("bob's session on n2: %+v, %v; want a clean one", st, ok)
			}
		})
	}
}

// TestE2EFence: a node that finds it was stopped long enough for another
// node to claim its session (the record names the other node, a higher
// epoch) lets the session go, closing the client's connection, instead of
// serving a session another node now holds; a session it still holds it
// keeps.
func TestE2EFence(t *testing.T) {
	nodes := startCluster(t, 1)
	n1 := nodes[0]
	stale := rawDurable(t, n1, "stale", "x/#")
	kept := rawDurable(t, n1, "kept", "y/#")
	st := n1.hook.js.Load()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	// What another node's claim of "stale" wrote while n1 was frozen.
	e, err := st.sessions.Get(ctx, sessionKey("stale"))
	if err != nil {
		t.Fatal(err)
	}
	var rec ownerRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		t.Fatal(err)
	}
	rec.Node, rec.Epoch = "n9", rec.Epoch+1
	val, _ := json.Marshal(rec)
	if _, err := st.sessions.Update(ctx, sessionKey("stale"), val, e.Revision()); err != nil {
		t.Fatal(err)
	}
	n1.hook.fence(ctx)
	if code := waitDisconnect(t, stale); code != packets.SessionTakenOver {
		t.Fatalf("the fenced session's connection got 0x%02x, want 0x8E", byte(code))
	}
	if _, ok := n1.srv.Client("stale"); ok {
		t.Fatal("n1 kept a session another node holds")
	}
	if st, ok := n1.srv.Client("kept"); !ok || !st.Connected {
		t.Fatalf("n1 let go a session it still holds: %+v", st)
	}
	_ = kept
	if n := n1.hook.stats.fenced.Load(); n != 1 {
		t.Fatalf("fenced = %d, want 1", n)
	}
}

// TestSplitReply: a session's state too big for one NATS message is cut
// into messages under the limit, in order, the first carrying the
// session; a delivery too big alone is left out and counted.
func TestSplitReply(t *testing.T) {
	var ds []wireDelivery
	for i := range 30 {
		ds = append(ds, wireDelivery{QoS: 1, Publish: make([]byte, 10_000), Origin: fmt.Sprint(i)})
	}
	ds = append(ds, wireDelivery{QoS: 1, Publish: make([]byte, 200_000), Origin: "huge"})
	rep := releaseReply{Found: true, Session: &wireSession{ClientID: "c", Deliveries: ds}}
	parts := splitReply(rep, 64<<10)
	if len(parts) < 5 {
		t.Fatalf("%d parts for 300 kB under 64 kB each", len(parts))
	}
	var got []string
	for i, p := range parts {
		if n := len(mustJSON(p)); n > 64<<10 {
			t.Fatalf("part %d is %d bytes, over the limit", i, n)
		}
		if (i == 0) != (p.Session != nil) || p.More != (i < len(parts)-1) {
			t.Fatalf("part %d: session %v, more %v", i, p.Session != nil, p.More)
		}
		d := p.Chunk
		if p.Session != nil {
			d = p.Session.Deliveries
		}
		for _, x := range d {
			got = append(got, x.Origin)
		}
	}
	if len(got) != 30 || got[0] != "0" || got[29] != "29" || parts[len(parts)-1].Dropped != 1 {
		t.Fatalf("deliveries %v, dropped %d", got, parts[len(parts)-1].Dropped)
	}
}

// TestE2ETakeoverBigSession: a session whose queued messages are many
// times NATS's largest message moves whole, in order.
func TestE2ETakeoverBigSession(t *testing.T) {
	nodes := startCluster(t, 2)
	s, _ := durableSub(t, nodes[0], "big", true)
	s.subscribe(t, 1, "big/#")
	if err := s.c.Disconnect(&paho.Disconnect{}); err != nil {
		t.Fatal(err)
	}
	pub := connectV5(t, nodes[0], "pub")
	const count = 40 // of 100 kB: 4 MB, four times max_payload
	payload := strings.Repeat("x", 100_000)
	for i := range count {
		pub.publish(t, "big/x", 1, fmt.Sprintf("%02d%s", i, payload))
	}
	moved, present := durableSub(t, nodes[1], "big", false)
	if !present {
		t.Fatal("session not present on n2")
	}
	got := moved.waitCount(t, count)
	for i, m := range got {
		if want := fmt.Sprintf("%02d", i); string(m.Payload[:2]) != want || len(m.Payload) != len(payload)+2 {
			t.Fatalf("message %d: %q… (%d bytes), want %s…", i, m.Payload[:2], len(m.Payload), want)
		}
	}
}

// denySecret is an ACL hook: user bob may not read secret/ topics.
type denySecret struct{}

func (denySecret) ID() string { return "test.deny-secret" }

func (denySecret) AuthorizeRead(_ context.Context, cl *core.ClientInfo, topic string) core.Verdict {
	if cl.Username == "bob" && strings.HasPrefix(topic, "secret/") {
		return core.Deny(packets.NotAuthorized, "secret")
	}
	return core.Next
}

// TestE2EReadPermissionAfterTakeover: a session that moves to another
// node is read-checked there, at delivery, as on the node it left:
// messages queued for it before it moved, and those published after,
// reach it only where its identity may read them.
func TestE2EReadPermissionAfterTakeover(t *testing.T) {
	nats := startNATS(t, 2)
	opts := core.Options{AllowAnonymous: true, SysInterval: -1}
	n1 := startNodeOpts(t, "n1", Config{URLs: []string{nats.URL(0)}}, "", "127.0.0.1:0", opts, denySecret{})
	n2 := startNodeOpts(t, "n2", Config{URLs: []string{nats.URL(1)}}, "", "127.0.0.1:0", opts, denySecret{})
	expiry := uint32(3600)
	connect := func(n *testNode, clean bool) *v5Sub {
		s := &v5Sub{id: "bob", news: make(chan struct{}, 1)}
		c, _, err := mqtttest.ConnectPaho(t, n.addr, &paho.Connect{ClientID: "bob-client", CleanStart: clean, KeepAlive: 30,
			Username: "bob", UsernameFlag: true, Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry}}, s.collect)
		if err != nil {
			t.Fatal(err)
		}
		s.c = c
		return s
	}
	bob := connect(n1, true)
	bob.subscribe(t, 1, "#")
	if err := bob.c.Disconnect(&paho.Disconnect{}); err != nil {
		t.Fatal(err)
	}
	pub := connectV5(t, n1, "pub")
	pub.publish(t, "secret/queued", 1, "no")
	pub.publish(t, "public/queued", 1, "yes")
	bob = connect(n2, false)
	waitRoutes(t, n1, "public/x", 1)
	pub.publish(t, "secret/live", 1, "no")
	pub.publish(t, "public/live", 1, "yes")
	pub.publish(t, "public/end", 1, "yes")
	mqtttest.Eventually(t, waitTimeout, "the end marker", func() bool {
		m := bob.messages()
		return len(m) > 0 && m[len(m)-1].Topic == "public/end"
	})
	got := bob.messages()
	for _, m := range got {
		if strings.HasPrefix(m.Topic, "secret/") {
			t.Fatalf("bob read %s on n2 after his session moved there", m.Topic)
		}
	}
	if len(got) != 3 {
		t.Fatalf("bob got %d messages, want public/queued, public/live and public/end", len(got))
	}
}
