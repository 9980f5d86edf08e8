package core

import (
	"context"
	"strconv"
	"time"
)

// sysLoop publishes the $SYS/broker topics every SysInterval, retained, so a
// new subscriber sees the latest values at once.
func (s *Server) sysLoop(ctx context.Context) {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.SysInterval)
	defer t.Stop()
	s.publishSys()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.publishSys()
		}
	}
}

// publishSys publishes one round of $SYS topics, Mosquitto's names where
// they exist.
func (s *Server) publishSys() {
	st := s.Stats()
	up := int64(time.Since(s.started).Seconds())
	pub := func(topic, value string) {
		m := &message{topic: topic, payload: []byte(value), retain: true}
		_ = s.retain(m, nil, false) // never refused: unbounded
		s.fanout(m, nil)
	}
	itoa := func(v int64) string { return strconv.FormatInt(v, 10) }
	pub("$SYS/broker/version", "vanemq "+s.opts.Version)
	pub("$SYS/broker/uptime", itoa(up)+" seconds")
	pub("$SYS/broker/clients/connected", itoa(st.ClientsConnected))
	pub("$SYS/broker/clients/disconnected", itoa(st.Sessions-st.ClientsConnected))
	pub("$SYS/broker/clients/total", itoa(st.Sessions))
	pub("$SYS/broker/connections/total", itoa(st.Connections))
	pub("$SYS/broker/messages/received", itoa(st.MessagesIn))
	pub("$SYS/broker/messages/sent", itoa(st.MessagesOut))
	pub("$SYS/broker/messages/dropped", itoa(st.Dropped))
	pub("$SYS/broker/bytes/received", itoa(st.BytesIn))
	pub("$SYS/broker/bytes/sent", itoa(st.BytesOut))
	pub("$SYS/broker/subscriptions/count", itoa(st.Subscriptions))
	pub("$SYS/broker/retained messages/count", itoa(st.Retained))
	for _, b := range s.Bridges() {
		// Mosquitto's state topic, 1 or 0, and vanemq's counts.
		state := "0"
		if b.Connected {
			state = "1"
		}
		pub("$SYS/broker/connection/"+b.Name+"/state", state)
		pub("$SYS/broker/bridges/"+b.Name+"/queued", itoa(int64(b.Queued)))
		pub("$SYS/broker/bridges/"+b.Name+"/sent", itoa(int64(b.Sent)))
		pub("$SYS/broker/bridges/"+b.Name+"/received", itoa(int64(b.Received)))
		pub("$SYS/broker/bridges/"+b.Name+"/dropped", itoa(int64(b.Dropped)))
	}
	s.hooks.notify(EventSysTick, "", func(h *handlers) { h.sysTick.OnSysTick(s.background(), st) })
}
