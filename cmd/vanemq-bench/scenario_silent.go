package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Settings of the silent scenario.
const (
	// silentReadBuf is what a silent connection's reader reads into: the
	// broker is not expected to send anything but a refusal.
	silentReadBuf = 64
	// rssInterval is how often the broker's VmRSS is read while a wave is
	// open; the wave's figure is the highest reading.
	rssInterval = 50 * time.Millisecond
	// waveSettle is the pause after a wave's connections are closed before
	// the next wave's VmRSS is read: time for the broker to end them.
	waveSettle = time.Second
)

// silentRun is one run of the silent scenario.
type silentRun struct {
	env      *benchEnv
	send     []byte // what each connection sends, decoded from -send
	rssStart int64  // broker VmRSS before the first wave
	waves    []waveResult
	healthy  latencies // the served healthy attempts of every wave
	firstErr string    // the first failed healthy attempt's error

	elapsed       time.Duration // the whole run
	before, after cpuSample     // around the whole run
}

// waveResult is one wave of the silent scenario, as -json prints it.
type waveResult struct {
	Wave           int     `json:"wave"` // 1-based
	Conns          int     `json:"conns"`
	OpenS          float64 `json:"open_s"`           // opening them and sending -send
	ClosedByBroker int     `json:"closed_by_broker"` // ended by the broker before the hold was over
	RSSBeforeBytes int64   `json:"rss_before_bytes"`
	RSSPeakBytes   int64   `json:"rss_peak_bytes"` // highest VmRSS read while the wave was open
	BytesPerConn   int64   `json:"bytes_per_conn"` // (peak - before) / conns
	// BytesPerConnFromStart is (peak - VmRSS before the first wave) /
	// conns: memory kept from earlier waves counts too.
	BytesPerConnFromStart int64   `json:"bytes_per_conn_from_start"`
	HealthyAttempts       int     `json:"healthy_attempts"`
	HealthyFailed         int     `json:"healthy_failed"`
	HealthyP50us          float64 `json:"healthy_connect_p50_us"` // over the served attempts
	HealthyMaxUS          float64 `json:"healthy_connect_max_us"`
	HealthyError          string  `json:"healthy_error,omitempty"` // the wave's first failed attempt's
}

// runSilent runs -waves waves. Each opens -conns connections, -dialers at
// a time, that send -send (after a CONNECT of their own with
// -silent-connect) and then nothing; holds them for -hold while a healthy
// client connects now and then; and closes them. A connection the broker
// closes is counted, not a failure; a failed dial or CONNECT fails the run.
func runSilent(ctx context.Context, env *benchEnv) (runResult, error) {
	send, err := hex.DecodeString(env.cfg.Send)
	if err != nil {
		return runResult{}, fmt.Errorf("-send: %w", err) // validate checked it
	}
	r := &silentRun{env: env, send: send}
	if r.before, err = env.probe.sample(); err != nil {
		return runResult{}, err
	}
	t0 := env.clock.now()
	for n := 1; n <= env.cfg.Waves; n++ {
		if n > 1 && env.clock.sleepUntil(ctx, env.clock.now()+int64(waveSettle)) != nil {
			return runResult{}, context.Cause(ctx)
		}
		w, err := r.runWave(ctx, n)
		if err != nil {
			return runResult{}, fmt.Errorf("wave %d: %w", n, err)
		}
		r.waves = append(r.waves, w)
	}
	r.elapsed = time.Duration(env.clock.now() - t0)
	if r.after, err = env.probe.sample(); err != nil {
		return runResult{}, err
	}
	return r.result(), nil
}

// runWave opens wave n's connections, holds them and closes them.
func (r *silentRun) runWave(ctx context.Context, n int) (waveResult, error) {
	env, cfg := r.env, r.env.cfg
	res := waveResult{Wave: n, Conns: cfg.Conns}
	var err error
	if res.RSSBeforeBytes, err = env.probe.brokerRSS(); err != nil {
		return res, err
	}
	if n == 1 {
		r.rssStart = res.RSSBeforeBytes
	}
	w := &silentWave{run: r, first: (n - 1) * cfg.Conns, conns: make([]*silentConn, cfg.Conns)}
	stopRSS := env.probe.watchRSS()
	t0 := env.clock.now()
	err = runParallel(ctx, cfg.Conns, cfg.Dialers, w.open)
	res.OpenS = roundTo(time.Duration(env.clock.now()-t0).Seconds(), 3)
	var probes healthyRecord
	if err == nil {
		probes, err = r.hold(ctx, n)
		res.ClosedByBroker = w.closedCount()
	}
	peak, rssErr := stopRSS()
	w.shutdown()
	if err == nil {
		err = rssErr
	}
	if err != nil {
		return res, err
	}
	res.RSSPeakBytes = peak
	conns := int64(cfg.Conns)
	res.BytesPerConn = max(0, peak-res.RSSBeforeBytes) / conns
	res.BytesPerConnFromStart = max(0, peak-r.rssStart) / conns
	res.HealthyAttempts, res.HealthyFailed = probes.attempts, probes.failed
	res.HealthyP50us, res.HealthyMaxUS = probes.served.p50us(), probes.served.maxUS()
	res.HealthyError = probes.firstErr
	r.healthy = append(r.healthy, probes.served...)
	if r.firstErr == "" && probes.firstErr != "" {
		r.firstErr = fmt.Sprintf("wave %d: %s", n, probes.firstErr)
	}
	return res, nil
}

