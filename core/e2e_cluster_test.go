package core_test

// Tests of the ClusterHook contract (core/cluster.go): two brokers joined
// by linkHook, which carries each forwarded message to the other broker's
// DeliverRemote on a goroutine of its own, as hooks/cluster does over NATS.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/valyala/bytebufferpool"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/mqtttest"
	"github.com/vanemq/vanemq/core/packets"
)

// linkHook joins its broker to peer. With hold set, the done of each
// QoS 1/2 hand-off is parked on held for the test to call.
type linkHook struct {
	hold bool
	// noHold, when set, has Forward hand nothing off that waits (no
	// Forwarded.Hold): as a hook with no other node to send to.
	noHold bool
	// shared, when set, is Forward's delivery of share groups here.
	shared func(f *core.Forwarded) int

	mu       sync.Mutex
	peer     *core.Server
	changes  []core.Interest
	forwards []string // topics forwarded, in order

	changed chan struct{}
	held    chan func(error)
	carry   chan func()
}

func newLinkHook(hold bool) *linkHook {
	return &linkHook{hold: hold, changed: make(chan struct{}, 1024), held: make(chan func(error), 64), carry: make(chan func(), 1024)}
}

func (*linkHook) ID() string { return "test.link" }

func (h *linkHook) InterestChanged(in core.Interest) {
	h.mu.Lock()
	h.changes = append(h.changes, in)
	h.mu.Unlock()
	h.changed <- struct{}{}
}

func (h *linkHook) Forward(f *core.Forwarded) int {
	var done func(error)
	if !h.noHold {
		done = f.Hold()
		if f.Hold() != nil {
			panic("a second Hold returned a done")
		}
	}
	n := 0
	if h.shared != nil {
		n = h.shared(f)
	}
	buf := bytebufferpool.Get()
	err := f.Encode(buf)
	b := append([]byte(nil), buf.B...)
	bytebufferpool.Put(buf)
	origin := f.Origin()
	h.mu.Lock()
	h.forwards = append(h.forwards, f.Topic())
	peer := h.peer
	h.mu.Unlock()
	h.carry <- func() {
		if err == nil && peer != nil {
			_, err = peer.DeliverRemote(b, origin, "", "")
		}
		if done == nil {
			return
		}
		if h.hold {
			h.held <- done
			return
		}
		done(err)
	}
	if peer != nil {
		n++ // handed to the peer
	}
	return n
}

func (h *linkHook) ClaimSession(context.Context, core.SessionClaim) error { return nil }

func (h *linkHook) SessionEnded(string) {}

func (h *linkHook) WillSettled(string) {}

// run carries the forwarded messages until the test ends.
func (h *linkHook) run(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case fn := <-h.carry:
				fn()
			case <-ctx.Done():
				return
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-stopped })
}

// lastInterest returns the last change told for (group, filter).
func (h *linkHook) lastInterest(group, filter string) (core.Interest, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := len(h.changes) - 1; i >= 0; i-- {
		if c := h.changes[i]; c.Group == group && c.Filter == filter {
			return c, true
		}
	}
	return core.Interest{}, false
}

func (h *linkHook) forwarded() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.forwards...)
}

// linkedPair starts brokers a and b, each forwarding to the other.
func linkedPair(t *testing.T) (a, b *testBroker, ha, hb *linkHook) {
	ha, hb = newLinkHook(false), newLinkHook(false)
	ha.run(t)
	hb.run(t)
	a = hookBroker(t, withHooks(ha))
	b = hookBroker(t, withHooks(hb))
	ha.mu.Lock()
	ha.peer = b.Server
	ha.mu.Unlock()
	hb.mu.Lock()
	hb.peer = a.Server
	hb.mu.Unlock()
	return a, b, ha, hb
}

