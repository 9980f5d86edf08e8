package core_test

// End-to-end tests of MQTT 3.1.1 (and 3.1) behaviour with paho.mqtt.golang
// clients. Statement numbers are from the OASIS MQTT Version 3.1.1 standard.

import (
	"errors"
	"fmt"
	"testing"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/vanemq/vanemq/core"
)

func protocol(v uint) func(*mqtt.ClientOptions) {
	return func(o *mqtt.ClientOptions) { o.SetProtocolVersion(v) }
}

func persistent(o *mqtt.ClientOptions) { o.SetCleanSession(false) }

// CONNECT with 3.1.1 (protocol level 4) and 3.1 (MQIsdp, level 3) is
// accepted with Session Present 0 for a clean session [MQTT-3.2.2-1], and
// the client can publish and subscribe.
func TestE2EV311Connect(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, core.Options{})
	for _, tc := range []struct {
		name    string
		version uint
	}{
		{"3.1.1 (MQTT, level 4)", 4},
		{"3.1 (MQIsdp, level 3)", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := fmt.Sprintf("v%d", tc.version)
			c := connectV3(t, tb.Addr, id, protocol(tc.version))
			if c.SessionPresent {
				t.Errorf("Session Present 1 with Clean Session 1 [MQTT-3.2.2-1]")
			}
			topic := fmt.Sprintf("v3/%d", tc.version)
			c.sub(topic, 1)
			c.pub(topic, 1, false, "hello")
			if m := c.next(); m.Topic() != topic || string(m.Payload()) != "hello" || m.Qos() != 1 {
				t.Errorf("got %s %q QoS %d, want %s hello QoS 1", m.Topic(), m.Payload(), m.Qos(), topic)
			}
		})
	}
}

// A zero-byte client ID is assigned an identifier with Clean Session 1
// [MQTT-3.1.3-6] and refused with return code 0x02 with Clean Session 0
// [MQTT-3.1.3-8].
func TestE2EV311EmptyClientID(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, core.Options{})
	t.Run("clean session 1 accepted [MQTT-3.1.3-6]", func(t *testing.T) {
		c := connectV3(t, tb.Addr, "", nil)
		c.sub("empty/t", 0)
		c.pub("empty/t", 0, false, "ok")
		if m := c.next(); string(m.Payload()) != "ok" {
			t.Errorf("got %q", m.Payload())
		}
	})
	t.Run("clean session 0 refused with 0x02 [MQTT-3.1.3-8]", func(t *testing.T) {
		_, err := dialV3(t, tb.Addr, "", persistent)
		if !errors.Is(err, packets.ErrorRefusedIDRejected) {
			t.Errorf("connect error %v, want identifier rejected (0x02)", err)
		}
	})
}

// Every QoS combination: delivered at min(publish QoS, granted QoS)
// [MQTT-3.8.4-6] with DUP 0 [MQTT-3.3.1-2][MQTT-3.3.1-3].
func TestE2EV311QoSDelivery(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, core.Options{})
	pub := connectV3(t, tb.Addr, "v3-pub", nil)
	sub := connectV3(t, tb.Addr, "v3-sub", nil)
	for sq := byte(0); sq <= 2; sq++ {
		sub.sub(fmt.Sprintf("v3q/%d", sq), sq)
	}
	for pq := byte(0); pq <= 2; pq++ {
		for sq := byte(0); sq <= 2; sq++ {
			t.Run(fmt.Sprintf("pub_qos%d/sub_qos%d", pq, sq), func(t *testing.T) {
				topic := fmt.Sprintf("v3q/%d", sq)
				payload := fmt.Sprintf("%d-%d", pq, sq)
				pub.on(t).pub(topic, pq, false, payload)
				m := sub.on(t).next()
				if m.Topic() != topic || string(m.Payload()) != payload {
					t.Fatalf("got %s %q, want %s %q", m.Topic(), m.Payload(), topic, payload)
				}
				if want := min(pq, sq); m.Qos() != want {
					t.Errorf("delivered at QoS %d, want %d [MQTT-3.8.4-6]", m.Qos(), want)
				}
				if m.Duplicate() {
					t.Errorf("DUP set on a first delivery [MQTT-3.3.1-3]")
				}
				if m.Retained() {
					t.Errorf("RETAIN set on a non-retained message")
				}
			})
		}
	}
}

