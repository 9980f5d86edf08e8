package packets

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
)

// A valid v5 CONNECT prefix: protocol name, level, flags, keep alive.
func v5ConnectHead(flags byte) []byte { return cat(str("MQTT"), bs(5, flags), u16(30)) }

func v4ConnectHead(flags byte) []byte { return cat(str("MQTT"), bs(4, flags), u16(30)) }

// v5Pub returns a v5 QoS 0 PUBLISH with topic "t" and the given properties.
func v5Pub(ps ...[]byte) []byte { return raw(0x30, str("t"), props(ps...)) }

// v5Connack returns a v5 CONNACK with the given properties.
func v5Connack(ps ...[]byte) []byte { return raw(0x20, bs(0, 0), props(ps...)) }

// v5Connect returns a v5 CONNECT with the given properties.
func v5Connect(ps ...[]byte) []byte { return raw(0x10, v5ConnectHead(0x02), props(ps...), str("c")) }

type decodeErrCase struct {
	name    string // with the spec statement it checks
	version byte
	data    []byte
	code    ReasonCode
	check   func(t *testing.T, p *Packet) // optional, on the packet left by the failed decode
}

func decodeErrCases() []decodeErrCase {
	return []decodeErrCase{
		// Fixed header [MQTT-2.2.2-1] [MQTT-2.2.2-2].
		{"reserved type 0", Version311, bs(0x00, 0), MalformedPacket, nil},
		{"AUTH (type 15) in 3.1.1", Version311, bs(0xF0, 0), MalformedPacket, nil},
		{"AUTH (type 15) in 3.1", Version31, bs(0xF0, 0), MalformedPacket, nil},
		{"AUTH (type 15) before CONNECT (version 0)", 0, bs(0xF0, 0), MalformedPacket, nil},
		{"[MQTT-2.2.2-2] CONNECT flags not 0", Version311, raw(0x11, v4ConnectHead(2), str("c")), MalformedPacket, nil},
		{"[MQTT-2.2.2-2] CONNACK flags not 0", Version311, bs(0x28, 2, 0, 0), MalformedPacket, nil},
		{"[MQTT-2.2.2-2] PUBACK flags not 0", Version311, bs(0x42, 2, 0, 1), MalformedPacket, nil},
		{"[MQTT-2.2.2-2] PUBREC flags not 0", Version311, bs(0x51, 2, 0, 1), MalformedPacket, nil},
		{"[MQTT-2.2.2-2] PUBREL flags 0, must be 0b0010", Version311, bs(0x60, 2, 0, 1), MalformedPacket, nil},
		{"[MQTT-2.2.2-2] PUBREL flags 0b0011", Version311, bs(0x63, 2, 0, 1), MalformedPacket, nil},
		{"[MQTT-2.2.2-2] PUBCOMP flags not 0", Version311, bs(0x74, 2, 0, 1), MalformedPacket, nil},
		{"[MQTT-2.2.2-2] SUBSCRIBE flags 0", Version311, raw(0x80, u16(1), str("a"), bs(0)), MalformedPacket, nil},
		{"[MQTT-2.2.2-2] SUBSCRIBE flags 0b1010 (3.1 DUP)", Version31, raw(0x8A, u16(1), str("a"), bs(0)), MalformedPacket, nil},
		{"[MQTT-2.2.2-2] SUBACK flags not 0", Version311, raw(0x92, u16(1), bs(0)), MalformedPacket, nil},
		{"[MQTT-2.2.2-2] UNSUBSCRIBE flags 0b0011", Version311, raw(0xA3, u16(1), str("a")), MalformedPacket, nil},
		{"[MQTT-2.2.2-2] UNSUBACK flags not 0", Version311, bs(0xB1, 2, 0, 1), MalformedPacket, nil},
		{"[MQTT-2.2.2-2] PINGREQ flags not 0", Version311, bs(0xC2, 0), MalformedPacket, nil},
		{"[MQTT-2.2.2-2] PINGRESP flags not 0", Version311, bs(0xD1, 0), MalformedPacket, nil},
		{"[MQTT-2.2.2-2] DISCONNECT flags not 0", Version311, bs(0xE8, 0), MalformedPacket, nil},
		{"[MQTT-2.2.2-2] AUTH flags not 0", Version5, bs(0xF1, 0), MalformedPacket, nil},

		// PUBLISH fixed header.
		{"[MQTT-3.3.1-4] PUBLISH QoS 3", Version311, raw(0x36, str("t"), u16(1)), MalformedPacket, nil},
		{"[MQTT-3.3.1-2] PUBLISH DUP with QoS 0", Version311, raw(0x38, str("t")), MalformedPacket, nil},

		// Remaining length.
		{"[MQTT-1.5.5] remaining length of 5 bytes", Version311, bs(0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01), MalformedPacket, nil},
		{"[MQTT-1.5.5] remaining length 4th byte continues", Version311, bs(0xC0, 0x80, 0x80, 0x80, 0x80), MalformedPacket, nil},
		{"packet larger than maximum size", Version311, raw(0x30, str("t"), make([]byte, 100)), PacketTooLarge, nil},

		// UTF-8 strings [MQTT-1.5.4-1] [MQTT-1.5.4-2].
		{"[MQTT-1.5.4-1] PUBLISH topic invalid UTF-8", Version311, raw(0x30, str("a\xff")), MalformedPacket, nil},
		{"[MQTT-1.5.4-1] PUBLISH topic overlong encoding", Version311, raw(0x30, str("\xc0\xaf")), MalformedPacket, nil},
		{"[MQTT-1.5.4-1] client identifier with surrogate U+D800", Version311, raw(0x10, v4ConnectHead(2), str("\xed\xa0\x80")), MalformedPacket, nil},
		{"[MQTT-1.5.4-2] SUBSCRIBE filter with U+0000", Version311, raw(0x82, u16(1), str("a\x00b"), bs(0)), MalformedPacket, nil},
		{"[MQTT-1.5.4-2] PUBLISH topic with U+0000", Version5, raw(0x30, str("a\x00"), props()), MalformedPacket, nil},
		{"[MQTT-1.5.4-1] UNSUBSCRIBE filter invalid UTF-8", Version311, raw(0xA2, u16(1), str("\x80")), MalformedPacket, nil},
		{"[MQTT-1.5.4-1] user name invalid UTF-8", Version311, raw(0x10, v4ConnectHead(0x82), str("c"), str("\xfe")), MalformedPacket, nil},
		{"[MQTT-1.5.4-1] will topic invalid UTF-8", Version311, raw(0x10, v4ConnectHead(0x06), str("c"), str("\xfe"), str("")), MalformedPacket, nil},
		{"[MQTT-1.5.4-1] string property invalid UTF-8", Version5, v5Pub(prop(PropContentType, str("\xff"))), MalformedPacket, nil},
		{"[MQTT-1.5.4-1] user property value invalid UTF-8", Version5, v5Pub(prop(PropUserProperty, str("k"), str("\xff"))), MalformedPacket, nil},
		{"[MQTT-1.5.4-2] user property name with U+0000", Version5, v5Pub(prop(PropUserProperty, str("\x00"), str("v"))), MalformedPacket, nil},
		{"string length overruns the packet", Version311, raw(0x30, bs(0, 5, 'a')), MalformedPacket, nil},

		// PUBLISH topic [MQTT-3.3.2-2] [MQTT-4.7.3-1].
		{"[MQTT-3.3.2-2] PUBLISH topic with '+'", Version311, raw(0x30, str("a/+/c")), TopicNameInvalid, nil},
		{"[MQTT-3.3.2-2] PUBLISH topic with '#'", Version311, raw(0x30, str("a/#")), TopicNameInvalid, nil},
		{"[MQTT-3.3.2-2] v5 PUBLISH topic with '#'", Version5, raw(0x30, str("#"), props()), TopicNameInvalid, nil},
		{"[MQTT-4.7.3-1] v3 PUBLISH empty topic", Version311, raw(0x30, str("")), MalformedPacket, nil},
		{"[MQTT-4.7.3-1] v3.1 PUBLISH empty topic", Version31, raw(0x32, str(""), u16(1)), MalformedPacket, nil},
		{"(5.0 3.3.2.1) v5 PUBLISH empty topic without Topic Alias", Version5, raw(0x30, str(""), props()), ProtocolError, nil},
		{"v5 PUBLISH without property length", Version5, raw(0x30, str("t")), MalformedPacket, nil},

		// Packet identifier [MQTT-2.2.1-3].
		{"[MQTT-2.2.1-3] PUBLISH QoS 1 with packet identifier 0", Version311, raw(0x32, str("t"), u16(0)), MalformedPacket, nil},
		{"[MQTT-2.2.1-3] PUBLISH QoS 2 with packet identifier 0", Version5, raw(0x34, str("t"), u16(0), props()), MalformedPacket, nil},
		{"[MQTT-2.2.1-3] SUBSCRIBE with packet identifier 0", Version311, raw(0x82, u16(0), str("a"), bs(0)), MalformedPacket, nil},
		{"[MQTT-2.2.1-3] UNSUBSCRIBE with packet identifier 0", Version5, raw(0xA2, u16(0), props(), str("a")), MalformedPacket, nil},
		{"PUBLISH QoS 1 without packet identifier", Version311, raw(0x32, str("t"), bs(1)), MalformedPacket, nil},

		// Properties (MQTT 5.0 section 2.2.2).
		{"(2.2.2.2) unknown property 0x05", Version5, v5Pub(prop(0x05, bs(0))), MalformedPacket, nil},
		{"(2.2.2.2) unknown property 0x00", Version5, v5Pub(prop(0x00, bs(0))), MalformedPacket, nil},
		{"(2.2.2.2) unknown property 0x2B", Version5, v5Pub(prop(0x2B, bs(0))), MalformedPacket, nil},
		{"(2.2.2.2) unknown property 0x80 (two-byte identifier)", Version5, v5Pub(prop(0x80, bs(0x01, 0))), MalformedPacket, nil},
		{"(2.2.2.2) Topic Alias not allowed in CONNECT", Version5, v5Connect(prop(PropTopicAlias, u16(1))), MalformedPacket, nil},
		{"(2.2.2.2) Will Delay Interval not allowed in PUBLISH", Version5, v5Pub(prop(PropWillDelay, u32(1))), MalformedPacket, nil},
		{"(2.2.2.2) Session Expiry not allowed in will properties", Version5,
			raw(0x10, v5ConnectHead(0x06), props(), str("c"), props(prop(PropSessionExpiry, u32(1))), str("w"), str("")), MalformedPacket, nil},
		{"(2.2.2.2) Reason String not allowed in PUBLISH", Version5, v5Pub(prop(PropReasonString, str("r"))), MalformedPacket, nil},
		{"(2.2.2.2) Subscription Identifier not allowed in UNSUBSCRIBE", Version5, raw(0xA2, u16(1), props(prop(PropSubscriptionID, bs(1))), str("a")), MalformedPacket, nil},
		{"(2.2.2.2) Maximum QoS not allowed in CONNECT", Version5, v5Connect(prop(PropMaximumQoS, bs(1))), MalformedPacket, nil},
		{"(2.2.2.2) Content Type not allowed in PUBACK", Version5, raw(0x40, u16(1), bs(0), props(prop(PropContentType, str("x")))), MalformedPacket, nil},
		{"(2.2.2.2) Server Reference not allowed in AUTH", Version5, raw(0xF0, bs(0x18), props(prop(PropServerReference, str("x")))), MalformedPacket, nil},
		{"(2.2.2.2) duplicate Content Type", Version5, v5Pub(prop(PropContentType, str("a")), prop(PropContentType, str("b"))), ProtocolError, nil},
		{"(3.1.2.11) duplicate Session Expiry Interval in CONNECT", Version5, v5Connect(prop(PropSessionExpiry, u32(1)), prop(PropSessionExpiry, u32(1))), ProtocolError, nil},
		{"(3.2.2.3) duplicate Server Keep Alive in CONNACK", Version5, v5Connack(prop(PropServerKeepAlive, u16(1)), prop(PropServerKeepAlive, u16(1))), ProtocolError, nil},
		{"(3.3.2.3) duplicate Topic Alias in PUBLISH", Version5, v5Pub(prop(PropTopicAlias, u16(1)), prop(PropTopicAlias, u16(2))), ProtocolError, nil},
		{"(3.8.2.1.2) duplicate Subscription Identifier in SUBSCRIBE", Version5,
			raw(0x82, u16(1), props(prop(PropSubscriptionID, bs(1)), prop(PropSubscriptionID, bs(2))), str("a"), bs(0)), ProtocolError, nil},
		{"(3.14.2.2) duplicate Reason String in DISCONNECT", Version5, raw(0xE0, bs(0), props(prop(PropReasonString, str("a")), prop(PropReasonString, str("a")))), ProtocolError, nil},
		{"(2.2.2.1) property length overruns the packet", Version5, raw(0x30, str("t"), bs(10), prop(PropPayloadFormat, bs(1))), MalformedPacket, nil},
		{"(2.2.2.1) property value overruns the property length", Version5, raw(0x30, str("t"), bs(2), prop(PropMessageExpiry, u32(1))), MalformedPacket, nil},
		{"(2.2.2.1) string property overruns the property length", Version5, raw(0x30, str("t"), bs(3), prop(PropContentType, str("abc"))), MalformedPacket, nil},
		{"(2.2.2.1) property length of 5 bytes", Version5, raw(0x30, str("t"), bs(0x80, 0x80, 0x80, 0x80, 0x01)), MalformedPacket, nil},
		{"(3.3.2.3.8) Subscription Identifier 0 in PUBLISH", Version5, v5Pub(prop(PropSubscriptionID, bs(0))), ProtocolError, nil},
		{"(3.8.2.1.2) Subscription Identifier 0 in SUBSCRIBE", Version5, raw(0x82, u16(1), props(prop(PropSubscriptionID, bs(0))), str("a"), bs(0)), ProtocolError, nil},
		{"(3.8.2.1.2) Subscription Identifier of 5 bytes", Version5, raw(0x82, u16(1), props(prop(PropSubscriptionID, bs(0xFF, 0xFF, 0xFF, 0xFF, 0x01))), str("a"), bs(0)), MalformedPacket, nil},
		{"(3.1.2.11.3) Receive Maximum 0 in CONNECT", Version5, v5Connect(prop(PropReceiveMaximum, u16(0))), ProtocolError, nil},
		{"(3.2.2.3.3) Receive Maximum 0 in CONNACK", Version5, v5Connack(prop(PropReceiveMaximum, u16(0))), ProtocolError, nil},
		{"(3.1.2.11.4) Maximum Packet Size 0 in CONNECT", Version5, v5Connect(prop(PropMaximumPacketSize, u32(0))), ProtocolError, nil},
		{"(3.2.2.3.6) Maximum Packet Size 0 in CONNACK", Version5, v5Connack(prop(PropMaximumPacketSize, u32(0))), ProtocolError, nil},
		{"[MQTT-3.3.2-8] Topic Alias 0", Version5, v5Pub(prop(PropTopicAlias, u16(0))), TopicAliasInvalid, nil},
		{"(3.3.2.3.2) Payload Format Indicator 2", Version5, v5Pub(prop(PropPayloadFormat, bs(2))), ProtocolError, nil},
		{"(3.1.3.2.3) will Payload Format Indicator 2", Version5,
			raw(0x10, v5ConnectHead(0x06), props(), str("c"), props(prop(PropPayloadFormat, bs(2))), str("w"), str("")), ProtocolError, nil},
		{"(3.1.2.11.7) Request Problem Information 2", Version5, v5Connect(prop(PropRequestProblemInfo, bs(2))), ProtocolError, nil},
		{"(3.1.2.11.6) Request Response Information 2", Version5, v5Connect(prop(PropRequestResponseInfo, bs(2))), ProtocolError, nil},
		{"(3.2.2.3.4) Maximum QoS 2", Version5, v5Connack(prop(PropMaximumQoS, bs(2))), ProtocolError, nil},
		{"(3.2.2.3.5) Retain Available 2", Version5, v5Connack(prop(PropRetainAvailable, bs(2))), ProtocolError, nil},
		{"(3.2.2.3.11) Wildcard Subscription Available 2", Version5, v5Connack(prop(PropWildcardSubAvailable, bs(2))), ProtocolError, nil},
		{"(3.2.2.3.12) Subscription Identifiers Available 2", Version5, v5Connack(prop(PropSubscriptionIDAvailable, bs(2))), ProtocolError, nil},
		{"(3.2.2.3.13) Shared Subscription Available 2", Version5, v5Connack(prop(PropSharedSubAvailable, bs(0xFF))), ProtocolError, nil},
		{"(3.1.2.11.10) Authentication Data without Authentication Method", Version5, v5Connect(prop(PropAuthData, str("x"))), ProtocolError, nil},
		{"[MQTT-3.3.2-14] Response Topic with wildcard", Version5, v5Pub(prop(PropResponseTopic, str("r/+"))), ProtocolError, nil},

		// CONNECT.
		{"[MQTT-3.1.2-2] protocol level 3 with name MQTT", 0, raw(0x10, str("MQTT"), bs(3, 2), u16(0), str("c")), UnsupportedProtocolVersion,
			wantVersion(3)},
		{"[MQTT-3.1.2-2] protocol level 4 with name MQIsdp", 0, raw(0x10, str("MQIsdp"), bs(4, 2), u16(0), str("c")), UnsupportedProtocolVersion,
			wantVersion(4)},
		{"[MQTT-3.1.2-2] protocol level 6", 0, raw(0x10, str("MQTT"), bs(6, 2), u16(0), str("c")), UnsupportedProtocolVersion,
			wantVersion(6)},
		{"[MQTT-3.1.2-1] protocol name MQTX level 5", 0, raw(0x10, str("MQTX"), bs(5, 2), u16(0), props(), str("c")), UnsupportedProtocolVersion,
			wantVersion(5)},
		{"[MQTT-3.1.2-1] protocol name invalid UTF-8", 0, raw(0x10, str("\xff"), bs(4)), UnsupportedProtocolVersion, wantVersion(4)},
		{"CONNECT truncated before the protocol level", 0, raw(0x10, str("MQTT")), MalformedPacket, nil},
		{"CONNECT with remaining length 0", 0, bs(0x10, 0), MalformedPacket, nil},
		{"[MQTT-3.1.2-3] CONNECT reserved flag set", 0, raw(0x10, v4ConnectHead(0x03), str("c")), MalformedPacket, wantVersion(4)},
		{"[MQTT-3.1.2-3] v5 CONNECT reserved flag set", 0, raw(0x10, v5ConnectHead(0x01), props(), str("c")), MalformedPacket, wantVersion(5)},
		{"3.1.1 [MQTT-3.1.2-14] will QoS 3", 0, raw(0x10, v4ConnectHead(0x1C), str("c"), str("w"), str("")), MalformedPacket, nil},
		{"3.1.1 [MQTT-3.1.2-13] will QoS 1 without will flag", 0, raw(0x10, v4ConnectHead(0x08), str("c")), MalformedPacket, nil},
		{"5.0 [MQTT-3.1.2-11] v5 will QoS 2 without will flag", 0, raw(0x10, v5ConnectHead(0x10), props(), str("c")), MalformedPacket, wantVersion(5)},
		{"5.0 [MQTT-3.1.2-12] v5 will QoS 3", 0, raw(0x10, v5ConnectHead(0x1C), props(), str("c"), props(), str("w"), str("")), MalformedPacket, wantVersion(5)},
		{"5.0 [MQTT-3.1.2-13] v5 will retain without will flag", 0, raw(0x10, v5ConnectHead(0x20), props(), str("c")), MalformedPacket, wantVersion(5)},
		{"3.1.1 [MQTT-3.1.2-15] will retain without will flag", 0, raw(0x10, v4ConnectHead(0x20), str("c")), MalformedPacket, nil},
		{"[MQTT-3.1.2-22] 3.1.1 password without user name", 0, raw(0x10, v4ConnectHead(0x40), str("c"), str("p")), MalformedPacket, nil},
		{"[MQTT-3.1.2-22] 3.1 password without user name", 0, raw(0x10, str("MQIsdp"), bs(3, 0x40), u16(0), str("c"), str("p")), MalformedPacket, nil},
		{"CONNECT will flag without will topic", 0, raw(0x10, v4ConnectHead(0x04), str("c")), MalformedPacket, nil},
		{"CONNECT user name flag without user name", 0, raw(0x10, v4ConnectHead(0x80), str("c")), MalformedPacket, nil},
		{"CONNECT trailing byte", 0, raw(0x10, v4ConnectHead(0x02), str("c"), bs(0)), MalformedPacket, nil},
		{"v5 CONNECT without property length", 0, raw(0x10, v5ConnectHead(0x02)), MalformedPacket, wantVersion(5)},
		{"v5 CONNECT duplicate property keeps type and version", 0, v5Connect(prop(PropReceiveMaximum, u16(1)), prop(PropReceiveMaximum, u16(1))), ProtocolError,
			func(t *testing.T, p *Packet) {
				if p.Type != Connect || p.ProtocolVersion != Version5 {
					t.Fatalf("packet type %s version %d, want CONNECT version 5", p.Type, p.ProtocolVersion)
				}
			}},

		// CONNACK.
		{"[MQTT-3.2.2-1] CONNACK reserved acknowledge flags", Version311, bs(0x20, 2, 0x02, 0), MalformedPacket, nil},
		{"[MQTT-3.2.2-4] CONNACK session present with refusal", Version311, bs(0x20, 2, 1, 5), ProtocolError, nil},
		{"[MQTT-3.2.2-6] v5 CONNACK session present with refusal", Version5, raw(0x20, bs(1, 0x87), props()), ProtocolError, nil},
		{"3.1.1 CONNACK return code 6 is reserved", Version311, bs(0x20, 2, 0, 6), ProtocolError, nil},
		{"[MQTT-3.2.2-8] v5 CONNACK reason 0x01", Version5, raw(0x20, bs(0, 0x01), props()), ProtocolError, nil},
		{"v5 CONNACK without property length", Version5, bs(0x20, 2, 0, 0), MalformedPacket, nil},
		{"3.1.1 CONNACK of 3 bytes", Version311, bs(0x20, 3, 0, 0, 0), MalformedPacket, nil},

		// PUBACK, PUBREC, PUBREL, PUBCOMP.
		{"3.1.1 PUBACK of 3 bytes", Version311, bs(0x40, 3, 0, 1, 0), MalformedPacket, nil},
		{"3.1.1 PUBCOMP of 1 byte", Version311, bs(0x70, 1, 0), MalformedPacket, nil},
		{"v5 PUBACK of 1 byte", Version5, bs(0x40, 1, 0), MalformedPacket, nil},
		{"[MQTT-3.4.2-1] v5 PUBACK reason 0x92", Version5, bs(0x40, 3, 0, 1, 0x92), ProtocolError, nil},
		{"[MQTT-3.5.2-1] v5 PUBREC reason 0x04", Version5, bs(0x50, 3, 0, 1, 0x04), ProtocolError, nil},
		{"[MQTT-3.6.2-1] v5 PUBREL reason 0x10", Version5, bs(0x62, 3, 0, 1, 0x10), ProtocolError, nil},
		{"[MQTT-3.7.2-1] v5 PUBCOMP reason 0x80", Version5, bs(0x70, 3, 0, 1, 0x80), ProtocolError, nil},
		{"v5 PUBACK property length overruns", Version5, bs(0x40, 4, 0, 1, 0, 1), MalformedPacket, nil},
		{"v5 PUBACK trailing byte after properties", Version5, bs(0x40, 5, 0, 1, 0, 0, 0), MalformedPacket, nil},

		// SUBSCRIBE and UNSUBSCRIBE.
		{"[MQTT-3.8.3-2] v5 SUBSCRIBE without filters", Version5, raw(0x82, u16(1), props()), ProtocolError, nil},
		{"[MQTT-3.8.3-3] 3.1.1 SUBSCRIBE without filters", Version311, raw(0x82, u16(1)), MalformedPacket, nil},
		{"[MQTT-3.10.3-2] v5 UNSUBSCRIBE without filters", Version5, raw(0xA2, u16(1), props()), ProtocolError, nil},
		{"[MQTT-3.10.3-2] 3.1.1 UNSUBSCRIBE without filters", Version311, raw(0xA2, u16(1)), MalformedPacket, nil},
		{"[MQTT-3.8.3-5] v5 subscription options reserved bit 6", Version5, raw(0x82, u16(1), props(), str("a"), bs(0x40)), MalformedPacket, nil},
		{"[MQTT-3.8.3-5] v5 subscription options reserved bit 7", Version5, raw(0x82, u16(1), props(), str("a"), bs(0x81)), MalformedPacket, nil},
		{"(3.8.3.1) v5 subscription maximum QoS 3", Version5, raw(0x82, u16(1), props(), str("a"), bs(0x03)), ProtocolError, nil},
		{"(3.8.3.1) v5 subscription retain handling 3", Version5, raw(0x82, u16(1), props(), str("a"), bs(0x30)), ProtocolError, nil},
		{"[MQTT-3.8.3-4] 3.1.1 requested QoS reserved bits", Version311, raw(0x82, u16(1), str("a"), bs(0x04)), MalformedPacket, nil},
		{"[MQTT-3.8.3-4] 3.1.1 requested QoS 3", Version311, raw(0x82, u16(1), str("a"), bs(0x03)), MalformedPacket, nil},
		{"SUBSCRIBE filter without options byte", Version311, raw(0x82, u16(1), str("a")), MalformedPacket, nil},

		// SUBACK and UNSUBACK.
		{"[MQTT-3.9.3-2] v5 SUBACK reason 0x03", Version5, raw(0x90, u16(1), props(), bs(0x03)), ProtocolError, nil},
		{"3.1.1 [MQTT-3.9.3-2] SUBACK return code 0x87", Version311, raw(0x90, u16(1), bs(0x87)), ProtocolError, nil},
		{"SUBACK without return codes", Version311, raw(0x90, u16(1)), ProtocolError, nil},
		{"[MQTT-3.11.3-2] v5 UNSUBACK reason 0x01", Version5, raw(0xB0, u16(1), props(), bs(0x01)), ProtocolError, nil},
		{"v5 UNSUBACK without reason codes", Version5, raw(0xB0, u16(1), props()), ProtocolError, nil},
		{"3.1.1 UNSUBACK with a reason code", Version311, raw(0xB0, u16(1), bs(0)), MalformedPacket, nil},

		// PINGREQ, PINGRESP, DISCONNECT, AUTH.
		{"PINGREQ with remaining length 1", Version311, bs(0xC0, 1, 0), MalformedPacket, nil},
		{"PINGRESP with remaining length 1", Version5, bs(0xD0, 1, 0), MalformedPacket, nil},
		{"3.1.1 DISCONNECT with remaining length 1", Version311, bs(0xE0, 1, 0), MalformedPacket, nil},
		{"3.1 DISCONNECT with remaining length 2", Version31, bs(0xE0, 2, 0, 0), MalformedPacket, nil},
		{"[MQTT-3.14.2-1] v5 DISCONNECT reason 0x05", Version5, bs(0xE0, 1, 0x05), ProtocolError, nil},
		{"[MQTT-3.15.2-1] v5 AUTH reason 0x01", Version5, bs(0xF0, 1, 0x01), ProtocolError, nil},
		{"v5 DISCONNECT property length overruns", Version5, bs(0xE0, 2, 0, 5), MalformedPacket, nil},
	}
}

