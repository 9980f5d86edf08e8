package core_test

// Protocol-violation tests: each case sends raw bytes over a real TCP
// connection and checks the broker's exact answer, that the broker then
// closes the connection, and that a client connected before the bad one
// keeps working. Specification references: "v5" is MQTT 5.0 (OASIS
// Standard), "3.1.1" is MQTT 3.1.1 (OASIS Standard).

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/packets"
)

// biWant is an accepted answer from the broker: a packet type and its
// reason code (the first SUBACK code for SUBACK), or the zero value for "the
// broker closes the connection without sending anything".
type biWant struct {
	typ  packets.Type
	code packets.ReasonCode
}

func (w biWant) String() string {
	if w == (biWant{}) {
		return "the connection closed without any packet"
	}
	return fmt.Sprintf("%s 0x%02X", w.typ, byte(w.code))
}

var biClosed = []biWant{{}}

func biDisc(code packets.ReasonCode) []biWant { return []biWant{{packets.Disconnect, code}} }

func biConnack(code packets.ReasonCode) []biWant { return []biWant{{packets.Connack, code}} }

func biSuback(code packets.ReasonCode) []biWant { return []biWant{{packets.Suback, code}} }

// biCase is one misbehaving client.
type biCase struct {
	name string
	spec string // the specification statement the case checks
	opts core.Options

	// version, when non-zero, is the protocol version of a well-formed
	// CONNECT the client sends first (and whose CONNACK must be a
	// success), with keepAlive and connProps (v5). Zero: send is the first
	// thing on the connection.
	version   byte
	keepAlive uint16
	connProps [][]byte
	// rv is the version to decode the answer with when version is 0
	// (0 means the 3.1.1 rules).
	rv byte

	send      [][]byte       // written in one Write
	halfClose bool           // shut down the write side after sending
	before    []packets.Type // packets the broker sends before its answer
	want      []biWant       // accepted answers; the first is the expected one
	stayOpen  bool           // the connection must stay usable after the answer

	// minWait and maxWait bound when the answer must come, from the send.
	minWait, maxWait time.Duration
}

// biRun runs one case on a broker of its own.
func biRun(t *testing.T, tc biCase) {
	t.Helper()
	b := startBroker(t, tc.opts)
	id := biID(tc.name)

	wv := tc.version
	if wv == 0 {
		wv = tc.rv
	}
	if wv != packets.Version5 {
		wv = packets.Version311
	}
	w := biNewWitness(t, b.Addr, wv, tc.name)

	c := biDial(t, b.Addr, "bad client")
	if tc.version != 0 {
		c.mustWrite(biConnect(tc.version, "bad-"+id, tc.keepAlive, tc.connProps...))
		c.setVersion(tc.version)
		if p := c.expect(biIO, packets.Connack); p.ReasonCode != packets.Success {
			t.Fatalf("bad client: CONNECT refused: %s", biDescribe(p))
		}
	} else {
		c.setVersion(tc.rv)
	}

	start := time.Now()
	if len(tc.send) > 0 {
		if err := c.write(tc.send...); err != nil {
			t.Fatalf("bad client: writing the bad input: %v", err)
		}
	}
	if tc.halfClose {
		if err := c.conn.(*net.TCPConn).CloseWrite(); err != nil {
			t.Fatalf("bad client: CloseWrite: %v", err)
		}
	}
	for _, typ := range tc.before {
		c.expect(biIO, typ)
	}

	wait := tc.maxWait
	if wait == 0 {
		wait = biIO
	}
	p, err := c.read(wait)
	elapsed := time.Since(start)
	var got biWant
	desc := "the connection closed without any packet"
	switch {
	case err == nil:
		got = biWant{typ: p.Type, code: p.ReasonCode}
		if p.Type == packets.Suback && len(p.ReasonCodes) > 0 {
			got.code = p.ReasonCodes[0]
		}
		desc = biDescribe(p)
	case biIsClosed(err):
	default:
		t.Fatalf("%s\nbad client: want %s: %s", tc.spec, biWantString(tc.want), biErrString(err, wait))
	}
	if !slices.Contains(tc.want, got) {
		t.Errorf("%s\nbad client: got  %s\n            want %s", tc.spec, desc, biWantString(tc.want))
	}
	if tc.minWait > 0 && elapsed < tc.minWait {
		t.Errorf("%s\nbad client: answered after %v, want no earlier than %v", tc.spec, elapsed.Round(time.Millisecond), tc.minWait)
	}

	switch {
	case tc.stayOpen:
		if err != nil {
			t.Fatalf("%s\nbad client: the connection must stay open", tc.spec)
		}
		c.mustWrite([]byte{0xC0, 0x00}) // PINGREQ
		c.expect(biIO, packets.Pingresp)
	case err == nil:
		c.expectClosed(biIO)
	}

	w.roundTrip(t)
	// The broker still accepts new connections.
	biConnectOK(t, b.Addr, packets.Version5, "after-"+id).disconnect()
	if tc.stayOpen {
		c.disconnect()
	}
}

