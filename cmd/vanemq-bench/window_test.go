package main

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

// TestIDWindow checks taking and returning packet identifiers.
func TestIDWindow(t *testing.T) {
	w := newIDWindow(5)
	ids, err := w.acquire(t.Context(), nil, 3)
	if err != nil || len(ids) != 3 {
		t.Fatalf("acquire 3: %v, %v", ids, err)
	}
	more, err := w.acquire(t.Context(), nil, 10)
	if err != nil || len(more) != 2 {
		t.Fatalf("acquire the rest: %v, %v", more, err)
	}
	all := slices.Sorted(slices.Values(append(ids, more...)))
	if !slices.Equal(all, []uint16{1, 2, 3, 4, 5}) {
		t.Fatalf("identifiers %v, want 1..5", all)
	}

	// Empty: acquire waits until ctx ends.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := w.acquire(ctx, nil, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("acquire on an empty window: %v, want context.Canceled", err)
	}

	// A release wakes a waiting acquire.
	got := make(chan []uint16, 1)
	go func() {
		ids, _ := w.acquire(t.Context(), nil, 10)
		got <- ids
	}()
	if err := w.release([]uint16{4, 2}); err != nil {
		t.Fatalf("release: %v", err)
	}
	select {
	case ids := <-got:
		if len(ids) == 0 {
			t.Fatal("woken acquire got no identifiers")
		}
		if err := w.release(ids); err != nil {
			t.Fatalf("release: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("acquire was not woken by release")
	}

	// Returning an identifier that is not in flight is the broker's error.
	for _, id := range []uint16{4, 0, 6, 9999} {
		if err := w.release([]uint16{id}); err == nil {
			t.Errorf("release of %d (not in flight): no error", id)
		}
	}
}

// TestPacer checks the due count and the tick.
func TestPacer(t *testing.T) {
	p := pacer{perSec: 10000, origin: 5e9}
	cases := []struct {
		now  int64
		sent int64
		want int64
	}{
		{5e9, 0, 0},
		{5e9 + 1e6, 0, 10},     // 1 ms: 10 due
		{5e9 + 1e6, 4, 6},      // 4 of them sent
		{5e9 + 100e6, 10, 990}, // fell behind: catch up
		{5e9 + 1e9, 10000, 0},
	}
	for _, tc := range cases {
		p.sent = tc.sent
		if got := p.due(tc.now); got != tc.want {
			t.Errorf("due at %d with %d sent: %d, want %d", tc.now-p.origin, tc.sent, got, tc.want)
		}
	}
	ticks := []struct {
		perSec float64
		want   time.Duration
	}{{1e6, minTick}, {1000, time.Millisecond}, {100, 10 * time.Millisecond}, {1, maxTick}}
	for _, tc := range ticks {
		if got := tickFor(tc.perSec); got != tc.want {
			t.Errorf("tickFor(%v) = %v, want %v", tc.perSec, got, tc.want)
		}
	}
}
