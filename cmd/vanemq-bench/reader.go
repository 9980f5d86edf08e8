package main

import (
	"fmt"

	"github.com/vanemq/vanemq/core/packets"
)

// When the reader flushes before its input runs dry: acknowledgements are
// written once this many bytes are waiting, completed identifiers handed
// back to the publisher once this many are waiting.
const (
	ackFlushBytes = 16 << 10
	idFlushCount  = 64
)

// readLoop is the connection's reader goroutine. It reads until the
// connection fails or is closed; a failure while the run is not closing
// aborts the run.
func (c *mqttConn) readLoop(st *runState) {
	err := c.serve()
	if c.sink != nil {
		c.sink.flush()
	}
	if !st.closing.Load() {
		st.fail(c.errorf("%w", err))
	}
}

// serve reads and handles packets. Acknowledgements and completed
// identifiers are gathered while more input is buffered, and written or
// released when it runs dry, so that one write answers one read.
func (c *mqttConn) serve() error {
	for {
		if err := c.readOne(); err != nil {
			return err
		}
		if c.br.Buffered() == 0 || c.out.Len() >= ackFlushBytes || len(c.freed) >= idFlushCount {
			if err := c.flushInbound(); err != nil {
				return err
			}
		}
	}
}

// readOne reads and handles one packet. A subscriber's PUBLISH and the
// short acknowledgements are read in place when they can be; anything else
// goes through the codec.
func (c *mqttConn) readOne() error {
	if c.sink != nil {
		if v, ok := peekPublish(c.br, c.version == packets.Version5); ok {
			c.onPublish(v.qos, v.id, v.payload)
			_, _ = c.br.Discard(v.size) // cannot fail: peekPublish saw v.size bytes
			return nil
		}
	}
	if t, id, ok := peekAck(c.br); ok {
		_, _ = c.br.Discard(4) // cannot fail: peekAck saw 4 bytes
		return c.onAck(t, id, packets.Success)
	}
	if err := c.rd.ReadPacket(&c.in); err != nil {
		return fmt.Errorf("read: %w", readError(err))
	}
	return c.handle(&c.in)
}

// handle acts on one packet from the broker.
func (c *mqttConn) handle(p *packets.Packet) error {
	switch p.Type {
	case packets.Publish:
		c.onPublish(p.QoS, p.PacketID, p.Payload)
	case packets.Puback, packets.Pubrec, packets.Pubrel, packets.Pubcomp:
		return c.onAck(p.Type, p.PacketID, p.ReasonCode)
	case packets.Pingresp:
	case packets.Disconnect:
		if s := p.Properties.ReasonString; s != "" {
			return fmt.Errorf("the broker sent DISCONNECT: %s: %q", p.ReasonCode, s)
		}
		return fmt.Errorf("the broker sent DISCONNECT: %s", p.ReasonCode)
	default:
		return fmt.Errorf("unexpected %s from the broker", p.Type)
	}
	return nil
}

// onAck acts on an acknowledgement of type t for packet id with reason
// code code: PUBACK and PUBCOMP end a publisher's flow, PUBREC is answered
// with PUBREL, PUBREL with PUBCOMP. An error code fails the run.
func (c *mqttConn) onAck(t packets.Type, id uint16, code packets.ReasonCode) error {
	if code.IsError() {
		return fmt.Errorf("%s for packet %d: %s", t, id, code)
	}
	switch t {
	case packets.Puback, packets.Pubcomp:
		if c.win == nil {
			return fmt.Errorf("unexpected %s for packet %d: nothing was published", t, id)
		}
		c.freed = append(c.freed, id)
	case packets.Pubrec:
		c.queueAck(packets.Pubrel, id)
	case packets.Pubrel:
		c.queueAck(packets.Pubcomp, id)
	}
	return nil
}

// onPublish counts a delivery and queues its acknowledgement. A PUBLISH on
// a connection that did not subscribe (a retained message, say) is
// acknowledged and not counted.
func (c *mqttConn) onPublish(qos byte, id uint16, payload []byte) {
	if c.sink != nil {
		c.sink.deliver(payload, c.tr.last)
	}
	switch qos {
	case 1:
		c.queueAck(packets.Puback, id)
	case 2:
		c.queueAck(packets.Pubrec, id)
	}
}

// queueAck encodes an acknowledgement of type t for packet id into the
// output waiting for the next flush.
func (c *mqttConn) queueAck(t packets.Type, id uint16) {
	c.ack.Type, c.ack.PacketID = t, id
	_ = c.ack.Encode(&c.out) // cannot fail: an ack without properties
}

// flushInbound hands completed identifiers back to the publisher, writes
// the waiting acknowledgements, and publishes the delivery counters.
func (c *mqttConn) flushInbound() error {
	if c.sink != nil {
		c.sink.flush()
	}
	if len(c.freed) > 0 {
		err := c.win.release(c.freed)
		c.freed = c.freed[:0]
		if err != nil {
			return err
		}
	}
	if c.out.Len() > 0 {
		err := c.write(c.out.B)
		c.out.Reset()
		if err != nil {
			return fmt.Errorf("send acknowledgements: %w", err)
		}
	}
	return nil
}
