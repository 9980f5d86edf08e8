package core_test

// End-to-end tests of MQTT 5 behaviour with paho.golang clients (and a raw
// client where paho hides what is tested). Statement numbers are from the
// OASIS MQTT Version 5.0 standard.

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"github.com/vanemq/vanemq/core"
)

// --- CONNECT / CONNACK ------------------------------------------------------

// The CONNACK announces the broker's limits and features (3.2.2.3).
func TestE2EV5ConnackProperties(t *testing.T) {
	t.Parallel()
	// recvMax applies the CONNACK default: absent means 65535 (3.2.2.3.3).
	recvMax := func(p *paho.ConnackProperties) uint16 {
		if p.ReceiveMaximum == nil {
			return 65535
		}
		return *p.ReceiveMaximum
	}
	cases := []struct {
		name    string
		opts    core.Options
		connect func(*paho.Connect)
		check   func(t *testing.T, ca *paho.Connack)
	}{
		{
			name: "defaults announced [3.2.2.3.3 3.2.2.3.6 3.2.2.3.8]",
			check: func(t *testing.T, ca *paho.Connack) {
				p := ca.Properties
				if p.MaximumPacketSize == nil || *p.MaximumPacketSize != 1<<20 {
					t.Errorf("Maximum Packet Size = %s, want %d", optU32(p.MaximumPacketSize), 1<<20)
				}
				if got := recvMax(p); got != 1024 {
					t.Errorf("Receive Maximum = %d, want 1024", got)
				}
				if p.TopicAliasMaximum == nil || *p.TopicAliasMaximum != 32 {
					t.Errorf("Topic Alias Maximum = %s, want 32", optU16(p.TopicAliasMaximum))
				}
				if !p.RetainAvailable || !p.WildcardSubAvailable || !p.SubIDAvailable || !p.SharedSubAvailable {
					t.Errorf("features announced unavailable: retain=%v wildcard=%v subid=%v shared=%v",
						p.RetainAvailable, p.WildcardSubAvailable, p.SubIDAvailable, p.SharedSubAvailable)
				}
				if p.ServerKeepAlive != nil {
					t.Errorf("Server Keep Alive %d sent although none is configured [MQTT-3.2.2-22]", *p.ServerKeepAlive)
				}
			},
		},
		{
			name: "configured limits announced [3.2.2.3.3 3.2.2.3.6 3.2.2.3.8]",
			opts: core.Options{MaxPacketSize: 4096, ReceiveMaximum: 50, TopicAliasMaximum: 10},
			check: func(t *testing.T, ca *paho.Connack) {
				p := ca.Properties
				if p.MaximumPacketSize == nil || *p.MaximumPacketSize != 4096 {
					t.Errorf("Maximum Packet Size = %s, want 4096", optU32(p.MaximumPacketSize))
				}
				if got := recvMax(p); got != 50 {
					t.Errorf("Receive Maximum = %d, want 50", got)
				}
				if p.TopicAliasMaximum == nil || *p.TopicAliasMaximum != 10 {
					t.Errorf("Topic Alias Maximum = %s, want 10", optU16(p.TopicAliasMaximum))
				}
			},
		},
		{
			name: "topic aliases disabled [3.2.2.3.8]",
			opts: core.Options{DisableTopicAliases: true},
			check: func(t *testing.T, ca *paho.Connack) {
				if p := ca.Properties.TopicAliasMaximum; p != nil && *p != 0 {
					t.Errorf("Topic Alias Maximum = %d, want absent or 0", *p)
				}
			},
		},
		{
			name: "optional features disabled [3.2.2.3.5 3.2.2.3.11 3.2.2.3.12 3.2.2.3.13]",
			opts: core.Options{DisableRetain: true, DisableWildcardSubs: true, DisableSubIDs: true, DisableSharedSubs: true},
			check: func(t *testing.T, ca *paho.Connack) {
				p := ca.Properties
				if p.RetainAvailable || p.WildcardSubAvailable || p.SubIDAvailable || p.SharedSubAvailable {
					t.Errorf("features announced available: retain=%v wildcard=%v subid=%v shared=%v",
						p.RetainAvailable, p.WildcardSubAvailable, p.SubIDAvailable, p.SharedSubAvailable)
				}
			},
		},
		{
			name:    "session expiry capped and announced [3.2.2.3.2]",
			opts:    core.Options{SessionExpiryMax: 100},
			connect: func(cp *paho.Connect) { cp.Properties.SessionExpiryInterval = u32(1_000_000) },
			check: func(t *testing.T, ca *paho.Connack) {
				if p := ca.Properties.SessionExpiryInterval; p == nil || *p != 100 {
					t.Errorf("CONNACK Session Expiry Interval = %s, want 100 (the broker's maximum)", optU32(p))
				}
			},
		},
		{
			name:    "session expiry within the cap is not echoed [3.2.2.3.2]",
			opts:    core.Options{SessionExpiryMax: 100},
			connect: func(cp *paho.Connect) { cp.Properties.SessionExpiryInterval = u32(50) },
			check: func(t *testing.T, ca *paho.Connack) {
				if p := ca.Properties.SessionExpiryInterval; p != nil && *p != 50 {
					t.Errorf("CONNACK Session Expiry Interval = %d, want absent or 50", *p)
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tb := startBroker(t, tc.opts)
			cp := v5Connect("props")
			if tc.connect != nil {
				tc.connect(cp)
			}
			c := connectV5(t, tb.Addr, cp)
			if c.Connack.ReasonCode != 0 {
				t.Fatalf("CONNACK reason 0x%02x, want 0x00 [MQTT-3.1.4-5]", c.Connack.ReasonCode)
			}
			if c.sessionPresent() {
				t.Errorf("Session Present with Clean Start 1 [MQTT-3.2.2-2]")
			}
			tc.check(t, c.Connack)
		})
	}
}

// An empty client ID gets a unique Assigned Client Identifier
// [MQTT-3.1.3-6] [MQTT-3.1.3-7] [MQTT-3.2.2-16].
func TestE2EV5AssignedClientID(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, core.Options{})
	a := connectV5(t, tb.Addr, v5Connect(""))
	b := connectV5(t, tb.Addr, v5Connect(""))
	idA, idB := a.Connack.Properties.AssignedClientID, b.Connack.Properties.AssignedClientID
	if idA == "" || idB == "" {
		t.Fatalf("Assigned Client Identifier missing: %q, %q [MQTT-3.2.2-16]", idA, idB)
	}
	if idA == idB {
		t.Fatalf("both clients were assigned %q; it must be unique [MQTT-3.2.2-16]", idA)
	}
	// The assigned ID is the session's identity: a message to a filter the
	// first client subscribed reaches it and not the second.
	a.sub("assigned/t", 1)
	b.pub("assigned/t", 1, "hello")
	if m := a.next(); string(m.Payload) != "hello" {
		t.Errorf("got %v, want hello", m)
	}
}

