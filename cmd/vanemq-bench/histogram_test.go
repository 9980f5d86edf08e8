package main

import (
	"math"
	"testing"
)

// TestHistBuckets checks that every value falls into a bucket whose range
// holds it, no wider than 1/128 of the value.
func TestHistBuckets(t *testing.T) {
	values := []int64{0, 1, 127, 128, 255, 256, 257, 383, 384, 1000, 65535, 1 << 20, 123456789, math.MaxInt64}
	for _, v := range values {
		i := histIndex(v)
		if i < 0 || i >= histBuckets {
			t.Fatalf("histIndex(%d) = %d, outside 0..%d", v, i, histBuckets-1)
		}
		low, width := histLow(i)
		if v < low || v-low >= width {
			t.Errorf("value %d in bucket %d = [%d, %d+%d)", v, i, low, low, width)
		}
		if width > 1 && float64(width) > float64(v)/128 {
			t.Errorf("value %d: bucket width %d is over 1/128 of it", v, width)
		}
	}
	for i := 1; i < histBuckets; i++ {
		prev, pw := histLow(i - 1)
		if low, _ := histLow(i); low != prev+pw {
			t.Fatalf("bucket %d starts at %d, want %d", i, low, prev+pw)
		}
	}
}

// TestHistQuantiles checks quantiles of known distributions.
func TestHistQuantiles(t *testing.T) {
	uniform := newLatencyHist()
	for v := int64(1); v <= 100000; v++ {
		uniform.record(v * 1000) // 1 µs … 100 ms
	}
	cases := []struct {
		q    float64
		want float64
	}{{0.5, 50e6}, {0.99, 99e6}, {0.999, 99.9e6}, {1, 100e6}}
	for _, tc := range cases {
		got := float64(uniform.quantile(tc.q))
		if math.Abs(got-tc.want)/tc.want > 1.0/128 {
			t.Errorf("uniform q%v = %v, want %v within 1/128", tc.q, got, tc.want)
		}
	}
	if m := uniform.mean(); math.Abs(m-50000500) > 1 {
		t.Errorf("mean %v, want 50000500", m)
	}

	one := newLatencyHist()
	one.record(12345)
	for _, q := range []float64{0.001, 0.5, 1} {
		if got := one.quantile(q); got != 12345 {
			t.Errorf("single value: q%v = %d, want 12345", q, got)
		}
	}
	one.record(-5) // clock skew counts as 0
	if got := one.quantile(0.5); got != 0 {
		t.Errorf("with a negative latency: median %d, want 0", got)
	}

	empty := newLatencyHist()
	if empty.quantile(0.5) != 0 || empty.mean() != 0 {
		t.Error("empty histogram: want zeros")
	}

	merged := newLatencyHist()
	merged.merge(empty)
	merged.merge(uniform)
	merged.merge(one)
	if merged.n != uniform.n+2 || merged.min != 0 || merged.max != 100e6 {
		t.Errorf("merged: n %d min %d max %d", merged.n, merged.min, merged.max)
	}
}

// TestHistRecordAllocs checks that recording allocates nothing.
func TestHistRecordAllocs(t *testing.T) {
	h := newLatencyHist()
	if n := testing.AllocsPerRun(100, func() { h.record(123456) }); n != 0 {
		t.Errorf("record allocates %v times", n)
	}
}