// Retained messages: stored and sent to a new subscription with RETAIN 1
// [MQTT-3.3.1-5][MQTT-3.3.1-6][MQTT-3.3.1-8], forwarded to an established
// subscription with RETAIN 0 [MQTT-3.3.1-9], removed by a zero-byte
// retained message [MQTT-3.3.1-10][MQTT-3.3.1-11].
func TestE2EV311Retained(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, core.Options{})
	pub := connectV3(t, tb.Addr, "v3r-pub", nil)
	live := connectV3(t, tb.Addr, "v3r-live", nil)
	live.sub("v3r/#", 1)

	pub.pub("v3r/t", 1, true, "kept")
	if m := live.next(); string(m.Payload()) != "kept" || m.Retained() {
		t.Errorf("established subscription got %q retained=%v, want RETAIN 0 [MQTT-3.3.1-9]", m.Payload(), m.Retained())
	}

	late := connectV3(t, tb.Addr, "v3r-late", nil)
	late.sub("v3r/#", 2)
	m := late.next()
	if m.Topic() != "v3r/t" || string(m.Payload()) != "kept" {
		t.Fatalf("new subscription got %s %q, want the retained v3r/t [MQTT-3.3.1-6]", m.Topic(), m.Payload())
	}
	if !m.Retained() {
		t.Errorf("retained message sent on subscribe with RETAIN 0 [MQTT-3.3.1-8]")
	}
	if m.Qos() != 1 {
		t.Errorf("retained message at QoS %d, want its stored QoS 1 [MQTT-3.3.1-5]", m.Qos())
	}

	pub.pub("v3r/t", 1, true, "") // zero-byte retained: clears
	if m := live.next(); len(m.Payload()) != 0 || m.Retained() {
		t.Errorf("zero-byte retained message reached existing subscriber as %q retained=%v, want it as normal [MQTT-3.3.1-10]", m.Payload(), m.Retained())
	}
	cleared := connectV3(t, tb.Addr, "v3r-cleared", nil)
	cleared.sub("v3r/#", 1)
	pub.pub("v3r/marker", 1, false, "m")
	if got := cleared.until("v3r/marker"); len(got) != 0 {
		t.Errorf("new subscriber got %v after the retained message was cleared [MQTT-3.3.1-10][MQTT-3.3.1-11]", v3Topics(got))
	}
}

// The will is published when the network connection closes without
// DISCONNECT [MQTT-3.1.2-8], retained if asked [MQTT-3.1.2-17], and not
// after DISCONNECT [MQTT-3.1.2-8][MQTT-3.1.2-10].
func TestE2EV311Will(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		retain bool
		kill   bool
	}{
		{"abnormal close publishes the will [MQTT-3.1.2-8][MQTT-3.1.2-16]", false, true},
		{"abnormal close publishes a retained will [MQTT-3.1.2-17]", true, true},
		{"DISCONNECT discards the will [MQTT-3.1.2-10]", false, false},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tb := startBroker(t, core.Options{})
			topic := fmt.Sprintf("v3w/%d", i)
			obs := connectV3(t, tb.Addr, "v3w-obs", nil)
			obs.sub(topic, 1)
			w := connectV3(t, tb.Addr, "v3w", func(o *mqtt.ClientOptions) { o.SetWill(topic, "gone", 1, tc.retain) })
			if !tc.kill {
				w.Cli.Disconnect(250)
				waitConnected(t, tb, 1) // the broker has let the client go
				obs.pub(topic, 1, false, "marker")
				if m := obs.next(); string(m.Payload()) != "marker" {
					t.Errorf("got %s %q before the marker: will published after DISCONNECT [MQTT-3.1.2-10]", m.Topic(), m.Payload())
				}
				return
			}
			w.kill()
			m := obs.next()
			if m.Topic() != topic || string(m.Payload()) != "gone" {
				t.Fatalf("got %s %q, want the will [MQTT-3.1.2-8]", m.Topic(), m.Payload())
			}
			if m.Qos() != 1 {
				t.Errorf("will delivered at QoS %d, want 1", m.Qos())
			}
			if m.Retained() {
				t.Errorf("will forwarded with RETAIN 1 to an established subscription [MQTT-3.3.1-9]")
			}
			if tc.retain {
				late := connectV3(t, tb.Addr, "v3w-late", nil)
				late.sub(topic, 1)
				if m := late.next(); string(m.Payload()) != "gone" || !m.Retained() {
					t.Errorf("new subscriber got %q retained=%v, want the will retained [MQTT-3.1.2-17]", m.Payload(), m.Retained())
				}
			}
		})
	}
}

