package core

// ack queues an acknowledgement of something the client sent (PUBACK,
// PUBREC, PUBCOMP, SUBACK, UNSUBACK). It waits while the reader's batch
// has changes for a durable store or QoS 1/2 messages being handed to the
// cluster, or an earlier batch's acknowledgements still wait (see
// ackTicket), so that no acknowledgement goes out before what it
// acknowledges is safe, and acknowledgements keep the order of the packets
// they answer [MQTT-4.6.0-2/3/4].
func (c *client) ack(ctl outControl) {
	rb := &c.batch
	if rb.tk != nil || c.commits.Load() > 0 || (c.srv.storeDurable && len(rb.storeOps) > 0) {
		rb.heldAcks = append(rb.heldAcks, ctl)
		return
	}
	c.enqueueControl(ctl, rb)
}

// flushStore hands the batch's store changes to the store, and seals the
// batch's ticket with the acknowledgements that wait for them and for the
// batch's cluster hand-offs. Called by the reader at the end of each
// batch, before it starts the writers the batch fed, so that a delivery's
// record is submitted before its subscriber can acknowledge it.
func (c *client) flushStore() {
	rb := &c.batch
	if len(rb.storeOps) == 0 && len(rb.heldAcks) == 0 && rb.tk == nil {
		return
	}
	st := c.srv.store
	if len(rb.storeOps) > 0 {
		if c.srv.storeDurable {
			t := rb.ticket(c)
			t.pending.Add(1)
			st.Apply(rb.storeOps, t.storeDone)
		} else {
			st.Apply(rb.storeOps, nil)
		}
		rb.resetStoreOps()
	}
	if len(rb.heldAcks) == 0 && rb.tk == nil {
		return
	}
	rb.ticket(c)
	rb.seal()
}

// enqueueControls queues several control packets at once.
func (c *client) enqueueControls(ctls []outControl) {
	c.outMu.Lock()
	if c.outFinal {
		c.outMu.Unlock()
		return
	}
	if c.out == nil {
		c.out = (*c.srv.batches.Get().(*[]outItem))[:0]
	}
	for _, ctl := range ctls[:len(ctls)-1] {
		c.out = append(c.out, outItem{ctl: ctl})
	}
	c.pushLocked(outItem{ctl: ctls[len(ctls)-1]}, nil)
}

// holdOutput keeps the writer from starting until releaseOutput: a CONNACK
// whose session change is being stored waits for it.
func (c *client) holdOutput() {
	c.outMu.Lock()
	c.outHeld = true
	c.outMu.Unlock()
}

// releaseOutput lets the writer run again and starts it if work waits.
func (c *client) releaseOutput() {
	c.outMu.Lock()
	c.outHeld = false
	start := len(c.out) > 0 && c.canStartLocked()
	if start {
		c.writing = true
	}
	c.outMu.Unlock()
	if start {
		go c.writeLoop()
	}
}

// flushConnect stores what connecting changed. With a durable store the
// CONNACK (held by attach) goes out once that is on disk; when storing
// fails the connection is closed without it.
func (c *client) flushConnect() {
	rb := &c.batch
	if len(rb.storeOps) == 0 {
		return
	}
	if !c.srv.storeDurable {
		c.srv.store.Apply(rb.storeOps, nil)
		rb.resetStoreOps()
		return
	}
	c.commits.Add(1)
	c.srv.store.Apply(rb.storeOps, func(err error) {
		if err != nil {
			c.srv.stats.storeFailures.Add(1)
			c.logger().Error("storing the session failed; closing connection without CONNACK", "cause", err)
			c.outMu.Lock()
			unsent := c.out
			c.out = nil
			c.outFinal = true
			c.outMu.Unlock()
			// Released outside outMu, a leaf (release takes viewMu).
			for _, it := range unsent {
				if it.publish {
					it.d.msg.release()
				}
			}
			if unsent != nil {
				c.putBatch(unsent)
			}
			c.wakeReader()
		}
		c.releaseOutput()
		c.commits.Add(-1)
	})
	rb.resetStoreOps()
}
