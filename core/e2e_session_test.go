package core_test

// End-to-end tests of session state across connections (MQTT 5): wills and
// their delay, session expiry and resumption, takeover, redelivery of
// unacknowledged messages, and message expiry while queued. Statement
// numbers are from the OASIS MQTT Version 5.0 standard.

import (
	"fmt"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/mqtttest"
)

// willConnect returns a CONNECT for id carrying a QoS 1 will on topic with
// the given Will Delay Interval (nil: absent) and session expiry.
func willConnect(id, topic string, delay *uint32, expiry uint32) *paho.Connect {
	cp := v5Connect(id)
	cp.WillMessage = &paho.WillMessage{Topic: topic, QoS: 1, Payload: []byte(id + " gone")}
	cp.WillProperties = &paho.WillProperties{WillDelayInterval: delay}
	if expiry > 0 {
		cp.Properties.SessionExpiryInterval = u32(expiry)
	}
	return cp
}

// expectWill waits for the will of client id on the observer.
func expectWill(t *testing.T, obs *v5Client, topic, id string) v5Msg {
	t.Helper()
	var m v5Msg
	select {
	case m = <-obs.msgs:
	case <-time.After(waitTimeout):
		t.Fatalf("the will of %s was not published on %s within %v", id, topic, waitTimeout)
	}
	if m.Topic != topic || string(m.Payload) != id+" gone" {
		t.Fatalf("got %v, want the will of %s on %s", m, id, topic)
	}
	return m
}

// expectNoWill publishes a marker on the will topic from the observer and
// fails if the will arrived before it.
func expectNoWill(t *testing.T, obs *v5Client, topic, why string) {
	t.Helper()
	obs = obs.on(t)
	obs.pub(topic, 1, "marker")
	for {
		m := obs.next()
		if string(m.Payload) == "marker" {
			return
		}
		t.Errorf("%s: got %v before the marker", why, m)
	}
}

// The will is published when the connection closes without DISCONNECT
// [MQTT-3.1.2-8], as a non-retained or retained message as asked
// [MQTT-3.1.2-14][MQTT-3.1.2-15]; it is discarded on DISCONNECT 0x00
// [MQTT-3.14.4-3][MQTT-3.1.2-10] and published on DISCONNECT 0x04
// (Disconnect with Will Message, 3.14.2.1).
func TestE2EWill(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		retain bool
		end    func(c *v5Client)
		want   bool
	}{
		{"abnormal close publishes the will [MQTT-3.1.2-8][MQTT-3.1.2-14]", false, (*v5Client).kill, true},
		{"abnormal close publishes a retained will as retained [MQTT-3.1.2-15]", true, (*v5Client).kill, true},
		{"DISCONNECT 0x00 discards the will [MQTT-3.14.4-3][MQTT-3.1.2-10]", false, func(c *v5Client) { c.disconnect(0x00) }, false},
		{"DISCONNECT 0x04 publishes the will (3.14.2.1)", false, func(c *v5Client) { c.disconnect(0x04) }, true},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tb := startBroker(t, core.Options{})
			topic := fmt.Sprintf("will/%d", i)
			obs := connectV5(t, tb.Addr, v5Connect("observer")).on(t)
			obs.sub(topic, 1)
			cp := willConnect("w", topic, nil, 0)
			cp.WillMessage.Retain = tc.retain
			w := connectV5(t, tb.Addr, cp).on(t)
			tc.end(w)
			if !tc.want {
				// Wait until the broker has let the client go, then prove
				// with a marker that no will went out.
				waitConnected(t, tb, 1)
				expectNoWill(t, obs, topic, "will published after DISCONNECT 0x00 [MQTT-3.14.4-3]")
				return
			}
			m := expectWill(t, obs, topic, "w")
			if m.QoS != 1 {
				t.Errorf("will delivered at QoS %d, want 1", m.QoS)
			}
			if m.Retain {
				t.Errorf("will forwarded with RETAIN 1 to an existing subscription without Retain As Published [MQTT-3.3.1-12]")
			}
			if tc.retain {
				late := connectV5(t, tb.Addr, v5Connect("late")).on(t)
				late.sub(topic, 1)
				if m := late.next(); string(m.Payload) != "w gone" || !m.Retain {
					t.Errorf("new subscriber got %v, want the will as a retained message [MQTT-3.1.2-15]", m)
				}
			}
		})
	}
}

