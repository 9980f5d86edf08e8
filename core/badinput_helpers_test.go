package core_test

// Helpers shared by badinput_test.go, goroutine_test.go and
// mosquitto_test.go: raw packet builders (packets are built by hand, byte by
// byte, so that malformed ones can be built too and so that the tests do not
// depend on the encoder they are testing), a minimal raw MQTT client that
// reads with packets.Reader, and a "witness" client that proves the broker
// still serves others.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vanemq/vanemq/core/packets"
)

// biIO bounds every read and write the helpers do that is expected to
// succeed.
const biIO = 5 * time.Second

// ---- raw encoding -------------------------------------------------------

// biVarint encodes n as an MQTT variable byte integer.
func biVarint(n int) []byte {
	var b []byte
	for {
		c := byte(n % 128)
		n /= 128
		if n > 0 {
			c |= 0x80
		}
		b = append(b, c)
		if n == 0 {
			return b
		}
	}
}

func biU16(v uint16) []byte { return []byte{byte(v >> 8), byte(v)} }

func biU32(v uint32) []byte { return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)} }

// biStr encodes s (taken as raw bytes, so invalid UTF-8 can be sent) with a
// two-byte length.
func biStr(s string) []byte { return append(biU16(uint16(len(s))), s...) }

// biPkt builds a packet: first byte, remaining length, then parts.
func biPkt(first byte, parts ...[]byte) []byte {
	body := bytes.Join(parts, nil)
	out := append([]byte{first}, biVarint(len(body))...)
	return append(out, body...)
}

// biProps builds a v5 property block: its length, then the properties.
func biProps(props ...[]byte) []byte {
	body := bytes.Join(props, nil)
	return append(biVarint(len(body)), body...)
}

func biPropByte(id, v byte) []byte       { return []byte{id, v} }
func biPropU16(id byte, v uint16) []byte { return append([]byte{id}, biU16(v)...) }
func biPropU32(id byte, v uint32) []byte { return append([]byte{id}, biU32(v)...) }
func biPropVarint(id byte, v int) []byte { return append([]byte{id}, biVarint(v)...) }
func biPropStr(id byte, s string) []byte { return append([]byte{id}, biStr(s)...) }
func biPropUser(k, v string) []byte      { return append(append([]byte{0x26}, biStr(k)...), biStr(v)...) }
func biJoin(parts ...[]byte) []byte      { return bytes.Join(parts, nil) }

// biProtocolName is the CONNECT protocol name of version.
func biProtocolName(version byte) string {
	if version == packets.Version31 {
		return "MQIsdp"
	}
	return "MQTT"
}

// biPropsIf is the property block for a v5 packet, nothing for 3.x.
func biPropsIf(version byte, props ...[]byte) []byte {
	if version != packets.Version5 {
		return nil
	}
	return biProps(props...)
}

// biConnectRaw builds a CONNECT from its parts. props is the encoded
// property block (with its length) or nil for none (3.x).
func biConnectRaw(name string, level, flags byte, keepAlive uint16, props []byte, payload ...[]byte) []byte {
	parts := [][]byte{biStr(name), {level, flags}, biU16(keepAlive), props}
	return biPkt(0x10, append(parts, payload...)...)
}

// biConnect builds a well-formed CONNECT of version (3, 4 or 5) with clean
// start and the given v5 properties.
func biConnect(version byte, clientID string, keepAlive uint16, props ...[]byte) []byte {
	return biConnectRaw(biProtocolName(version), version, 0x02, keepAlive, biPropsIf(version, props...), biStr(clientID))
}

// biPublish builds a PUBLISH (no DUP, no retain) of version.
func biPublish(version, qos byte, topic string, id uint16, payload string, props ...[]byte) []byte {
	return biPublishFlags(version, qos<<1, topic, id, payload, props...)
}

// biPublishFlags builds a PUBLISH with the given fixed-header flags (DUP
// 0x08, QoS 0x06, retain 0x01); a packet identifier is written when the QoS
// bits are non-zero.
func biPublishFlags(version, flags byte, topic string, id uint16, payload string, props ...[]byte) []byte {
	parts := [][]byte{biStr(topic)}
	if flags&0x06 != 0 {
		parts = append(parts, biU16(id))
	}
	parts = append(parts, biPropsIf(version, props...), []byte(payload))
	return biPkt(0x30|flags, parts...)
}

