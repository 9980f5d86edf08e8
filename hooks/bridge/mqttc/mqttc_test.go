package mqttc_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/packets"
	"github.com/vanemq/vanemq/hooks/bridge/mqttc"
)

// TestConnectSessionPresent connects, leaves a session behind, and resumes
// it: Session Present is 0 for a new session and 1 for a resumed one
// (3.1.1 [MQTT-3.2.2-2] [MQTT-3.2.2-3], 5.0 [MQTT-3.2.2-2] [MQTT-3.2.2-3]).
func TestConnectSessionPresent(t *testing.T) {
	for _, ver := range versions() {
		t.Run(ver.name, func(t *testing.T) {
			opts := anonymous()
			opts.ReceiveMaximum = 100
			addr := startBroker(t, opts)
			base := mqttc.Options{ClientID: "sp-" + ver.name, Version: ver.v}
			if ver.v == packets.Version5 {
				base.CleanStart, base.SessionExpiry = true, 60
			} // 3.1.1: Clean Session 0 keeps the session

			c := connect(t, addr, base)
			if c.SessionPresent() {
				t.Error("new session: SessionPresent is true")
			}
			if c.Version() != ver.v {
				t.Errorf("Version() = %d, want %d", c.Version(), ver.v)
			}
			wantRM := uint16(65535)
			if ver.v == packets.Version5 {
				wantRM = 100
				if ca := c.ConnAck(); !ca.Has(packets.PropReceiveMaximum) {
					t.Error("v5 CONNACK properties lack Receive Maximum")
				}
			}
			if got := c.ServerReceiveMaximum(); got != wantRM {
				t.Errorf("ServerReceiveMaximum() = %d, want %d", got, wantRM)
			}
			subscribe(t, c, "sp/#", 1)
			closeWait(t, c)
			if !errors.Is(c.Err(), mqttc.ErrClosed) {
				t.Errorf("Err after Close = %v, want ErrClosed", c.Err())
			}

			resume := base
			resume.CleanStart = false
			c2 := connect(t, addr, resume)
			if !c2.SessionPresent() {
				t.Error("resumed session: SessionPresent is false")
			}
			closeWait(t, c2)

			clean := base
			clean.CleanStart = true
			c3 := connect(t, addr, clean)
			if c3.SessionPresent() {
				t.Error("clean start: SessionPresent is true [MQTT-3.2.2-1]/[MQTT-3.2.2-2]")
			}
		})
	}
}

// TestConnectRefused: a CONNACK with a non-zero code is a *ConnectError
// and the connection is closed (3.1.1 [MQTT-3.2.2-5], 5.0 [MQTT-3.2.2-7]).
func TestConnectRefused(t *testing.T) {
	addr := startBroker(t, core.Options{}) // AllowAnonymous false, no auth hook
	for _, tc := range []struct {
		ver  version
		code packets.ReasonCode
		text string
	}{
		{versions()[0], packets.V3NotAuthorized, "not authorized (0x05)"},
		{versions()[1], packets.NotAuthorized, "not authorized (0x87)"},
	} {
		t.Run(tc.ver.name, func(t *testing.T) {
			conn, err := net.DialTimeout("tcp", addr, wait)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			c, err := mqttc.Connect(ctx, conn, mqttc.Options{ClientID: "refused", Version: tc.ver.v, CleanStart: true})
			var ce *mqttc.ConnectError
			if !errors.As(err, &ce) {
				t.Fatalf("Connect = %v, %v; want a *ConnectError", c, err)
			}
			if ce.Code != tc.code || !strings.Contains(ce.Error(), tc.text) {
				t.Errorf("ConnectError code %s, %q; want %s, containing %q", ce.Code, ce.Error(), tc.code, tc.text)
			}
			if _, err := conn.Write([]byte{0xC0, 0}); !errors.Is(err, net.ErrClosed) {
				t.Errorf("conn after a refused Connect: write error %v, want net.ErrClosed", err)
			}
		})
	}
}

// TestConnectContext: Connect gives up when ctx ends before CONNACK, and
// closes the connection.
func TestConnectContext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() { // a server that accepts and says nothing
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		_, _ = nc.Read(make([]byte, 1024))
		_, _ = nc.Read(make([]byte, 1)) // until the client closes
	}()
	conn, err := net.DialTimeout("tcp", ln.Addr().String(), wait)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = mqttc.Connect(ctx, conn, mqttc.Options{ClientID: "silent", Version: packets.Version5})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Connect = %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > wait {
		t.Errorf("Connect took %v", d)
	}
	if _, err := conn.Write([]byte{0xC0, 0}); !errors.Is(err, net.ErrClosed) {
		t.Errorf("conn after a failed Connect: write error %v, want net.ErrClosed", err)
	}
}

