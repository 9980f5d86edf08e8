package main

import (
	"context"
	"strconv"
	"sync"
	"time"
)

// Settings of the connections of the message scenarios.
const (
	// loadKeepAlive is their keep alive in seconds; the pinger keeps idle
	// ones alive.
	loadKeepAlive = 60
	// subReadBuf is a subscriber's read buffer: deliveries that fit are
	// read in place.
	subReadBuf = 64 << 10
	// pubReadBuf is a publisher's read buffer, for acknowledgements.
	pubReadBuf = 16 << 10
)

// How the drain after the window ends.
const (
	// drainQuiet ends the drain early once no delivery at all arrived for
	// this long: what is missing by then is lost.
	drainQuiet = 500 * time.Millisecond
	// drainPoll is how often the drain looks at the counters.
	drainPoll = 5 * time.Millisecond
)

// msgPlan is the shape of a message scenario: one publisher per list of
// topics (which it rotates over), one subscriber per filter, and how many
// deliveries each message makes.
type msgPlan struct {
	pubTopics  [][]string
	subFilters []string
	fan        int64
}

// planMessages returns the plan of cfg's message scenario, whose flags
// are valid.
func planMessages(cfg *benchConfig) msgPlan {
	numbered := func(prefix string, n int) []string {
		s := make([]string, n)
		for i := range s {
			s[i] = prefix + strconv.Itoa(i)
		}
		return s
	}
	same := func(topic string, n int) []string {
		s := make([]string, n)
		for i := range s {
			s[i] = topic
		}
		return s
	}
	each := func(topics []string) [][]string {
		s := make([][]string, len(topics))
		for i, t := range topics {
			s[i] = []string{t}
		}
		return s
	}
	switch cfg.Scenario {
	case scenarioFanin:
		return msgPlan{pubTopics: each(numbered("bench/fanin/", cfg.Publishers)), subFilters: []string{"bench/fanin/+"}, fan: 1}
	case scenarioFanout:
		topics, _ := cfg.fanoutTopics() // validated
		filter := cfg.Filter
		if filter == "" {
			filter = topics[0]
		}
		return msgPlan{pubTopics: [][]string{topics}, subFilters: same(filter, cfg.Subscribers), fan: int64(cfg.Subscribers)}
	case scenarioPairs:
		topics := numbered("bench/pairs/", cfg.Pairs)
		return msgPlan{pubTopics: each(topics), subFilters: topics, fan: 1}
	default: // latency
		return msgPlan{pubTopics: [][]string{{"bench/latency"}}, subFilters: []string{"bench/latency"}, fan: 1}
	}
}

// msgRun is one run of a message scenario.
type msgRun struct {
	env   *benchEnv
	st    *runState
	plan  msgPlan
	conns []*mqttConn // subscribers, then publishers
	subs  []*subStats
	pubs  []*publisher

	start, end    int64 // the measurement window on env.clock
	sent          int64
	before, after cpuSample // at the window's start and end
	drained       time.Duration
	rss           int64
}

// runMessages runs a fanin, fanout, pairs or latency scenario.
func runMessages(ctx context.Context, env *benchEnv) (runResult, error) {
	plan := planMessages(env.cfg)
	m := &msgRun{
		env:   env,
		st:    newRunState(ctx),
		plan:  plan,
		conns: make([]*mqttConn, len(plan.subFilters)+len(plan.pubTopics)),
		subs:  make([]*subStats, len(plan.subFilters)),
		pubs:  make([]*publisher, len(plan.pubTopics)),
	}
	err := m.setup()
	if err == nil {
		err = m.measure()
	}
	if serr := m.st.shutdown(m.conns, env.cfg.Dialers); err == nil {
		err = serr
	}
	if err != nil {
		return runResult{}, err
	}
	return m.result(), nil
}

// setup connects and subscribes every subscriber, then connects every
// publisher.
func (m *msgRun) setup() error {
	env, cfg := m.env, m.env.cfg
	nsubs := len(m.subs)
	err := runParallel(m.st.ctx, nsubs, cfg.Dialers, func(ctx context.Context, i int) error {
		c, err := openConn(ctx, env, connSpec{
			role: "subscriber", index: i, clientID: env.clientID('s', i), username: cfg.username('s', i), password: cfg.Password,
			keepAlive: loadKeepAlive, readBuf: subReadBuf, sub: true,
		})
		if err != nil {
			return err
		}
		m.conns[i] = c
		return c.subscribe(ctx, m.plan.subFilters[i], cfg.QoS)
	})
	if err != nil {
		return err
	}
	perSec := float64(cfg.rate()) / float64(len(m.pubs))
	return runParallel(m.st.ctx, len(m.pubs), cfg.Dialers, func(ctx context.Context, i int) error {
		c, err := openConn(ctx, env, connSpec{
			role: "publisher", index: i, clientID: env.clientID('p', i), username: cfg.username('p', i), password: cfg.Password,
			keepAlive: loadKeepAlive, readBuf: pubReadBuf,
		})
		if err != nil {
			return err
		}
		m.conns[nsubs+i] = c
		m.pubs[i], err = newPublisher(c, m.plan.pubTopics[i], cfg, perSec)
		return err
	})
}

