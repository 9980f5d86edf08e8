package storage

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/vanemq/vanemq/core/packets"
)

// End-to-end tests: a real broker on a pebble store, a real Redis
// server or an embedded NATS server, stopped and started again on the
// same data, with clients over TCP. Statements cited are from MQTT 5.0 unless marked 3.1.1.

// onEngines runs an end-to-end test on each engine: pebble in a temp
// directory, a redis-server of the test's own, and an embedded NATS
// server of its own.
func onEngines(t *testing.T, test func(t *testing.T, cfg Config)) {
	t.Run("pebble", func(t *testing.T) { test(t, Config{}) })
	t.Run("redis", func(t *testing.T) {
		addr, _ := startRedis(t)
		test(t, Config{Type: TypeRedis, Redis: RedisConfig{Address: addr}})
	})
	t.Run("nats", func(t *testing.T) {
		test(t, Config{Type: TypeNATS, NATS: NATSConfig{URLs: startNATS(t, 1).URLs()}})
	})
}

// A persistent session keeps its subscription and its queue across a
// restart: every acknowledged QoS 1 message published while the subscriber
// was away is delivered, in order, on resumption [MQTT-3.1.2-4][MQTT-4.6.0-6].
func TestE2EQueueSurvivesRestart(t *testing.T) { onEngines(t, e2eQueueSurvivesRestart) }

func e2eQueueSurvivesRestart(t *testing.T, cfg Config) {
	b := newBroker(t, cfg)
	sub, _ := dialRaw(t, b.addr, v5Connect("sleeper", true, 3600))
	sub.subscribe("q/#", 1)
	sub.disconnect()

	pub, _ := dialRaw(t, b.addr, v5Connect("pub", true, 0))
	const n = 50
	for i := range n {
		pub.publish("q/x", 1, uint16(i+1), false, fmt.Sprint(i))
	}
	pub.disconnect()
	b.settle()
	b.restart()

	sub, ack := dialRaw(t, b.addr, v5Connect("sleeper", false, 3600))
	if !ack.SessionPresent {
		t.Fatal("resumed session after restart: Session Present 0 [MQTT-3.2.2-2]")
	}
	for i := range n {
		p := sub.expect(packets.Publish)
		if string(p.Payload) != fmt.Sprint(i) || p.QoS != 1 {
			t.Fatalf("message %d after restart: %q QoS %d, want %q QoS 1 in order", i, p.Payload, p.QoS, fmt.Sprint(i))
		}
		sub.send(&packets.Packet{Type: packets.Puback, PacketID: p.PacketID})
	}
	// The subscription itself was restored: a new message arrives too.
	pub, _ = dialRaw(t, b.addr, v5Connect("pub", true, 0))
	pub.publish("q/y", 1, 1, false, "live")
	if p := sub.expect(packets.Publish); string(p.Payload) != "live" {
		t.Fatalf("after restart the restored subscription delivered %q, want live", p.Payload)
	}
}

// An outbound QoS 1 message sent but not acknowledged before the restart is
// sent again with its original Packet Identifier and DUP set [MQTT-4.4.0-1]
// [MQTT-3.3.1-1]; a QoS 2 message whose PUBREC arrived is continued with
// PUBREL, not sent again [MQTT-4.4.0-1].
func TestE2EInflightSurvivesRestart(t *testing.T) { onEngines(t, e2eInflightSurvivesRestart) }

