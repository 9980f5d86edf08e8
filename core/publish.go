package core

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/vanemq/vanemq/core/packets"
	"github.com/vanemq/vanemq/core/topics"
)

// handlePublish takes an inbound PUBLISH: topic alias resolution, the QoS 2
// duplicate check and Receive Maximum, authorization, routing, and the
// acknowledgement. It runs on the client's reader; what routing does for
// the subscribers goes through the reader's batch (readBatch).
func (s *Server) handlePublish(ctx context.Context, c *client, p *packets.Packet) error {
	if ok, err := s.checkPublish(c, p); !ok {
		return err
	}
	c.batch.recv[p.QoS]++
	c.batch.recvBytes[p.QoS] += int64(len(p.Payload))
	if p.QoS == 2 {
		if ok, err := s.receiveQoS2(c, p); !ok {
			return err
		}
	}
	now := time.Now()
	var (
		m  *message
		hm *Message // the message the Publish hooks rewrote, if any
	)
	if s.hooks.has(EventPublish) {
		m, hm = s.modifiedMessage(ctx, c, p, now)
	} else {
		m = s.authorizedMessage(ctx, c, p, now)
	}
	if m == nil {
		return nil // denied, and answered
	}
	if s.routePublish(c, p, m) {
		s.published(ctx, c, p, m, hm, now)
	}
	return nil
}

// checkPublish validates a PUBLISH and resolves its topic alias. A protocol
// error is returned, and ends the connection; a topic deeper than
// max_topic_levels, valid MQTT the broker does not take, is answered
// (Topic Name invalid, 0x90, in the acknowledgement). It reports whether
// the PUBLISH goes on.
func (s *Server) checkPublish(c *client, p *packets.Packet) (bool, error) {
	if len(p.Properties.SubscriptionIDs) > 0 {
		return false, packets.Errorf(packets.ProtocolError, "PUBLISH from a client carries a Subscription Identifier [MQTT-3.3.4-6]")
	}
	if err := c.resolveAlias(p); err != nil {
		return false, err
	}
	if p.Retain && s.opts.DisableRetain {
		return false, packets.Errorf(packets.RetainNotSupported, "PUBLISH with retain set, but retain is not available")
	}
	if err := topics.CheckLevels(p.Topic, s.opts.MaxTopicLevels, false); err != nil {
		s.denyPublish(c, p, packets.TopicNameInvalid, err.Error())
		return false, nil
	}
	return true, nil
}

// receiveQoS2 records an inbound QoS 2 PUBLISH's packet identifier until
// its PUBREL (session.inQoS2, and the store). A resend of one already
// delivered only gets its PUBREC again [MQTT-4.3.3-10], and one beyond the
// Receive Maximum is a protocol error (v5). It reports whether the
// PUBLISH goes on.
func (s *Server) receiveQoS2(c *client, p *packets.Packet) (bool, error) {
	sess := c.sess
	sess.mu.Lock()
	if _, dup := sess.inQoS2[p.PacketID]; dup {
		m := sess.unforwarded[p.PacketID]
		delete(sess.unforwarded, p.PacketID)
		sess.mu.Unlock()
		if m != nil && s.cluster != nil {
			// Routed here, but not handed to the other nodes: only that
			// is done again, and the PUBREC waits for it.
			c.pubID = p.PacketID
			s.forward(m, c)
			c.pubID = 0
		}
		c.ack(outControl{kind: packets.Pubrec, id: p.PacketID})
		return false, nil
	}
	// Receive Maximum is MQTT 5's flow control, which a 3.x client
	// knows nothing of: its QoS 2 flows are bounded by the 65535
	// packet identifiers alone.
	if c.version == packets.Version5 && len(sess.inQoS2) >= int(s.opts.ReceiveMaximum) {
		sess.mu.Unlock()
		return false, packets.Errorf(packets.ReceiveMaximumExceeded, "more than %d unacknowledged QoS 2 PUBLISH packets [MQTT-3.3.4-7]", s.opts.ReceiveMaximum)
	}
	if sess.inQoS2 == nil {
		sess.inQoS2 = make(map[uint16]struct{})
	}
	sess.inQoS2[p.PacketID] = struct{}{}
	if sess.stored {
		s.persist(&c.batch, StoreOp{Kind: OpInboundPut, ClientID: sess.id, PacketID: p.PacketID})
	}
	sess.mu.Unlock()
	return true, nil
}

