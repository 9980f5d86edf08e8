package plugins

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/topics"
	"github.com/vanemq/vanemq/plugins/proto/pluginv1"
)

// Hook is the plugin hook: a core.DynamicHook whose events are those the
// plugin binary described, called over gRPC. Decisions and modifiers are
// synchronous, with the context the broker gives them bounded by the
// timeout, and follow the failure policy when the plugin cannot answer
// (decide.go); notifications go through a bounded queue to one stream
// (observe.go). A supervisor restarts the plugin when it exits or stops
// answering, with a back-off, for as long as the hook runs (see
// supervise.go).
type Hook struct {
	cfg Config
	log *slog.Logger
	srv *core.Server

	name string
	// disp is what the plugin described; a restarted plugin may describe
	// itself anew.
	disp atomic.Pointer[dispatch]

	plog atomic.Pointer[slog.Logger] // the logger named after the plugin
	cur  atomic.Pointer[instance]    // nil while the plugin is not serving
	// state says why the plugin is not serving (restarting, down,
	// stopped); nil while it serves.
	state atomic.Pointer[string]
	queue *eventQueue

	dropped  atomic.Uint64 // events dropped since the last batch
	lost     atomic.Uint64 // events dropped in all
	sent     atomic.Uint64 // events sent
	failures atomic.Int64
	restarts atomic.Int64
	logged   atomic.Int64
	muted    atomic.Int64

	kick      chan restartReq // Restart's requests to the supervisor
	hup       chan os.Signal  // SIGHUP: start a plugin that is not serving at once
	stop      chan struct{}
	stopped   chan struct{}
	closeOnce sync.Once
}

// The hook implements every event and says, with Events, which the plugin
// described.
var _ core.DynamicHook = (*Hook)(nil)

// dispatch is a plugin's description, checked.
type dispatch struct {
	events   core.EventSet
	modes    map[core.Event]pluginv1.Mode
	filters  [64][]string // per event (an EventSet bit); nil: every topic
	allTopic []string     // the union, for Topics
}

// same reports whether two descriptions dispatch alike.
func (d *dispatch) same(o *dispatch) bool {
	return d.events == o.events && slices.Equal(d.allTopic, o.allTopic)
}

// New starts the plugin binary and learns its events. srv, when not nil,
// is the broker the plugin may publish into and disconnect clients of. A
// binary that is missing, not executable, fails its checksum or its
// handshake, or describes itself wrongly is an error naming it.
func New(cfg Config, srv *core.Server) (*Hook, error) {
	if err := cfg.fill(); err != nil {
		return nil, fmt.Errorf("%s: %w", ID, err)
	}
	h := &Hook{cfg: cfg, log: cfg.Logger, srv: srv, queue: newEventQueue(cfg.QueueSize, cfg.BatchSize),
		kick: make(chan restartReq), hup: make(chan os.Signal, 1), stop: make(chan struct{}), stopped: make(chan struct{})}
	h.plog.Store(h.log)
	inst, err := h.launch()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ID, err)
	}
	if err := h.adopt(inst.desc); err != nil {
		inst.close()
		return nil, fmt.Errorf("%s: plugin %s: %w", ID, cfg.Path, err)
	}
	h.cur.Store(inst)
	h.plog.Store(h.log.With("plugin", h.name))
	h.logger().Info("plugin started", "path", cfg.Path, "events", h.describeEvents())
	signal.Notify(h.hup, syscall.SIGHUP)
	go h.supervise(inst)
	return h, nil
}

// adopt takes a description: the events, their modes and topics.
func (h *Hook) adopt(d *pluginv1.Description) error {
	disp, err := describe(d)
	if err != nil {
		return err
	}
	h.name = d.GetName()
	if h.name == "" {
		h.name = h.cfg.Path
	}
	h.disp.Store(disp)
	return nil
}

