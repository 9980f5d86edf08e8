package core

import (
	"context"
	"strings"
	"time"

	"github.com/vanemq/vanemq/core/packets"
	"github.com/vanemq/vanemq/core/topics"
)

// handleSubscribe answers a SUBSCRIBE: each filter is checked and
// authorized on its own and gets its own SUBACK code [MQTT-3.8.4-6]; retained
// messages follow the SUBACK as the retain handling option asks.
func (s *Server) handleSubscribe(ctx context.Context, c *client, p *packets.Packet) error {
	v5 := c.version == packets.Version5
	var subID uint32
	if len(p.Properties.SubscriptionIDs) > 0 {
		if s.opts.DisableSubIDs {
			return packets.Errorf(packets.SubscriptionIdentifiersNotSupported, "subscription identifiers are not available")
		}
		subID = p.Properties.SubscriptionIDs[0]
	}
	codes := make([]packets.ReasonCode, len(p.Subscriptions))
	subs := make([]topics.Subscription, len(p.Subscriptions))
	for i, req := range p.Subscriptions {
		code, sub := s.checkSubscription(ctx, c, req, subID)
		if code == packets.ProtocolError {
			return packets.Errorf(packets.ProtocolError, "no local set on shared subscription %q [MQTT-3.8.3-4]", req.Filter)
		}
		if code.IsError() {
			c.logger().Info("subscription refused", "filter", req.Filter, "reason", code.String())
			if !v5 {
				code = packets.V3SubackFailure
			}
		}
		codes[i] = code
		subs[i] = sub
	}

	// Subscribing, the SUBACK and the retained messages happen under the
	// session lock, so no message published after the SUBACK can overtake
	// the retained ones (the lock is released while hook code runs for
	// them, but what is delivered meanwhile waits: sendRetainedLocked).
	// With a durable store the SUBACK waits until the subscription is
	// stored, and the retained messages may go first, as MQTT permits (v5
	// section 3.8.4, 3.1.1 section 3.8.4).
	if s.hooks.has(EventSubscribed) {
		defer func() {
			for i := range p.Subscriptions {
				if !codes[i].IsError() {
					full := fullFilter(subs[i])
					s.hooks.notify(EventSubscribed, "", func(h *handlers) { h.subscribed.OnSubscribed(ctx, &c.info, full, byte(codes[i])) })
				}
			}
		}()
	}
	sess := c.sess
	sess.mu.Lock()
	defer sess.mu.Unlock()
	if sess.conn != c {
		return nil // the session moved to another connection
	}
	isNew := make([]bool, len(subs))
	for i, sub := range subs {
		if codes[i].IsError() {
			continue
		}
		k := subKey{group: sub.Group, filter: sub.Filter}
		prev, existed := sess.subs[k]
		if !existed && !s.roomForSubscription(sess, c, p.Subscriptions[i].Filter) {
			codes[i] = packets.QuotaExceeded
			if !v5 {
				codes[i] = packets.V3SubackFailure
			}
			continue
		}
		isNew[i] = !existed
		if sess.subs == nil {
			sess.subs = make(map[subKey]topics.Subscription)
		}
		sess.subs[k] = sub
		s.subs.Subscribe(sub)
		old := -1
		if existed {
			old = int(prev.QoS)
		}
		s.interestAdded(sub.Group, sub.Filter, sub.QoS, old)
		if sess.stored {
			s.persist(&c.batch, StoreOp{Kind: OpSubscriptionPut, ClientID: sess.id, Subscription: storedSubscription(sub)})
		}
	}
	c.ack(outControl{pkt: &packets.Packet{Type: packets.Suback, PacketID: p.PacketID, ReasonCodes: codes}})
	rs := retainedSend{delivers: s.hooks.has(EventDeliver)}
	rs.hooked = rs.delivers || s.hooks.has(EventAuthorizeRead)
	for i, sub := range subs {
		// Shared subscriptions get no retained messages (v5 section 4.8.2); retain
		// handling 1 sends them only for a new subscription, 2 never
		// [MQTT-3.3.1-9/10/11].
		if codes[i].IsError() || sub.Group != "" || s.opts.DisableRetain {
			continue
		}
		if sub.RetainHandling == 2 || (sub.RetainHandling == 1 && !isNew[i]) {
			continue
		}
		s.matchRetainedLocked(&rs, sess, c, sub)
	}
	s.sendRetainedLocked(sess, c, &rs)
	return nil
}

