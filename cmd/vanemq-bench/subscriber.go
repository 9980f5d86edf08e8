package main

import (
	"encoding/binary"
	"sync/atomic"
)

// statsFlushEvery is how many deliveries a busy subscriber counts between
// publishing its counters, when its input never runs dry.
const statsFlushEvery = 1024

// subStats counts one subscriber's deliveries. Its reader goroutine owns
// the plain fields; flush publishes two of them in the atomics, which the
// run reads while draining.
//
// A delivery is counted twice over. By its send timestamp: the deliveries
// of messages sent inside the window, whenever they arrive, are the ones
// set against the messages sent, for loss, and their latencies are
// recorded. By its arrival time: the deliveries that arrived inside the
// window are the broker's throughput, set against the CPU time it used in
// the same window. Under a load the broker cannot keep up with, QoS 0
// messages queue for seconds in the sockets' buffers, so that during the
// window it mostly delivers messages sent before it.
type subStats struct {
	start, end int64 // the measurement window
	hist       *latencyHist

	stamped int64 // deliveries of messages sent inside the window
	arrived int64 // deliveries that arrived inside the window
	all     int64 // every delivery

	received atomic.Int64 // stamped, as of the last flush
	arrivals atomic.Int64 // all, as of the last flush
}

// newSubStats returns the counters of a subscriber for the window
// [start, end).
func newSubStats(start, end int64) *subStats {
	return &subStats{start: start, end: end, hist: newLatencyHist()}
}

// deliver counts one payload delivered at clock reading now.
func (s *subStats) deliver(payload []byte, now int64) {
	s.all++
	if now >= s.start && now < s.end {
		s.arrived++
	}
	if len(payload) >= 8 {
		ts := int64(binary.BigEndian.Uint64(payload))
		if ts >= s.start && ts < s.end {
			s.stamped++
			s.hist.record(now - ts)
		}
	}
	if s.all%statsFlushEvery == 0 {
		s.flush()
	}
}

// flush publishes the counters.
func (s *subStats) flush() {
	s.received.Store(s.stamped)
	s.arrivals.Store(s.all)
}