// The Will Delay Interval postpones the will (3.1.3.2.2) until the delay
// elapses or the session ends, whichever is first [MQTT-3.1.2-8]; a new
// connection to the session before the delay suppresses it [MQTT-3.1.3-9].
// The delays are what is tested, so these tests take a second or two.
func TestE2EWillDelay(t *testing.T) {
	t.Parallel()

	t.Run("published after the delay [MQTT-3.1.2-8]", func(t *testing.T) {
		t.Parallel()
		tb := startBroker(t, core.Options{})
		obs := connectV5(t, tb.Addr, v5Connect("observer")).on(t)
		obs.sub("wd/t", 1)
		w := connectV5(t, tb.Addr, willConnect("wd", "wd/t", u32(1), 10)).on(t)
		start := time.Now()
		w.kill()
		expectWill(t, obs, "wd/t", "wd")
		if el := time.Since(start); el < 950*time.Millisecond {
			t.Errorf("will published %v after the close, before its 1 s delay (3.1.3.2.2)", el)
		}
	})

	t.Run("published when the session ends before the delay [MQTT-3.1.2-8]", func(t *testing.T) {
		t.Parallel()
		tb := startBroker(t, core.Options{})
		obs := connectV5(t, tb.Addr, v5Connect("observer")).on(t)
		obs.sub("wd/t", 1)
		w := connectV5(t, tb.Addr, willConnect("wd", "wd/t", u32(60), 1)).on(t)
		start := time.Now()
		w.kill()
		expectWill(t, obs, "wd/t", "wd")
		if el := time.Since(start); el < 950*time.Millisecond {
			t.Errorf("will published %v after the close, before the 1 s session expiry", el)
		}
	})

	t.Run("suppressed by reconnecting before the delay [MQTT-3.1.3-9]", func(t *testing.T) {
		t.Parallel()
		tb := startBroker(t, core.Options{})
		obs := connectV5(t, tb.Addr, v5Connect("observer")).on(t)
		obs.sub("wd/t", 1)
		w := connectV5(t, tb.Addr, willConnect("wd", "wd/t", u32(1), 60)).on(t)
		closed := time.Now()
		w.kill()
		waitConnected(t, tb, 1)
		cp := v5Connect("wd")
		cp.CleanStart = false
		cp.Properties.SessionExpiryInterval = u32(60)
		back := connectV5(t, tb.Addr, cp).on(t)
		if !back.sessionPresent() {
			t.Fatalf("session not resumed [MQTT-3.2.2-3]")
		}
		// Let the delay pass; the will must not come.
		<-time.After(time.Until(closed.Add(1500 * time.Millisecond)))
		expectNoWill(t, obs, "wd/t", "will published although the session was resumed within the delay [MQTT-3.1.3-9]")
	})
}