// roomForSubscription reports whether sess may hold one more subscription
// (Options.MaxSubscriptions), and counts and logs the refusal of filter
// when it may not. A SUBSCRIBE entry beyond the limit is refused on its
// own, with Quota exceeded (0x97; 0x80 for 3.x) [MQTT-3.9.3-1..2]. The
// caller holds sess.mu.
func (s *Server) roomForSubscription(sess *session, c *client, filter string) bool {
	limit := s.opts.MaxSubscriptions
	if limit < 0 || len(sess.subs) < limit {
		return true
	}
	s.refused(LimitSubscriptions, c, c.id, "subscription refused: the session holds the most subscriptions allowed",
		"filter", filter, "subscriptions", len(sess.subs), LimitSubscriptions.String(), limit)
	return false
}

// checkSubscription validates and authorizes one requested filter and
// returns the code to answer with and, on success, the subscription.
func (s *Server) checkSubscription(ctx context.Context, c *client, req packets.Subscription, subID uint32) (packets.ReasonCode, topics.Subscription) {
	group, inner, shared, err := topics.ParseShared(req.Filter)
	if err != nil {
		return packets.TopicFilterInvalid, topics.Subscription{}
	}
	if c.bridge && !shared {
		// A Mosquitto bridge over MQTT 3 asks with its protocol level for
		// what MQTT 5's subscription options say: not its own messages
		// back, and retained flags as published.
		req.NoLocal, req.RetainAsPublished = true, true
	}
	if shared {
		if s.opts.DisableSharedSubs {
			return packets.SharedSubscriptionsNotSupported, topics.Subscription{}
		}
		if req.NoLocal {
			return packets.ProtocolError, topics.Subscription{}
		}
	}
	if err := topics.ValidateFilter(inner); err != nil {
		return packets.TopicFilterInvalid, topics.Subscription{}
	}
	if err := topics.CheckLevels(inner, s.opts.MaxTopicLevels, true); err != nil {
		c.logger().Warn("subscription refused", "reason", packets.TopicFilterInvalid.String(), "cause", err, "levels_limit", s.opts.MaxTopicLevels)
		return packets.TopicFilterInvalid, topics.Subscription{}
	}
	if s.opts.DisableWildcardSubs && strings.ContainsAny(inner, "+#") {
		return packets.WildcardSubscriptionsNotSupported, topics.Subscription{}
	}
	inner = c.mount + inner
	full := fullFilter(topics.Subscription{Group: group, Filter: inner})
	qos := min(req.QoS, 2)
	code, granted, _ := s.authorizeSubscribe(ctx, c, full, qos)
	if code != packets.Success {
		return code, topics.Subscription{}
	}
	// The subscription outlives its SUBSCRIBE: it keeps copies of its
	// strings, not views into the packet, which would hold the whole body
	// (its other filters, its user properties) for as long as it lasts.
	sub := topics.Subscription{
		ClientID:          c.id,
		Filter:            strings.Clone(inner),
		Group:             strings.Clone(group),
		QoS:               granted,
		NoLocal:           req.NoLocal,
		RetainAsPublished: req.RetainAsPublished,
		RetainHandling:    req.RetainHandling,
		Identifier:        subID,
	}
	return packets.ReasonCode(granted), sub
}

// retainedSend is what remains to do of the retained messages a
// SUBSCRIBE sends once they are matched: what needs hook code, to run
// with the session lock released (sendRetainedLocked).
type retainedSend struct {
	// hooked is set when AuthorizeRead or Deliver hooks run (delivers:
	// Deliver hooks): the deliveries are then collected in ds (msg nil
	// once a hook denied one), in match order.
	hooked, delivers bool
	ds               []delivery
	expired          []retainedEntry // found expired, to clear
}

// retainedEntry is a retained message and its topic.
type retainedEntry struct {
	topic string
	m     *message
}

// matchRetainedLocked finds the retained messages matching a new
// subscription, with the retain flag set [MQTT-3.3.1-8]: it queues them
// at once, or adds them to rs when Deliver hooks must see them first. The
// caller holds sess.mu, and has put the subscription in the trie, so that
// a retained message published meanwhile is either matched here or
// delivered live.
func (s *Server) matchRetainedLocked(rs *retainedSend, sess *session, c *client, sub topics.Subscription) {
	var ids []uint32
	if sub.Identifier != 0 {
		ids = []uint32{sub.Identifier}
	}
	now := time.Now()
	s.retained.Match(sub.Filter, func(topic string, m *message) bool {
		if m.expired(now) {
			rs.expired = append(rs.expired, retainedEntry{topic: topic, m: m})
			return true
		}
		d := delivery{msg: m, qos: min(m.qos, sub.QoS), retain: true, subIDs: ids}
		if rs.hooked {
			rs.ds = append(rs.ds, d)
		} else {
			s.offerRetainedLocked(sess, c, d)
		}
		return true
	})
}