// hold keeps wave n open for -hold while the healthy client connects
// healthyAttempts times, spread over it; it returns once both are over.
func (r *silentRun) hold(ctx context.Context, n int) (healthyRecord, error) {
	env := r.env
	start := env.clock.now()
	rec := runHealthy(ctx, env, start, (n-1)*healthyAttempts)
	if env.clock.sleepUntil(ctx, start+int64(env.cfg.Hold)) != nil {
		return rec, context.Cause(ctx)
	}
	return rec, nil
}

// result computes the run's figures: the worst wave's memory, the totals,
// and the healthy client's latency over every wave.
func (r *silentRun) result() runResult {
	cfg := r.env.cfg
	res := newRunResult(r.env)
	res.Conns = cfg.Conns
	res.Waves = cfg.Waves
	res.Send = cfg.Send
	res.SilentConnect = cfg.SilentConnect
	res.DurationS = roundTo(r.elapsed.Seconds(), 3)
	res.setCPU(r.before, r.after)
	res.rssBefore = r.rssStart
	res.hold = cfg.Hold
	res.WaveResults = r.waves
	for _, w := range r.waves {
		res.BrokerRSSBytes = max(res.BrokerRSSBytes, w.RSSPeakBytes)
		res.BytesPerConn = max(res.BytesPerConn, w.BytesPerConn)
		res.BytesPerConnFromStart = max(res.BytesPerConnFromStart, w.BytesPerConnFromStart)
		res.ClosedByBroker += w.ClosedByBroker
		res.HealthyAttempts += w.HealthyAttempts
		res.HealthyFailed += w.HealthyFailed
	}
	res.HealthyP50us, res.HealthyMaxUS = r.healthy.p50us(), r.healthy.maxUS()
	res.healthyErr = r.firstErr
	res.finish()
	return res
}

// silentWave is the connections of one wave.
type silentWave struct {
	run     *silentRun
	first   int // index of the wave's first connection over the whole run
	conns   []*silentConn
	closing atomic.Bool    // the tool is closing them: read errors are its own doing
	wg      sync.WaitGroup // the readers
}

// silentConn is one connection of a wave.
type silentConn struct {
	nc net.Conn
	r  io.Reader // what its reader reads: nc, or the reader of its CONNECT exchange
	// ended is set when the broker closed the connection (or a write
	// found it closed) before the tool closed it.
	ended atomic.Bool
}

// open opens the wave's i-th connection: it dials, with -silent-connect
// completes CONNECT/CONNACK, writes -send and starts the reader that
// notices when the broker closes the connection.
func (w *silentWave) open(ctx context.Context, i int) error {
	env := w.run.env
	index := w.first + i
	var c *silentConn
	if env.cfg.SilentConnect {
		mc, err := openConn(ctx, env, connSpec{
			role: "silent connection", index: index, clientID: env.clientID('q', index),
			keepAlive: idleKeepAlive, readBuf: idleReadBuf, wsBuf: idleReadBuf,
		})
		if err != nil {
			return err
		}
		c = &silentConn{nc: mc.nc, r: mc.br}
	} else {
		hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
		nc, err := env.dialer.dial(hctx, idleReadBuf)
		cancel()
		if err != nil {
			return fmt.Errorf("silent connection %d: connect to %s: %w", index, env.dialer.addr, err)
		}
		c = &silentConn{nc: nc, r: nc}
	}
	w.conns[i] = c
	if len(w.run.send) > 0 {
		_ = c.nc.SetWriteDeadline(time.Now().Add(handshakeTimeout))
		if _, err := c.nc.Write(w.run.send); err != nil {
			// The broker closed it already, as it may.
			c.ended.Store(true)
		}
		_ = c.nc.SetWriteDeadline(time.Time{})
	}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		w.watch(c)
	}()
	return nil
}

// watch reads c until it fails, discarding what the broker sends (a
// refusing CONNACK, say); a failure before the tool closes the
// connection means the broker closed it.
func (w *silentWave) watch(c *silentConn) {
	var buf [silentReadBuf]byte
	for {
		if _, err := c.r.Read(buf[:]); err != nil {
			if !w.closing.Load() {
				c.ended.Store(true)
			}
			return
		}
	}
}

// closedCount is how many of the wave's connections the broker has closed.
func (w *silentWave) closedCount() int {
	n := 0
	for _, c := range w.conns {
		if c != nil && c.ended.Load() {
			n++
		}
	}
	return n
}

// shutdown closes the wave's connections, without DISCONNECT (a silent
// connection is in the middle of a packet), and waits for their readers.
func (w *silentWave) shutdown() {
	w.closing.Store(true)
	for _, c := range w.conns {
		if c != nil {
			_ = c.nc.Close()
		}
	}
	w.wg.Wait()
}

// latencies are the connect latencies of served healthy attempts.
type latencies []time.Duration

// p50us is the median in microseconds (the lower middle one for an even
// count), 0 for none.
func (l latencies) p50us() float64 {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	return durationUS(s[(len(s)-1)/2])
}

// maxUS is the highest in microseconds, 0 for none.
func (l latencies) maxUS() float64 {
	if len(l) == 0 {
		return 0
	}
	return durationUS(slices.Max(l))
}

// durationUS is d in microseconds, to one decimal.
func durationUS(d time.Duration) float64 {
	return roundTo(float64(d)/float64(time.Microsecond), 1)
}
