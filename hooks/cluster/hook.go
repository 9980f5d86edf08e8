package cluster

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vanemq/vanemq/core"
)

func init() {
	core.RegisterHookModule(core.Module(ID, Config{}, func(hc core.HookConfig, c Config) (core.Hook, error) {
		c.resolve(hc.Dir)
		return New(hc.ID, c, hc.Server, hc.Logger)
	}))
}

// Hook is a node's membership of a cluster: its NATS connection, the
// subscriptions that carry its interest, its route table, and the
// goroutines that apply interest changes, receive other nodes' messages
// and confirm hand-offs.
type Hook struct {
	id       string
	cfg      Config
	srv      *core.Server
	log      *slog.Logger
	instance uint64 // this process, in envelopes: a restarted node is a new instance
	msgSubj  string // cfg.Prefix + ".m": QoS 0 messages, by topic
	nodeSubj string // cfg.Prefix + ".n": QoS 0 messages for share groups, by node
	sessSubj string // cfg.Prefix + ".sess": requests to let a session go, by node
	names    streamNames
	seq      atomic.Uint64
	routes   *routes
	reg      registry
	mv       moves // sessions moving in and out (moves.go)
	// routeMu keeps the routing of each inbox message apart from a
	// session's release (releaseHeld), and guards recv.
	routeMu sync.Mutex
	recv    *receiver
	since   time.Time // when the hook was made: the node's process joined
	// lastTick is when the watchdog last ran, as time since since
	// (monotonic: a stopped process's clock runs on); stallSeen is set
	// when it found the process had been stopped, until the node is
	// fenced. fenceMu makes one fence of a stall.
	lastTick  atomic.Int64
	stallSeen atomic.Bool
	fenceMu   sync.Mutex
	scratch   sync.Pool // *forwardScratch

	// nc is the NATS connection, nil before OnStarted and after Close;
	// up says whether it is connected (kept by its handlers, read on every
	// publish instead of the connection's lock).
	nc atomic.Pointer[nats.Conn]
	up atomic.Bool
	// js is the JetStream session, nil until it is set up.
	js atomic.Pointer[jsState]
	// inboxSeq is the stream sequence of the last inbox message routed.
	inboxSeq atomic.Uint64
	// rewatch, while the watches run, ends them so that they start over.
	rewatch atomic.Pointer[context.CancelFunc]
	// retainedLoaded is set once the session's mirror of the retained
	// messages has read the bucket.
	retainedLoaded atomic.Bool
	// consumerLost is set when the node's inbox consumer was deleted
	// under it: the JetStream session starts over.
	consumerLost atomic.Bool

	// pendMu guards the interest changes not yet applied.
	pendMu  sync.Mutex
	pending map[interestKey]core.Interest
	// flushWaiters, under pendMu, are closed once the changes pending when
	// each was added are applied (flushInterest).
	flushWaiters []chan struct{}
	// resync asks the interest loop to write the whole route table entry
	// set of the node again (a new JetStream session, NATS back, a write
	// that failed).
	resync atomic.Bool

	// mu guards the applied interest (local, subs) and cancel.
	mu     sync.Mutex
	local  map[interestKey]byte // QoS
	subs   map[interestKey][]*nats.Subscription
	cancel context.CancelFunc

	// life is the context of the running hook (OnStarted to Close), under
	// mu.
	life context.Context

	// adoptMu guards the adoptions of dead nodes running here (adopting:
	// each one's result, for its waiters) and when to try again one that
	// failed (adoptRetry).
	adoptMu    sync.Mutex
	adopting   map[string]chan error
	adoptRetry map[string]time.Time

	// endMu guards the sessions that ended here, for endSessions.
	endMu   sync.Mutex
	ended   []string
	settled []settledWill     // whose wills were settled, for settleWills
	willGen map[string]uint64 // claims here by client ID (ownerRecord.WillGen)

	// hoMu guards the hand-offs waiting for JetStream.
	hoMu     sync.Mutex
	handoffs []handoff

	wakeInterest chan struct{}
	wakeAcks     chan struct{}
	wakeEnded    chan struct{}
	msgs         chan *nats.Msg
	inbox        chan jetstream.Msg
	wg           sync.WaitGroup

	stats counters
}