// Takeover: a second connection with the same client ID closes the first
// with DISCONNECT 0x8E [MQTT-3.1.4-3]. Resuming the session (Clean Start 0)
// keeps its subscriptions and suppresses a delayed will [MQTT-3.1.3-9]; with
// no will delay the old connection's will is published when it closes, and
// with Clean Start 1 the old session ends and its will is published
// [MQTT-3.1.2-8] (3.1.3.2.2, non-normative comment on takeover).
func TestE2ETakeover(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		delay    *uint32
		clean    bool
		wantWill bool
	}{
		{"resume, will delay 1 s: no will [MQTT-3.1.4-3][MQTT-3.1.3-9]", u32(1), false, false},
		{"resume, no will delay: will published [MQTT-3.1.2-8] (3.1.3.2.2)", nil, false, true},
		{"clean start: old session ends, will published [MQTT-3.1.2-8][MQTT-3.1.2-4]", u32(30), true, true},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tb := startBroker(t, core.Options{})
			obs := connectV5(t, tb.Addr, v5Connect("observer")).on(t)
			obs.sub("tk/will", 1)
			id := fmt.Sprintf("tk-%d", i)

			old := connectV5(t, tb.Addr, willConnect(id, "tk/will", tc.delay, 60)).on(t)
			old.sub("tk/data", 1)

			cp := v5Connect(id)
			cp.CleanStart = tc.clean
			cp.Properties.SessionExpiryInterval = u32(60)
			start := time.Now()
			neu := connectV5(t, tb.Addr, cp).on(t)

			if d := old.nextDisconnect(); d.ReasonCode != 0x8E {
				t.Errorf("old connection got DISCONNECT 0x%02x, want 0x8E Session taken over [MQTT-3.1.4-3]", d.ReasonCode)
			}
			select {
			case <-old.Cli.Done():
			case <-time.After(waitTimeout):
				t.Errorf("old connection not closed [MQTT-3.1.4-3]")
			}
			if got, want := neu.sessionPresent(), !tc.clean; got != want {
				t.Errorf("Session Present = %v, want %v [MQTT-3.2.2-2][MQTT-3.2.2-3]", got, want)
			}

			// The new connection works; it inherited the subscription only
			// when it resumed the session.
			neu.sub(id+"/marker", 1)
			obs.pub("tk/data", 1, "data")
			obs.pub(id+"/marker", 1, "m")
			got := neu.until(id + "/marker")
			switch {
			case !tc.clean && (len(got) != 1 || string(got[0].Payload) != "data"):
				t.Errorf("resumed session got %v, want the message for the inherited subscription [MQTT-3.1.2-5]", got)
			case tc.clean && len(got) != 0:
				t.Errorf("clean-start session got %v through the discarded subscription [MQTT-3.1.2-4]", got)
			}

			if tc.wantWill {
				expectWill(t, obs, "tk/will", id)
				return
			}
			<-time.After(time.Until(start.Add(1500 * time.Millisecond)))
			expectNoWill(t, obs, "tk/will", "old connection's will published although the session was resumed within its delay [MQTT-3.1.3-9]")
		})
	}
}

// Session expiry: a session with a Session Expiry Interval outlives its
// connection [MQTT-3.1.2-23] with its subscriptions and queued QoS 1
// messages, which are delivered on resumption with Session Present 1
// [MQTT-3.1.2-5][MQTT-3.2.2-3][MQTT-4.5.0-1]; Clean Start 1 discards it
// [MQTT-3.1.2-4][MQTT-3.2.2-2]; expiry 0 ends it with the connection
// (3.1.2.11.2); an expired session is gone [MQTT-4.1.0-2].
func TestE2ESessionExpiry(t *testing.T) {
	t.Parallel()

	// offline subscribes id to sess/t with the given expiry, disconnects
	// normally and waits until the broker has let it go.
	offline := func(t *testing.T, tb *testBroker, id string, expiry uint32) {
		t.Helper()
		cp := v5Connect(id)
		if expiry > 0 {
			cp.Properties.SessionExpiryInterval = u32(expiry)
		}
		c := connectV5(t, tb.Addr, cp).on(t)
		c.sub("sess/t", 1)
		c.disconnect(0)
		waitConnected(t, tb, 1) // only the publisher is left
	}
	resume := func(t *testing.T, tb *testBroker, id string, clean bool) *v5Client {
		t.Helper()
		cp := v5Connect(id)
		cp.CleanStart = clean
		cp.Properties.SessionExpiryInterval = u32(60)
		return connectV5(t, tb.Addr, cp).on(t)
	}

	t.Run("resumed with subscriptions and queued QoS 1 messages [MQTT-3.1.2-5][MQTT-3.2.2-3]", func(t *testing.T) {
		t.Parallel()
		tb := startBroker(t, core.Options{})
		pub := connectV5(t, tb.Addr, v5Connect("pub")).on(t)
		offline(t, tb, "keep", 60)
		for i := range 3 {
			pub.pub("sess/t", 1, fmt.Sprint(i))
		}
		pub.pub("sess/t", 0, "qos0") // QoS 0 need not be queued (4.1)
		c := resume(t, tb, "keep", false)
		if !c.sessionPresent() {
			t.Fatalf("Session Present 0 for a stored session [MQTT-3.2.2-3]")
		}
		for i := range 3 {
			m := c.next()
			if m.Topic != "sess/t" || string(m.Payload) != fmt.Sprint(i) {
				t.Fatalf("queued message %d: got %v [MQTT-4.6.0-6]", i, m)
			}
			if m.QoS != 1 {
				t.Errorf("queued message delivered at QoS %d, want 1", m.QoS)
			}
		}
		// The subscription is still live, without subscribing again.
		pub.pub("sess/t", 1, "live")
		for {
			m := c.next()
			if string(m.Payload) == "qos0" {
				continue // the broker may queue QoS 0 too
			}
			if string(m.Payload) != "live" {
				t.Fatalf("got %v, want the live message through the stored subscription", m)
			}
			break
		}
	})

	t.Run("clean start discards the session [MQTT-3.1.2-4][MQTT-3.2.2-2]", func(t *testing.T) {
		t.Parallel()
		tb := startBroker(t, core.Options{})
		pub := connectV5(t, tb.Addr, v5Connect("pub")).on(t)
		offline(t, tb, "drop", 60)
		pub.pub("sess/t", 1, "queued")
		c := resume(t, tb, "drop", true)
		if c.sessionPresent() {
			t.Errorf("Session Present 1 with Clean Start 1 [MQTT-3.2.2-2]")
		}
		c.sub("sess/marker", 1)
		pub.pub("sess/t", 1, "after")
		pub.pub("sess/marker", 1, "m")
		c.expectNone("sess/marker", "message from the discarded session or its subscription")
	})

	t.Run("expiry 0 ends the session with the connection (3.1.2.11.2)", func(t *testing.T) {
		t.Parallel()
		tb := startBroker(t, core.Options{})
		connectV5(t, tb.Addr, v5Connect("pub"))
		offline(t, tb, "zero", 0)
		c := resume(t, tb, "zero", false)
		if c.sessionPresent() {
			t.Errorf("Session Present 1 for a session with expiry 0 [MQTT-3.2.2-3]")
		}
	})

	t.Run("expired session is discarded [MQTT-4.1.0-2]", func(t *testing.T) {
		t.Parallel()
		tb := startBroker(t, core.Options{})
		connectV5(t, tb.Addr, v5Connect("pub"))
		offline(t, tb, "short", 1)
		// The expiry is the behaviour under test: wait for the broker to
		// drop the session (two sessions -> one), bounded.
		mqtttest.Eventually(t, waitTimeout, "the 1 s session expired", func() bool { return tb.Stats().Sessions == 1 })
		c := resume(t, tb, "short", false)
		if c.sessionPresent() {
			t.Errorf("Session Present 1 after the session expired [MQTT-4.1.0-2]")
		}
	})
}