// Request Response Information 1 gets Response Information in CONNACK
// (3.1.2.11.7, 3.2.2.3.15); 0 gets none [MQTT-3.1.2-28].
func TestE2EV5ResponseInformation(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, core.Options{})
	for _, req := range []bool{true, false} {
		t.Run(fmt.Sprintf("request=%v", req), func(t *testing.T) {
			cp := v5Connect(fmt.Sprintf("resp-%v", req))
			cp.Properties.RequestResponseInfo = req
			c := connectV5(t, tb.Addr, cp)
			got := c.Connack.Properties.ResponseInfo
			if req && got == "" {
				t.Errorf("no Response Information although requested (3.2.2.3.15)")
			}
			if !req && got != "" {
				t.Errorf("Response Information %q sent although not requested [MQTT-3.1.2-28]", got)
			}
		})
	}
}

// The broker's Server Keep Alive replaces the client's keep alive (3.2.2.3.14)
// and is enforced at one and a half times its value [MQTT-3.1.2-22]. A raw
// client that never sends PINGREQ is used, so nothing keeps it alive.
func TestE2EV5ServerKeepAlive(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		opts       core.Options
		clientKA   uint16
		announceKA *uint16 // Server Keep Alive expected in CONNACK
	}{
		{"server keep alive overrides the client's 60 s [3.2.2.3.14][MQTT-3.1.2-22]", core.Options{ServerKeepAlive: 1}, 60, u16(1)},
		{"client keep alive enforced without a server value [MQTT-3.1.2-22][MQTT-3.2.2-22]", core.Options{}, 1, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tb := startBroker(t, tc.opts)
			r := dialRaw(t, tb.Addr)
			start := time.Now()
			ca := r.connect(&packets.Connect{ClientID: "ka", CleanStart: true, KeepAlive: tc.clientKA})
			got := ca.Properties.ServerKeepAlive
			switch {
			case tc.announceKA == nil && got != nil:
				t.Errorf("CONNACK Server Keep Alive %d, want absent", *got)
			case tc.announceKA != nil && (got == nil || *got != *tc.announceKA):
				t.Errorf("CONNACK Server Keep Alive %s, want %d", optU16(got), *tc.announceKA)
			}
			// Keep alive 1 s: closed after 1.5 s of silence; allow up to 5 s.
			pkts, err := r.expectClosed(waitTimeout)
			if err != nil {
				t.Fatalf("connection not closed by the broker: %v [MQTT-3.1.2-22]", err)
			}
			if el := time.Since(start); el < time.Second {
				t.Errorf("closed after %v, before the keep alive could have expired", el)
			}
			for _, p := range pkts {
				if p.Type == ptDisconnect {
					if d := p.paho(t).Content.(*packets.Disconnect); d.ReasonCode != 0x8D {
						t.Errorf("DISCONNECT reason 0x%02x, want 0x8D Keep Alive timeout (3.14.2.1)", d.ReasonCode)
					}
				}
			}
		})
	}
}

// --- Publish / subscribe ------------------------------------------------------

// Every QoS combination, each client publishing to the other: the message
// arrives once at min(publish QoS, granted QoS) [MQTT-3.8.4-8], with DUP 0
// [MQTT-4.3.1-1][MQTT-4.3.2-2][MQTT-4.3.3-2] and RETAIN 0.
func TestE2EV5QoSDelivery(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, core.Options{})
	a := connectV5(t, tb.Addr, v5Connect("qos-a"))
	b := connectV5(t, tb.Addr, v5Connect("qos-b"))
	for _, c := range []*v5Client{a, b} {
		for sq := byte(0); sq <= 2; sq++ {
			c.sub(fmt.Sprintf("to/%s/q%d", c.ID, sq), sq)
		}
	}
	for _, dir := range [][2]*v5Client{{a, b}, {b, a}} {
		for pq := byte(0); pq <= 2; pq++ {
			for sq := byte(0); sq <= 2; sq++ {
				from, to := dir[0], dir[1]
				t.Run(fmt.Sprintf("%s_to_%s/pub_qos%d/sub_qos%d", from.ID, to.ID, pq, sq), func(t *testing.T) {
					topic := fmt.Sprintf("to/%s/q%d", to.ID, sq)
					payload := fmt.Sprintf("%s %d %d", from.ID, pq, sq)
					from.on(t).pub(topic, pq, payload)
					m := to.on(t).next()
					if m.Topic != topic || string(m.Payload) != payload {
						t.Fatalf("got %v, want %s %q", m, topic, payload)
					}
					if want := min(pq, sq); m.QoS != want {
						t.Errorf("delivered at QoS %d, want %d [MQTT-3.8.4-8]", m.QoS, want)
					}
					if m.Dup {
						t.Errorf("DUP set on a first delivery [MQTT-3.3.1-3]")
					}
					if m.Retain {
						t.Errorf("RETAIN set on a non-retained message")
					}
				})
			}
		}
	}
}

