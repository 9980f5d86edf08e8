package core

import "time"

// readBatch is the work a client's reader gathers while it handles one
// batch of packets (what one read brought, at most 64 packets: readArrived)
// and does once the batch is handled (serve): start the writers the batch
// fed, submit its store changes with the acknowledgements that wait for
// them, wait for the subscribers it filled (pacing), and add its counts to
// the server's counters.
//
// Only the reader's goroutine touches a readBatch. Routing a PUBLISH runs
// on that goroutine down into each subscriber's session and outbound
// queue, under the subscriber's locks; the code there is handed the
// publisher's batch and only appends to it, so that the slow parts
// (waking a writer, a store commit, waiting) happen once per batch, after
// the locks are released, instead of once per delivery under them.
//
// A nil *readBatch means no reader is routing: the broker's own publishes
// (wills, $SYS, Server.Publish), timers, and connections closing. Then a
// writer starts at once, a store change is applied at once, and nobody is
// paced.
type readBatch struct {
	// writers are the clients whose writers this batch deferred starting
	// (pushLocked); startWriters starts them.
	writers []*client
	// paceFor are the subscribers whose queues this batch found half full
	// (noteBacklog); pace waits for them. paceTimer bounds that wait.
	paceFor   []*client
	paceTimer *time.Timer
	// storeOps are the batch's store changes (Server.persist), and
	// heldAcks the acknowledgements that wait for them (client.ack);
	// flushStore submits both.
	storeOps []StoreOp
	heldAcks []outControl
	// tk is the batch's ticket (acks.go), opened by the first thing its
	// acknowledgements must wait for; flushStore seals it.
	tk *ackTicket
	// packets counts the packets received, recv and recvBytes the PUBLISH
	// packets and payload bytes by QoS; countReceived adds them to the
	// server's counters once per batch.
	packets         int64
	recv, recvBytes [3]int64
	// only, when set, limits the batch's ordinary deliveries to the
	// clients it accepts (RemoteBatch.DeliverTo).
	only func(clientID string) bool
}

// readerBatch is the batch of c's reader, nil for a nil c (no reader is
// routing): what route passes on for a publisher that may be the broker.
func (c *client) readerBatch() *readBatch {
	if c == nil {
		return nil
	}
	return &c.batch
}

// startWriters starts the writers that the batch deferred while routing.
// Only the reader's goroutine calls it, at the end of each batch.
func (rb *readBatch) startWriters() {
	for i, t := range rb.writers {
		t.outMu.Lock()
		start := t.startPending && t.canStartLocked() && len(t.out) > 0
		t.startPending = false
		if start {
			t.writing = true
		}
		t.outMu.Unlock()
		if start {
			go t.writeLoop()
		}
		rb.writers[i] = nil
	}
	rb.writers = rb.writers[:0]
	if cap(rb.writers) > 1024 {
		rb.writers = nil
	}
}

// resetStoreOps empties the batch's store changes, letting go of the
// messages they held.
func (rb *readBatch) resetStoreOps() {
	clear(rb.storeOps)
	rb.storeOps = rb.storeOps[:0]
	if cap(rb.storeOps) > 1024 {
		rb.storeOps = nil
	}
}

// countReceived adds the batch's counts to the server's counters.
func (c *client) countReceived() {
	st := &c.srv.stats
	rb := &c.batch
	if rb.packets != 0 {
		st.packetsIn.Add(rb.packets)
		rb.packets = 0
	}
	for q := range 3 {
		if rb.recv[q] != 0 {
			st.messagesIn.Add(rb.recv[q])
			st.messagesInQoS[q].Add(rb.recv[q])
			st.payloadInQoS[q].Add(rb.recvBytes[q])
			st.bytesIn.Add(rb.recvBytes[q])
			rb.recv[q], rb.recvBytes[q] = 0, 0
		}
	}
}
