package plugins

import (
	"slices"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/packets"
	"github.com/vanemq/vanemq/plugins/proto/pluginv1"
)

// observed is one notification, before encoding. It is passed by pointer
// to a stack value: nothing of it escapes, and what it points to is only
// read while it is encoded (a message's payload may be the reader's).
type observed struct {
	event    pluginv1.Event
	client   *core.ClientInfo
	msg      *core.Message
	filter   string
	qos      uint32
	reason   string
	code     uint32
	clientID string
	nanos    int64
	stats    *core.Stats // sys_tick
}

// The field numbers of plugin.proto used by the encoder.
const (
	fieldBatchEvents  = 1 // EventBatch.events
	fieldBatchDropped = 2 // EventBatch.dropped
)

// appendEvent appends e to b as one element of EventBatch.events, in
// protobuf wire format, the way proto.Marshal would write the
// ObservedEvent that clientProto and messageProto build. It copies what
// it reads: the observer queue encodes an event while the message is
// still valid, with no allocation.
//
// client, when not nil, is e.client already encoded (appendClient).
func appendEvent(b []byte, e *observed, client []byte) []byte {
	b, at := beginEvent(b, e, client)
	b = appendEventFields(b, e)
	return endMessage(b, at)
}

// beginEvent starts an element of EventBatch.events with the fields that
// come first, the event and the client; appendEventFields writes the
// others, which need no lock (see eventQueue.push), and endMessage(b, at)
// ends it.
func beginEvent(b []byte, e *observed, client []byte) ([]byte, int) {
	b, at := beginMessage(b, fieldBatchEvents)
	b = appendUint(b, 1, uint64(e.event))
	switch {
	case client != nil:
		b = appendBytes(b, 2, client)
	case e.client != nil:
		var c int
		b, c = beginMessage(b, 2)
		b = appendClient(b, e.client)
		b = endMessage(b, c)
	}
	return b, at
}

// appendEventWith appends the event whose fields after the client are
// already encoded: the length is known, so it is written first, and
// nothing has to move (as endMessage would move a body longer than 127
// bytes). client is e.client encoded, or nil.
func appendEventWith(b []byte, e *observed, client, fields []byte) []byte {
	n := len(fields)
	if e.event != 0 {
		n += 1 + protowire.SizeVarint(uint64(e.event))
	}
	if client != nil {
		n += 1 + protowire.SizeVarint(uint64(len(client))) + len(client)
	}
	b = appendTag(b, fieldBatchEvents, protowire.BytesType)
	b = appendVarint(b, uint64(n))
	b = appendUint(b, 1, uint64(e.event))
	if client != nil {
		b = appendBytes(b, 2, client)
	}
	return append(b, fields...)
}

// appendEventFields writes an ObservedEvent's fields after the client.
func appendEventFields(b []byte, e *observed) []byte {
	if e.msg != nil {
		var m int
		b, m = beginMessage(b, 3)
		b = appendMessage(b, e.msg)
		b = endMessage(b, m)
	}
	b = appendString(b, 4, e.filter)
	b = appendUint(b, 5, uint64(e.qos))
	b = appendString(b, 6, e.reason)
	b = appendUint(b, 7, uint64(e.code))
	b = appendString(b, 8, e.clientID)
	b = appendUint(b, 9, uint64(e.nanos))
	if e.stats != nil {
		var st int
		b, st = beginMessage(b, 10)
		b = appendStats(b, e.stats)
		b = endMessage(b, st)
	}
	return b
}

// appendStats writes a pluginv1.Stats's fields: every counter, and in
// dropped_by and refused_by every reason and limit, zero or not.
func appendStats(b []byte, st *core.Stats) []byte {
	for i, v := range [...]int64{st.ClientsConnected, st.Sessions, st.Connections, st.MessagesIn, st.MessagesOut,
		st.BytesIn, st.BytesOut, st.Dropped, st.Subscriptions, st.Retained, st.RetainedBytes, st.ProtocolErrors,
		st.HookEventsLost, st.StoreFailures} {
		b = appendUint(b, protowire.Number(i+1), uint64(v))
	}
	entry := func(b []byte, field protowire.Number, k string, v int64) []byte {
		b, at := beginMessage(b, field)
		b = appendString(b, 1, k)
		b = appendUint(b, 2, uint64(v))
		return endMessage(b, at)
	}
	for _, r := range core.DropReasons() {
		b = entry(b, 15, r.String(), st.DroppedBy[r])
	}
	for _, l := range core.Limits() {
		b = entry(b, 16, l.String(), st.RefusedBy[l])
	}
	for i, qs := range [...]*[3]int64{&st.MessagesInByQoS, &st.MessagesOutByQoS, &st.PayloadBytesInByQoS, &st.PayloadBytesOutByQoS} {
		var at int
		b, at = beginMessage(b, protowire.Number(17+i)) // packed
		for _, v := range qs {
			b = appendVarint(b, uint64(v))
		}
		b = endMessage(b, at)
	}
	return b
}

