package core

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/vanemq/vanemq/core/packets"
	"github.com/vanemq/vanemq/core/topics"
)

// StoredSession is a session as a storage hook saved it.
type StoredSession struct {
	ClientID string
	// Expiry is the session expiry interval in seconds.
	Expiry uint32
	// Disconnected is when its client disconnected: the session expires
	// Expiry seconds after it. Zero means the client was connected when
	// the broker stopped, and the interval counts from Start.
	Disconnected time.Time
	// Owner is the identity that created the session (OpSessionPut's
	// Owner); nil when the store did not record one (written by an older
	// vanemq): the first client to resume the session then owns it.
	Owner *Identity
	// Subscriptions are its subscriptions; Filter may be a $share filter.
	Subscriptions []StoredSubscription
	// Deliveries are the messages queued for or in flight to the client,
	// oldest first. Those with a PacketID were sent but not acknowledged:
	// they are re-sent on reconnect with DUP set, or as PUBREL after a
	// PUBREC [MQTT-4.4.0-1].
	Deliveries []StoredDelivery
	// Inbound are the identifiers of inbound QoS 2 messages received and
	// awaiting PUBREL; a re-sent PUBLISH with one of them is not delivered
	// again [MQTT-4.3.3-10].
	Inbound []uint16
	// Will, for AdoptSession, is the will the session owes: its client's
	// connection ended on a node that died before settling it. It is
	// published after its delay (counted from the adoption) or when the
	// session ends, unless a connection resumes the session first
	// [MQTT-3.1.3-9]; one without a delay is published at once. Stores
	// do not keep it.
	Will *StoredWill
}

// StoredSubscription is one subscription of a stored session.
type StoredSubscription struct {
	Filter            string
	QoS               byte
	NoLocal           bool
	RetainAsPublished bool
	RetainHandling    byte
	Identifier        uint32
}

// StoredMessage is a message as a store keeps it.
type StoredMessage struct {
	// Message is the message as published: its QoS and retain flag are
	// the publisher's, its Properties.MessageExpiry is replaced on restore
	// by what is left of it.
	Message
	// ID identifies the message; deliveries of one message share it. 0
	// for messages that are not shared (retained ones, say).
	ID uint64
	// Expires is when the message expires; zero means never.
	Expires time.Time
}

// StoredDelivery is one message queued for, or in flight to, one client.
type StoredDelivery struct {
	// Seq orders the session's deliveries and identifies this one.
	Seq uint64
	// Message is the message; deliveries of one message may share it.
	Message *StoredMessage
	// QoS, Retain and SubscriptionIDs are this subscriber's view of it.
	QoS             byte
	Retain          bool
	SubscriptionIDs []uint32
	// PacketID is the identifier an inflight message was sent with; 0
	// while it is queued.
	PacketID uint16
	// Pubrec is set when a QoS 2 message's PUBREC was received.
	Pubrec bool
}

// pickStore chooses the Store among the hooks: at most one may be one.
func (s *Server) pickStore() error {
	s.hooks.mu.Lock()
	defer s.hooks.mu.Unlock()
	st, err := onlyHook[Store](s.hooks.entries, "keep the broker's state (Store)")
	s.store = st
	if st != nil {
		s.storeDurable = st.Durable()
	}
	return err
}

// onlyHook returns the one hook among entries that is a T, nil when none
// is; two are an error, naming both and saying what they both do.
func onlyHook[T any](entries []*hookEntry, what string) (T, error) {
	var (
		found T
		id    string
	)
	for _, e := range entries {
		h, ok := e.hook.(T)
		if !ok {
			continue
		}
		if id != "" {
			var none T
			return none, fmt.Errorf("core: hooks %s and %s both %s; use one", id, e.id, what)
		}
		found, id = h, e.id
	}
	return found, nil
}

// storeBarrier waits until everything handed to the store is written.
func (s *Server) storeBarrier() {
	if s.store == nil {
		return
	}
	done := make(chan error, 1)
	s.store.Apply(nil, func(err error) { done <- err })
	if err := <-done; err != nil {
		s.log.Error("store: writing the last changes failed", "cause", err)
	}
}

