package cluster

import (
	"context"
	"slices"
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
	windows map[uint64]*window       // QoS 0 messages, by sending instance
	inbox   window                   // inbox messages, by stream sequence
	ids     map[uint64]*routedWindow // when each latest inbox message was routed, by sending instance
	// passed are the messages passed on here for sessions that moved
	// here, with the clients they were delivered to (oldest first in
	// passedOrder): a copy routed later skips those.
	passed      map[msgKey][]string
	passedOrder []msgKey
	acks        []jetstream.Msg // inbox messages of the batch, acknowledged once stored
	n           int             // messages in the batch

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
	r := &receiver{h: h, batch: h.srv.NewRemoteBatch(), windows: make(map[uint64]*window), ids: make(map[uint64]*routedWindow)}
	h.routeMu.Lock()
	h.recv = r // read under routeMu (recentlyRouted)
	h.routeMu.Unlock()
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
		var done bool
		h.routeMu.Lock()
		if len(e.targets) > 0 {
			done = r.targeted(e, m, md)
		} else {
			r.noteRouted(e.instance, e.seq, h.mv.routed.Add(1))
			skip := r.passedTo(e.instance, e.seq)
			if h.mv.nSkips.Load() > 0 {
				skip = append(slices.Clip(skip), h.mv.skipped(msgKey{Instance: e.instance, Seq: e.seq})...)
			}
			empty := h.deliverExcept(r.batch, e, m.Subject(), skip)
			done = h.mv.nOut.Load() == 0 || h.passOn(e, empty)
		}
		h.routeMu.Unlock()
		if !done {
			// To be routed again: a copy for a session that moved could
			// not be passed on, or the session it was passed on for is
			// not here yet.
			if err == nil {
				r.markFailed(md.Sequence.Stream)
			}
			_ = m.NakWithDelay(targetedRetry)
			return
		}
	}
	r.acks = append(r.acks, m)
	if err == nil {
		h.inboxSeq.Store(md.Sequence.Stream)
	}
}

// targeted routes a message another node passed on for sessions that
// moved here (moves.go), reporting false when it is to come again: a
// session it is for is not here yet. A copy this node routed itself after
// adopting the session is not delivered again; one for a session that
// moved on again is passed on once more.
func (r *receiver) targeted(e envelope, m jetstream.Msg, md *jetstream.MsgMetadata) bool {
	h := r.h
	var here []string
	for _, id := range e.targets {
		if a, ok := h.mv.adoptedAt(id); ok {
			k, seen := r.routedAt(e.instance, e.seq)
			if seen && k > a.at || e.instance == h.instance && e.seq > a.seq {
				h.stats.duplicates.Add(1)
				continue // routed, or published, here with the session present
			}
		}
		if h.mv.nSkips.Load() > 0 && slices.Contains(h.mv.skipped(msgKey{Instance: e.instance, Seq: e.seq}), id) {
			h.stats.duplicates.Add(1)
			continue // the old node routed it into the session before letting it go
		}
		if _, ok := h.srv.Client(id); ok {
			here = append(here, id)
			continue
		}
		if to, ok := h.mv.movedTo(id); ok {
			if !h.sendOn(e, to, true, nil, []string{id}) {
				return false
			}
			continue
		}
		if md != nil && md.NumDelivered < targetedTries {
			return false
		}
		h.stats.lostPassedOn.Add(1)
		h.log.Warn("cluster: a message passed on for a session that moved here never found it; dropped", "client", id, "subject", m.Subject())
	}
	h.stats.received.Add(1)
	if len(here) > 0 {
		h.deliverTo(r.batch, e, "", "", m.Subject(), func(id string) bool { return slices.Contains(here, id) })
		r.notePassed(e.instance, e.seq, here)
	}
	for _, g := range e.groups {
		h.deliverTo(r.batch, e, g.group, g.filter, m.Subject(), nil)
	}
	return true
}

// maxPassed bounds the messages passed on here that a receiver remembers.
const maxPassed = 4096

// msgKey identifies a QoS 1/2 message: its publishing process and its
// sequence number there.
type msgKey struct {
	Instance uint64 `json:"i"`
	Seq      uint64 `json:"s"`
}

