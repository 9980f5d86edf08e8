package mqttc

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/vanemq/vanemq/core/packets"
)

// readLoop is the reader: it decodes and handles packets until the
// connection ends, then waits for the other goroutines and fails what
// still waits (finish).
func (c *Client) readLoop(r *packets.Reader) {
	c.fail(c.readPackets(r))
	c.wg.Wait()
	c.finish()
}

// readPackets reads and handles packets until an error, which it returns.
func (c *Client) readPackets(r *packets.Reader) error {
	var p packets.Packet
	for {
		if err := r.ReadPacket(&p); err != nil {
			select {
			case <-c.quit: // closed on purpose; the cause is recorded
				return err
			default:
			}
			var pe *packets.Error
			if errors.As(err, &pe) {
				return c.abort(fmt.Errorf("mqttc: bad packet from the server: %w", err))
			}
			return fmt.Errorf("mqttc: read: %w", err)
		}
		c.lastRead.Store(c.now())
		if err := c.handle(&p); err != nil {
			return c.abort(err)
		}
	}
}

// abort ends the connection for a protocol error err: in v5 a DISCONNECT
// with err's reason code goes first (MQTT 5.0 section 4.13.1). It returns
// err.
func (c *Client) abort(err error) error {
	c.setErr(err)
	var de *DisconnectError
	if c.version != packets.Version5 || errors.As(err, &de) {
		return err
	}
	code := packets.CodeOf(err)
	if !disconnectCode(code) {
		code = packets.ProtocolError
	}
	c.log.Warn("mqttc: protocol error: disconnecting", "reason", code.String(), "cause", err)
	if c.queueFinal(code) {
		t := time.NewTimer(abortWait)
		select {
		case <-c.writerDone:
		case <-t.C:
		}
		t.Stop()
	}
	return err
}

// disconnectCode reports whether a client may send code in a DISCONNECT
// for an error (MQTT 5.0 section 3.14.2.1).
func disconnectCode(code packets.ReasonCode) bool {
	switch code {
	case packets.MalformedPacket, packets.ProtocolError,
		packets.ImplementationSpecificError, packets.TopicNameInvalid,
		packets.ReceiveMaximumExceeded, packets.TopicAliasInvalid, packets.PacketTooLarge,
		packets.MessageRateTooHigh, packets.QuotaExceeded, packets.AdministrativeAction,
		packets.PayloadFormatInvalid:
		return true
	}
	return false
}

// protoErr returns a protocol error (0x82) with a formatted message.
func protoErr(format string, args ...any) error {
	return fmt.Errorf("mqttc: %w", packets.Errorf(packets.ProtocolError, format, args...))
}

// handle handles one packet from the server. An error ends the connection.
func (c *Client) handle(p *packets.Packet) error {
	switch p.Type {
	case packets.Publish:
		return c.handlePublish(p)
	case packets.Puback:
		return c.handlePuback(p)
	case packets.Pubrec:
		return c.handlePubrec(p)
	case packets.Pubrel:
		return c.handlePubrel(p)
	case packets.Pubcomp:
		return c.handlePubcomp(p)
	case packets.Suback, packets.Unsuback:
		return c.handleSubAck(p)
	case packets.Pingresp:
		c.pingSent.Store(0)
		return nil
	case packets.Disconnect:
		return &DisconnectError{Code: p.ReasonCode, Reason: p.Properties.ReasonString}
	default:
		// CONNECT, CONNACK, SUBSCRIBE, UNSUBSCRIBE, PINGREQ, and AUTH
		// (the client never asks for enhanced authentication).
		return protoErr("the server sent %s", p.Type)
	}
}