func biWantString(ws []biWant) string {
	s := make([]string, len(ws))
	for i, w := range ws {
		s[i] = w.String()
	}
	return strings.Join(s, ", or ")
}

func biRunAll(t *testing.T, cases []biCase) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			biRun(t, tc)
		})
	}
}

// validConnect311 is a well-formed 3.1.1 CONNECT, to truncate.
var validConnect311 = biConnect(packets.Version311, "truncated", 0)

// TestBadInputBeforeConnect covers what the broker gets before (or
// instead of) a valid CONNECT.
func TestBadInputBeforeConnect(t *testing.T) {
	const v3, v5 = packets.Version311, packets.Version5
	willV5 := func(flags byte) []byte {
		return biConnectRaw("MQTT", 5, flags, 0, biProps(), biStr("will-client"), biProps(), biStr("will/topic"), biStr("gone"))
	}
	biRunAll(t, []biCase{
		{
			name: "garbage first packet",
			spec: "[MQTT-3.1.0-1] the first packet must be CONNECT; v5 [MQTT-3.1.4-1] close the connection if it is not a valid CONNECT (no CONNACK: the version is unknown)",
			send: [][]byte{[]byte("GET / HTTP/1.1\r\nHost: example\r\n\r\n")},
			want: biClosed,
		},
		{
			name: "reserved packet type 0 first",
			spec: "v5 §2.1.2 packet type 0 is reserved (Malformed Packet); [MQTT-3.1.0-1]",
			send: [][]byte{{0x00, 0x00}},
			want: biClosed,
		},
		{
			name: "PUBLISH before CONNECT",
			spec: "[MQTT-3.1.0-1] the first packet sent from the Client to the Server MUST be a CONNECT packet",
			send: [][]byte{biPublish(v3, 0, "a/b", 0, "early")},
			want: biClosed,
		},
		{
			name: "PINGREQ before CONNECT",
			spec: "[MQTT-3.1.0-1] the first packet sent from the Client to the Server MUST be a CONNECT packet",
			send: [][]byte{{0xC0, 0x00}},
			want: biClosed,
		},
		{
			name: "remaining length of 5 bytes before CONNECT",
			spec: "v5 §1.5.5 / §2.1.4 a Variable Byte Integer is at most four bytes (Malformed Packet); nothing is known of the version, so no CONNACK",
			send: [][]byte{{0x10, 0xFF, 0xFF, 0xFF, 0xFF}},
			want: biClosed,
		},
		{
			name: "oversized CONNECT",
			spec: "v5 §3.1.4 / [MQTT-3.1.4-1] a CONNECT over the server's maximum packet size is refused before its body (and version) is read: close",
			opts: core.Options{MaxPacketSize: 1024},
			send: [][]byte{append([]byte{0x10}, biVarint(2000)...)},
			want: biClosed,
		},
		{
			name:      "truncated CONNECT then half-close",
			spec:      "a CONNECT cut short by the client's FIN: the broker closes without a panic or an answer",
			send:      [][]byte{validConnect311[:10]},
			halfClose: true,
			want:      biClosed,
		},
		{
			name: "bad protocol name 3.1.1",
			spec: "3.1.1 [MQTT-3.1.2-1] incorrect protocol name: the Server MAY disconnect (vanemq answers CONNACK 0x01 first, as for an unsupported level)",
			send: [][]byte{biConnectRaw("MQTX", 4, 0x02, 0, nil, biStr("badname"))},
			rv:   v3,
			want: biConnack(packets.V3UnacceptableProtocolVersion),
		},
		{
			name: "bad protocol name with level 5",
			spec: "v5 [MQTT-3.1.2-1] incorrect protocol name: the Server MAY send CONNACK 0x84 (Unsupported Protocol Version) and then MUST close",
			send: [][]byte{biConnectRaw("MQTX", 5, 0x02, 0, biProps(), biStr("badname"))},
			rv:   v5,
			want: biConnack(packets.UnsupportedProtocolVersion),
		},
		{
			name: "protocol level 6",
			spec: "3.1.1 [MQTT-3.1.2-2] unsupported protocol level: CONNACK return code 0x01 then disconnect (a level that is not 5 gets the 3.1.1 form; v5 [MQTT-3.1.2-2] allows no v5 CONNACK to a non-5 client)",
			send: [][]byte{biConnectRaw("MQTT", 6, 0x02, 0, nil, biStr("level6"))},
			rv:   v3,
			want: biConnack(packets.V3UnacceptableProtocolVersion),
		},
		{
			name: "bridge bit on level 5",
			spec: "3.1.1 [MQTT-3.1.2-2] level 0x85: the bridge bit (0x80) is Mosquitto's for MQTT 3 only, so this is an unsupported level: CONNACK 0x01 then disconnect",
			send: [][]byte{biConnectRaw("MQTT", 0x85, 0x02, 0, nil, biStr("bridge5"))},
			rv:   v3,
			want: biConnack(packets.V3UnacceptableProtocolVersion),
		},
		{
			name: "protocol name MQTT with level 3",
			spec: "3.1.1 [MQTT-3.1.2-1]/[MQTT-3.1.2-2] name and level disagree (3.1 is \"MQIsdp\"): CONNACK 0x01 then disconnect",
			send: [][]byte{biConnectRaw("MQTT", 3, 0x02, 0, nil, biStr("level3"))},
			rv:   v3,
			want: biConnack(packets.V3UnacceptableProtocolVersion),
		},
		{
			name: "empty client id with clean session 0 on 3.1.1",
			spec: "3.1.1 [MQTT-3.1.3-8] zero-byte ClientId with CleanSession 0: CONNACK return code 0x02 (Identifier rejected), then close",
			send: [][]byte{biConnectRaw("MQTT", 4, 0x00, 0, nil, biStr(""))},
			rv:   v3,
			want: biConnack(packets.V3IdentifierRejected),
		},
		{
			name: "empty client id on 3.1",
			spec: "MQTT 3.1 §3.1 the Client Identifier must be 1 to 23 characters, else CONNACK return code 2 (Identifier rejected)",
			send: [][]byte{biConnectRaw("MQIsdp", 3, 0x02, 0, nil, biStr(""))},
			rv:   packets.Version31,
			want: biConnack(packets.V3IdentifierRejected),
		},
		{
			name: "client id too long v5",
			spec: "v5 [MQTT-3.1.3-8] a rejected ClientID (longer than Options.MaxClientIDLen 64) gets CONNACK 0x85 (Client Identifier not valid), then close",
			opts: core.Options{MaxClientIDLen: 64},
			send: [][]byte{biConnect(v5, strings.Repeat("x", 65), 0)},
			rv:   v5,
			want: biConnack(packets.ClientIdentifierNotValid),
		},
		{
			name: "client id too long 3.1.1",
			spec: "3.1.1 [MQTT-3.1.3-9] a rejected ClientId (longer than Options.MaxClientIDLen 64) gets CONNACK return code 0x02 (Identifier rejected), then close",
			opts: core.Options{MaxClientIDLen: 64},
			send: [][]byte{biConnect(v3, strings.Repeat("x", 65), 0)},
			rv:   v3,
			want: biConnack(packets.V3IdentifierRejected),
		},
		{
			name: "client id reserved for internal connections v5",
			spec: "v5 [MQTT-3.1.3-8] a rejected ClientID (beginning with core.InternalIDPrefix, the broker's own bridges') gets CONNACK 0x85 (Client Identifier not valid), then close",
			send: [][]byte{biConnect(v5, core.InternalIDPrefix+"bridge/cloud", 0)},
			rv:   v5,
			want: biConnack(packets.ClientIdentifierNotValid),
		},
		{
			name: "client id reserved for internal connections 3.1.1",
			spec: "3.1.1 [MQTT-3.1.3-9] a rejected ClientId (beginning with core.InternalIDPrefix) gets CONNACK return code 0x02 (Identifier rejected), then close",
			send: [][]byte{biConnect(v3, core.InternalIDPrefix+"bridge/cloud", 0)},
			rv:   v3,
			want: biConnack(packets.V3IdentifierRejected),
		},
		{
			name: "reserved CONNECT flag 3.1.1",
			spec: "3.1.1 [MQTT-3.1.2-3] the Server MUST validate that the reserved flag is zero and disconnect the Client if it is not",
			send: [][]byte{biConnectRaw("MQTT", 4, 0x03, 0, nil, biStr("reserved"))},
			rv:   v3,
			want: biClosed,
		},
		{
			name: "reserved CONNECT flag v5",
			spec: "v5 [MQTT-3.1.2-3] reserved flag not 0 is a Malformed Packet; [MQTT-3.1.4-1] CONNACK 0x81 then close",
			send: [][]byte{biConnectRaw("MQTT", 5, 0x03, 0, biProps(), biStr("reserved"))},
			rv:   v5,
			want: biConnack(packets.MalformedPacket),
		},
		{
			name: "will QoS 3 v5",
			spec: "v5 [MQTT-3.1.2-12] Will QoS 3 is a Malformed Packet: CONNACK 0x81 then close",
			send: [][]byte{willV5(0x02 | 0x04 | 0x18)},
			rv:   v5,
			want: biConnack(packets.MalformedPacket),
		},
		{
			name: "will QoS without will flag 3.1.1",
			spec: "3.1.1 [MQTT-3.1.2-13] if the Will Flag is 0 the Will QoS MUST be 0: malformed, disconnect",
			send: [][]byte{biConnectRaw("MQTT", 4, 0x02|0x08, 0, nil, biStr("willqos"))},
			rv:   v3,
			want: biClosed,
		},
		{
			name: "invalid UTF-8 client id v5",
			spec: "v5 [MQTT-1.5.4-1] ill-formed UTF-8 is a Malformed Packet: CONNACK 0x81 then close",
			send: [][]byte{biConnect(v5, "bad\xff", 0)},
			rv:   v5,
			want: biConnack(packets.MalformedPacket),
		},
		{
			name: "invalid UTF-8 client id 3.1.1",
			spec: "3.1.1 [MQTT-1.5.3-1] ill-formed UTF-8: the receiver MUST close the Network Connection",
			send: [][]byte{biConnect(v3, "bad\xff", 0)},
			rv:   v3,
			want: biClosed,
		},
		{
			name: "duplicate property in CONNECT",
			spec: "v5 §3.1.2.11.2 it is a Protocol Error to include the Session Expiry Interval more than once: CONNACK 0x82",
			send: [][]byte{biConnect(v5, "dupprop", 0, biPropU32(0x11, 10), biPropU32(0x11, 20))},
			rv:   v5,
			want: biConnack(packets.ProtocolError),
		},
		{
			name: "receive maximum 0 in CONNECT",
			spec: "v5 §3.1.2.11.3 it is a Protocol Error for the Receive Maximum to have the value 0: CONNACK 0x82",
			send: [][]byte{biConnect(v5, "recvmax0", 0, biPropU16(0x21, 0))},
			rv:   v5,
			want: biConnack(packets.ProtocolError),
		},
		{
			name: "maximum packet size 0 in CONNECT",
			spec: "v5 §3.1.2.11.4 it is a Protocol Error for the Maximum Packet Size to have the value 0: CONNACK 0x82",
			send: [][]byte{biConnect(v5, "maxpkt0", 0, biPropU32(0x27, 0))},
			rv:   v5,
			want: biConnack(packets.ProtocolError),
		},
		{
			name: "topic alias property in CONNECT",
			spec: "v5 §2.2.2.2 a property identifier not valid for the packet type is a Malformed Packet: CONNACK 0x81",
			send: [][]byte{biConnect(v5, "aliasinconnect", 0, biPropU16(0x23, 1))},
			rv:   v5,
			want: biConnack(packets.MalformedPacket),
		},
		{
			name:    "no CONNECT: connect timeout",
			spec:    "v5 §3.1.4 item 1: no CONNECT within a reasonable time (Options.ConnectTimeout 300ms): the Server SHOULD close the connection",
			opts:    core.Options{ConnectTimeout: 300 * time.Millisecond},
			want:    biClosed,
			minWait: 250 * time.Millisecond,
			maxWait: 2 * time.Second,
		},
		{
			name:    "partial CONNECT: connect timeout",
			spec:    "v5 §3.1.4 item 1: a CONNECT that never completes is closed after the connect timeout (300ms)",
			opts:    core.Options{ConnectTimeout: 300 * time.Millisecond},
			send:    [][]byte{validConnect311[:5]},
			want:    biClosed,
			minWait: 250 * time.Millisecond,
			maxWait: 2 * time.Second,
		},
	})
}

