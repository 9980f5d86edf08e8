package sdk

import (
	"errors"
	"fmt"
	"time"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"
)

// The observer stream's batches are decoded here, straight from the wire
// format of pluginv1.EventBatch, instead of through the generated types:
// an event then costs two allocations rather than a dozen, and the
// clients of a batch, which repeat, are decoded once.

// errWire is a batch that is not a valid EventBatch.
var errWire = errors.New("malformed event batch")

// maxClients bounds the decoder's cache of clients.
const maxClients = 4096

// batchDecoder decodes event batches. It keeps the clients it has seen,
// so an Event's Client may be shared with other events.
type batchDecoder struct {
	clients map[string]*Client
}

// decode calls fn for each event of the batch b, in order, and returns
// the batch's dropped count.
func (d *batchDecoder) decode(b []byte, fn func(*Event)) (dropped uint64, err error) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return dropped, errWire
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return dropped, errWire
			}
			b = b[n:]
			ev, err := d.event(v)
			if err != nil {
				return dropped, err
			}
			fn(ev)
		case num == 2 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return dropped, errWire
			}
			b = b[n:]
			dropped = v
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return dropped, errWire
			}
			b = b[n:]
		}
	}
	return dropped, nil
}

// eventAndMessage allocates an event and its message together.
type eventAndMessage struct {
	ev  Event
	msg Message
}

// field is one field of a message being decoded.
type field struct {
	num   protowire.Number
	typ   protowire.Type
	bytes []byte // BytesType
	u     uint64 // VarintType
}

// fields calls fn for each field of the message b.
func fields(b []byte, fn func(f field) error) error {
	var f field
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return errWire
		}
		b = b[n:]
		f = field{num: num, typ: typ}
		switch typ {
		case protowire.BytesType:
			f.bytes, n = consumeBytes(b)
		case protowire.VarintType:
			f.u, n = consumeVarint(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return errWire
		}
		b = b[n:]
		if err := fn(f); err != nil {
			return err
		}
	}
	return nil
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
	return protowire.ConsumeBytes(b)
}

// event decodes one ObservedEvent.
func (d *batchDecoder) event(b []byte) (*Event, error) {
	em := &eventAndMessage{}
	ev := &em.ev
	var nanos int64
	err := fields(b, func(f field) error {
		var err error
		switch {
		case f.typ == protowire.VarintType:
			switch f.num {
			case 1:
				ev.Kind = EventKind(f.u)
			case 5:
				ev.QoS = byte(f.u)
			case 7:
				ev.Code = byte(f.u)
			case 9:
				nanos = int64(f.u)
			}
		case f.typ == protowire.BytesType:
			switch f.num {
			case 2:
				ev.Client, err = d.client(f.bytes)
			case 3:
				ev.Msg = &em.msg
				err = decodeMessage(f.bytes, ev.Msg, ev.Client)
			case 4:
				ev.Filter = string(f.bytes)
			case 6:
				ev.Reason = string(f.bytes)
			case 8:
				ev.ClientID = string(f.bytes)
			}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	ev.Time = time.Unix(0, nanos)
	return ev, nil
}

// client decodes a Client, or returns the one decoded from the same bytes
// before.
func (d *batchDecoder) client(b []byte) (*Client, error) {
	if c, ok := d.clients[string(b)]; ok {
		return c, nil
	}
	c := &Client{}
	err := fields(b, func(f field) error {
		switch {
		case f.typ == protowire.VarintType && f.num == 5:
			c.ProtocolVersion = byte(f.u)
		case f.typ == protowire.VarintType && f.num == 6:
			c.CleanStart = f.u != 0
		case f.typ == protowire.BytesType:
			switch f.num {
			case 1:
				c.ID = string(f.bytes)
			case 2:
				c.Username = string(f.bytes)
			case 3:
				c.Remote = string(f.bytes)
			case 4:
				c.Listener = string(f.bytes)
			case 7:
				c.CertCommonName = string(f.bytes)
			case 8:
				c.CertDNSNames = append(c.CertDNSNames, string(f.bytes))
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if d.clients == nil || len(d.clients) >= maxClients {
		d.clients = make(map[string]*Client)
	}
	d.clients[string(b)] = c
	return c, nil
}

// decodeMessage decodes a Message into m. Its topic and payload share one
// allocation; an origin equal to the client's ID is that string.
func decodeMessage(b []byte, m *Message, cl *Client) error {
	var topic, payload []byte
	err := fields(b, func(f field) error {
		switch {
		case f.typ == protowire.VarintType && f.num == 3:
			m.QoS = byte(f.u)
		case f.typ == protowire.VarintType && f.num == 4:
			m.Retain = f.u != 0
		case f.typ == protowire.BytesType:
			switch f.num {
			case 1:
				topic = f.bytes
			case 2:
				payload = f.bytes
			case 5:
				if cl != nil && string(f.bytes) == cl.ID {
					m.Origin = cl.ID
				} else {
					m.Origin = string(f.bytes)
				}
			case 6:
				return decodeProperties(f.bytes, &m.Properties)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(topic)+len(payload) > 0 {
		buf := make([]byte, len(topic)+len(payload))
		copy(buf, topic)
		copy(buf[len(topic):], payload)
		if len(topic) > 0 {
			m.Topic = unsafe.String(&buf[0], len(topic)) // buf is never written again
		}
		if len(payload) > 0 {
			m.Payload = buf[len(topic):len(buf):len(buf)]
		}
	}
	return nil
}

// decodeProperties decodes Properties into p.
func decodeProperties(b []byte, p *Properties) error {
	return fields(b, func(f field) error {
		switch {
		case f.typ == protowire.VarintType && f.num == 1:
			v := byte(f.u)
			p.PayloadFormat = &v
		case f.typ == protowire.VarintType && f.num == 2:
			v := uint32(f.u)
			p.MessageExpiry = &v
		case f.typ == protowire.BytesType:
			switch f.num {
			case 3:
				p.ContentType = string(f.bytes)
			case 4:
				p.ResponseTopic = string(f.bytes)
			case 5:
				p.CorrelationData = append([]byte(nil), f.bytes...)
			case 6:
				var u UserProperty
				err := fields(f.bytes, func(f field) error {
					if f.typ == protowire.BytesType && f.num == 1 {
						u.Key = string(f.bytes)
					} else if f.typ == protowire.BytesType && f.num == 2 {
						u.Value = string(f.bytes)
					}
					return nil
				})
				if err != nil {
					return fmt.Errorf("user property: %w", err)
				}
				p.UserProperties = append(p.UserProperties, u)
			}
		}
		return nil
	})
}
