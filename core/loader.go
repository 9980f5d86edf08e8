package core

import (
	"context"
	"fmt"
	"time"

	"github.com/vanemq/vanemq/core/topics"
)

// Loader is implemented by storage hooks. At Start, before any listener
// accepts a connection, the server restores the retained messages and the
// sessions of every hook that implements it, in pipeline order; an error
// fails Start.
type Loader interface {
	// LoadRetained returns the retained messages to restore.
	LoadRetained(ctx context.Context) ([]Message, error)
	// LoadSessions returns the sessions to restore, all offline.
	LoadSessions(ctx context.Context) ([]StoredSession, error)
}

// StoredSession is a session as a storage hook saved it.
type StoredSession struct {
	ClientID string
	// Expiry is the session expiry interval in seconds, counted from
	// Start: the session ends then unless its client resumes it.
	Expiry uint32
	// Subscriptions are its subscriptions; Filter may be a $share filter.
	Subscriptions []StoredSubscription
	// Inflight are outbound QoS 1/2 messages sent but not acknowledged:
	// re-sent, with DUP set (or as PUBREL after a PUBREC), on reconnect.
	Inflight []StoredMessage
	// Pending are messages queued for the client, oldest first.
	Pending []StoredMessage
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

// StoredMessage is a message waiting for, or in flight to, a client.
// Its Properties.SubscriptionIDs are the identifiers of the subscriptions
// it matched, sent with it.
type StoredMessage struct {
	Message
	// PacketID is the identifier an inflight message was sent with.
	PacketID uint16
	// Pubrec is set when a QoS 2 message's PUBREC was received.
	Pubrec bool
}

// load restores state from the Loader hooks.
func (s *Server) load(ctx context.Context) error {
	s.hooks.mu.Lock()
	entries := append([]*hookEntry(nil), s.hooks.entries...)
	s.hooks.mu.Unlock()
	now := time.Now()
	for _, e := range entries {
		l, ok := e.hook.(Loader)
		if !ok {
			continue
		}
		retained, err := l.LoadRetained(ctx)
		if err != nil {
			return fmt.Errorf("core: hook %s: loading retained messages: %w", e.id, err)
		}
		for _, m := range retained {
			if topics.ValidateTopicName(m.Topic) != nil || len(m.Payload) == 0 {
				s.log.Warn("stored retained message skipped: invalid topic or empty payload", "hook", e.id, "topic", m.Topic)
				continue
			}
			s.retained.Set(m.Topic, buildMessage(m.Topic, m.Payload, m.QoS, true, m.Origin, &m.Properties, now))
		}
		sessions, err := l.LoadSessions(ctx)
		if err != nil {
			return fmt.Errorf("core: hook %s: loading sessions: %w", e.id, err)
		}
		for i := range sessions {
			if err := s.restoreSession(&sessions[i], now); err != nil {
				return fmt.Errorf("core: hook %s: %w", e.id, err)
			}
		}
		s.log.Info("state restored", "hook", e.id, "retained", len(retained), "sessions", len(sessions))
	}
	return nil
}

// restoreSession installs one offline session and starts its expiry.
func (s *Server) restoreSession(st *StoredSession, now time.Time) error {
	if st.ClientID == "" {
		return fmt.Errorf("stored session without a client ID")
	}
	sess := newSession(s, st.ClientID)
	sess.expiry = min(st.Expiry, s.opts.SessionExpiryMax)
	sess.maxQueued = s.opts.MaxQueuedMessages
	for _, sub := range st.Subscriptions {
		group, inner, _, err := topics.ParseShared(sub.Filter)
		if err == nil {
			err = topics.ValidateFilter(inner)
		}
		if err != nil {
			return fmt.Errorf("session %s: subscription %q: %w", st.ClientID, sub.Filter, err)
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
		s.subs.Subscribe(ts)
	}
	for _, m := range st.Inflight {
		if m.PacketID == 0 || m.QoS == 0 {
			return fmt.Errorf("session %s: inflight message without a packet identifier or at QoS 0", st.ClientID)
		}
		if sess.inflight == nil {
			sess.inflight = make(map[uint16]inflightMsg)
		}
		sess.inflight[m.PacketID] = inflightMsg{delivery: storedDelivery(&m, now), id: m.PacketID, pubrec: m.Pubrec}
		sess.nextID = max(sess.nextID, m.PacketID)
	}
	for _, m := range st.Pending {
		sess.pending.push(storedDelivery(&m, now))
	}
	s.sessMu.Lock()
	defer s.sessMu.Unlock()
	if _, dup := s.sessions[st.ClientID]; dup {
		return fmt.Errorf("session %s restored twice", st.ClientID)
	}
	s.sessions[st.ClientID] = sess
	s.live.Store(st.ClientID, sess)
	sess.mu.Lock()
	gen := sess.gen
	sess.expiryTimer = time.AfterFunc(time.Duration(sess.expiry)*time.Second, func() { s.expireSession(sess, gen) })
	sess.mu.Unlock()
	return nil
}

// storedDelivery turns a stored message into a delivery.
func storedDelivery(m *StoredMessage, now time.Time) delivery {
	msg := buildMessage(m.Topic, m.Payload, m.QoS, m.Retain, m.Origin, &m.Properties, now)
	var ids []uint32
	if len(m.Properties.SubscriptionIDs) > 0 {
		ids = m.Properties.SubscriptionIDs
	}
	return delivery{msg: msg, qos: min(m.QoS, 2), retain: m.Retain, subIDs: ids}
}
