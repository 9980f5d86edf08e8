package cluster

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vanemq/vanemq/core"
)

// maxInstances bounds the dedup windows kept, one per sending process; a
// cluster whose nodes restarted more often than that starts over.
const maxInstances = 4096

// maxBatch bounds the messages routed in one batch.
const maxBatch = 256

// receiver is the receive loop's state.
type receiver struct {
	h       *Hook
	batch   *core.RemoteBatch
	windows map[uint64]*window // QoS 0 messages, by sending instance
	inbox   window             // inbox messages, by stream sequence
	acks    []jetstream.Msg    // inbox messages of the batch, acknowledged once stored
	n       int                // messages in the batch

	// failed holds the stream sequences of inbox messages whose store
	// failed: sent again, they are routed again, not taken for copies.
	failedMu sync.Mutex
	failed   map[uint64]bool
}

// receiveLoop routes, in batches, the messages other nodes sent to this
// node: QoS 0 ones from core NATS (h.msgs) and QoS 1/2 ones from its inbox
// (h.inbox), each in the order it arrives. A batch ends when no message
// waits, or after maxBatch; its inbox messages are acknowledged once the
// node has stored what they brought (core.RemoteBatch.Flush).
func (h *Hook) receiveLoop(ctx context.Context) {
	defer h.wg.Done()
	r := &receiver{h: h, batch: h.srv.NewRemoteBatch(), windows: make(map[uint64]*window)}
	for {
		select {
		case <-ctx.Done():
			r.flush()
			return
		case m := <-h.msgs:
			r.fenceFirst(ctx)
			r.core(m)
		case m := <-h.inbox:
			r.fenceFirst(ctx)
			r.fromInbox(m)
		}
		if r.n++; r.n < maxBatch && (len(h.msgs) > 0 || len(h.inbox) > 0) {
			continue
		}
		r.flush()
	}
}

// fenceFirst, at a batch's first message, fences the node if it was
// stopped (fenceIfStalled): what came meanwhile may be for sessions other
// nodes hold now, and must not reach the connections still here.
func (r *receiver) fenceFirst(ctx context.Context) {
	if r.n == 0 {
		r.h.fenceIfStalled(ctx)
	}
}

// core routes a QoS 0 message. A message that matches several of the
// node's subscriptions arrives once for each and is routed once.
func (r *receiver) core(m *nats.Msg) {
	h := r.h
	e, ok := h.open(m.Data, m.Subject)
	if !ok || e.instance == h.instance {
		return // not ours to route, or our own (were NoEcho off)
	}
	w := r.windows[e.instance]
	if w == nil {
		if len(r.windows) >= maxInstances {
			clear(r.windows)
		}
		w = new(window)
		r.windows[e.instance] = w
	}
	if w.seen(e.seq) {
		h.stats.duplicates.Add(1)
		return
	}
	h.deliver(r.batch, e, m.Subject)
}

// fromInbox routes a QoS 1/2 message from the inbox. One JetStream
// delivers again (its acknowledgement was lost) is acknowledged, not
// routed twice.
func (r *receiver) fromInbox(m jetstream.Msg) {
	h := r.h
	md, err := m.Metadata()
	if err == nil && r.inbox.seen(md.Sequence.Stream) && md.NumDelivered > 1 && !r.retry(md.Sequence.Stream) {
		h.stats.duplicates.Add(1)
		_ = m.Ack()
		return
	}
	if e, ok := h.open(m.Data(), m.Subject()); ok {
		h.deliver(r.batch, e, m.Subject())
	}
	r.acks = append(r.acks, m)
	if err == nil {
		h.inboxSeq.Store(md.Sequence.Stream)
	}
}

// retry reports whether seq is an inbox message whose store failed, to
// be routed again.
func (r *receiver) retry(seq uint64) bool {
	r.failedMu.Lock()
	defer r.failedMu.Unlock()
	if !r.failed[seq] {
		return false
	}
	delete(r.failed, seq)
	return true
}

// flush ends the batch, and acknowledges its inbox messages once the
// node has stored them; a store that failed has them sent again.
func (r *receiver) flush() {
	if r.n == 0 && len(r.acks) == 0 {
		return
	}
	acks := r.acks
	r.acks, r.n = nil, 0
	h := r.h
	r.batch.Flush(func(err error) {
		for _, m := range acks {
			if err != nil {
				if md, merr := m.Metadata(); merr == nil {
					r.failedMu.Lock()
					if r.failed == nil {
						r.failed = make(map[uint64]bool)
					}
					r.failed[md.Sequence.Stream] = true
					r.failedMu.Unlock()
				}
				_ = m.NakWithDelay(time.Second)
				continue
			}
			_ = m.Ack()
		}
		if err != nil {
			h.log.Warn("cluster: messages from other nodes could not be stored here; NATS sends them again", "messages", len(acks), "cause", err)
		}
	})
}

// open decodes an envelope, counting and logging one that does not.
func (h *Hook) open(data []byte, subject string) (envelope, bool) {
	e, err := decodeEnvelope(data)
	if err != nil {
		if n := h.stats.bad.Add(1); worthLogging(n) {
			h.log.Warn("cluster: a message on a vanemq subject is not a vanemq envelope; dropped", "subject", subject, "cause", err, "dropped", n)
		}
		return e, false
	}
	return e, true
}

// deliver routes a message to what its envelope names: the node's
// ordinary subscriptions, and one member of each share group.
func (h *Hook) deliver(b *core.RemoteBatch, e envelope, subject string) {
	h.stats.received.Add(1)
	if e.ordinary {
		h.deliverTo(b, e, "", "", subject)
	}
	for _, g := range e.groups {
		h.deliverTo(b, e, g.group, g.filter, subject)
	}
}

func (h *Hook) deliverTo(b *core.RemoteBatch, e envelope, group, filter, subject string) {
	n, err := b.Deliver(e.publish, e.origin, group, filter)
	if err != nil {
		if c := h.stats.bad.Add(1); worthLogging(c) {
			h.log.Warn("cluster: a message from another node does not decode; dropped", "subject", subject, "cause", err, "dropped", c)
		}
		return
	}
	h.stats.delivered.Add(int64(n))
}
