package core

import (
	"time"

	"github.com/vanemq/vanemq/core/packets"
)

// willMsg is a will message waiting to be published for a client.
type willMsg struct {
	will   *packets.Will
	origin string
	info   *ClientInfo // the connection that left the will
}

// takeWillLocked removes and returns the session's delayed will, if any.
func (s *session) takeWillLocked() *willMsg {
	w := s.will
	s.will = nil
	if s.willTimer != nil {
		s.willTimer.Stop()
		s.willTimer = nil
	}
	return w
}

// stopTimersLocked cancels the session's will and expiry timers.
func (s *session) stopTimersLocked() {
	if s.willTimer != nil {
		s.willTimer.Stop()
		s.willTimer = nil
	}
	if s.expiryTimer != nil {
		s.expiryTimer.Stop()
		s.expiryTimer = nil
	}
}

// willDelayElapsed publishes a delayed will unless the session was resumed
// in the meantime [MQTT-3.1.3-9].
func (s *Server) willDelayElapsed(sess *session, gen uint64) {
	if !s.timers.enter() {
		return
	}
	defer s.timers.exit()
	sess.mu.Lock()
	if sess.gen != gen || sess.conn != nil || sess.will == nil {
		sess.mu.Unlock()
		return
	}
	w := sess.will
	sess.will = nil
	sess.willTimer = nil
	sess.mu.Unlock()
	s.publishWill(w)
	s.willSettled(sess.id)
}

// publishWill publishes a will message as its client would have: will
// properties become the message's properties, less the will delay
// (buildMessage drops it).
func (s *Server) publishWill(w *willMsg) {
	if s.closing.Load() {
		return
	}
	wl := w.will
	m := buildMessage(wl.Topic, wl.Payload, wl.QoS, wl.Retain, w.origin, &wl.Properties, time.Now())
	if !s.willAuthorized(w, m) {
		return
	}
	if m = s.willHook(w, m); m == nil {
		return
	}
	s.log.Debug("publishing will", "client", w.origin, "topic", m.topic)
	if _, err := s.route(m, nil); err != nil {
		return // a retained will the store has no room for: counted and logged
	}
	s.stats.willsSent.Add(1)
}
