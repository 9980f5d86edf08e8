package core

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vanemq/vanemq/core/packets"
	"github.com/vanemq/vanemq/core/topics"
)

// delivery is one message on its way to one subscriber, with the
// subscriber's view of it.
type delivery struct {
	msg    *message
	qos    byte
	retain bool
	subIDs []uint32 // v5 subscription identifiers of the matching subscriptions
	// seq identifies the delivery in the store and orders the session's
	// stored deliveries; 0 when the session is not stored. stored is set
	// once the store was told of it (OpQueueAdd).
	seq    uint64
	stored bool
}

// inflightMsg is an outbound QoS 1 or 2 message awaiting acknowledgement.
type inflightMsg struct {
	delivery
	id     uint16
	pubrec bool // QoS 2: PUBREC received, PUBREL sent, awaiting PUBCOMP
}

// session is the state the broker keeps for a client identifier across
// connections: subscriptions, unacknowledged messages both ways, and the
// queue of messages waiting to be sent. All fields are guarded by mu. The
// maps are created when first needed, so a session that only connects
// costs little.
type session struct {
	id  string
	srv *Server

	mu sync.Mutex
	// conn is the live connection, nil while the client is offline.
	conn *client
	// owner is the identity that created the session: a connection of
	// another identity never resumes it (Options.ForeignSession). ownerKnown
	// is false for a session restored from a store that did not record it.
	owner      Identity
	ownerKnown bool
	// info is the subscriber as the read and Deliver hooks see it: the
	// last connection's ClientInfo, or for a session restored from
	// storage and not yet resumed, its ID and owner's user name. It is
	// read without mu, by deliveries.
	info atomic.Pointer[ClientInfo]
	// reads caches the read verdicts for the subscriber (read_auth.go).
	reads readCache
	// internal is set for the session of one of the broker's own
	// connections (InternalIDPrefix), which read checks skip.
	internal bool
	// gen counts connections to this session, so timers and closing
	// connections can tell whether the session moved on without them.
	gen uint64
	// subs are the session's subscriptions, keyed by share group and filter.
	subs map[subKey]topics.Subscription
	// inflight holds outbound QoS 1/2 messages by packet identifier.
	inflight inflightTable
	// pending is the bounded queue of messages not yet in flight.
	pending queue[delivery]
	// inQoS2 holds identifiers of inbound QoS 2 messages that were
	// delivered and await PUBREL (bounded by the Receive Maximum).
	inQoS2 map[uint16]struct{}
	// unforwarded holds the inbound QoS 2 messages, by identifier, whose
	// hand-off to the cluster failed (their PUBREC withheld): a resend of
	// one is handed off again rather than taken for a duplicate that was
	// routed. Memory only.
	unforwarded map[uint16]*message
	nextID      uint16

	// expiry is the session expiry interval in seconds (v5), or the
	// broker's maximum for a 3.x persistent session; 0 ends the session
	// when the connection closes.
	expiry      uint32
	expiryTimer *time.Timer
	// will is the pending will of the last connection, published when its
	// delay elapses or the session ends.
	will      *willMsg
	willTimer *time.Timer

	// maxQueued bounds pending (Options.MaxQueuedMessages, or the policy
	// a Connect hook set for the client).
	maxQueued int

	// dropped counts messages dropped for this session (queue full,
	// expired, too large).
	dropped uint64

	// stored is set while the session has a record in the server's
	// Store: its changes are then recorded there (persist.go).
	stored bool

	// retaining counts the SUBSCRIBEs sending this session retained
	// messages with mu released, so that hook code does not run under it
	// (sendRetainedLocked). While it is not 0, deliveries offered to the
	// session wait in held, and follow the retained messages in: a message
	// published after the SUBACK never overtakes them.
	retaining int
	held      []heldDelivery
}

// heldDelivery is a delivery offered while retained messages were being
// sent (session.retaining), with offerLocked's persistent.
type heldDelivery struct {
	d          delivery
	persistent bool
}

// subKey identifies a subscription within a session.
type subKey struct {
	group  string
	filter string
}

func newSession(srv *Server, id string) *session {
	return &session{
		id:       id,
		srv:      srv,
		internal: strings.HasPrefix(id, InternalIDPrefix),
	}
}

// sendQuotaLocked is how many more QoS 1/2 messages may be put in flight.
func (s *session) sendQuotaLocked() int {
	if s.conn == nil {
		return 0
	}
	return int(s.conn.sendMax) - s.inflight.len()
}

// allocIDLocked returns a free outbound packet identifier, or 0 when all
// 65535 are in use.
func (s *session) allocIDLocked() uint16 {
	for range 65535 {
		s.nextID++
		if s.nextID == 0 {
			s.nextID = 1
		}
		if !s.inflight.has(s.nextID) {
			return s.nextID
		}
	}
	return 0
}

// offerLocked hands a delivery to the session: straight to the live
// connection when it can take it, otherwise into the bounded queue. It
// reports whether the delivery was accepted (false: dropped and counted).
// While retained messages are being sent it holds the delivery instead
// (holdLocked).
func (s *session) offerLocked(d delivery, persistent bool, rb *readBatch) bool {
	if s.retaining > 0 {
		return s.holdLocked(d, persistent, rb)
	}
	return s.offerNowLocked(d, persistent, rb)
}

