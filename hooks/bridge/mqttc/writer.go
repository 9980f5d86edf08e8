package mqttc

import (
	"bufio"
	"fmt"
	"net"
	"time"

	"github.com/valyala/bytebufferpool"

	"github.com/vanemq/vanemq/core/packets"
)

// now returns the time since the client's epoch, on the monotonic clock.
func (c *Client) now() int64 { return int64(time.Since(c.epoch)) }

// sendCtrl queues a control packet for the writer. It never blocks, and
// drops the packet once the connection is ending.
func (c *Client) sendCtrl(p *packets.Packet) {
	p.ProtocolVersion = c.version
	c.ctrlMu.Lock()
	if c.ctrlClosed || c.final != nil {
		c.ctrlMu.Unlock()
		return
	}
	bb := bytebufferpool.ByteBuffer{B: c.ctrl}
	err := p.Encode(&bb)
	c.ctrl = bb.B
	c.ctrlMu.Unlock()
	if err != nil {
		c.log.Error("mqttc: cannot encode a control packet", "type", p.Type, "cause", err)
		return
	}
	c.wakeWriter()
}

// wakeWriter tells the writer there are control packets to write.
func (c *Client) wakeWriter() {
	select {
	case c.ctrlWake <- struct{}{}:
	default:
	}
}

// queueFinal queues the DISCONNECT the writer writes last, with reason code
// code (v5). It reports false when the connection is already ending.
func (c *Client) queueFinal(code packets.ReasonCode) bool {
	p := packets.Packet{Type: packets.Disconnect, ProtocolVersion: c.version}
	if c.version == packets.Version5 {
		p.ReasonCode = code
	}
	bb := bytebufferpool.ByteBuffer{}
	if err := p.Encode(&bb); err != nil {
		c.log.Error("mqttc: cannot encode DISCONNECT", "cause", err)
		return false
	}
	c.ctrlMu.Lock()
	if c.ctrlClosed || c.final != nil {
		c.ctrlMu.Unlock()
		return false
	}
	c.final = bb.B
	c.ctrlMu.Unlock()
	c.wakeWriter()
	return true
}

// takeCtrl appends the queued control packets to dst and returns it, with
// the final DISCONNECT when it is queued (no control packet is queued after
// it).
func (c *Client) takeCtrl(dst []byte) ([]byte, []byte) {
	c.ctrlMu.Lock()
	defer c.ctrlMu.Unlock()
	dst = append(dst, c.ctrl...)
	c.ctrl = c.ctrl[:0]
	final := c.final
	if final != nil {
		c.ctrlClosed = true
	}
	return dst, final
}

// writeLoop is the writer: it writes control packets, then the queued
// publishes, subscribes and unsubscribes, a batch per write, until the
// connection ends or the final DISCONNECT is written.
func (c *Client) writeLoop(conn net.Conn) {
	defer c.wg.Done()
	defer close(c.writerDone)
	bw := bufio.NewWriterSize(conn, writeBufSize)
	var (
		ctrl  []byte
		batch []*outItem
	)
	for {
		select {
		case <-c.quit:
			return
		case <-c.ctrlWake:
		case it := <-c.pubq:
			batch = append(batch, it)
		}
		var final []byte
		ctrl, final = c.takeCtrl(ctrl[:0])
		// Before the final DISCONNECT, everything queued when it was
		// (at most the queue's capacity) is written too.
		limit := maxBatch
		if final != nil {
			limit = len(batch) + cap(c.pubq)
		}
	gather:
		for len(batch) < limit {
			select {
			case it := <-c.pubq:
				batch = append(batch, it)
			default:
				break gather
			}
		}
		if len(ctrl) == 0 && len(batch) == 0 && final == nil {
			continue
		}
		err := c.writeBatch(conn, bw, ctrl, batch, final)
		if err != nil {
			c.writeErr = err
			err = fmt.Errorf("mqttc: write: %w", err)
			c.fail(err)
		} else {
			c.lastWrite.Store(c.now())
			c.finalWritten = final != nil
		}
		c.inWritten.Store(true)
		for i, it := range batch {
			if it.written != nil {
				it.written(err)
			}
			bytebufferpool.Put(it.buf)
			batch[i] = nil
		}
		c.inWritten.Store(false)
		batch = batch[:0]
		if err != nil {
			return
		}
		if final != nil {
			c.log.Debug("mqttc: DISCONNECT sent")
			c.fail(ErrClosed)
			return
		}
	}
}

// writeBatch writes control packets, then the batch, then the final
// DISCONNECT if any, under one write deadline.
func (c *Client) writeBatch(conn net.Conn, bw *bufio.Writer, ctrl []byte, batch []*outItem, final []byte) error {
	if err := conn.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
		return err
	}
	if _, err := bw.Write(ctrl); err != nil {
		return err
	}
	for _, it := range batch {
		if _, err := bw.Write(it.buf.B); err != nil {
			return err
		}
	}
	if _, err := bw.Write(final); err != nil {
		return err
	}
	return bw.Flush()
}

// keepAliveLoop sends PINGREQ when nothing was sent, or nothing received,
// for the keep alive, and ends the connection when the server does not
// answer: no PINGRESP within the keep alive after a PINGREQ, or nothing at
// all received for one and a half times the keep alive.
func (c *Client) keepAliveLoop() {
	defer c.wg.Done()
	ka := int64(c.keepAlive)
	t := time.NewTimer(c.keepAlive)
	defer t.Stop()
	for {
		select {
		case <-c.quit:
			return
		case <-t.C:
		}
		now := c.now()
		lr, lw, ps := c.lastRead.Load(), c.lastWrite.Load(), c.pingSent.Load()
		switch {
		case ps != 0 && now-(ps-1) >= ka:
			c.fail(fmt.Errorf("%w: no PINGRESP within %v of PINGREQ", ErrKeepAliveTimeout, c.keepAlive))
			return
		case now-lr >= ka*3/2:
			c.fail(fmt.Errorf("%w: nothing received for %v", ErrKeepAliveTimeout, time.Duration(now-lr)))
			return
		case ps == 0 && (now-lw >= ka || now-lr >= ka):
			ps = now + 1
			c.pingSent.Store(ps)
			c.sendCtrl(&packets.Packet{Type: packets.Pingreq})
		}
		next := lr + ka*3/2
		if ps != 0 {
			next = min(next, ps-1+ka)
		} else {
			next = min(next, lw+ka, lr+ka)
		}
		t.Reset(max(time.Duration(next-now), 10*time.Millisecond))
	}
}
