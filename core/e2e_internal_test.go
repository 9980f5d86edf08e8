package core_test

import (
	"bufio"
	"context"
	"net"
	"testing"
	"time"

	"github.com/valyala/bytebufferpool"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/mqtttest"
	"github.com/vanemq/vanemq/core/packets"
)

// internalConn is the broker's side of a net.Pipe, marked as the broker's
// own connection.
type internalConn struct {
	net.Conn
	policy core.ClientPolicy
}

func (c internalConn) InternalPolicy() core.ClientPolicy { return c.policy }

// pipeClient is a raw MQTT client (version v) on nc: the other side of a
// pipe, or a TCP connection.
type pipeClient struct {
	t  *testing.T
	nc net.Conn
	r  *packets.Reader
	v  byte
}

// newPipeClient is a raw client of version v on nc.
func newPipeClient(t *testing.T, nc net.Conn, v byte) *pipeClient {
	r := packets.NewReader(bufio.NewReader(nc), 1<<20)
	r.SetVersion(v)
	return &pipeClient{t: t, nc: nc, r: r, v: v}
}

// servePipe hands the broker an internal connection with policy and
// returns the client's side.
func servePipe(t *testing.T, srv *core.Server, policy core.ClientPolicy) *pipeClient {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { _ = b.Close() })
	if err := srv.ServeConn(internalConn{Conn: a, policy: policy}, "internal"); err != nil {
		t.Fatal(err)
	}
	return newPipeClient(t, b, packets.Version5)
}

func (c *pipeClient) send(p *packets.Packet) {
	c.t.Helper()
	p.ProtocolVersion = c.v
	buf := bytebufferpool.Get()
	defer bytebufferpool.Put(buf)
	if err := p.Encode(buf); err != nil {
		c.t.Fatal(err)
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(waitTimeout))
	if _, err := c.nc.Write(buf.B); err != nil {
		c.t.Fatalf("write %s: %v", p.Type, err)
	}
}

func (c *pipeClient) read() *packets.Packet {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(waitTimeout))
	var p packets.Packet
	if err := c.r.ReadPacket(&p); err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return &p
}

func (c *pipeClient) connect(id string, expiry uint32) *packets.Packet {
	c.t.Helper()
	p := &packets.Packet{Type: packets.Connect}
	p.Connect.ProtocolName, p.Connect.ClientID, p.Connect.KeepAlive = "MQTT", id, 60
	if expiry > 0 {
		p.Properties.SessionExpiry = expiry
		p.Properties.Set(packets.PropSessionExpiry)
	}
	c.send(p)
	ack := c.read()
	if ack.Type != packets.Connack {
		c.t.Fatalf("got %s, want CONNACK", ack.Type)
	}
	return ack
}

// denyAuthHook refuses every client's authentication.
type denyAuthHook struct{}

func (denyAuthHook) ID() string            { return "test.deny" }
func (denyAuthHook) Events() core.EventSet { return core.Events(core.EventAuthenticate) }
func (denyAuthHook) Authenticate(context.Context, *core.ClientInfo, *core.Credentials) core.Verdict {
	return core.Deny(packets.NotAuthorized, "nobody")
}

// An internal connection (core.InternalConn, served by ServeConn) is the
// broker's own: the authentication and authorization hooks, which refuse
// everyone here, do not apply to it, and it gets its connection's policy,
// a session expiry beyond Options.SessionExpiryMax included.
func TestInternalConnection(t *testing.T) {
	tb := startBroker(t, core.Options{SessionExpiryMax: 60})
	for _, h := range []core.Hook{denyAuthHook{}, &aclHook{denyPub: "t/", denySub: "t/"}} {
		if err := tb.AddHook(h, 10); err != nil {
			t.Fatal(err)
		}
	}
	// A network client is refused, as the hooks say.
	if _, err := dialV5(t, tb.Addr, v5Connect("net"), nil); err == nil {
		t.Fatal("a network client connected past a hook that refuses all")
	}

	id := core.InternalIDPrefix + "bridge/test"
	policy := core.ClientPolicy{MaxQueuedMessages: 3, SessionExpiryMax: 0xFFFFFFFF}
	c := servePipe(t, tb.Server, policy)
	ack := c.connect(id, 0xFFFFFFFF)
	if ack.ReasonCode != packets.Success {
		t.Fatalf("internal CONNECT: CONNACK %s", ack.ReasonCode)
	}
	// A CONNACK Session Expiry Interval would mean the server uses
	// another value than the one asked for (v5 §3.2.2.3.2): the policy
	// allows it whole.
	if ack.Properties.Has(packets.PropSessionExpiry) {
		t.Errorf("session expiry cut to %d, want the policy's 0xFFFFFFFF kept", ack.Properties.SessionExpiry)
	}
	c.send(&packets.Packet{Type: packets.Subscribe, PacketID: 1, Subscriptions: []packets.Subscription{{Filter: "t/#", QoS: 1}}})
	if p := c.read(); p.Type != packets.Suback || p.ReasonCodes[0] != packets.GrantedQoS1 {
		t.Fatalf("SUBSCRIBE past the ACL: %s %v, want SUBACK granting QoS 1", p.Type, p.ReasonCodes)
	}
	c.send(&packets.Packet{Type: packets.Publish, Topic: "t/1", QoS: 1, PacketID: 2, Payload: []byte("x")})
	var gotAck, gotMsg bool
	for !gotAck || !gotMsg { // the PUBACK and the delivery, in either order
		switch p := c.read(); p.Type {
		case packets.Puback:
			if p.ReasonCode >= 0x80 {
				t.Fatalf("PUBLISH past the ACL: PUBACK %s", p.ReasonCode)
			}
			gotAck = true
		case packets.Publish:
			// Its own message: no-local was not asked for [MQTT-3.8.3-3].
			c.send(&packets.Packet{Type: packets.Puback, PacketID: p.PacketID})
			gotMsg = true
		default:
			t.Fatalf("unexpected %s", p.Type)
		}
	}

	// The policy's queue bound: 5 messages for the offline session, 3
	// kept, 2 dropped.
	c.send(&packets.Packet{Type: packets.Disconnect})
	mqtttest.Eventually(t, waitTimeout, "internal client offline", func() bool {
		st, ok := tb.Client(id)
		return ok && !st.Connected
	})
	for range 5 {
		if err := tb.Publish(core.InlineMessage{Topic: "t/q", QoS: 1, Payload: []byte("q")}); err != nil {
			t.Fatal(err)
		}
	}
	st, _ := tb.Client(id)
	if st.Queued != 3 || st.Dropped != 2 {
		t.Errorf("offline internal session: %d queued, %d dropped; want 3 and 2 (policy MaxQueuedMessages 3)", st.Queued, st.Dropped)
	}
	if st.ExpiryInterval != 0xFFFFFFFF {
		t.Errorf("session expiry %d, want 0xFFFFFFFF", st.ExpiryInterval)
	}
}

// An internal connection must use an ID under core.InternalIDPrefix, and
// ServeConn refuses once the server has stopped.
func TestInternalConnectionID(t *testing.T) {
	tb := startBroker(t, core.Options{})
	c := servePipe(t, tb.Server, core.ClientPolicy{})
	if ack := c.connect("plain-id", 0); ack.ReasonCode != packets.ClientIdentifierNotValid {
		t.Fatalf("internal CONNECT without the prefix: CONNACK %s, want 0x85", ack.ReasonCode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := tb.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	a, b := net.Pipe()
	defer b.Close()
	if err := tb.ServeConn(a, "internal"); err == nil {
		t.Fatal("ServeConn after Shutdown: no error")
	}
}
