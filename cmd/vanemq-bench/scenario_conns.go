package main

import (
	"context"
	"time"
)

// Settings of the idle connections of the conns scenario.
const (
	// idleKeepAlive is their keep alive in seconds.
	idleKeepAlive = 300
	// idleReadBuf is their read buffer, and their WebSocket buffers' size;
	// nothing is expected on them.
	idleReadBuf = 512
)

// connsRun is one run of the conns scenario.
type connsRun struct {
	env   *benchEnv
	st    *runState
	conns []*mqttConn

	elapsed       time.Duration // connecting all of them
	before, after cpuSample     // around the connecting
	rssBefore     int64
	rssAfter      int64
}

// runConns opens -conns idle connections with -dialers at a time, measures
// the connect rate and the broker's memory per connection, holds them for
// -hold and closes them. A refused or dropped connection fails the run.
func runConns(ctx context.Context, env *benchEnv) (runResult, error) {
	r := &connsRun{env: env, st: newRunState(ctx), conns: make([]*mqttConn, env.cfg.Conns)}
	err := r.connectAndHold()
	if serr := r.st.shutdown(r.conns, env.cfg.Dialers); err == nil {
		err = serr
	}
	if err != nil {
		return runResult{}, err
	}
	return r.result(), nil
}

// connectAndHold opens the connections, taking samples around, and holds
// them.
func (r *connsRun) connectAndHold() error {
	env, st, cfg := r.env, r.st, r.env.cfg
	var err error
	if r.rssBefore, err = env.probe.brokerRSS(); err != nil {
		return err
	}
	if r.before, err = env.probe.sample(); err != nil {
		return err
	}
	t0 := env.clock.now()
	err = runParallel(st.ctx, len(r.conns), cfg.Dialers, func(ctx context.Context, i int) error {
		c, err := openConn(ctx, env, connSpec{
			role: "connection", index: i, clientID: env.clientID('c', i),
			username: cfg.username('c', i), password: cfg.Password,
			keepAlive: idleKeepAlive, readBuf: idleReadBuf, wsBuf: idleReadBuf,
		})
		if err != nil {
			return err
		}
		r.conns[i] = c
		st.start(c)
		return nil
	})
	if err != nil {
		return err
	}
	r.elapsed = time.Duration(env.clock.now() - t0)
	if r.after, err = env.probe.sample(); err != nil {
		return err
	}
	if r.rssAfter, err = env.probe.brokerRSS(); err != nil {
		return err
	}
	st.pinger(r.conns)
	if env.clock.sleepUntil(st.ctx, env.clock.now()+int64(cfg.Hold)) != nil {
		return context.Cause(st.ctx)
	}
	return st.err()
}

// result computes the run's figures.
func (r *connsRun) result() runResult {
	res := newRunResult(r.env)
	n := int64(len(r.conns))
	res.Conns = len(r.conns)
	res.DurationS = r.elapsed.Seconds()
	if r.elapsed > 0 {
		res.ConnectPerS = roundTo(float64(n)/r.elapsed.Seconds(), 1)
	}
	res.setCPU(r.before, r.after)
	res.BrokerRSSBytes = r.rssAfter
	res.rssBefore = r.rssBefore
	res.BytesPerConn = max(0, r.rssAfter-r.rssBefore) / n
	res.hold = r.env.cfg.Hold
	res.finish()
	return res
}
