package core

import (
	"slices"
	"strings"
)

// ClientStatus describes one session, connected or not, for operators
// (the admin API).
type ClientStatus struct {
	ID              string `json:"id"`
	Connected       bool   `json:"connected"`
	Username        string `json:"username,omitempty"`
	Remote          string `json:"remote,omitempty"`
	Listener        string `json:"listener,omitempty"`
	ProtocolVersion byte   `json:"protocol_version,omitempty"`
	CleanStart      bool   `json:"clean_start"`
	// ExpiryInterval is the session expiry interval in seconds.
	ExpiryInterval uint32 `json:"session_expiry_interval"`
	Subscriptions  int    `json:"subscriptions"`
	Inflight       int    `json:"inflight"`
	Queued         int    `json:"queued"`
	Dropped        uint64 `json:"dropped"`
}

// SubscriptionStatus describes one subscription.
type SubscriptionStatus struct {
	ClientID string `json:"client_id"`
	// Filter is the filter as subscribed, $share prefix included.
	Filter            string `json:"filter"`
	QoS               byte   `json:"qos"`
	NoLocal           bool   `json:"no_local,omitempty"`
	RetainAsPublished bool   `json:"retain_as_published,omitempty"`
	RetainHandling    byte   `json:"retain_handling,omitempty"`
	Identifier        uint32 `json:"subscription_identifier,omitempty"`
}

// Clients describes every session, sorted by client ID.
func (s *Server) Clients() []ClientStatus {
	s.sessMu.Lock()
	sessions := make([]*session, 0, len(s.sessions))
	for _, sess := range s.sessions {
		sessions = append(sessions, sess)
	}
	s.sessMu.Unlock()
	out := make([]ClientStatus, 0, len(sessions))
	for _, sess := range sessions {
		out = append(out, sess.status())
	}
	slices.SortFunc(out, func(a, b ClientStatus) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Client describes the session of one client ID.
func (s *Server) Client(id string) (ClientStatus, bool) {
	v, ok := s.live.Load(id)
	if !ok {
		return ClientStatus{}, false
	}
	return v.(*session).status(), true
}

// Subscriptions describes every subscription of every session, sorted by
// client ID, then filter.
func (s *Server) Subscriptions() []SubscriptionStatus {
	s.sessMu.Lock()
	sessions := make([]*session, 0, len(s.sessions))
	for _, sess := range s.sessions {
		sessions = append(sessions, sess)
	}
	s.sessMu.Unlock()
	var out []SubscriptionStatus
	for _, sess := range sessions {
		out = sess.appendSubscriptions(out)
	}
	slices.SortFunc(out, func(a, b SubscriptionStatus) int {
		if c := strings.Compare(a.ClientID, b.ClientID); c != 0 {
			return c
		}
		return strings.Compare(a.Filter, b.Filter)
	})
	return out
}

// SubscriptionsOf describes the subscriptions of client id's session, in
// no particular order (none without a session).
func (s *Server) SubscriptionsOf(id string) []SubscriptionStatus {
	v, ok := s.live.Load(id)
	if !ok {
		return nil
	}
	return v.(*session).appendSubscriptions(nil)
}

// appendSubscriptions appends the session's subscriptions to out.
func (sess *session) appendSubscriptions(out []SubscriptionStatus) []SubscriptionStatus {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	for _, sub := range sess.subs {
		out = append(out, SubscriptionStatus{
			ClientID: sess.id, Filter: fullFilter(sub), QoS: sub.QoS, NoLocal: sub.NoLocal,
			RetainAsPublished: sub.RetainAsPublished, RetainHandling: sub.RetainHandling, Identifier: sub.Identifier,
		})
	}
	return out
}

// status snapshots a session.
func (sess *session) status() ClientStatus {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	st := ClientStatus{
		ID:             sess.id,
		ExpiryInterval: sess.expiry,
		Subscriptions:  len(sess.subs),
		Inflight:       sess.inflight.len(),
		Queued:         sess.pending.len(),
		Dropped:        sess.dropped,
	}
	if c := sess.conn; c != nil {
		st.Connected = true
		st.Username = c.info.Username
		st.Remote = c.info.Remote
		st.Listener = c.info.Listener
		st.ProtocolVersion = c.info.ProtocolVersion
		st.CleanStart = c.info.CleanStart
	}
	return st
}