// TestRoundTrip publishes at QoS 0, 1 and 2 through the broker from one
// client to another, subscribed at QoS 2: the message arrives at the QoS it
// was published with (5.0 [MQTT-3.8.4-8], 3.1.1 [MQTT-3.8.4-6]), and done
// reports the acknowledgement.
func TestRoundTrip(t *testing.T) {
	for _, ver := range versions() {
		t.Run(ver.name, func(t *testing.T) {
			addr := startBroker(t, anonymous())
			msgs, onMsg := inbox()
			sub := connect(t, addr, mqttc.Options{ClientID: "sub", Version: ver.v, CleanStart: true, OnMessage: onMsg})
			pub := connect(t, addr, mqttc.Options{ClientID: "pub", Version: ver.v, CleanStart: true})
			subscribe(t, sub, "rt/#", 2)
			for qos := range byte(3) {
				t.Run(fmt.Sprintf("qos%d", qos), func(t *testing.T) {
					topic := fmt.Sprintf("rt/%d", qos)
					payload := []byte(fmt.Sprintf("payload at QoS %d", qos))
					r := publish(t, pub, mqttc.Message{Topic: topic, Payload: payload, QoS: qos})
					if r.err != nil || r.code != packets.Success {
						t.Errorf("done(%s, %v), want success", r.code, r.err)
					}
					got := next(t, msgs)
					if got.m.Topic != topic || !bytes.Equal(got.m.Payload, payload) || got.m.QoS != qos || got.m.Retain || got.m.Dup {
						t.Errorf("received %+v, want topic %s payload %q QoS %d", got.m, topic, payload, qos)
					}
					got.ack(packets.Success)
				})
			}
			// The QoS 2 flow towards the subscriber completed: a fresh
			// QoS 2 message after it still arrives once.
			publish(t, pub, mqttc.Message{Topic: "rt/again", Payload: []byte("x"), QoS: 2})
			next(t, msgs).ack(packets.Success)
			select {
			case r := <-msgs:
				t.Errorf("unexpected extra message %+v", r.m)
			default:
			}
		})
	}
}

// TestPublishRefused: a refusing PUBACK or PUBREC code reaches done (v5);
// a PUBREC of 0x80 or above ends the QoS 2 flow [MQTT-4.3.3-4]. 3.1.1 has
// no codes: the broker acknowledges and drops, done gets 0.
func TestPublishRefused(t *testing.T) {
	for _, ver := range versions() {
		t.Run(ver.name, func(t *testing.T) {
			addr := startBroker(t, anonymous(), denyHook{})
			c := connect(t, addr, mqttc.Options{ClientID: "refused-pub", Version: ver.v, CleanStart: true})
			want := packets.NotAuthorized
			if ver.v != packets.Version5 {
				want = packets.Success
			}
			for _, qos := range []byte{1, 2} {
				r := publish(t, c, mqttc.Message{Topic: "deny/x", Payload: []byte("no"), QoS: qos})
				if r.err != nil || r.code != want {
					t.Errorf("QoS %d: done(%s, %v), want %s", qos, r.code, r.err, want)
				}
			}
			// The connection is still fine.
			if r := publish(t, c, mqttc.Message{Topic: "ok/x", QoS: 1}); r.err != nil || r.code.IsError() {
				t.Errorf("publish after refusals: done(%s, %v)", r.code, r.err)
			}
		})
	}
}

// TestManualAck leaves a QoS 1 or 2 message unacknowledged, reconnects to
// the session, and gets it again with DUP set (3.1.1 [MQTT-4.4.0-1]
// [MQTT-3.3.1-1], 5.0 [MQTT-4.4.0-1] [MQTT-3.3.1-1]); once acknowledged,
// it is not sent again: acknowledgement is under the caller's control.
func TestManualAck(t *testing.T) {
	for _, ver := range versions() {
		for _, qos := range []byte{1, 2} {
			t.Run(fmt.Sprintf("%s/qos%d", ver.name, qos), func(t *testing.T) {
				events := newEvents()
				addr := startBroker(t, anonymous(), events)
				msgs, onMsg := inbox()
				sopts := mqttc.Options{ClientID: "acker", Version: ver.v, OnMessage: onMsg}
				if ver.v == packets.Version5 {
					sopts.CleanStart, sopts.SessionExpiry = true, 300
				}
				sub := connect(t, addr, sopts)
				subscribe(t, sub, "ack/#", qos)
				pub := connect(t, addr, mqttc.Options{ClientID: "ack-pub", Version: ver.v, CleanStart: true})
				publish(t, pub, mqttc.Message{Topic: "ack/1", Payload: []byte("first"), QoS: qos})
				first := next(t, msgs)
				if first.m.Dup || string(first.m.Payload) != "first" {
					t.Fatalf("first delivery %+v", first.m)
				}
				closeWait(t, sub) // not acknowledged
				first.ack(packets.Success)
				// ...an ack after the connection ended does nothing.
				// Reconnecting only once the broker is done with the
				// connection: a takeover could race what it still reads.
				events.waitDisconnected(t, "acker")

				sopts.CleanStart = false
				sub2 := connect(t, addr, sopts)
				if !sub2.SessionPresent() {
					t.Fatal("session not resumed")
				}
				again := next(t, msgs)
				if !again.m.Dup || string(again.m.Payload) != "first" || again.m.QoS != qos {
					t.Fatalf("redelivery %+v, want DUP set, payload first, QoS %d", again.m, qos)
				}
				acked := make(chan struct{})
				go func() { // from another goroutine, later
					again.ack(packets.Success)
					again.ack(packets.Success) // a second call does nothing
					close(acked)
				}()
				<-acked
				closeWait(t, sub2) // the acknowledgement is written before DISCONNECT
				events.waitDisconnected(t, "acker")

				sub3 := connect(t, addr, sopts)
				publish(t, pub, mqttc.Message{Topic: "ack/2", Payload: []byte("marker"), QoS: qos})
				got := next(t, msgs)
				if string(got.m.Payload) != "marker" {
					t.Fatalf("after the ack, got %q (DUP %v), want the marker: the acknowledged message came back", got.m.Payload, got.m.Dup)
				}
				got.ack(packets.Success)
				_ = sub3
			})
		}
	}
}