// biSubscribe builds a SUBSCRIBE of one filter with its options byte.
func biSubscribe(version byte, id uint16, filter string, opts byte, props ...[]byte) []byte {
	return biPkt(0x82, biU16(id), biPropsIf(version, props...), biStr(filter), []byte{opts})
}

// biAck builds PUBACK (0x40), PUBREC (0x50), PUBREL (0x62) or PUBCOMP (0x70)
// with success: the short form, valid in every version.
func biAck(first byte, id uint16) []byte { return biPkt(first, biU16(id)) }

// biDisconnect builds a DISCONNECT: empty for 3.x, with reason code and
// properties for v5.
func biDisconnect(version, code byte, props ...[]byte) []byte {
	if version != packets.Version5 {
		return []byte{0xE0, 0x00}
	}
	return biPkt(0xE0, []byte{code}, biProps(props...))
}

// ---- raw client ---------------------------------------------------------

// biClient is one raw TCP connection to the broker. Outbound packets are
// raw bytes; inbound ones are decoded with packets.Reader.
type biClient struct {
	t       testing.TB
	name    string
	conn    net.Conn
	r       *packets.Reader
	version byte
}

// biDial opens a connection; it is closed when the test ends.
func biDial(t testing.TB, addr, name string) *biClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, biIO)
	if err != nil {
		t.Fatalf("%s: dial %s: %v", name, addr, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &biClient{t: t, name: name, conn: conn, r: packets.NewReader(bufio.NewReader(conn), 0)}
}

// setVersion sets the protocol version inbound packets are decoded with.
func (c *biClient) setVersion(v byte) {
	c.version = v
	c.r.SetVersion(v)
}

// write sends parts in one Write.
func (c *biClient) write(parts ...[]byte) error {
	_ = c.conn.SetWriteDeadline(time.Now().Add(biIO))
	_, err := c.conn.Write(bytes.Join(parts, nil))
	return err
}

func (c *biClient) mustWrite(parts ...[]byte) {
	c.t.Helper()
	if err := c.write(parts...); err != nil {
		c.t.Fatalf("%s: write: %v", c.name, err)
	}
}

// read decodes the next packet, waiting at most d.
func (c *biClient) read(d time.Duration) (*packets.Packet, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(d))
	p := new(packets.Packet)
	if err := c.r.ReadPacket(p); err != nil {
		return nil, err
	}
	return p, nil
}

// expect reads the next packet and fails unless it has type typ.
func (c *biClient) expect(d time.Duration, typ packets.Type) *packets.Packet {
	c.t.Helper()
	p, err := c.read(d)
	if err != nil {
		c.t.Fatalf("%s: waiting for %s: %s", c.name, typ, biErrString(err, d))
	}
	if p.Type != typ {
		c.t.Fatalf("%s: got %s, want %s", c.name, biDescribe(p), typ)
	}
	return p
}

// expectClosed fails unless the broker closes the connection (EOF or reset)
// within d, without sending anything more.
func (c *biClient) expectClosed(d time.Duration) {
	c.t.Helper()
	p, err := c.read(d)
	switch {
	case err == nil:
		c.t.Fatalf("%s: got %s, want the connection closed by the broker", c.name, biDescribe(p))
	case !biIsClosed(err):
		c.t.Fatalf("%s: want the connection closed by the broker: %s", c.name, biErrString(err, d))
	}
}

// drainUntilClosed reads and discards packets until the connection closes,
// failing if it is still open after d.
func (c *biClient) drainUntilClosed(d time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for {
		_, err := c.read(time.Until(deadline))
		if err == nil {
			continue
		}
		if !biIsClosed(err) {
			c.t.Fatalf("%s: want the connection closed by the broker: %s", c.name, biErrString(err, d))
		}
		return
	}
}

// biIsClosed reports whether err means the peer closed the connection.
func biIsClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func biIsTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

func biErrString(err error, d time.Duration) string {
	switch {
	case biIsTimeout(err):
		return fmt.Sprintf("nothing received and the connection still open after %v", d)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "the broker closed the connection in the middle of a packet"
	}
	return err.Error()
}

