package core

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/vanemq/vanemq/core/packets"
)

// A client's session lives on one node of a cluster at a time. When a
// client connects, the server asks the cluster hook to claim its session
// (ClusterHook.ClaimSession) before it looks the session up: the hook
// finds which node holds it and asks that node to let it go
// (ReleaseSession there, which closes the client's connection with
// Session taken over), then installs what it was given here
// (AdoptSession), so that the connection resumes it as if it had always
// been here.

// Release is what ReleaseSession did.
type Release uint8

// What ReleaseSession did.
const (
	// ReleaseNone: this node has no session for the client.
	ReleaseNone Release = iota
	// Released: the session left this node.
	Released
	// ReleaseRefused: the session belongs to another identity than the
	// claim's and Options.ForeignSession refuses the claim: nothing
	// changed.
	ReleaseRefused
)

// ReleaseSession lets the session of claim.ClientID go from this node
// because its client connected to another node of the cluster, under the
// rules of a takeover here: a session of another identity than the
// claim's is refused (ReleaseRefused, Options.ForeignSession refuse) or
// discarded (discard); a connection it has is closed with DISCONNECT
// Session taken over (0x8E) [MQTT-3.1.4-3]; its will is published or
// suppressed as for a takeover here (published when the session is
// discarded, or its delay is 0); and the session leaves this node: its
// subscriptions, its queue and its stored records. Unless it is
// discarded (claim.Clean, or foreign), ReleaseSession returns the
// session's state, with its queued and inflight messages in order, for
// the other node's AdoptSession.
func (s *Server) ReleaseSession(claim SessionClaim) (StoredSession, Release) {
	var (
		oldConn *client
		wills   []*willMsg
		st      StoredSession
	)
	id, discard := claim.ClientID, claim.Clean || claim.Fenced
	now := time.Now()
	s.sessMu.Lock()
	sess := s.sessions[id]
	if sess == nil {
		s.sessMu.Unlock()
		return st, ReleaseNone
	}
	sess.mu.Lock()
	if !claim.Fenced && sess.foreignLocked(claim.Identity) {
		owner := sess.owner
		if s.opts.ForeignSession == ForeignSessionRefuse {
			sess.mu.Unlock()
			s.sessMu.Unlock()
			s.log.Warn("client identifier in use by another identity's session: a claim from another node refused (foreign_session: refuse)",
				"client", id, "identity", claim.Identity.String(), "owner", owner.String())
			return st, ReleaseRefused
		}
		if !discard {
			s.log.Warn("client identifier in use by another identity's session: discarded for a claim from another node (foreign_session: discard)",
				"client", id, "identity", claim.Identity.String(), "owner", owner.String())
			discard = true
		}
	}
	oldConn = sess.conn
	if oldConn != nil {
		sess.conn = nil
		s.online.Add(-1)
		if w := oldConn.will; w != nil && (discard || w.Properties.WillDelay == 0) {
			wills = append(wills, &willMsg{will: w, origin: id, info: &oldConn.info})
		}
	}
	if w := sess.takeWillLocked(); w != nil && discard {
		wills = append(wills, w)
	}
	if claim.Adopted {
		wills = nil // the adopting node publishes what the session owes
	}
	sess.stopTimersLocked()
	if !discard {
		st = sess.snapshotLocked(now)
	}
	s.discardLocked(sess, nil)
	s.removeSessionLocked(sess)
	sess.mu.Unlock()
	s.sessMu.Unlock()

	if oldConn != nil {
		s.sessionEvent(&oldConn.info, SessionTakenOver)
		if oldConn.logs(slog.LevelInfo) {
			oldConn.logger().Info("session taken over by a connection to another node")
		}
		s.stats.takeovers.Add(1)
		oldConn.kick(packets.SessionTakenOver, "session taken over on another node")
	}
	for _, w := range wills {
		s.publishWill(w)
	}
	return st, Released
}

// snapshotLocked is the session's state as a store would restore it: its
// subscriptions, its inflight messages, then its queued ones, and the
// inbound QoS 2 identifiers awaiting PUBREL. Callers hold sess.mu.
func (sess *session) snapshotLocked(now time.Time) StoredSession {
	st := StoredSession{ClientID: sess.id, Expiry: sess.expiry, Disconnected: now}
	if sess.ownerKnown {
		o := sess.owner
		st.Owner = &o
	}
	for _, sub := range sess.subs {
		st.Subscriptions = append(st.Subscriptions, storedSubscription(sub))
	}
	slices.SortFunc(st.Subscriptions, func(a, b StoredSubscription) int { return strings.Compare(a.Filter, b.Filter) })
	seq := uint64(0)
	add := func(d *delivery, id uint16, pubrec bool) {
		if d.msg.expired(now) {
			return
		}
		seq++
		st.Deliveries = append(st.Deliveries, StoredDelivery{
			Seq: seq, Message: storedMessage(d.msg), QoS: d.qos, Retain: d.retain,
			SubscriptionIDs: slices.Clone(d.subIDs), PacketID: id, Pubrec: pubrec,
		})
	}
	sess.inflight.each(func(m *inflightMsg) { add(&m.delivery, m.id, m.pubrec) })
	sess.pending.each(func(d *delivery) { add(d, 0, false) })
	for id := range sess.inQoS2 {
		st.Inbound = append(st.Inbound, id)
	}
	slices.Sort(st.Inbound)
	return st
}

// storedMessage copies m as a store keeps it.
func storedMessage(m *message) *StoredMessage {
	return &StoredMessage{
		Message: Message{
			Topic: m.topic, Payload: slices.Clone(m.payload), QoS: m.qos, Retain: m.retain,
			Properties: m.properties(), Origin: m.origin,
		},
		Expires: m.expires,
	}
}

// AdoptSession installs here, offline, a session another node of the
// cluster let go (its ReleaseSession), for the connection of its client
// that is about to attach to it; a session this node still had for the
// client, older than the cluster's, is discarded first. The session is
// stored in this node's store, if it has one.
func (s *Server) AdoptSession(st *StoredSession) error {
	s.sessMu.Lock()
	if old := s.sessions[st.ClientID]; old != nil {
		old.mu.Lock()
		if old.conn != nil {
			old.mu.Unlock()
			s.sessMu.Unlock()
			return fmt.Errorf("core: adopt session %s: a connection here holds it", st.ClientID)
		}
		old.stopTimersLocked()
		s.discardLocked(old, nil)
		s.removeSessionLocked(old)
		old.mu.Unlock()
	}
	s.sessMu.Unlock()
	r := &restorer{s: s, now: time.Now(), messages: make(map[uint64]*message)}
	ok, err := r.restoreSession(st, nil)
	if err != nil {
		return fmt.Errorf("core: adopt session: %w", err)
	}
	if ok && s.store != nil && st.Expiry > 0 {
		s.sessMu.Lock()
		if sess := s.sessions[st.ClientID]; sess != nil {
			sess.mu.Lock()
			sess.persistAllLocked(nil)
			sess.mu.Unlock()
		}
		s.sessMu.Unlock()
	}
	for _, w := range r.wills {
		s.publishWill(w)
		s.willSettled(st.ClientID)
	}
	return nil
}