// TestPublishReceiveMaximum: Publish keeps at most the server's Receive
// Maximum of QoS 1 and 2 publishes unacknowledged [MQTT-4.9.0-2]; the next
// one waits until one is acknowledged (or ctx ends, without calling done).
func TestPublishReceiveMaximum(t *testing.T) {
	for _, ver := range versions() {
		t.Run(ver.name, func(t *testing.T) {
			if ver.v != packets.Version5 {
				// 3.1.1 has no Receive Maximum: the caller bounds itself.
				opts := anonymous()
				opts.ReceiveMaximum = 2
				c := connect(t, startBroker(t, opts), mqttc.Options{ClientID: "rm", Version: ver.v, CleanStart: true})
				if got := c.ServerReceiveMaximum(); got != 65535 {
					t.Errorf("3.1.1 ServerReceiveMaximum() = %d, want 65535", got)
				}
				return
			}
			gate := newGate()
			opts := anonymous()
			opts.ReceiveMaximum = 2
			addr := startBroker(t, opts, gate)
			t.Cleanup(gate.release) // before the broker shuts down
			c := connect(t, addr, mqttc.Options{ClientID: "rm", Version: ver.v, CleanStart: true})
			if got := c.ServerReceiveMaximum(); got != 2 {
				t.Fatalf("ServerReceiveMaximum() = %d, want 2", got)
			}
			results, done := doneChan()
			bg := context.Background()
			for i, qos := range []byte{1, 2} {
				if err := c.Publish(bg, mqttc.Message{Topic: fmt.Sprintf("gate/%d", i), QoS: qos}, done); err != nil {
					t.Fatalf("Publish %d: %v", i, err)
				}
			}
			gate.waitEntered(t) // the broker holds the first: nothing is acknowledged

			ctx, cancel := context.WithTimeout(bg, 200*time.Millisecond)
			defer cancel()
			timedOut := func(packets.ReasonCode, error) { t.Error("done called for a publish that was not queued") }
			if err := c.Publish(ctx, mqttc.Message{Topic: "gate/3", QoS: 1}, timedOut); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("third Publish at the receive maximum = %v, want context.DeadlineExceeded", err)
			}

			third := make(chan error, 1)
			go func() { third <- c.Publish(bg, mqttc.Message{Topic: "gate/3", QoS: 1}, done) }()
			select {
			case err := <-third:
				t.Fatalf("third Publish returned (%v) while the window is full", err)
			case <-time.After(100 * time.Millisecond):
			}
			gate.release()
			select {
			case err := <-third:
				if err != nil {
					t.Fatalf("third Publish: %v", err)
				}
			case <-time.After(wait):
				t.Fatal("third Publish still blocked after acknowledgements")
			}
			for range 3 {
				if r := nextResult(t, results); r.err != nil || r.code.IsError() {
					t.Errorf("done(%s, %v), want success", r.code, r.err)
				}
			}
		})
	}
}

