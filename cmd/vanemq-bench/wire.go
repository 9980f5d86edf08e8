package main

import (
	"bufio"
	"encoding/binary"
	"fmt"

	"github.com/valyala/bytebufferpool"

	"github.com/vanemq/vanemq/core/packets"
)

// publishTemplate is one PUBLISH encoded by the codec, copied into a batch
// once per message with its packet identifier and send timestamp patched in
// place, so that sending a message encodes nothing.
type publishTemplate struct {
	b     []byte
	idOff int // offset of the packet identifier; -1 for QoS 0
	tsOff int // offset of the 8-byte send timestamp, the payload's start
}

// newPublishTemplate encodes a PUBLISH of protocol version v on topic with
// a zero payload of size bytes (size >= 8).
func newPublishTemplate(topic string, qos, v byte, size int) (publishTemplate, error) {
	p := packets.Packet{
		Type:            packets.Publish,
		ProtocolVersion: v,
		QoS:             qos,
		Topic:           topic,
		Payload:         make([]byte, size),
	}
	if qos > 0 {
		p.PacketID = 1
	}
	buf := bytebufferpool.Get()
	defer bytebufferpool.Put(buf)
	if err := p.Encode(buf); err != nil {
		return publishTemplate{}, fmt.Errorf("encode PUBLISH on %q: %w", topic, err)
	}
	t := publishTemplate{
		b:     append([]byte(nil), buf.B...),
		idOff: -1,
		tsOff: len(buf.B) - size,
	}
	if qos > 0 {
		t.idOff = packets.PublishIDOffset(t.b)
	}
	return t, nil
}

// appendTo appends the message with packet identifier id (ignored for QoS
// 0) and send timestamp ts to dst.
func (t *publishTemplate) appendTo(dst []byte, id uint16, ts int64) []byte {
	off := len(dst)
	dst = append(dst, t.b...)
	binary.BigEndian.PutUint64(dst[off+t.tsOff:], uint64(ts))
	if t.idOff >= 0 {
		binary.BigEndian.PutUint16(dst[off+t.idOff:], id)
	}
	return dst
}

// publishView is a received PUBLISH read in place from a connection's
// buffer: what a subscriber needs of it.
type publishView struct {
	qos     byte
	id      uint16
	payload []byte // valid until the reader advances
	size    int    // the whole packet's length, to discard once handled
}

// peekPublish reads the next packet in place when it is a PUBLISH that fits
// in br's buffer, so that a delivery costs no allocation (the codec's
// Reader gives every PUBLISH a body of its own). It consumes nothing; the
// caller discards v.size bytes once done with v. It reports false for any
// other packet, one too large for the buffer, or anything unusual, which
// the caller then reads with the codec for proper decoding and errors. It
// checks only the framing it needs: topic, packet identifier and property
// lengths.
func peekPublish(br *bufio.Reader, v5 bool) (v publishView, ok bool) {
	head, err := br.Peek(2)
	if err != nil || packets.Type(head[0]>>4) != packets.Publish {
		return v, false
	}
	v.qos = head[0] >> 1 & 0x03
	if v.qos == 3 || (v.qos == 0 && head[0]&0x08 != 0) {
		return v, false
	}
	rem, n := 0, 0
	for i := 1; i <= 4 && n == 0; i++ {
		b, err := br.Peek(i + 1)
		if err != nil {
			return v, false
		}
		rem |= int(b[i]&0x7F) << (7 * (i - 1))
		if b[i] < 0x80 {
			n = i
		}
	}
	if n == 0 {
		return v, false
	}
	v.size = 1 + n + rem
	if v.size > br.Size() {
		return v, false
	}
	pkt, err := br.Peek(v.size)
	if err != nil {
		return v, false
	}
	body := pkt[1+n:]
	if len(body) < 2 {
		return v, false
	}
	i := 2 + int(binary.BigEndian.Uint16(body))
	if v.qos > 0 {
		if len(body) < i+2 {
			return v, false
		}
		v.id = binary.BigEndian.Uint16(body[i:])
		if v.id == 0 {
			return v, false
		}
		i += 2
	}
	if v5 {
		if i >= len(body) {
			return v, false
		}
		plen, m := binary.Uvarint(body[i:])
		if m <= 0 || m > 4 || plen > uint64(len(body)) {
			return v, false
		}
		i += m + int(plen)
	}
	if i > len(body) {
		return v, false
	}
	v.payload = body[i:]
	return v, true
}

// peekAck reads the next packet in place when it is a PUBACK, PUBREC,
// PUBREL or PUBCOMP of the short form: a packet identifier alone (always in
// 3.1.1; in MQTT 5 when the reason code is success and there are no
// properties). It consumes nothing; the caller discards 4 bytes. It reports
// false for anything else, which the caller reads with the codec.
func peekAck(br *bufio.Reader) (t packets.Type, id uint16, ok bool) {
	b, err := br.Peek(2)
	if err != nil || b[1] != 2 {
		return 0, 0, false
	}
	t = packets.Type(b[0] >> 4)
	want := byte(0)
	switch t {
	case packets.Pubrel:
		want = 0x02
	case packets.Puback, packets.Pubrec, packets.Pubcomp:
	default:
		return 0, 0, false
	}
	if b[0]&0x0F != want {
		return 0, 0, false
	}
	if b, err = br.Peek(4); err != nil {
		return 0, 0, false
	}
	id = binary.BigEndian.Uint16(b[2:])
	return t, id, id != 0
}
