package core

import (
	"sync"
	"sync/atomic"

	"github.com/vanemq/vanemq/core/packets"
)

// ackTicket is one reader batch's acknowledgements, held until what they
// acknowledge is safe: the store has the batch's changes (a durable
// store), and the cluster hook has handed off its QoS 1/2 messages. Each
// of those is a part of the ticket; the parts finish in any order, on any
// goroutine, and tickets finish in any order too, but their
// acknowledgements go out in the order of the batches (client.acks), as
// [MQTT-4.6.0-2/3/4] ask.
type ackTicket struct {
	c *client
	// pending counts the parts not finished, plus one until the batch is
	// sealed (flushStore), so that the ticket cannot finish while the
	// batch still adds to it.
	pending atomic.Int32
	// mu guards err and forward: the first failure, and whether it was
	// the cluster's hand-off (else the store's).
	mu      sync.Mutex
	err     error
	forward bool
	// acks are the batch's held acknowledgements, set when sealed.
	acks []outControl
	// done is set, under c.ackMu, when every part has finished.
	done bool
}

// ackQueue is a client's tickets in batch order, under ackMu. ackMu is
// taken before outMu, and under no other lock.
type ackQueue struct {
	ackMu sync.Mutex
	ackq  []*ackTicket
}

// ticket returns the batch's ticket, opening one (queued behind the
// client's earlier ones) on first use.
func (rb *readBatch) ticket(c *client) *ackTicket {
	if rb.tk != nil {
		return rb.tk
	}
	t := &ackTicket{c: c}
	t.pending.Store(1)
	c.commits.Add(1)
	c.ackMu.Lock()
	c.ackq = append(c.ackq, t)
	c.ackMu.Unlock()
	rb.tk = t
	return t
}

// part adds a part to the ticket and returns the function that finishes
// it, for the cluster hook's hand-off (Forward's done).
func (t *ackTicket) part() func(error) {
	t.pending.Add(1)
	return t.forwardDone
}

// forwardDone finishes a hand-off part.
func (t *ackTicket) forwardDone(err error) { t.finish(err, true) }

// storeDone finishes the store part.
func (t *ackTicket) storeDone(err error) { t.finish(err, false) }

// finish finishes one part, recording the first failure; the last part
// releases the ticket.
func (t *ackTicket) finish(err error, forward bool) {
	if err != nil {
		t.mu.Lock()
		if t.err == nil {
			t.err, t.forward = err, forward
		}
		t.mu.Unlock()
	}
	if t.pending.Add(-1) == 0 {
		t.c.ticketDone(t)
	}
}

// seal hands the ticket the batch's held acknowledgements and finishes
// the batch's own part: no more parts are added.
func (rb *readBatch) seal() {
	t := rb.tk
	rb.tk = nil
	t.acks = rb.heldAcks
	rb.heldAcks = nil
	t.finish(nil, false)
}

// ticketDone marks t finished and sends the acknowledgements of every
// finished ticket at the head of the queue, in order. A failed ticket's
// acknowledgements are never sent: the connection is closed, so that the
// client sends again what they would have acknowledged.
func (c *client) ticketDone(t *ackTicket) {
	var failed []*ackTicket
	c.ackMu.Lock()
	t.done = true
	n := 0
	for ; n < len(c.ackq) && c.ackq[n].done; n++ {
		h := c.ackq[n]
		if h.err != nil {
			failed = append(failed, h)
		} else if len(h.acks) > 0 {
			c.enqueueControls(h.acks)
		}
		c.ackq[n] = nil
		c.commits.Add(-1)
	}
	c.ackq = c.ackq[n:]
	c.ackMu.Unlock()
	for _, h := range failed {
		c.ticketFailed(h)
	}
}

// ticketFailed counts, logs and acts on a ticket that failed.
func (c *client) ticketFailed(t *ackTicket) {
	if t.forward {
		c.srv.stats.forwardFailures.Add(1)
		c.logger().Error("handing the client's messages to the cluster failed; acknowledgements withheld, closing connection", "cause", t.err)
		c.kick(packets.UnspecifiedError, "cluster hand-off failure")
		return
	}
	c.srv.stats.storeFailures.Add(1)
	c.logger().Error("storing the client's changes failed; acknowledgements withheld, closing connection", "cause", t.err)
	c.kick(packets.UnspecifiedError, "storage failure")
}