// TestDoneOnClose: publishes still waiting for their acknowledgement when
// the connection is closed get done with an error wrapping ErrClosed, once
// each, by the time Done is closed.
func TestDoneOnClose(t *testing.T) {
	for _, ver := range versions() {
		t.Run(ver.name, func(t *testing.T) {
			gate := newGate()
			addr := startBroker(t, anonymous(), gate)
			t.Cleanup(gate.release)
			c := connect(t, addr, mqttc.Options{ClientID: "closer", Version: ver.v, CleanStart: true})
			results, done := doneChan()
			for i, qos := range []byte{1, 2, 1, 2} {
				if err := c.Publish(context.Background(), mqttc.Message{Topic: fmt.Sprintf("gate/%d", i), QoS: qos}, done); err != nil {
					t.Fatalf("Publish: %v", err)
				}
			}
			gate.waitEntered(t)
			if err := c.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if err := c.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
			waitDone(t, c)
			for range 4 {
				select {
				case r := <-results:
					if !errors.Is(r.err, mqttc.ErrClosed) {
						t.Errorf("done(%s, %v), want an error wrapping ErrClosed", r.code, r.err)
					}
				default:
					t.Fatal("a pending done was not called by the time Done closed")
				}
			}
			if !errors.Is(c.Err(), mqttc.ErrClosed) {
				t.Errorf("Err() = %v, want ErrClosed", c.Err())
			}
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			if err := c.Publish(ctx, mqttc.Message{Topic: "x", QoS: 1}, done); err == nil {
				t.Error("Publish after Close succeeded")
			}
			if err := c.Publish(ctx, mqttc.Message{Topic: "x"}, nil); err == nil {
				t.Error("QoS 0 Publish after Close succeeded")
			}
			if _, err := c.Subscribe(ctx, []packets.Subscription{{Filter: "x"}}); err == nil {
				t.Error("Subscribe after Close succeeded")
			}
			select {
			case r := <-results:
				t.Errorf("done called again: %v", r)
			default:
			}
		})
	}
}

// TestKeepAlive: with a keep alive of 1 s the client sends PINGREQ when
// idle (3.1.1 [MQTT-3.1.2-23], 5.0 [MQTT-3.1.2-20]), so the broker, which
// closes connections silent for 1.5 keep alives (3.1.1 [MQTT-3.1.2-24],
// 5.0 [MQTT-3.1.2-22]), keeps it past 2.5 s. In v5 the Server Keep Alive of
// CONNACK replaces the client's [MQTT-3.1.2-21].
func TestKeepAlive(t *testing.T) {
	for _, tc := range []struct {
		name      string
		ver       byte
		keepAlive time.Duration
		serverKA  uint16
	}{
		{"v311", packets.Version311, time.Second, 0},
		{"v5", packets.Version5, time.Second, 0},
		{"v5-server-keep-alive", packets.Version5, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			opts := anonymous()
			opts.ServerKeepAlive = tc.serverKA
			addr := startBroker(t, opts)
			msgs, onMsg := inbox()
			c := connect(t, addr, mqttc.Options{ClientID: "idle", Version: tc.ver, CleanStart: true, KeepAlive: tc.keepAlive, OnMessage: onMsg})
			if c.KeepAlive() != time.Second {
				t.Fatalf("KeepAlive() = %v, want 1s", c.KeepAlive())
			}
			select {
			case <-c.Done():
				t.Fatalf("idle connection ended: %v", c.Err())
			case <-time.After(2500 * time.Millisecond):
			}
			subscribe(t, c, "ka", 1)
			publish(t, c, mqttc.Message{Topic: "ka", Payload: []byte("alive"), QoS: 1})
			next(t, msgs).ack(packets.Success)
		})
	}
}

// TestTakeover: a second connection with the same client identifier takes
// the session over and the server closes the first (3.1.1 [MQTT-3.1.4-2]);
// in v5 it first sends DISCONNECT 0x8E, Session taken over [MQTT-3.1.4-3].
func TestTakeover(t *testing.T) {
	for _, ver := range versions() {
		t.Run(ver.name, func(t *testing.T) {
			addr := startBroker(t, anonymous())
			// A keep alive, so a PINGREQ wakes the broker's reader of the
			// first connection should it miss the takeover's wake-up (it
			// can: its serve loop re-arms the read deadline after checking
			// whether it is stopping, racing kick's deadline in the past).
			opts := mqttc.Options{ClientID: "twin", Version: ver.v, CleanStart: true, KeepAlive: time.Second}
			first := connect(t, addr, opts)
			results, done := doneChan()
			subscribe(t, first, "twin", 1)
			connect(t, addr, opts)
			waitDone(t, first)
			err := first.Err()
			var de *mqttc.DisconnectError
			if ver.v == packets.Version5 {
				if !errors.As(err, &de) || de.Code != packets.SessionTakenOver {
					t.Fatalf("Err() = %v, want a *DisconnectError with %s", err, packets.SessionTakenOver)
				}
			} else if err == nil || errors.As(err, &de) || errors.Is(err, mqttc.ErrClosed) {
				t.Fatalf("Err() = %v, want a read error", err)
			}
			if err := first.Publish(context.Background(), mqttc.Message{Topic: "twin", QoS: 1}, done); err == nil {
				t.Error("Publish on an ended connection succeeded")
			}
			if err := first.Close(); err != nil {
				t.Errorf("Close after the end: %v", err)
			}
			if len(results) != 0 {
				t.Error("done called for a publish that was refused")
			}
		})
	}
}