// Retained messages: stored [MQTT-3.3.1-5], sent to new subscriptions with
// RETAIN 1 [MQTT-3.3.1-9] (3.8.3.1), replaced by the next retained message,
// untouched by non-retained ones [MQTT-3.3.1-8], cleared by an empty payload
// [MQTT-3.3.1-6][MQTT-3.3.1-7].
func TestE2EV5Retained(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, core.Options{})
	pub := connectV5(t, tb.Addr, v5Connect("ret-pub"))

	pub.pubRetained("ret/a", "v1")
	t.Run("delivered on subscribe with RETAIN 1 [MQTT-3.3.1-5][MQTT-3.3.1-9]", func(t *testing.T) {
		s := connectV5(t, tb.Addr, v5Connect("ret-s1"))
		s.on(t).sub("ret/#", 2)
		m := s.on(t).next()
		if m.Topic != "ret/a" || string(m.Payload) != "v1" {
			t.Fatalf("got %v, want the retained ret/a v1", m)
		}
		if !m.Retain {
			t.Errorf("retained message sent on subscribe without RETAIN 1 (3.8.3.1)")
		}
		if m.QoS != 1 {
			t.Errorf("retained QoS 1 message delivered at QoS %d to a QoS 2 subscription", m.QoS)
		}
	})

	t.Run("replaced; a non-retained publish does not replace [MQTT-3.3.1-5][MQTT-3.3.1-8]", func(t *testing.T) {
		pub := pub.on(t)
		pub.pubRetained("ret/a", "v2")
		pub.pub("ret/a", 1, "not retained")
		s := connectV5(t, tb.Addr, v5Connect("ret-s2"))
		s.on(t).sub("ret/#", 1)
		pub.pub("ret/marker", 1, "m")
		got := s.on(t).until("ret/marker")
		if len(got) != 1 || got[0].Topic != "ret/a" || string(got[0].Payload) != "v2" || !got[0].Retain {
			t.Errorf("new subscriber got %v, want only the retained ret/a v2", got)
		}
	})

	t.Run("cleared by an empty retained payload [MQTT-3.3.1-6][MQTT-3.3.1-7]", func(t *testing.T) {
		pub := pub.on(t)
		pub.publish(&paho.Publish{Topic: "ret/a", QoS: 1, Retain: true})
		if n := tb.Stats().Retained; n != 0 {
			t.Errorf("broker still holds %d retained message(s) after the empty payload [MQTT-3.3.1-7]", n)
		}
		s := connectV5(t, tb.Addr, v5Connect("ret-s3"))
		s.on(t).sub("ret/#", 1)
		pub.pub("ret/marker", 1, "m")
		s.on(t).expectNone("ret/marker", "retained message after it was cleared [MQTT-3.3.1-6]")
	})
}

// Retain Handling 0 sends retained messages on every SUBSCRIBE
// [MQTT-3.3.1-9][MQTT-3.8.4-4], 1 only for a new subscription
// [MQTT-3.3.1-10], 2 never [MQTT-3.3.1-11].
func TestE2EV5RetainHandling(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, core.Options{})
	pub := connectV5(t, tb.Addr, v5Connect("rh-pub"))
	pub.pubRetained("rh/t", "kept")

	expectRetained := func(t *testing.T, c *v5Client) {
		t.Helper()
		m := c.next()
		if m.Topic != "rh/t" || string(m.Payload) != "kept" || !m.Retain {
			t.Fatalf("got %v, want the retained rh/t", m)
		}
	}
	cases := []struct {
		name        string
		rh          byte
		first, next bool // retained message expected on the first and on a repeated SUBSCRIBE
	}{
		{"0 on every subscribe [MQTT-3.3.1-9][MQTT-3.8.4-4]", 0, true, true},
		{"1 only for a new subscription [MQTT-3.3.1-10]", 1, true, false},
		{"2 never [MQTT-3.3.1-11]", 2, false, false},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := connectV5(t, tb.Addr, v5Connect(fmt.Sprintf("rh-%d", i))).on(t)
			pub := pub.on(t)
			for round, want := range []bool{tc.first, tc.next} {
				c.subscribe(paho.SubscribeOptions{Topic: "rh/#", QoS: 1, RetainHandling: tc.rh}, 0)
				if want {
					expectRetained(t, c)
					continue
				}
				marker := fmt.Sprintf("rh/marker/%d", round)
				pub.pub(marker, 1, "m")
				c.expectNone(marker, fmt.Sprintf("retained message on SUBSCRIBE #%d with Retain Handling %d", round+1, tc.rh))
			}
		})
	}
}

