package core_test

// End-to-end tests of the hook pipeline (issue 4): every deny and modify
// path, with paho clients (MQTT 5 and 3.1.1) over TCP, and a raw MQTT 5
// client for the AUTH exchange. Section and statement numbers are from the
// OASIS MQTT Version 5.0 and 3.1.1 standards. No test sleeps to
// synchronise: each waits on a packet, a recorded hook event, or a marker
// message published after what it checks.

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/packets"
)

// ---------------------------------------------------------------------------
// Authentication and the default policy
// ---------------------------------------------------------------------------

// An Authenticate hook that denies with Bad User Name or Password refuses
// the CONNECT with CONNACK 0x86 in MQTT 5 (section 3.2.2.2) and return
// code 0x04 in 3.1.1 (section 3.2.2.3); when every hook says Next and
// allow_anonymous is false the default denies: 0x87 Not authorized / 0x05
// (issue 4: "when all say next, the configured default applies").
func TestE2EHookAuthenticate(t *testing.T) {
	t.Parallel()
	tb := hookBroker(t, hkOpts{hooks: []hookPrio{{h: &credHook{users: map[string]string{"alice": "secret"}}}}})
	cases := []struct {
		name       string
		user, pass string
		v5, v3     byte
	}{
		{"right password: allowed", "alice", "secret", 0x00, 0x00},
		{"wrong password: Bad User Name or Password", "alice", "wrong", 0x86, 0x04},
		{"username without password: Bad User Name or Password", "alice", "", 0x86, 0x04},
		{"unknown user, all hooks Next: default deny", "bob", "pw", 0x87, 0x05},
		{"no credentials, all hooks Next: default deny", "", "", 0x87, 0x05},
	}
	for i, tc := range cases {
		t.Run(tc.name+"/v5", func(t *testing.T) {
			t.Parallel()
			c, code := dialV5Code(t, tb.Addr, v5Creds(fmt.Sprintf("auth5-%d", i), tc.user, tc.pass))
			if code != tc.v5 {
				t.Fatalf("CONNACK reason 0x%02X, want 0x%02X (v5 section 3.2.2.2)", code, tc.v5)
			}
			if tc.v5 == 0 {
				c.on(t).pub("auth/ok", 1, "connected") // the connection works
			}
		})
		t.Run(tc.name+"/3.1.1", func(t *testing.T) {
			t.Parallel()
			if code := connectV3Code(t, tb.Addr, fmt.Sprintf("auth3-%d", i), tc.user, tc.pass); code != tc.v3 {
				t.Fatalf("CONNACK return code 0x%02X, want 0x%02X (3.1.1 section 3.2.2.3)", code, tc.v3)
			}
		})
	}

	// The Deny's reason string goes to a v5 client that asked for problem
	// information (hook.go, Verdict.Reason: "the reason string sent to v5
	// clients that asked for problem information"; CONNACK may carry a
	// Reason String, v5 section 3.2.2.3.7).
	t.Run("v5 CONNACK carries the hook's reason string", func(t *testing.T) {
		t.Parallel()
		c, err := dialV5(t, tb.Addr, v5Creds("auth5-reason", "alice", "wrong"), nil)
		if err == nil || c.Connack == nil {
			t.Fatalf("bad password accepted (%v)", err)
		}
		got := ""
		if c.Connack.Properties != nil {
			got = c.Connack.Properties.ReasonString
		}
		if want := "bad password for alice"; got != want {
			t.Errorf("CONNACK 0x%02X Reason String %q, want %q (the Deny's reason)", c.Connack.ReasonCode, got, want)
		}
	})
}

// The default policy with allow_anonymous false: nobody connects when no
// hook authenticates the client, whether there are no hooks or every hook
// says Next; with allow_anonymous true the same client connects (issue 4:
// "deny unless allow_anonymous: true").
func TestE2EHookDefaultPolicy(t *testing.T) {
	t.Parallel()
	next := &passHook{id: "test.next", events: core.Events(core.EventAuthenticate, core.EventConnect)}
	cases := []struct {
		name   string
		anon   bool
		hooks  []hookPrio
		v5, v3 byte
	}{
		{"no hooks, allow_anonymous false", false, nil, 0x87, 0x05},
		{"all hooks Next, allow_anonymous false", false, []hookPrio{{h: next}}, 0x87, 0x05},
		{"all hooks Next, allow_anonymous true", true, []hookPrio{{h: next}}, 0x00, 0x00},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tb := hookBroker(t, hkOpts{allowAnonymous: tc.anon, hooks: tc.hooks})
			if _, code := dialV5Code(t, tb.Addr, v5Creds("anon5", "someone", "pw")); code != tc.v5 {
				t.Errorf("v5 CONNACK reason 0x%02X, want 0x%02X (v5 section 3.2.2.2)", code, tc.v5)
			}
			if code := connectV3Code(t, tb.Addr, "anon3", "", ""); code != tc.v3 {
				t.Errorf("3.1.1 CONNACK return code 0x%02X, want 0x%02X (3.1.1 section 3.2.2.3)", code, tc.v3)
			}
		})
	}
}

// A Connect hook's Deny refuses the client after authentication with the
// verdict's code: CONNACK 0x8A Banned in MQTT 5 (section 3.2.2.2), 0x05
// Not authorized in 3.1.1 (its nearest return code).
func TestE2EHookConnectDeny(t *testing.T) {
	t.Parallel()
	tb := hookBroker(t, withHooks(&banHook{}))
	if _, code := dialV5Code(t, tb.Addr, v5Connect("banned-5")); code != 0x8A {
		t.Errorf("v5 CONNACK 0x%02X, want 0x8A Banned", code)
	}
	if code := connectV3Code(t, tb.Addr, "banned-3", "", ""); code != 0x05 {
		t.Errorf("3.1.1 CONNACK 0x%02X, want 0x05", code)
	}
	if _, code := dialV5Code(t, tb.Addr, v5Connect("welcome")); code != 0x00 {
		t.Errorf("v5 CONNACK 0x%02X for a client the hook let through, want 0x00", code)
	}
}

// A hook may deny with any reason code, but what goes on the wire must be a
// code the packet may carry: CONNACK [MQTT-3.2.2-8], PUBACK [MQTT-3.4.2-1],
// PUBREC [MQTT-3.5.2-1], SUBACK [MQTT-3.9.3-2]. A code foreign to the
// packet (0x8E Session taken over in a CONNACK, 0x86 Bad User Name or
// Password in a PUBACK or SUBACK) must become a valid error code, not be
// sent as is: the raw client here decodes with core/packets, which
// rejects invalid codes as a real client may.
func TestE2EHookDenyCodeValid(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		code packets.ReasonCode
		run  func(t *testing.T, c *authClient) *packets.Packet
	}{
		{"CONNACK", packets.SessionTakenOver, func(t *testing.T, c *authClient) *packets.Packet {
			c.connect("deny-connect", "", nil)
			return c.recv(packets.Connack)
		}},
		{"PUBACK", packets.BadUsernameOrPassword, func(t *testing.T, c *authClient) *packets.Packet {
			c.connect("codes-pub1", "", nil)
			c.recv(packets.Connack)
			c.send(&packets.Packet{Type: packets.Publish, QoS: 1, PacketID: 7, Topic: "deny/x", Payload: []byte("x")})
			return c.recv(packets.Puback)
		}},
		{"PUBREC", packets.BadUsernameOrPassword, func(t *testing.T, c *authClient) *packets.Packet {
			c.connect("codes-pub2", "", nil)
			c.recv(packets.Connack)
			c.send(&packets.Packet{Type: packets.Publish, QoS: 2, PacketID: 8, Topic: "deny/x", Payload: []byte("x")})
			return c.recv(packets.Pubrec)
		}},
		{"SUBACK", packets.BadUsernameOrPassword, func(t *testing.T, c *authClient) *packets.Packet {
			c.connect("codes-sub", "", nil)
			c.recv(packets.Connack)
			c.send(&packets.Packet{Type: packets.Subscribe, PacketID: 9, Subscriptions: []packets.Subscription{{Filter: "deny/#", QoS: 1}}})
			return c.recv(packets.Suback)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tb := hookBroker(t, withHooks(&codeHook{code: tc.code}))
			p := tc.run(t, dialAuth(t, tb.Addr))
			code := p.ReasonCode
			if p.Type == packets.Suback {
				code = p.ReasonCodes[0]
			}
			if code < 0x80 {
				t.Errorf("%s: the Deny became 0x%02X, not an error code", biDescribe(p), byte(code))
			}
		})
	}
}

