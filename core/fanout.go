package core

import (
	"sync"

	"github.com/vanemq/vanemq/core/packets"
	"github.com/vanemq/vanemq/core/topics"
)

// fanoutScratch is the reusable working memory of one fan-out.
type fanoutScratch struct {
	matches topics.Matches
	merged  map[string]int // client ID -> index in views
	views   []subView
}

// subView is one subscriber's merged view of a message: the highest QoS of
// its matching subscriptions [MQTT-3.3.4-2] and all their identifiers
// [MQTT-3.3.4-3].
type subView struct {
	clientID string
	qos      byte
	rap      bool
	ids      []uint32
}

func newScratchPool() *sync.Pool {
	return &sync.Pool{New: func() any {
		return &fanoutScratch{merged: make(map[string]int)}
	}}
}

// fanout delivers m to every matching subscription: each client once for
// its ordinary subscriptions, plus one member of each matching share group.
// It returns the number of deliveries. from is the publishing client (nil
// for the broker's own publishes), whose reader's batch the deliveries go
// through.
func (s *Server) fanout(m *message, from *client) int {
	return s.fanoutTo(m, from, true)
}

// fanoutTo is fanout, with the share groups left out when shared is
// false: with a cluster hook, share groups are delivered through
// deliverShared, on the node the hook picks for each.
func (s *Server) fanoutTo(m *message, from *client, shared bool) int {
	fromID := ""
	if from != nil {
		fromID = from.id
	}
	return s.fanoutWith(m, fromID, from.readerBatch(), shared)
}

// fanoutWith is fanoutTo for a publisher fromID ("" for none) whose
// deliveries go through rb.
func (s *Server) fanoutWith(m *message, fromID string, rb *readBatch, shared bool) int {
	sc := s.scratch.Get().(*fanoutScratch)
	defer func() {
		sc.matches.Reset()
		clear(sc.merged)
		clear(sc.views)
		sc.views = sc.views[:0]
		s.scratch.Put(sc)
	}()
	s.subs.Match(m.topic, &sc.matches)
	for _, sub := range sc.matches.Subs {
		if sub.NoLocal && sub.ClientID == fromID {
			continue // [MQTT-3.8.3-3]
		}
		if rb != nil && rb.only != nil && !rb.only(sub.ClientID) {
			continue
		}
		i, ok := sc.merged[sub.ClientID]
		if !ok {
			i = len(sc.views)
			sc.merged[sub.ClientID] = i
			sc.views = append(sc.views, subView{clientID: sub.ClientID})
		}
		v := &sc.views[i]
		v.qos = max(v.qos, sub.QoS)
		v.rap = v.rap || sub.RetainAsPublished
		if sub.Identifier != 0 {
			v.ids = append(v.ids, sub.Identifier)
		}
	}
	groups := sc.matches.Shared
	if !shared {
		groups = nil
	}
	m.fanout.Store(int32(len(sc.views) + len(groups)))
	n := 0
	for i := range sc.views {
		v := &sc.views[i]
		if s.deliver(v.clientID, rb, delivery{
			msg:    m,
			qos:    min(m.qos, v.qos),
			retain: m.retain && v.rap,
			subIDs: v.ids,
		}) {
			n++
		}
	}
	for _, g := range groups {
		sub := s.pickMember(g, m.topic)
		if sub != nil && s.deliverMember(m, sub, rb) {
			n++
		}
	}
	return n
}

// deliverMember delivers m to the share group member sub.
func (s *Server) deliverMember(m *message, sub *topics.Subscription, rb *readBatch) bool {
	var ids []uint32
	if sub.Identifier != 0 {
		ids = []uint32{sub.Identifier}
	}
	return s.deliver(sub.ClientID, rb, delivery{
		msg:    m,
		qos:    min(m.qos, sub.QoS),
		retain: m.retain && sub.RetainAsPublished,
		subIDs: ids,
	})
}

// deliverShared delivers m, which another node forwarded for the share
// group {group} of filter, to one member of that group here; it returns
// the number of deliveries (0 or 1).
func (s *Server) deliverShared(m *message, group, filter string, rb *readBatch) int {
	sc := s.scratch.Get().(*fanoutScratch)
	defer func() {
		sc.matches.Reset()
		s.scratch.Put(sc)
	}()
	s.subs.Match(m.topic, &sc.matches)
	for _, g := range sc.matches.Shared {
		if g.Name() != group || g.Filter() != filter {
			continue
		}
		m.fanout.Store(1)
		if sub := s.pickMember(g, m.topic); sub != nil && s.deliverMember(m, sub, rb) {
			return 1
		}
		return 0
	}
	return 0
}

// isOnline reports whether a subscription's client is connected; share
// groups prefer connected members.
func (s *Server) isOnline(sub *topics.Subscription) bool {
	if isInlineID(sub.ClientID) {
		return true
	}
	v, ok := s.live.Load(sub.ClientID)
	if !ok {
		return false
	}
	sess := v.(*session)
	sess.mu.Lock()
	on := sess.conn != nil
	sess.mu.Unlock()
	return on
}

// deliver hands one delivery to a client's session or inline handler. It
// reports whether the delivery was accepted. rb is the batch of the reader
// routing (nil for the broker's own publishes); see readBatch.
func (s *Server) deliver(clientID string, rb *readBatch, d delivery) bool {
	if isInlineID(clientID) {
		return s.inline.deliver(clientID, d)
	}
	v, ok := s.live.Load(clientID)
	if !ok {
		return false
	}
	sess := v.(*session)
	if !s.mayRead(sess, d.msg.topic) {
		sess.mu.Lock()
		sess.dropLocked(d, DropNotAuthorized)
		sess.mu.Unlock()
		return false
	}
	if s.hooks.has(EventDeliver) {
		if d.msg = s.deliverHook(sess, d.msg); d.msg == nil {
			return false
		}
	}
	sess.mu.Lock()
	defer sess.mu.Unlock()
	if c := sess.conn; c != nil && c.maxOutPacket > 0 && publishSize(d, c.version) > c.maxOutPacket {
		// Too large for this subscriber only [MQTT-3.1.2-25].
		sess.dropLocked(d, DropTooLarge)
		return false
	}
	return sess.offerLocked(d, sess.expiry > 0, rb)
}

// publishSize is the encoded size of a delivery before any topic alias.
func publishSize(d delivery, version byte) uint32 {
	p := packets.Packet{
		Type:            packets.Publish,
		ProtocolVersion: version,
		QoS:             d.qos,
		PacketID:        1,
		Topic:           d.msg.topic,
		Payload:         d.msg.payload,
	}
	if version == packets.Version5 {
		p.Properties = d.msg.properties()
		p.Properties.SubscriptionIDs = d.subIDs
	}
	return uint32(p.Size())
}