// Retain As Published 1 keeps the RETAIN flag of a forwarded message
// [MQTT-3.3.1-13]; 0 clears it [MQTT-3.3.1-12].
func TestE2EV5RetainAsPublished(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, core.Options{})
	pub := connectV5(t, tb.Addr, v5Connect("rap-pub"))
	keep := connectV5(t, tb.Addr, v5Connect("rap-1"))
	keep.subscribe(paho.SubscribeOptions{Topic: "rap/t", QoS: 1, RetainAsPublished: true}, 0)
	drop := connectV5(t, tb.Addr, v5Connect("rap-0"))
	drop.subscribe(paho.SubscribeOptions{Topic: "rap/t", QoS: 1, RetainAsPublished: false}, 0)

	for _, retained := range []bool{true, false} {
		t.Run(fmt.Sprintf("published_retain=%v", retained), func(t *testing.T) {
			payload := fmt.Sprintf("retain=%v", retained)
			pub.on(t).publish(&paho.Publish{Topic: "rap/t", QoS: 1, Retain: retained, Payload: []byte(payload)})
			if m := keep.on(t).next(); string(m.Payload) != payload || m.Retain != retained {
				t.Errorf("RAP=1 subscriber got %v, want RETAIN %v [MQTT-3.3.1-13]", m, retained)
			}
			if m := drop.on(t).next(); string(m.Payload) != payload || m.Retain {
				t.Errorf("RAP=0 subscriber got %v, want RETAIN 0 [MQTT-3.3.1-12]", m)
			}
		})
	}
}

// No Local: a client's own messages are not forwarded to its No Local
// subscription [MQTT-3.8.3-3]; without it they are.
func TestE2EV5NoLocal(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, core.Options{})
	other := connectV5(t, tb.Addr, v5Connect("nl-other"))
	for _, noLocal := range []bool{true, false} {
		t.Run(fmt.Sprintf("no_local=%v [MQTT-3.8.3-3]", noLocal), func(t *testing.T) {
			topic := fmt.Sprintf("nl/%v", noLocal)
			c := connectV5(t, tb.Addr, v5Connect(fmt.Sprintf("nl-%v", noLocal))).on(t)
			c.subscribe(paho.SubscribeOptions{Topic: topic, QoS: 1, NoLocal: noLocal}, 0)
			c.pub(topic, 1, "own")
			other.on(t).pub(topic, 1, "other")
			first := c.next()
			switch {
			case noLocal && string(first.Payload) != "other":
				t.Errorf("No Local subscriber got %v first, want only the other client's message", first)
			case !noLocal && string(first.Payload) != "own":
				t.Errorf("subscriber without No Local got %v first, want its own message", first)
			}
		})
	}
	t.Run("No Local on a shared subscription is a Protocol Error [MQTT-3.8.3-4]", func(t *testing.T) {
		c := connectV5(t, tb.Addr, v5Connect("nl-shared")).on(t)
		// paho's Subscribe waits for a SUBACK until its context ends, even
		// after the connection is gone, so it runs aside.
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		granted := make(chan byte, 1)
		go func() {
			sa, err := c.Cli.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "$share/g/nl/s", QoS: 1, NoLocal: true}}})
			if err == nil && len(sa.Reasons) == 1 {
				granted <- sa.Reasons[0]
			}
		}()
		select {
		case rc := <-granted:
			t.Fatalf("No Local shared subscription answered with SUBACK 0x%02x, want DISCONNECT 0x82", rc)
		case d := <-c.disc:
			if d.ReasonCode != 0x82 {
				t.Errorf("DISCONNECT reason 0x%02x, want 0x82 Protocol Error", d.ReasonCode)
			}
		case <-time.After(waitTimeout):
			t.Fatalf("no DISCONNECT within %v", waitTimeout)
		}
	})
}

// Two overlapping subscriptions of one client, each with a Subscription
// Identifier: one PUBLISH at the higher granted QoS [MQTT-3.3.4-2] carrying
// both identifiers [MQTT-3.3.4-3][MQTT-3.3.4-4]. A raw client reads the
// PUBLISH, since paho keeps only one identifier.
func TestE2EV5SubscriptionIdentifiers(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, core.Options{})
	pub := connectV5(t, tb.Addr, v5Connect("sid-pub"))
	r := dialRaw(t, tb.Addr)
	r.connect(&packets.Connect{ClientID: "sid-raw", CleanStart: true})
	if rc := r.subscribe(1, 1, packets.SubOptions{Topic: "sid/+", QoS: 0}); !bytes.Equal(rc, []byte{0}) {
		t.Fatalf("SUBACK %v, want [0]", rc)
	}
	if rc := r.subscribe(2, 2, packets.SubOptions{Topic: "sid/x", QoS: 1}); !bytes.Equal(rc, []byte{1}) {
		t.Fatalf("SUBACK %v, want [1]", rc)
	}

	pub.pub("sid/x", 2, "both")
	p := r.nextPublish()
	if p.Topic != "sid/x" || string(p.Payload) != "both" {
		t.Fatalf("got %v, want sid/x", p)
	}
	if p.QoS != 1 {
		t.Errorf("delivered at QoS %d, want 1, the maximum of the matching subscriptions [MQTT-3.3.4-2]", p.QoS)
	}
	ids := slices.Clone(p.SubIDs)
	slices.Sort(ids)
	if !slices.Equal(ids, []uint32{1, 2}) {
		t.Errorf("Subscription Identifiers %v, want 1 and 2 [MQTT-3.3.4-3][MQTT-3.3.4-4]", p.SubIDs)
	}
	if p.QoS > 0 {
		r.puback(p.ID)
	}

	// The next PUBLISH matches only the first subscription; a second copy
	// of sid/x would arrive before it.
	pub.pub("sid/y", 1, "one")
	p = r.nextPublish()
	if p.Topic != "sid/y" {
		t.Fatalf("got %v, want sid/y (a second copy of sid/x?)", p)
	}
	if !slices.Equal(p.SubIDs, []uint32{1}) {
		t.Errorf("Subscription Identifiers %v, want [1] [MQTT-3.3.4-3]", p.SubIDs)
	}
	if p.QoS != 0 {
		t.Errorf("delivered at QoS %d, want 0 [MQTT-3.8.4-8]", p.QoS)
	}

	t.Run("retained message carries the new subscription's identifier [MQTT-3.3.4-3]", func(t *testing.T) {
		pub.on(t).pubRetained("sidr/r", "kept")
		r := r.on(t)
		r.subscribe(3, 7, packets.SubOptions{Topic: "sidr/#", QoS: 1})
		p := r.nextPublish()
		if p.Topic != "sidr/r" || !p.Retain {
			t.Fatalf("got %v, want the retained sidr/r", p)
		}
		if !slices.Equal(p.SubIDs, []uint32{7}) {
			t.Errorf("Subscription Identifiers %v, want [7]", p.SubIDs)
		}
		r.puback(p.ID)
	})
}

