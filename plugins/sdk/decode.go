package sdk

import (
	"bytes"
	"errors"
	"fmt"
	"time"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"
)

// The observer stream's batches are decoded here, straight from the wire
// format of pluginv1.EventBatch, instead of through the generated types.
// A batch is copied once, and its events' strings and payloads point into
// that copy; the events themselves are allocated in blocks. An event then
// costs a fraction of an allocation rather than a dozen, and the clients
// of a batch, which repeat, are decoded once. An event kept after Observe
// keeps its block and its batch's copy alive, nothing more.

// errWire is a batch that is not a valid EventBatch.
var errWire = errors.New("malformed event batch")

const (
	// maxClients and maxClientBytes bound the decoder's cache of clients,
	// which outlives batches: in clients, and in the bytes they keep
	// (clientSize). A client ID and a username may each be 64 KiB long,
	// and a batch 512 MiB: the count alone would let clients that connect
	// with long names make every observer keep gigabytes.
	maxClients     = 4096
	maxClientBytes = 4 << 20
	// eventBlock is the most events allocated together.
	eventBlock = 64
)

// batchDecoder decodes event batches. It keeps the clients it has seen,
// so an Event's Client may be shared with other events.
type batchDecoder struct {
	clients     map[string]*Client
	clientBytes int               // the clientSize of those in clients
	block       []eventAndMessage // allocated, not yet handed out
}

// eventAndMessage is an event with room for its message and the message's
// optional properties.
type eventAndMessage struct {
	ev     Event
	msg    Message
	format byte
	expiry uint32
}

// fieldReader reads a protobuf message's fields in turn.
type fieldReader struct {
	b   []byte
	err error
	// The field read by next: its number and type, and its value for the
	// varint and length-delimited types.
	num   protowire.Number
	typ   protowire.Type
	u     uint64
	bytes []byte
}

// next reads the next field; false at the end or on malformed input
// (then err is set).
func (r *fieldReader) next() bool {
	if len(r.b) == 0 {
		return false
	}
	num, typ, n := consumeTag(r.b)
	if n < 0 {
		r.err = errWire
		return false
	}
	r.b = r.b[n:]
	r.num, r.typ = num, typ
	switch typ {
	case protowire.BytesType:
		r.bytes, n = consumeBytes(r.b)
	case protowire.VarintType:
		r.u, n = consumeVarint(r.b)
	default:
		n = protowire.ConsumeFieldValue(num, typ, r.b)
	}
	if n < 0 {
		r.err = errWire
		return false
	}
	r.b = r.b[n:]
	return true
}

// is reports whether the field read is num, of type typ.
func (r *fieldReader) is(num protowire.Number, typ protowire.Type) bool {
	return r.num == num && r.typ == typ
}

// decode calls fn for each event of the batch b, in order, and returns
// the batch's dropped count. It does not keep b.
func (d *batchDecoder) decode(b []byte, fn func(*Event)) (dropped uint64, err error) {
	left, err := countEvents(b)
	if err != nil {
		return 0, err
	}
	if left > 0 {
		b = bytes.Clone(b) // the events' strings and payloads point into it
	}
	defer func() { d.block = nil }()
	r := fieldReader{b: b}
	for r.next() {
		switch {
		case r.is(1, protowire.BytesType):
			if len(d.block) == 0 {
				d.block = make([]eventAndMessage, min(left, eventBlock))
			}
			em := &d.block[0]
			d.block = d.block[1:]
			left--
			if err := d.event(r.bytes, em); err != nil {
				return dropped, err
			}
			fn(&em.ev)
		case r.is(2, protowire.VarintType):
			dropped = r.u
		}
	}
	return dropped, r.err
}

// countEvents returns the number of events in a batch.
func countEvents(b []byte) (int, error) {
	n := 0
	r := fieldReader{b: b}
	for r.next() {
		if r.is(1, protowire.BytesType) {
			n++
		}
	}
	return n, r.err
}