// A panicking hook is isolated end to end: a panicking Authenticate fails
// closed (CONNACK 0x83 Implementation specific error in v5; 3.1.1 has no
// such code and gets 0x03 Server unavailable) and is counted; a panicking
// OnPublished does not stop the publish, its acknowledgement or delivery.
func TestE2EHookPanic(t *testing.T) {
	t.Parallel()
	boom := &panicHook{id: "test.panic", events: core.Events(core.EventAuthenticate, core.EventPublished)}
	tb := hookBroker(t, hkOpts{allowAnonymous: true, hooks: []hookPrio{{h: boom}}})

	if _, code := dialV5Code(t, tb.Addr, v5Connect("panic5")); code != 0x83 {
		t.Errorf("v5 CONNACK 0x%02X after a panicking Authenticate, want 0x83 (fail closed)", code)
	}
	if code := connectV3Code(t, tb.Addr, "panic3", "", ""); code != 0x03 {
		t.Errorf("3.1.1 CONNACK 0x%02X after a panicking Authenticate, want 0x03", code)
	}
	if f := tb.Hooks()[0].Failures; f != 2 {
		t.Errorf("Hooks() counts %d failures, want 2", f)
	}

	// Without the authenticating hook, the panicking OnPublished is
	// ignored.
	tb.RemoveHook("test.panic")
	if err := tb.AddHook(&panicHook{id: "test.panic.published", events: core.Events(core.EventPublished)}, 0); err != nil {
		t.Fatal(err)
	}
	sub := connectV5(t, tb.Addr, v5Connect("panic-sub"))
	sub.sub("p/#", 1)
	pub := connectV5(t, tb.Addr, v5Connect("panic-pub"))
	pub.pub("p/x", 1, "still delivered")
	if m := sub.next(); m.Topic != "p/x" || string(m.Payload) != "still delivered" {
		t.Errorf("got %v, want p/x \"still delivered\"", m)
	}
	if f := tb.Hooks()[0].Failures; f != 1 {
		t.Errorf("Hooks() counts %d failures of the OnPublished hook, want 1", f)
	}
}

// ---------------------------------------------------------------------------
// Connect policy
// ---------------------------------------------------------------------------

// A Connect hook's Mountpoint prefixes every topic a client publishes or
// subscribes to and is removed from what is delivered to it (hook.go,
// ClientPolicy.Mountpoint), so two tenants using the same topics never
// see each other's messages, while an unmounted client sees the full
// topics.
func TestE2EHookMountpoint(t *testing.T) {
	t.Parallel()
	rec := newRecorder(core.EventAuthorizePublish, core.EventAuthorizeSubscribe, core.EventPublished, core.EventSubscribed)
	pol := &policyHook{mounts: map[string]string{"a-": "tenant-a/", "b-": "tenant-b/"}}
	tb := hookBroker(t, withHooks(pol, rec))

	a1 := connectV5(t, tb.Addr, v5Connect("a-1"))
	a1.sub("data/#", 1)
	b1 := connectV3(t, tb.Addr, "b-1", nil)
	b1.sub("data/#", 1)
	admin := connectV5(t, tb.Addr, v5Connect("admin"))
	admin.sub("#", 1)

	a2 := connectV5(t, tb.Addr, v5Connect("a-2"))
	a2.pub("data/x", 1, "from tenant a")
	if m := a1.next(); m.Topic != "data/x" || string(m.Payload) != "from tenant a" {
		t.Errorf("tenant a subscriber got %v, want data/x without the mountpoint", m)
	}
	if m := admin.next(); m.Topic != "tenant-a/data/x" {
		t.Errorf("unmounted subscriber got %v, want tenant-a/data/x", m)
	}

	b2 := connectV3(t, tb.Addr, "b-2", nil)
	b2.pub("data/y", 1, false, "from tenant b")
	if m := b1.next(); m.Topic() != "data/y" || string(m.Payload()) != "from tenant b" {
		t.Errorf("tenant b subscriber got %s %q, want data/y", m.Topic(), m.Payload())
	}
	if m := admin.next(); m.Topic != "tenant-b/data/y" {
		t.Errorf("unmounted subscriber got %v, want tenant-b/data/y", m)
	}

	// Markers in each tenant: nothing crossed over before them.
	a2.pub("data/end", 1, "marker")
	if got := a1.until("data/end"); len(got) > 0 {
		t.Errorf("tenant a subscriber got %v from another tenant", got)
	}
	b2.pub("data/end", 1, false, "marker")
	if got := b1.until("data/end"); len(got) > 0 {
		t.Errorf("tenant b subscriber got %v from another tenant", v3Topics(got))
	}

	// The hooks see the broker's full topics, the same in every event: the
	// filter AuthorizeSubscribe was asked about is the one OnSubscribed
	// reports, and the topic AuthorizePublish saw is OnPublished's.
	t.Run("hooks see full topics consistently", func(t *testing.T) {
		az := rec.expect(t, "authorize_subscribe for a-1", func(e hkEvent) bool { return e.Kind == "authorize_subscribe" && e.Client == "a-1" })
		if az.Topic != "tenant-a/data/#" {
			t.Errorf("AuthorizeSubscribe saw filter %q, want tenant-a/data/#", az.Topic)
		}
		sb := rec.expectKind(t, "subscribed", "a-1")
		if sb.Topic != az.Topic {
			t.Errorf("OnSubscribed reports filter %q, AuthorizeSubscribe was asked about %q: hooks see one client's subscription under two names", sb.Topic, az.Topic)
		}
		ap := rec.expectKind(t, "authorize_publish", "a-2")
		pd := rec.expectKind(t, "published", "a-2")
		if ap.Topic != "tenant-a/data/x" || pd.Topic != ap.Topic {
			t.Errorf("AuthorizePublish saw %q and OnPublished %q, want tenant-a/data/x in both", ap.Topic, pd.Topic)
		}
	})
}

// A Connect hook's MaxPacketSize lowers the Maximum Packet Size the broker
// announces in CONNACK (v5 section 3.2.2.3.6) and enforces: a larger
// packet is an error answered with DISCONNECT 0x95 Packet too large (v5
// sections 3.2.2.3.6 and 4.13);
// a policy above the server's own limit does not raise it.
func TestE2EHookMaxPacketSize(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		server    uint32
		policy    uint32
		announced uint32
	}{
		{"policy lowers the server's limit", 1 << 20, 2048, 2048},
		{"policy above the server's limit keeps it", 4096, 1 << 20, 4096},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := withHooks(&policyHook{maxPacket: tc.policy})
			cfg.opts.MaxPacketSize = tc.server
			tb := hookBroker(t, cfg)
			c := connectV5(t, tb.Addr, v5Connect("mps"))
			if got := optU32(c.Connack.Properties.MaximumPacketSize); got != fmt.Sprint(tc.announced) {
				t.Fatalf("CONNACK Maximum Packet Size %s, want %d", got, tc.announced)
			}
			// Just under the limit is accepted, over it is refused.
			c.pub("mps/small", 1, strings.Repeat("s", int(tc.announced)-100))
			_, _ = c.Cli.Publish(context.Background(), &paho.Publish{Topic: "mps/big", QoS: 0, Payload: bytes.Repeat([]byte("b"), int(tc.announced)+1)})
			if d := c.nextDisconnect(); d.ReasonCode != 0x95 {
				t.Errorf("DISCONNECT 0x%02X after a packet above the announced maximum, want 0x95 Packet too large", d.ReasonCode)
			}

			// 3.1.1 has no Maximum Packet Size to announce; the limit
			// still holds and the connection is closed.
			lost := make(chan error, 1)
			c3 := connectV3(t, tb.Addr, "mps3", func(o *mqtt.ClientOptions) {
				o.SetConnectionLostHandler(func(_ mqtt.Client, err error) { lost <- err })
			})
			c3.Cli.Publish("mps/big", 0, false, bytes.Repeat([]byte("b"), int(tc.announced)+1))
			waitFor(t, lost, waitTimeout, "the 3.1.1 connection closed after a packet above the limit")
		})
	}
}