// Overlapping subscriptions of one client without identifiers: the message
// is delivered once (ARCHITECTURE.md: "each client once"), at the maximum
// QoS of the matching subscriptions [MQTT-3.3.4-2].
func TestE2EV5OverlappingSubscriptions(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, core.Options{})
	pub := connectV5(t, tb.Addr, v5Connect("ov-pub"))
	c := connectV5(t, tb.Addr, v5Connect("ov-sub"))
	c.sub("ov/#", 0)
	c.sub("ov/+/x", 2)
	c.sub("ov/a/x", 1)

	for _, pq := range []byte{2, 1} {
		t.Run(fmt.Sprintf("publish_qos%d [MQTT-3.3.4-2]", pq), func(t *testing.T) {
			pub := pub.on(t)
			pub.pub("ov/a/x", pq, "m")
			pub.pub("ov/marker", 1, "end")
			got := c.on(t).until("ov/marker")
			if len(got) != 1 {
				t.Fatalf("got %d copies %v, want exactly 1", len(got), got)
			}
			if got[0].QoS != pq {
				t.Errorf("delivered at QoS %d, want %d = min(publish QoS, max granted QoS 2)", got[0].QoS, pq)
			}
		})
	}
}

// Shared subscriptions: each message goes to one member of the group
// (4.8.2): every member gets some, none twice, none lost.
func TestE2EV5SharedSubscriptions(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, core.Options{})
	pub := connectV5(t, tb.Addr, v5Connect("sh-pub"))

	t.Run("distributed across the group (4.8.2)", func(t *testing.T) {
		const n = 30
		var members []*v5Client
		for i := range 3 {
			m := connectV5(t, tb.Addr, v5Connect(fmt.Sprintf("sh-%d", i))).on(t)
			m.sub("$share/g/sh/jobs", 1)
			m.sub("sh/ctl", 1) // non-shared: the end marker reaches every member
			members = append(members, m)
		}
		pub := pub.on(t)
		for i := range n {
			pub.pub("sh/jobs", 1, fmt.Sprint(i))
		}
		pub.pub("sh/ctl", 1, "end")
		seen := map[string]string{}
		total := 0
		for _, m := range members {
			got := m.until("sh/ctl")
			if len(got) == 0 {
				t.Errorf("%s received no shared message out of %d", m.ID, n)
			}
			for _, msg := range got {
				if msg.Topic != "sh/jobs" {
					t.Errorf("%s got unexpected %v", m.ID, msg)
					continue
				}
				total++
				if prev, dup := seen[string(msg.Payload)]; dup {
					t.Errorf("message %s delivered twice: to %s and %s", msg.Payload, prev, m.ID)
				}
				seen[string(msg.Payload)] = m.ID
			}
		}
		if total != n || len(seen) != n {
			t.Errorf("group received %d messages (%d distinct), want %d", total, len(seen), n)
		}
	})

	t.Run("no retained messages on subscribe (4.8.2)", func(t *testing.T) {
		pub := pub.on(t)
		pub.pubRetained("shr/t", "kept")
		m := connectV5(t, tb.Addr, v5Connect("shr")).on(t)
		m.sub("$share/g2/shr/#", 1)
		pub.pub("shr/marker", 1, "m") // the only member receives it
		m.expectNone("shr/marker", "retained message sent to a shared subscription")
	})
}