// str is b as a string, without a copy: b is the decoder's copy of a
// batch, or a client's key in its cache, never written.
func str(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// event decodes one ObservedEvent into em.
func (d *batchDecoder) event(b []byte, em *eventAndMessage) error {
	ev := &em.ev
	var nanos int64
	r := fieldReader{b: b}
	for r.next() {
		var err error
		switch r.typ {
		case protowire.VarintType:
			switch r.num {
			case 1:
				ev.Kind = EventKind(r.u)
			case 5:
				ev.QoS = byte(r.u)
			case 7:
				ev.Code = ReasonCode(r.u)
			case 9:
				nanos = int64(r.u)
			}
		case protowire.BytesType:
			switch r.num {
			case 2:
				ev.Client, err = d.client(r.bytes)
			case 3:
				ev.Msg = &em.msg
				err = decodeMessage(r.bytes, em)
			case 4:
				ev.Filter = str(r.bytes)
			case 6:
				ev.Reason = str(r.bytes)
			case 8:
				ev.ClientID = str(r.bytes)
			case 10:
				ev.Stats, err = decodeStats(r.bytes)
			}
		}
		if err != nil {
			return err
		}
	}
	ev.Time = time.Unix(0, nanos)
	return r.err
}

// client decodes a Client, or returns the one decoded from the same bytes
// before. It is decoded from a copy of b, its key in the cache, and its
// strings point into that copy: the cache does not keep batches.
func (d *batchDecoder) client(b []byte) (*Client, error) {
	if c, ok := d.clients[string(b)]; ok {
		return c, nil
	}
	key := string(b)
	c := &Client{}
	r := fieldReader{b: unsafe.Slice(unsafe.StringData(key), len(key))}
	for r.next() {
		switch {
		case r.is(5, protowire.VarintType):
			c.ProtocolVersion = byte(r.u)
		case r.is(6, protowire.VarintType):
			c.CleanStart = r.u != 0
		case r.typ == protowire.BytesType:
			switch r.num {
			case 1:
				c.ID = str(r.bytes)
			case 2:
				c.Username = str(r.bytes)
			case 3:
				c.Remote = str(r.bytes)
			case 4:
				c.Listener = str(r.bytes)
			case 7:
				c.CertCommonName = str(r.bytes)
			case 8:
				c.CertDNSNames = append(c.CertDNSNames, str(r.bytes))
			}
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	size := clientSize(key, c)
	if size > maxClientBytes {
		return c, nil // not kept: it would be the whole cache
	}
	if d.clients == nil || len(d.clients) >= maxClients || d.clientBytes+size > maxClientBytes {
		d.clients = make(map[string]*Client)
		d.clientBytes = 0
	}
	d.clients[key] = c
	d.clientBytes += size
	return c, nil
}

// clientSize is what the cache keeps for c, decoded from key: the key,
// which c's strings point into, c and its names.
func clientSize(key string, c *Client) int {
	return len(key) + int(unsafe.Sizeof(*c)) + cap(c.CertDNSNames)*int(unsafe.Sizeof(""))
}

// decodeMessage decodes em's Message. An origin equal to the event's
// client's ID is that string.
func decodeMessage(b []byte, em *eventAndMessage) error {
	m := &em.msg
	r := fieldReader{b: b}
	for r.next() {
		switch {
		case r.is(3, protowire.VarintType):
			m.QoS = byte(r.u)
		case r.is(4, protowire.VarintType):
			m.Retain = r.u != 0
		case r.typ == protowire.BytesType:
			switch r.num {
			case 1:
				m.Topic = str(r.bytes)
			case 2:
				if len(r.bytes) > 0 {
					m.Payload = r.bytes
				}
			case 5:
				if cl := em.ev.Client; cl != nil && str(r.bytes) == cl.ID {
					m.Origin = cl.ID
				} else {
					m.Origin = str(r.bytes)
				}
			case 6:
				if err := decodeProperties(r.bytes, em); err != nil {
					return err
				}
			}
		}
	}
	return r.err
}

// decodeProperties decodes em's message's Properties.
func decodeProperties(b []byte, em *eventAndMessage) error {
	p := &em.msg.Properties
	r := fieldReader{b: b}
	for r.next() {
		switch {
		case r.is(1, protowire.VarintType):
			em.format = byte(r.u)
			p.PayloadFormat = &em.format
		case r.is(2, protowire.VarintType):
			em.expiry = uint32(r.u)
			p.MessageExpiry = &em.expiry
		case r.typ == protowire.BytesType:
			switch r.num {
			case 3:
				p.ContentType = str(r.bytes)
			case 4:
				p.ResponseTopic = str(r.bytes)
			case 5:
				p.CorrelationData = r.bytes
			case 6:
				u, err := userProperty(r.bytes)
				if err != nil {
					return err
				}
				p.UserProperties = append(p.UserProperties, u)
			}
		}
	}
	return r.err
}

// decodeStats decodes a Stats: one a $SYS round, so it is allocated.
func decodeStats(b []byte) (*Stats, error) {
	st := &Stats{}
	counters := [...]*int64{&st.ClientsConnected, &st.Sessions, &st.Connections, &st.MessagesIn, &st.MessagesOut,
		&st.BytesIn, &st.BytesOut, &st.Dropped, &st.Subscriptions, &st.Retained, &st.RetainedBytes, &st.ProtocolErrors,
		&st.HookEventsLost, &st.StoreFailures}
	byQoS := [...]*[3]int64{&st.MessagesInByQoS, &st.MessagesOutByQoS, &st.PayloadBytesInByQoS, &st.PayloadBytesOutByQoS}
	var filled [len(byQoS)]int
	put := func(list int, v uint64) { // beyond QoS 2: ignored
		if i := filled[list]; i < len(byQoS[list]) {
			byQoS[list][i] = int64(v)
			filled[list]++
		}
	}
	r := fieldReader{b: b}
	for r.next() {
		switch n := int(r.num); {
		case r.typ == protowire.VarintType && n >= 1 && n <= len(counters):
			*counters[n-1] = int64(r.u)
		case r.typ == protowire.BytesType && (n == 15 || n == 16):
			k, v, err := statsEntry(r.bytes)
			if err != nil {
				return nil, err
			}
			m := &st.DroppedBy
			if n == 16 {
				m = &st.RefusedBy
			}
			if *m == nil {
				*m = make(map[string]int64)
			}
			(*m)[k] = v
		case r.typ == protowire.BytesType && n >= 17 && n < 17+len(byQoS): // packed, as the broker writes them
			for rest := r.bytes; len(rest) > 0; {
				v, c := consumeVarint(rest)
				if c < 0 {
					return nil, errWire
				}
				put(n-17, v)
				rest = rest[c:]
			}
		case r.typ == protowire.VarintType && n >= 17 && n < 17+len(byQoS): // unpacked, as a parser must also take them
			put(n-17, r.u)
		}
	}
	return st, r.err
}

// statsEntry decodes a map<string, int64> entry.
func statsEntry(b []byte) (string, int64, error) {
	var k string
	var v int64
	r := fieldReader{b: b}
	for r.next() {
		switch {
		case r.is(1, protowire.BytesType):
			k = string(r.bytes)
		case r.is(2, protowire.VarintType):
			v = int64(r.u)
		}
	}
	return k, v, r.err
}

// userProperty decodes a UserProperty.
func userProperty(b []byte) (UserProperty, error) {
	var u UserProperty
	r := fieldReader{b: b}
	for r.next() {
		switch {
		case r.is(1, protowire.BytesType):
			u.Key = str(r.bytes)
		case r.is(2, protowire.BytesType):
			u.Value = str(r.bytes)
		}
	}
	if r.err != nil {
		return u, fmt.Errorf("user property: %w", r.err)
	}
	return u, nil
}

// consumeTag, consumeVarint and consumeBytes are protowire's, with a short
// path for the one-byte tags, numbers and lengths most fields have.
func consumeTag(b []byte) (protowire.Number, protowire.Type, int) {
	if len(b) > 0 && b[0] < 0x80 && b[0]>>3 != 0 {
		return protowire.Number(b[0] >> 3), protowire.Type(b[0] & 7), 1
	}
	return protowire.ConsumeTag(b)
}

func consumeVarint(b []byte) (uint64, int) {
	if len(b) > 0 && b[0] < 0x80 {
		return uint64(b[0]), 1
	}
	return protowire.ConsumeVarint(b)
}

func consumeBytes(b []byte) ([]byte, int) {
	if len(b) > 0 && b[0] < 0x80 {
		if n := int(b[0]); n < len(b) {
			return b[1 : 1+n : 1+n], 1 + n
		}
	}
	v, n := protowire.ConsumeBytes(b)
	return v[:len(v):len(v)], n // capped: appending to a payload must not write over what follows
}