// A Connect hook's queue and inflight limits apply to the client
// (issue 4: "may set per-client policy: queue and inflight limits"):
// MaxQueuedMessages bounds the messages queued for its offline session,
// the rest being dropped (and the hooks told); MaxInflight bounds the
// QoS 1/2 messages sent to it before it acknowledges them (v5 section
// 4.9), while QoS 0 messages are not held back.
func TestE2EHookQueuePolicy(t *testing.T) {
	t.Parallel()

	t.Run("MaxQueuedMessages", func(t *testing.T) {
		t.Parallel()
		rec := newRecorder(core.EventDropped, core.EventDisconnected)
		tb := hookBroker(t, withHooks(&policyHook{queued: 2}, rec))
		cp := v5Connect("queued")
		cp.Properties.SessionExpiryInterval = u32(60)
		c := connectV5(t, tb.Addr, cp)
		c.sub("q/#", 1)
		c.disconnect(0)
		rec.expectKind(t, "disconnected", "queued")
		pub := connectV5(t, tb.Addr, v5Connect("q-pub"))
		for i := range 5 {
			pub.pub("q/x", 1, fmt.Sprint(i))
		}
		for range 3 {
			if e := rec.expectKind(t, "dropped", "queued"); !strings.Contains(e.Why, "queue") {
				t.Errorf("dropped: %v, want a full queue", e)
			}
		}
		cp.CleanStart = false
		c = connectV5(t, tb.Addr, cp)
		pub.pub("q/marker", 1, "marker")
		if got := c.until("q/marker"); len(got) != 2 || string(got[0].Payload) != "0" || string(got[1].Payload) != "1" {
			t.Errorf("resumed session got %v, want the 2 messages its policy let the broker queue", got)
		}
	})

	t.Run("MaxInflight", func(t *testing.T) {
		t.Parallel()
		tb := hookBroker(t, withHooks(&policyHook{inflight: 1}))
		sub := biConnectOK(t, tb.Addr, packets.Version5, "inflight")
		sub.mustWrite(biSubscribe(packets.Version5, 1, "i/#", 1))
		sub.expect(biIO, packets.Suback)
		pub := connectV5(t, tb.Addr, v5Connect("i-pub"))
		for i := range 3 {
			pub.pub("i/q1", 1, fmt.Sprint(i))
		}
		pub.pub("i/q0", 0, "overtakes")
		p1 := sub.expect(biIO, packets.Publish)
		if string(p1.Payload) != "0" {
			t.Fatalf("first delivery %s, want payload 0", biDescribe(p1))
		}
		// With one message in flight the next QoS 1 message waits for the
		// PUBACK; the QoS 0 one does not.
		if p := sub.expect(biIO, packets.Publish); p.QoS != 0 {
			t.Fatalf("got %s before acknowledging the first, want the QoS 0 message (inflight 1)", biDescribe(p))
		}
		sub.mustWrite(biAck(0x40, p1.PacketID))
		if p := sub.expect(biIO, packets.Publish); string(p.Payload) != "1" {
			t.Errorf("after the PUBACK got %s, want payload 1", biDescribe(p))
		}
	})
}

// ---------------------------------------------------------------------------
// Authorization
// ---------------------------------------------------------------------------

// An AuthorizePublish Deny: PUBACK 0x87 at QoS 1 and PUBREC 0x87 at QoS 2
// in MQTT 5 (sections 3.4.2.1, 3.5.2.1); QoS 0 is dropped silently; the
// message reaches nobody and the connection lives on. 3.1.1 has no reason
// codes: the flow completes normally and the message is dropped
// [MQTT-3.3.5-2]. (Issue 4: "deny on publish gives PUBACK/PUBREC 0x87 for
// QoS>0 (v5) and a silent drop for QoS 0".)
func TestE2EHookAuthorizePublish(t *testing.T) {
	t.Parallel()
	tb := hookBroker(t, withHooks(&aclHook{denyPub: "deny/"}))
	sub := connectV5(t, tb.Addr, v5Connect("ap-sub"))
	sub.sub("deny/#", 2)
	sub.sub("ok/#", 2)

	t.Run("v5", func(t *testing.T) {
		pub := connectV5(t, tb.Addr, v5Connect("ap-pub5"))
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		for _, qos := range []byte{1, 2} {
			r, _ := pub.Cli.Publish(ctx, &paho.Publish{Topic: fmt.Sprintf("deny/q%d", qos), QoS: qos, Payload: []byte("denied")})
			if r == nil || r.ReasonCode != 0x87 {
				t.Errorf("QoS %d publish to a denied topic: response %+v, want reason 0x87 Not authorized (%s)", qos, r, map[byte]string{1: "PUBACK, v5 section 3.4.2.1", 2: "PUBREC, v5 section 3.5.2.1"}[qos])
			} else if r.Properties == nil || !strings.Contains(r.Properties.ReasonString, "deny/q") {
				t.Errorf("QoS %d: reason string %+v, want the hook's reason (the client asked for problem information)", qos, r.Properties)
			}
		}
		if _, err := pub.Cli.Publish(ctx, &paho.Publish{Topic: "deny/q0", QoS: 0, Payload: []byte("denied")}); err != nil {
			t.Errorf("QoS 0 publish: %v", err)
		}
		// The same connection goes on working; a QoS 2 identifier freed by
		// the refusal can be used again.
		for range 3 {
			pub.pub("ok/q2", 2, "allowed")
		}
		pub.pub("ok/marker5", 1, "marker")
		got := sub.until("ok/marker5")
		if len(got) != 3 {
			t.Errorf("subscriber got %v before the marker, want exactly the 3 allowed messages", got)
		}
		for _, m := range got {
			if strings.HasPrefix(m.Topic, "deny/") {
				t.Errorf("denied message delivered: %v", m)
			}
		}
	})

	t.Run("3.1.1", func(t *testing.T) {
		pub := connectV3(t, tb.Addr, "ap-pub3", nil)
		for _, qos := range []byte{0, 1, 2} {
			pub.pub(fmt.Sprintf("deny/v3q%d", qos), qos, false, "denied") // acknowledged normally
		}
		pub.pub("ok/marker3", 1, false, "marker")
		if got := sub.until("ok/marker3"); len(got) > 0 {
			t.Errorf("denied 3.1.1 messages delivered: %v", got)
		}
	})

	// A client that set Request Problem Information to 0 must not get a
	// Reason String on a PUBACK or PUBREC [MQTT-3.1.2-29].
	t.Run("v5 without problem information: no reason string", func(t *testing.T) {
		cp := v5Connect("ap-quiet")
		cp.Properties.RequestProblemInfo = false
		pub := connectV5(t, tb.Addr, cp)
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		for _, qos := range []byte{1, 2} {
			r, _ := pub.Cli.Publish(ctx, &paho.Publish{Topic: "deny/quiet", QoS: qos, Payload: []byte("x")})
			if r == nil || r.ReasonCode != 0x87 {
				t.Fatalf("QoS %d: response %+v, want 0x87", qos, r)
			}
			if r.Properties != nil && r.Properties.ReasonString != "" {
				t.Errorf("QoS %d: %s carries Reason String %q though the client set Request Problem Information 0 [MQTT-3.1.2-29]",
					qos, map[byte]string{1: "PUBACK", 2: "PUBREC"}[qos], r.Properties.ReasonString)
			}
		}
	})
}