// A persistent session (Clean Session 0) keeps its subscriptions and the
// QoS 1 and 2 messages published while it was disconnected, delivered on
// reconnection with Session Present 1 [MQTT-3.1.2-4][MQTT-3.1.2-5]
// [MQTT-3.2.2-2]; Clean Session 1 discards it [MQTT-3.1.2-6][MQTT-3.2.2-1].
func TestE2EV311PersistentSession(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, core.Options{})
	pub := connectV3(t, tb.Addr, "v3p-pub", nil)

	c := connectV3(t, tb.Addr, "v3p", persistent)
	if c.SessionPresent {
		t.Errorf("Session Present 1 for a new session [MQTT-3.2.2-3]")
	}
	c.sub("v3p/t", 2)
	c.Cli.Disconnect(250)
	waitConnected(t, tb, 1)

	pub.pub("v3p/t", 1, false, "q1-a")
	pub.pub("v3p/t", 2, false, "q2")
	pub.pub("v3p/t", 1, false, "q1-b")

	back := connectV3(t, tb.Addr, "v3p", persistent)
	if !back.SessionPresent {
		t.Fatalf("Session Present 0 for a stored session [MQTT-3.2.2-2]")
	}
	for _, want := range []struct {
		payload string
		qos     byte
	}{{"q1-a", 1}, {"q2", 2}, {"q1-b", 1}} {
		m := back.next()
		if string(m.Payload()) != want.payload || m.Qos() != want.qos {
			t.Fatalf("got %q QoS %d, want %q QoS %d queued while offline [MQTT-3.1.2-5]", m.Payload(), m.Qos(), want.payload, want.qos)
		}
	}
	// The stored subscription still delivers, without subscribing again
	// [MQTT-3.1.2-4].
	pub.pub("v3p/t", 1, false, "live")
	if m := back.next(); string(m.Payload()) != "live" {
		t.Errorf("got %q, want live through the stored subscription", m.Payload())
	}

	t.Run("clean session 1 discards it [MQTT-3.1.2-6][MQTT-3.2.2-1]", func(t *testing.T) {
		back.Cli.Disconnect(250)
		waitConnected(t, tb, 1)
		pub := pub.on(t)
		pub.pub("v3p/t", 1, false, "dropped")
		clean := connectV3(t, tb.Addr, "v3p", nil)
		if clean.SessionPresent {
			t.Errorf("Session Present 1 with Clean Session 1 [MQTT-3.2.2-1]")
		}
		clean.sub("v3p/marker", 1)
		pub.pub("v3p/t", 1, false, "after")
		pub.pub("v3p/marker", 1, false, "m")
		if got := clean.until("v3p/marker"); len(got) != 0 {
			t.Errorf("got %v from the discarded session [MQTT-3.1.2-6]", v3Topics(got))
		}
	})
}

// Messages cross protocol versions: a 3.1.1 subscriber receives a v5
// client's message (without its properties) and a v5 subscriber a 3.1.1
// client's, each at min(publish QoS, granted QoS) [MQTT-3.8.4-6].
func TestE2EV311InteropWithV5(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, core.Options{})
	v3 := connectV3(t, tb.Addr, "x-v3", nil)
	v5 := connectV5(t, tb.Addr, v5Connect("x-v5"))
	v3.sub("x/to3", 2)
	v5.sub("x/to5", 1)

	v5.publish(&paho.Publish{Topic: "x/to3", QoS: 2, Payload: []byte("from5"),
		Properties: &paho.PublishProperties{ContentType: "text/plain", User: paho.UserProperties{{Key: "k", Value: "v"}}}})
	if m := v3.next(); m.Topic() != "x/to3" || string(m.Payload()) != "from5" || m.Qos() != 2 {
		t.Errorf("3.1.1 subscriber got %s %q QoS %d, want x/to3 from5 QoS 2", m.Topic(), m.Payload(), m.Qos())
	}
	v3.pub("x/to5", 2, false, "from3")
	m := v5.next()
	if m.Topic != "x/to5" || string(m.Payload) != "from3" || m.QoS != 1 {
		t.Errorf("v5 subscriber got %v, want x/to5 from3 QoS 1", m)
	}
	if m.Props != nil && (m.Props.ContentType != "" || len(m.Props.User) != 0) {
		t.Errorf("v5 subscriber got properties on a 3.1.1 message: %+v", m.Props)
	}
}
