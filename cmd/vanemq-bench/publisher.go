package main

import (
	"context"
	"time"

	"github.com/valyala/bytebufferpool"
)

// Limits of one publisher write.
const (
	// batchBytes is how many bytes of PUBLISH packets a publisher gathers
	// into one write.
	batchBytes = 32 << 10
	// maxBatch bounds the messages in one write.
	maxBatch = 1024
)

// publisher sends one connection's stream of PUBLISH packets: flat out or
// paced, QoS 0 open loop, QoS 1 and 2 within an inflight window; message
// after message on each of its topics in turn.
type publisher struct {
	conn   *mqttConn
	tmpls  []publishTemplate // one per topic
	next   int               // index in tmpls of the next message's topic
	win    *idWindow         // QoS 1 and 2; nil for QoS 0
	batch  int               // most messages per write
	perSec float64           // pace; 0 for as fast as possible

	// sent counts the messages stamped inside the measurement window. The
	// publisher's goroutine writes it; read it after that goroutine ends.
	sent int64
}

// newPublisher prepares c to publish on topics, one message on each in
// turn, at perSec messages per second (0: flat out), checking the packets
// against what the broker announced. It gives c its inflight window, so
// call it before c's reader starts.
func newPublisher(c *mqttConn, topics []string, cfg *benchConfig, perSec float64) (*publisher, error) {
	if cfg.QoS > c.maxQoS {
		return nil, c.errorf("QoS %d exceeds the broker's Maximum QoS %d", cfg.QoS, c.maxQoS)
	}
	p := &publisher{conn: c, tmpls: make([]publishTemplate, len(topics)), perSec: perSec}
	largest := 0
	for i, topic := range topics {
		tmpl, err := newPublishTemplate(topic, cfg.QoS, cfg.MQTT, cfg.Size)
		if err != nil {
			return nil, c.errorf("%w", err)
		}
		if c.maxPacket > 0 && uint64(len(tmpl.b)) > uint64(c.maxPacket) {
			return nil, c.errorf("a PUBLISH of %d bytes exceeds the broker's Maximum Packet Size %d", len(tmpl.b), c.maxPacket)
		}
		p.tmpls[i] = tmpl
		largest = max(largest, len(tmpl.b))
	}
	p.batch = min(max(batchBytes/largest, 1), maxBatch)
	if cfg.QoS > 0 {
		size := min(cfg.Inflight, int(c.receiveMax))
		p.win = newIDWindow(size)
		p.batch = min(p.batch, size)
		c.win = p.win
	}
	return p, nil
}

// run publishes until the clock reaches end (or ctx ends), counting the
// messages stamped in [start, end). Every message of a batch carries the
// time the batch was written. A write still blocked handshakeTimeout after
// end fails the run: the broker stopped reading.
func (p *publisher) run(ctx context.Context, start, end int64) error {
	clock := p.conn.clock
	if err := p.conn.nc.SetWriteDeadline(clock.at(end).Add(handshakeTimeout)); err != nil {
		return p.conn.errorf("set write deadline: %w", err)
	}
	buf := bytebufferpool.Get()
	defer bytebufferpool.Put(buf)
	ids := make([]uint16, 0, p.batch)
	var pace *pacer
	var tick <-chan time.Time
	if p.perSec > 0 {
		pace = &pacer{perSec: p.perSec, origin: clock.now()}
		t := time.NewTicker(tickFor(p.perSec))
		defer t.Stop()
		tick = t.C
	}
	for {
		now := clock.now()
		if now >= end {
			return nil
		}
		n := p.batch
		if pace != nil {
			due := pace.due(now)
			if due <= 0 {
				select {
				case <-tick:
					continue
				case <-ctx.Done():
					return nil
				}
			}
			n = int(min(int64(n), due))
		}
		ids = ids[:0]
		if p.win != nil {
			var err error
			if ids, err = p.win.acquire(ctx, ids, n); err != nil {
				return nil // the window ended or the run failed
			}
			n = len(ids)
			if now = clock.now(); now >= end {
				return nil
			}
		}
		buf.B = buf.B[:0]
		for i := range n {
			var id uint16
			if p.win != nil {
				id = ids[i]
			}
			buf.B = p.tmpls[p.next].appendTo(buf.B, id, now)
			if p.next++; p.next == len(p.tmpls) {
				p.next = 0
			}
		}
		if err := p.conn.write(buf.B); err != nil {
			return p.conn.errorf("send PUBLISH: %w", err)
		}
		if pace != nil {
			pace.sent += int64(n)
		}
		if now >= start {
			p.sent += int64(n)
		}
	}
}