// An AuthorizeSubscribe Deny gives the filter SUBACK 0x87 in MQTT 5 and
// 0x80 in 3.1.1, one code per filter in order [MQTT-3.8.4-6][MQTT-3.9.3-1];
// a hook lowering *qos grants that QoS (v5 section 3.8.4: "The Server might
// grant a lower Maximum QoS than the subscriber requested") and messages
// are delivered at no more than it [MQTT-3.8.4-8]; a hook cannot raise the
// QoS above what was requested (hook.go: "it may lower *qos").
func TestE2EHookAuthorizeSubscribe(t *testing.T) {
	t.Parallel()
	tb := hookBroker(t, withHooks(&aclHook{denySub: "secret/", lowSub: "low/"}))
	pub := connectV5(t, tb.Addr, v5Connect("as-pub"))

	t.Run("v5", func(t *testing.T) {
		c := connectV5(t, tb.Addr, v5Connect("as-sub5"))
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		sa, _ := c.Cli.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
			{Topic: "secret/#", QoS: 1}, {Topic: "ok/#", QoS: 1}, {Topic: "low/#", QoS: 2},
		}})
		if sa == nil {
			t.Fatal("no SUBACK")
		}
		if want := []byte{0x87, 0x01, 0x00}; !bytes.Equal(sa.Reasons, want) {
			t.Fatalf("SUBACK reasons % X, want % X (0x87 for the denied filter, v5 section 3.9.3)", sa.Reasons, want)
		}
		pub.pub("secret/x", 1, "hidden")
		pub.pub("low/x", 2, "downgraded")
		pub.pub("ok/marker", 1, "marker")
		got := c.until("ok/marker")
		if len(got) != 1 || got[0].Topic != "low/x" || got[0].QoS != 0 {
			t.Errorf("got %v before the marker, want only low/x at QoS 0 (granted 0) [MQTT-3.8.4-8]", got)
		}
	})

	t.Run("3.1.1", func(t *testing.T) {
		c := connectV3(t, tb.Addr, "as-sub3", nil)
		if code := c.subCode("secret/#", 1); code != 0x80 {
			t.Errorf("SUBACK return code 0x%02X for a denied filter, want 0x80 Failure (3.1.1 section 3.9.3)", code)
		}
		if code := c.subCode("low/#", 2); code != 0x00 {
			t.Errorf("SUBACK return code 0x%02X for a downgraded filter, want 0x00", code)
		}
		c.sub("ok/#", 1)
		pub.pub("secret/y", 1, "hidden")
		pub.pub("low/y", 2, "downgraded")
		pub.pub("ok/marker3", 1, "marker")
		got := c.until("ok/marker3")
		if len(got) != 1 || got[0].Topic() != "low/y" || got[0].Qos() != 0 {
			t.Errorf("got %v before the marker, want only low/y at QoS 0", v3Topics(got))
		}
	})

	t.Run("a hook cannot raise the granted QoS", func(t *testing.T) {
		tb := hookBroker(t, withHooks(&aclHook{raiseTo: 2}))
		c := connectV5(t, tb.Addr, v5Connect("raise"))
		c.sub("r/#", 1) // fails unless granted QoS 1
	})
}

// ---------------------------------------------------------------------------
// Modifiers
// ---------------------------------------------------------------------------

// A Publish modifier rewrites the topic, payload and properties of an
// inbound message, or sets its retain flag; subscribers of the new topic
// get the new message and those of the old one nothing. A Deny drops the
// message and answers with the verdict's reason code (hook.go, Publish:
// "Deny it, which drops it and answers QoS 1/2 with the verdict's reason
// code"); an invalid rewritten topic is refused with 0x83.
func TestE2EHookPublishModifier(t *testing.T) {
	t.Parallel()
	tb := hookBroker(t, withHooks(&rewriteHook{code: packets.QuotaExceeded}))
	sub := connectV5(t, tb.Addr, v5Connect("pm-sub"))
	for _, f := range []string{"from/#", "to/#", "drop/#", "invalid/#", "bad/#", "m/#"} {
		sub.sub(f, 1)
	}
	sub3 := connectV3(t, tb.Addr, "pm-sub3", nil)
	sub3.sub("to/#", 1)
	sub3.sub("from/#", 1)

	t.Run("rewrite topic, payload and properties", func(t *testing.T) {
		pub := connectV5(t, tb.Addr, v5Connect("pm-pub"))
		pub.pub("from/x", 1, "hello")
		m := sub.next()
		if m.Topic != "to/x" || string(m.Payload) != "HELLO" {
			t.Fatalf("v5 subscriber got %v, want to/x \"HELLO\"", m)
		}
		if m.Props == nil || m.Props.User.Get("rewritten") != "yes" {
			t.Errorf("user property added by the hook missing: %+v", m.Props)
		}
		if m3 := sub3.next(); m3.Topic() != "to/x" || string(m3.Payload()) != "HELLO" {
			t.Errorf("3.1.1 subscriber got %s %q, want to/x \"HELLO\"", m3.Topic(), m3.Payload())
		}
		pub.pub("m/1", 1, "marker")
		if got := sub.until("m/1"); len(got) > 0 {
			t.Errorf("the original topic was delivered too: %v", got)
		}
	})

	t.Run("rewrite from a 3.1.1 publisher", func(t *testing.T) {
		pub := connectV3(t, tb.Addr, "pm-pub3", nil)
		pub.pub("from/y", 1, false, "abc")
		if m := sub.next(); m.Topic != "to/y" || string(m.Payload) != "ABC" {
			t.Errorf("got %v, want to/y \"ABC\"", m)
		}
	})

	t.Run("deny drops with the verdict's code", func(t *testing.T) {
		pub := connectV5(t, tb.Addr, v5Connect("pm-drop"))
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		for _, qos := range []byte{1, 2} {
			r, _ := pub.Cli.Publish(ctx, &paho.Publish{Topic: "drop/x", QoS: qos, Payload: []byte("x")})
			if r == nil || r.ReasonCode != byte(packets.QuotaExceeded) {
				t.Errorf("QoS %d: response %+v, want reason 0x97 from the hook's Deny", qos, r)
			}
		}
		r, _ := pub.Cli.Publish(ctx, &paho.Publish{Topic: "invalid/x", QoS: 1, Payload: []byte("x")})
		if r == nil || r.ReasonCode != 0x83 {
			t.Errorf("publish rewritten to an invalid topic: response %+v, want 0x83", r)
		}
		pub.pub("m/2", 1, "marker")
		if got := sub.until("m/2"); len(got) > 0 {
			t.Errorf("dropped messages delivered: %v", got)
		}
	})

	t.Run("rewrite the retain flag", func(t *testing.T) {
		pub := connectV5(t, tb.Addr, v5Connect("pm-retain"))
		pub.pub("retain/x", 1, "kept")
		late := connectV5(t, tb.Addr, v5Connect("pm-late"))
		late.sub("retain/#", 1)
		if m := late.next(); m.Topic != "retain/x" || !m.Retain || string(m.Payload) != "kept" {
			t.Errorf("late subscriber got %v, want the message the hook made retained [MQTT-3.3.1-5]", m)
		}
	})
}

// A Deliver modifier decides per subscriber: denying one subscriber's
// delivery leaves the others', and a rewrite changes only that
// subscriber's copy (hook.go, Deliver: "may rewrite or Deny one delivery
// to one subscriber").
func TestE2EHookDeliver(t *testing.T) {
	t.Parallel()
	tb := hookBroker(t, withHooks(&deliverHook{blocked: "blocked"}))
	blocked := connectV5(t, tb.Addr, v5Connect("blocked"))
	blocked.sub("data/#", 1)
	blocked.sub("tag/#", 1)
	blocked.sub("m/#", 1)
	open := connectV3(t, tb.Addr, "open", nil)
	open.sub("data/#", 1)
	open.sub("tag/#", 1)
	open.sub("m/#", 1)
	pub := connectV5(t, tb.Addr, v5Connect("dl-pub"))

	pub.pub("data/x", 1, "for open only")
	pub.pub("tag/x", 1, "p")
	pub.pub("m/marker", 1, "marker")
	got := blocked.until("m/marker")
	if len(got) != 1 || got[0].Topic != "tag/x" || string(got[0].Payload) != "blocked:p" {
		t.Errorf("blocked subscriber got %v before the marker, want only tag/x \"blocked:p\"", got)
	}
	got3 := open.until("m/marker")
	if len(got3) != 2 || got3[0].Topic() != "data/x" || string(got3[1].Payload()) != "open:p" {
		t.Errorf("open subscriber got %v before the marker, want data/x and tag/x \"open:p\"", v3Topics(got3))
	}

	// A retained message sent on subscribing is a delivery to that one
	// subscriber too.
	t.Run("retained on subscribe", func(t *testing.T) {
		pub.pubRetained("data/retained", "kept")
		pub.pubRetained("m/retained-marker", "marker")
		late := connectV5(t, tb.Addr, v5Connect("blocked-late"))
		late.sub("data/retained", 1)
		late.sub("m/retained-marker", 1)
		if got := late.until("m/retained-marker"); len(got) > 0 {
			t.Errorf("a retained message the Deliver hook denies for this subscriber was delivered on subscribe: %v", got)
		}
	})
}