// Unacknowledged messages are resent on resumption with their original
// packet identifiers [MQTT-4.4.0-1]: a PUBLISH with DUP 1 [MQTT-3.3.1-1], or
// a PUBREL when PUBREC was received [MQTT-4.3.3-6]. A raw client withholds
// its acknowledgements.
func TestE2EResendUnacknowledged(t *testing.T) {
	t.Parallel()
	connectRaw := func(t *testing.T, tb *testBroker, clean bool) (*rawClient, *packets.Connack) {
		r := dialRaw(t, tb.Addr)
		ca := r.connect(&packets.Connect{ClientID: "unacked", CleanStart: clean,
			Properties: &packets.Properties{SessionExpiryInterval: u32(60)}})
		return r, ca
	}

	t.Run("QoS 1 PUBLISH resent with DUP [MQTT-4.4.0-1][MQTT-3.3.1-1]", func(t *testing.T) {
		t.Parallel()
		tb := startBroker(t, core.Options{})
		pub := connectV5(t, tb.Addr, v5Connect("pub")).on(t)
		r, _ := connectRaw(t, tb, true)
		r.subscribe(1, 0, packets.SubOptions{Topic: "dup/t", QoS: 1})
		pub.pub("dup/t", 1, "m1")
		first := r.nextPublish()
		if first.Dup {
			t.Errorf("first delivery has DUP 1 [MQTT-4.3.2-2]")
		}
		_ = r.conn.Close() // no PUBACK
		waitConnected(t, tb, 1)

		r2, ca := connectRaw(t, tb, false)
		if !ca.SessionPresent {
			t.Fatalf("Session Present 0 [MQTT-3.2.2-3]")
		}
		again := r2.nextPublish()
		if again.Topic != "dup/t" || string(again.Payload) != "m1" {
			t.Fatalf("got %v, want m1 resent", again)
		}
		if !again.Dup {
			t.Errorf("resent PUBLISH has DUP 0 [MQTT-3.3.1-1]")
		}
		if again.ID != first.ID {
			t.Errorf("resent with packet identifier %d, want the original %d [MQTT-4.4.0-1]", again.ID, first.ID)
		}
		r2.puback(again.ID)
		// Acknowledged now: the next message is new, and m1 is not sent again.
		pub.pub("dup/t", 1, "m2")
		next := r2.nextPublish()
		if string(next.Payload) != "m2" || next.Dup {
			t.Errorf("got %v, want m2 with DUP 0 [MQTT-4.4.0-1]", next)
		}
		r2.puback(next.ID)
	})

	t.Run("PUBREL resent after PUBREC, not the PUBLISH [MQTT-4.4.0-1][MQTT-4.3.3-6]", func(t *testing.T) {
		t.Parallel()
		tb := startBroker(t, core.Options{})
		pub := connectV5(t, tb.Addr, v5Connect("pub")).on(t)
		r, _ := connectRaw(t, tb, true)
		r.subscribe(1, 0, packets.SubOptions{Topic: "dup/t", QoS: 2})
		pub.pub("dup/t", 2, "m1")
		p := r.nextPublish()
		if p.QoS != 2 {
			t.Fatalf("got %v, want QoS 2", p)
		}
		r.pubrec(p.ID)
		rel := r.expect(ptPubrel).paho(t).Content.(*packets.Pubrel)
		if rel.PacketID != p.ID {
			t.Fatalf("PUBREL id %d, want %d [MQTT-4.3.3-4]", rel.PacketID, p.ID)
		}
		_ = r.conn.Close() // no PUBCOMP
		waitConnected(t, tb, 1)

		r2, ca := connectRaw(t, tb, false)
		if !ca.SessionPresent {
			t.Fatalf("Session Present 0 [MQTT-3.2.2-3]")
		}
		pk := r2.expect(ptPubrel)
		if id := pk.paho(t).Content.(*packets.Pubrel).PacketID; id != p.ID {
			t.Errorf("resent PUBREL id %d, want %d [MQTT-4.4.0-1]", id, p.ID)
		}
		if pk.Flags != 0x02 {
			t.Errorf("PUBREL fixed header flags %x, want 2 [MQTT-3.6.1-1]", pk.Flags)
		}
		r2.pubcomp(p.ID)
		pub.pub("dup/t", 2, "m2")
		if next := r2.nextPublish(); string(next.Payload) != "m2" {
			t.Errorf("got %v, want m2", next)
		}
	})
}