// interestKey identifies one distinct subscription of the node.
type interestKey struct{ group, filter string }

// counters are the hook's metrics.
type counters struct {
	forwarded, received, delivered atomic.Int64
	duplicates                     atomic.Int64 // copies of a message already routed
	unrouted, dropped, bad         atomic.Int64
	handoffFailures                atomic.Int64
	// Sessions: claimed without JetStream, adopted from and released to
	// other nodes, moved without their state (the holder did not answer),
	// let go when the node found it had been stopped.
	// takeoverBusy counts claims refused because the holder kept the
	// session (it could not let it go in time).
	unclaimed, adopted, released, takeoverLost, fenced, takeoverBusy atomic.Int64
	// adoptedDead counts the sessions adopted from nodes that died.
	adoptedDead atomic.Int64
	// passedOn counts the messages passed on to the nodes sessions moved
	// to; lostPassedOn those that never found their session (moves.go).
	passedOn, lostPassedOn atomic.Int64
}

// What the hook implements.
var (
	_ core.ClusterHook   = (*Hook)(nil)
	_ core.StartedHook   = (*Hook)(nil)
	_ core.StoppedHook   = (*Hook)(nil)
	_ core.HealthChecker = (*Hook)(nil)
	_ io.Closer          = (*Hook)(nil)
)

// maxSubject is the longest subject the node publishes or subscribes to:
// NATS's default max_control_line is 4096 bytes, and a control line holds
// the subject, a reply subject and sizes besides.
const maxSubject = 3800

// msgBuffer is how many messages from other nodes wait to be routed
// here; beyond it NATS reports this node a slow consumer and drops them
// (counted).
const msgBuffer = 1 << 16

// inboxBuffer is how many inbox messages wait to be routed here before
// the node stops taking more from JetStream.
const inboxBuffer = 1024

