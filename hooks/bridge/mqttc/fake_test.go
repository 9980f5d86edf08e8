package mqttc_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vanemq/vanemq/core/packets"
	"github.com/vanemq/vanemq/hooks/bridge/mqttc"
)

// The tests of this file script the server side of the connection, for
// what the broker does not do on a live connection: re-send a PUBLISH,
// use topic aliases, break the protocol, fall silent.

// connack returns a CONNACK accepting the connection.
func connack() *packets.Packet { return &packets.Packet{Type: packets.Connack} }

// expectAck reads the next packet and checks its type, identifier and code.
func (fs *fakeServer) expectAck(t *testing.T, typ packets.Type, id uint16, code packets.ReasonCode) {
	t.Helper()
	p := fs.expect(t, typ)
	if p.PacketID != id || p.ReasonCode != code {
		t.Fatalf("fake server: %s id %d code %s, want id %d code %s", typ, p.PacketID, p.ReasonCode, id, code)
	}
}

// TestInboundQoS2 runs the receiver side of QoS 2: a PUBLISH re-sent while
// its PUBREC is pending is not delivered again, and once PUBREC was sent it
// is answered with PUBREC again (5.0 [MQTT-4.3.3-10], 3.1.1
// [MQTT-4.3.3-2]); PUBREL gets PUBCOMP [MQTT-4.3.3-11], an unknown one
// too (0x92 in v5); after PUBCOMP the identifier is a new message
// [MQTT-4.3.3-12].
func TestInboundQoS2(t *testing.T) {
	for _, ver := range versions() {
		t.Run(ver.name, func(t *testing.T) {
			msgs, onMsg := inbox()
			_, fs := startFake(t, mqttc.Options{ClientID: "q2", Version: ver.v, OnMessage: onMsg}, connack())
			pub := &packets.Packet{Type: packets.Publish, QoS: 2, PacketID: 7, Topic: "q2", Payload: []byte("once")}
			dup := *pub
			dup.Dup = true
			marker := func(payload string) {
				t.Helper()
				fs.write(t, &packets.Packet{Type: packets.Publish, Topic: "marker", Payload: []byte(payload)})
				if got := next(t, msgs); got.m.Topic != "marker" || string(got.m.Payload) != payload {
					t.Fatalf("got %s %q, want marker %q: a duplicate was delivered", got.m.Topic, got.m.Payload, payload)
				}
			}

			fs.write(t, pub)
			first := next(t, msgs)
			if first.m.QoS != 2 || string(first.m.Payload) != "once" {
				t.Fatalf("got %+v", first.m)
			}
			fs.write(t, &dup) // PUBREC not sent yet
			marker("1")
			first.ack(packets.Success)
			fs.expectAck(t, packets.Pubrec, 7, packets.Success) // nothing before it
			fs.write(t, &dup)                                   // PUBREC sent
			fs.expectAck(t, packets.Pubrec, 7, packets.Success)
			marker("2")
			fs.write(t, &packets.Packet{Type: packets.Pubrel, PacketID: 7})
			fs.expectAck(t, packets.Pubcomp, 7, packets.Success)
			notFound := packets.Success
			if ver.v == packets.Version5 {
				notFound = packets.PacketIdentifierNotFound
			}
			fs.write(t, &packets.Packet{Type: packets.Pubrel, PacketID: 7})
			fs.expectAck(t, packets.Pubcomp, 7, notFound)

			fs.write(t, pub) // a new message now
			again := next(t, msgs)
			if string(again.m.Payload) != "once" {
				t.Fatalf("got %q", again.m.Payload)
			}
			again.ack(packets.Success)
			fs.expectAck(t, packets.Pubrec, 7, packets.Success)
		})
	}
}