// TestClusterInterest: the hook hears each distinct (group, filter) when
// its first subscription comes, when its highest QoS changes, and when the
// last one goes, including when a session ends.
func TestClusterInterest(t *testing.T) {
	h := newLinkHook(false)
	h.run(t)
	b := hookBroker(t, withHooks(h))
	want := func(group, filter string, qos byte, count int) {
		t.Helper()
		mqtttest.Eventually(t, waitTimeout, "interest in "+group+" "+filter, func() bool {
			in, ok := h.lastInterest(group, filter)
			return ok && in.QoS == qos && in.Count == count
		})
	}
	c1 := connectV5(t, b.Addr, v5Connect("c1"))
	c1.sub("a/+", 0)
	want("", "a/+", 0, 1)
	c2 := connectV5(t, b.Addr, v5Connect("c2"))
	c2.sub("a/+", 1)
	want("", "a/+", 1, 2)
	c2.sub("$share/g/a/#", 2)
	want("g", "a/#", 2, 1)
	if got := len(b.Interests()); got != 2 {
		t.Fatalf("Interests() lists %d pairs, want 2: %+v", got, b.Interests())
	}
	// c2 re-subscribes at QoS 0: the highest QoS on a/+ falls to 0.
	c2.sub("a/+", 0)
	want("", "a/+", 0, 2)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := c1.Cli.Unsubscribe(ctx, &paho.Unsubscribe{Topics: []string{"a/+"}}); err != nil {
		t.Fatal(err)
	}
	want("", "a/+", 0, 1)
	// c2's clean session ends with its connection: all of its interest goes.
	_ = c2.Cli.Disconnect(&paho.Disconnect{})
	want("", "a/+", 0, 0)
	want("g", "a/#", 0, 0)
	if got := b.Interests(); len(got) != 0 {
		t.Fatalf("Interests() after the last subscription went: %+v", got)
	}
}

