package core

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/vanemq/vanemq/core/packets"
	"github.com/vanemq/vanemq/core/topics"
)

// hookMessage is the hooks' view of a stored message. It is a copy: a
// hook changing it changes nothing in the broker.
func (m *message) hookMessage() *Message {
	return &Message{Topic: m.topic, Payload: m.payload, QoS: m.qos, Retain: m.retain, Properties: m.properties(), Origin: m.origin}
}

// notifyLater queues a notification for the notifier goroutine: the events
// raised while a session lock is held (dropped, acked) must not run hook
// code under it. The queue is bounded; when it is full the notification is
// lost and counted.
func (s *Server) notifyLater(fn func()) {
	select {
	case s.later <- fn:
	default:
		s.stats.hookEventsLost.Add(1)
	}
}

// notifier runs queued notifications until the server stops.
func (s *Server) notifier() {
	defer s.wg.Done()
	for {
		select {
		case fn := <-s.later:
			fn()
		case <-s.ctx.Done():
			for {
				select {
				case fn := <-s.later:
					fn()
				default:
					return
				}
			}
		}
	}
}

// droppedEvent tells the hooks that m was dropped for clientID.
func (s *Server) droppedEvent(clientID string, m *message, why string) {
	if !s.hooks.has(EventDropped) {
		return
	}
	ctx := s.background()
	s.notifyLater(func() {
		hm := m.hookMessage()
		s.hooks.notify(EventDropped, hm.Topic, func(h *handlers) { h.dropped.OnDropped(ctx, clientID, hm, why) })
	})
}

// ackedEvent tells the hooks that clientID acknowledged m.
func (s *Server) ackedEvent(clientID string, m *message) {
	if !s.hooks.has(EventAcked) {
		return
	}
	ctx := s.background()
	s.notifyLater(func() {
		hm := m.hookMessage()
		s.hooks.notify(EventAcked, hm.Topic, func(h *handlers) { h.acked.OnAcked(ctx, clientID, hm) })
	})
}

// retainedEvent tells the hooks a retained message was set, or cleared
// (an empty payload).
func (s *Server) retainedEvent(m *message) {
	if !s.hooks.has(EventRetained) {
		return
	}
	hm := m.hookMessage()
	s.hooks.notify(EventRetained, hm.Topic, func(h *handlers) { h.retained.OnRetained(s.background(), hm) })
}

// sessionEvent tells the hooks of a session change.
func (s *Server) sessionEvent(cl *ClientInfo, change SessionChange) {
	if !s.hooks.has(EventSession) {
		return
	}
	s.hooks.notify(EventSession, "", func(h *handlers) { h.session.OnSession(s.background(), cl, change) })
}

// disconnectedEvent tells the hooks a connected client's connection ended:
// with the reason of the client's DISCONNECT, the reason the server closed
// it with, or UnspecifiedError and the cause when the connection was lost.
// A connection refused at CONNECT was never connected and raises nothing.
func (s *Server) disconnectedEvent(c *client) {
	if !s.hooks.has(EventDisconnected) || !c.connected {
		return
	}
	var (
		reason packets.ReasonCode
		err    error
	)
	switch {
	case c.disconnected:
		reason = c.clientReason
	default:
		reason = packets.ReasonCode(c.closeReason.Load())
		if reason == packets.Success {
			reason = packets.UnspecifiedError
			err = c.lostErr
			if err == nil {
				err = errConnectionLost
			}
		}
	}
	s.hooks.notify(EventDisconnected, "", func(h *handlers) { h.disconnected.OnDisconnected(s.background(), &c.info, reason, err) })
}

// errConnectionLost is the cause told to hooks when a connection ended
// without DISCONNECT and without a read error to show.
var errConnectionLost = errors.New("connection lost without DISCONNECT")

