package storage

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/valyala/bytebufferpool"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/packets"
)

// space is the kind of a record; engines keep each kind apart. Records of
// the client spaces belong to one client and are removed with it (purge).
type space byte

// The record spaces.
const (
	spaceMeta         space = 'v' // schema version
	spaceSession      space = 's' // client: session (key empty)
	spaceSubscription space = 'b' // client: subscription (key: filter)
	spaceDelivery     space = 'q' // client: delivery (key: seq, big endian)
	spaceInbound      space = 'i' // client: inbound QoS 2 (key: packet ID, big endian)
	spaceMessage      space = 'm' // message body (key: message ID, big endian)
	spaceRetained     space = 'r' // retained message (key: topic)
)

// clientSpaces are the spaces whose records belong to a client.
var clientSpaces = []space{spaceSession, spaceSubscription, spaceDelivery, spaceInbound}

// isClientSpace reports whether records of sp belong to a client.
func isClientSpace(sp space) bool {
	return sp == spaceSession || sp == spaceSubscription || sp == spaceDelivery || sp == spaceInbound
}

// schema names the record layout; a store written with another one is
// refused rather than misread.
const schema = "vanemq-store/1"

// recordVersion leads every value, so a record layout can change later.
const recordVersion = 1

// errCorrupt marks a record that does not decode.
var errCorrupt = errors.New("corrupt record")