// TestProperties carries v5 properties both ways between two v5 clients:
// the server forwards them unaltered [MQTT-3.3.2-4] [MQTT-3.3.2-15]
// [MQTT-3.3.2-16] [MQTT-3.3.2-17] [MQTT-3.3.2-20], user properties in
// order [MQTT-3.3.2-18], with the remaining expiry [MQTT-3.3.2-6]. A
// 3.1.1 subscriber gets the message without properties.
func TestProperties(t *testing.T) {
	addr := startBroker(t, anonymous())
	aMsgs, aOn := inbox()
	bMsgs, bOn := inbox()
	oldMsgs, oldOn := inbox()
	a := connect(t, addr, mqttc.Options{ClientID: "a", Version: packets.Version5, CleanStart: true, OnMessage: aOn})
	b := connect(t, addr, mqttc.Options{ClientID: "b", Version: packets.Version5, CleanStart: true, OnMessage: bOn})
	old := connect(t, addr, mqttc.Options{ClientID: "old", Version: packets.Version311, CleanStart: true, OnMessage: oldOn})
	subscribe(t, a, "to/a", 1)
	subscribe(t, b, "to/b", 1)
	subscribe(t, old, "to/#", 1)

	for _, tc := range []struct {
		from *mqttc.Client
		to   string
		msgs chan received
	}{{a, "to/b", bMsgs}, {b, "to/a", aMsgs}} {
		var pr packets.Properties
		pr.UserProperties = []packets.UserProperty{{Key: "k", Value: "1"}, {Key: "k", Value: "2"}, {Key: "from", Value: tc.to}}
		pr.ContentType = "text/plain"
		pr.Set(packets.PropContentType)
		pr.MessageExpiry = 120
		pr.Set(packets.PropMessageExpiry)
		pr.ResponseTopic = "reply/" + tc.to
		pr.Set(packets.PropResponseTopic)
		pr.CorrelationData = []byte{1, 2, 3}
		pr.Set(packets.PropCorrelationData)
		pr.PayloadFormat = 1
		pr.Set(packets.PropPayloadFormat)
		publish(t, tc.from, mqttc.Message{Topic: tc.to, Payload: []byte("hello"), QoS: 1, Properties: pr})

		got := next(t, tc.msgs)
		got.ack(packets.Success)
		g := got.m.Properties
		if !slices.Equal(g.UserProperties, pr.UserProperties) {
			t.Errorf("%s: user properties %v, want %v", tc.to, g.UserProperties, pr.UserProperties)
		}
		if !g.Has(packets.PropContentType) || g.ContentType != pr.ContentType {
			t.Errorf("%s: content type %q", tc.to, g.ContentType)
		}
		if !g.Has(packets.PropMessageExpiry) || g.MessageExpiry == 0 || g.MessageExpiry > 120 {
			t.Errorf("%s: message expiry %d (present %v), want 1..120", tc.to, g.MessageExpiry, g.Has(packets.PropMessageExpiry))
		}
		if g.ResponseTopic != pr.ResponseTopic || !bytes.Equal(g.CorrelationData, pr.CorrelationData) || g.PayloadFormat != 1 {
			t.Errorf("%s: response topic %q, correlation data %v, payload format %d", tc.to, g.ResponseTopic, g.CorrelationData, g.PayloadFormat)
		}
		if g.Has(packets.PropTopicAlias) {
			t.Errorf("%s: a Topic Alias reached the application", tc.to)
		}

		o := next(t, oldMsgs)
		o.ack(packets.Success)
		if op := o.m.Properties; !op.Empty() {
			t.Errorf("3.1.1 subscriber got properties %+v", o.m.Properties)
		}
	}
}

// TestSubscriptionOptions: No Local is a v5 subscription option
// [MQTT-3.8.3-3]; in 3.1.1 it is not sent, and a client gets its own
// messages.
func TestSubscriptionOptions(t *testing.T) {
	for _, ver := range versions() {
		t.Run(ver.name, func(t *testing.T) {
			addr := startBroker(t, anonymous())
			msgs, onMsg := inbox()
			c := connect(t, addr, mqttc.Options{ClientID: "self", Version: ver.v, CleanStart: true, OnMessage: onMsg})
			other := connect(t, addr, mqttc.Options{ClientID: "other", Version: ver.v, CleanStart: true})
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			codes, err := c.Subscribe(ctx, []packets.Subscription{
				{Filter: "nl/t", QoS: 1, NoLocal: true, RetainHandling: 2},
				{Filter: "nl/#/bad", QoS: 1},
			})
			if err != nil {
				t.Fatal(err)
			}
			wantBad := packets.TopicFilterInvalid
			if ver.v != packets.Version5 {
				wantBad = packets.V3SubackFailure
			}
			if len(codes) != 2 || codes[0] != packets.GrantedQoS1 || codes[1] != wantBad {
				t.Fatalf("SUBACK codes %v, want [%s %s]", codes, packets.GrantedQoS1, wantBad)
			}
			publish(t, c, mqttc.Message{Topic: "nl/t", Payload: []byte("own"), QoS: 1})
			publish(t, other, mqttc.Message{Topic: "nl/t", Payload: []byte("other"), QoS: 1})
			want := "own"
			if ver.v == packets.Version5 {
				want = "other"
			}
			if got := next(t, msgs); string(got.m.Payload) != want {
				t.Errorf("first message %q, want %q", got.m.Payload, want)
			}
		})
	}
}

