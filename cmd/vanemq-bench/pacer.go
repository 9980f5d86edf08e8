package main

import "time"

// Bounds of a paced publisher's tick.
const (
	minTick = time.Millisecond
	maxTick = 100 * time.Millisecond
)

// pacer spreads a publisher's messages evenly over time: on every tick the
// publisher sends the messages that have come due since it started, so a
// publisher that fell behind catches up.
type pacer struct {
	perSec float64 // messages per second
	origin int64   // clock reading at the start
	sent   int64   // messages sent since origin
}

// due returns how many messages should be sent at clock reading now.
func (p *pacer) due(now int64) int64 {
	return int64(float64(now-p.origin)*p.perSec/float64(time.Second)) - p.sent
}

// tickFor returns the tick of a publisher sending perSec messages per
// second: one message per tick, but at least minTick and at most maxTick.
func tickFor(perSec float64) time.Duration {
	d := time.Duration(float64(time.Second) / perSec)
	return min(max(d, minTick), maxTick)
}