// notePassed records that the message seq of instance, passed on by
// another node, was delivered here to the sessions of clients.
func (r *receiver) notePassed(instance, seq uint64, clients []string) {
	if r.passed == nil {
		r.passed = make(map[msgKey][]string)
	}
	k := msgKey{Instance: instance, Seq: seq}
	if _, ok := r.passed[k]; !ok {
		if len(r.passedOrder) >= maxPassed {
			delete(r.passed, r.passedOrder[0])
			r.passedOrder = r.passedOrder[1:]
		}
		r.passedOrder = append(r.passedOrder, k)
	}
	r.passed[k] = append(r.passed[k], clients...)
}

// passedTo returns the clients the message seq of instance was delivered
// to when another node passed it on.
func (r *receiver) passedTo(instance, seq uint64) []string {
	if len(r.passed) == 0 {
		return nil
	}
	return r.passed[msgKey{Instance: instance, Seq: seq}]
}

// markFailed has the inbox message seq routed again when it comes again.
func (r *receiver) markFailed(seq uint64) {
	r.failedMu.Lock()
	defer r.failedMu.Unlock()
	if r.failed == nil {
		r.failed = make(map[uint64]bool)
	}
	r.failed[seq] = true
}

// maxRoutedInstances bounds the sending instances whose latest messages
// a receiver remembers (routedWindow).
const maxRoutedInstances = 64

// noteRouted records that the message seq of instance was routed at
// count k.
func (r *receiver) noteRouted(instance, seq, k uint64) {
	w := r.ids[instance]
	if w == nil {
		if len(r.ids) >= maxRoutedInstances {
			clear(r.ids)
		}
		w = new(routedWindow)
		r.ids[instance] = w
	}
	w.note(seq, k)
}

// routedAt returns the count at which the message seq of instance was
// routed, if the receiver remembers it.
func (r *receiver) routedAt(instance, seq uint64) (uint64, bool) {
	if w := r.ids[instance]; w != nil {
		return w.at(seq)
	}
	return 0, false
}

// recentRouted bounds the latest routed messages a release reports
// (recentlyRouted).
const recentRouted = 2048

// recentlyRouted returns the latest inbox messages the receiver routed
// after the routed count since, at most recentRouted. The caller holds
// routeMu.
func (r *receiver) recentlyRouted(since uint64) []msgKey {
	if r == nil {
		return nil
	}
	now := r.h.mv.routed.Load()
	var out []msgKey
	for instance, w := range r.ids {
		for _, e := range w {
			if e.k > since && e.k+recentRouted > now {
				out = append(out, msgKey{Instance: instance, Seq: e.seq})
			}
		}
	}
	return out
}

// routedWindow remembers when each of the latest messages of one
// sending instance was routed.
type routedWindow [windowSize]struct{ seq, k uint64 }

func (w *routedWindow) note(seq, k uint64) {
	w[seq%windowSize] = struct{ seq, k uint64 }{seq, k}
}

func (w *routedWindow) at(seq uint64) (uint64, bool) {
	e := w[seq%windowSize]
	return e.k, e.seq == seq && e.k != 0
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
					r.markFailed(md.Sequence.Stream)
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
// ordinary subscriptions, and one member of each share group. It returns
// the share groups that had no member here.
func (h *Hook) deliver(b *core.RemoteBatch, e envelope, subject string) (empty []interestKey) {
	return h.deliverExcept(b, e, subject, nil)
}

// deliverExcept is deliver leaving out the ordinary subscriptions of the
// clients skip.
func (h *Hook) deliverExcept(b *core.RemoteBatch, e envelope, subject string, skip []string) (empty []interestKey) {
	h.stats.received.Add(1)
	switch {
	case !e.ordinary:
	case len(skip) > 0:
		h.deliverTo(b, e, "", "", subject, func(id string) bool { return !slices.Contains(skip, id) })
	default:
		h.deliverTo(b, e, "", "", subject, nil)
	}
	for _, g := range e.groups {
		if h.deliverTo(b, e, g.group, g.filter, subject, nil) == 0 {
			empty = append(empty, g)
		}
	}
	return empty
}

// deliverTo routes e to its ordinary subscriptions (group "") or to a
// member of a share group, limited, when only is set, to the clients it
// accepts (core.RemoteBatch.DeliverTo); it returns the deliveries.
func (h *Hook) deliverTo(b *core.RemoteBatch, e envelope, group, filter, subject string, only func(string) bool) int {
	n, err := b.DeliverTo(e.publish, e.origin, group, filter, only)
	if err != nil {
		if c := h.stats.bad.Add(1); worthLogging(c) {
			h.log.Warn("cluster: a message from another node does not decode; dropped", "subject", subject, "cause", err, "dropped", c)
		}
		return 0
	}
	h.stats.delivered.Add(int64(n))
	return n
}