// A Will modifier suppresses a will (Deny) or rewrites it before it is
// published (hook.go, Will), for MQTT 5 and 3.1.1 wills; a will on a
// topic outside the hook's filters is published unchanged.
func TestE2EHookWill(t *testing.T) {
	t.Parallel()
	wh := &willHook{seen: make(chan string, 16)}
	rec := newRecorder(core.EventDisconnected)
	tb := hookBroker(t, withHooks(wh, rec))
	obs := connectV5(t, tb.Addr, v5Connect("observer"))
	obs.sub("will/#", 1)
	obs.sub("other/#", 1)

	kill5 := func(t *testing.T, id, topic string) {
		t.Helper()
		cp := v5Connect(id)
		cp.WillMessage = &paho.WillMessage{Topic: topic, QoS: 1, Payload: []byte(id + " gone")}
		c := connectV5(t, tb.Addr, cp)
		c.kill()
		// The will is routed before the broker reports the disconnection
		// (detach, then OnDisconnected).
		rec.expectKind(t, "disconnected", id)
	}
	kill3 := func(t *testing.T, id, topic string) {
		t.Helper()
		c := connectV3(t, tb.Addr, id, func(o *mqtt.ClientOptions) { o.SetWill(topic, id+" gone", 1, false) })
		c.kill()
		rec.expectKind(t, "disconnected", id)
	}

	t.Run("suppressed", func(t *testing.T) {
		kill5(t, "w-supp5", "will/suppress")
		kill3(t, "w-supp3", "will/suppress")
		for _, id := range []string{"w-supp5", "w-supp3"} {
			if got := waitFor(t, wh.seen, waitTimeout, "the will hook called"); got != id+" will/suppress" {
				t.Errorf("will hook saw %q, want %q", got, id+" will/suppress")
			}
		}
		obs.pub("will/marker", 1, "marker")
		if got := obs.until("will/marker"); len(got) > 0 {
			t.Errorf("suppressed will published: %v", got)
		}
	})

	t.Run("rewritten", func(t *testing.T) {
		kill5(t, "w-rw5", "will/rewrite")
		kill3(t, "w-rw3", "will/rewrite")
		for _, id := range []string{"w-rw5", "w-rw3"} {
			<-wh.seen
			m := obs.next()
			if m.Topic != "will/rewritten" || string(m.Payload) != "rewritten by hook: "+id+" gone" {
				t.Errorf("got %v, want the will of %s rewritten to will/rewritten", m, id)
			}
		}
	})

	t.Run("outside the hook's filters: unchanged", func(t *testing.T) {
		kill5(t, "w-other", "other/will")
		if m := obs.next(); m.Topic != "other/will" || string(m.Payload) != "w-other gone" {
			t.Errorf("got %v, want the will unchanged", m)
		}
		select {
		case s := <-wh.seen:
			t.Errorf("will hook with Topics [will/#] was asked about %q", s)
		default:
		}
	})
}

// A will is published on its client's behalf, so publish authorization
// applies to it: a client denied publishing to a topic cannot have its
// will published there. (Mosquitto checks the will topic against the ACL;
// an ACL a will bypasses lets any client that may connect write to any
// topic.) Either refusing the CONNECT or dropping the will is acceptable.
func TestE2EHookWillAuthorized(t *testing.T) {
	t.Parallel()
	rec := newRecorder(core.EventDisconnected)
	tb := hookBroker(t, withHooks(&aclHook{denyPub: "deny/"}, rec))
	obs := connectV5(t, tb.Addr, v5Connect("observer"))
	obs.sub("deny/#", 1)
	obs.sub("ok/#", 1)

	cp := v5Connect("sneaky5")
	cp.WillMessage = &paho.WillMessage{Topic: "deny/will", QoS: 1, Payload: []byte("v5 will")}
	if c, code := dialV5Code(t, tb.Addr, cp); code == 0 {
		c.kill()
		rec.expectKind(t, "disconnected", "sneaky5")
	}
	c3, err := dialV3(t, tb.Addr, "sneaky3", func(o *mqtt.ClientOptions) { o.SetWill("deny/will", "3.1.1 will", 1, false) })
	if err == nil {
		c3.kill()
		rec.expectKind(t, "disconnected", "sneaky3")
	}
	obs.pub("ok/marker", 1, "marker")
	if got := obs.until("ok/marker"); len(got) > 0 {
		t.Errorf("wills published to a topic their clients may not publish to: %v", got)
	}
}

// ---------------------------------------------------------------------------
// Notifications
// ---------------------------------------------------------------------------

// OnSession is told when a session is created, resumed, taken over and
// expires; OnDisconnected when a connection ends, with the reason: 0x00
// for a DISCONNECT, 0x8E Session taken over for the connection a takeover
// closed [MQTT-3.1.4-3].
func TestE2EHookSessionEvents(t *testing.T) {
	t.Parallel()
	rec := newRecorder(core.EventSession, core.EventDisconnected)
	cfg := withHooks(rec)
	// The session expiry callback logs after it tells the hooks, and may
	// still be running when the test ends (see TestE2EHookStoppedIsLast):
	// its log must not go to a finished test.
	cfg.opts.Logger = slog.New(slog.DiscardHandler)
	tb := hookBroker(t, cfg)

	change := func(kind core.SessionChange, id string) func(hkEvent) bool {
		return func(e hkEvent) bool { return e.Kind == "session" && e.Change == kind && e.Client == id }
	}
	persistent := func(id string, clean bool) *paho.Connect {
		cp := v5Connect(id)
		cp.CleanStart = clean
		cp.Properties.SessionExpiryInterval = u32(60)
		return cp
	}

	t.Run("v5 created, taken over, resumed", func(t *testing.T) {
		first := connectV5(t, tb.Addr, persistent("s5", true))
		if e := rec.expect(t, "session created for s5", change(core.SessionCreated, "s5")); e.Client != "s5" {
			t.Errorf("created: %v", e)
		}
		second := connectV5(t, tb.Addr, persistent("s5", false))
		if e := rec.expect(t, "session taken over for s5", change(core.SessionTakenOver, "s5")); e.Client != "s5" {
			t.Errorf("taken over: %v", e)
		}
		if e := rec.expect(t, "session resumed for s5", change(core.SessionResumed, "s5")); e.Client != "s5" {
			t.Errorf("resumed: %v", e)
		}
		if d := first.nextDisconnect(); d.ReasonCode != 0x8E {
			t.Errorf("old connection got DISCONNECT 0x%02X, want 0x8E", d.ReasonCode)
		}
		if e := rec.expectKind(t, "disconnected", "s5"); e.Reason != packets.SessionTakenOver {
			t.Errorf("OnDisconnected of the taken-over connection: %v, want reason 0x8E Session taken over", e)
		}
		second.disconnect(0)
		if e := rec.expectKind(t, "disconnected", "s5"); e.Reason != packets.Success || e.Err != nil {
			t.Errorf("OnDisconnected after DISCONNECT 0x00: %v, want reason 0x00 and no error", e)
		}
		connectV5(t, tb.Addr, persistent("s5", false))
		if e := rec.expect(t, "session resumed for s5", change(core.SessionResumed, "s5")); e.Client != "s5" {
			t.Errorf("resumed after reconnecting: %v", e)
		}
	})

	t.Run("3.1.1 created, resumed", func(t *testing.T) {
		clean := func(c bool) func(o *mqtt.ClientOptions) { return func(o *mqtt.ClientOptions) { o.SetCleanSession(c) } }
		c := connectV3(t, tb.Addr, "s3", clean(false))
		if e := rec.expect(t, "session created for s3", change(core.SessionCreated, "s3")); e.Client != "s3" {
			t.Errorf("created: %v", e)
		}
		c.Cli.Disconnect(100)
		rec.expectKind(t, "disconnected", "s3")
		connectV3(t, tb.Addr, "s3", clean(false))
		if e := rec.expect(t, "session resumed for s3", change(core.SessionResumed, "s3")); e.Client != "s3" {
			t.Errorf("resumed: %v", e)
		}
	})

	t.Run("expired", func(t *testing.T) {
		cp := v5Connect("s-exp")
		cp.Properties.SessionExpiryInterval = u32(1)
		c := connectV5(t, tb.Addr, cp)
		c.disconnect(0)
		if e := rec.expect(t, "session expired for s-exp", change(core.SessionExpired, "s-exp")); e.Client != "s-exp" {
			t.Errorf("expired: %v", e)
		}
	})

	// An abnormal end is not reported as a normal disconnection: the
	// reason and error passed to OnDisconnected must let a hook tell a
	// lost connection from a DISCONNECT 0x00 (hook.go: "told when a
	// connection ends, with the reason").
	t.Run("abnormal close", func(t *testing.T) {
		c := connectV5(t, tb.Addr, v5Connect("s-kill"))
		c.kill()
		e := rec.expectKind(t, "disconnected", "s-kill")
		if e.Reason == packets.Success && e.Err == nil {
			t.Errorf("OnDisconnected after the network connection was lost: %v; indistinguishable from a normal DISCONNECT", e)
		}
	})
}