// restorer rebuilds state from Loader hooks: one message per stored
// message ID, shared by its deliveries; what expired is collected as store
// deletions.
type restorer struct {
	s        *Server
	now      time.Time
	messages map[uint64]*message
	maxSeq   uint64
	deletes  []StoreOp
	expired  int
	// overSubs counts the sessions restored with more subscriptions than
	// Options.MaxSubscriptions; mostSubs is the largest, with mostN.
	overSubs int
	mostSubs string
	mostN    int
	// wills are the wills of restored sessions (StoredSession.Will) to
	// publish at once.
	wills []*willMsg
}

// load restores state from the Loader hooks.
func (s *Server) load(ctx context.Context) error {
	entries := s.hooks.snapshot()
	r := &restorer{s: s, now: time.Now(), messages: make(map[uint64]*message)}
	for _, e := range entries {
		l, ok := e.hook.(Loader)
		if !ok {
			continue
		}
		if err := r.loadFrom(ctx, e.id, l); err != nil {
			return err
		}
	}
	s.storeSeq.Store(max(s.storeSeq.Load(), r.maxSeq))
	r.warnOverLimits()
	if len(r.deletes) > 0 && s.store != nil {
		done := make(chan error, 1)
		s.store.Apply(r.deletes, func(err error) { done <- err })
		if err := <-done; err != nil {
			return fmt.Errorf("core: deleting expired state from the store: %w", err)
		}
	}
	return nil
}

// loadFrom restores one Loader's state.
func (r *restorer) loadFrom(ctx context.Context, id string, l Loader) error {
	s := r.s
	retained, err := l.LoadRetained(ctx)
	if err != nil {
		return fmt.Errorf("core: hook %s: loading retained messages: %w", id, err)
	}
	nRetained := 0
	for i := range retained {
		m := &retained[i]
		if topics.ValidateTopicName(m.Topic) != nil || len(m.Payload) == 0 {
			s.log.Warn("stored retained message skipped: invalid topic or empty payload", "hook", id, "topic", m.Topic)
			continue
		}
		msg := r.message(m)
		if msg == nil {
			r.deletes = append(r.deletes, StoreOp{Kind: OpRetainedDelete, Topic: m.Topic})
			continue
		}
		msg.retain = true
		s.retained.Set(m.Topic, msg)
		nRetained++
	}
	sessions, err := l.LoadSessions(ctx)
	if err != nil {
		return fmt.Errorf("core: hook %s: loading sessions: %w", id, err)
	}
	nSessions := 0
	for i := range sessions {
		ok, err := r.restoreSession(&sessions[i], l)
		if err != nil {
			return fmt.Errorf("core: hook %s: %w", id, err)
		}
		if ok {
			nSessions++
		}
	}
	s.log.Info("state restored", "hook", id, "retained", nRetained, "sessions", nSessions, "expired", r.expired)
	return nil
}

// message returns the message for a stored one, shared by ID, with its
// remaining expiry; nil when it has expired.
func (r *restorer) message(sm *StoredMessage) *message {
	if sm.ID != 0 {
		if m, ok := r.messages[sm.ID]; ok {
			return m
		}
	}
	if !sm.Expires.IsZero() && !r.now.Before(sm.Expires) {
		r.expired++
		return nil
	}
	props := sm.Properties
	if !sm.Expires.IsZero() {
		props.MessageExpiry = uint32((sm.Expires.Sub(r.now) + time.Second - 1) / time.Second)
		props.Set(packets.PropMessageExpiry)
	} else {
		props.MessageExpiry = 0
		props.Clear(packets.PropMessageExpiry)
	}
	m := buildMessage(sm.Topic, sm.Payload, min(sm.QoS, 2), sm.Retain, sm.Origin, &props, r.now)
	if sm.ID != 0 {
		m.storeID.Store(sm.ID)
		r.messages[sm.ID] = m
		r.maxSeq = max(r.maxSeq, sm.ID)
	}
	return m
}