// offerNowLocked is offerLocked without holding: for the retained
// messages themselves, and the held deliveries that follow them.
func (s *session) offerNowLocked(d delivery, persistent bool, rb *readBatch) bool {
	srv := s.srv
	if d.qos == 0 {
		if s.conn != nil {
			if s.conn.enqueuePublish(d, 0, false, rb) {
				return true
			}
			s.dropLocked(d, DropOutboundQueueFull)
			return false
		}
		if !persistent || !srv.opts.QueueQoS0 {
			return false
		}
	}
	if s.pending.len() >= s.maxQueued {
		s.unstoreDeliveryLocked(&d, rb) // one held (holdLocked) is stored
		s.dropLocked(d, DropSessionQueueFull)
		return false
	}
	if s.stored && d.seq == 0 {
		d.seq = srv.nextStoreSeq()
	}
	s.pending.push(d)
	if s.conn != nil && s.pending.len() >= s.maxQueued/2 {
		rb.noteBacklog(s.conn)
	}
	s.pumpLocked(rb)
	if d.seq != 0 && s.pending.len() > 0 {
		// Still waiting: stored as queued. (Had it gone into flight,
		// pumpLocked would have stored it with its packet identifier.)
		if t := s.pending.tail(); t.seq == d.seq {
			s.storeQueuedLocked(t, rb)
		}
	}
	return true
}

// holdLocked keeps a delivery offered while retained messages are being
// sent, to offer it once they are in (endRetainingLocked). Held deliveries
// count against the session's queue bound. One of QoS 1 or 2 to a stored
// session is stored now, as queued, so that the publisher's
// acknowledgement still waits until it is stored (flushStore).
func (s *session) holdLocked(d delivery, persistent bool, rb *readBatch) bool {
	if len(s.held)+s.pending.len() >= s.maxQueued {
		s.dropLocked(d, DropSessionQueueFull)
		return false
	}
	if s.stored && d.qos > 0 {
		d.seq = s.srv.nextStoreSeq()
		s.storeQueuedLocked(&d, rb)
	}
	s.held = append(s.held, heldDelivery{d: d, persistent: persistent})
	return true
}

// endRetainingLocked ends one sending of retained messages (see
// session.retaining); the last one offers the held deliveries, in the
// order they came.
func (s *session) endRetainingLocked(rb *readBatch) {
	s.retaining--
	if s.retaining > 0 {
		return
	}
	held := s.held
	s.held = nil
	for _, h := range held {
		s.offerNowLocked(h.d, h.persistent, rb)
	}
}

// pumpLocked moves queued messages into flight while the connection's send
// quota allows, dropping any that expired while they waited.
func (s *session) pumpLocked(rb *readBatch) {
	c := s.conn
	if c == nil {
		return
	}
	var now time.Time // read once, and only for a message with an expiry
	for s.pending.len() > 0 {
		d := s.pending.peek()
		if !d.msg.expires.IsZero() && now.IsZero() {
			now = time.Now()
		}
		if d.msg.expired(now) {
			s.pending.pop()
			s.unstoreDeliveryLocked(&d, rb)
			s.dropLocked(d, DropExpired)
			continue
		}
		if d.qos == 0 {
			s.pending.pop()
			s.unstoreDeliveryLocked(&d, rb)
			if !c.enqueuePublish(d, 0, false, rb) {
				s.dropLocked(d, DropOutboundQueueFull)
			}
			continue
		}
		if s.sendQuotaLocked() <= 0 {
			return
		}
		id := s.allocIDLocked()
		if id == 0 {
			return
		}
		s.pending.pop()
		s.storeInflightLocked(&d, id, rb)
		s.inflight.put(inflightMsg{delivery: d, id: id})
		c.enqueuePublish(d, id, false, rb)
	}
}

// resendLocked re-sends every inflight message on a new connection: PUBLISH
// with DUP set, or PUBREL where PUBREC was already received [MQTT-4.4.0-1].
// Messages are re-sent in identifier allocation order as far as the map
// allows; the order is restored by sorting.
func (s *session) resendLocked() {
	c := s.conn
	if c == nil || s.inflight.len() == 0 {
		return
	}
	ids := make([]uint16, 0, s.inflight.len())
	s.inflight.each(func(m *inflightMsg) { ids = append(ids, m.id) })
	sortIDs(ids, s.nextID)
	for _, id := range ids {
		m, _ := s.inflight.get(id)
		if m.pubrec {
			c.enqueueControl(outControl{kind: packets.Pubrel, id: id}, nil)
			continue
		}
		c.enqueuePublish(m.delivery, id, true, nil)
	}
}

// ackLocked completes an outbound QoS 1 (PUBACK) or QoS 2 (PUBCOMP) flow
// and fills the freed slot from the queue. It reports whether id was known.
func (s *session) ackLocked(id uint16, rb *readBatch) bool {
	m, ok := s.inflight.remove(id)
	if !ok {
		return false
	}
	s.unstoreDeliveryLocked(&m.delivery, rb)
	s.srv.ackedEvent(s.id, m.msg)
	s.pumpLocked(rb)
	if c := s.conn; c != nil {
		c.outMu.Lock()
		c.signalSpaceLocked()
		c.outMu.Unlock()
	}
	return true
}

// dropLocked counts a dropped delivery.
func (s *session) dropLocked(d delivery, why DropReason) {
	s.dropped++
	s.srv.stats.dropped.Add(1)
	s.srv.stats.droppedBy[why].Add(1)
	s.srv.droppedEvent(s.id, d.msg, why.Text())
	if s.srv.log.Enabled(context.Background(), slog.LevelDebug) {
		s.srv.log.Debug("message dropped", "client", s.id, "topic", d.msg.topic, "qos", d.qos, "reason", why.Text())
	}
}
