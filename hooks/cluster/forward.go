package cluster

import (
	"errors"
	"fmt"
	"slices"

	"github.com/nats-io/nats.go"
	"github.com/valyala/bytebufferpool"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/topics"
)

// errNoJetStream refuses a hand-off while the node has no JetStream
// session.
var errNoJetStream = errors.New("cluster: JetStream is not available to hand the message to other nodes")

// forwardScratch is the reusable working memory of one Forward.
type forwardScratch struct {
	matches topics.Matches
	targets []target
}

// target is one other node a message goes to, and what for.
type target struct {
	node     string
	ordinary bool          // its ordinary subscriptions
	groups   []interestKey // the share groups it was picked for
	// clients, when set, limits ordinary to these clients' sessions: a
	// copy for sessions that moved to the node (moves.go).
	clients []string
}

// reset empties the scratch, keeping its capacity.
func (sc *forwardScratch) reset() {
	sc.matches.Reset()
	for i := range sc.targets {
		sc.targets[i].groups = sc.targets[i].groups[:0]
		sc.targets[i].clients = nil
	}
	sc.targets = sc.targets[:0]
}

// to returns the target for node, adding it.
func (sc *forwardScratch) to(node string) *target {
	for i := range sc.targets {
		if sc.targets[i].node == node {
			return &sc.targets[i]
		}
	}
	if len(sc.targets) < cap(sc.targets) {
		sc.targets = sc.targets[:len(sc.targets)+1]
		t := &sc.targets[len(sc.targets)-1]
		t.node, t.ordinary = node, false
		return t
	}
	sc.targets = append(sc.targets, target{node: node})
	return &sc.targets[len(sc.targets)-1]
}

// Forward implements core.ClusterHook. The route table says which nodes
// want the message: their ordinary subscriptions, and for each share
// group the node picked, round-robin among the nodes with members (this
// one included, which delivers its pick itself). A QoS 0 message goes
// out on core NATS, on its topic's subject for ordinary subscriptions
// and on the picked node's subject for share groups. A QoS 1/2 message
// goes into the inbox of each node it is for, and done waits for
// JetStream to have stored every copy. With nothing to hand off, done is
// called at once.
//
// While NATS is away, the route table as last known still holds: the
// messages wait in the connection's reconnect buffer, and a QoS 1/2
// publisher's acknowledgement waits for them to be stored, up to
// handoff_timeout, after which it is refused (the publisher is
// disconnected and sends again). Share groups meanwhile go to this node's
// members when it has some. Before the node has read the route table
// once it knows of no other node and hands nothing off.
func (h *Hook) Forward(f *core.Forwarded) int {
	if !f.Retain() && h.routes.localOnly() && h.mv.nOut.Load() == 0 {
		return 0 // no other node wants anything, no share group here, no session just left
	}
	sc := h.scratch.Get().(*forwardScratch)
	defer func() {
		sc.reset()
		h.scratch.Put(sc)
	}()
	self := h.cfg.Node
	nc := h.nc.Load()
	known := nc != nil && h.routes.loaded.Load()
	up := known && h.up.Load()
	h.routes.trie.Match(f.Topic(), &sc.matches)
	n := 0
	var empty []interestKey // share groups picked here that found no member
	for _, g := range sc.matches.Shared {
		s := g.Next(func(s *topics.Subscription) bool { return s.ClientID == self || up })
		if s == nil && known {
			s = g.Next(nil) // no member here: wait for NATS
		}
		switch {
		case s == nil:
		case s.ClientID == self:
			if f.DeliverShared(g.Name(), g.Filter()) {
				n++
			} else {
				empty = append(empty, interestKey{g.Name(), g.Filter()})
			}
		default:
			t := sc.to(s.ClientID)
			t.groups = append(t.groups, interestKey{g.Name(), g.Filter()})
		}
	}
	if known {
		for _, s := range sc.matches.Subs {
			if s.ClientID != self {
				sc.to(s.ClientID).ordinary = true
			}
		}
	}
	var ho handoff
	if f.Retain() && nc != nil && h.js.Load() != nil {
		if err := h.retainAcross(f, &ho); err != nil {
			ho.done = f.Hold()
			h.fail(ho, err)
			if ho.done != nil {
				return n // refused: the publisher sends it again
			}
			ho = handoff{}
		}
	}
	if f.QoS() == 0 {
		if len(sc.targets) > 0 {
			n += h.publishQoS0(nc, f, sc.targets)
		}
		return n
	}
	if h.mv.nOut.Load() > 0 {
		// Sessions that moved away a moment ago get what was published
		// here for them (moves.go).
		for _, p := range h.mv.matching(f.Topic(), true, empty) {
			t := target{node: p.node, groups: p.groups}
			if p.client != "" {
				t.ordinary, t.clients = true, []string{p.client}
			}
			sc.targets = append(sc.targets, t)
		}
	}
	return n + h.handOff(f, sc.targets, ho)
}