// A connection refused at CONNECT never had a session; if the hooks are
// told it ended, it is with the refusal, not as a normal disconnection.
func TestE2EHookRefusedDisconnect(t *testing.T) {
	t.Parallel()
	rec := newRecorder(core.EventSession, core.EventDisconnected)
	tb := hookBroker(t, hkOpts{hooks: []hookPrio{
		{h: &credHook{users: map[string]string{"alice": "secret"}}},
		{h: rec},
	}})
	if _, code := dialV5Code(t, tb.Addr, v5Creds("refused", "alice", "wrong")); code != 0x86 {
		t.Fatalf("CONNACK 0x%02X, want 0x86", code)
	}
	ok := connectV5(t, tb.Addr, v5Creds("marker", "alice", "secret"))
	ok.disconnect(0)
	e := rec.expect(t, "disconnected for the refused client or the marker", func(e hkEvent) bool {
		return e.Kind == "disconnected"
	})
	if e.Client == "refused" && e.Reason != packets.BadUsernameOrPassword {
		t.Errorf("OnDisconnected for a client refused with CONNACK 0x86: %v, reported as a disconnection with reason 0x%02X", e, byte(e.Reason))
	}
	for _, e := range rec.seen() {
		if e.Kind == "session" && e.Client == "refused" {
			t.Errorf("refused client got a session: %v", e)
		}
	}
}

// OnSubscribed is told of each granted filter with its granted QoS, not of
// refused ones; OnUnsubscribed of each removed filter, not of filters the
// client did not have.
func TestE2EHookSubscriptionEvents(t *testing.T) {
	t.Parallel()
	rec := newRecorder(core.EventSubscribed, core.EventUnsubscribed)
	tb := hookBroker(t, withHooks(&aclHook{denySub: "secret/", lowSub: "low/"}, rec))
	kind := func(k string) func(hkEvent) bool { return func(e hkEvent) bool { return e.Kind == k } }

	t.Run("v5", func(t *testing.T) {
		c := connectV5(t, tb.Addr, v5Connect("se5"))
		c.sub("a/#", 1)
		if e := rec.expect(t, "subscribed", kind("subscribed")); e.Client != "se5" || e.Topic != "a/#" || e.QoS != 1 {
			t.Errorf("got %v, want subscribed se5 a/# QoS 1", e)
		}
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		_, _ = c.Cli.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "secret/#", QoS: 1}, {Topic: "low/#", QoS: 2}}})
		if e := rec.expect(t, "subscribed", kind("subscribed")); e.Topic != "low/#" || e.QoS != 0 {
			t.Errorf("got %v, want subscribed low/# with the granted QoS 0 (and nothing for the refused secret/#)", e)
		}
		if _, err := c.Cli.Unsubscribe(ctx, &paho.Unsubscribe{Topics: []string{"nope/#", "a/#"}}); err != nil {
			t.Fatal(err)
		}
		if e := rec.expect(t, "unsubscribed", kind("unsubscribed")); e.Client != "se5" || e.Topic != "a/#" {
			t.Errorf("got %v, want unsubscribed se5 a/# (nothing for nope/#, which did not exist)", e)
		}
	})

	t.Run("3.1.1", func(t *testing.T) {
		c := connectV3(t, tb.Addr, "se3", nil)
		c.sub("b/+", 2)
		if e := rec.expect(t, "subscribed", kind("subscribed")); e.Client != "se3" || e.Topic != "b/+" || e.QoS != 2 {
			t.Errorf("got %v, want subscribed se3 b/+ QoS 2", e)
		}
		if tok := c.Cli.Unsubscribe("b/+"); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
			t.Fatalf("unsubscribe: %v", tok.Error())
		}
		if e := rec.expect(t, "unsubscribed", kind("unsubscribed")); e.Client != "se3" || e.Topic != "b/+" {
			t.Errorf("got %v, want unsubscribed se3 b/+", e)
		}
	})
	if left := rec.seen(); len(left) > 0 {
		t.Errorf("unexpected notifications: %v", left)
	}
}

// OnPublished is told of every accepted message and not of denied ones;
// OnAcked when a subscriber acknowledges a QoS 1 (PUBACK) or QoS 2
// (PUBCOMP) delivery; OnRetained when a retained message is set and when
// it is cleared (empty payload). A hook's Topics limit the message events
// it is told of.
func TestE2EHookMessageEvents(t *testing.T) {
	t.Parallel()
	rec := newRecorder(core.EventPublished, core.EventAcked, core.EventRetained)
	only := newRecorder(core.EventPublished, core.EventAcked, core.EventRetained)
	only.id, only.topics = "test.recorder.filtered", []string{"n/x"}
	tb := hookBroker(t, withHooks(&aclHook{denyPub: "n/deny"}, rec, only))
	sub := connectV5(t, tb.Addr, v5Connect("me-sub"))
	sub.sub("n/#", 2)
	pub := connectV5(t, tb.Addr, v5Connect("me-pub"))
	pub3 := connectV3(t, tb.Addr, "me-pub3", nil)

	before := time.Now()
	pub.pub("n/x", 1, "p1")
	after := time.Now()
	e := rec.expectKind(t, "published", "me-pub")
	if e.Topic != "n/x" || e.Payload != "p1" || e.QoS != 1 {
		t.Errorf("published: %v, want n/x \"p1\" QoS 1", e)
	}
	if e.Received.Before(before) || e.Received.After(after) {
		t.Errorf("published: Received %v, want between %v and %v (the PUBLISH was read)", e.Received, before, after)
	}
	if m := sub.next(); m.Topic != "n/x" {
		t.Fatalf("subscriber got %v", m)
	}
	if e := rec.expectKind(t, "acked", "me-sub"); e.Topic != "n/x" || e.Payload != "p1" || !e.Received.IsZero() {
		t.Errorf("acked: %v (Received %v), want me-sub's PUBACK of n/x \"p1\", Received zero", e, e.Received)
	}

	pub.pub("n/q2", 2, "p2")
	if e := rec.expectKind(t, "published", "me-pub"); e.Topic != "n/q2" || e.QoS != 2 {
		t.Errorf("published: %v, want n/q2 QoS 2", e)
	}
	if m := sub.next(); m.Topic != "n/q2" || m.QoS != 2 {
		t.Fatalf("subscriber got %v", m)
	}
	if e := rec.expect(t, "acked n/q2", func(e hkEvent) bool { return e.Kind == "acked" && e.Topic == "n/q2" }); e.Client != "me-sub" {
		t.Errorf("acked: %v, want me-sub's PUBCOMP of n/q2", e)
	}

	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	_, _ = pub.Cli.Publish(ctx, &paho.Publish{Topic: "n/deny", QoS: 1, Payload: []byte("no")})
	pub3.pub("n/after", 1, false, "p3")
	if e := rec.expect(t, "published", func(e hkEvent) bool { return e.Kind == "published" }); e.Topic != "n/after" || e.Client != "me-pub3" {
		t.Errorf("next published: %v, want n/after from me-pub3 (nothing for the denied n/deny)", e)
	}

	pub.pubRetained("n/r", "keep")
	if e := rec.expectKind(t, "retained", ""); e.Topic != "n/r" || e.Payload != "keep" {
		t.Errorf("retained set: %v, want n/r \"keep\"", e)
	}
	pub.pubRetained("n/r", "")
	if e := rec.expectKind(t, "retained", ""); e.Topic != "n/r" || e.Payload != "" {
		t.Errorf("retained cleared: %v, want n/r with an empty payload", e)
	}

	// The filtered recorder was told only of n/x: OnPublished and OnAcked.
	if e := only.expectKind(t, "published", "me-pub"); e.Topic != "n/x" {
		t.Errorf("filtered hook told of %v", e)
	}
	if e := only.expectKind(t, "acked", "me-sub"); e.Topic != "n/x" {
		t.Errorf("filtered hook told of %v", e)
	}
	for _, e := range only.seen() {
		t.Errorf("hook with Topics [n/x] told of %v", e)
	}
}

