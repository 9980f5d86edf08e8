package cluster

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/packets"
	"github.com/vanemq/vanemq/core/topics"
)

// A session that moves to another node while messages flow must lose
// none of them. The old node routes its inbox before it lets the session
// go, but the publishers' nodes learn of the move only when the route
// table's change reaches them: until then they hand the session's
// messages to the old node, or, once its routes are gone and before the
// new node's arrive, to neither. So, for moveGrace after letting a
// session go, the old node
//   - keeps the route entries the session held (their deletion waits),
//     so that every message for the session still reaches one of the two;
//   - passes on to the new node what comes into its inbox for the
//     session, in an envelope for that client only (flagTargeted), with
//     the message's own instance and sequence number.
//
// The new node delivers what is passed on to the session, once it has
// adopted it (until then it has JetStream send it again), unless the
// session had it already: every copy of a QoS 1/2 message has the same
// instance and sequence, and the node remembers, for its latest inbox
// messages, when it routed each (routed, a count that grows before each
// is routed), skipping a copy it routed after adopting the session, or,
// for a message published on the node itself, one numbered after the
// adoption (the core hands a message to the cluster before its local
// fan-out). A copy it routes after one passed on for the session skips
// the session (passed), and so does one of the latest messages the old
// node routed before letting the session go, which the old node lists
// in its reply (releaseReply.Routed, skips): the session has them.

// moveGrace is how long a node passes on what comes for a session that
// moved away, and keeps the route entries it held.
const moveGrace = 5 * time.Second

// targetedTries bounds how often a message passed on for a session the
// node has not adopted (yet) is sent again, targetedRetry apart.
const (
	targetedTries = 100
	targetedRetry = 50 * time.Millisecond
)

// moved is a session this node let go to another node.
type moved struct {
	to    string
	subs  []topics.Subscription
	until time.Time
}

// moves is what the node keeps of the sessions that moved in and out.
type moves struct {
	mu  sync.Mutex
	out map[string]*moved // by client ID
	// trie holds the subscriptions of the sessions in out, under their
	// client IDs.
	trie *topics.Trie
	// nOut is len(out), read on every inbox message without the lock.
	nOut atomic.Int32
	// holds are the route entries whose deletion waits until the time;
	// releasing counts the releases under way, during which no route
	// entry is deleted (the session's are not known yet).
	holds     map[interestKey]time.Time
	releasing atomic.Int32
	// in is, for each session adopted from a live node, the routed count
	// when it was installed, and until when that matters.
	in map[string]adoptedIn
	// routed counts the inbox messages the node routed, incremented
	// before each is.
	routed atomic.Uint64
	// skips are, for sessions adopted from live nodes, the messages the
	// old node routed just before letting the session go (the session has
	// them): a copy routed here skips the session. skipOrder holds them
	// oldest first, with when they stop mattering; nSkips is len(skips).
	skips     map[msgKey][]string
	skipOrder []skipUntil
	nSkips    atomic.Int32
}

type skipUntil struct {
	key   msgKey
	until time.Time
}

type adoptedIn struct {
	at    uint64 // moves.routed when installed
	seq   uint64 // Hook.seq when installed
	until time.Time
}

func newMoves() moves {
	return moves{out: make(map[string]*moved), trie: topics.NewTrie(), holds: make(map[interestKey]time.Time), in: make(map[string]adoptedIn), skips: make(map[msgKey][]string)}
}

// released records that the session of id moved (or is about to move)
// to node to with subs (filters as subscribed, $share prefix included).
func (mv *moves) released(id, to string, subs []string) {
	until := time.Now().Add(moveGrace)
	mv.mu.Lock()
	defer mv.mu.Unlock()
	mv.expireLocked(time.Now())
	if old := mv.out[id]; old != nil {
		mv.forgetLocked(id, old)
	}
	m := &moved{to: to, until: until}
	for _, f := range subs {
		group, filter, _, err := topics.ParseShared(f)
		if err != nil {
			continue
		}
		mv.holds[interestKey{group, filter}] = until
		ts := topics.Subscription{ClientID: id, Group: group, Filter: filter}
		mv.trie.Subscribe(ts)
		m.subs = append(m.subs, ts)
	}
	mv.out[id] = m
	mv.nOut.Store(int32(len(mv.out)))
}