// offerRetainedLocked queues one retained message through the session's
// bounded queue, unless it is too large for c.
func (s *Server) offerRetainedLocked(sess *session, c *client, d delivery) {
	if !sess.stored {
		d.seq = 0
	}
	if c.maxOutPacket > 0 && publishSize(d, c.version) > c.maxOutPacket {
		sess.dropLocked(d, DropTooLarge)
		return
	}
	sess.offerNowLocked(d, true, &c.batch)
}

// sendRetainedLocked runs the hook code the retained messages of a
// SUBSCRIBE need, with sess.mu, which the caller holds, released meanwhile
// (hook code runs under no session lock: LOCKS.md), so that a hook may
// publish to this client, or disconnect it. Expired messages are cleared,
// which tells the Retained hooks and the store. The Deliver hooks see the
// collected deliveries, which are then queued: deliveries to the session
// meanwhile wait (session.retaining) and follow them, as they would have
// had the lock been held throughout, and the retained messages' store
// sequence numbers are taken first, so that a restart restores them in
// that order too. The retained messages go to the session even if another
// connection took it over meanwhile, as they would have had it taken the
// session a moment later.
func (s *Server) sendRetainedLocked(sess *session, c *client, rs *retainedSend) {
	if len(rs.ds) == 0 && len(rs.expired) == 0 {
		return
	}
	if len(rs.ds) > 0 {
		if sess.stored {
			for i := range rs.ds {
				rs.ds[i].seq = s.nextStoreSeq()
			}
		}
		sess.retaining++
		defer sess.endRetainingLocked(&c.batch) // once they are queued, under sess.mu
	}
	sess.mu.Unlock()
	for _, e := range rs.expired {
		s.dropExpiredRetained(e.topic, e.m)
	}
	for i := range rs.ds {
		if !s.mayRead(sess, rs.ds[i].msg.topic) {
			rs.ds[i].msg = nil
			continue
		}
		if rs.delivers {
			rs.ds[i].msg = s.deliverHook(sess, rs.ds[i].msg)
		}
	}
	sess.mu.Lock()
	for _, d := range rs.ds {
		if d.msg != nil { // nil: denied by a Deliver hook
			s.offerRetainedLocked(sess, c, d)
		}
	}
}

// handleUnsubscribe removes filters and answers UNSUBACK, with
// No Subscription Existed for unknown ones in v5 [MQTT-3.11.3-1].
func (s *Server) handleUnsubscribe(ctx context.Context, c *client, p *packets.Packet) error {
	codes := make([]packets.ReasonCode, len(p.Filters))
	sess := c.sess
	for i, f := range p.Filters {
		group, inner, _, err := topics.ParseShared(f)
		if err != nil {
			codes[i] = packets.TopicFilterInvalid
			continue
		}
		inner = c.mount + inner
		sess.mu.Lock()
		k := subKey{group: group, filter: inner}
		prev, ok := sess.subs[k]
		if ok && sess.conn == c {
			delete(sess.subs, k)
			s.subs.Unsubscribe(c.id, group, inner)
			s.interestRemoved(group, inner, prev.QoS)
			if sess.stored {
				s.persist(&c.batch, StoreOp{Kind: OpSubscriptionDelete, ClientID: sess.id,
					Subscription: StoredSubscription{Filter: fullFilter(topics.Subscription{Group: group, Filter: inner})}})
			}
		}
		sess.mu.Unlock()
		if !ok {
			codes[i] = packets.NoSubscriptionExisted
			continue
		}
		full := fullFilter(topics.Subscription{Group: group, Filter: inner})
		s.hooks.notify(EventUnsubscribed, "", func(h *handlers) { h.unsubscribed.OnUnsubscribed(ctx, &c.info, full) })
	}
	c.ack(outControl{pkt: &packets.Packet{Type: packets.Unsuback, PacketID: p.PacketID, ReasonCodes: codes}})
	return nil
}

// dropExpiredRetained removes a retained message found expired, unless a
// newer one has replaced it meanwhile [MQTT-3.3.2-5].
func (s *Server) dropExpiredRetained(topic string, m *message) {
	if s.retained.DeleteFunc(topic, func(v *message) bool { return v == m }) {
		cleared := &message{topic: topic, retain: true, origin: m.origin}
		s.persistRetained(cleared, nil)
		s.retainedEvent(cleared)
	}
}

// fullFilter is the filter a subscription stands for, as hooks see it: the
// share prefix and any mountpoint included.
func fullFilter(sub topics.Subscription) string {
	if sub.Group != "" {
		return topics.SharePrefix + sub.Group + "/" + sub.Filter
	}
	return sub.Filter
}
