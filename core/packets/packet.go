// Package packets is the MQTT 3.1, 3.1.1 and 5.0 codec: fixed header, variable
// byte integers, properties, reason codes, and the encoding and decoding of all
// fifteen control packet types.
//
// Encoding appends a whole packet to a bytebufferpool buffer, so a packet costs
// one Write on the connection. Decoding reads the fixed header, checks the
// remaining length against the caller's maximum packet size before reading the
// body, and validates everything the specifications call malformed, returning
// an *Error that carries the MQTT reason code to answer with.
package packets

// Protocol versions, as carried in the CONNECT protocol level byte.
const (
	Version31  byte = 3 // MQTT 3.1 ("MQIsdp")
	Version311 byte = 4 // MQTT 3.1.1
	Version5   byte = 5 // MQTT 5.0
)

// Type is an MQTT control packet type (the high nibble of the first byte).
type Type byte

// The fifteen control packet types.
const (
	Reserved    Type = 0
	Connect     Type = 1
	Connack     Type = 2
	Publish     Type = 3
	Puback      Type = 4
	Pubrec      Type = 5
	Pubrel      Type = 6
	Pubcomp     Type = 7
	Subscribe   Type = 8
	Suback      Type = 9
	Unsubscribe Type = 10
	Unsuback    Type = 11
	Pingreq     Type = 12
	Pingresp    Type = 13
	Disconnect  Type = 14
	Auth        Type = 15
)

var typeNames = [16]string{
	"RESERVED", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP",
	"SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "AUTH",
}

// String returns the packet type's name as the specification writes it.
func (t Type) String() string {
	return typeNames[t&0x0F]
}

// Subscription is one topic filter and its options in a SUBSCRIBE packet.
type Subscription struct {
	Filter            string
	QoS               byte
	NoLocal           bool // v5 only
	RetainAsPublished bool // v5 only
	RetainHandling    byte // v5 only: 0, 1 or 2
}

// Will is the will message carried by a CONNECT packet.
type Will struct {
	Topic      string
	Payload    []byte
	QoS        byte
	Retain     bool
	Properties Properties // v5 will properties (will delay, expiry, content type, …)
}

// ConnectFields holds what only a CONNECT packet carries.
type ConnectFields struct {
	ProtocolName string // "MQTT" or, for 3.1, "MQIsdp"
	CleanStart   bool   // Clean Session in 3.1/3.1.1
	KeepAlive    uint16 // seconds
	ClientID     string
	WillFlag     bool
	Will         Will
	UsernameFlag bool
	Username     string
	PasswordFlag bool
	Password     []byte
	// Bridge is set when a 3.1 or 3.1.1 CONNECT's protocol level had its
	// top bit set (0x83, 0x84): Mosquitto's bridges do that (its
	// try_private option) to ask the server not to send back what they
	// publish and to keep the retained flag of what it forwards, which
	// MQTT 3 has no subscription options for. Encoding sets the bit again.
	Bridge bool
}

// Packet is a decoded or to-be-encoded MQTT control packet. One struct serves
// every type; the fields a type does not carry are left zero.
type Packet struct {
	Type Type

	// Fixed-header flags of PUBLISH.
	Dup    bool
	QoS    byte
	Retain bool

	// ProtocolVersion is the version the packet was decoded as, or is to be
	// encoded as. For CONNECT it is the protocol level read from the packet.
	ProtocolVersion byte

	// PacketID is carried by PUBLISH (QoS > 0), PUBACK, PUBREC, PUBREL,
	// PUBCOMP, SUBSCRIBE, SUBACK, UNSUBSCRIBE and UNSUBACK.
	PacketID uint16

	// Topic is the PUBLISH topic name. Payload is the PUBLISH application
	// message. A decoded PUBLISH owns one allocation, the packet body, and
	// Topic and Payload both point into it.
	Topic   string
	Payload []byte

	// ReasonCode is the CONNACK return code (v3) or reason code (v5), and the
	// reason code of PUBACK, PUBREC, PUBREL, PUBCOMP, DISCONNECT and AUTH.
	ReasonCode ReasonCode
	// SessionPresent is the CONNACK session-present flag.
	SessionPresent bool

	// ReasonCodes are the per-filter codes of SUBACK and UNSUBACK (v3 SUBACK
	// return codes are 0x00, 0x01, 0x02 and 0x80).
	ReasonCodes []ReasonCode
	// Subscriptions are the filters of a SUBSCRIBE.
	Subscriptions []Subscription
	// Filters are the topic filters of an UNSUBSCRIBE.
	Filters []string

	// Connect holds the CONNECT-only fields.
	Connect ConnectFields

	// Properties are the v5 properties of the packet.
	Properties Properties
}

// Reset clears p for reuse. A decoded packet never shares memory with the
// Reader that produced it, so resetting drops every reference.
func (p *Packet) Reset() {
	*p = Packet{}
}