// OnDropped is told of a message dropped for a subscriber, and why: a
// stalled subscriber with a tiny outbound queue, and a message larger
// than the subscriber's Maximum Packet Size [MQTT-3.1.2-25].
func TestE2EHookDropped(t *testing.T) {
	t.Parallel()
	rec := newRecorder(core.EventDropped)
	cfg := withHooks(rec)
	cfg.opts.OutboundQueue = 4
	cfg.opts.MaxQueuedMessages = 4
	tb := hookBroker(t, cfg)

	t.Run("too large for the subscriber", func(t *testing.T) {
		cp := v5Connect("small")
		cp.Properties.MaximumPacketSize = u32(256)
		c := connectV5(t, tb.Addr, cp)
		c.sub("big/#", 0)
		pub := connectV5(t, tb.Addr, v5Connect("big-pub"))
		pub.pub("big/x", 0, strings.Repeat("x", 1024))
		e := rec.expectKind(t, "dropped", "small")
		if e.Topic != "big/x" || !strings.Contains(e.Why, "maximum packet size") {
			t.Errorf("dropped: %v, want big/x with a reason naming the maximum packet size", e)
		}
	})

	t.Run("stalled subscriber", func(t *testing.T) {
		stalled, err := net.Dial("tcp", tb.Addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = stalled.Close() })
		if tcp, ok := stalled.(*net.TCPConn); ok {
			_ = tcp.SetReadBuffer(4096)
		}
		con := []byte{0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 60, 0, 1, 's'}
		sub := []byte{0x82, 8, 0, 1, 0, 3, 's', '/', 't', 0}
		if _, err := stalled.Write(append(con, sub...)); err != nil {
			t.Fatal(err)
		}
		ack := make([]byte, 4+5)
		_ = stalled.SetReadDeadline(time.Now().Add(waitTimeout))
		if _, err := readFull(stalled, ack); err != nil || ack[0] != 0x20 || ack[4] != 0x90 {
			t.Fatalf("stalled subscriber: CONNACK/SUBACK % x, %v", ack, err)
		}
		pub := connectV3(t, tb.Addr, "slow-pub", nil)
		payload := strings.Repeat("x", 32<<10)
		for i := 0; ; i++ {
			if i == 1000 {
				t.Fatalf("no OnDropped for the stalled subscriber after %d messages of %d bytes (%d dropped by the broker)", i, len(payload), tb.Stats().Dropped)
			}
			pub.pub("s/t", 0, false, payload)
			for _, e := range rec.seen() {
				if e.Client == "s" {
					if e.Topic != "s/t" || e.Why == "" {
						t.Errorf("dropped: %v, want s/t with a reason", e)
					}
					return
				}
			}
		}
	})
}