// restoreSession installs one offline session and starts its expiry; it
// reports false for a session that expired while the broker was down.
func (r *restorer) restoreSession(st *StoredSession, l Loader) (bool, error) {
	s := r.s
	if st.ClientID == "" {
		return false, fmt.Errorf("stored session without a client ID")
	}
	_, isStore := l.(Store)
	isStore = isStore && l == s.store
	expiry := min(st.Expiry, s.opts.SessionExpiryMax)
	if !st.Disconnected.IsZero() && expiry != math.MaxUint32 {
		left := time.Duration(expiry)*time.Second - r.now.Sub(st.Disconnected)
		if left <= 0 {
			r.expired++
			if isStore {
				for _, d := range st.Deliveries {
					op := StoreOp{Kind: OpQueueDelete, ClientID: st.ClientID, Seq: d.Seq}
					if d.Message != nil {
						op.MessageID = d.Message.ID
					}
					r.deletes = append(r.deletes, op)
				}
				r.deletes = append(r.deletes, StoreOp{Kind: OpSessionDelete, ClientID: st.ClientID})
			}
			return false, nil
		}
		expiry = uint32((left + time.Second - 1) / time.Second)
	}
	sess := newSession(s, st.ClientID)
	sess.expiry = expiry
	sess.maxQueued = s.opts.MaxQueuedMessages
	sess.stored = isStore
	if st.Owner != nil {
		sess.owner, sess.ownerKnown = *st.Owner, true
	}
	sess.info.Store(&ClientInfo{ID: st.ClientID, Username: sess.owner.Username})
	for _, sub := range st.Subscriptions {
		group, inner, _, err := topics.ParseShared(sub.Filter)
		if err == nil {
			err = topics.ValidateFilter(inner)
		}
		if err != nil {
			return false, fmt.Errorf("session %s: subscription %q: %w", st.ClientID, sub.Filter, err)
		}
		ts := topics.Subscription{
			ClientID: st.ClientID, Filter: inner, Group: group, QoS: min(sub.QoS, 2),
			NoLocal: sub.NoLocal, RetainAsPublished: sub.RetainAsPublished,
			RetainHandling: sub.RetainHandling, Identifier: sub.Identifier,
		}
		if sess.subs == nil {
			sess.subs = make(map[subKey]topics.Subscription)
		}
		sess.subs[subKey{group: group, filter: inner}] = ts
	}
	for _, id := range st.Inbound {
		if sess.inQoS2 == nil {
			sess.inQoS2 = make(map[uint16]struct{})
		}
		sess.inQoS2[id] = struct{}{}
	}
	for _, sd := range st.Deliveries {
		if sd.Message == nil {
			return false, fmt.Errorf("session %s: delivery %d without a message", st.ClientID, sd.Seq)
		}
		if sd.PacketID != 0 && sd.QoS == 0 {
			return false, fmt.Errorf("session %s: inflight message %d at QoS 0", st.ClientID, sd.PacketID)
		}
		r.maxSeq = max(r.maxSeq, sd.Seq)
		m := r.message(sd.Message)
		if m == nil {
			if isStore {
				r.deletes = append(r.deletes, StoreOp{Kind: OpQueueDelete, ClientID: st.ClientID, Seq: sd.Seq, MessageID: sd.Message.ID})
			}
			continue
		}
		d := delivery{msg: m, qos: min(sd.QoS, 2), retain: sd.Retain}
		if len(sd.SubscriptionIDs) > 0 {
			d.subIDs = sd.SubscriptionIDs
		}
		if isStore {
			d.seq, d.stored = sd.Seq, true
		}
		if sd.PacketID == 0 {
			sess.pending.push(d)
			continue
		}
		if sess.inflight.has(sd.PacketID) {
			return false, fmt.Errorf("session %s: two inflight messages with packet identifier %d", st.ClientID, sd.PacketID)
		}
		sess.inflight.put(inflightMsg{delivery: d, id: sd.PacketID, pubrec: sd.Pubrec})
		sess.nextID = sd.PacketID // deliveries come oldest first
	}
	s.sessMu.Lock()
	defer s.sessMu.Unlock()
	if _, dup := s.sessions[st.ClientID]; dup {
		return false, fmt.Errorf("session %s restored twice", st.ClientID)
	}
	for _, sub := range sess.subs {
		s.subs.Subscribe(sub)
		s.interestAdded(sub.Group, sub.Filter, sub.QoS, -1)
	}
	r.countSubscriptions(sess)
	s.sessions[st.ClientID] = sess
	s.live.Store(st.ClientID, sess)
	sess.mu.Lock()
	gen := sess.gen
	if st.Will != nil {
		w, err := sess.restoreWill(st.Will, gen)
		if err != nil {
			s.log.Warn("a session's will does not decode; it is not published", "client", st.ClientID, "cause", err)
		}
		if w != nil {
			r.wills = append(r.wills, w)
		}
	}
	sess.expiryTimer = time.AfterFunc(time.Duration(sess.expiry)*time.Second, func() { s.expireSession(sess, gen) })
	sess.mu.Unlock()
	return true, nil
}