// appendClient writes a pluginv1.Client's fields.
func appendClient(b []byte, cl *core.ClientInfo) []byte {
	b = appendString(b, 1, cl.ID)
	b = appendString(b, 2, cl.Username)
	b = appendString(b, 3, cl.Remote)
	b = appendString(b, 4, cl.Listener)
	b = appendUint(b, 5, uint64(cl.ProtocolVersion))
	if cl.CleanStart {
		b = appendUint(b, 6, 1)
	}
	if cl.TLS != nil && len(cl.TLS.PeerCertificates) > 0 {
		cert := cl.TLS.PeerCertificates[0]
		b = appendString(b, 7, cert.Subject.CommonName)
		for _, n := range cert.DNSNames {
			b = appendString(b, 8, n)
		}
	}
	return b
}

// appendMessage writes a pluginv1.Message's fields.
func appendMessage(b []byte, m *core.Message) []byte {
	b = appendString(b, 1, m.Topic)
	if len(m.Payload) > 0 {
		b = appendBytes(b, 2, m.Payload)
	}
	b = appendUint(b, 3, uint64(m.QoS))
	if m.Retain {
		b = appendUint(b, 4, 1)
	}
	b = appendString(b, 5, m.Origin)
	p := &m.Properties
	if p.Empty() {
		return b
	}
	b, at := beginMessage(b, 6)
	if p.Has(packets.PropPayloadFormat) {
		b = appendTag(b, 1, protowire.VarintType)
		b = appendVarint(b, uint64(p.PayloadFormat))
	}
	if p.Has(packets.PropMessageExpiry) {
		b = appendTag(b, 2, protowire.VarintType)
		b = appendVarint(b, uint64(p.MessageExpiry))
	}
	b = appendString(b, 3, p.ContentType)
	b = appendString(b, 4, p.ResponseTopic)
	if len(p.CorrelationData) > 0 {
		b = appendBytes(b, 5, p.CorrelationData)
	}
	for _, u := range p.UserProperties {
		var up int
		b, up = beginMessage(b, 6)
		b = appendString(b, 1, u.Key)
		b = appendString(b, 2, u.Value)
		b = endMessage(b, up)
	}
	return endMessage(b, at)
}

// appendUint writes a varint field, omitted when zero (proto3).
func appendUint(b []byte, field protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = appendTag(b, field, protowire.VarintType)
	return appendVarint(b, v)
}

// appendTag writes a field's tag: one byte for the field numbers below 16,
// which are all but those of Stats's maps and lists.
func appendTag(b []byte, field protowire.Number, typ protowire.Type) []byte {
	if field < 16 {
		return append(b, byte(field)<<3|byte(typ))
	}
	return protowire.AppendTag(b, field, typ)
}

// appendVarint writes v, with a short path for the one-byte values most
// lengths and numbers are.
func appendVarint(b []byte, v uint64) []byte {
	if v < 0x80 {
		return append(b, byte(v))
	}
	return protowire.AppendVarint(b, v)
}

// appendBytes writes a length-delimited value.
func appendBytes(b []byte, field protowire.Number, v []byte) []byte {
	b = appendTag(b, field, protowire.BytesType)
	b = appendVarint(b, uint64(len(v)))
	return append(b, v...)
}

// appendString writes a string field, omitted when empty (proto3). A
// protobuf string must be UTF-8, or the plugin could not decode the whole
// batch: anything else is repaired.
func appendString(b []byte, field protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	s = validUTF8(s)
	b = appendTag(b, field, protowire.BytesType)
	b = appendVarint(b, uint64(len(s)))
	return append(b, s...)
}

func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// beginMessage starts an embedded message field: its tag and a one-byte
// length placeholder, fixed by endMessage at the returned offset.
func beginMessage(b []byte, field protowire.Number) ([]byte, int) {
	b = appendTag(b, field, protowire.BytesType)
	return append(b, 0), len(b)
}

// endMessage writes the length of the message begun at at, moving its
// body when the length needs more than one byte.
func endMessage(b []byte, at int) []byte {
	n := len(b) - at - 1
	if n < 0x80 {
		b[at] = byte(n)
		return b
	}
	extra := protowire.SizeVarint(uint64(n)) - 1
	b = slices.Grow(b, extra)[:len(b)+extra]
	copy(b[at+1+extra:], b[at+1:len(b)-extra])
	protowire.AppendVarint(b[:at], uint64(n))
	return b
}
