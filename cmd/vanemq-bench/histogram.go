package main

import (
	"math"
	"math/bits"
)

// histSubBits sets the histogram's precision: each power of two is split
// into 1<<histSubBits buckets, so a value is known to within 1/128 (0.8 %).
const histSubBits = 7

// histBuckets is the number of buckets needed for any int64 value.
const histBuckets = (64 - histSubBits) << histSubBits

// latencyHist is a log-linear histogram of latencies in nanoseconds, in the
// manner of HdrHistogram: values below 256 are exact, larger ones fall into
// buckets 1/128 of their power of two wide. Recording is O(1) and never
// allocates. It is not safe for concurrent use.
type latencyHist struct {
	counts   [histBuckets]uint64
	n        uint64
	min, max int64
	sum      float64
}

// newLatencyHist returns an empty histogram.
func newLatencyHist() *latencyHist { return &latencyHist{min: math.MaxInt64} }

// histIndex returns the bucket of v >= 0.
func histIndex(v int64) int {
	shift := max(bits.Len64(uint64(v))-histSubBits-1, 0)
	return shift<<histSubBits + int(v>>shift)
}

// histLow returns the smallest value of bucket i, and the bucket's width.
func histLow(i int) (low, width int64) {
	if i < 2<<histSubBits {
		return int64(i), 1
	}
	shift := i>>histSubBits - 1
	return int64(i-shift<<histSubBits) << shift, 1 << shift
}

// record adds one latency; a negative one (clock skew between a send
// timestamp and the arrival time taken before it) counts as 0.
func (h *latencyHist) record(ns int64) {
	ns = max(ns, 0)
	h.counts[histIndex(ns)]++
	h.n++
	h.min = min(h.min, ns)
	h.max = max(h.max, ns)
	h.sum += float64(ns)
}

// merge adds o's values to h.
func (h *latencyHist) merge(o *latencyHist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.min = min(h.min, o.min)
	h.max = max(h.max, o.max)
	h.sum += o.sum
}

// quantile returns the value below or at which a fraction q (0 < q <= 1)
// of the recorded values lie: the middle of the bucket holding that rank,
// kept within the recorded minimum and maximum. It returns 0 when the
// histogram is empty.
func (h *latencyHist) quantile(q float64) int64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			low, width := histLow(i)
			return min(max(low+(width-1)/2, h.min), h.max)
		}
	}
	return h.max
}

// mean returns the average value, 0 when empty.
func (h *latencyHist) mean() float64 {
	if h.n == 0 {
		return 0
	}
	return h.sum / float64(h.n)
}