// PUBLISH properties reach the subscriber unaltered: Payload Format
// Indicator [MQTT-3.3.2-4], Response Topic [MQTT-3.3.2-15], Correlation Data
// [MQTT-3.3.2-16], User Properties in order [MQTT-3.3.2-17][MQTT-3.3.2-18],
// Content Type [MQTT-3.3.2-20].
func TestE2EV5PropertiesPassThrough(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, core.Options{})
	pub := connectV5(t, tb.Addr, v5Connect("pp-pub"))
	sub := connectV5(t, tb.Addr, v5Connect("pp-sub"))
	sub.sub("pp/#", 2)

	user := paho.UserProperties{{Key: "b", Value: "2"}, {Key: "a", Value: "1"}, {Key: "b", Value: "3"}, {Key: "ü", Value: ""}}
	for _, qos := range []byte{0, 1, 2} {
		t.Run(fmt.Sprintf("qos%d", qos), func(t *testing.T) {
			topic := fmt.Sprintf("pp/%d", qos)
			pub.on(t).publish(&paho.Publish{
				Topic:   topic,
				QoS:     qos,
				Payload: []byte(`{"k":1}`),
				Properties: &paho.PublishProperties{
					PayloadFormat:   paho.Byte(1),
					ContentType:     "application/json",
					ResponseTopic:   "pp/reply",
					CorrelationData: []byte{0, 1, 2, 0xff},
					User:            user,
				},
			})
			m := sub.on(t).next()
			p := m.Props
			if m.Topic != topic || string(m.Payload) != `{"k":1}` {
				t.Fatalf("got %v", m)
			}
			if p.PayloadFormat == nil {
				t.Errorf("Payload Format Indicator absent, want 1 [MQTT-3.3.2-4]")
			} else if *p.PayloadFormat != 1 {
				t.Errorf("Payload Format Indicator %d, want 1 [MQTT-3.3.2-4]", *p.PayloadFormat)
			}
			if p.ContentType != "application/json" {
				t.Errorf("Content Type %q [MQTT-3.3.2-20]", p.ContentType)
			}
			if p.ResponseTopic != "pp/reply" {
				t.Errorf("Response Topic %q [MQTT-3.3.2-15]", p.ResponseTopic)
			}
			if !bytes.Equal(p.CorrelationData, []byte{0, 1, 2, 0xff}) {
				t.Errorf("Correlation Data %v [MQTT-3.3.2-16]", p.CorrelationData)
			}
			if !slices.Equal(p.User, user) {
				t.Errorf("User Properties %v, want %v in this order [MQTT-3.3.2-17][MQTT-3.3.2-18]", p.User, user)
			}
			if p.MessageExpiry != nil {
				t.Errorf("Message Expiry %d added to a message that had none", *p.MessageExpiry)
			}
		})
	}
}

// A retained message is not delivered after its Message Expiry Interval
// (2 s here) [MQTT-3.3.2-5]. Waiting out the expiry is the behaviour under test, so the
// test waits the interval before subscribing.
func TestE2EV5MessageExpiryRetained(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, core.Options{})
	pub := connectV5(t, tb.Addr, v5Connect("rx-pub"))
	pub.publish(&paho.Publish{Topic: "rx/short", QoS: 1, Retain: true, Payload: []byte("short"),
		Properties: &paho.PublishProperties{MessageExpiry: u32(2)}})
	pub.publish(&paho.Publish{Topic: "rx/long", QoS: 1, Retain: true, Payload: []byte("long"),
		Properties: &paho.PublishProperties{MessageExpiry: u32(60)}})
	published := time.Now()

	// Before the expiry both are delivered (proves the short one was stored).
	early := connectV5(t, tb.Addr, v5Connect("rx-early"))
	early.sub("rx/#", 1)
	pub.pub("rx/marker", 1, "m")
	got := early.until("rx/marker")
	if len(got) != 2 {
		t.Fatalf("before expiry a new subscriber got %v, want both retained messages", got)
	}
	for _, m := range got {
		if m.Props.MessageExpiry == nil {
			t.Errorf("%v delivered without its remaining Message Expiry Interval [MQTT-3.3.2-6]", m)
		}
	}

	<-time.After(time.Until(published.Add(2200 * time.Millisecond)))
	late := connectV5(t, tb.Addr, v5Connect("rx-late"))
	late.sub("rx/#", 1)
	pub.pub("rx/marker", 1, "m")
	got = late.until("rx/marker")
	if len(got) != 1 || got[0].Topic != "rx/long" {
		t.Fatalf("after expiry a new subscriber got %v, want only rx/long [MQTT-3.3.2-5]", got)
	}
	if e := got[0].Props.MessageExpiry; e == nil || *e >= 60 || *e < 50 {
		t.Errorf("rx/long Message Expiry %s, want the remaining interval, below 60 [MQTT-3.3.2-6]", optU32(e))
	}
}

// The broker sends no more unacknowledged QoS 1 and 2 PUBLISH packets than
// the client's Receive Maximum [MQTT-3.3.4-9]; an acknowledgement frees a
// slot for the next [MQTT-4.9.0-2]. The raw client holds its PUBACKs. The
// marker is QoS 0, which the send quota does not hold back (4.9: the broker
// MAY keep sending QoS 0; this one does, see session.offerLocked).
func TestE2EV5ReceiveMaximum(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, core.Options{})
	pub := connectV5(t, tb.Addr, v5Connect("rm-pub"))
	r := dialRaw(t, tb.Addr)
	r.connect(&packets.Connect{ClientID: "rm-raw", CleanStart: true,
		Properties: &packets.Properties{ReceiveMaximum: u16(2)}})
	r.subscribe(1, 0, packets.SubOptions{Topic: "rm/+", QoS: 2})
	for i := range 4 {
		pub.pub("rm/q", byte(1+i%2), fmt.Sprint(i))
	}
	pub.pub("rm/marker", 0, "m")

	first := r.nextPublish()
	second := r.nextPublish()
	if first.QoS == 0 || second.QoS == 0 || string(first.Payload) != "0" || string(second.Payload) != "1" {
		t.Fatalf("got %v and %v, want messages 0 and 1 at QoS 1 and 2", first, second)
	}
	if p := r.nextPublish(); p.Topic != "rm/marker" {
		t.Fatalf("got %v while 2 = Receive Maximum messages were unacknowledged, want the QoS 0 marker [MQTT-3.3.4-9]", p)
	}
	r.puback(first.ID)
	if p := r.nextPublish(); string(p.Payload) != "2" {
		t.Fatalf("after one PUBACK got %v, want message 2", p)
	}
	r.pubrec(second.ID)
	if rel := r.expect(ptPubrel).paho(t).Content.(*packets.Pubrel); rel.PacketID != second.ID {
		t.Fatalf("PUBREL id %d, want %d [MQTT-4.3.3-4]", rel.PacketID, second.ID)
	}
	r.pubcomp(second.ID)
	if p := r.nextPublish(); string(p.Payload) != "3" {
		t.Fatalf("after PUBCOMP got %v, want message 3", p)
	}
}

