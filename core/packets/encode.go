package packets

import (
	"slices"

	"github.com/valyala/bytebufferpool"
)

// layout is what measuring a packet computes for encoding it: the remaining
// length, and the property lengths that are written before the properties.
type layout struct {
	rem       int // remaining length
	props     int // length of the packet's properties
	willProps int // length of the CONNECT will properties
}

// encodeVersion returns the version p is encoded as: p.ProtocolVersion, 0
// meaning 3.1.1.
func (p *Packet) encodeVersion() (byte, error) {
	switch v := p.ProtocolVersion; v {
	case 0:
		return Version311, nil
	case Version31, Version311, Version5:
		return v, nil
	default:
		return 0, Errorf(UnsupportedProtocolVersion, "cannot encode %s for protocol version %d", p.Type, v)
	}
}

// measure validates that p can be encoded and computes its layout.
func (p *Packet) measure(l *layout) (byte, error) {
	v, err := p.encodeVersion()
	if err != nil {
		return 0, err
	}
	switch p.Type {
	case Connect:
		err = measureConnect(p, v, l)
	case Connack:
		err = measureConnack(p, v, l)
	case Publish:
		err = measurePublish(p, v, l)
	case Puback, Pubrec, Pubrel, Pubcomp:
		err = measureAck(p, v, l)
	case Subscribe:
		err = measureSubscribe(p, v, l)
	case Suback:
		err = measureSuback(p, v, l)
	case Unsubscribe:
		err = measureUnsubscribe(p, v, l)
	case Unsuback:
		err = measureUnsuback(p, v, l)
	case Pingreq, Pingresp:
		l.rem = 0
	case Disconnect, Auth:
		err = measureDisconnectAuth(p, v, l)
	default:
		return 0, Errorf(MalformedPacket, "cannot encode packet type %d", byte(p.Type))
	}
	if err != nil {
		return 0, err
	}
	if l.rem > MaxRemainingLength {
		return 0, Errorf(PacketTooLarge, "%s remaining length %d exceeds %d", p.Type, l.rem, MaxRemainingLength)
	}
	return v, nil
}

// firstByte returns the first byte of the fixed header: the type and its
// flags [MQTT-2.2.2-1].
func (p *Packet) firstByte() byte {
	b := byte(p.Type) << 4
	switch p.Type {
	case Publish:
		b |= publishFlags(p)
	case Pubrel, Subscribe, Unsubscribe:
		b |= 0x02
	}
	return b
}

// Size returns the exact number of bytes Encode would append, or 0 when
// Encode would fail.
func (p *Packet) Size() int {
	var l layout
	if _, err := p.measure(&l); err != nil {
		return 0
	}
	return 1 + varintLen(uint32(l.rem)) + l.rem
}

// Encode appends the whole packet, fixed header included, to buf, in the
// format of p.ProtocolVersion (0 is taken as 3.1.1). It appends nothing and
// returns an *Error when the packet cannot be expressed in that version:
// AUTH before MQTT 5, a QoS or retain handling above 2, a string or binary
// field longer than 65535 bytes, a remaining length above
// MaxRemainingLength, or a CONNACK or SUBACK code with no 3.x equivalent.
//
// Only what the version has is written: properties and the v5 subscription
// options and reason codes are dropped for 3.x, properties a packet type may
// not carry are never written, and a CONNECT of version 3 is sent with the
// protocol name "MQIsdp" (p.Connect.ProtocolName is not used). The CONNECT
// flags say which optional fields are sent (WillFlag, UsernameFlag,
// PasswordFlag). Fields the specification requires to be zero are cleared
// rather than refused: DUP of a QoS 0 PUBLISH, session present of a CONNACK
// with a non-zero code (and in 3.1). In 3.x a CONNACK code at or above 0x80
// is mapped with V3ConnackCode and a SUBACK failure code becomes 0x80.
// Reason codes and property values are otherwise written as they are.
//
// Encoding into a buffer with enough spare capacity allocates nothing.
func (p *Packet) Encode(buf *bytebufferpool.ByteBuffer) error {
	var l layout
	v, err := p.measure(&l)
	if err != nil {
		return err
	}
	b := slices.Grow(buf.B, 1+varintLen(uint32(l.rem))+l.rem)
	b = append(b, p.firstByte())
	b = appendVarint(b, uint32(l.rem))
	switch p.Type {
	case Connect:
		b = appendConnect(b, p, v, &l)
	case Connack:
		b = appendConnack(b, p, v, &l)
	case Publish:
		b = appendPublish(b, p, v, &l)
	case Puback, Pubrec, Pubrel, Pubcomp:
		b = appendAck(b, p, v, &l)
	case Subscribe:
		b = appendSubscribe(b, p, v, &l)
	case Suback:
		b = appendSuback(b, p, v, &l)
	case Unsubscribe:
		b = appendUnsubscribe(b, p, v, &l)
	case Unsuback:
		b = appendUnsuback(b, p, v, &l)
	case Disconnect, Auth:
		b = appendDisconnectAuth(b, p, v, &l)
	}
	buf.B = b
	return nil
}