// OnStarted and OnStopped bracket the server's life; OnSysTick is told of
// each $SYS round.
func TestE2EHookLifecycle(t *testing.T) {
	t.Parallel()
	rec := newRecorder(core.EventStarted, core.EventStopped, core.EventSysTick)
	cfg := withHooks(rec)
	cfg.manualShutdown = true
	cfg.opts.SysInterval = 20 * time.Millisecond
	tb := hookBroker(t, cfg)
	rec.expectKind(t, "started", "")
	rec.expectKind(t, "systick", "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tb.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	rec.expectKind(t, "stopped", "")
	for _, e := range rec.seen() {
		if e.Kind != "systick" {
			t.Errorf("after OnStopped: %v", e)
		}
	}
}

// OnStarted and OnStopped bracket the server's life (hook.go): no hook is
// still being told of anything when OnStopped comes, nor after Shutdown
// returns. A session expiring while the server shuts down is the case
// here: its timer's callback is already running the hooks.
func TestE2EHookStoppedIsLast(t *testing.T) {
	t.Parallel()
	h := &slowExpiryHook{ch: make(chan string, 8)}
	cfg := withHooks(h)
	cfg.manualShutdown = true
	tb := hookBroker(t, cfg)
	cp := v5Connect("expiring")
	cp.Properties.SessionExpiryInterval = u32(1)
	c := connectV5(t, tb.Addr, cp)
	c.disconnect(0)
	if got := waitFor(t, h.ch, waitTimeout, "the session to expire"); got != "expired: begin" {
		t.Fatalf("got %q, want the expiry", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tb.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	var order []string
	for range 2 {
		order = append(order, waitFor(t, h.ch, waitTimeout, "the hook's last events"))
	}
	if order[0] != "expired: end" {
		t.Errorf("after Shutdown returned, the hook was told %q then %q: OnStopped came (and Shutdown returned) while OnSession(expired) was still running", order[0], order[1])
	}
}

// Hooks get a context carrying the connection's lifetime (hook.go: "Each
// call gets a context carrying the connection's lifetime"): the context a
// hook got while the client was connected is done once it has gone, so
// work a hook started for it (a remote lookup, say) is cancelled.
func TestE2EHookContextLifetime(t *testing.T) {
	t.Parallel()
	ch := &ctxHook{}
	rec := newRecorder(core.EventDisconnected)
	tb := hookBroker(t, withHooks(ch, rec))
	c := connectV5(t, tb.Addr, v5Connect("ctx-client"))
	c.pub("ctx/x", 1, "x")
	ctx := ch.ctx("ctx-client")
	if ctx == nil {
		t.Fatal("AuthorizePublish not called")
	}
	if ctx.Err() != nil {
		t.Fatalf("context already done while the client is connected: %v", ctx.Err())
	}
	c.disconnect(0)
	rec.expectKind(t, "disconnected", "ctx-client")
	select {
	case <-ctx.Done():
	case <-time.After(waitTimeout):
		t.Errorf("the context of a hook call for ctx-client is not done %v after the connection ended", waitTimeout)
	}
}

// Hooks can be added and removed while clients publish: the per-event
// lists are swapped atomically and every message is still acknowledged
// and delivered exactly once (run with -race).
func TestE2EHookAddRemoveWhilePublishing(t *testing.T) {
	t.Parallel()
	tb := hookBroker(t, withHooks())
	sub := connectV5(t, tb.Addr, v5Connect("ar-sub"))
	sub.sub("ar/#", 1)
	pub := connectV5(t, tb.Addr, v5Connect("ar-pub"))
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			id := fmt.Sprintf("toggle.%d", i%3)
			if !tb.RemoveHook(id) {
				if err := tb.AddHook(&passHook{id: id, events: core.Events(core.EventPublish, core.EventAuthorizePublish, core.EventPublished, core.EventDeliver)}, i%5); err != nil {
					t.Error(err)
					return
				}
			}
			_ = tb.Hooks()
		}
	}()
	const n = 300
	for i := range n {
		pub.pub("ar/x", 1, fmt.Sprint(i))
	}
	close(stop)
	<-done
	pub.pub("ar/end", 1, "end")
	got := sub.until("ar/end")
	if len(got) != n {
		t.Fatalf("subscriber got %d messages, want %d", len(got), n)
	}
	for i, m := range got {
		if string(m.Payload) != fmt.Sprint(i) {
			t.Fatalf("message %d has payload %q, want %q (in order)", i, m.Payload, fmt.Sprint(i))
		}
	}
}

// ---------------------------------------------------------------------------
// Enhanced authentication (MQTT 5 section 4.12)
// ---------------------------------------------------------------------------

// An EnhancedAuth hook runs a challenge/response exchange: CONNECT with an
// Authentication Method and Data, AUTH 0x18 from the server with the
// challenge [MQTT-4.12.0-2], AUTH 0x18 from the client with the response
// [MQTT-4.12.0-3], and CONNACK 0x00 with the same Authentication Method
// [MQTT-4.12.0-5]; a wrong response is refused with CONNACK >= 0x80 and
// the connection closed [MQTT-4.12.0-4]; a method nobody supports gets
// CONNACK 0x8C Bad authentication method [MQTT-4.12.0-1];
// re-authentication is AUTH 0x19 [MQTT-4.12.1-1] answered by AUTH 0x00 on
// success (section 4.12.1) and DISCONNECT on failure [MQTT-4.12.1-2].
func TestE2EHookEnhancedAuth(t *testing.T) {
	t.Parallel()

	// connectChallenge runs the two rounds and returns the CONNACK.
	connectChallenge := func(t *testing.T, addr, id, response string) (*authClient, *packets.Packet) {
		t.Helper()
		c := dialAuth(t, addr)
		c.connect(id, challengeMethod, []byte("hello"))
		a := c.recv(packets.Auth)
		if a.ReasonCode != packets.ContinueAuthentication || a.Properties.AuthMethod != challengeMethod || string(a.Properties.AuthData) != "nonce-1" {
			t.Fatalf("got %s method %q data %q, want AUTH 0x18 %s \"nonce-1\" (section 4.12)", biDescribe(a), a.Properties.AuthMethod, a.Properties.AuthData, challengeMethod)
		}
		c.auth(packets.ContinueAuthentication, challengeMethod, []byte(response))
		return c, c.recv(packets.Connack)
	}

	t.Run("two rounds", func(t *testing.T) {
		t.Parallel()
		h := &challengeHook{}
		tb := hookBroker(t, withHooks(h))
		c, ack := connectChallenge(t, tb.Addr, "ea", "response-1")
		if ack.ReasonCode != packets.Success {
			t.Fatalf("CONNACK %s, want 0x00", biDescribe(ack))
		}
		if ack.Properties.AuthMethod != challengeMethod || string(ack.Properties.AuthData) != "welcome" {
			t.Errorf("CONNACK Authentication Method %q Data %q, want %q \"welcome\" [MQTT-4.12.0-5] (v5 section 3.2.2.3.17)", ack.Properties.AuthMethod, ack.Properties.AuthData, challengeMethod)
		}
		c.send(&packets.Packet{Type: packets.Pingreq})
		c.recv(packets.Pingresp)
		want := []string{challengeMethod + " reauth=false hello", challengeMethod + " reauth=false response-1"}
		if got := h.calls(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("hook steps %q, want %q", got, want)
		}
	})

	t.Run("wrong response refused", func(t *testing.T) {
		t.Parallel()
		tb := hookBroker(t, withHooks(&challengeHook{}))
		c, ack := connectChallenge(t, tb.Addr, "ea-wrong", "response-99")
		if ack.ReasonCode != packets.NotAuthorized {
			t.Errorf("CONNACK %s, want 0x87 from the hook's Deny", biDescribe(ack))
		}
		if err := c.r.ReadPacket(new(packets.Packet)); err == nil {
			t.Errorf("connection still open after a refusing CONNACK [MQTT-4.12.0-4][MQTT-3.2.2-7]")
		}
	})

	for _, tc := range []struct {
		name  string
		hooks []core.Hook
	}{
		{"unknown method, no hook", nil},
		{"unknown method, hook says Next", []core.Hook{&challengeHook{}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tb := hookBroker(t, withHooks(tc.hooks...))
			c := dialAuth(t, tb.Addr)
			c.connect("ea-unknown", "NO-SUCH-METHOD", []byte("x"))
			if ack := c.recv(packets.Connack); ack.ReasonCode != packets.BadAuthenticationMethod {
				t.Errorf("CONNACK %s, want 0x8C Bad authentication method [MQTT-4.12.0-1]", biDescribe(ack))
			}
		})
	}

	t.Run("re-authentication", func(t *testing.T) {
		t.Parallel()
		h := &challengeHook{}
		tb := hookBroker(t, withHooks(h))
		c, ack := connectChallenge(t, tb.Addr, "ea-re", "response-1")
		if ack.ReasonCode != packets.Success {
			t.Fatalf("CONNACK %s", biDescribe(ack))
		}
		// One round: AUTH 0x19 answered by AUTH 0x00.
		c.auth(packets.ReAuthenticate, challengeMethod, []byte("reauth-token"))
		a := c.recv(packets.Auth)
		if a.ReasonCode != packets.Success || a.Properties.AuthMethod != challengeMethod || string(a.Properties.AuthData) != "reauth-ok" {
			t.Errorf("got %s method %q data %q, want AUTH 0x00 %s \"reauth-ok\" (section 4.12.1)", biDescribe(a), a.Properties.AuthMethod, a.Properties.AuthData, challengeMethod)
		}
		// Two rounds: AUTH 0x19, AUTH 0x18 challenge, AUTH 0x18 response,
		// AUTH 0x00.
		c.auth(packets.ReAuthenticate, challengeMethod, []byte("hello"))
		a = c.recv(packets.Auth)
		if a.ReasonCode != packets.ContinueAuthentication || string(a.Properties.AuthData) != "nonce-2" {
			t.Fatalf("got %s data %q, want AUTH 0x18 \"nonce-2\"", biDescribe(a), a.Properties.AuthData)
		}
		c.auth(packets.ContinueAuthentication, challengeMethod, []byte("response-2"))
		if a = c.recv(packets.Auth); a.ReasonCode != packets.Success {
			t.Errorf("got %s, want AUTH 0x00", biDescribe(a))
		}
		c.send(&packets.Packet{Type: packets.Pingreq})
		c.recv(packets.Pingresp)
		calls := h.calls()
		for _, s := range calls[2:] {
			if !strings.Contains(s, "reauth=true") {
				t.Errorf("re-authentication step %q not marked Reauth", s)
			}
		}
	})

	t.Run("failed re-authentication disconnects", func(t *testing.T) {
		t.Parallel()
		h := &challengeHook{}
		tb := hookBroker(t, withHooks(h))
		c, ack := connectChallenge(t, tb.Addr, "ea-refail", "response-1")
		if ack.ReasonCode != packets.Success {
			t.Fatalf("CONNACK %s", biDescribe(ack))
		}
		h.mu.Lock()
		h.refuse = true
		h.mu.Unlock()
		c.auth(packets.ReAuthenticate, challengeMethod, []byte("reauth-token"))
		if d := c.recv(packets.Disconnect); d.ReasonCode != packets.NotAuthorized {
			t.Errorf("got %s, want DISCONNECT 0x87 from the hook's Deny [MQTT-4.12.1-2]", biDescribe(d))
		}
	})

	// Enhanced authentication that succeeds authenticates the client:
	// with allow_anonymous false and no Authenticate hook, the client is
	// connected (issue 4: the default applies "when all say next"; the
	// EnhancedAuth hook said Allow).
	t.Run("enhanced auth authenticates with allow_anonymous false", func(t *testing.T) {
		t.Parallel()
		tb := hookBroker(t, hkOpts{hooks: []hookPrio{{h: &challengeHook{}}}})
		_, ack := connectChallenge(t, tb.Addr, "ea-strict", "response-1")
		if ack.ReasonCode != packets.Success {
			t.Errorf("CONNACK %s after the EnhancedAuth hook allowed the client, want 0x00", biDescribe(ack))
		}
	})
}
