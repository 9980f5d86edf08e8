package mqttc

import (
	"context"
	"errors"
	"fmt"

	"github.com/valyala/bytebufferpool"

	"github.com/vanemq/vanemq/core/packets"
	"github.com/vanemq/vanemq/core/topics"
)

// Publish sends m. QoS 0: done (if non-nil) is called once the packet is
// written (or failed), on the writer goroutine. QoS 1 and 2: a packet
// identifier is allocated (never one in use); Publish blocks while the
// number of unacknowledged QoS 1 and 2 publishes equals
// ServerReceiveMaximum [MQTT-4.9.0-2], until one completes, ctx ends
// (error) or the connection ends (error). done, if non-nil, is called
// exactly once: with the PUBACK's code (QoS 1), the PUBREC's code when it is
// 0x80 or above, else the PUBCOMP's code (QoS 2: the client sends PUBREL
// itself on PUBREC), or with a non-nil error when the connection ends
// before that. It runs on the reader goroutine: it must not block, nor wait
// for the server (see Options.OnMessage). Codes are 0 on 3.x.
//
// Publish returns an error, and does not call done, when the message could
// not be queued at all: an invalid topic or QoS, a QoS above the server's
// Maximum QoS or retain when it has none (ErrNotSupported), a packet larger
// than its Maximum Packet Size (ErrPacketTooLarge), ctx ending first, or
// the connection ending. m.Dup is ignored; the Topic Alias and Subscription
// Identifiers of m.Properties are not sent, nor any property in 3.x.
// Publishes from one goroutine are sent in the order of the calls.
func (c *Client) Publish(ctx context.Context, m Message, done func(code packets.ReasonCode, err error)) error {
	if m.QoS > 2 {
		return fmt.Errorf("mqttc: publish: invalid QoS %d", m.QoS)
	}
	if err := topics.ValidateTopicName(m.Topic); err != nil {
		return fmt.Errorf("mqttc: publish: %w", err)
	}
	if m.QoS > c.maxQoS {
		return fmt.Errorf("mqttc: publish at QoS %d: %w: the server's Maximum QoS is %d [MQTT-3.2.2-11]", m.QoS, ErrNotSupported, c.maxQoS)
	}
	if m.Retain && !c.retainAvailable {
		return fmt.Errorf("mqttc: publish with retain: %w: the server has no retained messages [MQTT-3.2.2-14]", ErrNotSupported)
	}
	p := &packets.Packet{Type: packets.Publish, ProtocolVersion: c.version, Topic: m.Topic, Payload: m.Payload, QoS: m.QoS, Retain: m.Retain}
	if c.version == packets.Version5 {
		p.Properties = m.Properties
		p.Properties.Clear(packets.PropTopicAlias)
		p.Properties.TopicAlias = 0
		p.Properties.SubscriptionIDs = nil
	}
	if err := c.checkSize(p); err != nil {
		return err
	}
	if m.QoS == 0 {
		var written func(error)
		if done != nil {
			written = func(err error) { done(0, err) }
		}
		return c.submit(ctx, p, nil, written)
	}
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("mqttc: publish: waiting below the server's receive maximum (%d): %w", c.serverRecvMax, ctx.Err())
	case <-c.quit:
		return c.endErr()
	}
	if err := c.submit(ctx, p, &outFlight{kind: packets.Publish, qos: m.QoS, done: done}, nil); err != nil {
		<-c.sem
		return err
	}
	return nil
}

// Subscribe sends SUBSCRIBE and waits for SUBACK (or ctx); it returns the
// per-filter codes: the granted QoS, or a failure (0x80 and above; 0x80 in
// 3.x). NoLocal, RetainAsPublished and RetainHandling are only sent in v5.
// When ctx ends first, the subscription may still be made.
func (c *Client) Subscribe(ctx context.Context, subs []packets.Subscription) ([]packets.ReasonCode, error) {
	if len(subs) == 0 {
		return nil, errors.New("mqttc: subscribe: no topic filters [MQTT-3.8.3-2]")
	}
	p := &packets.Packet{Type: packets.Subscribe, ProtocolVersion: c.version, Subscriptions: subs}
	r, err := c.request(ctx, p, len(subs))
	if err != nil {
		return nil, err
	}
	return r.codes, nil
}