// cancel forgets a move recorded before a release that did not happen.
func (mv *moves) cancel(id string) {
	mv.mu.Lock()
	defer mv.mu.Unlock()
	if m := mv.out[id]; m != nil {
		mv.forgetLocked(id, m)
		delete(mv.out, id)
		mv.nOut.Store(int32(len(mv.out)))
	}
}

// forgetLocked removes a moved session's subscriptions from the trie.
func (mv *moves) forgetLocked(id string, m *moved) {
	for _, s := range m.subs {
		mv.trie.Unsubscribe(id, s.Group, s.Filter)
	}
}

// adopted records that the session of id was installed here, from a
// live node, when the routed count was at and the node's own message
// sequence seq.
func (mv *moves) adopted(id string, at, seq uint64) {
	mv.mu.Lock()
	defer mv.mu.Unlock()
	mv.expireLocked(time.Now())
	mv.in[id] = adoptedIn{at: at, seq: seq, until: time.Now().Add(moveGrace + time.Minute)}
}

// skip records that the session of id, adopted here, has the messages
// routed (the old node routed them before letting it go).
func (mv *moves) skip(id string, routed []msgKey) {
	if len(routed) == 0 {
		return
	}
	mv.mu.Lock()
	defer mv.mu.Unlock()
	now := time.Now()
	for len(mv.skipOrder) > 0 && !now.Before(mv.skipOrder[0].until) {
		k := mv.skipOrder[0].key
		delete(mv.skips, k)
		mv.skipOrder = mv.skipOrder[1:]
	}
	until := now.Add(moveGrace + time.Minute)
	for _, k := range routed {
		if _, ok := mv.skips[k]; !ok {
			mv.skipOrder = append(mv.skipOrder, skipUntil{k, until})
		}
		mv.skips[k] = append(mv.skips[k], id)
	}
	mv.nSkips.Store(int32(len(mv.skips)))
}

// skipped returns the adopted sessions that have message k already.
func (mv *moves) skipped(k msgKey) []string {
	mv.mu.Lock()
	defer mv.mu.Unlock()
	return slices.Clone(mv.skips[k])
}

// adoptedAt returns the routed count and the message sequence when id's
// session was adopted here.
func (mv *moves) adoptedAt(id string) (adoptedIn, bool) {
	mv.mu.Lock()
	defer mv.mu.Unlock()
	a, ok := mv.in[id]
	return a, ok && time.Now().Before(a.until)
}

// held reports whether the deletion of k's route entry waits.
func (mv *moves) held(k interestKey) bool {
	if mv.releasing.Load() > 0 {
		return true
	}
	mv.mu.Lock()
	defer mv.mu.Unlock()
	until, ok := mv.holds[k]
	if ok && !time.Now().Before(until) {
		delete(mv.holds, k)
		return false
	}
	return ok
}

// expireLocked forgets what is past its time.
func (mv *moves) expireLocked(now time.Time) {
	for id, m := range mv.out {
		if !now.Before(m.until) {
			mv.forgetLocked(id, m)
			delete(mv.out, id)
		}
	}
	mv.nOut.Store(int32(len(mv.out)))
	for id, a := range mv.in {
		if !now.Before(a.until) {
			delete(mv.in, id)
		}
	}
}

// passTo is a message to pass on: to node, for the ordinary
// subscriptions of client (if set) and for groups.
type passTo struct {
	node, client string
	groups       []interestKey
}

// matching returns where to pass on a message on topic that the node
// routed (for its ordinary subscriptions if ordinary), whose share groups
// empty found no member here: to each session that moved out within
// moveGrace with an ordinary subscription matching it, and for each of
// those groups to the node of a moved member.
func (mv *moves) matching(topic string, ordinary bool, empty []interestKey) []passTo {
	mv.mu.Lock()
	defer mv.mu.Unlock()
	now := time.Now()
	var res topics.Matches
	mv.trie.Match(topic, &res)
	var out []passTo
	if ordinary {
		for _, s := range res.Subs {
			m := mv.out[s.ClientID]
			if m == nil || !now.Before(m.until) || slices.ContainsFunc(out, func(p passTo) bool { return p.client == s.ClientID }) {
				continue
			}
			out = append(out, passTo{node: m.to, client: s.ClientID})
		}
	}
	for _, g := range res.Shared {
		k := interestKey{g.Name(), g.Filter()}
		if !slices.Contains(empty, k) {
			continue
		}
		s := g.Next(func(s *topics.Subscription) bool {
			m := mv.out[s.ClientID]
			return m != nil && now.Before(m.until)
		})
		if s != nil {
			out = append(out, passTo{node: mv.out[s.ClientID].to, groups: []interestKey{k}})
		}
	}
	return out
}

