package core_test

// A raw MQTT 5 client for what paho hides: packets it acknowledges by
// itself (resent PUBLISH with DUP, PUBREL), repeated properties it folds into
// one (several Subscription Identifiers), and a client that never sends
// PINGREQ. Outgoing packets are encoded with paho.golang's packets package;
// incoming PUBLISH packets are parsed here so every property is seen as sent.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
)

// MQTT control packet types.
const (
	ptConnack    = 2
	ptPublish    = 3
	ptPuback     = 4
	ptPubrec     = 5
	ptPubrel     = 6
	ptPubcomp    = 7
	ptSuback     = 9
	ptDisconnect = 14
)

type rawClient struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

// rawPacket is one packet as read from the wire.
type rawPacket struct {
	Type  byte
	Flags byte
	Body  []byte
	full  []byte // fixed header and body
}

func dialRaw(t testing.TB, addr string) *rawClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &rawClient{t: t, conn: conn, r: bufio.NewReader(conn)}
}

// on returns a view of c that reports failures to t (for subtests).
func (c *rawClient) on(t testing.TB) *rawClient {
	cc := *c
	cc.t = t
	return &cc
}

func (c *rawClient) write(w io.WriterTo) {
	c.t.Helper()
	_ = c.conn.SetWriteDeadline(time.Now().Add(waitTimeout))
	if _, err := w.WriteTo(c.conn); err != nil {
		c.t.Fatalf("raw write: %v", err)
	}
}

// read reads one packet, waiting at most timeout.
func (c *rawClient) read(timeout time.Duration) (rawPacket, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(timeout))
	var p rawPacket
	h, err := c.r.ReadByte()
	if err != nil {
		return p, err
	}
	var (
		n     int
		mult  = 1
		lenBs []byte
	)
	for i := 0; ; i++ {
		b, err := c.r.ReadByte()
		if err != nil {
			return p, err
		}
		lenBs = append(lenBs, b)
		n += int(b&0x7f) * mult
		if b&0x80 == 0 {
			break
		}
		if i == 3 {
			return p, errors.New("malformed remaining length")
		}
		mult *= 128
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return p, err
	}
	p.Type, p.Flags, p.Body = h>>4, h&0x0f, body
	p.full = append(append([]byte{h}, lenBs...), body...)
	return p, nil
}

// expect reads the next packet and fails the test unless it has type typ.
func (c *rawClient) expect(typ byte) rawPacket {
	c.t.Helper()
	p, err := c.read(waitTimeout)
	if err != nil {
		c.t.Fatalf("raw: waiting for packet type %d: %v", typ, err)
	}
	if p.Type != typ {
		c.t.Fatalf("raw: got packet type %d (flags %x), want %d", p.Type, p.Flags, typ)
	}
	return p
}

// paho decodes p with paho.golang's codec (for everything but PUBLISH,
// whose repeated properties it cannot represent).
func (p rawPacket) paho(t testing.TB) *packets.ControlPacket {
	t.Helper()
	cp, err := packets.ReadPacket(bytes.NewReader(p.full))
	if err != nil {
		t.Fatalf("decoding packet type %d: %v", p.Type, err)
	}
	return cp
}

// connect sends a v5 CONNECT (MQTT, version 5) and returns the CONNACK.
func (c *rawClient) connect(cp *packets.Connect) *packets.Connack {
	c.t.Helper()
	cp.ProtocolName, cp.ProtocolVersion = "MQTT", 5
	if cp.Properties == nil {
		cp.Properties = &packets.Properties{}
	}
	c.write(cp)
	ca := c.expect(ptConnack).paho(c.t).Content.(*packets.Connack)
	if ca.ReasonCode != 0 {
		c.t.Fatalf("raw: CONNACK reason 0x%02x", ca.ReasonCode)
	}
	return ca
}

// subscribe sends one SUBSCRIBE (with a Subscription Identifier when subID
// > 0) and returns the SUBACK reason codes.
func (c *rawClient) subscribe(id uint16, subID int, opts ...packets.SubOptions) []byte {
	c.t.Helper()
	s := &packets.Subscribe{PacketID: id, Subscriptions: opts, Properties: &packets.Properties{}}
	if subID > 0 {
		s.Properties.SubscriptionIdentifier = &subID
	}
	c.write(s)
	sa := c.expect(ptSuback).paho(c.t).Content.(*packets.Suback)
	if sa.PacketID != id {
		c.t.Fatalf("raw: SUBACK id %d, want %d [MQTT-3.8.4-2]", sa.PacketID, id)
	}
	return sa.Reasons
}

func (c *rawClient) puback(id uint16) {
	c.t.Helper()
	c.write(&packets.Puback{PacketID: id, Properties: &packets.Properties{}})
}

func (c *rawClient) pubrec(id uint16) {
	c.t.Helper()
	c.write(&packets.Pubrec{PacketID: id, Properties: &packets.Properties{}})
}

