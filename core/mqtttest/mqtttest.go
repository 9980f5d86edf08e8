// Package mqtttest is a pipelining MQTT 5 client for benchmarks and tests
// of the broker and its hooks: it writes packets into a buffer and reads
// them back packet by packet, so a test controls every byte and no client
// library sits between the load and the broker. It also holds what the
// broker's tests share around it: Serve, Until and Eventually.
package mqtttest

import (
	"bufio"
	"net"
	"strconv"
	"sync"
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
	cp := &packets.Packet{Type: packets.Connect}
	cp.Connect.ClientID, cp.Connect.CleanStart, cp.Connect.KeepAlive = id, true, 60
	if user != "" {
		cp.Connect.Username, cp.Connect.UsernameFlag = user, true
	}
	return DialConnect(tb, addr, cp)
}

// DialConnect connects to addr and sends connect (as MQTT 5, protocol name
// MQTT), for CONNECTs Dial does not make: a session expiry, say.
func DialConnect(tb testing.TB, addr string, connect *packets.Packet) *Conn {
	tb.Helper()
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = nc.Close() })
	c := &Conn{conn: nc, br: bufio.NewReaderSize(nc, 64<<10), w: bufio.NewWriterSize(nc, 64<<10), buf: bytebufferpool.Get()}
	c.r = packets.NewReader(c.br, 1<<20)
	c.r.SetVersion(packets.Version5)
	connect.Type = packets.Connect
	connect.Connect.ProtocolName = "MQTT"
	c.Send(connect)
	c.Flush()
	if p := c.Read(10 * time.Second); p == nil || p.Type != packets.Connack || p.ReasonCode != packets.Success {
		tb.Fatalf("mqtttest: connect %s refused or failed", connect.Connect.ClientID)
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

// FanInQoS0 is a QoS 0 fan-in load for b: publishers clients (as user,
// "" for none) send b.N messages of 64 bytes to topic, as fast as they
// can, to one subscriber of filter. It reports the subscriber's msg/s
// and the share of messages that never arrived (%lost); the timer covers
// the first publish to the last delivery.
func FanInQoS0(b *testing.B, addr, user, topic, filter string, publishers int) {
	b.Helper()
	sub := Dial(b, addr, "sub", user)
	sub.Subscribe(b, filter, 0)
	pubs := make([]*Conn, publishers)
	for i := range pubs {
		pubs[i] = Dial(b, addr, "pub"+strconv.Itoa(i), user)
	}
	total := b.N - b.N%publishers
	got := make(chan int, 1)
	var last time.Time
	go func() {
		n := 0
		for n < total && sub.Read(2*time.Second) != nil {
			n++
		}
		last = time.Now()
		got <- n
	}()
	payload := make([]byte, 64)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for _, pc := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := packets.Packet{Type: packets.Publish, Topic: topic, Payload: payload}
			for range total / publishers {
				pc.Send(&p)
			}
			pc.Flush()
		}()
	}
	wg.Wait()
	n := <-got
	b.StopTimer()
	b.ReportMetric(float64(n)/last.Sub(start).Seconds(), "msg/s")
	b.ReportMetric(100*float64(total-n)/float64(total), "%lost")
}