// New checks cfg and makes the hook for srv; it connects to NATS when srv
// starts (OnStarted). id is the hook's ID ("cluster"). An error names the
// key at fault.
func New(id string, cfg Config, srv *core.Server, log *slog.Logger) (*Hook, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := cfg.check(); err != nil {
		return nil, fmt.Errorf("%s: %w", ID, err)
	}
	if srv == nil {
		return nil, fmt.Errorf("%s: needs the server it joins to the cluster", ID)
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	return &Hook{
		id: id, cfg: cfg, srv: srv, log: log.With("node", cfg.Node),
		instance:     binary.BigEndian.Uint64(b[:]),
		msgSubj:      cfg.Prefix + ".m",
		nodeSubj:     cfg.Prefix + ".n",
		sessSubj:     cfg.Prefix + ".sess",
		names:        names(cfg.Prefix),
		routes:       newRoutes(cfg.Node),
		mv:           newMoves(),
		reg:          registry{nodes: make(map[string]seenNode)},
		since:        time.Now(),
		scratch:      sync.Pool{New: func() any { return new(forwardScratch) }},
		pending:      make(map[interestKey]core.Interest),
		adopting:     make(map[string]chan error),
		willGen:      make(map[string]uint64),
		adoptRetry:   make(map[string]time.Time),
		local:        make(map[interestKey]byte),
		subs:         make(map[interestKey][]*nats.Subscription),
		wakeInterest: make(chan struct{}, 1),
		wakeAcks:     make(chan struct{}, 1),
		wakeEnded:    make(chan struct{}, 1),
		msgs:         make(chan *nats.Msg, msgBuffer),
		inbox:        make(chan jetstream.Msg, inboxBuffer),
	}, nil
}

// ID implements core.Hook.
func (h *Hook) ID() string { return h.id }

// Node returns the node's name in the cluster.
func (h *Hook) Node() string { return h.cfg.Node }

// OnStarted implements core.StartedHook: the node connects to NATS (and
// goes on trying in the background while it cannot), subscribes for the
// interest it has, and starts routing.
func (h *Hook) OnStarted(context.Context) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cancel != nil {
		return
	}
	opts := append(h.cfg.natsOptions(),
		nats.ConnectHandler(func(*nats.Conn) {
			h.up.Store(true)
			h.log.Info("cluster: connected to NATS")
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			h.up.Store(true)
			h.log.Info("cluster: connected to NATS again", "server", nc.ConnectedUrlRedacted())
			h.resync.Store(true)
			h.signal(h.wakeInterest)
			if f := h.rewatch.Load(); f != nil {
				(*f)()
			}
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			h.up.Store(false)
			if err == nil {
				return // closed by Close
			}
			h.log.Warn("cluster: lost NATS; serving local clients only until it is back", "cause", err)
		}),
		nats.ErrorHandler(h.asyncError),
	)
	nc, err := nats.Connect(strings.Join(h.cfg.URLs, ","), opts...)
	if err != nil {
		// With RetryOnFailedConnect only a bad option fails here.
		h.log.Error("cluster: cannot connect to NATS", "cause", err)
		return
	}
	h.nc.Store(nc)
	if nc.IsConnected() {
		h.up.Store(true)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.life = cancel, ctx
	if _, err := nc.ChanSubscribe(h.nodeSubj+"."+h.cfg.Node, h.msgs); err != nil {
		h.log.Error("cluster: cannot subscribe in NATS; other nodes' QoS 0 messages for share groups will not arrive", "cause", err)
	}
	if _, err := h.serveReleases(nc); err != nil {
		h.log.Error("cluster: cannot subscribe in NATS; sessions here cannot move to other nodes", "cause", err)
	}
	h.wg.Add(6)
	go h.watchdog(ctx)
	go h.runOnWake(ctx, h.wakeEnded, func() { h.settleWills(); h.endSessions() })
	go h.runOnWake(ctx, h.wakeInterest, h.applyInterest)
	go h.receiveLoop(ctx)
	go h.runOnWake(ctx, h.wakeAcks, h.confirmHandoffs)
	go h.runJetStream(ctx, nc)
	h.signal(h.wakeInterest)
}

// runJetStream sets up the node's JetStream session (inbox, route table)
// and keeps its route table watched, starting over after a failure, until
// ctx ends.
func (h *Hook) runJetStream(ctx context.Context, nc *nats.Conn) {
	defer h.wg.Done()
	for {
		err := h.jetStreamSession(ctx, nc)
		if ctx.Err() != nil {
			return
		}
		h.log.Warn("cluster: JetStream unavailable; QoS 1/2 messages are not handed to other nodes until it is back", "cause", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(h.cfg.ReconnectWait):
		}
	}
}

// jetStreamSession is one JetStream session: it returns when the route
// table's watch fails or ctx ends.
func (h *Hook) jetStreamSession(ctx context.Context, nc *nats.Conn) error {
	octx, cancel := context.WithTimeout(ctx, h.cfg.ConnectTimeout)
	st, err := h.openJetStream(octx, ctx, nc)
	cancel()
	if err != nil {
		return err
	}
	defer func() {
		h.js.Store(nil)
		h.routes.loaded.Store(false)
		h.retainedLoaded.Store(false)
		st.consume.Stop()
	}()
	h.js.Store(st)
	h.resync.Store(true)
	h.signal(h.wakeInterest)
	rctx, rcancel := context.WithTimeout(ctx, 4*h.cfg.ConnectTimeout)
	h.nameStore(rctx, st)
	if n := h.reconcileSessions(rctx, true); n > 0 {
		h.log.Warn("cluster: sessions this node kept were claimed by other nodes meanwhile; let go", "released", n)
	}
	rcancel()

	var beating sync.WaitGroup
	beating.Add(1)
	go func() {
		defer beating.Done()
		h.beat(ctx, st.nodes)
	}()
	defer beating.Wait()
	for {
		err := h.watch(ctx, st)
		if ctx.Err() != nil {
			h.leave(nc, st.nodes) // the node stops
			return nil
		}
		if h.consumerLost.Swap(false) {
			return errors.New("cluster: the inbox consumer was deleted")
		}
		if err != nil {
			h.log.Warn("cluster: lost a watch of the cluster's state; watching again", "cause", err)
		}
		select {
		case <-ctx.Done():
			h.leave(nc, st.nodes)
			return nil
		case <-time.After(h.cfg.ReconnectWait / 4):
		}
	}
}

// watch follows the route table, the node registry and the retained
// messages until one of the watches fails, ctx ends, or NATS comes back
// after losing it (rewatch): a watch may not outlive its server's
// restart, so each starts over from the buckets' contents then.
func (h *Hook) watch(ctx context.Context, st *jsState) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	h.rewatch.Store(&cancel)
	defer h.rewatch.Store(nil)
	errs := make(chan error, 3)
	for _, w := range []func(context.Context) error{
		func(c context.Context) error { return h.watchRoutes(c, st.routes) },
		func(c context.Context) error { return h.watchNodes(c, st.nodes) },
		func(c context.Context) error { return h.watchRetained(c, st.retained) },
	} {
		go func() { errs <- w(wctx) }()
	}
	var first error
	for range 3 {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
		cancel() // one ended: all start over
	}
	return first
}

