package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// errRunOver is the cause with which a run's context ends when the run
// finished rather than failed.
var errRunOver = errors.New("run over")

// benchEnv is what every part of a run shares.
type benchEnv struct {
	cfg    *benchConfig
	clock  monoClock
	dialer *dialer // to -addr
	// subDialer is the subscribers' dialer, to -sub-addr; nil for dialer.
	subDialer *dialer
	probe     *procProbe
	idPrefix  string // makes the run's client identifiers unique
}

// clientID returns the client identifier of the index-th client of a role
// ('p' publisher, 's' subscriber, 'c' idle connection, 'q' silent
// connection, 'h' healthy client): short enough for
// brokers that keep to the 23 bytes MQTT 3.1.1 guarantees.
func (e *benchEnv) clientID(role byte, index int) string {
	return e.idPrefix + string(role) + strconv.Itoa(index)
}

// runBench runs cfg's scenario and returns its result.
func runBench(ctx context.Context, cfg benchConfig) (runResult, error) {
	env := &benchEnv{cfg: &cfg, clock: newMonoClock()}
	env.idPrefix = "vb" + strconv.FormatUint(uint64(rand.Uint32()), 36) + "-"
	var err error
	if env.dialer, err = newDialer(&cfg, cfg.Addr); err != nil {
		return runResult{}, err
	}
	if cfg.SubAddr != "" && cfg.SubAddr != cfg.Addr {
		if env.subDialer, err = newDialer(&cfg, cfg.SubAddr); err != nil {
			return runResult{}, err
		}
	}
	if env.probe, err = newProcProbe(ctx, cfg.BrokerPIDs); err != nil {
		return runResult{}, fmt.Errorf("-broker-pid %s: %w", joinPIDs(cfg.BrokerPIDs), err)
	}
	var res runResult
	switch cfg.Scenario {
	case scenarioConns:
		res, err = runConns(ctx, env)
	case scenarioSilent:
		res, err = runSilent(ctx, env)
	default:
		res, err = runMessages(ctx, env)
	}
	if err != nil {
		to := cfg.Addr
		if env.subDialer != nil {
			to += " (subscribers to " + cfg.SubAddr + ")"
		}
		return runResult{}, fmt.Errorf("%s over %s to %s: %w", cfg.Scenario, cfg.Transport, to, err)
	}
	return res, nil
}

// runState is the lifetime of one run's connections: the first failure
// ends the run's context with that failure as its cause, and failures
// reported while the run closes its connections are ignored.
type runState struct {
	ctx     context.Context
	cancel  context.CancelCauseFunc
	closing atomic.Bool
	wg      sync.WaitGroup // readers and the pinger
}

// newRunState returns the state of a run within ctx.
func newRunState(ctx context.Context) *runState {
	st := &runState{}
	st.ctx, st.cancel = context.WithCancelCause(ctx)
	return st
}

// fail ends the run with err, unless it is closing or already failed.
func (st *runState) fail(err error) {
	if !st.closing.Load() {
		st.cancel(err)
	}
}

// err returns why the run ended early, or nil.
func (st *runState) err() error {
	if cause := context.Cause(st.ctx); cause != nil && !errors.Is(cause, errRunOver) {
		return cause
	}
	return nil
}

// start runs c's reader.
func (st *runState) start(c *mqttConn) {
	st.wg.Add(1)
	go func() {
		defer st.wg.Done()
		c.readLoop(st)
	}()
}

// shutdown closes conns (nil entries are skipped) with up to workers at a
// time and waits for their readers and the pinger. It returns the run's
// failure, if it had one before closing.
func (st *runState) shutdown(conns []*mqttConn, workers int) error {
	st.closing.Store(true)
	err := st.err()
	st.cancel(errRunOver)
	_ = runParallel(context.Background(), len(conns), workers, func(_ context.Context, i int) error {
		if c := conns[i]; c != nil {
			c.close()
		}
		return nil
	})
	st.wg.Wait()
	return err
}

// pinger keeps conns alive: every quarter of the shortest keep alive it
// sends PINGREQ on the connections that have been idle for half of theirs.
func (st *runState) pinger(conns []*mqttConn) {
	var ka uint16
	for _, c := range conns {
		if c.keepAlive > 0 && (ka == 0 || c.keepAlive < ka) {
			ka = c.keepAlive
		}
	}
	if ka == 0 {
		return
	}
	st.wg.Add(1)
	go func() {
		defer st.wg.Done()
		t := time.NewTicker(time.Duration(ka) * time.Second / 4)
		defer t.Stop()
		for {
			select {
			case <-st.ctx.Done():
				return
			case <-t.C:
			}
			for _, c := range conns {
				if err := c.pingIfIdle(c.clock.now()); err != nil {
					st.fail(err)
					return
				}
			}
		}
	}()
}

// runParallel calls fn(ctx, 0) … fn(ctx, n-1) on up to workers goroutines.
// The first error cancels the ctx given to the calls and is returned; the
// indices not yet started then are skipped.
func runParallel(ctx context.Context, n, workers int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(ctx, i); err != nil {
					cancel(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return nil
}
