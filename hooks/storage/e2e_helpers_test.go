package storage

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/valyala/bytebufferpool"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/packets"
	"github.com/vanemq/vanemq/listeners/tcp"
)

// waitTimeout bounds every wait for something that should happen.
const waitTimeout = 10 * time.Second

// broker is a server with a pebble store in a directory that outlives it,
// so a test can stop it and start another on the same state.
type broker struct {
	t    *testing.T
	cfg  Config
	srv  *core.Server
	st   *Store
	addr string
}

// newBroker starts a broker on a fresh data directory.
func newBroker(t *testing.T, cfg Config) *broker {
	t.Helper()
	if cfg.Path == "" {
		cfg.Path = filepath.Join(t.TempDir(), "data")
	}
	b := &broker{t: t, cfg: cfg}
	b.start()
	t.Cleanup(b.stop)
	return b
}

// start starts a server on the broker's store (a new port each time).
func (b *broker) start() {
	b.t.Helper()
	st, err := Open(context.Background(), b.cfg)
	if err != nil {
		b.t.Fatalf("Open: %v", err)
	}
	srv, err := core.New(core.Options{Logger: slog.New(slog.DiscardHandler), SysInterval: -1, AllowAnonymous: true})
	if err != nil {
		b.t.Fatal(err)
	}
	if err := srv.AddHook(st, 0); err != nil {
		b.t.Fatal(err)
	}
	l := tcp.New("tcp", "127.0.0.1:0")
	if err := srv.AddListener(l); err != nil {
		b.t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		_ = st.Close()
		b.t.Fatalf("Start: %v", err)
	}
	b.srv, b.st, b.addr = srv, st, l.Address()
}

// stop shuts the server down and closes the store.
func (b *broker) stop() {
	if b.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := b.srv.Shutdown(ctx); err != nil {
		b.t.Errorf("Shutdown: %v", err)
	}
	if err := b.st.Close(); err != nil {
		b.t.Errorf("Close: %v", err)
	}
	b.srv, b.st = nil, nil
}

// settle waits until the broker has handled every client's going: a
// client's DISCONNECT is only read by the broker some time after the
// client sent it, and a shutdown closes connections without reading on.
func (b *broker) settle() {
	b.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for b.srv.Stats().ClientsConnected != 0 {
		if time.Now().After(deadline) {
			b.t.Fatalf("%d clients still connected after %s", b.srv.Stats().ClientsConnected, waitTimeout)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, bounded by the deadline
	}
}

// restart stops the broker and starts it again on the same store.
func (b *broker) restart() {
	b.t.Helper()
	b.stop()
	b.start()
}

// raw is an MQTT client driven packet by packet, for flows a library
// client completes on its own.
type raw struct {
	t       *testing.T
	conn    net.Conn
	r       *packets.Reader
	version byte
}

// dialRaw connects and sends CONNECT; it returns the client and CONNACK.
func dialRaw(t *testing.T, addr string, connect *packets.Packet) (*raw, *packets.Packet) {
	t.Helper()
	conn, err := dialTCP(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	c := &raw{t: t, conn: conn, r: newReader(conn, connect.ProtocolVersion), version: connect.ProtocolVersion}
	connect.Type = packets.Connect
	if connect.Connect.ProtocolName == "" {
		connect.Connect.ProtocolName = "MQTT"
	}
	c.send(connect)
	ack := c.read()
	if ack.Type != packets.Connack {
		t.Fatalf("first packet from the broker is %s, want CONNACK", ack.Type)
	}
	return c, ack
}

func dialTCP(addr string) (net.Conn, error) { return net.DialTimeout("tcp", addr, waitTimeout) }

// newReader reads packets of a version from conn.
func newReader(conn net.Conn, version byte) *packets.Reader {
	r := packets.NewReader(bufio.NewReader(conn), 1<<20)
	r.SetVersion(version)
	return r
}

// v5Connect is a CONNECT for a persistent v5 session.
func v5Connect(id string, clean bool, expiry uint32) *packets.Packet {
	p := &packets.Packet{ProtocolVersion: packets.Version5}
	p.Connect.ClientID, p.Connect.CleanStart, p.Connect.KeepAlive = id, clean, 60
	if expiry > 0 {
		p.Properties.SessionExpiry = expiry
		p.Properties.Set(packets.PropSessionExpiry)
	}
	return p
}

func (c *raw) send(p *packets.Packet) {
	c.t.Helper()
	p.ProtocolVersion = c.version
	buf := bytebufferpool.Get()
	defer bytebufferpool.Put(buf)
	if err := p.Encode(buf); err != nil {
		c.t.Fatalf("encode %s: %v", p.Type, err)
	}
	if _, err := c.conn.Write(buf.B); err != nil {
		c.t.Fatalf("write %s: %v", p.Type, err)
	}
}

// read returns the next packet, failing the test after waitTimeout.
func (c *raw) read() *packets.Packet {
	c.t.Helper()
	p, err := c.tryRead(waitTimeout)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return p
}

func (c *raw) tryRead(d time.Duration) (*packets.Packet, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(d))
	p := new(packets.Packet)
	if err := c.r.ReadPacket(p); err != nil {
		return nil, err
	}
	return p, nil
}

// expect reads the next packet and checks its type.
func (c *raw) expect(typ packets.Type) *packets.Packet {
	c.t.Helper()
	p := c.read()
	if p.Type != typ {
		c.t.Fatalf("got %s (%+v), want %s", p.Type, p, typ)
	}
	return p
}

// subscribe subscribes to filter at qos and waits for the SUBACK.
func (c *raw) subscribe(filter string, qos byte) {
	c.t.Helper()
	c.send(&packets.Packet{Type: packets.Subscribe, PacketID: 1, Subscriptions: []packets.Subscription{{Filter: filter, QoS: qos}}})
	if a := c.expect(packets.Suback); len(a.ReasonCodes) != 1 || a.ReasonCodes[0] != packets.ReasonCode(qos) {
		c.t.Fatalf("SUBACK %v, want granted QoS %d", a.ReasonCodes, qos)
	}
}

// publish sends a PUBLISH and, for QoS 1, waits for its PUBACK.
func (c *raw) publish(topic string, qos byte, id uint16, retain bool, payload string) {
	c.t.Helper()
	c.send(&packets.Packet{Type: packets.Publish, Topic: topic, QoS: qos, PacketID: id, Retain: retain, Payload: []byte(payload)})
	if qos == 1 {
		if a := c.expect(packets.Puback); a.PacketID != id || a.ReasonCode.IsError() {
			c.t.Fatalf("PUBACK %d %s, want %d success", a.PacketID, a.ReasonCode, id)
		}
	}
}

// disconnect sends DISCONNECT and closes the connection.
func (c *raw) disconnect() {
	c.send(&packets.Packet{Type: packets.Disconnect})
	_ = c.conn.Close()
}

// noPacket checks that nothing arrives for a short while.
func (c *raw) noPacket(d time.Duration) {
	c.t.Helper()
	if p, err := c.tryRead(d); err == nil {
		c.t.Fatalf("unexpected %s: %+v", p.Type, p)
	}
}

func (c *raw) String() string { return fmt.Sprintf("raw client on %s", c.conn.LocalAddr()) }