// --- Topic aliases ------------------------------------------------------------

// Inbound topic aliases: a PUBLISH that sets an alias and one that uses it
// with an empty topic reach subscribers under the full topic
// [MQTT-3.3.2-12]; a mapping does not carry over to a new connection
// [MQTT-3.3.2-7].
func TestE2EV5TopicAliasInbound(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, core.Options{TopicAliasMaximum: 5})
	sub := connectV5(t, tb.Addr, v5Connect("tai-sub"))
	sub.sub("tai/#", 1)

	pub := connectV5(t, tb.Addr, v5Connect("tai-pub"))
	pub.publish(&paho.Publish{Topic: "tai/long/topic/name", QoS: 1, Payload: []byte("1"),
		Properties: &paho.PublishProperties{TopicAlias: u16(5)}})
	pub.publish(&paho.Publish{Topic: "", QoS: 1, Payload: []byte("2"),
		Properties: &paho.PublishProperties{TopicAlias: u16(5)}})
	pub.publish(&paho.Publish{Topic: "", QoS: 0, Payload: []byte("3"),
		Properties: &paho.PublishProperties{TopicAlias: u16(5)}})
	for _, want := range []string{"1", "2", "3"} {
		m := sub.next()
		if m.Topic != "tai/long/topic/name" || string(m.Payload) != want {
			t.Errorf("got %v, want tai/long/topic/name %q [MQTT-3.3.2-12]", m, want)
		}
		if m.Alias != 0 {
			t.Errorf("subscriber without Topic Alias Maximum got alias %d [MQTT-3.1.2-27]", m.Alias)
		}
	}

	t.Run("mapping not carried to a new connection [MQTT-3.3.2-7]", func(t *testing.T) {
		pub.on(t).disconnect(0)
		again := connectV5(t, tb.Addr, v5Connect("tai-pub")).on(t)
		// paho waits for the PUBACK until its context ends, even after the
		// connection is gone, so the PUBLISH is sent aside.
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			_, _ = again.Cli.Publish(ctx, &paho.Publish{Topic: "", QoS: 1, Payload: []byte("stale"),
				Properties: &paho.PublishProperties{TopicAlias: u16(5)}})
		}()
		if d := again.nextDisconnect(); d.ReasonCode != 0x82 && d.ReasonCode != 0x94 {
			t.Errorf("DISCONNECT reason 0x%02x, want 0x82 Protocol Error or 0x94 Topic Alias invalid (3.3.2.3.4)", d.ReasonCode)
		}
		sub := sub.on(t)
		connectV5(t, tb.Addr, v5Connect("tai-marker")).on(t).pub("tai/marker", 1, "m")
		sub.expectNone("tai/marker", "a PUBLISH with an unknown alias was routed")
	})
}

// Outbound topic aliases: a subscriber announcing Topic Alias Maximum gets
// aliases no larger than it [MQTT-3.3.2-11][MQTT-3.1.2-26], every message
// still resolves to its topic, and repeated topics are sent as an alias
// alone; one announcing none gets no aliases [MQTT-3.1.2-27].
func TestE2EV5TopicAliasOutbound(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, core.Options{})
	pub := connectV5(t, tb.Addr, v5Connect("tao-pub"))
	topics := []string{"tao/a", "tao/b", "tao/c", "tao/a", "tao/b", "tao/c", "tao/a", "tao/a"}

	for _, aliasMax := range []uint16{0, 1, 2, 10} {
		t.Run(fmt.Sprintf("topic_alias_maximum=%d", aliasMax), func(t *testing.T) {
			cp := v5Connect(fmt.Sprintf("tao-%d", aliasMax))
			if aliasMax > 0 {
				cp.Properties.TopicAliasMaximum = u16(aliasMax)
			}
			sub := connectV5(t, tb.Addr, cp).on(t)
			sub.sub("tao/#", 1)
			for i, topic := range topics {
				pub.on(t).pub(topic, 1, fmt.Sprint(i))
			}
			aliasOnly := 0
			for i, topic := range topics {
				m := sub.next()
				if m.Topic != topic || string(m.Payload) != fmt.Sprint(i) {
					t.Fatalf("message %d: got %v, want %s %d", i, m, topic, i)
				}
				if m.Alias > aliasMax {
					t.Errorf("message %d: topic alias %d above the client's maximum %d [MQTT-3.3.2-11]", i, m.Alias, aliasMax)
				}
				if m.AliasOnly {
					aliasOnly++
				}
			}
			if aliasMax > 0 && aliasOnly == 0 {
				t.Errorf("no message was sent as an alias alone although topics repeat (broker-assigned outbound aliases)")
			}
		})
	}
}

// --- Limits -------------------------------------------------------------------

