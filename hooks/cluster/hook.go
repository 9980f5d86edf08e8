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
	"github.com/valyala/bytebufferpool"

	"github.com/vanemq/vanemq/core"
)

func init() {
	core.RegisterHookModule(core.Module(ID, Config{}, func(hc core.HookConfig, c Config) (core.Hook, error) {
		return New(hc.ID, c, hc.Server, hc.Logger)
	}))
}

// Hook is a node's membership of a cluster: its NATS connection, the
// subscriptions that carry its interest, and the goroutines that apply
// interest changes, receive other nodes' messages and confirm hand-offs.
type Hook struct {
	id       string
	cfg      Config
	srv      *core.Server
	log      *slog.Logger
	instance uint64 // this process, in envelopes: a restarted node is a new instance
	msgSubj  string // cfg.Prefix + ".m"
	seq      atomic.Uint64

	// nc is the NATS connection, nil before OnStarted and after Close.
	nc atomic.Pointer[nats.Conn]
	// mu guards the interest not yet applied, the subscriptions, the
	// hand-offs waiting for a flush, and cancel.
	mu      sync.Mutex
	pending map[interestKey]core.Interest
	subs    map[interestKey][]*nats.Subscription
	acks    []func(error)
	cancel  context.CancelFunc

	bySub sync.Map // *nats.Subscription -> interestKey, for the receiver

	wakeInterest chan struct{}
	wakeAcks     chan struct{}
	msgs         chan *nats.Msg
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
		pending:      make(map[interestKey]core.Interest),
		subs:         make(map[interestKey][]*nats.Subscription),
		wakeInterest: make(chan struct{}, 1),
		wakeAcks:     make(chan struct{}, 1),
		msgs:         make(chan *nats.Msg, msgBuffer),
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
		nats.ConnectHandler(func(*nats.Conn) { h.log.Info("cluster: connected to NATS") }),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			h.log.Info("cluster: connected to NATS again", "server", nc.ConnectedUrlRedacted())
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
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
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.wg.Add(3)
	go h.runOnWake(ctx, h.wakeInterest, h.applyInterest)
	go h.receiveLoop(ctx)
	go h.runOnWake(ctx, h.wakeAcks, h.confirmAcks)
	h.signal(h.wakeInterest)
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
	h.wg.Wait()
	if nc.IsConnected() {
		_ = nc.FlushTimeout(time.Second)
	}
	nc.Close()
	h.mu.Lock()
	acks := h.acks
	h.acks = nil
	clear(h.subs)
	h.mu.Unlock()
	for _, done := range acks {
		done(errors.New("cluster: stopped"))
	}
	return nil
}

// Health implements core.HealthChecker: the node is ready while it is
// connected to NATS.
func (h *Hook) Health() error {
	nc := h.nc.Load()
	if nc == nil {
		return errors.New("cluster: not connected to NATS (not started)")
	}
	if !nc.IsConnected() {
		return fmt.Errorf("cluster: not connected to NATS (%s)", nc.Status())
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

// signal wakes a loop without blocking.
func (h *Hook) signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Forward implements core.ClusterHook: the message is published on the
// subject of its topic, which reaches every node with interest. A QoS 1/2
// hand-off is confirmed once NATS has it (a flush). While NATS is
// unreachable messages reach local subscribers only (counted as
// unrouted).
func (h *Hook) Forward(f *core.Forwarded, done func(error)) {
	if !h.publish(f) {
		if done != nil {
			done(nil)
		}
		return
	}
	h.stats.forwarded.Add(1)
	if done != nil {
		h.mu.Lock()
		h.acks = append(h.acks, done)
		h.mu.Unlock()
		h.signal(h.wakeAcks)
	}
}

// publish publishes f in its envelope on its topic's subject and reports
// whether it did; a message it cannot publish is counted as unrouted,
// except one that expired on the way, which needs no hand-off.
func (h *Hook) publish(f *core.Forwarded) bool {
	nc := h.nc.Load()
	if nc == nil || !nc.IsConnected() {
		h.stats.unrouted.Add(1)
		return false
	}
	subj := h.subject(f.Topic())
	if len(subj) > maxSubject {
		// NATS closes a connection whose control line (subject and
		// sizes) is longer than 4096 bytes: such a topic stays here.
		if n := h.stats.unrouted.Add(1); worthLogging(n) {
			h.log.Warn("cluster: a topic too long for a NATS subject stays on this node", "topic_bytes", len(f.Topic()), "subject_bytes", len(subj), "unrouted", n)
		}
		return false
	}
	buf := bytebufferpool.Get()
	defer bytebufferpool.Put(buf)
	buf.B = appendEnvelopeHeader(buf.B[:0], h.instance, h.seq.Add(1), f.Origin())
	if err := f.Encode(buf); err != nil {
		return false // expired on the way: nothing to hand off
	}
	if err := nc.Publish(subj, buf.B); err != nil {
		h.stats.unrouted.Add(1)
		return false
	}
	return true
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

// confirmAcks confirms hand-offs: each round (a wake-up of wakeAcks) flushes
// the connection once for all the hand-offs waiting.
func (h *Hook) confirmAcks() {
	h.mu.Lock()
	acks := h.acks
	h.acks = nil
	h.mu.Unlock()
	if len(acks) == 0 {
		return
	}
	var err error
	if nc := h.nc.Load(); nc != nil {
		err = nc.FlushTimeout(h.cfg.ConnectTimeout)
	}
	if err != nil {
		// Published into the connection's buffer but not confirmed:
		// local subscribers have it; the publisher is answered.
		h.stats.unrouted.Add(int64(len(acks)))
	}
	for _, done := range acks {
		done(nil)
	}
}
