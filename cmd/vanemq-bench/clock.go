package main

import (
	"context"
	"time"
)

// monoClock reads the monotonic clock as nanoseconds since the run started.
// Send timestamps in payloads and the measurement window are on this clock.
type monoClock struct{ origin time.Time }

// newMonoClock returns a clock whose zero is now.
func newMonoClock() monoClock { return monoClock{origin: time.Now()} }

// now returns the nanoseconds elapsed since the clock's zero.
func (c monoClock) now() int64 { return int64(time.Since(c.origin)) }

// at returns the time of the clock reading ns, for deadlines and timers.
func (c monoClock) at(ns int64) time.Time { return c.origin.Add(time.Duration(ns)) }

// sleepUntil waits until the clock reads ns or ctx ends, and returns ctx's
// error in the latter case.
func (c monoClock) sleepUntil(ctx context.Context, ns int64) error {
	d := time.Duration(ns - c.now())
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
