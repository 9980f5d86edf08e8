package core

import (
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/valyala/bytebufferpool"

	"github.com/vanemq/vanemq/core/packets"
)

// writeBatch is how many bytes the writer gathers before a write syscall.
const writeBatch = 64 << 10

// outQueue is a connection's outbound queue and the state of its writer,
// all under outMu; it is embedded in client. A connection has at most one
// writer goroutine (writeLoop) at a time, started when work is queued and
// gone when the queue is empty, so an idle connection has none.
//
// The writer's state is the flags below, in these states:
//
//   - idle (no flag set): no writer runs and out is empty. A push starts a
//     writer now (running), or, when the pusher is a reader routing a
//     batch, at the end of the batch (scheduled).
//   - scheduled (startPending): a reader's batch holds the client in its
//     writers and starts the writer from startWriters (running; idle if
//     the queue was drained meanwhile). A push by nobody's batch may start
//     the writer first: startPending and writing then overlap until
//     startWriters clears startPending.
//   - held (outHeld): the CONNACK waits for the store (holdOutput); pushes
//     queue but start nothing until releaseOutput (running or idle).
//   - running (writing): the writer takes the whole queue at a time, and
//     exits (idle) when it finds the queue empty.
//   - closing (closing): finish has begun. No new writer starts; finish
//     waits for a running one (writerExit) or drains the queue itself.
//   - done (writerDone, with outFinal): a final packet was written, a write
//     failed, or finish ran. Terminal: nothing more is written.
//
// A writer may start only from idle, scheduled or held (canStartLocked).
// Independently of the writer, the queue takes packets until outFinal is
// set (a final packet is queued, or done), and accepts nothing after.
type outQueue struct {
	outMu      sync.Mutex
	out        []outItem
	outFinal   bool          // a final packet is queued; accept nothing more
	writing    bool          // a writer goroutine is running
	writerDone bool          // the connection is closed for writing
	closing    bool          // finish has begun: no new writer starts
	writerExit chan struct{} // closed when the running writer exits, for finish
	// finalWritten is set once a final packet (the broker's DISCONNECT or
	// refusing CONNACK) has been written: finish then lingers.
	finalWritten bool
	// startPending is set while some reader has deferred starting this
	// client's writer to the end of its batch (see pushLocked).
	startPending bool
	// outHeld keeps the writer from starting while a CONNACK waits for
	// the store (see holdOutput).
	outHeld bool
}

// canStartLocked reports whether a writer may start now: none runs, the
// CONNACK is not held, and the connection is not closing or closed for
// writing. The caller holds outMu.
func (q *outQueue) canStartLocked() bool {
	return !q.writing && !q.outHeld && !q.closing && !q.writerDone
}

// enqueuePublish queues a PUBLISH for the writer. QoS 0 deliveries are
// refused when the queue is at its bound (the caller drops and counts them);
// QoS 1/2 deliveries are already bounded by the inflight window and are
// always accepted while the connection lives. rb is the batch of the
// reader routing the message (nil: none; see pushLocked).
func (c *client) enqueuePublish(d delivery, id uint16, dup bool, rb *readBatch) bool {
	c.outMu.Lock()
	if c.outFinal || (d.qos == 0 && len(c.out) >= c.srv.opts.OutboundQueue) {
		c.outMu.Unlock()
		return false
	}
	d.msg.hold()
	if d.qos == 0 && len(c.out) >= c.srv.opts.OutboundQueue/2 {
		rb.noteBacklog(c)
	}
	c.pushLocked(outItem{d: d, id: id, dup: dup, publish: true}, rb)
	return true
}

// enqueueControl queues a control packet. Once a final packet is queued
// nothing else is accepted. rb as in pushLocked.
func (c *client) enqueueControl(ctl outControl, rb *readBatch) {
	c.outMu.Lock()
	if c.outFinal {
		c.outMu.Unlock()
		return
	}
	overflow := !ctl.final && len(c.out) >= c.outLimit()
	if ctl.final {
		c.outFinal = true
		rb = nil // a final packet goes out at once
	}
	c.pushLocked(outItem{ctl: ctl}, rb)
	if overflow {
		// The client sends but does not read: its acknowledgements pile up.
		c.logger().Warn("client is not reading its acknowledgements; closing connection", "limit", c.outLimit())
		c.kick(packets.QuotaExceeded, "outbound queue overflow")
	}
}