// movedTo returns the node id's session moved to within moveGrace.
func (mv *moves) movedTo(id string) (string, bool) {
	mv.mu.Lock()
	defer mv.mu.Unlock()
	m, ok := mv.out[id]
	if !ok || !time.Now().Before(m.until) {
		return "", false
	}
	return m.to, true
}

// releaseHeld lets go the session of a claim as ReleaseSession does, with
// the deletion of route entries held meanwhile, and records the move. It
// returns the latest inbox messages routed before the release, which the
// session has (or did not want), for the node it moves to to skip. The
// move is recorded
// before the release, so that a message routed here after the session
// left (a local publisher's, routed at the same time) finds it, and
// apart from the receive loop (routeMu), whose messages are routed
// either before the release (and go with the session) or after it (and
// are passed on).
func (h *Hook) releaseHeld(claim core.SessionClaim, to string) (core.StoredSession, core.Release, []msgKey) {
	h.mv.releasing.Add(1)
	defer func() {
		h.mv.releasing.Add(-1)
		h.signal(h.wakeInterest)
	}()
	moving := !claim.Clean
	if moving {
		var filters []string
		for _, s := range h.srv.SubscriptionsOf(claim.ClientID) {
			filters = append(filters, s.Filter)
		}
		h.mv.released(claim.ClientID, to, filters)
	}
	h.routeMu.Lock()
	st, what := h.srv.ReleaseSession(claim)
	var recent []msgKey
	if moving && what == core.Released {
		// Those routed while the session was here: since it was adopted,
		// if it came from another node a moment ago.
		var since uint64
		if a, ok := h.mv.adoptedAt(claim.ClientID); ok {
			since = a.at
		}
		recent = h.recv.recentlyRouted(since)
	}
	h.routeMu.Unlock()
	if !moving {
		return st, what, nil
	}
	if what != core.Released || st.ClientID == "" {
		h.mv.cancel(claim.ClientID)
		return st, what, nil
	}
	filters := make([]string, len(st.Subscriptions))
	for i, s := range st.Subscriptions {
		filters[i] = s.Filter
	}
	h.mv.released(claim.ClientID, to, filters) // as it left
	time.AfterFunc(moveGrace+10*time.Millisecond, func() { h.signal(h.wakeInterest) })
	return st, what, recent
}

// passOn sends to the nodes sessions moved to what e, routed here from
// the inbox, was for: an envelope for each session whose ordinary
// subscriptions match it, and for each share group it was for that
// found no member here (empty) one a moved session was a member of. It
// reports false when one could not be sent.
func (h *Hook) passOn(e envelope, empty []interestKey) bool {
	topic, ok := publishTopic(e.publish)
	if !ok {
		return true
	}
	ok = true
	for _, p := range h.mv.matching(topic, e.ordinary, empty) {
		var targets []string
		if p.client != "" {
			targets = []string{p.client}
		}
		if !h.sendOn(e, p.node, p.client != "", p.groups, targets) {
			ok = false
		}
	}
	return ok
}

// sendOn puts e, for ordinary (limited to targets) and groups, into
// node's inbox, waiting for JetStream to store it.
func (h *Hook) sendOn(e envelope, node string, ordinary bool, groups []interestKey, targets []string) bool {
	st := h.js.Load()
	if st == nil {
		return false
	}
	b := appendTargetedHeader(nil, e.instance, e.seq, ordinary, groups, targets, e.origin)
	b = append(b, e.publish...)
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.HandoffTimeout)
	defer cancel()
	if _, err := st.js.PublishMsg(ctx, &nats.Msg{Subject: h.inboxSubject(node), Data: b}); err != nil {
		h.log.Warn("cluster: cannot pass a message on to the node a session moved to; NATS sends it here again", "to", node, "cause", err)
		return false
	}
	h.stats.passedOn.Add(1)
	return true
}

// publishTopic is the topic of a PUBLISH packet an envelope carries.
func publishTopic(publish []byte) (string, bool) {
	var p packets.Packet
	if _, err := packets.DecodeBytes(publish, packets.Version5, 0, &p); err != nil || p.Type != packets.Publish {
		return "", false
	}
	return p.Topic, true
}