// TestInboundAckCodes: the code given to ack is sent in v5 and dropped in
// 3.1.1; a PUBREC of 0x80 or above ends the QoS 2 flow, so the identifier
// is free for a new message (5.0 [MQTT-4.3.3-9]).
func TestInboundAckCodes(t *testing.T) {
	for _, ver := range versions() {
		t.Run(ver.name, func(t *testing.T) {
			msgs, onMsg := inbox()
			_, fs := startFake(t, mqttc.Options{ClientID: "codes", Version: ver.v, OnMessage: onMsg}, connack())
			want := packets.QuotaExceeded
			if ver.v != packets.Version5 {
				want = packets.Success
			}
			fs.write(t, &packets.Packet{Type: packets.Publish, QoS: 1, PacketID: 1, Topic: "c", Payload: []byte("q1")})
			next(t, msgs).ack(packets.QuotaExceeded)
			fs.expectAck(t, packets.Puback, 1, want)

			fs.write(t, &packets.Packet{Type: packets.Publish, QoS: 2, PacketID: 2, Topic: "c", Payload: []byte("q2")})
			next(t, msgs).ack(packets.QuotaExceeded)
			fs.expectAck(t, packets.Pubrec, 2, want)
			if ver.v == packets.Version5 {
				fs.write(t, &packets.Packet{Type: packets.Publish, QoS: 2, PacketID: 2, Dup: true, Topic: "c", Payload: []byte("q2")})
				next(t, msgs).ack(packets.Success) // refused before: a new message
				fs.expectAck(t, packets.Pubrec, 2, packets.Success)
			}
			// QoS 0: ack does nothing.
			fs.write(t, &packets.Packet{Type: packets.Publish, Topic: "c", Payload: []byte("q0")})
			next(t, msgs).ack(packets.Success)
			fs.write(t, &packets.Packet{Type: packets.Pingreq})
			// A server must not send PINGREQ: the client ends the
			// connection, with DISCONNECT 0x82 in v5; nothing was sent
			// for the QoS 0 message before it.
			if ver.v == packets.Version5 {
				fs.expectAck(t, packets.Disconnect, 0, packets.ProtocolError)
			}
			fs.expectClosed(t)
		})
	}
}

// TestOutboundQoS2: the sender side of QoS 2: PUBREC is answered with
// PUBREL [MQTT-4.3.3-4], again when repeated; PUBCOMP completes done; a
// PUBREC of 0x80 or above completes it with that code and no PUBREL
// [MQTT-4.3.3-4] (v5); a PUBREC for an unknown identifier gets PUBREL 0x92
// (v5), and unknown PUBACK and PUBCOMP are ignored.
func TestOutboundQoS2(t *testing.T) {
	for _, ver := range versions() {
		t.Run(ver.name, func(t *testing.T) {
			c, fs := startFake(t, mqttc.Options{ClientID: "out2", Version: ver.v}, connack())
			results, done := doneChan()
			ctx := context.Background()
			if err := c.Publish(ctx, mqttc.Message{Topic: "o", Payload: []byte("x"), QoS: 2}, done); err != nil {
				t.Fatal(err)
			}
			p := fs.expect(t, packets.Publish)
			if p.QoS != 2 || p.Dup || p.PacketID == 0 {
				t.Fatalf("PUBLISH QoS %d dup %v id %d", p.QoS, p.Dup, p.PacketID)
			}
			fs.write(t, &packets.Packet{Type: packets.Pubrec, PacketID: p.PacketID})
			fs.expectAck(t, packets.Pubrel, p.PacketID, packets.Success)
			fs.write(t, &packets.Packet{Type: packets.Pubrec, PacketID: p.PacketID})
			fs.expectAck(t, packets.Pubrel, p.PacketID, packets.Success)
			fs.write(t, &packets.Packet{Type: packets.Pubcomp, PacketID: p.PacketID})
			if r := nextResult(t, results); r.err != nil || r.code != packets.Success {
				t.Fatalf("done(%s, %v)", r.code, r.err)
			}

			fs.write(t, &packets.Packet{Type: packets.Puback, PacketID: 999})  // unknown: ignored
			fs.write(t, &packets.Packet{Type: packets.Pubcomp, PacketID: 999}) // unknown: ignored
			notFound := packets.Success
			if ver.v == packets.Version5 {
				notFound = packets.PacketIdentifierNotFound
			}
			fs.write(t, &packets.Packet{Type: packets.Pubrec, PacketID: 998})
			fs.expectAck(t, packets.Pubrel, 998, notFound)

			if ver.v == packets.Version5 {
				if err := c.Publish(ctx, mqttc.Message{Topic: "o", QoS: 2}, done); err != nil {
					t.Fatal(err)
				}
				p = fs.expect(t, packets.Publish)
				fs.write(t, &packets.Packet{Type: packets.Pubrec, PacketID: p.PacketID, ReasonCode: packets.NotAuthorized})
				if r := nextResult(t, results); r.err != nil || r.code != packets.NotAuthorized {
					t.Fatalf("done(%s, %v), want %s", r.code, r.err, packets.NotAuthorized)
				}
			}
			// Nothing was sent in between: the next packet is this one.
			if err := c.Publish(ctx, mqttc.Message{Topic: "last"}, nil); err != nil {
				t.Fatal(err)
			}
			if p := fs.expect(t, packets.Publish); p.Topic != "last" {
				t.Fatalf("got PUBLISH %s", p.Topic)
			}
		})
	}
}