// OnStopped implements core.StoppedHook: see Close.
func (h *Hook) OnStopped(context.Context) { _ = h.Close() }

// Close stops routing and closes the NATS connection, after what was
// published is flushed. It may be called more than once.
func (h *Hook) Close() error {
	h.mu.Lock()
	cancel := h.cancel
	h.cancel = nil
	nc := h.nc.Swap(nil)
	h.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	if !nc.IsConnected() {
		// Nothing to say goodbye to: closing now ends the requests the
		// loops wait on (a watch's unsubscribe, say) at once.
		nc.Close()
	}
	h.wg.Wait()
	if nc.IsConnected() {
		_ = nc.FlushTimeout(time.Second)
	}
	nc.Close()
	h.mu.Lock()
	clear(h.subs)
	h.mu.Unlock()
	h.hoMu.Lock()
	list := h.handoffs
	h.handoffs = nil
	h.hoMu.Unlock()
	for _, ho := range list {
		ho.done(errors.New("cluster: stopped"))
	}
	return nil
}

// Health implements core.HealthChecker: the node is ready while it is
// connected to NATS, with JetStream set up and the route table read.
func (h *Hook) Health() error {
	nc := h.nc.Load()
	if nc == nil {
		return errors.New("cluster: not connected to NATS (not started)")
	}
	if !nc.IsConnected() {
		return fmt.Errorf("cluster: not connected to NATS (%s)", nc.Status())
	}
	if !h.jetStreamReady() {
		return errors.New("cluster: JetStream not set up (inbox, route table, retained messages)")
	}
	return nil
}

// asyncError logs what NATS reports outside any call: chiefly a slow
// consumer, messages from other nodes dropped because this node's buffer
// was full.
func (h *Hook) asyncError(_ *nats.Conn, sub *nats.Subscription, err error) {
	if errors.Is(err, nats.ErrSlowConsumer) {
		if n := h.stats.dropped.Add(1); worthLogging(n) {
			h.log.Warn("cluster: messages from other nodes dropped: this node routes them more slowly than they come", "dropped", n)
		}
		return
	}
	h.log.Warn("cluster: NATS error", "cause", err)
}

// jetStreamReady reports whether the node's JetStream state is set up:
// its session open, the route table and the retained messages read.
func (h *Hook) jetStreamReady() bool {
	return h.js.Load() != nil && h.routes.loaded.Load() && h.retainedLoaded.Load()
}

// connected reports whether the node is connected to NATS now.
func (h *Hook) connected() bool {
	return h.nc.Load() != nil && h.up.Load()
}

// signal wakes a loop without blocking.
func (h *Hook) signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// subject is the NATS subject of messages on topic.
func (h *Hook) subject(topic string) string {
	b := make([]byte, 0, len(h.msgSubj)+1+2*len(topic))
	b = append(append(b, h.msgSubj...), '.')
	return string(AppendTopic(b, topic))
}

// worthLogging says which of a count's increments are logged: the first,
// then every thousandth, so that a flood of one problem is seen without
// flooding the log.
func worthLogging(n int64) bool { return n == 1 || n%1000 == 0 }

// runOnWake calls fn each time wake is signalled, until ctx ends.
func (h *Hook) runOnWake(ctx context.Context, wake <-chan struct{}, fn func()) {
	defer h.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case <-wake:
		}
		fn()
	}
}