func (c *rawClient) pubcomp(id uint16) {
	c.t.Helper()
	c.write(&packets.Pubcomp{PacketID: id, Properties: &packets.Properties{}})
}

// nextPublish reads the next packet, which must be a PUBLISH, and parses it.
func (c *rawClient) nextPublish() rawPublish {
	c.t.Helper()
	p := c.expect(ptPublish)
	pub, err := parsePublish(p)
	if err != nil {
		c.t.Fatalf("raw: parsing PUBLISH: %v", err)
	}
	return pub
}

// expectClosed waits for the broker to close the connection, returning
// the packets it sent first.
func (c *rawClient) expectClosed(timeout time.Duration) ([]rawPacket, error) {
	deadline := time.Now().Add(timeout)
	var got []rawPacket
	for {
		p, err := c.read(time.Until(deadline))
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return got, fmt.Errorf("connection still open after %v", timeout)
			}
			return got, nil // EOF or reset: closed
		}
		got = append(got, p)
	}
}

// rawPublish is a parsed MQTT 5 PUBLISH.
type rawPublish struct {
	Topic    string
	ID       uint16
	QoS      byte
	Dup      bool
	Retain   bool
	Payload  []byte
	SubIDs   []uint32
	Alias    uint16
	HasAlias bool
	Expiry   *uint32
	User     [][2]string
}

func (p rawPublish) String() string {
	return fmt.Sprintf("PUBLISH %q id=%d qos=%d dup=%v retain=%v subids=%v payload=%q", p.Topic, p.ID, p.QoS, p.Dup, p.Retain, p.SubIDs, p.Payload)
}

// parsePublish parses a v5 PUBLISH, keeping every property instance.
func parsePublish(p rawPacket) (rawPublish, error) {
	var out rawPublish
	out.QoS = (p.Flags >> 1) & 3
	out.Dup = p.Flags&0x08 != 0
	out.Retain = p.Flags&0x01 != 0
	b := p.Body
	topic, b, err := readStr(b)
	if err != nil {
		return out, fmt.Errorf("topic: %w", err)
	}
	out.Topic = topic
	if out.QoS > 0 {
		if len(b) < 2 {
			return out, errors.New("short packet identifier")
		}
		out.ID = binary.BigEndian.Uint16(b)
		b = b[2:]
	}
	plen, b, err := readVarint(b)
	if err != nil {
		return out, fmt.Errorf("property length: %w", err)
	}
	if int(plen) > len(b) {
		return out, errors.New("property length beyond packet")
	}
	props, payload := b[:plen], b[plen:]
	out.Payload = payload
	for len(props) > 0 {
		id := props[0]
		props = props[1:]
		switch id {
		case 0x01: // payload format indicator
			if len(props) < 1 {
				return out, errors.New("short byte property")
			}
			props = props[1:]
		case 0x02: // message expiry interval
			if len(props) < 4 {
				return out, errors.New("short message expiry")
			}
			v := binary.BigEndian.Uint32(props)
			out.Expiry = &v
			props = props[4:]
		case 0x03, 0x08: // content type, response topic
			if _, props, err = readStr(props); err != nil {
				return out, err
			}
		case 0x09: // correlation data
			if _, props, err = readStr(props); err != nil {
				return out, err
			}
		case 0x0B: // subscription identifier (may repeat)
			var v uint32
			if v, props, err = readVarint(props); err != nil {
				return out, err
			}
			out.SubIDs = append(out.SubIDs, v)
		case 0x23: // topic alias
			if len(props) < 2 {
				return out, errors.New("short topic alias")
			}
			out.Alias, out.HasAlias = binary.BigEndian.Uint16(props), true
			props = props[2:]
		case 0x26: // user property
			var k, v string
			if k, props, err = readStr(props); err != nil {
				return out, err
			}
			if v, props, err = readStr(props); err != nil {
				return out, err
			}
			out.User = append(out.User, [2]string{k, v})
		default:
			return out, fmt.Errorf("property 0x%02x is not valid in PUBLISH", id)
		}
	}
	return out, nil
}

func readStr(b []byte) (string, []byte, error) {
	if len(b) < 2 {
		return "", b, errors.New("short string length")
	}
	n := int(binary.BigEndian.Uint16(b))
	if len(b) < 2+n {
		return "", b, errors.New("short string")
	}
	return string(b[2 : 2+n]), b[2+n:], nil
}

func readVarint(b []byte) (uint32, []byte, error) {
	var v uint32
	for i := 0; i < 4; i++ {
		if i >= len(b) {
			return 0, b, errors.New("short variable byte integer")
		}
		v |= uint32(b[i]&0x7f) << (7 * i)
		if b[i]&0x80 == 0 {
			return v, b[i+1:], nil
		}
	}
	return 0, b, errors.New("variable byte integer longer than 4 bytes")
}