// handlePublish delivers an inbound PUBLISH, or answers its duplicate.
func (c *Client) handlePublish(p *packets.Packet) error {
	if c.version == packets.Version5 && p.Properties.Has(packets.PropTopicAlias) {
		// The client announces no Topic Alias Maximum, so a server
		// should send none [MQTT-3.3.2-10]; they are resolved anyway.
		a := p.Properties.TopicAlias
		if p.Topic == "" {
			t, ok := c.aliases[a]
			if !ok {
				return protoErr("PUBLISH with Topic Alias %d, which has no mapping (MQTT 5.0 section 3.3.2.3.4)", a)
			}
			p.Topic = t
		} else {
			c.aliases[a] = p.Topic
		}
		p.Properties.Clear(packets.PropTopicAlias)
		p.Properties.TopicAlias = 0
	}
	// A decoded PUBLISH owns its body (packets.Reader): the message may
	// keep pointing into it.
	m := Message{Topic: p.Topic, Payload: p.Payload, QoS: p.QoS, Retain: p.Retain, Dup: p.Dup, Properties: p.Properties}
	if p.QoS == 0 {
		c.deliver(m, func(packets.ReasonCode) {})
		return nil
	}
	id := p.PacketID
	c.mu.Lock()
	if e, ok := c.in[id]; ok {
		if e.qos != p.QoS {
			c.mu.Unlock()
			return protoErr("QoS %d PUBLISH with packet identifier %d, in use by a QoS %d message", p.QoS, id, e.qos)
		}
		// A re-sent message not yet completed: not delivered again
		// [MQTT-4.3.3-10]; a QoS 2 one whose PUBREC was sent gets it
		// again.
		if e.qos == 2 && e.acked {
			c.sendCtrl(&packets.Packet{Type: packets.Pubrec, PacketID: id, ReasonCode: e.code})
		}
		c.mu.Unlock()
		c.log.Debug("mqttc: duplicate PUBLISH not delivered again", "packet_id", id, "qos", p.QoS, "dup", p.Dup)
		return nil
	}
	if c.version == packets.Version5 && len(c.in) >= int(c.recvMax) {
		c.mu.Unlock()
		return fmt.Errorf("mqttc: %w", packets.Errorf(packets.ReceiveMaximumExceeded,
			"the server sent more than %d unacknowledged QoS 1 and 2 PUBLISH packets [MQTT-3.3.4-9]", c.recvMax))
	}
	e := &inFlight{qos: p.QoS}
	c.in[id] = e
	c.mu.Unlock()
	var once atomic.Bool
	c.deliver(m, func(code packets.ReasonCode) {
		if !once.CompareAndSwap(false, true) {
			c.log.Warn("mqttc: message acknowledged twice", "packet_id", id)
			return
		}
		c.ack(id, e, code)
	})
	return nil
}

// deliver hands m to OnMessage, or acknowledges it when there is none.
func (c *Client) deliver(m Message, ack func(packets.ReasonCode)) {
	if c.onMessage == nil {
		ack(packets.Success)
		return
	}
	c.onMessage(m, ack)
}

