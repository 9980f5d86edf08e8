package core

import "sync/atomic"

// stats are the broker's counters, published under $SYS.
type stats struct {
	connections    atomic.Int64 // network connections accepted
	refused        atomic.Int64 // CONNECTs refused
	takeovers      atomic.Int64
	expired        atomic.Int64 // sessions expired
	protocolErrors atomic.Int64
	packetsIn      atomic.Int64
	messagesIn     atomic.Int64
	messagesOut    atomic.Int64
	bytesIn        atomic.Int64
	bytesOut       atomic.Int64
	dropped        atomic.Int64
	willsSent      atomic.Int64
	hookEventsLost atomic.Int64 // notifications lost to a full queue
}

// Stats is a snapshot of the broker's counters and gauges.
type Stats struct {
	ClientsConnected int64 // connections with a session now
	Sessions         int64 // sessions, connected or not
	Connections      int64 // network connections accepted since start
	MessagesIn       int64 // PUBLISH packets received
	MessagesOut      int64 // PUBLISH packets sent
	BytesIn          int64 // payload bytes received
	BytesOut         int64 // bytes written to connections
	Dropped          int64 // messages dropped (queue full, expired, too large)
	Subscriptions    int64
	Retained         int64
	ProtocolErrors   int64
	// HookEventsLost counts OnDropped/OnAcked notifications lost because
	// the notifier's queue was full (see docs/hooks.md).
	HookEventsLost int64
}

// Stats returns a snapshot of the broker's counters.
func (s *Server) Stats() Stats {
	st := Stats{
		Connections:    s.stats.connections.Load(),
		MessagesIn:     s.stats.messagesIn.Load(),
		MessagesOut:    s.stats.messagesOut.Load(),
		BytesIn:        s.stats.bytesIn.Load(),
		BytesOut:       s.stats.bytesOut.Load(),
		Dropped:        s.stats.dropped.Load(),
		Subscriptions:  int64(s.subs.Count()),
		Retained:       int64(s.retained.Len()),
		ProtocolErrors: s.stats.protocolErrors.Load(),
		HookEventsLost: s.stats.hookEventsLost.Load(),
	}
	st.ClientsConnected = s.online.Load()
	s.sessMu.Lock()
	st.Sessions = int64(len(s.sessions))
	s.sessMu.Unlock()
	return st
}
