// Package mqtttest is a pipelining MQTT 5 client for benchmarks and tests
// of the broker and its hooks: it writes packets into a buffer and reads
// them back packet by packet, so a test controls every byte and no client
// library sits between the load and the broker.
package mqtttest

import (
	"bufio"
	"net"
	"testing"
	"time"

	"github.com/valyala/bytebufferpool"

	"github.com/vanemq/vanemq/core/packets"
)

// Conn is a raw MQTT 5 connection.
type Conn struct {
	conn net.Conn
	br   *bufio.Reader
	r    *packets.Reader
	w    *bufio.Writer
	buf  *bytebufferpool.ByteBuffer
}

// Dial connects to addr and completes CONNECT/CONNACK as client id with
// username user ("" for none) and a clean start; the test fails when the
// broker refuses. The connection closes when the test ends.
func Dial(tb testing.TB, addr, id, user string) *Conn {
	tb.Helper()
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = nc.Close() })
	c := &Conn{conn: nc, br: bufio.NewReaderSize(nc, 64<<10), w: bufio.NewWriterSize(nc, 64<<10), buf: bytebufferpool.Get()}
	c.r = packets.NewReader(c.br, 1<<20)
	c.r.SetVersion(packets.Version5)
	cp := &packets.Packet{Type: packets.Connect}
	cp.Connect.ProtocolName, cp.Connect.ClientID, cp.Connect.CleanStart, cp.Connect.KeepAlive = "MQTT", id, true, 60
	if user != "" {
		cp.Connect.Username, cp.Connect.UsernameFlag = user, true
	}
	c.Send(cp)
	c.Flush()
	if p := c.Read(10 * time.Second); p == nil || p.Type != packets.Connack || p.ReasonCode != packets.Success {
		tb.Fatalf("mqtttest: connect %s refused or failed", id)
	}
	return c
}

// Send encodes p into the write buffer (as MQTT 5).
func (c *Conn) Send(p *packets.Packet) {
	p.ProtocolVersion = packets.Version5
	c.buf.Reset()
	if err := p.Encode(c.buf); err != nil {
		panic(err)
	}
	_, _ = c.w.Write(c.buf.B)
}

// Flush writes what is buffered.
func (c *Conn) Flush() { _ = c.w.Flush() }

// Read returns the next packet, or nil when none comes within d or the
// connection fails.
func (c *Conn) Read(d time.Duration) *packets.Packet {
	_ = c.conn.SetReadDeadline(time.Now().Add(d))
	var p packets.Packet
	if err := c.r.ReadPacket(&p); err != nil {
		return nil
	}
	return &p
}

// Buffered is how many received bytes wait to be read.
func (c *Conn) Buffered() int { return c.br.Buffered() }

// Subscribe subscribes to filter at qos and waits for the SUBACK.
func (c *Conn) Subscribe(tb testing.TB, filter string, qos byte) {
	tb.Helper()
	c.Send(&packets.Packet{Type: packets.Subscribe, PacketID: 1, Subscriptions: []packets.Subscription{{Filter: filter, QoS: qos}}})
	c.Flush()
	if p := c.Read(10 * time.Second); p == nil || p.Type != packets.Suback {
		tb.Fatal("mqtttest: no SUBACK")
	}
}