// retainAcross writes f, a retained message, into the cluster's retained
// messages, adding the write to ho.
func (h *Hook) retainAcross(f *core.Forwarded, ho *handoff) error {
	st := h.js.Load()
	if st == nil {
		return errNoJetStream
	}
	a, err := h.putRetained(st, f)
	switch {
	case errors.Is(err, errExpired):
		return nil
	case err != nil:
		return fmt.Errorf("cluster: write the retained message: %w", err)
	}
	ho.acks = append(ho.acks, a)
	return nil
}

// publishQoS0 publishes a QoS 0 message: once on its topic's subject if
// any target has ordinary subscriptions (NATS carries it to each node
// subscribed), and to each node picked for share groups on the node's own
// subject. It returns how many nodes it was published for.
func (h *Hook) publishQoS0(nc *nats.Conn, f *core.Forwarded, targets []target) int {
	buf := bytebufferpool.Get()
	defer bytebufferpool.Put(buf)
	n := 0
	ordinary := 0
	for _, t := range targets {
		if t.ordinary {
			ordinary++
		}
	}
	if ordinary > 0 {
		subj := h.subject(f.Topic())
		if len(subj) > maxSubject {
			// NATS closes a connection whose control line (subject and
			// sizes) is longer than 4096 bytes: such a topic stays here.
			if c := h.stats.unrouted.Add(1); worthLogging(c) {
				h.log.Warn("cluster: a topic too long for a NATS subject stays on this node", "topic_bytes", len(f.Topic()), "subject_bytes", len(subj), "unrouted", c)
			}
		} else if h.encode(buf, f, true, nil) && nc.Publish(subj, buf.B) == nil {
			h.stats.forwarded.Add(1)
			n += ordinary
		} else {
			h.stats.unrouted.Add(1)
		}
	}
	for _, t := range targets {
		if len(t.groups) == 0 {
			continue
		}
		if h.encode(buf, f, false, t.groups) && nc.Publish(h.nodeSubj+"."+t.node, buf.B) == nil {
			h.stats.forwarded.Add(1)
			n++
		} else {
			h.stats.unrouted.Add(1)
		}
	}
	return n
}

// encode writes f's envelope into buf, reporting false for a message
// that expired on the way (which needs no hand-off).
func (h *Hook) encode(buf *bytebufferpool.ByteBuffer, f *core.Forwarded, ordinary bool, groups []interestKey) bool {
	return h.encodeSeq(buf, f, h.seq.Add(1), ordinary, groups, nil)
}

// encodeSeq is encode with the message's sequence number given, for
// the ordinary subscriptions of clients only when clients is set.
func (h *Hook) encodeSeq(buf *bytebufferpool.ByteBuffer, f *core.Forwarded, seq uint64, ordinary bool, groups []interestKey, clients []string) bool {
	buf.B = appendTargetedHeader(buf.B[:0], h.instance, seq, ordinary, groups, clients, f.Origin())
	return f.Encode(buf) == nil
}

// handOff puts a QoS 1/2 message into each target's inbox and, when its
// publisher waits (f.Hold), queues the hand-off (with whatever ho waits
// on already) for confirmHandoffs. It returns how many nodes it was
// handed to.
func (h *Hook) handOff(f *core.Forwarded, targets []target, ho handoff) int {
	if len(targets) == 0 && len(ho.acks) == 0 {
		return 0 // nothing to wait for
	}
	ho.done = f.Hold()
	handed := 0
	if len(targets) > 0 {
		st := h.js.Load()
		if st == nil {
			// The JetStream session ended after the route table was read.
			h.stats.unrouted.Add(1)
			h.fail(ho, errNoJetStream)
			return 0
		}
		buf := bytebufferpool.Get()
		defer bytebufferpool.Put(buf)
		seq := h.seq.Add(1) // every copy the same: one message (moves.go)
		for _, t := range targets {
			if !h.encodeSeq(buf, f, seq, t.ordinary, t.groups, t.clients) {
				break // expired on the way: nothing more to hand off
			}
			// JetStream keeps the message to publish it again: its own copy.
			msg := &nats.Msg{Subject: h.inboxSubject(t.node), Data: slices.Clone(buf.B)}
			a, err := st.js.PublishMsgAsync(msg)
			if err != nil {
				h.fail(ho, err)
				return handed
			}
			ho.acks = append(ho.acks, a)
			handed++
		}
		h.stats.forwarded.Add(int64(handed))
	}
	switch {
	case ho.done == nil:
	case len(ho.acks) == 0:
		ho.done(nil)
	default:
		h.hoMu.Lock()
		h.handoffs = append(h.handoffs, ho)
		h.hoMu.Unlock()
		h.signal(h.wakeAcks)
	}
	return handed
}

// fail answers a hand-off that could not be made.
func (h *Hook) fail(ho handoff, err error) {
	h.stats.handoffFailures.Add(1)
	if ho.done != nil {
		ho.done(fmt.Errorf("cluster: hand the message to another node: %w", err))
	}
}