func u64key(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func u16key(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

// sessionRecordV2 is the session record's version since it carries the
// session's owner; version 1 records (without one) are still read.
const sessionRecordV2 = 2

// encodeSession encodes a session record: expiry, disconnection time and
// owner (user name and certificate subject, each length-prefixed).
func encodeSession(b []byte, expiry uint32, disconnected time.Time, owner core.Identity) []byte {
	b = append(b, sessionRecordV2)
	b = binary.BigEndian.AppendUint32(b, expiry)
	var at int64
	if !disconnected.IsZero() {
		at = disconnected.UnixNano()
	}
	b = binary.BigEndian.AppendUint64(b, uint64(at))
	b = binary.AppendUvarint(b, uint64(len(owner.Username)))
	b = append(b, owner.Username...)
	b = binary.AppendUvarint(b, uint64(len(owner.CertSubject)))
	return append(b, owner.CertSubject...)
}

// decodeSession decodes a session record; owner is nil for a version 1
// record, written before sessions recorded their owner.
func decodeSession(v []byte) (expiry uint32, disconnected time.Time, owner *core.Identity, err error) {
	if len(v) < 13 || (v[0] != recordVersion && v[0] != sessionRecordV2) || (v[0] == recordVersion && len(v) != 13) {
		return 0, time.Time{}, nil, fmt.Errorf("session: %w", errCorrupt)
	}
	expiry = binary.BigEndian.Uint32(v[1:])
	if at := int64(binary.BigEndian.Uint64(v[5:])); at != 0 {
		disconnected = time.Unix(0, at)
	}
	if v[0] == recordVersion {
		return expiry, disconnected, nil, nil
	}
	rest := v[13:]
	var parts [2]string
	for i := range parts {
		n, k := binary.Uvarint(rest)
		if k <= 0 || n > uint64(len(rest)-k) {
			return 0, time.Time{}, nil, fmt.Errorf("session owner: %w", errCorrupt)
		}
		parts[i] = string(rest[k : k+int(n)])
		rest = rest[k+int(n):]
	}
	if len(rest) != 0 {
		return 0, time.Time{}, nil, fmt.Errorf("session: %w", errCorrupt)
	}
	return expiry, disconnected, &core.Identity{Username: parts[0], CertSubject: parts[1]}, nil
}

// encodeSubscription encodes a subscription's options (the filter is the key).
func encodeSubscription(b []byte, s *core.StoredSubscription) []byte {
	var flags byte
	if s.NoLocal {
		flags |= 1
	}
	if s.RetainAsPublished {
		flags |= 2
	}
	b = append(b, recordVersion, s.QoS, flags, s.RetainHandling)
	return binary.BigEndian.AppendUint32(b, s.Identifier)
}

func decodeSubscription(filter string, v []byte) (core.StoredSubscription, error) {
	if len(v) != 8 || v[0] != recordVersion || v[1] > 2 || v[3] > 2 {
		return core.StoredSubscription{}, fmt.Errorf("subscription %q: %w", filter, errCorrupt)
	}
	return core.StoredSubscription{
		Filter: filter, QoS: v[1], NoLocal: v[2]&1 != 0, RetainAsPublished: v[2]&2 != 0,
		RetainHandling: v[3], Identifier: binary.BigEndian.Uint32(v[4:]),
	}, nil
}

// encodeDelivery encodes one delivery: the message it refers to and this
// subscriber's view of it.
func encodeDelivery(b []byte, op *core.StoreOp) []byte {
	var flags byte
	if op.Retain {
		flags |= 1
	}
	if op.Pubrec {
		flags |= 2
	}
	b = append(b, recordVersion)
	b = binary.BigEndian.AppendUint64(b, op.MessageID)
	b = append(b, op.QoS, flags)
	b = binary.BigEndian.AppendUint16(b, op.PacketID)
	b = binary.AppendUvarint(b, uint64(len(op.SubscriptionIDs)))
	for _, id := range op.SubscriptionIDs {
		b = binary.AppendUvarint(b, uint64(id))
	}
	return b
}

// storedDelivery is a decoded delivery record, its message not yet joined.
type storedDelivery struct {
	core.StoredDelivery
	messageID uint64
}

func decodeDelivery(seq uint64, v []byte) (storedDelivery, error) {
	bad := fmt.Errorf("delivery %d: %w", seq, errCorrupt)
	if len(v) < 14 || v[0] != recordVersion || v[9] > 2 {
		return storedDelivery{}, bad
	}
	d := storedDelivery{messageID: binary.BigEndian.Uint64(v[1:])}
	d.Seq = seq
	d.QoS = v[9]
	d.Retain = v[10]&1 != 0
	d.Pubrec = v[10]&2 != 0
	d.PacketID = binary.BigEndian.Uint16(v[11:])
	rest := v[13:]
	n, k := binary.Uvarint(rest)
	if k <= 0 || n > uint64(len(rest)) {
		return storedDelivery{}, bad
	}
	rest = rest[k:]
	for range n {
		id, k := binary.Uvarint(rest)
		if k <= 0 || id == 0 || id > 268435455 {
			return storedDelivery{}, bad
		}
		d.SubscriptionIDs = append(d.SubscriptionIDs, uint32(id))
		rest = rest[k:]
	}
	if len(rest) != 0 {
		return storedDelivery{}, bad
	}
	return d, nil
}

// encodeMessage encodes a message: when it expires, its origin, and the
// message itself as an MQTT 5 PUBLISH, so that decoding it goes through
// the broker's own, hardened, packet decoder.
func encodeMessage(b []byte, m *core.StoredMessage) ([]byte, error) {
	b = append(b, recordVersion)
	var exp int64
	if !m.Expires.IsZero() {
		exp = m.Expires.UnixNano()
	}
	b = binary.BigEndian.AppendUint64(b, uint64(exp))
	b = binary.AppendUvarint(b, uint64(len(m.Origin)))
	b = append(b, m.Origin...)
	p := packets.Packet{
		Type: packets.Publish, ProtocolVersion: packets.Version5,
		Topic: m.Topic, Payload: m.Payload, QoS: m.QoS, Retain: m.Retain, Properties: m.Properties,
	}
	p.Properties.Clear(packets.PropMessageExpiry) // kept as Expires
	p.Properties.MessageExpiry = 0
	if p.QoS > 0 {
		p.PacketID = 1
	}
	buf := bytebufferpool.Get()
	defer bytebufferpool.Put(buf)
	if err := p.Encode(buf); err != nil {
		return b, fmt.Errorf("encoding message on %q: %w", m.Topic, err)
	}
	return append(b, buf.B...), nil
}

func decodeMessage(id uint64, v []byte) (core.StoredMessage, error) {
	bad := func(cause error) error {
		if cause != nil {
			return fmt.Errorf("message %d: %w: %w", id, errCorrupt, cause)
		}
		return fmt.Errorf("message %d: %w", id, errCorrupt)
	}
	if len(v) < 10 || v[0] != recordVersion {
		return core.StoredMessage{}, bad(nil)
	}
	m := core.StoredMessage{ID: id}
	if exp := int64(binary.BigEndian.Uint64(v[1:])); exp != 0 {
		m.Expires = time.Unix(0, exp)
	}
	rest := v[9:]
	n, k := binary.Uvarint(rest)
	if k <= 0 || n > uint64(len(rest)-k) {
		return core.StoredMessage{}, bad(nil)
	}
	m.Origin = string(rest[k : k+int(n)])
	rest = rest[k+int(n):]
	r := packets.NewReader(bufio.NewReaderSize(bytes.NewReader(rest), max(len(rest), 16)), uint32(len(rest)))
	r.SetVersion(packets.Version5)
	var p packets.Packet
	if err := r.ReadPacket(&p); err != nil {
		return core.StoredMessage{}, bad(err)
	}
	if p.Type != packets.Publish {
		return core.StoredMessage{}, bad(nil)
	}
	m.Topic, m.Payload, m.QoS, m.Retain, m.Properties = p.Topic, p.Payload, p.QoS, p.Retain, p.Properties
	return m, nil
}
