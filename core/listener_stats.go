package core

import (
	"slices"
	"strings"
	"sync/atomic"
)

// listenerCounts are one listener's connection counters.
type listenerCounts struct {
	protocol, address string
	accepted          atomic.Int64
	open              atomic.Int64
}

// ListenerStatus describes one listener's connections.
type ListenerStatus struct {
	ID       string `json:"id"`
	Protocol string `json:"protocol"`
	Address  string `json:"address"`
	// Accepted counts connections handed over since start; Open those
	// not yet closed.
	Accepted int64 `json:"accepted"`
	Open     int64 `json:"open"`
}

// counts returns the counters of listener id, made when it was added.
func (s *Server) counts(id string) *listenerCounts {
	if v, ok := s.listenerCounts.Load(id); ok {
		return v.(*listenerCounts)
	}
	v, _ := s.listenerCounts.LoadOrStore(id, &listenerCounts{})
	return v.(*listenerCounts)
}

// Listeners describes every listener's connections, sorted by ID.
func (s *Server) Listeners() []ListenerStatus {
	var out []ListenerStatus
	s.listenerCounts.Range(func(k, v any) bool {
		lc := v.(*listenerCounts)
		out = append(out, ListenerStatus{ID: k.(string), Protocol: lc.protocol, Address: lc.address,
			Accepted: lc.accepted.Load(), Open: lc.open.Load()})
		return true
	})
	slices.SortFunc(out, func(a, b ListenerStatus) int { return strings.Compare(a.ID, b.ID) })
	return out
}