// Maximum Packet Size: a message larger than a subscriber's Maximum Packet
// Size is skipped for that subscriber only [MQTT-3.1.2-24][MQTT-3.1.2-25];
// a packet larger than the broker's maximum ends the connection with 0x95
// (3.1.2.11.4 applied to the broker's CONNACK value, 4.13).
func TestE2EV5MaximumPacketSize(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, core.Options{MaxPacketSize: 4096})
	pub := connectV5(t, tb.Addr, v5Connect("mps-pub"))

	t.Run("too large for one subscriber [MQTT-3.1.2-24][MQTT-3.1.2-25]", func(t *testing.T) {
		cp := v5Connect("mps-small")
		cp.Properties.MaximumPacketSize = u32(200)
		small := connectV5(t, tb.Addr, cp).on(t)
		small.sub("mps/#", 1)
		big := connectV5(t, tb.Addr, v5Connect("mps-big")).on(t)
		big.sub("mps/#", 1)

		pub := pub.on(t)
		payload := strings.Repeat("x", 1000)
		pub.pub("mps/big", 1, payload)
		pub.pub("mps/small", 1, "fits")
		if got := small.until("mps/small"); len(got) != 0 {
			t.Errorf("small subscriber got %d message(s) larger than its Maximum Packet Size [MQTT-3.1.2-24]", len(got))
		}
		if got := big.until("mps/small"); len(got) != 1 || string(got[0].Payload) != payload {
			t.Errorf("unlimited subscriber got %v, want the large message", got)
		}
		// The skipped delivery did not stall the small subscriber's flow
		// [MQTT-3.1.2-25]: later messages still arrive.
		pub.pub("mps/after", 1, "after")
		if m := small.next(); m.Topic != "mps/after" {
			t.Errorf("small subscriber got %v, want mps/after", m)
		}
	})

	t.Run("inbound packet above the broker's maximum is refused with 0x95 (4.13)", func(t *testing.T) {
		r := dialRaw(t, tb.Addr)
		r.connect(&packets.Connect{ClientID: "mps-raw", CleanStart: true})
		r.write(&packets.Publish{Topic: "mps/huge", QoS: 0, Payload: bytes.Repeat([]byte("y"), 5000), Properties: &packets.Properties{}})
		pkts, err := r.expectClosed(waitTimeout)
		if err != nil {
			t.Fatalf("connection not closed after an oversized packet: %v", err)
		}
		if len(pkts) == 0 || pkts[len(pkts)-1].Type != ptDisconnect {
			t.Fatalf("no DISCONNECT before the close (got %d packets)", len(pkts))
		}
		if d := pkts[len(pkts)-1].paho(t).Content.(*packets.Disconnect); d.ReasonCode != 0x95 {
			t.Errorf("DISCONNECT reason 0x%02x, want 0x95 Packet too large", d.ReasonCode)
		}
	})
}

// --- $SYS and shutdown -----------------------------------------------------

// $SYS topics are published every SysInterval; wildcard filters at the first
// level never match topics beginning with $ [MQTT-4.7.2-1].
func TestE2EV5SysTopics(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, core.Options{SysInterval: 100 * time.Millisecond, Version: "e2e-1.2.3"})

	t.Run("$SYS/broker/# yields version, uptime and clients", func(t *testing.T) {
		c := connectV5(t, tb.Addr, v5Connect("sys-reader")).on(t)
		c.sub("$SYS/broker/#", 0)
		want := map[string]bool{"$SYS/broker/version": false, "$SYS/broker/uptime": false, "$SYS/broker/clients/connected": false}
		liveCount := false
		missing := len(want) + 1 // and one live clients/connected value
		deadline := time.After(waitTimeout)
		for missing > 0 {
			select {
			case m := <-c.msgs:
				if seen, ok := want[m.Topic]; ok && !seen {
					want[m.Topic] = true
					missing--
				}
				if m.Topic == "$SYS/broker/version" && !strings.Contains(string(m.Payload), "e2e-1.2.3") {
					t.Errorf("$SYS/broker/version = %q, want it to name version e2e-1.2.3", m.Payload)
				}
				// A live value (published after this client connected, so
				// not the retained one sent on subscribe) counts this client.
				if m.Topic == "$SYS/broker/clients/connected" && !m.Retain {
					if string(m.Payload) == "0" {
						t.Errorf("$SYS/broker/clients/connected = 0 with this client connected")
					}
					if !liveCount {
						liveCount = true
						missing--
					}
				}
			case <-deadline:
				t.Fatalf("$SYS topics not received within %v: %v", waitTimeout, want)
			}
		}
	})

	t.Run("# and +/broker/uptime do not match $SYS [MQTT-4.7.2-1]", func(t *testing.T) {
		all := connectV5(t, tb.Addr, v5Connect("sys-all")).on(t)
		all.sub("#", 0)
		all.sub("+/broker/uptime", 0)
		// Wait until a $SYS round is published after those subscriptions:
		// a live (not retained-on-subscribe) uptime message.
		sys := connectV5(t, tb.Addr, v5Connect("sys-watch")).on(t)
		sys.sub("$SYS/broker/uptime", 0)
		for {
			if m := sys.next(); !m.Retain {
				break
			}
		}
		sys.pub("e2e/marker", 1, "m")
		for _, m := range all.until("e2e/marker") {
			if strings.HasPrefix(m.Topic, "$") {
				t.Errorf("wildcard filter matched %s [MQTT-4.7.2-1]", m.Topic)
			}
		}
	})
}

// Shutdown sends DISCONNECT 0x8B (Server shutting down) to v5 clients
// (3.14.2.1) and closes their connections.
func TestE2EV5ShutdownDisconnect(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, core.Options{})
	c := connectV5(t, tb.Addr, v5Connect("shutdown"))
	c.sub("sd/t", 1) // a round trip: the session is fully up
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tb.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if d := c.nextDisconnect(); d.ReasonCode != 0x8B {
		t.Errorf("DISCONNECT reason 0x%02x, want 0x8B Server shutting down", d.ReasonCode)
	}
	select {
	case <-c.Cli.Done():
	case <-time.After(waitTimeout):
		t.Errorf("connection still open after Shutdown returned")
	}
}