// measure starts the readers and publishers, takes the CPU samples at the
// window's start and end, drains, and returns the run's failure if it had
// one.
func (m *msgRun) measure() error {
	st, clock, cfg := m.st, m.env.clock, m.env.cfg
	m.start = clock.now() + int64(cfg.Warmup)
	m.end = m.start + int64(cfg.Duration)
	for i := range m.subs {
		m.subs[i] = newSubStats(m.start, m.end)
		m.conns[i].sink = m.subs[i]
	}
	for _, c := range m.conns {
		st.start(c)
	}
	st.pinger(m.conns)

	pctx, cancel := context.WithDeadline(st.ctx, clock.at(m.end))
	defer cancel()
	var pubs sync.WaitGroup
	for _, p := range m.pubs {
		pubs.Add(1)
		st.wg.Add(1)
		go func() {
			defer st.wg.Done()
			defer pubs.Done()
			if err := p.run(pctx, m.start, m.end); err != nil {
				st.fail(err)
			}
		}()
	}
	pubsDone := make(chan struct{})
	go func() {
		pubs.Wait()
		close(pubsDone)
	}()

	if clock.sleepUntil(st.ctx, m.start) != nil {
		return context.Cause(st.ctx)
	}
	var err error
	if m.before, err = m.env.probe.sample(); err != nil {
		return err
	}
	if clock.sleepUntil(st.ctx, m.end) != nil {
		return context.Cause(st.ctx)
	}
	if m.after, err = m.env.probe.sample(); err != nil {
		return err
	}
	select {
	case <-pubsDone:
	case <-st.ctx.Done():
		return context.Cause(st.ctx)
	}
	for _, p := range m.pubs {
		m.sent += p.sent
	}
	drainStart := clock.now()
	if err := m.drain(m.sent * m.plan.fan); err != nil {
		return err
	}
	m.drained = time.Duration(clock.now() - drainStart)
	if m.rss, err = m.env.probe.brokerRSS(); err != nil {
		return err
	}
	return st.err()
}

// drain waits until the subscribers received the expected deliveries, no
// delivery arrived for drainQuiet, or -drain passed.
func (m *msgRun) drain(expected int64) error {
	clock := m.env.clock
	deadline := clock.now() + int64(m.env.cfg.Drain)
	t := time.NewTicker(drainPoll)
	defer t.Stop()
	lastArrivals, lastChange := int64(-1), clock.now()
	for {
		var received, arrivals int64
		for _, s := range m.subs {
			received += s.received.Load()
			arrivals += s.arrivals.Load()
		}
		now := clock.now()
		switch {
		case received >= expected, now >= deadline:
			return nil
		case arrivals != lastArrivals:
			lastArrivals, lastChange = arrivals, now
		case now-lastChange >= int64(drainQuiet):
			return nil
		}
		select {
		case <-t.C:
		case <-m.st.ctx.Done():
			return context.Cause(m.st.ctx)
		}
	}
}

// result computes the run's figures. Call it after the readers ended.
func (m *msgRun) result() runResult {
	cfg := m.env.cfg
	hist := newLatencyHist()
	var received, arrived int64
	for _, s := range m.subs {
		received += s.stamped
		arrived += s.arrived
		hist.merge(s.hist)
	}
	r := newRunResult(m.env)
	if cfg.Scenario == scenarioPairs {
		r.Pairs = cfg.Pairs
	}
	r.Publishers, r.Subscribers = len(m.pubs), len(m.subs)
	for _, ts := range m.plan.pubTopics {
		r.Topics += len(ts)
	}
	if cfg.Scenario == scenarioFanout {
		r.Filter = m.plan.subFilters[0]
	}
	r.fan = m.plan.fan
	r.DurationS = cfg.Duration.Seconds()
	r.Sent, r.Expected, r.Received = m.sent, m.sent*m.plan.fan, received
	r.arrived = arrived
	r.setCPU(m.before, m.after)
	r.setLatency(hist)
	r.BrokerRSSBytes = m.rss
	r.drained = m.drained
	r.finish()
	return r
}