// TestClusterDeliverRemote: a message published on one broker reaches the
// other's subscribers with its properties, once per client however many of
// its filters match [MQTT-3.3.4-2], is not retained there nor forwarded
// back, and $SYS topics stay on their node.
func TestClusterDeliverRemote(t *testing.T) {
	a, b, ha, hb := linkedPair(t)
	sub := connectV5(t, b.Addr, v5Connect("sub"))
	sub.sub("t/#", 1)
	sub.sub("t/+", 1)
	pub := connectV5(t, a.Addr, v5Connect("pub"))
	expiry := uint32(100)
	pub.publish(&paho.Publish{Topic: "t/x", QoS: 1, Retain: true, Payload: []byte("hello"), Properties: &paho.PublishProperties{
		MessageExpiry: &expiry, User: paho.UserProperties{{Key: "k", Value: "v"}}, ContentType: "text/plain",
	}})
	pub.pub("t/end", 1, "end")
	got := sub.until("t/end")
	if len(got) != 1 {
		t.Fatalf("the subscriber got %d copies of t/x, want 1 [MQTT-3.3.4-2]: %v", len(got), got)
	}
	m := got[0]
	if string(m.Payload) != "hello" || m.QoS != 1 || m.Props.ContentType != "text/plain" || m.Props.User.Get("k") != "v" {
		t.Fatalf("remote delivery %v props %+v", m, m.Props)
	}
	if m.Props.MessageExpiry == nil || *m.Props.MessageExpiry > expiry || *m.Props.MessageExpiry < expiry-5 {
		t.Fatalf("Message Expiry Interval %v, want at most %d counting down [MQTT-3.3.2-6]", m.Props.MessageExpiry, expiry)
	}
	if m.Retain {
		t.Fatal("a live delivery of a retained message has RETAIN set without Retain As Published [MQTT-3.3.1-12]")
	}
	if n := b.Stats().Retained; n != 0 {
		t.Fatalf("DeliverRemote retained the message on the receiving node (%d retained)", n)
	}
	if n := b.Stats().MessagesFromCluster; n != 2 {
		t.Fatalf("MessagesFromCluster = %d, want 2", n)
	}
	if f := hb.forwarded(); len(f) != 0 {
		t.Fatalf("the receiving node forwarded remote messages again: %v", f)
	}
	if f := ha.forwarded(); len(f) != 2 || f[0] != "t/x" || f[1] != "t/end" {
		t.Fatalf("forwarded %v, want [t/x t/end]", f)
	}
	// The broker's own $SYS topics are not forwarded.
	if err := a.Publish(core.InlineMessage{Topic: "$SYS/x", Payload: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	if err := a.Publish(core.InlineMessage{Topic: "t/inline", Payload: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	if f := ha.forwarded(); len(f) != 3 || f[2] != "t/inline" {
		t.Fatalf("forwarded %v, want t/inline after t/end and no $SYS topic", f)
	}
}

// TestClusterDeliverRemoteShared: a message forwarded for a share group
// goes to one member of that group; one forwarded for ordinary
// subscriptions reaches no share group.
func TestClusterDeliverRemoteShared(t *testing.T) {
	b := startBroker(t, core.Options{})
	m1 := connectV5(t, b.Addr, v5Connect("m1"))
	m1.sub("$share/g/s/#", 1)
	m2 := connectV5(t, b.Addr, v5Connect("m2"))
	m2.sub("$share/g/s/#", 1)
	plain := connectV5(t, b.Addr, v5Connect("plain"))
	plain.sub("s/#", 1)
	encode := func(topic string) []byte { return encodeQoS1(t, topic) }
	for i := range 4 {
		n, err := b.DeliverRemote(encode("s/a"), "remote", "g", "s/#")
		if err != nil || n != 1 {
			t.Fatalf("shared delivery %d: %d deliveries, %v; want 1", i, n, err)
		}
	}
	if n, _ := b.DeliverRemote(encode("s/a"), "remote", "other", "s/#"); n != 0 {
		t.Fatalf("a message for a group this node does not have was delivered %d times", n)
	}
	if n, err := b.DeliverRemote(encode("s/end"), "remote", "", ""); err != nil || n != 1 {
		t.Fatalf("ordinary delivery: %d deliveries, %v; want 1 (plain only, no share group)", n, err)
	}
	if got := plain.until("s/end"); len(got) != 0 {
		t.Fatalf("the ordinary subscriber got messages meant for the share group: %v", got)
	}
	total := 0
	for _, c := range []*v5Client{m1, m2} {
		for done := false; !done; {
			select {
			case <-c.msgs:
				total++
			case <-time.After(300 * time.Millisecond):
				done = true
			}
		}
	}
	if total != 4 {
		t.Fatalf("the share group's members got %d messages, want 4 (one member each)", total)
	}
	if _, err := b.DeliverRemote([]byte{0x30}, "remote", "", ""); err == nil {
		t.Fatal("DeliverRemote took a truncated PUBLISH")
	}
}

// encodeQoS1 is a QoS 1 PUBLISH on topic as Forwarded.Encode makes one.
func encodeQoS1(t *testing.T, topic string) []byte {
	t.Helper()
	p := &packets.Packet{Type: packets.Publish, ProtocolVersion: packets.Version5, QoS: 1, PacketID: 1, Topic: topic, Payload: []byte("x")}
	buf := bytebufferpool.Get()
	defer bytebufferpool.Put(buf)
	if err := p.Encode(buf); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.B...)
}

// TestClusterDeliverTo: a batch's DeliverTo reaches only the clients its
// filter accepts (the sessions a node adopted from a dead node), once
// each; the others, and the next Deliver, are untouched by the filter.
func TestClusterDeliverTo(t *testing.T) {
	b := startBroker(t, core.Options{})
	adopted := connectV5(t, b.Addr, v5Connect("adopted"))
	adopted.sub("d/#", 1)
	local := connectV5(t, b.Addr, v5Connect("local"))
	local.sub("d/#", 1)
	encode := func(topic string) []byte { return encodeQoS1(t, topic) }
	rb := b.NewRemoteBatch()
	only := func(id string) bool { return id == "adopted" }
	if n, err := rb.DeliverTo(encode("d/1"), "remote", "", "", only); err != nil || n != 1 {
		t.Fatalf("DeliverTo: %d deliveries, %v; want 1", n, err)
	}
	if n, err := rb.Deliver(encode("d/2"), "remote", "", ""); err != nil || n != 2 {
		t.Fatalf("Deliver after DeliverTo: %d deliveries, %v; want 2 (no filter left)", n, err)
	}
	rb.Flush(nil)
	if got := adopted.until("d/2"); len(got) != 1 || got[0].Topic != "d/1" {
		t.Fatalf("the accepted client got %v before d/2, want d/1", got)
	}
	if got := local.until("d/2"); len(got) != 0 {
		t.Fatalf("a client the filter refused got %v", got)
	}
}

// holdingBroker starts a broker whose cluster hand-offs wait for the test
// (linkHook.held) and connects a raw MQTT 5 client to it.
func holdingBroker(t *testing.T) (*testBroker, *linkHook, *mqtttest.Conn) {
	h := newLinkHook(true)
	h.run(t)
	a := hookBroker(t, withHooks(h))
	return a, h, mqtttest.Dial(t, a.Addr, "pub", "")
}

// publishHeld sends a QoS 1 PUBLISH with packet identifier id and returns
// the done of its hand-off, once the hook has it.
func publishHeld(t *testing.T, h *linkHook, c *mqtttest.Conn, id uint16) func(error) {
	t.Helper()
	c.Send(&packets.Packet{Type: packets.Publish, QoS: 1, PacketID: id, Topic: "h/t", Payload: []byte("x")})
	c.Flush()
	return waitFor(t, h.held, waitTimeout, fmt.Sprintf("the hand-off of PUBLISH %d", id))
}

// TestClusterForwardHoldsAcks: a publisher's PUBACK waits until the
// cluster hook has handed its message off, and acknowledgements keep the
// order of the PUBLISH packets even when hand-offs finish out of order
// [MQTT-4.6.0-2].
func TestClusterForwardHoldsAcks(t *testing.T) {
	_, h, c := holdingBroker(t)
	var dones []func(error)
	for id := uint16(1); id <= 3; id++ {
		// Each hand-off is taken before the next PUBLISH goes, so that
		// they may land in separate reader batches.
		dones = append(dones, publishHeld(t, h, c, id))
	}
	dones[2](nil)
	dones[1](nil)
	if p := c.Read(200 * time.Millisecond); p != nil {
		t.Fatalf("got %v (id %d) while the first hand-off is unfinished", p.Type, p.PacketID)
	}
	dones[0](nil)
	for id := uint16(1); id <= 3; id++ {
		p := c.Read(waitTimeout)
		if p == nil || p.Type != packets.Puback || p.PacketID != id {
			t.Fatalf("acknowledgement %d: %+v, want PUBACK %d in PUBLISH order [MQTT-4.6.0-2]", id, p, id)
		}
	}
}

// TestClusterForwardFailure: done with an error withholds the PUBACK and
// closes the connection.
func TestClusterForwardFailure(t *testing.T) {
	a, h, c := holdingBroker(t)
	publishHeld(t, h, c, 7)(errors.New("no route"))
	for {
		p := c.Read(waitTimeout)
		if p == nil {
			break
		}
		if p.Type == packets.Puback {
			t.Fatal("PUBACK after a failed hand-off")
		}
	}
	mqtttest.Eventually(t, waitTimeout, "ForwardFailures counted", func() bool { return a.Stats().ForwardFailures == 1 })
}

// TestClusterHeldAckOfLaterBatch: an acknowledgement of a later batch
// with nothing to hand off (a SUBACK) waits behind a pending hand-off and
// goes out after its PUBACK, in order [MQTT-4.6.0-2].
func TestClusterHeldAckOfLaterBatch(t *testing.T) {
	_, h, c := holdingBroker(t)
	done := publishHeld(t, h, c, 1)
	c.Send(&packets.Packet{Type: packets.Subscribe, PacketID: 2, Subscriptions: []packets.Subscription{{Filter: "s", QoS: 0}}})
	c.Flush()
	if p := c.Read(200 * time.Millisecond); p != nil {
		t.Fatalf("got %v (id %d) before the hand-off finished", p.Type, p.PacketID)
	}
	done(nil)
	for _, want := range []struct {
		typ packets.Type
		id  uint16
	}{{packets.Puback, 1}, {packets.Suback, 2}} {
		p := c.Read(waitTimeout)
		if p == nil || p.Type != want.typ || p.PacketID != want.id {
			t.Fatalf("got %+v, want %v %d", p, want.typ, want.id)
		}
	}
}

// TestClusterSharedLeftToHook: with a cluster hook, a message published
// here reaches this node's share groups only when the hook delivers it
// (Forwarded.DeliverShared), since the hook picks one member cluster-wide
// [MQTT-4.8.2-3 asks for one copy per group]; ordinary subscribers get it
// from the server as before. With nothing delivered here and no hand-off
// reported, an MQTT 5 publisher hears No matching subscribers.
func TestClusterSharedLeftToHook(t *testing.T) {
	h := newLinkHook(false)
	h.run(t)
	var calls atomic.Int32
	h.shared = func(f *core.Forwarded) int {
		calls.Add(1)
		if f.Topic() != "s/here" {
			return 0 // picked another node
		}
		if f.DeliverShared("nogroup", "s/#") {
			t.Error("DeliverShared delivered to a group the node does not have")
		}
		if f.DeliverShared("g", "s/#") {
			return 1
		}
		return 0
	}
	b := hookBroker(t, withHooks(h))
	member := connectV5(t, b.Addr, v5Connect("member"))
	member.sub("$share/g/s/#", 1)
	pub := connectV5(t, b.Addr, v5Connect("pub"))
	if r := pub.publish(&paho.Publish{Topic: "s/away", QoS: 1}); r.ReasonCode != 0x10 {
		t.Fatalf("PUBACK reason 0x%02x for a message nobody took, want 0x10 No matching subscribers", r.ReasonCode)
	}
	if r := pub.publish(&paho.Publish{Topic: "s/here", QoS: 1}); r.ReasonCode != 0 {
		t.Fatalf("PUBACK reason 0x%02x for a message the hook delivered here, want 0", r.ReasonCode)
	}
	if m := member.next(); m.Topic != "s/here" {
		t.Fatalf("the member got %q first, want s/here (s/away was the hook's to deliver elsewhere)", m.Topic)
	}
	if calls.Load() != 2 {
		t.Fatalf("Forward was called %d times, want 2", calls.Load())
	}
}

// TestClusterSetRetained: a retained message from the cluster's store is
// this node's for its topic, sent to a later subscription [MQTT-3.3.1-6]
// with its expiry counted from when it was published [MQTT-3.3.2-6]; one
// that expired already, or ClearRetained, clears the topic.
func TestClusterSetRetained(t *testing.T) {
	b := startBroker(t, core.Options{})
	encode := func(topic string, expiry uint32) []byte {
		p := &packets.Packet{Type: packets.Publish, ProtocolVersion: packets.Version5, QoS: 1, PacketID: 1, Retain: true, Topic: topic, Payload: []byte("v")}
		if expiry > 0 {
			p.Properties.MessageExpiry = expiry
			p.Properties.Set(packets.PropMessageExpiry)
		}
		buf := bytebufferpool.Get()
		defer bytebufferpool.Put(buf)
		if err := p.Encode(buf); err != nil {
			t.Fatal(err)
		}
		return append([]byte(nil), buf.B...)
	}
	now := time.Now()
	for _, tc := range []struct {
		topic  string
		expiry uint32
		at     time.Time
	}{
		{"k/kept", 0, now.Add(-time.Hour)},
		{"k/counted", 3600, now.Add(-30 * time.Minute)},
		{"k/expired", 60, now.Add(-time.Hour)},
		{"k/cleared", 0, now},
	} {
		if err := b.SetRetained(encode(tc.topic, tc.expiry), "remote", tc.at); err != nil {
			t.Fatal(err)
		}
	}
	b.ClearRetained("k/cleared")
	if err := b.SetRetained([]byte{0x30}, "remote", now); err == nil {
		t.Fatal("SetRetained took a truncated PUBLISH")
	}
	c := connectV5(t, b.Addr, v5Connect("c"))
	c.sub("k/#", 1)
	got := map[string]v5Msg{}
	for range 2 {
		m := c.next()
		got[m.Topic] = m
	}
	if _, ok := got["k/kept"]; !ok {
		t.Fatalf("retained messages sent: %v, want k/kept and k/counted", got)
	}
	m, ok := got["k/counted"]
	if !ok || m.Props == nil || m.Props.MessageExpiry == nil || *m.Props.MessageExpiry > 1800 || *m.Props.MessageExpiry < 1700 {
		t.Fatalf("k/counted: %+v, want an expiry of about 1800 s left", m)
	}
	if n := b.Stats().Retained; n != 2 {
		t.Fatalf("%d retained messages, want 2 (k/expired and k/cleared cleared)", n)
	}
}

// TestClusterQoS2ResendHandedOffAgain: a QoS 2 PUBLISH whose hand-off to
// the cluster failed (no PUBREC; the connection closed) is handed off
// again when the client resends it on its resumed session, instead of
// being taken for a duplicate already routed [MQTT-4.3.3-10 covers the
// local delivery, which is not repeated]; the PUBREC then follows that
// hand-off.
func TestClusterQoS2ResendHandedOffAgain(t *testing.T) {
	h := newLinkHook(true)
	h.run(t)
	b := hookBroker(t, withHooks(h))
	sub := connectV5(t, b.Addr, v5Connect("sub"))
	sub.sub("q2/#", 2)
	connect := func() *mqtttest.Conn {
		cp := &packets.Packet{}
		cp.Connect.ClientID, cp.Connect.KeepAlive = "q2pub", 30
		cp.Properties.SessionExpiry = 600
		cp.Properties.Set(packets.PropSessionExpiry)
		return mqtttest.DialConnect(t, b.Addr, cp)
	}
	pub := connect()
	send := func(c *mqtttest.Conn, dup bool) func(error) {
		c.Send(&packets.Packet{Type: packets.Publish, QoS: 2, PacketID: 9, Dup: dup, Topic: "q2/x", Payload: []byte("once")})
		c.Flush()
		return waitFor(t, h.held, waitTimeout, "the hand-off")
	}
	send(pub, false)(errors.New("no route"))
	for p := pub.Read(waitTimeout); p != nil; p = pub.Read(waitTimeout) {
		if p.Type == packets.Pubrec {
			t.Fatal("PUBREC after a failed hand-off")
		}
	}
	pub = connect()
	send(pub, true)(nil) // waits for the second hand-off: the test fails here without it
	if p := pub.Read(waitTimeout); p == nil || p.Type != packets.Pubrec || p.PacketID != 9 {
		t.Fatalf("got %+v, want PUBREC 9", p)
	}
	if got := sub.next(); string(got.Payload) != "once" {
		t.Fatalf("the subscriber got %v", got)
	}
	sub.pub("q2/end", 0, "")
	sub.expectNone("q2/end", "a second copy of the QoS 2 message")
	if f := h.forwarded(); len(f) < 2 || f[0] != "q2/x" || f[1] != "q2/x" {
		t.Fatalf("forwarded %v, want q2/x twice", f)
	}
}

// TestClusterNoHoldNoWait: a QoS 1/2 message the cluster hook does not
// Hold is acknowledged at once, as on a node alone.
func TestClusterNoHoldNoWait(t *testing.T) {
	h := newLinkHook(true)
	h.noHold = true
	h.run(t)
	a := hookBroker(t, withHooks(h))
	c := mqtttest.Dial(t, a.Addr, "pub", "")
	for id := uint16(1); id <= 3; id++ {
		c.Send(&packets.Packet{Type: packets.Publish, QoS: 1, PacketID: id, Topic: "n/t", Payload: []byte("x")})
	}
	c.Flush()
	for id := uint16(1); id <= 3; id++ {
		if p := c.Read(waitTimeout); p == nil || p.Type != packets.Puback || p.PacketID != id {
			t.Fatalf("got %+v, want PUBACK %d without a hand-off to wait for", p, id)
		}
	}
}