// TestTopicAlias: topic aliases from the server are resolved (MQTT 5.0
// section 3.3.2.3.4) and removed from the message; an alias with no
// mapping is a protocol error, answered with DISCONNECT 0x82 (MQTT 5.0
// sections 3.3.2.3.4 and 4.13.1).
func TestTopicAlias(t *testing.T) {
	msgs, onMsg := inbox()
	c, fs := startFake(t, mqttc.Options{ClientID: "alias", Version: packets.Version5, OnMessage: onMsg}, connack())
	withAlias := func(topic string, alias uint16, payload string) *packets.Packet {
		p := &packets.Packet{Type: packets.Publish, Topic: topic, Payload: []byte(payload)}
		p.Properties.TopicAlias = alias
		p.Properties.Set(packets.PropTopicAlias)
		return p
	}
	fs.write(t, withAlias("a/b", 3, "set"))
	fs.write(t, withAlias("", 3, "use"))
	for _, want := range []string{"set", "use"} {
		got := next(t, msgs)
		pr := got.m.Properties
		if got.m.Topic != "a/b" || string(got.m.Payload) != want || pr.Has(packets.PropTopicAlias) || pr.TopicAlias != 0 {
			t.Fatalf("got %s %q alias %d, want a/b %q without alias", got.m.Topic, got.m.Payload, pr.TopicAlias, want)
		}
	}
	fs.write(t, withAlias("", 9, "unknown"))
	fs.expectAck(t, packets.Disconnect, 0, packets.ProtocolError)
	fs.expectClosed(t)
	waitDone(t, c)
	if !errors.Is(c.Err(), packets.ErrProtocol) {
		t.Errorf("Err() = %v, want a protocol error", c.Err())
	}
}

// TestServerProtocolErrors: what a server must not send ends the
// connection with an error; in v5 the client first sends DISCONNECT with
// the reason code (MQTT 5.0 section 4.13.1), in 3.1.1 it just closes
// [MQTT-4.8.0-1].
func TestServerProtocolErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		send func(t *testing.T, fs *fakeServer)
		code packets.ReasonCode
		is   error
	}{
		{"pingreq", func(t *testing.T, fs *fakeServer) {
			fs.write(t, &packets.Packet{Type: packets.Pingreq})
		}, packets.ProtocolError, packets.ErrProtocol},
		{"subscribe", func(t *testing.T, fs *fakeServer) {
			fs.write(t, &packets.Packet{Type: packets.Subscribe, PacketID: 1, Subscriptions: []packets.Subscription{{Filter: "x"}}})
		}, packets.ProtocolError, packets.ErrProtocol},
		{"publish-qos3", func(t *testing.T, fs *fakeServer) { // [MQTT-3.3.1-4]
			fs.writeRaw(t, []byte{0x36, 0x05, 0x00, 0x01, 'x', 0x00, 0x01})
		}, packets.MalformedPacket, packets.ErrMalformed},
		{"pubrel-before-pubrec", func(t *testing.T, fs *fakeServer) {
			fs.write(t, &packets.Packet{Type: packets.Publish, QoS: 2, PacketID: 5, Topic: "x"})
			fs.write(t, &packets.Packet{Type: packets.Pubrel, PacketID: 5})
		}, packets.ProtocolError, packets.ErrProtocol},
		{"too-large", func(t *testing.T, fs *fakeServer) { // above MaxPacketSize 128
			fs.write(t, &packets.Packet{Type: packets.Publish, Topic: "x", Payload: make([]byte, 200)})
		}, packets.PacketTooLarge, packets.ErrPacketTooLarge},
	} {
		for _, ver := range versions() {
			t.Run(tc.name+"/"+ver.name, func(t *testing.T) {
				_, onMsg := inbox() // messages are not acknowledged
				c, fs := startFake(t, mqttc.Options{ClientID: "victim", Version: ver.v, MaxPacketSize: 128, OnMessage: onMsg}, connack())
				tc.send(t, fs)
				if ver.v == packets.Version5 {
					fs.expectAck(t, packets.Disconnect, 0, tc.code)
				}
				fs.expectClosed(t)
				waitDone(t, c)
				if !errors.Is(c.Err(), tc.is) {
					t.Errorf("Err() = %v, want %v", c.Err(), tc.is)
				}
			})
		}
	}
}