// wantVersion checks the protocol version left in a CONNECT that failed.
func wantVersion(v byte) func(t *testing.T, p *Packet) {
	return func(t *testing.T, p *Packet) {
		t.Helper()
		if p.Type != Connect || p.ProtocolVersion != v {
			t.Fatalf("packet type %s, ProtocolVersion %d; want CONNECT, %d", p.Type, p.ProtocolVersion, v)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range decodeErrCases() {
		t.Run(tc.name, func(t *testing.T) {
			maxSize := uint32(0)
			if tc.code == PacketTooLarge {
				maxSize = 64
			}
			var p Packet
			n, err := DecodeBytes(tc.data, tc.version, maxSize, &p)
			wantCode(t, err, tc.code)
			if n != 0 {
				t.Fatalf("DecodeBytes returned n = %d with an error", n)
			}
			if tc.check != nil {
				tc.check(t, &p)
			}
			var rp Packet
			err = readOne(tc.data, tc.version, maxSize, 4096, &rp)
			wantCode(t, err, tc.code)
			if tc.check != nil {
				tc.check(t, &rp)
			}
			t.Log(err)
		})
	}
}

// TestDecodeTruncated cuts every round-trip packet at every length: the
// result is io.ErrUnexpectedEOF, from DecodeBytes and from a Reader (which
// gives io.EOF when nothing at all was read).
func TestDecodeTruncated(t *testing.T) {
	for _, tc := range roundTripCases() {
		p := tc.p
		data := encode(t, &p)
		for i := 0; i < len(data); i++ {
			var q Packet
			if _, err := DecodeBytes(data[:i], p.ProtocolVersion, 0, &q); err != io.ErrUnexpectedEOF {
				t.Fatalf("%s: DecodeBytes of %d/%d bytes: %v, want io.ErrUnexpectedEOF", tc.name, i, len(data), err)
			}
			want := io.ErrUnexpectedEOF
			if i == 0 {
				want = io.EOF
			}
			if err := readOne(data[:i], p.ProtocolVersion, 0, 16, &q); err != want {
				t.Fatalf("%s: ReadPacket of %d/%d bytes: %v, want %v", tc.name, i, len(data), err, want)
			}
		}
	}
}

// TestTooLargeNotRead checks that an oversized packet is refused from its
// fixed header alone, before any of the body is read or allocated.
func TestTooLargeNotRead(t *testing.T) {
	tests := []struct {
		name    string
		hdr     []byte
		maxSize uint32
	}{
		{"PUBLISH 1 byte over", bs(0x30, 0x7F), 128}, // 1+1+127 = 129
		{"PUBLISH max remaining length", bs(0x30, 0xFF, 0xFF, 0xFF, 0x7F), 1 << 20},
		{"SUBSCRIBE", bs(0x82, 0x80, 0x01), 100},
		{"CONNECT", bs(0x10, 0xC8, 0x01), 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := &headerOnlyReader{t: t, hdr: tc.hdr}
			r := NewReader(bufio.NewReaderSize(src, 16), tc.maxSize)
			var p Packet
			err := r.ReadPacket(&p)
			wantCode(t, err, PacketTooLarge)
			if !errors.Is(err, ErrPacketTooLarge) {
				t.Fatalf("errors.Is(%v, ErrPacketTooLarge) = false", err)
			}
			var q Packet
			_, err = DecodeBytes(tc.hdr, 0, tc.maxSize, &q)
			wantCode(t, err, PacketTooLarge)
		})
	}
	// Exactly at the limit is accepted.
	data := raw(0x30, str("t"), make([]byte, 10)) // 2 + 13 bytes
	var p Packet
	if _, err := DecodeBytes(data, 0, uint32(len(data)), &p); err != nil {
		t.Fatalf("packet of exactly maxSize bytes: %v", err)
	}
	if err := readOne(data, 0, uint32(len(data)), 16, &p); err != nil {
		t.Fatalf("packet of exactly maxSize bytes: %v", err)
	}
	// SetMaxSize changes the limit; 0 lifts it.
	r := NewReader(bufio.NewReader(bytes.NewReader(append(append([]byte{}, data...), data...))), 0)
	r.SetMaxSize(uint32(len(data)) - 1)
	wantCode(t, r.ReadPacket(&p), PacketTooLarge)
}

// TestReaderErrors checks that errors of the underlying reader come back
// as they are (or wrapped so that errors.Is sees them).
func TestReaderErrors(t *testing.T) {
	var p Packet
	r := NewReader(bufio.NewReader(bytes.NewReader(nil)), 0)
	if err := r.ReadPacket(&p); err != io.EOF {
		t.Fatalf("empty stream: %v, want io.EOF", err)
	}

	netErr := &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset")}
	for _, prefix := range [][]byte{nil, bs(0x30), bs(0x30, 5, 0, 1)} {
		src := io.MultiReader(bytes.NewReader(prefix), &errReader{netErr})
		r := NewReader(bufio.NewReaderSize(src, 16), 0)
		err := r.ReadPacket(&p)
		var oe *net.OpError
		if !errors.As(err, &oe) {
			t.Fatalf("after % x: %v, want the *net.OpError", prefix, err)
		}
	}
}

type errReader struct{ err error }

func (e *errReader) Read([]byte) (int, error) { return 0, e.err }

// TestDecodeAcceptsEdgeCases covers valid packets only reachable from raw
// bytes.
func TestDecodeAcceptsEdgeCases(t *testing.T) {
	tests := []struct {
		name    string
		version byte
		data    []byte
		want    Packet
	}{
		{"v5 PUBACK of length 3: reason, no properties", Version5, bs(0x40, 3, 0, 1, 0x10),
			Packet{Type: Puback, ProtocolVersion: Version5, PacketID: 1, ReasonCode: NoMatchingSubscribers}},
		{"v5 PUBACK of length 4: empty properties", Version5, bs(0x40, 4, 0, 1, 0, 0),
			Packet{Type: Puback, ProtocolVersion: Version5, PacketID: 1}},
		{"v5 DISCONNECT of length 0", Version5, bs(0xE0, 0), Packet{Type: Disconnect, ProtocolVersion: Version5}},
		{"v5 DISCONNECT of length 1", Version5, bs(0xE0, 1, 0x04), Packet{Type: Disconnect, ProtocolVersion: Version5, ReasonCode: DisconnectWithWill}},
		{"v5 AUTH of length 1", Version5, bs(0xF0, 1, 0x18), Packet{Type: Auth, ProtocolVersion: Version5, ReasonCode: ContinueAuthentication}},
		{"3.1 CONNACK ignores the reserved byte", Version31, bs(0x20, 2, 0xFF, 0), Packet{Type: Connack, ProtocolVersion: Version31}},
		{"non-minimal remaining length", Version311, bs(0xC0, 0x80, 0x00), Packet{Type: Pingreq, ProtocolVersion: Version311}},
		{"version 0 decodes as 3.1.1", 0, bs(0x40, 2, 0, 9), Packet{Type: Puback, PacketID: 9}},
		{"PUBREL with packet identifier 0 (the broker answers it)", Version311, bs(0x62, 2, 0, 0), Packet{Type: Pubrel, ProtocolVersion: Version311}},
		{"will topic with wildcard (the broker checks it)", 0, raw(0x10, v4ConnectHead(0x04), str("c"), str("w/#"), str("")),
			Packet{Type: Connect, ProtocolVersion: Version311, Connect: ConnectFields{ProtocolName: "MQTT", KeepAlive: 30, ClientID: "c",
				WillFlag: true, Will: Will{Topic: "w/#"}}}},
		{"SUBSCRIBE filter syntax is not checked", Version311, raw(0x82, u16(1), str("a/#/b"), bs(1)),
			Packet{Type: Subscribe, ProtocolVersion: Version311, PacketID: 1, Subscriptions: []Subscription{{Filter: "a/#/b", QoS: 1}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var p Packet
			n, err := DecodeBytes(tc.data, tc.version, 0, &p)
			if err != nil {
				t.Fatal(err)
			}
			if n != len(tc.data) {
				t.Fatalf("n = %d, want %d", n, len(tc.data))
			}
			if !equalPackets(&p, &tc.want) {
				t.Fatalf("got  %+v\nwant %+v", p, tc.want)
			}
		})
	}
}