// TestBadInputAfterConnect covers violations by a connected client.
func TestBadInputAfterConnect(t *testing.T) {
	const v3, v5 = packets.Version311, packets.Version5
	pub5 := func(qos byte, topic string, id uint16, props ...[]byte) []byte {
		return biPublish(v5, qos, topic, id, "payload", props...)
	}
	pub3 := func(qos byte, topic string, id uint16) []byte {
		return biPublish(v3, qos, topic, id, "payload")
	}
	biRunAll(t, []biCase{
		// Second CONNECT.
		{
			name: "second CONNECT v5", version: v5,
			spec: "v5 [MQTT-3.1.0-2] a second CONNECT is a Protocol Error: DISCONNECT 0x82 and close",
			send: [][]byte{biConnect(v5, "again", 0)},
			want: biDisc(packets.ProtocolError),
		},
		{
			name: "second CONNECT 3.1.1", version: v3,
			spec: "3.1.1 [MQTT-3.1.0-2] a second CONNECT is a protocol violation: disconnect",
			send: [][]byte{biConnect(v3, "again", 0)},
			want: biClosed,
		},
		// Sizes and framing.
		{
			name: "oversized packet v5", version: v5,
			spec: "v5 §3.2.2.3.6 / [MQTT-3.2.2-15] a packet over the Maximum Packet Size (1024) the Server announced: DISCONNECT 0x95 (Packet too large)",
			opts: core.Options{MaxPacketSize: 1024},
			send: [][]byte{append([]byte{0x30}, biVarint(2000)...)},
			want: biDisc(packets.PacketTooLarge),
		},
		{
			name: "oversized packet 3.1.1", version: v3,
			spec: "a packet over the broker's maximum packet size (1024) on 3.1.1: disconnect",
			opts: core.Options{MaxPacketSize: 1024},
			send: [][]byte{append([]byte{0x30}, biVarint(2000)...)},
			want: biClosed,
		},
		{
			name: "remaining length of 5 bytes v5", version: v5,
			spec: "v5 §1.5.5 / §2.1.4 the Remaining Length is at most four bytes: Malformed Packet, DISCONNECT 0x81",
			send: [][]byte{{0x30, 0xFF, 0xFF, 0xFF, 0xFF}},
			want: biDisc(packets.MalformedPacket),
		},
		{
			name: "remaining length of 5 bytes 3.1.1", version: v3,
			spec: "3.1.1 §2.2.3 the Remaining Length is at most four bytes: malformed, disconnect",
			send: [][]byte{{0x30, 0xFF, 0xFF, 0xFF, 0xFF}},
			want: biClosed,
		},
		{
			name: "truncated PUBLISH then half-close v5", version: v5,
			spec:      "a PUBLISH cut short by the client's FIN: the broker closes, no panic",
			send:      [][]byte{pub5(1, "trunc/topic", 7)[:8]},
			halfClose: true,
			want:      biClosed,
		},
		{
			name: "truncated PUBLISH then half-close 3.1.1", version: v3,
			spec:      "a PUBLISH cut short by the client's FIN: the broker closes, no panic",
			send:      [][]byte{pub3(1, "trunc/topic", 7)[:8]},
			halfClose: true,
			want:      biClosed,
		},
		{
			name: "reserved packet type 0 v5", version: v5,
			spec: "v5 §2.1.2 packet type 0 is reserved: Malformed Packet, DISCONNECT 0x81",
			send: [][]byte{{0x00, 0x00}},
			want: biDisc(packets.MalformedPacket),
		},
		{
			name: "PINGREQ with a body v5", version: v5,
			spec: "v5 §3.12 PINGREQ has no variable header or payload (remaining length 0): Malformed Packet, DISCONNECT 0x81",
			send: [][]byte{{0xC0, 0x01, 0x00}},
			want: biDisc(packets.MalformedPacket),
		},
		{
			name: "PUBREL with wrong fixed-header flags v5", version: v5,
			spec: "v5 [MQTT-3.6.1-1] PUBREL fixed-header bits must be 0010, else Malformed Packet: DISCONNECT 0x81",
			send: [][]byte{{0x60, 0x02, 0x00, 0x01}},
			want: biDisc(packets.MalformedPacket),
		},
		{
			name: "PINGRESP from a client v5", version: v5,
			spec: "v5 §2.1.2 PINGRESP flows Server to Client only: a client sending it is a Protocol Error, DISCONNECT 0x82",
			send: [][]byte{{0xD0, 0x00}},
			want: biDisc(packets.ProtocolError),
		},
		{
			name: "AUTH without authentication method v5", version: v5,
			spec: "v5 §4.12 it is a Protocol Error for the Client to send AUTH if it did not include an Authentication Method in CONNECT: DISCONNECT 0x82",
			send: [][]byte{{0xF0, 0x00}},
			want: biDisc(packets.ProtocolError),
		},
		{
			name: "AUTH on 3.1.1", version: v3,
			spec: "3.1.1 §2.2.1 packet type 15 is reserved: disconnect",
			send: [][]byte{{0xF0, 0x00}},
			want: biClosed,
		},
		// Topic names.
		{
			name: "invalid UTF-8 in topic v5", version: v5,
			spec: "v5 [MQTT-1.5.4-1] ill-formed UTF-8 in a topic is a Malformed Packet: DISCONNECT 0x81",
			send: [][]byte{pub5(0, "a/\xff", 0)},
			want: biDisc(packets.MalformedPacket),
		},
		{
			name: "UTF-16 surrogate in topic v5", version: v5,
			spec: "v5 [MQTT-1.5.4-1] UTF-8 must not encode the surrogates U+D800..U+DFFF: Malformed Packet, DISCONNECT 0x81",
			send: [][]byte{pub5(0, "a/\xed\xa0\x80", 0)},
			want: biDisc(packets.MalformedPacket),
		},
		{
			name: "invalid UTF-8 in topic 3.1.1", version: v3,
			spec: "3.1.1 [MQTT-1.5.3-1] ill-formed UTF-8: the receiver MUST close the Network Connection",
			send: [][]byte{pub3(0, "a/\xff", 0)},
			want: biClosed,
		},
		{
			name: "U+0000 in topic v5", version: v5,
			spec: "v5 [MQTT-1.5.4-2] a UTF-8 string MUST NOT include U+0000: Malformed Packet, DISCONNECT 0x81",
			send: [][]byte{pub5(0, "a/\x00b", 0)},
			want: biDisc(packets.MalformedPacket),
		},
		{
			name: "U+0000 in topic 3.1.1", version: v3,
			spec: "3.1.1 [MQTT-1.5.3-2] a UTF-8 string MUST NOT include U+0000: close",
			send: [][]byte{pub3(0, "a/\x00b", 0)},
			want: biClosed,
		},
		{
			name: "wildcard + in PUBLISH topic v5", version: v5,
			spec: "v5 [MQTT-3.3.2-2] the Topic Name in PUBLISH MUST NOT contain wildcards: DISCONNECT 0x90 (Topic Name invalid)",
			send: [][]byte{pub5(0, "a/+", 0)},
			want: biDisc(packets.TopicNameInvalid),
		},
		{
			name: "wildcard # in PUBLISH topic v5", version: v5,
			spec: "v5 [MQTT-3.3.2-2] the Topic Name in PUBLISH MUST NOT contain wildcards: DISCONNECT 0x90 (Topic Name invalid)",
			send: [][]byte{pub5(1, "a/#", 3)},
			want: biDisc(packets.TopicNameInvalid),
		},
		{
			name: "wildcard in PUBLISH topic 3.1.1", version: v3,
			spec: "3.1.1 [MQTT-3.3.2-2] the Topic Name MUST NOT contain wildcard characters: disconnect",
			send: [][]byte{pub3(0, "a/#", 0)},
			want: biClosed,
		},
		{
			name: "empty topic without alias v5", version: v5,
			spec: "v5 §3.3.2.3.4 it is a Protocol Error if the Topic Name is zero length and there is no Topic Alias: DISCONNECT 0x82",
			send: [][]byte{pub5(0, "", 0)},
			want: biDisc(packets.ProtocolError),
		},
		{
			name: "empty topic 3.1.1", version: v3,
			spec: "3.1.1 [MQTT-4.7.3-1] all Topic Names MUST be at least one character long: disconnect",
			send: [][]byte{pub3(0, "", 0)},
			want: biClosed,
		},
		// PUBLISH header.
		{
			name: "QoS 3 v5", version: v5,
			spec: "v5 [MQTT-3.3.1-4] a PUBLISH MUST NOT have both QoS bits set: Malformed Packet, DISCONNECT 0x81",
			send: [][]byte{biPublishFlags(v5, 0x06, "a/b", 1, "payload")},
			want: biDisc(packets.MalformedPacket),
		},
		{
			name: "QoS 3 3.1.1", version: v3,
			spec: "3.1.1 [MQTT-3.3.1-4] a PUBLISH MUST NOT have both QoS bits set: close",
			send: [][]byte{biPublishFlags(v3, 0x06, "a/b", 1, "payload")},
			want: biClosed,
		},
		{
			name: "DUP on QoS 0 v5", version: v5,
			spec: "v5 [MQTT-3.3.1-2] the DUP flag MUST be 0 for QoS 0 messages: Malformed Packet, DISCONNECT 0x81",
			send: [][]byte{biPublishFlags(v5, 0x08, "a/b", 0, "payload")},
			want: biDisc(packets.MalformedPacket),
		},
		{
			name: "packet identifier 0 on QoS 1 PUBLISH v5", version: v5,
			spec: "v5 [MQTT-2.2.1-3] a QoS > 0 PUBLISH MUST carry a non-zero Packet Identifier (no code is named: 0x82 or 0x81)",
			send: [][]byte{pub5(1, "a/b", 0)},
			want: append(biDisc(packets.ProtocolError), biDisc(packets.MalformedPacket)...),
		},
		{
			name: "packet identifier 0 on QoS 1 PUBLISH 3.1.1", version: v3,
			spec: "3.1.1 [MQTT-2.3.1-1] a QoS > 0 PUBLISH MUST contain a non-zero Packet Identifier: disconnect",
			send: [][]byte{pub3(1, "a/b", 0)},
			want: biClosed,
		},
		{
			name: "retain when retain is not available", version: v5,
			spec: "v5 [MQTT-3.2.2-14] a PUBLISH with RETAIN 1 when Retain Available is 0: DISCONNECT 0x9A (Retain not supported)",
			opts: core.Options{DisableRetain: true},
			send: [][]byte{biPublishFlags(v5, 0x01, "a/b", 0, "payload")},
			want: biDisc(packets.RetainNotSupported),
		},
		// PUBLISH properties.
		{
			name: "topic alias 0", version: v5,
			spec: "v5 [MQTT-3.3.2-8] a Topic Alias of 0 is not permitted; §3.3.4: DISCONNECT 0x94 (Topic Alias invalid)",
			send: [][]byte{pub5(0, "a/b", 0, biPropU16(0x23, 0))},
			want: biDisc(packets.TopicAliasInvalid),
		},
		{
			name: "topic alias above the maximum", version: v5,
			spec: "v5 [MQTT-3.3.2-9] a Topic Alias above the Topic Alias Maximum (10) in CONNACK: DISCONNECT 0x94",
			opts: core.Options{TopicAliasMaximum: 10},
			send: [][]byte{pub5(0, "a/b", 0, biPropU16(0x23, 11))},
			want: biDisc(packets.TopicAliasInvalid),
		},
		{
			name: "topic alias when aliases are disabled", version: v5,
			spec: "v5 [MQTT-3.3.2-9] Topic Alias Maximum 0 announced: any Topic Alias is above it, DISCONNECT 0x94",
			opts: core.Options{DisableTopicAliases: true},
			send: [][]byte{pub5(0, "a/b", 0, biPropU16(0x23, 1))},
			want: biDisc(packets.TopicAliasInvalid),
		},
		{
			name: "unknown topic alias with empty topic", version: v5,
			spec: "v5 §3.3.4 a zero-length Topic Name with a Topic Alias that has no mapping is a Protocol Error: DISCONNECT 0x82",
			send: [][]byte{pub5(0, "", 0, biPropU16(0x23, 5))},
			want: biDisc(packets.ProtocolError),
		},
		{
			name: "duplicate property in PUBLISH", version: v5,
			spec: "v5 §3.3.2.3.2 it is a Protocol Error to include the Payload Format Indicator more than once: DISCONNECT 0x82",
			send: [][]byte{pub5(0, "a/b", 0, biPropByte(0x01, 0), biPropByte(0x01, 0))},
			want: biDisc(packets.ProtocolError),
		},
		{
			name: "subscription identifier in a client PUBLISH", version: v5,
			spec: "v5 [MQTT-3.3.4-6] a PUBLISH sent from a Client to a Server MUST NOT contain a Subscription Identifier: DISCONNECT 0x82",
			send: [][]byte{pub5(0, "a/b", 0, biPropVarint(0x0B, 1))},
			want: biDisc(packets.ProtocolError),
		},
		// Flow control.
		{
			name: "receive maximum exceeded", version: v5,
			spec: "v5 §3.3.4 / [MQTT-3.3.4-7] more than Receive Maximum (2) QoS 2 PUBLISH without PUBCOMP: DISCONNECT 0x93 (Receive Maximum exceeded)",
			opts: core.Options{ReceiveMaximum: 2},
			send: [][]byte{
				biPublish(v5, 2, "flow/a", 1, "one"),
				biPublish(v5, 2, "flow/a", 2, "two"),
				biPublish(v5, 2, "flow/a", 3, "three"),
			},
			before: []packets.Type{packets.Pubrec, packets.Pubrec},
			want:   biDisc(packets.ReceiveMaximumExceeded),
		},
		{
			name: "receive maximum is not MQTT 3.1.1's", version: v3,
			spec: "3.1.1 has no Receive Maximum (v5 §3.3.4 flow control): three QoS 2 PUBLISH without PUBREL beyond Options.ReceiveMaximum 2 each get PUBREC [MQTT-4.3.3-2], the connection stays open",
			opts: core.Options{ReceiveMaximum: 2},
			send: [][]byte{
				biPublish(v3, 2, "flow/a", 1, "one"),
				biPublish(v3, 2, "flow/a", 2, "two"),
				biPublish(v3, 2, "flow/a", 3, "three"),
			},
			before: []packets.Type{packets.Pubrec, packets.Pubrec},
			want:   []biWant{{packets.Pubrec, 0}}, stayOpen: true,
		},
		// SUBSCRIBE and UNSUBSCRIBE.
		{
			name: "SUBSCRIBE invalid filter v5", version: v5,
			spec: "v5 [MQTT-4.7.1-1] '#' MUST be the last character of a filter: SUBACK 0x8F (Topic Filter invalid), connection stays open",
			send: [][]byte{biSubscribe(v5, 9, "a/#/b", 1)}, want: biSuback(packets.TopicFilterInvalid), stayOpen: true,
		},
		{
			name: "SUBSCRIBE invalid + filter v5", version: v5,
			spec: "v5 [MQTT-4.7.1-2] '+' MUST occupy an entire level: SUBACK 0x8F, connection stays open",
			send: [][]byte{biSubscribe(v5, 9, "a/b+", 1)}, want: biSuback(packets.TopicFilterInvalid), stayOpen: true,
		},
		{
			name: "SUBSCRIBE invalid filter 3.1.1", version: v3,
			spec: "3.1.1 [MQTT-4.7.1-2] / §3.9.3: SUBACK return code 0x80 (Failure), connection stays open",
			send: [][]byte{biSubscribe(v3, 9, "a/#/b", 1)}, want: biSuback(packets.V3SubackFailure), stayOpen: true,
		},
		{
			name: "SUBSCRIBE reserved option bits v5", version: v5,
			spec: "v5 [MQTT-3.8.3-5] reserved bits of the Subscription Options non-zero: Malformed Packet, DISCONNECT 0x81",
			send: [][]byte{biSubscribe(v5, 9, "a/b", 0xC1)},
			want: biDisc(packets.MalformedPacket),
		},
		{
			name: "SUBSCRIBE reserved option bits 3.1.1", version: v3,
			spec: "3.1.1 [MQTT-3-8.3-4] reserved bits in the payload non-zero: malformed, close",
			send: [][]byte{biSubscribe(v3, 9, "a/b", 0x05)},
			want: biClosed,
		},
		{
			name: "SUBSCRIBE retain handling 3", version: v5,
			spec: "v5 §3.8.3.1 it is a Protocol Error to send a Retain Handling value of 3: DISCONNECT 0x82",
			send: [][]byte{biSubscribe(v5, 9, "a/b", 0x31)},
			want: biDisc(packets.ProtocolError),
		},
		{
			name: "SUBSCRIBE maximum QoS 3 v5", version: v5,
			spec: "v5 §3.8.3.1 it is a Protocol Error if the Maximum QoS field has the value 3: DISCONNECT 0x82",
			send: [][]byte{biSubscribe(v5, 9, "a/b", 0x03)},
			want: biDisc(packets.ProtocolError),
		},
		{
			name: "SUBSCRIBE QoS 3 3.1.1", version: v3,
			spec: "3.1.1 [MQTT-3-8.3-4] requested QoS not 0, 1 or 2: malformed, close",
			send: [][]byte{biSubscribe(v3, 9, "a/b", 0x03)},
			want: biClosed,
		},
		{
			name: "SUBSCRIBE wrong fixed-header flags v5", version: v5,
			spec: "v5 [MQTT-3.8.1-1] SUBSCRIBE fixed-header bits must be 0010: Malformed Packet, DISCONNECT 0x81",
			send: [][]byte{biPkt(0x80, biU16(9), biProps(), biStr("a/b"), []byte{0})},
			want: biDisc(packets.MalformedPacket),
		},
		{
			name: "SUBSCRIBE without filters v5", version: v5,
			spec: "v5 [MQTT-3.8.3-2] the payload MUST contain at least one filter; a SUBSCRIBE with no payload is a Protocol Error: DISCONNECT 0x82",
			send: [][]byte{biPkt(0x82, biU16(9), biProps())},
			want: biDisc(packets.ProtocolError),
		},
		{
			name: "SUBSCRIBE without filters 3.1.1", version: v3,
			spec: "3.1.1 [MQTT-3.8.3-3] a SUBSCRIBE with no payload is a protocol violation: disconnect",
			send: [][]byte{biPkt(0x82, biU16(9))},
			want: biClosed,
		},
		{
			name: "UNSUBSCRIBE without filters v5", version: v5,
			spec: "v5 [MQTT-3.10.3-2] an UNSUBSCRIBE with no payload is a Protocol Error: DISCONNECT 0x82",
			send: [][]byte{biPkt(0xA2, biU16(9), biProps())},
			want: biDisc(packets.ProtocolError),
		},
		{
			name: "SUBSCRIBE packet identifier 0 v5", version: v5,
			spec: "v5 [MQTT-2.2.1-3] SUBSCRIBE MUST carry a non-zero Packet Identifier (no code is named: 0x82 or 0x81)",
			send: [][]byte{biSubscribe(v5, 0, "a/b", 1)},
			want: append(biDisc(packets.ProtocolError), biDisc(packets.MalformedPacket)...),
		},
		{
			name: "subscription identifier 0", version: v5,
			spec: "v5 §3.8.2.1.2 it is a Protocol Error if the Subscription Identifier has the value 0: DISCONNECT 0x82",
			send: [][]byte{biSubscribe(v5, 9, "a/b", 1, biPropVarint(0x0B, 0))},
			want: biDisc(packets.ProtocolError),
		},
		{
			name: "no local on a shared subscription", version: v5,
			spec: "v5 [MQTT-3.8.3-4] it is a Protocol Error to set the No Local bit on a Shared Subscription: DISCONNECT 0x82",
			send: [][]byte{biSubscribe(v5, 9, "$share/g/a/b", 0x05)},
			want: biDisc(packets.ProtocolError),
		},
		// Keep alive.
		{
			name: "keep alive timeout v5", version: v5, keepAlive: 1,
			spec:    "v5 [MQTT-3.1.2-22] nothing within 1.5 x Keep Alive (1 s): close; §4.13 DISCONNECT 0x8D (Keep Alive timeout) first",
			want:    biDisc(packets.KeepAliveTimeout),
			minWait: 1200 * time.Millisecond,
			maxWait: 4 * time.Second,
		},
		{
			name: "keep alive timeout 3.1.1", version: v3, keepAlive: 1,
			spec:    "3.1.1 [MQTT-3.1.2-24] nothing within 1.5 x Keep Alive (1 s): the Server MUST disconnect",
			want:    biClosed,
			minWait: 1200 * time.Millisecond,
			maxWait: 4 * time.Second,
		},
	})
}

