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
// acknowledgement.
func (s *Server) handlePublish(ctx context.Context, c *client, p *packets.Packet) error {
	if len(p.Properties.SubscriptionIDs) > 0 {
		return packets.Errorf(packets.ProtocolError, "PUBLISH from a client carries a Subscription Identifier [MQTT-3.3.4-6]")
	}
	if err := c.resolveAlias(p); err != nil {
		return err
	}
	if p.Retain && s.opts.DisableRetain {
		return packets.Errorf(packets.RetainNotSupported, "PUBLISH with retain set, but retain is not available")
	}
	if err := topics.CheckLevels(p.Topic, s.opts.MaxTopicLevels, false); err != nil {
		// Valid MQTT, not accepted here: 0x90 in the acknowledgement.
		s.denyPublish(c, p, packets.TopicNameInvalid, err.Error())
		return nil
	}
	c.batch.recv[p.QoS]++
	c.batch.recvBytes[p.QoS] += int64(len(p.Payload))
	sess := c.sess
	if p.QoS == 2 {
		sess.mu.Lock()
		if _, dup := sess.inQoS2[p.PacketID]; dup {
			// Already delivered; a resend only gets its PUBREC again [MQTT-4.3.3-10].
			sess.mu.Unlock()
			c.ack(outControl{kind: packets.Pubrec, id: p.PacketID})
			return nil
		}
		// Receive Maximum is MQTT 5's flow control, which a 3.x client
		// knows nothing of: its QoS 2 flows are bounded by the 65535
		// packet identifiers alone.
		if c.version == packets.Version5 && len(sess.inQoS2) >= int(s.opts.ReceiveMaximum) {
			sess.mu.Unlock()
			return packets.Errorf(packets.ReceiveMaximumExceeded, "more than %d unacknowledged QoS 2 PUBLISH packets [MQTT-3.3.4-7]", s.opts.ReceiveMaximum)
		}
		if sess.inQoS2 == nil {
			sess.inQoS2 = make(map[uint16]struct{})
		}
		sess.inQoS2[p.PacketID] = struct{}{}
		if sess.stored {
			s.persist(&c.batch, StoreOp{Kind: OpInboundPut, ClientID: sess.id, PacketID: p.PacketID})
		}
		sess.mu.Unlock()
	}

	var m *message
	now := time.Now()
	modify := s.hooks.has(EventPublish)
	if !modify && s.hooks.has(EventPublished) {
		// Only told: the hooks see the reader's scratch message too, once
		// the message is routed (after the acknowledgement is queued).
		defer func() {
			if m == nil {
				return // refused
			}
			hm := &c.hookMsg
			*hm = Message{Topic: m.topic, Payload: m.payload, QoS: m.qos, Retain: m.retain, Properties: p.Properties, Origin: c.id, Received: now}
			s.hooks.notify(EventPublished, hm.Topic, func(h Hook) { h.OnPublished(ctx, &c.info, hm) })
			*hm = Message{}
		}()
	}
	if !modify && s.hooks.has(EventAuthorizePublish) {
		// Only authorization: the hooks see the reader's scratch message,
		// valid during their call, and nothing is copied for them.
		hm := &c.hookMsg
		*hm = Message{Topic: c.mount + p.Topic, Payload: p.Payload, QoS: p.QoS, Retain: p.Retain, Properties: p.Properties, Origin: c.id, Received: now}
		code, why := s.authorizePublish(ctx, c, hm)
		*hm = Message{}
		if code != packets.Success {
			s.denyPublish(c, p, code, why)
			return nil
		}
	}
	if modify {
		hm := &Message{Topic: c.mount + p.Topic, Payload: p.Payload, QoS: p.QoS, Retain: p.Retain, Properties: p.Properties, Origin: c.id, Received: now}
		code, why := s.authorizePublish(ctx, c, hm)
		if code == packets.Success {
			code, why = s.modifyPublish(ctx, c, hm)
		}
		if code != packets.Success {
			s.denyPublish(c, p, code, why)
			return nil
		}
		m = buildMessage(hm.Topic, hm.Payload, hm.QoS, hm.Retain, c.id, &hm.Properties, now)
		defer func() {
			if m != nil {
				s.hooks.notify(EventPublished, hm.Topic, func(h Hook) { h.OnPublished(ctx, &c.info, hm) })
			}
		}()
	} else {
		m = newMessage(p, c.id, now)
		if c.mount != "" {
			m.topic = c.mount + m.topic
		}
	}
	n, err := s.route(m, c)
	if err != nil {
		m = nil // not published: the Published hooks are not told
		s.refusePublish(c, p, packets.QuotaExceeded, err.Error())
		return nil
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
	return nil
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
	v := s.hooks.decide(EventPublish, m.Topic, func(h Hook) Verdict { return h.Publish(ctx, &c.info, m) })
	if v.Decision == Deny {
		return v.Code, orReason(v.Reason, "dropped by a publish hook")
	}
	if err := topics.ValidateTopicName(m.Topic); err != nil {
		return packets.ImplementationSpecificError, "a publish hook set an invalid topic: " + err.Error()
	}
	if err := topics.CheckLevels(m.Topic, s.opts.MaxTopicLevels, false); err != nil {
		return packets.ImplementationSpecificError, "a publish hook set a topic too deep: " + err.Error()
	}
	if m.QoS > 2 {
		return packets.ImplementationSpecificError, "a publish hook set QoS above 2"
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
	return s.fanout(m, from), nil
}