// TestInboundReceiveMaximum: a server that sends more unacknowledged QoS 1
// and 2 messages than the client's Receive Maximum is disconnected with
// 0x93 [MQTT-3.3.4-9].
func TestInboundReceiveMaximum(t *testing.T) {
	msgs, onMsg := inbox()
	c, fs := startFake(t, mqttc.Options{ClientID: "rmax", Version: packets.Version5, ReceiveMaximum: 2, OnMessage: onMsg}, connack())
	for id := range uint16(3) {
		fs.write(t, &packets.Packet{Type: packets.Publish, QoS: 1, PacketID: id + 1, Topic: "r"})
	}
	fs.expectAck(t, packets.Disconnect, 0, packets.ReceiveMaximumExceeded)
	fs.expectClosed(t)
	waitDone(t, c)
	if len(msgs) != 2 {
		t.Errorf("%d messages delivered, want 2", len(msgs))
	}
	// Acknowledging after the end does nothing (and does not panic).
	for range 2 {
		(<-msgs).ack(packets.Success)
	}
}

// TestServerLimits: the client keeps to the limits of CONNACK: Maximum QoS
// [MQTT-3.2.2-11], Retain Available [MQTT-3.2.2-14], Maximum Packet Size
// [MQTT-3.2.2-15], Receive Maximum [MQTT-4.9.0-2] [MQTT-3.3.4-7].
func TestServerLimits(t *testing.T) {
	ack := connack()
	pr := &ack.Properties
	pr.MaximumQoS = 1
	pr.Set(packets.PropMaximumQoS)
	pr.RetainAvailable = 0
	pr.Set(packets.PropRetainAvailable)
	pr.MaximumPacketSize = 100
	pr.Set(packets.PropMaximumPacketSize)
	pr.ReceiveMaximum = 1
	pr.Set(packets.PropReceiveMaximum)
	c, fs := startFake(t, mqttc.Options{ClientID: "limited", Version: packets.Version5}, ack)
	if c.ServerReceiveMaximum() != 1 {
		t.Errorf("ServerReceiveMaximum() = %d, want 1", c.ServerReceiveMaximum())
	}
	ctx := context.Background()
	never := func(packets.ReasonCode, error) { t.Error("done called for a refused publish") }
	for _, tc := range []struct {
		m    mqttc.Message
		want error
	}{
		{mqttc.Message{Topic: "l", QoS: 2}, mqttc.ErrNotSupported},
		{mqttc.Message{Topic: "l", Retain: true}, mqttc.ErrNotSupported},
		{mqttc.Message{Topic: "l", Payload: make([]byte, 100)}, mqttc.ErrPacketTooLarge},
	} {
		if err := c.Publish(ctx, tc.m, never); !errors.Is(err, tc.want) {
			t.Errorf("Publish(QoS %d, retain %v, %d bytes) = %v, want %v", tc.m.QoS, tc.m.Retain, len(tc.m.Payload), err, tc.want)
		}
	}
	results, done := doneChan()
	if err := c.Publish(ctx, mqttc.Message{Topic: "l", QoS: 1}, done); err != nil {
		t.Fatal(err)
	}
	p := fs.expect(t, packets.Publish)
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if err := c.Publish(short, mqttc.Message{Topic: "l", QoS: 1}, never); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second Publish with Receive Maximum 1 = %v, want context.DeadlineExceeded", err)
	}
	fs.write(t, &packets.Packet{Type: packets.Puback, PacketID: p.PacketID})
	if r := nextResult(t, results); r.err != nil {
		t.Fatal(r.err)
	}
	if err := c.Publish(ctx, mqttc.Message{Topic: "l", QoS: 1}, done); err != nil {
		t.Fatalf("Publish after the acknowledgement: %v", err)
	}
	fs.expect(t, packets.Publish)
}