// A message queued for an offline session is delivered with its Message
// Expiry Interval reduced by the time it waited [MQTT-3.3.2-6], and one that
// expired while queued is not delivered [MQTT-3.3.2-5]. The wait is the
// behaviour under test.
func TestE2EMessageExpiryQueued(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, core.Options{})
	pub := connectV5(t, tb.Addr, v5Connect("pub"))
	cp := v5Connect("mx")
	cp.Properties.SessionExpiryInterval = u32(60)
	c := connectV5(t, tb.Addr, cp)
	c.sub("mx/t", 1)
	c.disconnect(0)
	waitConnected(t, tb, 1)

	pub.publish(&paho.Publish{Topic: "mx/t", QoS: 1, Payload: []byte("short"),
		Properties: &paho.PublishProperties{MessageExpiry: u32(1)}})
	pub.publish(&paho.Publish{Topic: "mx/t", QoS: 1, Payload: []byte("long"),
		Properties: &paho.PublishProperties{MessageExpiry: u32(10)}})
	pub.pub("mx/t", 1, "forever")
	published := time.Now()
	<-time.After(time.Until(published.Add(1200 * time.Millisecond)))

	cp = v5Connect("mx")
	cp.CleanStart = false
	cp.Properties.SessionExpiryInterval = u32(60)
	back := connectV5(t, tb.Addr, cp)
	if !back.sessionPresent() {
		t.Fatalf("Session Present 0 [MQTT-3.2.2-3]")
	}
	m := back.next()
	if string(m.Payload) != "long" {
		t.Fatalf("first queued message %v, want long (short expired while queued [MQTT-3.3.2-5])", m)
	}
	if e := m.Props.MessageExpiry; e == nil || *e >= 10 || *e == 0 {
		t.Errorf("Message Expiry Interval %s, want 10 less the time queued (1..9) [MQTT-3.3.2-6]", optU32(e))
	}
	m = back.next()
	if string(m.Payload) != "forever" || m.Props.MessageExpiry != nil {
		t.Errorf("got %v (expiry %s), want forever without a Message Expiry Interval", m, optU32(m.Props.MessageExpiry))
	}
}
