package core

import (
	"context"
	"time"

	"github.com/vanemq/vanemq/core/packets"
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
	s.stats.messagesIn.Add(1)
	s.stats.bytesIn.Add(int64(len(p.Payload)))
	sess := c.sess
	if p.QoS == 2 {
		sess.mu.Lock()
		if _, dup := sess.inQoS2[p.PacketID]; dup {
			// Already delivered; a resend only gets its PUBREC again [MQTT-4.3.3-10].
			sess.mu.Unlock()
			c.enqueueControl(outControl{kind: packets.Pubrec, id: p.PacketID}, c)
			return nil
		}
		if len(sess.inQoS2) >= int(s.opts.ReceiveMaximum) {
			sess.mu.Unlock()
			return packets.Errorf(packets.ReceiveMaximumExceeded, "more than %d unacknowledged QoS 2 PUBLISH packets [MQTT-3.3.4-7]", s.opts.ReceiveMaximum)
		}
		if sess.inQoS2 == nil {
			sess.inQoS2 = make(map[uint16]struct{})
		}
		sess.inQoS2[p.PacketID] = struct{}{}
		sess.mu.Unlock()
	}

	if code, why := s.authorizePublish(ctx, c, p); code != packets.Success {
		c.logger().Info("publish denied", "topic", p.Topic, "reason", code.String(), "cause", why)
		switch p.QoS {
		case 1:
			c.enqueueControl(ackWithReason(packets.Puback, p.PacketID, code, why, c.version), c)
		case 2:
			sess.mu.Lock()
			delete(sess.inQoS2, p.PacketID)
			sess.mu.Unlock()
			c.enqueueControl(ackWithReason(packets.Pubrec, p.PacketID, code, why, c.version), c)
		}
		return nil
	}

	n := s.route(newMessage(p, c.id, time.Now()), c)
	code := packets.Success
	if n == 0 && c.version == packets.Version5 {
		code = packets.NoMatchingSubscribers
	}
	switch p.QoS {
	case 1:
		c.enqueueControl(outControl{kind: packets.Puback, id: p.PacketID, code: code}, c)
	case 2:
		c.enqueueControl(outControl{kind: packets.Pubrec, id: p.PacketID, code: code}, c)
	}
	return nil
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
	if c.aliasIn == nil {
		c.aliasIn = make(map[uint16]string)
	}
	c.aliasIn[a] = p.Topic
	return nil
}

// route stores or clears a retained message and fans the message out. It
// returns the number of deliveries.
func (s *Server) route(m *message, from *client) int {
	if m.retain {
		if len(m.payload) == 0 {
			// A zero-byte retained message clears the topic and is not
			// stored [MQTT-3.3.1-6/7].
			s.retained.Delete(m.topic)
		} else {
			s.retained.Set(m.topic, m)
		}
	}
	return s.fanout(m, from)
}