// authorizedMessage builds the message of a PUBLISH when no hook rewrites
// messages, once the AuthorizePublish hooks, if any, allow it; they see the
// reader's scratch message, valid during their call, and nothing is copied
// for them. It returns nil for a denied PUBLISH, which it answers.
func (s *Server) authorizedMessage(ctx context.Context, c *client, p *packets.Packet, now time.Time) *message {
	if s.hooks.has(EventAuthorizePublish) || (c.mount == "" && brokerTopic(p.Topic)) {
		hm := &c.hookMsg
		*hm = Message{Topic: c.mount + p.Topic, Payload: p.Payload, QoS: p.QoS, Retain: p.Retain, Properties: p.Properties, Origin: c.id, Received: now}
		code, why := s.authorizePublish(ctx, c, hm)
		*hm = Message{}
		if code != packets.Success {
			s.denyPublish(c, p, code, why)
			return nil
		}
	}
	m := newMessage(p, c.id, now)
	if c.mount != "" {
		m.topic = c.mount + m.topic
	}
	return m
}

// modifiedMessage builds the message of a PUBLISH from what the
// AuthorizePublish and Publish hooks made of it, and returns it with the
// hooks' Message, which the Published hooks are shown. It returns nil for
// a denied PUBLISH, which it answers.
func (s *Server) modifiedMessage(ctx context.Context, c *client, p *packets.Packet, now time.Time) (*message, *Message) {
	hm := &Message{Topic: c.mount + p.Topic, Payload: p.Payload, QoS: p.QoS, Retain: p.Retain, Properties: p.Properties, Origin: c.id, Received: now}
	code, why := s.authorizePublish(ctx, c, hm)
	if code == packets.Success {
		code, why = s.modifyPublish(ctx, c, hm)
	}
	if code != packets.Success {
		s.denyPublish(c, p, code, why)
		return nil, nil
	}
	return buildMessage(hm.Topic, hm.Payload, hm.QoS, hm.Retain, c.id, &hm.Properties, now), hm
}

// routePublish routes m and acknowledges its PUBLISH: Success, or in v5 No
// matching subscribers when nobody took it. A retained message the
// retained store has no room for is refused with Quota exceeded. It
// reports whether m was published.
func (s *Server) routePublish(c *client, p *packets.Packet, m *message) bool {
	c.pubID = p.PacketID
	n, err := s.route(m, c)
	c.pubID = 0
	if err != nil {
		s.refusePublish(c, p, packets.QuotaExceeded, err.Error())
		return false
	}
	code := packets.Success
	if n == 0 && c.version == packets.Version5 {
		code = packets.NoMatchingSubscribers
	}
	switch p.QoS {
	case 1:
		c.ack(outControl{kind: packets.Puback, id: p.PacketID, code: code})
	case 2:
		c.ack(outControl{kind: packets.Pubrec, id: p.PacketID, code: code})
	}
	return true
}

// published tells the Published hooks of a routed message, after its
// acknowledgement is queued: hm is the Message the Publish hooks rewrote;
// without one they see the reader's scratch message, filled from m.
func (s *Server) published(ctx context.Context, c *client, p *packets.Packet, m *message, hm *Message, now time.Time) {
	if hm != nil {
		s.hooks.notify(EventPublished, hm.Topic, func(h *handlers) { h.published.OnPublished(ctx, &c.info, hm) })
		return
	}
	if !s.hooks.has(EventPublished) {
		return
	}
	sm := &c.hookMsg
	*sm = Message{Topic: m.topic, Payload: m.payload, QoS: m.qos, Retain: m.retain, Properties: p.Properties, Origin: c.id, Received: now}
	s.hooks.notify(EventPublished, sm.Topic, func(h *handlers) { h.published.OnPublished(ctx, &c.info, sm) })
	*sm = Message{}
}

// denyPublish logs and answers a PUBLISH a hook refused (refusePublish).
func (s *Server) denyPublish(c *client, p *packets.Packet, code packets.ReasonCode, why string) {
	if c.logs(slog.LevelInfo) {
		c.logger().Info("publish denied", "topic", p.Topic, "reason", code.String(), "cause", why)
	}
	s.refusePublish(c, p, code, why)
}