// pushLocked appends an item, arranges for the writer to run, and unlocks
// outMu. When rb is the batch of a reader routing packets, starting the
// writer waits until that batch is done (rb.startWriters), so one writer
// run carries every packet the batch produced, not one each. With rb nil
// (the broker's own publishes, connecting, closing) the writer starts now.
func (c *client) pushLocked(it outItem, rb *readBatch) {
	if c.out == nil {
		c.out = (*c.srv.batches.Get().(*[]outItem))[:0]
	}
	c.out = append(c.out, it)
	start := false
	if c.canStartLocked() {
		switch {
		case rb == nil:
			c.writing = true
			start = true
		case !c.startPending:
			c.startPending = true
			rb.writers = append(rb.writers, c)
		}
	}
	c.outMu.Unlock()
	if start {
		go c.writeLoop()
	}
}

// outLimit bounds the outbound queue for control packets: the QoS 0 bound
// plus both flow-control windows, which a well-behaved client never exceeds.
func (c *client) outLimit() int {
	o := &c.srv.opts
	return o.OutboundQueue + int(o.MaxInflight) + int(o.ReceiveMaximum) + 64
}

// writeLoop runs while the outbound queue has work: it takes the whole
// queue, encodes it into pooled buffers and writes many packets per syscall,
// and exits when the queue is empty, so an idle connection has no writer
// goroutine. After a final packet or a write error it refuses further work
// and wakes the reader.
func (c *client) writeLoop() {
	w := writer{c: c}
	var batch []outItem
	for {
		c.outMu.Lock()
		if len(c.out) == 0 || c.writerDone {
			c.writing = false
			if c.writerExit != nil {
				close(c.writerExit)
				c.writerExit = nil
			}
			if c.out != nil && len(c.out) == 0 {
				c.putBatch(c.out)
				c.out = nil
			}
			c.outMu.Unlock()
			if batch != nil {
				c.putBatch(batch)
			}
			return
		}
		batch, c.out = c.out, batch[:0]
		c.signalSpaceLocked()
		if c.out == nil || cap(c.out) == 0 {
			c.out = nil
		}
		c.outMu.Unlock()

		final, err := w.writeAll(batch)
		clear(batch)
		batch = batch[:0]
		if err != nil || final {
			if err != nil {
				if c.logs(slog.LevelDebug) {
					c.logger().Debug("write failed", "cause", err)
				}
			}
			c.outMu.Lock()
			c.outFinal = true
			c.writerDone = true
			c.finalWritten = final && err == nil
			c.outMu.Unlock()
			c.wakeReader()
		}
	}
}

// putBatch returns an outbound queue slice to the server's pool.
func (c *client) putBatch(b []outItem) {
	if cap(b) > 4096 {
		return // let an outsized queue go
	}
	clear(b[:cap(b)])
	b = b[:0]
	c.srv.batches.Put(&b)
}

// writer encodes outbound packets for the one running writer goroutine of
// a connection; the connection's outbound topic aliases are only touched by
// that goroutine, so they need no lock.
type writer struct {
	c   *client
	pkt packets.Packet
	// sent and sentBytes count PUBLISH packets and payload bytes by QoS
	// until the batch is written; the server's shared counters get one
	// addition per batch, not one per message.
	sent, sentBytes [3]int64
}

// countSent adds the batch's counts to the server's counters.
func (w *writer) countSent() {
	st := &w.c.srv.stats
	for q := range 3 {
		if w.sent[q] != 0 {
			st.messagesOut.Add(w.sent[q])
			st.messagesOutQoS[q].Add(w.sent[q])
			st.payloadOutQoS[q].Add(w.sentBytes[q])
			w.sent[q], w.sentBytes[q] = 0, 0
		}
	}
}