// Unsubscribe sends UNSUBSCRIBE and waits for UNSUBACK (or ctx). In v5 a
// reason code of 0x80 or above for a filter is returned as an error naming
// the filters refused; No subscription existed (0x11) is not an error.
func (c *Client) Unsubscribe(ctx context.Context, filters []string) error {
	if len(filters) == 0 {
		return errors.New("mqttc: unsubscribe: no topic filters [MQTT-3.10.3-2]")
	}
	p := &packets.Packet{Type: packets.Unsubscribe, ProtocolVersion: c.version, Filters: filters}
	r, err := c.request(ctx, p, len(filters))
	if err != nil {
		return err
	}
	var errs []error
	for i, code := range r.codes {
		if code.IsError() {
			errs = append(errs, fmt.Errorf("mqttc: unsubscribe %q refused: %s", filters[i], code))
		}
	}
	return errors.Join(errs...)
}

// request sends a SUBSCRIBE or UNSUBSCRIBE of n filters and waits for its
// acknowledgement.
func (c *Client) request(ctx context.Context, p *packets.Packet, n int) (ackResult, error) {
	if err := c.checkSize(p); err != nil {
		return ackResult{}, err
	}
	f := &outFlight{kind: p.Type, reply: make(chan ackResult, 1), filters: n}
	if err := c.submit(ctx, p, f, nil); err != nil {
		return ackResult{}, err
	}
	select {
	case r := <-f.reply:
		return r, r.err
	case <-ctx.Done():
		// The identifier stays in use until the acknowledgement comes.
		return ackResult{}, fmt.Errorf("mqttc: waiting for the %s acknowledgement: %w", p.Type, ctx.Err())
	}
}

// checkSize returns an error when p cannot be encoded, or is larger than
// the server's Maximum Packet Size [MQTT-3.2.2-15].
func (c *Client) checkSize(p *packets.Packet) error {
	size := p.Size()
	if size == 0 {
		var bb bytebufferpool.ByteBuffer
		if err := p.Encode(&bb); err != nil {
			return fmt.Errorf("mqttc: encoding %s: %w", p.Type, err)
		}
	}
	if c.serverMaxPacket > 0 && uint64(size) > uint64(c.serverMaxPacket) {
		return fmt.Errorf("mqttc: %s of %d bytes: %w (%d bytes) [MQTT-3.2.2-15]", p.Type, size, ErrPacketTooLarge, c.serverMaxPacket)
	}
	return nil
}

// submit encodes p and queues it for the writer. With f, a packet
// identifier is allocated and f registered under it before p is queued,
// and removed again when p cannot be. written is the QoS 0 done.
func (c *Client) submit(ctx context.Context, p *packets.Packet, f *outFlight, written func(error)) error {
	c.sendMu.RLock()
	defer c.sendMu.RUnlock()
	if c.qclosed {
		return c.endErr()
	}
	select {
	case <-c.quit:
		return c.endErr()
	default:
	}
	if f != nil {
		id, err := c.allocID(f)
		if err != nil {
			return err
		}
		p.PacketID = id
	}
	buf := bytebufferpool.Get()
	err := p.Encode(buf)
	if err == nil {
		select {
		case c.pubq <- &outItem{buf: buf, written: written}:
			return nil
		case <-ctx.Done():
			err = fmt.Errorf("mqttc: %s not queued: %w", p.Type, ctx.Err())
		case <-c.quit:
			err = c.endErr()
		}
	} else {
		err = fmt.Errorf("mqttc: encoding %s: %w", p.Type, err)
	}
	bytebufferpool.Put(buf)
	if f != nil {
		c.mu.Lock()
		if c.out[p.PacketID] == f {
			delete(c.out, p.PacketID)
		}
		c.mu.Unlock()
	}
	return err
}

// allocID allocates a packet identifier not in use and registers f under
// it.
func (c *Client) allocID(f *outFlight) (uint16, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.out == nil {
		return 0, c.endErr()
	}
	for range 65535 {
		id := c.nextID
		c.nextID++
		if c.nextID == 0 {
			c.nextID = 1
		}
		if _, used := c.out[id]; !used {
			c.out[id] = f
			return id, nil
		}
	}
	return 0, ErrNoPacketID
}
