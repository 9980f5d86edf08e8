package core

import (
	"hash/maphash"
	"log/slog"
	"sync/atomic"

	"github.com/vanemq/vanemq/core/topics"
)

// Read permission (AuthorizeReadHook) is checked at delivery, for each
// subscriber, and the verdicts are cached per session and topic, or per
// topic for all sessions when the hooks say the verdict is the same for
// every subscriber (Verdict.SameForAll): with an ACL and fifty subscribers
// on "#", a message costs fifty cache lookups, not fifty walks of the
// rules. A cached verdict holds for the
// authorization generation it was made in (Server.authGen):
// InvalidateAuthorization starts a new one, so that every verdict is asked
// for again, and re-checks what the sessions already hold.

// The caches are set-associative tables of atomic pointers to immutable
// verdicts, indexed by the topic's hash: a lookup takes no lock and
// allocates nothing, a miss asks the hooks and stores a new verdict, and a
// handful of topics that hash to one set still fit in its ways. A table
// starts small and grows, up to a bound, when it keeps evicting: a device
// that reads a few topics costs a few hundred bytes, a dashboard on "#"
// that reads a thousand keeps them all.
const (
	// readWays is the number of verdicts a set holds.
	readWays = 4
	// readGrowth is the factor a table grows by.
	readGrowth = 4
	// sessionReadSlots and sessionReadMax bound a session's cache.
	sessionReadSlots = 64
	sessionReadMax   = 4096
	// sharedReadSlots and sharedReadMax bound the server's cache of
	// verdicts that hold for every subscriber (Verdict.SameForAll).
	sharedReadSlots = 1024
	sharedReadMax   = 65536
)

// readCache is a cache of read verdicts: a session's, for the verdicts
// about its subscriber, or the server's, for those that hold for every
// subscriber. Its table is made on first store, so a session that is
// never checked costs one pointer.
type readCache struct {
	table atomic.Pointer[[]atomic.Pointer[readVerdict]]
	// evictions counts the verdicts the table gave up since it was made;
	// it also turns the way a full set gives up.
	evictions atomic.Uint32
}

// readVerdict is one cached verdict, with its topic's hash for moving it
// to a grown table.
type readVerdict struct {
	topic string
	hash  uint64
	gen   uint64
	allow bool
}

// set returns the ways of topic hash h in table t.
func readSet(t []atomic.Pointer[readVerdict], h uint64) []atomic.Pointer[readVerdict] {
	i := int(h%uint64(len(t)/readWays)) * readWays
	return t[i : i+readWays]
}

// lookup returns the cached verdict for topic in generation gen.
func (rc *readCache) lookup(h uint64, topic string, gen uint64) (allow, ok bool) {
	t := rc.table.Load()
	if t == nil {
		return false, false
	}
	set := readSet(*t, h)
	for i := range set {
		v := set[i].Load()
		if v != nil && v.gen == gen && v.topic == topic {
			return v.allow, true
		}
	}
	return false, false
}

// store caches a verdict: in an empty or stale way of topic's set, or the
// one it held, or else in place of another, in turn. The table is made
// with size slots; once it has given up more verdicts than an eighth of
// its slots it grows readGrowth times, up to max slots.
func (rc *readCache) store(h uint64, topic string, gen uint64, allow bool, size, max int) {
	t := rc.table.Load()
	if t == nil {
		nt := make([]atomic.Pointer[readVerdict], size)
		if !rc.table.CompareAndSwap(nil, &nt) {
			nt = *rc.table.Load()
		}
		t = &nt
	}
	v := &readVerdict{topic: topic, hash: h, gen: gen, allow: allow}
	if placeVerdict(*t, v) {
		return
	}
	n := rc.evictions.Add(1)
	readSet(*t, h)[n%readWays].Store(v)
	if len(*t) < max && int(n) > len(*t)/8 {
		rc.grow(t, gen)
	}
}

// placeVerdict puts v in an empty or stale way of its set, or the one its
// topic held; false when every way holds another current verdict.
func placeVerdict(t []atomic.Pointer[readVerdict], v *readVerdict) bool {
	set := readSet(t, v.hash)
	for i := range set {
		if old := set[i].Load(); old == nil || old.gen != v.gen || old.topic == v.topic {
			set[i].Store(v)
			return true
		}
	}
	return false
}

// grow replaces table t by one readGrowth times larger holding t's
// current verdicts. Racing stores may be lost to it: a lost verdict costs
// one more question to the hooks.
func (rc *readCache) grow(t *[]atomic.Pointer[readVerdict], gen uint64) {
	nt := make([]atomic.Pointer[readVerdict], len(*t)*readGrowth)
	for i := range *t {
		if v := (*t)[i].Load(); v != nil && v.gen == gen {
			placeVerdict(nt, v)
		}
	}
	if rc.table.CompareAndSwap(t, &nt) {
		rc.evictions.Store(0)
	}
}

// reset forgets every cached verdict: the session has a new connection,
// whose ClientInfo the hooks decide from.
func (rc *readCache) reset() { rc.table.Store(nil) }