// describe checks a description and builds its dispatch.
func describe(d *pluginv1.Description) (*dispatch, error) {
	disp := &dispatch{modes: make(map[core.Event]pluginv1.Mode)}
	every := false
	for _, hd := range d.GetHandlers() {
		ev, ok := eventOfWire(hd.GetEvent())
		if !ok {
			return nil, fmt.Errorf("describes unknown event %d", hd.GetEvent())
		}
		mode := hd.GetMode()
		switch {
		case mode != pluginv1.Mode_MODE_DECISION && mode != pluginv1.Mode_MODE_OBSERVER:
			return nil, fmt.Errorf("event %s: mode %d is neither decision nor observer", ev, mode)
		case decisionEvent(ev) && mode != pluginv1.Mode_MODE_DECISION:
			return nil, fmt.Errorf("event %s is a %s; it cannot be observed", ev, ev.Kind())
		case !decisionEvent(ev) && mode != pluginv1.Mode_MODE_OBSERVER:
			return nil, fmt.Errorf("event %s can only be observed", ev)
		case disp.events.Has(ev):
			return nil, fmt.Errorf("event %s described twice", ev)
		}
		for _, f := range hd.GetTopics() {
			if err := topics.ValidateFilter(f); err != nil {
				return nil, fmt.Errorf("event %s: topic filter %q: %w", ev, f, err)
			}
		}
		if len(hd.GetTopics()) > 0 && !ev.HasTopic() {
			return nil, fmt.Errorf("event %s has no topic; it takes no topic filters", ev)
		}
		disp.events |= core.Events(ev)
		disp.modes[ev] = mode
		if ev.HasTopic() {
			if len(hd.GetTopics()) == 0 {
				every = true
			}
			disp.filters[ev] = hd.GetTopics()
			disp.allTopic = append(disp.allTopic, hd.GetTopics()...)
		}
	}
	if disp.events == 0 {
		return nil, errors.New("describes no event")
	}
	if every {
		disp.allTopic = nil
	}
	slices.Sort(disp.allTopic)
	disp.allTopic = slices.Compact(disp.allTopic)
	return disp, nil
}

func (h *Hook) describeEvents() []string {
	var out []string
	for ev, m := range h.disp.Load().modes {
		out = append(out, fmt.Sprintf("%s:%s", ev, map[pluginv1.Mode]string{pluginv1.Mode_MODE_DECISION: "decision", pluginv1.Mode_MODE_OBSERVER: "observer"}[m]))
	}
	slices.Sort(out)
	return out
}

// logger is the hook's logger, with the plugin's name once it is known.
func (h *Hook) logger() *slog.Logger { return h.plog.Load() }

// ID implements core.Hook: "plugin", or "plugin:NAME".
func (h *Hook) ID() string { return h.cfg.Name }

// Events implements core.EventLister: the events the plugin described.
func (h *Hook) Events() core.EventSet { return h.disp.Load().events }

// Topics implements core.TopicFilter: the union of the topic filters the
// plugin described for its message events, nil when one of them has none.
func (h *Hook) Topics() []string { return h.disp.Load().allTopic }

// Failures counts decisions the plugin could not make and events it lost
// (core.FailureCounter).
func (h *Hook) Failures() int64 { return h.failures.Load() + int64(h.lost.Load()) }

// Health reports a plugin that is not serving: restarting, down after
// max_restarts restarts in a row, or stopped (core.HealthChecker).
func (h *Hook) Health() error {
	if why := h.state.Load(); why != nil {
		return errors.New(*why)
	}
	return nil
}

// Restarts counts the restarts tried, whether they succeeded or not
// (core.Restarter).
func (h *Hook) Restarts() int64 { return h.restarts.Load() }

// Stats are the plugin's counters.
type Stats struct {
	Sent, Lost uint64 // observed events sent, and dropped for a full queue
	Failures   int64  // decisions that failed
	Restarts   int64
	Up         bool
	QueueLen   int
}

// Stats returns the plugin's counters.
func (h *Hook) Stats() Stats {
	return Stats{Sent: h.sent.Load(), Lost: h.lost.Load() + h.dropped.Load(), Failures: h.failures.Load(),
		Restarts: h.restarts.Load(), Up: h.cur.Load() != nil, QueueLen: h.queue.len()}
}

// Close stops the plugin. It may be called more than once.
func (h *Hook) Close() error {
	h.closeOnce.Do(func() {
		close(h.stop)
		<-h.stopped
	})
	return nil
}

// wants reports whether the plugin handles ev for topic.
func (h *Hook) wants(ev core.Event, topic string) bool {
	d := h.disp.Load()
	if int(ev) >= len(d.filters) {
		return true
	}
	fs := d.filters[ev]
	if fs == nil {
		return true
	}
	for _, f := range fs {
		if topics.MatchFilter(f, topic) {
			return true
		}
	}
	return false
}