// refusePublish answers a refused PUBLISH: QoS 1/2 get the reason code
// (v5; 3.x gets a plain acknowledgement [MQTT-3.3.5-2]), QoS 0 is dropped
// silently.
func (s *Server) refusePublish(c *client, p *packets.Packet, code packets.ReasonCode, why string) {
	switch p.QoS {
	case 1:
		c.ack(ackWithReason(packets.Puback, p.PacketID, code, why, c.version))
	case 2:
		sess := c.sess
		sess.mu.Lock()
		delete(sess.inQoS2, p.PacketID)
		if sess.stored {
			s.persist(&c.batch, StoreOp{Kind: OpInboundDelete, ClientID: sess.id, PacketID: p.PacketID})
		}
		sess.mu.Unlock()
		c.ack(ackWithReason(packets.Pubrec, p.PacketID, code, why, c.version))
	}
}

// modifyPublish runs the Publish hooks, which may rewrite m or deny it;
// a rewritten message must still be valid.
func (s *Server) modifyPublish(ctx context.Context, c *client, m *Message) (packets.ReasonCode, string) {
	if !s.hooks.has(EventPublish) {
		return packets.Success, ""
	}
	v := s.hooks.decide(EventPublish, m.Topic, func(h *handlers) Verdict { return h.publish.Publish(ctx, &c.info, m) })
	if v.Decision == DecisionDeny {
		return v.Code, orReason(v.Reason, "dropped by a publish hook")
	}
	if problem := s.checkRewrite(m, ""); problem != "" {
		return packets.ImplementationSpecificError, "a publish hook set " + problem
	}
	return packets.Success, ""
}

// ackWithReason builds an acknowledgement carrying a reason string (v5).
func ackWithReason(kind packets.Type, id uint16, code packets.ReasonCode, why string, version byte) outControl {
	if version != packets.Version5 {
		return outControl{kind: kind, id: id}
	}
	p := &packets.Packet{Type: kind, PacketID: id, ReasonCode: code, ProtocolVersion: version}
	if why != "" {
		p.Properties.ReasonString = why
		p.Properties.Set(packets.PropReasonString)
	}
	return outControl{pkt: p}
}

// resolveAlias applies an inbound topic alias: a PUBLISH with a topic sets
// the alias, one with an empty topic uses it [MQTT-3.3.2-12].
func (c *client) resolveAlias(p *packets.Packet) error {
	if c.version != packets.Version5 || !p.Properties.Has(packets.PropTopicAlias) {
		return nil
	}
	a := p.Properties.TopicAlias
	maxAlias := c.srv.opts.TopicAliasMaximum
	if c.srv.opts.DisableTopicAliases {
		maxAlias = 0
	}
	if a == 0 || a > maxAlias {
		return packets.Errorf(packets.TopicAliasInvalid, "topic alias %d is outside 1..%d [MQTT-3.3.2-8/9]", a, maxAlias)
	}
	if p.Topic == "" {
		t, ok := c.aliasIn[a]
		if !ok {
			return packets.Errorf(packets.ProtocolError, "topic alias %d used before it was set", a)
		}
		p.Topic = t
		return nil
	}
	old, ok := c.aliasIn[a]
	if ok && old == p.Topic {
		return nil // set again to what it was
	}
	// The table keeps a copy: p.Topic points into the packet's body, which
	// holds its payload.
	if c.aliasInBytes += len(p.Topic) - len(old); c.aliasInBytes > c.srv.opts.TopicAliasBytes {
		return packets.Errorf(packets.QuotaExceeded, "topic aliases would hold more than topic_alias_bytes (%d bytes of topic names)", c.srv.opts.TopicAliasBytes)
	}
	if c.aliasIn == nil {
		c.aliasIn = make(map[uint16]string)
	}
	c.aliasIn[a] = strings.Clone(p.Topic)
	return nil
}

// route stores or clears a retained message and fans the message out. It
// returns the number of deliveries. A retained message the retained store
// has no room for (retain) is refused whole, neither stored nor delivered,
// so that live and later subscribers never see different values: route
// then returns an error wrapping ErrRetainedFull, which a client is
// answered as Quota exceeded.
func (s *Server) route(m *message, from *client) (int, error) {
	if m.retain {
		if err := s.retain(m, from, true); err != nil {
			return 0, err
		}
	}
	if !s.forwards(m) {
		return s.fanout(m, from), nil
	}
	// The cluster hook first: what it numbers before the local fan-out
	// is known to reach a session installed here before the numbering
	// (hooks/cluster's moves).
	n := s.forward(m, from)
	return n + s.fanoutTo(m, from, false), nil
}
