package cluster

import "github.com/vanemq/vanemq/core"

var _ core.ClusterReporter = (*Hook)(nil)

// ClusterStatus implements core.ClusterReporter: the node's NATS link,
// its JetStream state, the nodes it knows of (Peers) and its counters.
func (h *Hook) ClusterStatus() core.ClusterStatus {
	st := core.ClusterStatus{
		Node:      h.cfg.Node,
		JetStream: h.jetStreamReady(),
	}
	if nc := h.nc.Load(); nc != nil && nc.IsConnected() {
		st.Connected = true
		st.Server = nc.ConnectedUrlRedacted()
	}
	if err := h.Health(); err != nil {
		st.Unhealthy = err.Error()
	}
	st.Peers = h.Peers()
	s := &h.stats
	st.Counters = core.ClusterCounters{
		Forwarded:       s.forwarded.Load(),
		Received:        s.received.Load(),
		Delivered:       s.delivered.Load(),
		Duplicates:      s.duplicates.Load(),
		Unrouted:        s.unrouted.Load(),
		Dropped:         s.dropped.Load(),
		Bad:             s.bad.Load(),
		HandoffFailures: s.handoffFailures.Load(),

		SessionsAdopted:   s.adopted.Load(),
		SessionsReleased:  s.released.Load(),
		SessionsLost:      s.takeoverLost.Load(),
		SessionsFenced:    s.fenced.Load(),
		SessionsUnclaimed: s.unclaimed.Load(),
		SessionsFromDead:  s.adoptedDead.Load(),
		PassedOn:          s.passedOn.Load(),
		PassedOnLost:      s.lostPassedOn.Load(),
	}
	return st
}