// TestUnsubscribe: after UNSUBSCRIBE the server sends nothing more for the
// filter [MQTT-3.10.4-2]; in v5, a filter with no subscription gets 0x11,
// which is not an error.
func TestUnsubscribe(t *testing.T) {
	for _, ver := range versions() {
		t.Run(ver.name, func(t *testing.T) {
			addr := startBroker(t, anonymous())
			msgs, onMsg := inbox()
			c := connect(t, addr, mqttc.Options{ClientID: "unsub", Version: ver.v, CleanStart: true, OnMessage: onMsg})
			subscribe(t, c, "gone", 0)
			subscribe(t, c, "kept", 0)
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			if err := c.Unsubscribe(ctx, []string{"gone", "never"}); err != nil {
				t.Fatalf("Unsubscribe: %v", err)
			}
			publish(t, c, mqttc.Message{Topic: "gone", Payload: []byte("gone"), QoS: 1})
			publish(t, c, mqttc.Message{Topic: "kept", Payload: []byte("kept"), QoS: 1})
			if got := next(t, msgs); string(got.m.Payload) != "kept" {
				t.Errorf("got %q on %s after unsubscribing", got.m.Payload, got.m.Topic)
			}
		})
	}
}

// TestMaximumPacketSize: the client does not send a packet larger than the
// server's Maximum Packet Size [MQTT-3.2.2-15], and announces its own,
// which the server respects [MQTT-3.1.2-24] [MQTT-3.1.2-25] (v5).
func TestMaximumPacketSize(t *testing.T) {
	opts := anonymous()
	opts.MaxPacketSize = 512
	addr := startBroker(t, opts)
	msgs, onMsg := inbox()
	c := connect(t, addr, mqttc.Options{ClientID: "small", Version: packets.Version5, CleanStart: true, MaxPacketSize: 200, OnMessage: onMsg})
	subscribe(t, c, "size/#", 1)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	err := c.Publish(ctx, mqttc.Message{Topic: "size/big", Payload: make([]byte, 1000), QoS: 1}, func(packets.ReasonCode, error) {
		t.Error("done called for a publish that was refused")
	})
	if !errors.Is(err, mqttc.ErrPacketTooLarge) {
		t.Fatalf("Publish of 1000 bytes to a 512-byte server = %v, want ErrPacketTooLarge", err)
	}
	// 300 bytes: the server takes it, but does not forward it to a client
	// that accepts 200.
	publish(t, c, mqttc.Message{Topic: "size/mid", Payload: make([]byte, 300), QoS: 1})
	publish(t, c, mqttc.Message{Topic: "size/small", Payload: []byte("ok"), QoS: 1})
	if got := next(t, msgs); got.m.Topic != "size/small" {
		t.Errorf("got %s (%d bytes), want size/small", got.m.Topic, len(got.m.Payload))
	}
}

// TestPublishInvalid: what cannot be sent is refused by Publish, without
// done and without harm to the connection.
func TestPublishInvalid(t *testing.T) {
	addr := startBroker(t, anonymous())
	c := connect(t, addr, mqttc.Options{ClientID: "invalid", Version: packets.Version5, CleanStart: true})
	never := func(packets.ReasonCode, error) { t.Error("done called for a refused publish") }
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for _, m := range []mqttc.Message{
		{Topic: "a/+", QoS: 1},    // wildcard [MQTT-3.3.2-2]
		{Topic: "", QoS: 1},       // empty [MQTT-4.7.3-1]
		{Topic: "q3", QoS: 3},     // QoS 3 [MQTT-3.3.1-4]
		{Topic: "a\x00b", QoS: 0}, // U+0000 [MQTT-4.7.3-2]
	} {
		if err := c.Publish(ctx, m, never); err == nil {
			t.Errorf("Publish(%q, QoS %d) succeeded", m.Topic, m.QoS)
		}
	}
	if _, err := c.Subscribe(ctx, nil); err == nil {
		t.Error("Subscribe with no filters succeeded")
	}
	if r := publish(t, c, mqttc.Message{Topic: "fine", QoS: 2}); r.err != nil {
		t.Errorf("publish after refusals: %v", r.err)
	}
}