func e2eInflightSurvivesRestart(t *testing.T, cfg Config) {
	b := newBroker(t, cfg)
	sub, _ := dialRaw(t, b.addr, v5Connect("s", true, 3600))
	sub.subscribe("one", 1)
	sub.subscribe("two", 2)
	pub, _ := dialRaw(t, b.addr, v5Connect("pub", true, 0))
	pub.publish("one", 1, 1, false, "q1")
	p1 := sub.expect(packets.Publish) // not acknowledged
	pub.send(&packets.Packet{Type: packets.Publish, Topic: "two", QoS: 2, PacketID: 2, Payload: []byte("q2")})
	pub.expect(packets.Pubrec)
	pub.send(&packets.Packet{Type: packets.Pubrel, PacketID: 2})
	pub.expect(packets.Pubcomp)
	p2 := sub.expect(packets.Publish)
	sub.send(&packets.Packet{Type: packets.Pubrec, PacketID: p2.PacketID})
	sub.expect(packets.Pubrel) // PUBCOMP not sent
	// Stop with the client still connected: its state is in flight.
	b.restart()

	sub, ack := dialRaw(t, b.addr, v5Connect("s", false, 3600))
	if !ack.SessionPresent {
		t.Fatal("Session Present 0 after restart")
	}
	got := map[packets.Type]*packets.Packet{}
	for range 2 {
		p := sub.read()
		got[p.Type] = p
	}
	if p := got[packets.Publish]; p == nil || p.PacketID != p1.PacketID || !p.Dup || string(p.Payload) != "q1" {
		t.Fatalf("QoS 1 message re-sent as %+v, want PUBLISH id %d with DUP [MQTT-4.4.0-1]", p, p1.PacketID)
	}
	if p := got[packets.Pubrel]; p == nil || p.PacketID != p2.PacketID {
		t.Fatalf("QoS 2 flow continued as %+v, want PUBREL id %d [MQTT-4.4.0-1]", p, p2.PacketID)
	}
	sub.send(&packets.Packet{Type: packets.Puback, PacketID: p1.PacketID})
	sub.send(&packets.Packet{Type: packets.Pubcomp, PacketID: p2.PacketID})
	sub.disconnect()
	b.settle()
	b.stop()
	counts, err := Check(context.Background(), b.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if counts.Inflight != 0 || counts.Queued != 0 || counts.Messages != 0 || counts.Dangling != 0 {
		t.Fatalf("after both flows completed the store holds %+v, want no deliveries or messages", counts)
	}
}

// An inbound QoS 2 message received (PUBREC sent) before a restart is not
// delivered again when its publisher re-sends it with the same Packet
// Identifier: the broker answers PUBREC [MQTT-4.3.3-9], and PUBREL then
// completes the flow with PUBCOMP [MQTT-4.3.3-11].
func TestE2EInboundQoS2SurvivesRestart(t *testing.T) { onEngines(t, e2eInboundQoS2SurvivesRestart) }

func e2eInboundQoS2SurvivesRestart(t *testing.T, cfg Config) {
	b := newBroker(t, cfg)
	sub, _ := dialRaw(t, b.addr, v5Connect("s", true, 3600))
	sub.subscribe("t", 2)
	sub.disconnect()
	pub, _ := dialRaw(t, b.addr, v5Connect("p", true, 3600))
	pub.send(&packets.Packet{Type: packets.Publish, Topic: "t", QoS: 2, PacketID: 9, Payload: []byte("once")})
	pub.expect(packets.Pubrec)
	b.restart()

	pub, _ = dialRaw(t, b.addr, v5Connect("p", false, 3600))
	pub.send(&packets.Packet{Type: packets.Publish, Topic: "t", QoS: 2, PacketID: 9, Dup: true, Payload: []byte("once")})
	if a := pub.expect(packets.Pubrec); a.PacketID != 9 {
		t.Fatalf("PUBREC for %d, want 9", a.PacketID)
	}
	pub.send(&packets.Packet{Type: packets.Pubrel, PacketID: 9})
	if a := pub.expect(packets.Pubcomp); a.PacketID != 9 || a.ReasonCode != packets.Success {
		t.Fatalf("PUBCOMP %d %s, want 9 success (the identifier was known) [MQTT-4.3.3-11]", a.PacketID, a.ReasonCode)
	}
	pub.publish("t", 1, 10, false, "marker")

	sub, _ = dialRaw(t, b.addr, v5Connect("s", false, 3600))
	var got []string
	for done := false; !done; {
		p := sub.read()
		switch {
		case p.Type == packets.Pubrel:
			sub.send(&packets.Packet{Type: packets.Pubcomp, PacketID: p.PacketID})
		case p.Type != packets.Publish:
			t.Fatalf("unexpected %s", p.Type)
		case string(p.Payload) == "marker":
			done = true
		case p.QoS == 2:
			got = append(got, string(p.Payload))
			sub.send(&packets.Packet{Type: packets.Pubrec, PacketID: p.PacketID})
		default:
			got = append(got, string(p.Payload))
		}
		if p.Type == packets.Publish && p.QoS == 1 {
			sub.send(&packets.Packet{Type: packets.Puback, PacketID: p.PacketID})
		}
	}
	if len(got) != 1 || got[0] != "once" {
		t.Fatalf("subscriber got %q before the marker, want the QoS 2 message exactly once [MQTT-4.3.3-9]", got)
	}
}

// Retained messages survive a restart, and so does clearing one
// [MQTT-3.3.1-5][MQTT-3.3.1-6].
func TestE2ERetainedSurvivesRestart(t *testing.T) { onEngines(t, e2eRetainedSurvivesRestart) }

func e2eRetainedSurvivesRestart(t *testing.T, cfg Config) {
	b := newBroker(t, cfg)
	pub, _ := dialRaw(t, b.addr, v5Connect("p", true, 0))
	pub.publish("r/kept", 1, 1, true, "kept")
	pub.publish("r/cleared", 1, 2, true, "old")
	pub.publish("r/cleared", 1, 3, true, "")
	pub.publish("r/replaced", 1, 4, true, "first")
	pub.publish("r/replaced", 1, 5, true, "second")
	pub.disconnect()
	b.settle()
	b.restart()

	sub, _ := dialRaw(t, b.addr, v5Connect("s", true, 0))
	sub.subscribe("r/#", 1)
	got := map[string]string{}
	for range 2 {
		p := sub.expect(packets.Publish)
		if !p.Retain {
			t.Errorf("%s: retain flag not set on a retained message [MQTT-3.3.1-8]", p.Topic)
		}
		got[p.Topic] = string(p.Payload)
		sub.send(&packets.Packet{Type: packets.Puback, PacketID: p.PacketID})
	}
	if got["r/kept"] != "kept" || got["r/replaced"] != "second" {
		t.Fatalf("retained after restart: %v, want r/kept=kept and r/replaced=second", got)
	}
	sub.noPacket(200 * time.Millisecond) // r/cleared stays cleared
}

// A session that expired while the broker was down is not restored, and
// a message that expired while it waited is not delivered
// [MQTT-3.3.2-5]; Check shows the store emptied of them.
func TestE2EExpiryAcrossRestart(t *testing.T) { onEngines(t, e2eExpiryAcrossRestart) }

func e2eExpiryAcrossRestart(t *testing.T, cfg Config) {
	b := newBroker(t, cfg)
	short, _ := dialRaw(t, b.addr, v5Connect("short", true, 1))
	short.subscribe("e/#", 1)
	short.disconnect()
	long, _ := dialRaw(t, b.addr, v5Connect("long", true, 3600))
	long.subscribe("e/#", 1)
	long.disconnect()
	pub, _ := dialRaw(t, b.addr, v5Connect("p", true, 0))
	exp := &packets.Packet{Type: packets.Publish, Topic: "e/x", QoS: 1, PacketID: 1, Payload: []byte("brief")}
	exp.Properties.MessageExpiry = 1
	exp.Properties.Set(packets.PropMessageExpiry)
	pub.send(exp)
	pub.expect(packets.Puback)
	pub.publish("e/y", 1, 2, false, "lasting")
	pub.disconnect()
	b.settle()
	b.stop()
	// Let both one-second intervals run out while the broker is down.
	time.Sleep(1100 * time.Millisecond)
	b.start()

	s, ack := dialRaw(t, b.addr, v5Connect("short", false, 0))
	if ack.SessionPresent {
		t.Error("session with expiry 1 s resumed after it expired [MQTT-4.1.0-2]")
	}
	s.disconnect()
	l, ack := dialRaw(t, b.addr, v5Connect("long", false, 3600))
	if !ack.SessionPresent {
		t.Fatal("session with expiry 3600 s not restored")
	}
	if p := l.expect(packets.Publish); string(p.Payload) != "lasting" {
		t.Fatalf("first message %q, want lasting: the expired message must not be delivered [MQTT-3.3.2-5]", p.Payload)
	} else {
		l.send(&packets.Packet{Type: packets.Puback, PacketID: p.PacketID})
	}
	l.disconnect()
	b.settle()
	b.stop()
	counts, err := Check(context.Background(), b.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if counts.Sessions != 1 || counts.Queued+counts.Inflight != 0 || counts.Messages != 0 || counts.Dangling != 0 {
		t.Fatalf("store after expiry: %+v, want only the long session, no messages", counts)
	}
}

// Clean Start discards the stored session [MQTT-3.1.2-4], an unsubscribe
// is stored, and a session that ends (expiry 0 at DISCONNECT) leaves
// nothing behind [MQTT-3.1.2-11].
func TestE2ESessionChangesStored(t *testing.T) { onEngines(t, e2eSessionChangesStored) }

func e2eSessionChangesStored(t *testing.T, cfg Config) {
	b := newBroker(t, cfg)
	a, _ := dialRaw(t, b.addr, v5Connect("a", true, 3600))
	a.subscribe("x", 1)
	a.subscribe("y", 1)
	a.send(&packets.Packet{Type: packets.Unsubscribe, PacketID: 2, Filters: []string{"y"}})
	a.expect(packets.Unsuback)
	a.disconnect()
	b.settle()
	c, _ := dialRaw(t, b.addr, v5Connect("c", true, 3600))
	c.subscribe("z", 1)
	c.disconnect()
	b.settle()
	// c comes back with a clean start and no expiry: its stored session
	// goes, and nothing is stored for the new one.
	c, ack := dialRaw(t, b.addr, v5Connect("c", true, 0))
	if ack.SessionPresent {
		t.Fatal("clean start: Session Present 1 [MQTT-3.1.2-4]")
	}
	c.disconnect()
	// e ends its session with DISCONNECT expiry 0.
	e, _ := dialRaw(t, b.addr, v5Connect("e", true, 3600))
	e.subscribe("w", 1)
	d := &packets.Packet{Type: packets.Disconnect}
	d.Properties.SessionExpiry = 0
	d.Properties.Set(packets.PropSessionExpiry)
	e.send(d)
	_ = e.conn.Close()
	b.settle()
	b.stop()

	st, err := Open(context.Background(), b.cfg)
	if err != nil {
		t.Fatal(err)
	}
	sessions, err := st.LoadSessions(context.Background())
	_ = st.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(sessions) != 1 || sessions[0].ClientID != "a" {
		t.Fatalf("stored sessions %+v, want only a", sessions)
	}
	if subs := sessions[0].Subscriptions; len(subs) != 1 || subs[0].Filter != "x" {
		t.Fatalf("a's stored subscriptions %+v, want only x (y was unsubscribed)", subs)
	}
	if sessions[0].Disconnected.IsZero() {
		t.Error("a disconnected, but its record has no disconnection time")
	}
}

// When the store cannot write, nothing is acknowledged: the publisher's
// connection is closed without PUBACK, the broker keeps serving, and
// Stats counts the failure.
func TestE2EStoreFailureWithholdsAck(t *testing.T) {
	b := newBroker(t, Config{})
	sub, _ := dialRaw(t, b.addr, v5Connect("s", true, 3600))
	sub.subscribe("f", 1)
	sub.disconnect()
	pub, _ := dialRaw(t, b.addr, v5Connect("p", true, 0))
	// Close the store under the running server: every write now fails.
	if err := b.st.Close(); err != nil {
		t.Fatal(err)
	}
	pub.send(&packets.Packet{Type: packets.Publish, Topic: "f", QoS: 1, PacketID: 1, Payload: []byte("lost?")})
	p, err := pub.tryRead(waitTimeout)
	if err == nil && p.Type == packets.Puback {
		t.Fatal("PUBACK for a message the store did not write")
	}
	if err == nil && (p.Type != packets.Disconnect || p.ReasonCode != packets.UnspecifiedError) {
		t.Fatalf("got %s %s, want DISCONNECT 0x80 and the connection closed", p.Type, p.ReasonCode)
	}
	if b.srv.Stats().StoreFailures == 0 {
		t.Error("Stats.StoreFailures is 0 after a failed write")
	}
	// A client that needs no store write is still served.
	q, _ := dialRaw(t, b.addr, v5Connect("q", true, 0))
	q.subscribe("g", 0)
	q.send(&packets.Packet{Type: packets.Pingreq})
	q.expect(packets.Pingresp)
	q.disconnect()
}
