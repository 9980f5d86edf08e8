package plugins

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/packets"
	"github.com/vanemq/vanemq/core/topics"
	"github.com/vanemq/vanemq/plugins/proto/pluginv1"
)

// Hook is the plugin hook: a core.Hook whose events are those the plugin
// binary described, called over gRPC. Decisions are synchronous, bounded
// by the timeout, and follow the failure policy when the plugin cannot
// answer; observed events go through a bounded queue to one stream. A
// supervisor restarts the plugin when it exits or stops answering, with a
// back-off, for as long as the hook runs (see supervise.go).
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

// eventOf maps the wire's events to the pipeline's.
var eventOf = map[pluginv1.Event]core.Event{
	pluginv1.Event_EVENT_AUTHENTICATE:        core.EventAuthenticate,
	pluginv1.Event_EVENT_AUTHORIZE_PUBLISH:   core.EventAuthorizePublish,
	pluginv1.Event_EVENT_AUTHORIZE_SUBSCRIBE: core.EventAuthorizeSubscribe,
	pluginv1.Event_EVENT_CONNECT:             core.EventConnect,
	pluginv1.Event_EVENT_PUBLISH:             core.EventPublish,
	pluginv1.Event_EVENT_SESSION:             core.EventSession,
	pluginv1.Event_EVENT_DISCONNECTED:        core.EventDisconnected,
	pluginv1.Event_EVENT_SUBSCRIBED:          core.EventSubscribed,
	pluginv1.Event_EVENT_UNSUBSCRIBED:        core.EventUnsubscribed,
	pluginv1.Event_EVENT_PUBLISHED:           core.EventPublished,
	pluginv1.Event_EVENT_DROPPED:             core.EventDropped,
	pluginv1.Event_EVENT_ACKED:               core.EventAcked,
	pluginv1.Event_EVENT_RETAINED:            core.EventRetained,
}

// decisions are the events a plugin handles as a decision; the others it
// can only observe.
var decisions = core.Events(core.EventAuthenticate, core.EventAuthorizePublish, core.EventAuthorizeSubscribe,
	core.EventConnect, core.EventPublish)