// TestBadInputDisconnectSessionExpiry checks the v5 rule that a client
// which connected with Session Expiry Interval 0 may not set a non-zero one
// on DISCONNECT, and that one which connected with a non-zero interval may.
func TestBadInputDisconnectSessionExpiry(t *testing.T) {
	const v5 = packets.Version5
	biRunAll(t, []biCase{
		{
			name: "expiry set on DISCONNECT after 0 in CONNECT", version: v5,
			spec: "v5 §3.14.2.2.2 if the Session Expiry Interval in CONNECT was zero, a non-zero one in the client's DISCONNECT is a Protocol Error: DISCONNECT 0x82 (no [MQTT-x] number; [MQTT-3.14.2-2] is the server-side rule)",
			send: [][]byte{biDisconnect(v5, 0x00, biPropU32(0x11, 30))},
			want: biDisc(packets.ProtocolError),
		},
		{
			name: "expiry changed on DISCONNECT after non-zero in CONNECT", version: v5,
			connProps: [][]byte{biPropU32(0x11, 10)},
			spec:      "v5 §3.14.2.2.2 a client that connected with a non-zero Session Expiry Interval may change it on DISCONNECT: the broker just closes",
			send:      [][]byte{biDisconnect(v5, 0x00, biPropU32(0x11, 30))},
			want:      biClosed,
		},
	})
}