// willAuthorized asks the AuthorizePublish hooks whether the will's client
// may publish to the will's topic, as it would for its own PUBLISH: a will
// must not reach a topic its client may not write.
func (s *Server) willAuthorized(w *willMsg, m *message) bool {
	owned := brokerTopic(m.topic)
	v := Next
	switch {
	case s.hooks.has(EventAuthorizePublish) && w.info != nil:
		hm := m.hookMessage()
		v = s.hooks.decide(EventAuthorizePublish, hm.Topic, func(h *handlers) Verdict { return h.authorizePublish.AuthorizePublish(s.background(), w.info, hm) })
	case !owned:
		return true
	}
	switch {
	case v.Decision == DecisionDeny:
		s.log.Info("will not published: its client may not publish to its topic", "client", w.origin, "topic", m.topic, "reason", v.Code.String())
		return false
	case v.Decision != DecisionAllow && owned:
		s.log.Info("will not published: "+errBrokerTopic, "client", w.origin, "topic", m.topic)
		return false
	}
	return true
}

// willHook runs the Will hooks on a will about to be published; it
// returns the message to publish, or nil when a hook suppressed it.
func (s *Server) willHook(w *willMsg, m *message) *message {
	if !s.hooks.has(EventWill) {
		return m
	}
	hm := m.hookMessage()
	v := s.hooks.decide(EventWill, hm.Topic, func(h *handlers) Verdict { return h.will.Will(s.background(), w.info, hm) })
	if v.Decision == DecisionDeny {
		s.log.Info("will suppressed by a hook", "client", w.origin, "topic", m.topic, "reason", v.Reason)
		return nil
	}
	if problem := s.checkRewrite(hm, ""); problem != "" {
		s.badRewrite(EventWill, w.origin, m.topic, problem)
		return nil
	}
	return buildMessage(hm.Topic, hm.Payload, hm.QoS, hm.Retain, w.origin, &hm.Properties, time.Now())
}

// deliverHook runs the Deliver hooks for one delivery; it returns the
// message to deliver (possibly rewritten), or nil when a hook denied it.
func (s *Server) deliverHook(sess *session, m *message) *message {
	hm := m.hookMessage()
	cl := sess.subscriber()
	v := s.hooks.decide(EventDeliver, hm.Topic, func(h *handlers) Verdict { return h.deliver.Deliver(s.background(), cl, hm) })
	if v.Decision == DecisionDeny {
		return nil
	}
	if problem := s.checkRewrite(hm, m.topic); problem != "" {
		s.badRewrite(EventDeliver, sess.id, m.topic, problem)
		return nil
	}
	return buildMessage(hm.Topic, hm.Payload, hm.QoS, hm.Retain, m.origin, &hm.Properties, time.Now())
}

// checkRewrite says what is wrong with a message a modifier hook (Publish,
// Deliver, Will) may have rewritten, "" when nothing: its topic must be a
// topic name within the level limit, and its QoS at most 2. routed is the
// topic before the hooks when it was routed, so is valid, and "" when it
// is not known to be: an unchanged routed topic is not checked again (a
// Deliver hook runs for every delivery).
func (s *Server) checkRewrite(m *Message, routed string) string {
	if routed == "" || m.Topic != routed {
		if err := topics.ValidateTopicName(m.Topic); err != nil {
			return "an invalid topic: " + err.Error()
		}
		if err := topics.CheckLevels(m.Topic, s.opts.MaxTopicLevels, false); err != nil {
			return "a topic too deep: " + err.Error()
		}
	}
	if m.QoS > 2 {
		return "QoS above 2"
	}
	return ""
}

// badRewrite logs a message a Deliver or Will hook rewrote into one the
// broker cannot send, which is dropped: at warn level at most once in
// refusalWarnEvery, with the count since, else at debug level.
func (s *Server) badRewrite(ev Event, client, topic, problem string) {
	level, since := s.rewrites.level()
	args := []any{"client", client, "topic", topic}
	if level == slog.LevelWarn {
		args = append(args, "dropped_since_last_warning", since)
	}
	s.log.Log(context.Background(), level, "message dropped: a "+ev.String()+" hook set "+problem, args...)
}
