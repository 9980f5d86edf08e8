package core

import (
	"sync/atomic"
	"time"
)

// Pacing: how publishers are slowed to the speed of subscribers that keep up.
//
// A subscriber's queues are bounded; beyond the bound, messages are dropped
// and counted, so a stalled subscriber never blocks anyone. But publishers
// on a busy broker can outrun even a subscriber that reads as fast as it
// can, and dropping then only wastes the work of routing. So when a
// delivery finds a subscriber's queue half full, the publishing reader
// notes the subscriber, and at the end of its read batch waits, at most
// maxPace, for the subscriber's writer to drain the queue below a quarter. Waiting stops reading from the publisher's socket, which slows the
// publisher through TCP flow control. A subscriber whose writer has made no
// progress for stallAfter is stalled: nobody waits for it, and its overflow
// is dropped. Progress is judged by how long one socket write has been
// blocked, not by when the writer last ran: on a busy broker a healthy
// writer may wait for a CPU longer than that.
const (
	maxPace    = 100 * time.Millisecond
	stallAfter = 100 * time.Millisecond
)

// noteBacklog records in the publishing reader's batch that target's queue
// is filling; called by whoever queued for it (rb nil: nobody to pace). A
// reader never waits for its own client's writer.
func (rb *readBatch) noteBacklog(target *client) {
	if rb == nil || rb == &target.batch {
		return
	}
	for _, t := range rb.paceFor {
		if t == target {
			return
		}
	}
	rb.paceFor = append(rb.paceFor, target)
}

// pace waits, bounded in total by maxPace, until every subscriber noted in
// the batch has drained below a quarter of its queue or is stalled. Only
// the reader's goroutine calls it, after startWriters.
func (rb *readBatch) pace() {
	if len(rb.paceFor) == 0 {
		return
	}
	deadline := time.Now().Add(maxPace)
	for i, t := range rb.paceFor {
		for {
			ch := t.spaceSignal()
			if ch == nil {
				break
			}
			left := time.Until(deadline)
			if left <= 0 {
				break
			}
			if rb.paceTimer == nil {
				rb.paceTimer = time.NewTimer(left)
			} else {
				rb.paceTimer.Reset(left)
			}
			select {
			case <-ch:
				rb.paceTimer.Stop()
				continue
			case <-rb.paceTimer.C:
			}
			break
		}
		rb.paceFor[i] = nil
	}
	rb.paceFor = rb.paceFor[:0]
}

// spaceSignal returns nil when the client's queues have room (below a quarter)
// or its writer is stalled or gone; otherwise a channel closed the next
// time the writer takes a batch or an acknowledgement frees the window.
func (c *client) spaceSignal() chan struct{} {
	o := &c.srv.opts
	sess := c.sess
	sess.mu.Lock()
	pending, maxQueued := sess.pending.len(), sess.maxQueued
	sess.mu.Unlock()
	c.outMu.Lock()
	defer c.outMu.Unlock()
	if c.writerDone || c.closing || (len(c.out) < o.OutboundQueue/4 && pending < maxQueued/4) {
		return nil
	}
	if ws := c.writeStart.Load(); ws != 0 && time.Since(time.Unix(0, ws)) > stallAfter {
		return nil // stalled in a write: its overflow is dropped, nobody waits
	}
	if c.space == nil {
		c.space = make(chan struct{})
	}
	return c.space
}

// signalSpaceLocked wakes pacing publishers; the caller holds outMu.
func (c *client) signalSpaceLocked() {
	if c.space != nil {
		close(c.space)
		c.space = nil
	}
}

// pacingState is the subscriber's part of pacing, embedded in client (the
// publisher's part is in its readBatch).
type pacingState struct {
	// space is closed (under outMu) when the writer takes a batch or an
	// acknowledgement frees the inflight window.
	space chan struct{}
	// writeStart is when the write now in progress began (UnixNano), 0
	// between writes. A write that takes longer than stallAfter means the
	// subscriber does not read: its socket buffer is full.
	writeStart atomic.Int64
}