// messageEvents are the events with a topic.
var messageEvents = core.Events(core.EventAuthorizePublish, core.EventPublish, core.EventPublished,
	core.EventDropped, core.EventAcked, core.EventRetained)

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
		ev, ok := eventOf[hd.GetEvent()]
		if !ok {
			return nil, fmt.Errorf("describes unknown event %d", hd.GetEvent())
		}
		mode := hd.GetMode()
		switch {
		case mode != pluginv1.Mode_MODE_DECISION && mode != pluginv1.Mode_MODE_OBSERVER:
			return nil, fmt.Errorf("event %s: mode %d is neither decision nor observer", ev, mode)
		case decisions.Has(ev) && mode != pluginv1.Mode_MODE_DECISION:
			return nil, fmt.Errorf("event %s is a decision; it cannot be observed", ev)
		case !decisions.Has(ev) && mode != pluginv1.Mode_MODE_OBSERVER:
			return nil, fmt.Errorf("event %s can only be observed", ev)
		case disp.events.Has(ev):
			return nil, fmt.Errorf("event %s described twice", ev)
		}
		for _, f := range hd.GetTopics() {
			if err := topics.ValidateFilter(f); err != nil {
				return nil, fmt.Errorf("event %s: topic filter %q: %w", ev, f, err)
			}
		}
		if len(hd.GetTopics()) > 0 && !messageEvents.Has(ev) {
			return nil, fmt.Errorf("event %s has no topic; it takes no topic filters", ev)
		}
		disp.events |= core.Events(ev)
		disp.modes[ev] = mode
		if messageEvents.Has(ev) {
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

// Events implements core.Hook: what the plugin described, and Stopped.
func (h *Hook) Events() core.EventSet { return h.disp.Load().events }

// Topics implements core.Hook.
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

// failed counts and logs (at most a line a second) a decision the plugin
// could not make, and returns the policy's verdict.
func (h *Hook) failed(ev core.Event, client string, err error) core.Verdict {
	h.failures.Add(1)
	now := time.Now().UnixNano()
	last := h.logged.Load()
	if now-last >= int64(time.Second) && h.logged.CompareAndSwap(last, now) {
		h.logger().Error("plugin call failed", "event", ev.String(), "client", client, "cause", err,
			"policy", h.cfg.OnFailure, "unlogged_failures", h.muted.Swap(0))
	} else {
		h.muted.Add(1)
	}
	return h.cfg.policyVerdict()
}

var errDown = errors.New("the plugin is not running")

// decide makes one decision call with the timeout.
func (h *Hook) decide(ev core.Event, client string, call func(ctx context.Context, c pluginv1.PluginClient) (core.Verdict, error)) core.Verdict {
	inst := h.cur.Load()
	if inst == nil {
		return h.failed(ev, client, errDown)
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.Timeout)
	defer cancel()
	v, err := call(ctx, inst.rpc.Plugin)
	if err != nil {
		return h.failed(ev, client, err)
	}
	return v
}

// verdict checks a plugin's verdict.
func verdict(v *pluginv1.Verdict, err error) (core.Verdict, error) {
	if err != nil {
		return core.Verdict{}, err
	}
	cv, ok := verdictOf(v)
	if !ok {
		return core.Verdict{}, fmt.Errorf("invalid verdict: decision %d, code %#x", v.GetDecision(), v.GetCode())
	}
	return cv, nil
}

// Authenticate implements core.Hook.
func (h *Hook) Authenticate(_ context.Context, cl *core.ClientInfo, cred *core.Credentials) core.Verdict {
	return h.decide(core.EventAuthenticate, cl.ID, func(ctx context.Context, c pluginv1.PluginClient) (core.Verdict, error) {
		return verdict(c.Authenticate(ctx, &pluginv1.AuthenticateRequest{Client: clientProto(cl), Credentials: &pluginv1.Credentials{
			Username: cred.Username, UsernameSet: cred.UsernameSet, Password: cred.Password, PasswordSet: cred.PasswordSet,
			AuthMethod: cred.AuthMethod, AuthData: cred.AuthData}}))
	})
}

// AuthorizePublish implements core.Hook.
func (h *Hook) AuthorizePublish(_ context.Context, cl *core.ClientInfo, m *core.Message) core.Verdict {
	if !h.wants(core.EventAuthorizePublish, m.Topic) {
		return core.Next
	}
	return h.decide(core.EventAuthorizePublish, cl.ID, func(ctx context.Context, c pluginv1.PluginClient) (core.Verdict, error) {
		return verdict(c.AuthorizePublish(ctx, &pluginv1.MessageRequest{Client: clientProto(cl), Message: messageProto(m)}))
	})
}

// AuthorizeSubscribe implements core.Hook.
func (h *Hook) AuthorizeSubscribe(_ context.Context, cl *core.ClientInfo, filter string, qos *byte) core.Verdict {
	return h.decide(core.EventAuthorizeSubscribe, cl.ID, func(ctx context.Context, c pluginv1.PluginClient) (core.Verdict, error) {
		r, err := c.AuthorizeSubscribe(ctx, &pluginv1.SubscribeRequest{Client: clientProto(cl), Filter: filter, Qos: uint32(*qos)})
		if err != nil {
			return core.Verdict{}, err
		}
		v, err := verdict(r.GetVerdict(), nil)
		if err != nil {
			return v, err
		}
		if r.Qos != nil {
			if r.GetQos() > 2 {
				return core.Verdict{}, fmt.Errorf("invalid QoS %d", r.GetQos())
			}
			*qos = min(*qos, byte(r.GetQos()))
		}
		return v, nil
	})
}

// Connect implements core.Hook.
func (h *Hook) Connect(_ context.Context, cl *core.ClientInfo, _ *core.ClientPolicy) core.Verdict {
	return h.decide(core.EventConnect, cl.ID, func(ctx context.Context, c pluginv1.PluginClient) (core.Verdict, error) {
		return verdict(c.Connect(ctx, &pluginv1.ClientRequest{Client: clientProto(cl)}))
	})
}

// Publish implements core.Hook: the plugin may change or drop the message.
func (h *Hook) Publish(_ context.Context, cl *core.ClientInfo, m *core.Message) core.Verdict {
	if !h.wants(core.EventPublish, m.Topic) {
		return core.Next
	}
	return h.decide(core.EventPublish, cl.ID, func(ctx context.Context, c pluginv1.PluginClient) (core.Verdict, error) {
		r, err := c.Publish(ctx, &pluginv1.MessageRequest{Client: clientProto(cl), Message: messageProto(m)})
		if err != nil {
			return core.Verdict{}, err
		}
		v, err := verdict(r.GetVerdict(), nil)
		if err != nil || v.Decision == core.DecisionDeny {
			return v, err
		}
		if nm := r.GetMessage(); nm != nil {
			if nm.GetQos() > 2 {
				return core.Verdict{}, fmt.Errorf("invalid QoS %d", nm.GetQos())
			}
			m.Topic, m.Payload, m.QoS, m.Retain = nm.GetTopic(), nm.GetPayload(), byte(nm.GetQos()), nm.GetRetain()
			m.Properties = propertiesOf(nm.GetProperties())
		}
		return core.Next, nil
	})
}

// observe queues an observed event, or drops and counts it when the queue
// is full: a slow plugin never holds up the broker.
func (h *Hook) observe(e *observed) {
	if e.msg != nil && !e.msg.Received.IsZero() {
		e.nanos = e.msg.Received.UnixNano() // the same instant, without reading the clock again
	} else {
		e.nanos = time.Now().UnixNano()
	}
	if !h.queue.push(e) {
		h.dropped.Add(1)
	}
}

// OnSession implements core.Hook.
func (h *Hook) OnSession(_ context.Context, cl *core.ClientInfo, change core.SessionChange) {
	h.observe(&observed{event: pluginv1.Event_EVENT_SESSION, client: cl, reason: sessionChange(change)})
}

// OnDisconnected implements core.Hook.
func (h *Hook) OnDisconnected(_ context.Context, cl *core.ClientInfo, reason packets.ReasonCode, err error) {
	e := observed{event: pluginv1.Event_EVENT_DISCONNECTED, client: cl, code: uint32(reason), reason: reason.String()}
	if err != nil {
		e.reason += ": " + err.Error()
	}
	h.observe(&e)
}

// OnSubscribed implements core.Hook.
func (h *Hook) OnSubscribed(_ context.Context, cl *core.ClientInfo, filter string, qos byte) {
	h.observe(&observed{event: pluginv1.Event_EVENT_SUBSCRIBED, client: cl, filter: filter, qos: uint32(qos)})
}

// OnUnsubscribed implements core.Hook.
func (h *Hook) OnUnsubscribed(_ context.Context, cl *core.ClientInfo, filter string) {
	h.observe(&observed{event: pluginv1.Event_EVENT_UNSUBSCRIBED, client: cl, filter: filter})
}

// OnPublished implements core.Hook.
func (h *Hook) OnPublished(_ context.Context, cl *core.ClientInfo, m *core.Message) {
	if h.wants(core.EventPublished, m.Topic) {
		h.observe(&observed{event: pluginv1.Event_EVENT_PUBLISHED, client: cl, msg: m})
	}
}

// OnDropped implements core.Hook.
func (h *Hook) OnDropped(_ context.Context, clientID string, m *core.Message, why string) {
	if h.wants(core.EventDropped, m.Topic) {
		h.observe(&observed{event: pluginv1.Event_EVENT_DROPPED, clientID: clientID, msg: m, reason: why})
	}
}

// OnAcked implements core.Hook.
func (h *Hook) OnAcked(_ context.Context, clientID string, m *core.Message) {
	if h.wants(core.EventAcked, m.Topic) {
		h.observe(&observed{event: pluginv1.Event_EVENT_ACKED, clientID: clientID, msg: m})
	}
}

// OnRetained implements core.Hook.
func (h *Hook) OnRetained(_ context.Context, m *core.Message) {
	if h.wants(core.EventRetained, m.Topic) {
		h.observe(&observed{event: pluginv1.Event_EVENT_RETAINED, msg: m})
	}
}

func sessionChange(c core.SessionChange) string {
	switch c {
	case core.SessionCreated:
		return "created"
	case core.SessionResumed:
		return "resumed"
	case core.SessionTakenOver:
		return "taken_over"
	}
	return "expired"
}