// writeAll encodes and writes a batch. It reports whether a final packet
// was written.
func (w *writer) writeAll(batch []outItem) (final bool, err error) {
	c := w.c
	buf := c.srv.getWriteBuf()
	defer c.srv.putWriteBuf(buf)
	now := time.Now()
	for i := range batch {
		it := &batch[i]
		if it.publish {
			w.encodePublish(buf, it, now)
			it.d.msg.release()
		} else {
			w.encodeControl(buf, &it.ctl)
			if it.ctl.final {
				final = true
			}
		}
		if buf.Len() >= writeBatch {
			w.countSent()
			if err := c.flush(buf); err != nil {
				return false, err
			}
		}
		if final {
			break
		}
	}
	w.countSent() // before the bytes can reach a client that then reads Stats
	if buf.Len() > 0 {
		if err := c.flush(buf); err != nil {
			return false, err
		}
	}
	return final, nil
}

func (c *client) flush(buf *bytebufferpool.ByteBuffer) error {
	c.writeStart.Store(time.Now().UnixNano())
	n, err := c.conn.Write(buf.B)
	c.writeStart.Store(0)
	c.srv.stats.bytesOut.Add(int64(n))
	buf.Reset()
	return err
}

// encodePublish appends one delivery. Views shared by every subscriber
// (no subscription identifier, no alias, no expiry to rewrite) are encoded
// once per message and copied, with the packet identifier and DUP patched.
func (w *writer) encodePublish(buf *bytebufferpool.ByteBuffer, it *outItem, now time.Time) {
	c := w.c
	d := &it.d
	m := d.msg
	if it.id == 0 && d.qos > 0 {
		return
	}
	w.sent[d.qos]++
	w.sentBytes[d.qos] += int64(len(m.payload))
	shareable := m.fanout.Load() > 1 && c.mount == "" &&
		(c.version != packets.Version5 || (len(d.subIDs) == 0 && m.expires.IsZero() && c.aliasOutMax == 0))
	if !shareable {
		w.fillPublish(it, now, true)
		if err := w.pkt.Encode(buf); err != nil {
			c.logger().Error("encoding PUBLISH failed", "topic", m.topic, "cause", err)
		}
		return
	}
	m.viewMu.Lock()
	slot := &m.views[viewIndex(c.version, d.qos, d.retain)]
	if *slot == nil {
		w.fillPublish(it, now, false)
		w.pkt.PacketID = 1 // placeholder, patched below
		enc := bytebufferpool.Get()
		if err := w.pkt.Encode(enc); err != nil {
			m.viewMu.Unlock()
			bytebufferpool.Put(enc)
			c.logger().Error("encoding PUBLISH failed", "topic", m.topic, "cause", err)
			return
		}
		*slot = enc
	}
	enc := (*slot).B
	start := len(buf.B)
	buf.B = append(buf.B, enc...)
	m.viewMu.Unlock()
	if d.qos > 0 {
		if it.dup {
			buf.B[start] |= 0x08
		}
		off := packets.PublishIDOffset(buf.B[start:])
		buf.B[start+off] = byte(it.id >> 8)
		buf.B[start+off+1] = byte(it.id)
	}
}

// fillPublish sets w.pkt to the PUBLISH for a delivery; withView adds the
// per-subscriber parts (identifiers, remaining expiry, topic alias).
func (w *writer) fillPublish(it *outItem, now time.Time, withView bool) {
	c := w.c
	d := &it.d
	m := d.msg
	p := &w.pkt
	p.Reset()
	p.Type = packets.Publish
	p.ProtocolVersion = c.version
	p.QoS = d.qos
	p.Retain = d.retain
	p.Dup = it.dup
	p.PacketID = it.id
	p.Topic = strings.TrimPrefix(m.topic, c.mount)
	p.Payload = m.payload
	if c.version != packets.Version5 {
		return
	}
	p.Properties = m.properties()
	if !withView {
		return
	}
	p.Properties.SubscriptionIDs = d.subIDs
	if !m.expires.IsZero() {
		p.Properties.MessageExpiry = m.remainingExpiry(now)
		p.Properties.Set(packets.PropMessageExpiry)
	}
	if c.aliasOutMax > 0 {
		w.applyAlias(p)
	}
}