// TestMessageOwnership: received messages do not share memory with the
// client's buffers: kept until many more were read, they are intact.
func TestMessageOwnership(t *testing.T) {
	addr := startBroker(t, anonymous())
	msgs, onMsg := inbox()
	c := connect(t, addr, mqttc.Options{ClientID: "keeper", Version: packets.Version5, CleanStart: true, OnMessage: onMsg})
	subscribe(t, c, "own/#", 0)
	const n = 300
	for i := range n {
		payload := bytes.Repeat([]byte{byte(i)}, 100+i)
		if err := c.Publish(context.Background(), mqttc.Message{Topic: fmt.Sprintf("own/%d", i), Payload: payload}, nil); err != nil {
			t.Fatal(err)
		}
	}
	kept := make([]mqttc.Message, 0, n)
	for range n {
		kept = append(kept, next(t, msgs).m)
	}
	for i, m := range kept {
		if m.Topic != fmt.Sprintf("own/%d", i) || !bytes.Equal(m.Payload, bytes.Repeat([]byte{byte(i)}, 100+i)) {
			t.Fatalf("message %d changed: topic %s, %d bytes", i, m.Topic, len(m.Payload))
		}
	}
}

// TestConcurrentPublish: many goroutines publish at QoS 1 and 2 through a
// small receive maximum while the subscriber acknowledges from other
// goroutines; every done is called once, every message arrives.
func TestConcurrentPublish(t *testing.T) {
	for _, ver := range versions() {
		t.Run(ver.name, func(t *testing.T) {
			opts := anonymous()
			if ver.v == packets.Version5 {
				// 3.1.1 has no Receive Maximum: the broker would disconnect
				// a 3.1.1 client above its own, which the client cannot know.
				opts.ReceiveMaximum = 4
			}
			opts.MaxInflight = 8
			addr := startBroker(t, opts)
			const workers, each = 4, 100
			msgs, onMsg := inbox()
			sub := connect(t, addr, mqttc.Options{ClientID: "csub", Version: ver.v, CleanStart: true, ReceiveMaximum: 16, OnMessage: onMsg})
			pub := connect(t, addr, mqttc.Options{ClientID: "cpub", Version: ver.v, CleanStart: true})
			subscribe(t, sub, "c/#", 2)

			var mu sync.Mutex
			doneCount := map[string]int{}
			var wg sync.WaitGroup
			allDone := make(chan struct{})
			var pending sync.WaitGroup
			pending.Add(workers * each)
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range each {
						key := fmt.Sprintf("c/%d/%d", w, i)
						err := pub.Publish(context.Background(), mqttc.Message{Topic: key, Payload: []byte(key), QoS: byte(1 + i%2)},
							func(code packets.ReasonCode, err error) {
								mu.Lock()
								doneCount[key]++
								mu.Unlock()
								if err != nil || code.IsError() {
									t.Errorf("%s: done(%s, %v)", key, code, err)
								}
								pending.Done()
							})
						if err != nil {
							t.Errorf("Publish %s: %v", key, err)
							pending.Done()
						}
					}
				}()
			}
			go func() { pending.Wait(); close(allDone) }()

			seen := map[string]bool{}
			acks := make(chan func(packets.ReasonCode), workers*each)
			var ackers sync.WaitGroup
			for range 3 {
				ackers.Add(1)
				go func() {
					defer ackers.Done()
					for ack := range acks {
						ack(packets.Success)
					}
				}()
			}
			for len(seen) < workers*each {
				r := next(t, msgs)
				if seen[r.m.Topic] {
					t.Errorf("%s delivered twice", r.m.Topic)
				}
				seen[r.m.Topic] = true
				acks <- r.ack
			}
			close(acks)
			ackers.Wait()
			wg.Wait()
			select {
			case <-allDone:
			case <-time.After(wait):
				t.Fatal("not every done was called")
			}
			for k, n := range doneCount {
				if n != 1 {
					t.Errorf("%s: done called %d times", k, n)
				}
			}
		})
	}
}

