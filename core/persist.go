package core

import (
	"strings"
	"time"

	"github.com/vanemq/vanemq/core/topics"
)

// This file turns session state changes into StoreOps. A change made by a
// client's reader goes into the reader's batch (readBatch.storeOps), which
// the reader hands to the store at the end of the batch, holding the
// batch's acknowledgements until it is durable (see flushStore); a change
// made elsewhere (timers, the broker's own publishes, closing connections)
// goes to the store at once.

// nextStoreSeq returns a fresh store sequence number, for deliveries and
// message identifiers alike; it only grows, across restarts too (load
// starts it above everything restored).
func (s *Server) nextStoreSeq() uint64 { return s.storeSeq.Add(1) }

// messageID returns m's store identifier, assigning one on first use.
func (s *Server) messageID(m *message) uint64 {
	if id := m.storeID.Load(); id != 0 {
		return id
	}
	id := s.nextStoreSeq()
	if m.storeID.CompareAndSwap(0, id) {
		return id
	}
	return m.storeID.Load()
}

// persist hands op to the store: into rb, the batch of the reader making
// the change, or at once when rb is nil.
func (s *Server) persist(rb *readBatch, op StoreOp) {
	if rb != nil {
		rb.storeOps = append(rb.storeOps, op)
		return
	}
	s.store.Apply([]StoreOp{op}, nil)
}

// deliveryOp describes a stored delivery of the session.
func (s *session) deliveryOp(kind StoreOpKind, d *delivery, id uint16, pubrec bool) StoreOp {
	op := StoreOp{
		Kind: kind, ClientID: s.id, Seq: d.seq, QoS: d.qos, Retain: d.retain,
		SubscriptionIDs: d.subIDs, PacketID: id, Pubrec: pubrec,
	}
	if kind != OpQueueDelete {
		op.msg = d.msg
	}
	op.MessageID = s.srv.messageID(d.msg)
	return op
}

// storeQueuedLocked records a delivery that stays in the pending queue.
func (s *session) storeQueuedLocked(d *delivery, rb *readBatch) {
	if d.seq == 0 || d.stored {
		return
	}
	d.stored = true
	s.srv.persist(rb, s.deliveryOp(OpQueueAdd, d, 0, false))
}

// storeInflightLocked records a delivery that went into flight as id.
func (s *session) storeInflightLocked(d *delivery, id uint16, rb *readBatch) {
	if d.seq == 0 {
		return
	}
	kind := OpQueueUpdate
	if !d.stored {
		kind = OpQueueAdd
		d.stored = true
	}
	s.srv.persist(rb, s.deliveryOp(kind, d, id, false))
}

// unstoreDeliveryLocked records that a delivery left the session.
func (s *session) unstoreDeliveryLocked(d *delivery, rb *readBatch) {
	if d.seq == 0 || !d.stored {
		return
	}
	s.srv.persist(rb, s.deliveryOp(OpQueueDelete, d, 0, false))
}

// sessionOp describes the session record.
func (s *session) sessionOp(disconnected time.Time) StoreOp {
	return StoreOp{Kind: OpSessionPut, ClientID: s.id, Expiry: s.expiry, Disconnected: disconnected, Owner: s.owner}
}

// persistAllLocked writes a session that was not stored, with everything
// it holds, and marks it stored; a stored one has its record updated.
func (s *session) persistAllLocked(rb *readBatch) {
	srv := s.srv
	srv.persist(rb, s.sessionOp(time.Time{}))
	if s.stored {
		return
	}
	s.stored = true
	for _, sub := range s.subs {
		srv.persist(rb, StoreOp{Kind: OpSubscriptionPut, ClientID: s.id, Subscription: storedSubscription(sub)})
	}
	for id := range s.inQoS2 {
		srv.persist(rb, StoreOp{Kind: OpInboundPut, ClientID: s.id, PacketID: id})
	}
	s.inflight.each(func(m *inflightMsg) {
		m.seq = srv.nextStoreSeq()
		m.stored = true
		srv.persist(rb, s.deliveryOp(OpQueueAdd, &m.delivery, m.id, m.pubrec))
	})
	s.pending.each(func(d *delivery) {
		d.seq = srv.nextStoreSeq()
		s.storeQueuedLocked(d, rb)
	})
}

// unstoreLocked removes a stored session from the store: each stored
// delivery (so that message references are counted down), then the
// session and everything else it owns. The session stays in memory,
// unstored.
func (s *session) unstoreLocked(rb *readBatch) {
	if !s.stored {
		return
	}
	s.stored = false
	s.inflight.each(func(m *inflightMsg) {
		s.unstoreDeliveryLocked(&m.delivery, rb)
		m.seq, m.stored = 0, false
	})
	s.pending.each(func(d *delivery) {
		s.unstoreDeliveryLocked(d, rb)
		d.seq, d.stored = 0, false
	})
	for i := range s.held {
		d := &s.held[i].d
		s.unstoreDeliveryLocked(d, rb)
		d.seq, d.stored = 0, false
	}
	s.srv.persist(rb, StoreOp{Kind: OpSessionDelete, ClientID: s.id})
}

// storedSubscription is a subscription as the store keeps it: the filter
// includes the share prefix.
func storedSubscription(sub topics.Subscription) StoredSubscription {
	return StoredSubscription{
		Filter: fullFilter(sub), QoS: sub.QoS, NoLocal: sub.NoLocal,
		RetainAsPublished: sub.RetainAsPublished, RetainHandling: sub.RetainHandling,
		Identifier: sub.Identifier,
	}
}

// persistRetained records a retained message set or cleared by a publish.
// $SYS topics are the broker's own live state and are not stored.
func (s *Server) persistRetained(m *message, rb *readBatch) {
	if s.store == nil || strings.HasPrefix(m.topic, "$SYS/") {
		return
	}
	if len(m.payload) == 0 {
		s.persist(rb, StoreOp{Kind: OpRetainedDelete, Topic: m.topic})
		return
	}
	s.persist(rb, StoreOp{Kind: OpRetainedPut, MessageID: s.messageID(m), msg: m})
}