// applyAlias assigns or reuses an outbound topic alias: the first
// aliasOutMax distinct topics get one, as long as their names fit in
// topic_alias_bytes; later topics go in full.
func (w *writer) applyAlias(p *packets.Packet) {
	c := w.c
	if a, ok := c.aliasOut[p.Topic]; ok {
		p.Topic = ""
		p.Properties.TopicAlias = a
		p.Properties.Set(packets.PropTopicAlias)
		return
	}
	if c.nextAlias >= c.aliasOutMax || c.aliasOutBytes+len(p.Topic) > c.srv.opts.TopicAliasBytes {
		return
	}
	if c.aliasOut == nil {
		c.aliasOut = make(map[string]uint16)
	}
	c.nextAlias++
	c.aliasOutBytes += len(p.Topic)
	// A copy: p.Topic is the message's, whose allocation holds its payload.
	c.aliasOut[strings.Clone(p.Topic)] = c.nextAlias
	p.Properties.TopicAlias = c.nextAlias
	p.Properties.Set(packets.PropTopicAlias)
}

// encodeControl appends a control packet, trimming the reason string and
// user properties when the client asked for no problem information
// [MQTT-3.1.2-29] or when they would exceed its maximum packet size
// [MQTT-3.1.2-25].
func (w *writer) encodeControl(buf *bytebufferpool.ByteBuffer, ctl *outControl) {
	c := w.c
	var p *packets.Packet
	if ctl.pkt != nil {
		p = ctl.pkt
	} else {
		p = &w.pkt
		p.Reset()
		p.Type = ctl.kind
		p.PacketID = ctl.id
		p.ReasonCode = ctl.code
	}
	if p.ProtocolVersion == 0 {
		p.ProtocolVersion = c.version
	}
	if p.ProtocolVersion == packets.Version5 {
		validCodes(p)
		if !c.reqProblemInfo && p.Type != packets.Connack && p.Type != packets.Disconnect {
			p.Properties.ReasonString = ""
			p.Properties.Clear(packets.PropReasonString)
			p.Properties.UserProperties = nil
		}
		if c.maxOutPacket > 0 && uint32(p.Size()) > c.maxOutPacket {
			p.Properties.ReasonString = ""
			p.Properties.Clear(packets.PropReasonString)
			if uint32(p.Size()) > c.maxOutPacket {
				p.Properties.UserProperties = nil
			}
		}
	}
	if err := p.Encode(buf); err != nil {
		c.logger().Error("encoding packet failed", "packet", p.Type.String(), "cause", err)
	}
}

// getWriteBuf takes a writer batch buffer from the free list, or makes one.
func (s *Server) getWriteBuf() *bytebufferpool.ByteBuffer {
	select {
	case b := <-s.writeBufs:
		return b
	default:
		return &bytebufferpool.ByteBuffer{B: make([]byte, 0, writeBatch+4096)}
	}
}

// putWriteBuf returns a buffer to the bounded free list; extra buffers, and
// ones a huge packet grew, are left to the GC.
func (s *Server) putWriteBuf(b *bytebufferpool.ByteBuffer) {
	if cap(b.B) > 4*writeBatch {
		return
	}
	b.Reset()
	select {
	case s.writeBufs <- b:
	default:
	}
}

// validCodes replaces reason codes a v5 packet may not carry, which a hook
// can return in a Deny, with Not authorized (or Unspecified error where that
// is not allowed either), so the client never sees a malformed packet.
func validCodes(p *packets.Packet) {
	fix := func(c packets.ReasonCode) packets.ReasonCode {
		switch {
		case packets.ValidReasonCode(p.Type, c):
			return c
		case packets.ValidReasonCode(p.Type, packets.NotAuthorized):
			return packets.NotAuthorized
		default:
			return packets.UnspecifiedError
		}
	}
	switch p.Type {
	case packets.Connack, packets.Puback, packets.Pubrec, packets.Disconnect:
		p.ReasonCode = fix(p.ReasonCode)
	case packets.Suback, packets.Unsuback:
		// The codes slice is shared with the handler that queued the
		// packet: copy it before changing anything.
		copied := false
		for i, c := range p.ReasonCodes {
			if f := fix(c); f != c {
				if !copied {
					p.ReasonCodes = slices.Clone(p.ReasonCodes)
					copied = true
				}
				p.ReasonCodes[i] = f
			}
		}
	}
}
