package main

import (
	"context"
	"time"

	"github.com/vanemq/vanemq/core/packets"
)

// healthyAttempts is how many times per wave of the silent scenario the
// healthy client connects, spread evenly over the hold.
const healthyAttempts = 5

// healthyRecord is the outcome of one wave's healthy attempts.
type healthyRecord struct {
	attempts, failed int
	served           latencies // connect latency of each served attempt
	firstErr         string    // the first failure
}

// runHealthy makes healthyAttempts attempts, the k-th at start + k × -hold
// / healthyAttempts on env's clock or as soon as the one before it is
// over, and stops early when ctx ends. first numbers the attempts' client
// identifiers.
func runHealthy(ctx context.Context, env *benchEnv, start int64, first int) healthyRecord {
	var rec healthyRecord
	for k := range healthyAttempts {
		if env.clock.sleepUntil(ctx, start+int64(env.cfg.Hold)*int64(k)/healthyAttempts) != nil {
			return rec
		}
		d, err := healthyAttempt(ctx, env, first+k)
		if ctx.Err() != nil {
			return rec // interrupted: not the broker's failure
		}
		rec.attempts++
		if err != nil {
			rec.failed++
			if rec.firstErr == "" {
				rec.firstErr = err.Error()
			}
			continue
		}
		rec.served = append(rec.served, d)
	}
	return rec
}

// healthyAttempt is one visit of a client that behaves: it connects
// (dial, CONNECT, CONNACK), round-trips a PINGREQ and disconnects, each step
// within handshakeTimeout. It returns the time from the dial to the
// CONNACK; an attempt that is refused, times out or gets no PINGRESP fails.
func healthyAttempt(ctx context.Context, env *benchEnv, index int) (time.Duration, error) {
	t0 := env.clock.now()
	c, err := openConn(ctx, env, connSpec{
		role: "healthy client", index: index, clientID: env.clientID('h', index),
		keepAlive: idleKeepAlive, readBuf: idleReadBuf, wsBuf: idleReadBuf,
	})
	if err != nil {
		return 0, err
	}
	connected := time.Duration(env.clock.now() - t0)
	defer c.close()
	hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	err = c.bounded(hctx, func() error {
		p := packets.Packet{Type: packets.Pingreq, ProtocolVersion: c.version}
		if err := c.writePacket(&p); err != nil {
			return c.errorf("send PINGREQ: %w", err)
		}
		if err := c.rd.ReadPacket(&c.in); err != nil {
			return c.errorf("waiting for PINGRESP: %w", readError(err))
		}
		if c.in.Type != packets.Pingresp {
			return c.errorf("expected PINGRESP, received %s", c.in.Type)
		}
		return nil
	})
	return connected, err
}