// biDescribe names a packet for failure messages.
func biDescribe(p *packets.Packet) string {
	var b strings.Builder
	b.WriteString(p.Type.String())
	switch p.Type {
	case packets.Connack, packets.Disconnect, packets.Auth:
		fmt.Fprintf(&b, " 0x%02X", byte(p.ReasonCode))
	case packets.Suback, packets.Unsuback:
		fmt.Fprintf(&b, " id %d codes", p.PacketID)
		for _, rc := range p.ReasonCodes {
			fmt.Fprintf(&b, " 0x%02X", byte(rc))
		}
	case packets.Publish:
		fmt.Fprintf(&b, " %q qos %d id %d payload %q", p.Topic, p.QoS, p.PacketID, p.Payload)
	case packets.Puback, packets.Pubrec, packets.Pubrel, packets.Pubcomp:
		fmt.Fprintf(&b, " id %d 0x%02X", p.PacketID, byte(p.ReasonCode))
	}
	if p.Properties.ReasonString != "" {
		fmt.Fprintf(&b, " (reason string %q)", p.Properties.ReasonString)
	}
	return b.String()
}

// biConnectOK connects a client of version with clean start and fails
// unless the broker accepts it.
func biConnectOK(t testing.TB, addr string, version byte, clientID string, props ...[]byte) *biClient {
	t.Helper()
	c := biDial(t, addr, clientID)
	c.mustWrite(biConnect(version, clientID, 0, props...))
	c.setVersion(version)
	p := c.expect(biIO, packets.Connack)
	if p.ReasonCode != packets.Success {
		t.Fatalf("%s: CONNECT (version %d) refused: %s", clientID, version, biDescribe(p))
	}
	return c
}

// disconnect sends DISCONNECT and waits for the broker to close.
func (c *biClient) disconnect() {
	c.t.Helper()
	c.mustWrite(biDisconnect(c.version, 0))
	c.expectClosed(biIO)
}

// biID turns a test-case name into a client identifier / topic level.
func biID(name string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, name)
}

// ---- witness ------------------------------------------------------------

// biWitness is a client connected before the misbehaving one, subscribed to
// its own topic; roundTrip proves the broker still routes its messages.
type biWitness struct {
	c     *biClient
	topic string
	next  uint16
}

func biNewWitness(t testing.TB, addr string, version byte, name string) *biWitness {
	t.Helper()
	id := "witness-" + biID(name)
	w := &biWitness{c: biConnectOK(t, addr, version, id), topic: "witness/" + biID(name)}
	w.c.name = "witness (" + id + ")"
	w.c.mustWrite(biSubscribe(version, 1, w.topic, 1))
	p := w.c.expect(biIO, packets.Suback)
	if len(p.ReasonCodes) != 1 || p.ReasonCodes[0] != packets.GrantedQoS1 {
		t.Fatalf("%s: SUBSCRIBE %q QoS 1: got %s, want granted QoS 1", w.c.name, w.topic, biDescribe(p))
	}
	return w
}

// roundTrip publishes a QoS 1 message to the witness's own subscription
// and waits for both the PUBACK and the delivery.
func (w *biWitness) roundTrip(t testing.TB) {
	t.Helper()
	w.next++
	id := w.next + 100
	payload := fmt.Sprintf("still alive %d", id)
	w.c.mustWrite(biPublish(w.c.version, 1, w.topic, id, payload))
	acked, delivered := false, false
	deadline := time.Now().Add(biIO)
	for !acked || !delivered {
		p, err := w.c.read(time.Until(deadline))
		if err != nil {
			t.Fatalf("%s: publish/subscribe round trip after the bad client (acked %v, delivered %v): %s",
				w.c.name, acked, delivered, biErrString(err, biIO))
		}
		switch {
		case p.Type == packets.Puback && p.PacketID == id:
			acked = true
		case p.Type == packets.Publish && p.Topic == w.topic && string(p.Payload) == payload:
			delivered = true
			if p.QoS == 1 {
				w.c.mustWrite(biAck(0x40, p.PacketID))
			}
		default:
			t.Fatalf("%s: round trip: unexpected %s", w.c.name, biDescribe(p))
		}
	}
}