// TestKeepAliveTimeout: the client sends PINGREQ when idle (3.1.1
// [MQTT-3.1.2-23], 5.0 [MQTT-3.1.2-20]); a server that does not answer
// has the connection closed with ErrKeepAliveTimeout (MQTT 5.0 section
// 3.1.2.10: the client should close it).
func TestKeepAliveTimeout(t *testing.T) {
	for _, ver := range versions() {
		t.Run(ver.name, func(t *testing.T) {
			t.Parallel()
			results, done := doneChan()
			c, fs := startFake(t, mqttc.Options{ClientID: "ka", Version: ver.v, KeepAlive: time.Second}, connack())
			if err := c.Publish(context.Background(), mqttc.Message{Topic: "never-acked", QoS: 1}, done); err != nil {
				t.Fatal(err)
			}
			fs.expect(t, packets.Publish)
			fs.expect(t, packets.Pingreq)
			fs.expectClosed(t)
			waitDone(t, c)
			if !errors.Is(c.Err(), mqttc.ErrKeepAliveTimeout) {
				t.Errorf("Err() = %v, want ErrKeepAliveTimeout", c.Err())
			}
			if r := nextResult(t, results); !errors.Is(r.err, mqttc.ErrKeepAliveTimeout) {
				t.Errorf("pending done(%s, %v), want ErrKeepAliveTimeout", r.code, r.err)
			}
		})
	}
}

// TestServerDisconnect: a DISCONNECT from the server ends the connection
// with a *DisconnectError carrying its code and reason string (MQTT 5.0
// section 3.14); pending publishes get it too.
func TestServerDisconnect(t *testing.T) {
	c, fs := startFake(t, mqttc.Options{ClientID: "kicked", Version: packets.Version5}, connack())
	results, done := doneChan()
	if err := c.Publish(context.Background(), mqttc.Message{Topic: "p", QoS: 2}, done); err != nil {
		t.Fatal(err)
	}
	fs.expect(t, packets.Publish)
	d := &packets.Packet{Type: packets.Disconnect, ReasonCode: packets.AdministrativeAction}
	d.Properties.ReasonString = "maintenance"
	d.Properties.Set(packets.PropReasonString)
	fs.write(t, d)
	fs.expectClosed(t)
	waitDone(t, c)
	var de *mqttc.DisconnectError
	if !errors.As(c.Err(), &de) || de.Code != packets.AdministrativeAction || de.Reason != "maintenance" {
		t.Fatalf("Err() = %v, want DisconnectError 0x98 maintenance", c.Err())
	}
	if r := nextResult(t, results); !errors.As(r.err, &de) {
		t.Errorf("pending done(%s, %v), want the DisconnectError", r.code, r.err)
	}
}