// ack sends the acknowledgement of inbound message e, packet identifier
// id, with reason code code.
func (c *Client) ack(id uint16, e *inFlight, code packets.ReasonCode) {
	if c.version != packets.Version5 {
		code = packets.Success
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.in[id] != e {
		return // the connection ended
	}
	kind := packets.Puback
	if e.qos == 2 {
		kind = packets.Pubrec
	}
	if e.qos == 1 || code.IsError() {
		// Done: a PUBREC with an error code ends a QoS 2 flow, and the
		// identifier is free again [MQTT-4.3.3-9].
		delete(c.in, id)
	} else {
		e.acked, e.code = true, code
	}
	c.sendCtrl(&packets.Packet{Type: kind, PacketID: id, ReasonCode: code})
}

// handlePubrel completes an inbound QoS 2 flow with PUBCOMP [MQTT-4.3.3-11].
func (c *Client) handlePubrel(p *packets.Packet) error {
	id := p.PacketID
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.in[id]
	switch {
	case !ok:
		// Already completed (a PUBREL re-sent after a reconnection, say).
		code := packets.Success
		if c.version == packets.Version5 {
			code = packets.PacketIdentifierNotFound
		}
		c.sendCtrl(&packets.Packet{Type: packets.Pubcomp, PacketID: id, ReasonCode: code})
		c.log.Debug("mqttc: PUBREL for an unknown packet identifier", "packet_id", id)
	case e.qos != 2 || !e.acked:
		return protoErr("PUBREL for packet identifier %d, whose PUBREC was not sent", id)
	default:
		delete(c.in, id)
		c.sendCtrl(&packets.Packet{Type: packets.Pubcomp, PacketID: id})
	}
	return nil
}

// takeOut removes and returns the outbound publish of packet identifier id
// when it is one of QoS qos (and, for QoS 2, released as asked), and
// frees its Receive Maximum slot.
func (c *Client) takeOut(p *packets.Packet, qos byte, released bool) (*outFlight, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, ok := c.out[p.PacketID]
	if !ok {
		c.log.Debug("mqttc: acknowledgement for an unknown packet identifier", "type", p.Type, "packet_id", p.PacketID)
		return nil, nil
	}
	if f.kind != packets.Publish || f.qos != qos || (qos == 2 && f.released != released) {
		return nil, protoErr("%s for packet identifier %d, which is not awaiting it", p.Type, p.PacketID)
	}
	delete(c.out, p.PacketID)
	if !f.noSlot {
		<-c.sem
	}
	return f, nil
}

// handlePuback completes a QoS 1 publish.
func (c *Client) handlePuback(p *packets.Packet) error {
	f, err := c.takeOut(p, 1, false)
	if f != nil && f.done != nil {
		f.done(p.ReasonCode, nil)
	}
	return err
}

// handlePubrec answers PUBREC with PUBREL [MQTT-4.3.3-4], or completes the
// publish when the code refuses it.
func (c *Client) handlePubrec(p *packets.Packet) error {
	if p.ReasonCode.IsError() {
		f, err := c.takeOut(p, 2, false)
		if f != nil && f.done != nil {
			f.done(p.ReasonCode, nil)
		}
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	f, ok := c.out[p.PacketID]
	code := packets.Success
	switch {
	case !ok:
		if c.version == packets.Version5 {
			code = packets.PacketIdentifierNotFound
		}
		c.log.Debug("mqttc: PUBREC for an unknown packet identifier", "packet_id", p.PacketID)
	case f.kind != packets.Publish || f.qos != 2:
		return protoErr("PUBREC for packet identifier %d, which is not a QoS 2 PUBLISH", p.PacketID)
	default:
		f.released = true // a repeated PUBREC gets PUBREL again
	}
	c.sendCtrl(&packets.Packet{Type: packets.Pubrel, PacketID: p.PacketID, ReasonCode: code})
	return nil
}

// handlePubcomp completes a QoS 2 publish.
func (c *Client) handlePubcomp(p *packets.Packet) error {
	f, err := c.takeOut(p, 2, true)
	if f != nil && f.done != nil {
		f.done(p.ReasonCode, nil)
	}
	return err
}

// handleSubAck hands a SUBACK or UNSUBACK to its caller.
func (c *Client) handleSubAck(p *packets.Packet) error {
	want := packets.Subscribe
	if p.Type == packets.Unsuback {
		want = packets.Unsubscribe
	}
	c.mu.Lock()
	f, ok := c.out[p.PacketID]
	if ok && f.kind == want {
		delete(c.out, p.PacketID)
	}
	c.mu.Unlock()
	switch {
	case !ok:
		c.log.Debug("mqttc: acknowledgement for an unknown packet identifier", "type", p.Type, "packet_id", p.PacketID)
		return nil
	case f.kind != want:
		return protoErr("%s for packet identifier %d, which is not a %s", p.Type, p.PacketID, want)
	case (p.Type == packets.Suback || c.version == packets.Version5) && len(p.ReasonCodes) != f.filters:
		err := protoErr("%s has %d reason codes for %d topic filters [MQTT-3.9.3-1] [MQTT-3.11.3-1]", p.Type, len(p.ReasonCodes), f.filters)
		f.reply <- ackResult{err: err}
		return err
	}
	f.reply <- ackResult{codes: p.ReasonCodes}
	return nil
}