// mayRead reports whether the session's subscriber may receive a message
// on topic: true when no AuthorizeRead hook runs, or none denies. The
// broker's own connections (bridges: InternalIDPrefix) are not checked,
// as their subscriptions are not.
func (s *Server) mayRead(sess *session, topic string) bool {
	if !s.hooks.has(EventAuthorizeRead) || sess.internal {
		return true
	}
	gen := s.authGen.Load()
	h := maphash.String(s.readSeed, topic)
	if allow, ok := sess.reads.lookup(h, topic, gen); ok {
		return allow
	}
	if allow, ok := s.sharedReads.lookup(h, topic, gen); ok {
		return allow
	}
	cl := sess.subscriber()
	v := s.hooks.decide(EventAuthorizeRead, topic, func(hs *handlers) Verdict {
		return hs.authorizeRead.AuthorizeRead(s.background(), cl, topic)
	})
	allow := v.Decision != DecisionDeny
	switch {
	case v.Transient:
	case v.SameForAll:
		s.sharedReads.store(h, topic, gen, allow, sharedReadSlots, sharedReadMax)
	default:
		sess.reads.store(h, topic, gen, allow, sessionReadSlots, sessionReadMax)
	}
	if !allow && s.log.Enabled(s.background(), slog.LevelDebug) {
		s.log.Debug("delivery not authorized", "client", sess.id, "username", cl.Username, "topic", topic,
			"reason", v.Code.String(), "cause", v.Reason)
	}
	return allow
}

// InvalidateAuthorization tells the server that what its AuthorizeRead
// hooks decide from has changed (a reloaded ACL, a restarted plugin): the
// cached read verdicts are forgotten, and every session, connected or not,
// has the messages it holds (queued, and in flight but not acknowledged)
// checked again, dropping those its subscriber may no longer read. It
// returns the number of messages dropped. Hooks call it after a reload;
// it runs the hooks, so it must not be called from inside one's decision.
func (s *Server) InvalidateAuthorization() int {
	s.authGen.Add(1)
	if !s.hooks.has(EventAuthorizeRead) {
		return 0
	}
	s.sessMu.Lock()
	sessions := make([]*session, 0, len(s.sessions))
	for _, sess := range s.sessions {
		sessions = append(sessions, sess)
	}
	s.sessMu.Unlock()
	dropped := 0
	for _, sess := range sessions {
		dropped += s.recheckSession(sess)
	}
	if dropped > 0 {
		s.log.Info("authorization changed: dropped messages their subscribers may no longer read", "dropped", dropped,
			"sessions", len(sessions))
	}
	return dropped
}

// recheckSession checks every message sess holds against the read hooks
// and drops those denied. The hooks run with sess.mu released (LOCKS.md):
// the topics are collected first, decided, and the denied ones removed.
func (s *Server) recheckSession(sess *session) int {
	sess.mu.Lock()
	seen := make(map[string]bool)
	sess.pending.each(func(d *delivery) { seen[d.msg.topic] = true })
	sess.inflight.each(func(m *inflightMsg) {
		if !m.pubrec { // after PUBREC the client has the message: only PUBREL is left
			seen[m.msg.topic] = true
		}
	})
	for _, h := range sess.held {
		seen[h.d.msg.topic] = true
	}
	sess.mu.Unlock()
	if len(seen) == 0 {
		return 0
	}
	denied := make(map[string]bool)
	for topic := range seen {
		if !s.mayRead(sess, topic) {
			denied[topic] = true
		}
	}
	if len(denied) == 0 {
		return 0
	}
	sess.mu.Lock()
	defer sess.mu.Unlock()
	return sess.dropDeniedLocked(denied)
}

// dropDeniedLocked removes the messages on the denied topics from the
// session's queue, its held deliveries and its inflight table (an
// inflight message awaiting PUBREL stays: the client already has it).
func (s *session) dropDeniedLocked(denied map[string]bool) int {
	n := 0
	s.pending.filter(func(d *delivery) bool {
		if !denied[d.msg.topic] {
			return true
		}
		s.unstoreDeliveryLocked(d, nil)
		s.dropLocked(*d, DropNotAuthorized)
		n++
		return false
	})
	held := s.held[:0]
	for _, h := range s.held {
		if denied[h.d.msg.topic] {
			s.unstoreDeliveryLocked(&h.d, nil)
			s.dropLocked(h.d, DropNotAuthorized)
			n++
			continue
		}
		held = append(held, h)
	}
	clear(s.held[len(held):])
	s.held = held
	var ids []uint16
	s.inflight.each(func(m *inflightMsg) {
		if !m.pubrec && denied[m.msg.topic] {
			ids = append(ids, m.id)
		}
	})
	for _, id := range ids {
		m, _ := s.inflight.remove(id)
		s.unstoreDeliveryLocked(&m.delivery, nil)
		s.dropLocked(m.delivery, DropNotAuthorized)
		n++
	}
	if len(ids) > 0 {
		s.pumpLocked(nil)
	}
	return n
}

// pickMember chooses the member of a share group a message on topic goes
// to: round-robin among the connected members that may read it, then
// among the offline ones; nil when no member may read it.
func (s *Server) pickMember(g *topics.SharedGroup, topic string) *topics.Subscription {
	check := s.hooks.has(EventAuthorizeRead)
	for _, accept := range []func(*topics.Subscription) bool{s.accepted, nil} {
		for range max(g.Len(), 1) {
			sub := g.Next(accept)
			if sub == nil {
				break
			}
			if !check || s.subMayRead(sub, topic) {
				return sub
			}
		}
	}
	return nil
}

// subscriber is the session's client as the read and Deliver hooks see
// it (session.info).
func (sess *session) subscriber() *ClientInfo {
	if cl := sess.info.Load(); cl != nil {
		return cl
	}
	return &ClientInfo{ID: sess.id}
}

// subMayRead is mayRead for a subscription's session; the broker's own
// inline subscriptions may read everything.
func (s *Server) subMayRead(sub *topics.Subscription, topic string) bool {
	if isInlineID(sub.ClientID) {
		return true
	}
	v, ok := s.live.Load(sub.ClientID)
	if !ok {
		return false
	}
	return s.mayRead(v.(*session), topic)
}