// TestCloseFromCallbacks: Close may be called from OnMessage (reader) and
// from the done of a QoS 0 publish (writer) without deadlock; the
// DISCONNECT is still written.
func TestCloseFromCallbacks(t *testing.T) {
	t.Run("OnMessage", func(t *testing.T) {
		var self atomic.Pointer[mqttc.Client]
		closed := make(chan error, 1)
		c, fs := startFake(t, mqttc.Options{ClientID: "cb", Version: packets.Version5, OnMessage: func(m mqttc.Message, ack func(packets.ReasonCode)) {
			ack(packets.Success)
			closed <- self.Load().Close()
		}}, connack())
		self.Store(c)
		fs.write(t, &packets.Packet{Type: packets.Publish, QoS: 1, PacketID: 1, Topic: "bye"})
		fs.expectAck(t, packets.Puback, 1, packets.Success)
		fs.expectAck(t, packets.Disconnect, 0, packets.Success)
		fs.expectClosed(t)
		waitDone(t, c)
		if err := <-closed; err != nil {
			t.Errorf("Close from OnMessage: %v", err)
		}
	})
	t.Run("QoS0-done", func(t *testing.T) {
		c, fs := startFake(t, mqttc.Options{ClientID: "cb", Version: packets.Version311}, connack())
		closed := make(chan error, 1)
		err := c.Publish(context.Background(), mqttc.Message{Topic: "x"}, func(_ packets.ReasonCode, err error) {
			if err != nil {
				t.Errorf("QoS 0 done: %v", err)
			}
			closed <- c.Close()
		})
		if err != nil {
			t.Fatal(err)
		}
		fs.expect(t, packets.Publish)
		fs.expect(t, packets.Disconnect)
		fs.expectClosed(t)
		waitDone(t, c)
		if err := <-closed; err != nil {
			t.Errorf("Close from a QoS 0 done: %v", err)
		}
	})
}

// TestRequests: a Subscribe given up on (ctx) keeps its packet identifier
// until the SUBACK comes, so no other packet reuses it [MQTT-2.2.1-3]; a
// late SUBACK is harmless; an UNSUBACK refusing a filter (v5) is an error;
// a SUBACK without one code per filter [MQTT-3.9.3-1] ends the connection.
func TestRequests(t *testing.T) {
	c, fs := startFake(t, mqttc.Options{ClientID: "req", Version: packets.Version5}, connack())
	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	subErr := make(chan error, 1)
	go func() {
		_, err := c.Subscribe(short, []packets.Subscription{{Filter: "a", QoS: 1}})
		subErr <- err
	}()
	sub := fs.expect(t, packets.Subscribe)
	if err := <-subErr; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Subscribe = %v, want context.DeadlineExceeded", err)
	}
	ctx := context.Background()
	results, done := doneChan()
	if err := c.Publish(ctx, mqttc.Message{Topic: "p", QoS: 1}, done); err != nil {
		t.Fatal(err)
	}
	if p := fs.expect(t, packets.Publish); p.PacketID == sub.PacketID {
		t.Fatalf("PUBLISH reuses the identifier %d of the pending SUBSCRIBE", p.PacketID)
	} else {
		fs.write(t, &packets.Packet{Type: packets.Puback, PacketID: p.PacketID})
	}
	nextResult(t, results)
	fs.write(t, &packets.Packet{Type: packets.Suback, PacketID: sub.PacketID, ReasonCodes: []packets.ReasonCode{packets.GrantedQoS1}})

	unsubErr := make(chan error, 1)
	go func() { unsubErr <- c.Unsubscribe(ctx, []string{"a", "b"}) }()
	u := fs.expect(t, packets.Unsubscribe)
	fs.write(t, &packets.Packet{Type: packets.Unsuback, PacketID: u.PacketID,
		ReasonCodes: []packets.ReasonCode{packets.Success, packets.NotAuthorized}})
	if err := <-unsubErr; err == nil || !strings.Contains(err.Error(), `"b"`) {
		t.Fatalf("Unsubscribe = %v, want an error naming b", err)
	}

	go func() {
		_, err := c.Subscribe(ctx, []packets.Subscription{{Filter: "x"}, {Filter: "y"}})
		subErr <- err
	}()
	s2 := fs.expect(t, packets.Subscribe)
	fs.write(t, &packets.Packet{Type: packets.Suback, PacketID: s2.PacketID, ReasonCodes: []packets.ReasonCode{0}})
	if err := <-subErr; !errors.Is(err, packets.ErrProtocol) {
		t.Fatalf("Subscribe with a short SUBACK = %v, want a protocol error", err)
	}
	fs.expectAck(t, packets.Disconnect, 0, packets.ProtocolError)
	waitDone(t, c)
}