// TestWill: Disconnect with 0x04 has the server publish the will (v5,
// MQTT 5.0 section 3.14.2.1); Close discards it [MQTT-3.1.2-10] (3.1.1
// [MQTT-3.1.2-10] too).
func TestWill(t *testing.T) {
	events := newEvents()
	addr := startBroker(t, anonymous(), events)
	msgs, onMsg := inbox()
	watcher := connect(t, addr, mqttc.Options{ClientID: "watcher", Version: packets.Version5, CleanStart: true, OnMessage: onMsg})
	subscribe(t, watcher, "will/#", 1)
	will := &packets.Will{Topic: "will/gone", Payload: []byte("bye"), QoS: 1}
	for _, tc := range []struct {
		name    string
		ver     byte
		code    packets.ReasonCode
		publish bool
	}{
		{"v311-close", packets.Version311, packets.Success, false},
		{"v5-close", packets.Version5, packets.Success, false},
		{"v5-with-will", packets.Version5, packets.DisconnectWithWill, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := dial(t, addr, mqttc.Options{ClientID: "mortal", Version: tc.ver, CleanStart: true, Will: will})
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Disconnect(tc.code); err != nil {
				t.Fatalf("Disconnect: %v", err)
			}
			waitDone(t, c)
			if got := events.waitDisconnected(t, "mortal"); got != tc.code {
				t.Errorf("the broker got DISCONNECT %s, want %s", got, tc.code)
			}
			// The marker is published after the DISCONNECT was written; the
			// will, if any, may come before or after it.
			publish(t, watcher, mqttc.Message{Topic: "will/marker", QoS: 1})
			gotWill, gotMarker := false, false
			for !gotMarker || (tc.publish && !gotWill) {
				got := next(t, msgs)
				got.ack(packets.Success)
				switch got.m.Topic {
				case "will/marker":
					gotMarker = true
				case "will/gone":
					if !tc.publish || string(got.m.Payload) != "bye" {
						t.Fatalf("unexpected will %q", got.m.Payload)
					}
					gotWill = true
				}
			}
		})
	}
}

// TestVersion31: MQTT 3.1 (protocol name "MQIsdp") connects and carries
// messages like 3.1.1.
func TestVersion31(t *testing.T) {
	addr := startBroker(t, anonymous())
	msgs, onMsg := inbox()
	c := connect(t, addr, mqttc.Options{ClientID: "old31", Version: packets.Version31, CleanStart: true, OnMessage: onMsg})
	if c.Version() != packets.Version31 || c.SessionPresent() {
		t.Fatalf("Version() = %d, SessionPresent() = %v", c.Version(), c.SessionPresent())
	}
	subscribe(t, c, "v31", 2)
	for qos := range byte(3) {
		publish(t, c, mqttc.Message{Topic: "v31", Payload: []byte{qos}, QoS: qos})
		got := next(t, msgs)
		if got.m.QoS != qos || !bytes.Equal(got.m.Payload, []byte{qos}) {
			t.Errorf("got %+v", got.m)
		}
		got.ack(packets.Success)
	}
}

// TestUnreleased: a QoS 2 PUBLISH the broker received but whose flow the
// connection did not complete leaves its packet identifier in the
// session, awaiting PUBREL. On the resumed session, a new QoS 2 message
// under that identifier is taken for a duplicate and dropped
// [MQTT-4.3.3-10]; passing Unreleased on has the client send PUBREL first
// [MQTT-4.4.0-1], and the new message goes through.
func TestUnreleased(t *testing.T) {
	for _, ver := range versions() {
		for _, carry := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/carried-%v", ver.name, carry), func(t *testing.T) {
				events, gate := newEvents(), newGate()
				addr := startBroker(t, anonymous(), gate, events)
				t.Cleanup(gate.release)
				msgs, onMsg := inbox()
				sub := connect(t, addr, mqttc.Options{ClientID: "u-sub", Version: ver.v, CleanStart: true, OnMessage: onMsg})
				subscribe(t, sub, "after", 2)
				popts := mqttc.Options{ClientID: "u-pub", Version: ver.v}
				if ver.v == packets.Version5 {
					popts.CleanStart, popts.SessionExpiry = true, 300
				}
				pub := connect(t, addr, popts)
				results, done := doneChan()
				if err := pub.Publish(context.Background(), mqttc.Message{Topic: "gate/u", QoS: 2}, done); err != nil {
					t.Fatal(err)
				}
				gate.waitEntered(t) // the broker holds identifier 1 as received
				closeWait(t, pub)
				if r := nextResult(t, results); !errors.Is(r.err, mqttc.ErrClosed) {
					t.Fatalf("done(%s, %v), want ErrClosed", r.code, r.err)
				}
				unrel := pub.Unreleased()
				if len(unrel) != 1 {
					t.Fatalf("Unreleased() = %v, want one identifier", unrel)
				}
				gate.release()
				events.waitDisconnected(t, "u-pub")

				popts.CleanStart = false
				if carry {
					popts.Unreleased = unrel
				}
				pub2 := connect(t, addr, popts)
				if !pub2.SessionPresent() {
					t.Fatal("session not resumed")
				}
				if r := publish(t, pub2, mqttc.Message{Topic: "after", Payload: []byte("new"), QoS: 2}); r.err != nil || r.code.IsError() {
					t.Fatalf("done(%s, %v)", r.code, r.err)
				}
				publish(t, pub2, mqttc.Message{Topic: "after", Payload: []byte("marker"), QoS: 1})
				want := "marker"
				if carry {
					want = "new"
				}
				got := next(t, msgs)
				got.ack(packets.Success)
				if string(got.m.Payload) != want {
					t.Fatalf("first message %q, want %q", got.m.Payload, want)
				}
			})
		}
	}
}