// TestNoOnMessage: without OnMessage, messages are acknowledged with
// success and dropped.
func TestNoOnMessage(t *testing.T) {
	_, fs := startFake(t, mqttc.Options{ClientID: "deaf", Version: packets.Version311}, connack())
	fs.write(t, &packets.Packet{Type: packets.Publish, QoS: 1, PacketID: 4, Topic: "t"})
	fs.expectAck(t, packets.Puback, 4, packets.Success)
	fs.write(t, &packets.Packet{Type: packets.Publish, QoS: 2, PacketID: 5, Topic: "t"})
	fs.expectAck(t, packets.Pubrec, 5, packets.Success)
	fs.write(t, &packets.Packet{Type: packets.Pubrel, PacketID: 5})
	fs.expectAck(t, packets.Pubcomp, 5, packets.Success)
}

// TestUnreleasedFake: the QoS 2 flows a connection leaves incomplete are
// reported by Unreleased; given to the next connection, they are released
// with PUBREL first when the session is resumed [MQTT-4.4.0-1], and their
// identifiers are not reused before PUBCOMP; with a new session they are
// ignored.
func TestUnreleasedFake(t *testing.T) {
	ctx := context.Background()
	results, done := doneChan()
	c1, fs1 := startFake(t, mqttc.Options{ClientID: "u", Version: packets.Version5}, connack())
	if c1.Unreleased() != nil {
		t.Error("Unreleased() is not nil while connected")
	}
	if err := c1.Publish(ctx, mqttc.Message{Topic: "u", QoS: 2}, done); err != nil {
		t.Fatal(err)
	}
	a := fs1.expect(t, packets.Publish).PacketID
	fs1.write(t, &packets.Packet{Type: packets.Pubrec, PacketID: a})
	fs1.expectAck(t, packets.Pubrel, a, packets.Success)
	if err := c1.Publish(ctx, mqttc.Message{Topic: "u", QoS: 2}, done); err != nil {
		t.Fatal(err)
	}
	b := fs1.expect(t, packets.Publish).PacketID
	if err := c1.Publish(ctx, mqttc.Message{Topic: "u", QoS: 1}, done); err != nil {
		t.Fatal(err)
	}
	fs1.expect(t, packets.Publish)
	fs1.conn.Close()
	waitDone(t, c1)
	for range 3 {
		if r := nextResult(t, results); r.err == nil {
			t.Error("incomplete publish: done without error")
		}
	}
	unrel := c1.Unreleased()
	if len(unrel) != 2 || unrel[0] != a || unrel[1] != b {
		t.Fatalf("Unreleased() = %v, want [%d %d]", unrel, a, b)
	}

	resumed := connack()
	resumed.SessionPresent = true
	msgs, onMsg := inbox()
	c2, fs2 := startFake(t, mqttc.Options{ClientID: "u", Version: packets.Version5, Unreleased: unrel, OnMessage: onMsg}, resumed)
	fs2.expectAck(t, packets.Pubrel, a, packets.Success)
	fs2.expectAck(t, packets.Pubrel, b, packets.Success)
	for range 3 {
		if err := c2.Publish(ctx, mqttc.Message{Topic: "u", QoS: 2}, done); err != nil {
			t.Fatal(err)
		}
		if id := fs2.expect(t, packets.Publish).PacketID; id == a || id == b {
			t.Fatalf("identifier %d reused before its PUBCOMP", id)
		}
	}
	fs2.write(t, &packets.Packet{Type: packets.Pubcomp, PacketID: a})
	fs2.write(t, &packets.Packet{Type: packets.Pubcomp, PacketID: b, ReasonCode: packets.PacketIdentifierNotFound})
	fs2.write(t, &packets.Packet{Type: packets.Publish, Topic: "sync"})
	next(t, msgs) // the reader has handled the PUBCOMPs before it
	closeWait(t, c2)
	if got := c2.Unreleased(); len(got) != 3 || slices.Contains(got, a) || slices.Contains(got, b) {
		t.Errorf("Unreleased() = %v, want the 3 new flights only", got)
	}

	c3, fs3 := startFake(t, mqttc.Options{ClientID: "u", Version: packets.Version5, Unreleased: unrel}, connack())
	if err := c3.Publish(ctx, mqttc.Message{Topic: "u"}, nil); err != nil {
		t.Fatal(err)
	}
	fs3.expect(t, packets.Publish) // no PUBREL for a new session
}
