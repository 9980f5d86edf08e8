package core

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vanemq/vanemq/core/packets"
	"github.com/vanemq/vanemq/core/topics"
)

// hookEntry is one hook in the pipeline.
type hookEntry struct {
	hook     Hook
	h        *handlers // the hook's event methods
	id       string
	priority int
	events   EventSet
	filters  []string // topic filters for message events; nil: all
	failures atomic.Int64
	calls    atomic.Int64
	nanos    atomic.Int64 // time spent in the hook's calls
}

// timeEvery is how often a hook call is timed: reading the clock twice
// per call costs more than a cheap hook on some machines (virtual ones
// without a fast clock), so one call in timeEvery is timed and counts
// for all of them.
const timeEvery = 16

// begin counts a call and returns its start time when this call is timed
// (zero otherwise).
func (e *hookEntry) begin() time.Time {
	if e.calls.Add(1)%timeEvery != 0 {
		return time.Time{}
	}
	return time.Now()
}

// end adds a timed call's duration, standing for timeEvery calls.
func (e *hookEntry) end(start time.Time) {
	if !start.IsZero() {
		e.nanos.Add(int64(time.Since(start)) * timeEvery)
	}
}

// wants reports whether the hook's topic filters let it see topic.
func (e *hookEntry) wants(topic string) bool {
	if e.filters == nil {
		return true
	}
	for _, f := range e.filters {
		if topics.MatchFilter(f, topic) {
			return true
		}
	}
	return false
}

// eventLists are the hooks handling each event, in call order.
type eventLists [numEvents][]*hookEntry

// pipeline is the ordered set of hooks. The per-event lists are rebuilt
// when hooks change and read without a lock, so an event nobody handles
// costs one atomic load.
type pipeline struct {
	log     *slog.Logger
	mu      sync.Mutex // serialises changes
	entries []*hookEntry
	lists   atomic.Pointer[eventLists]
}

// HookStatus describes one hook of a running server.
type HookStatus struct {
	ID       string
	Priority int
	Events   EventSet
	Topics   []string
	Failures int64         // panics recovered, plus what the hook counts itself (FailureCounter)
	Calls    int64         // calls made
	Time     time.Duration // time spent in calls, estimated from 1 call in 16
	// Unhealthy says why a hook that reports its health (HealthChecker)
	// is not healthy; "" when it is, or does not report.
	Unhealthy string
	// Restarts counts the restarts of a hook that restarts (Restarter).
	Restarts int64
}

// AddHook adds h to the pipeline with the given priority (higher runs
// first; equal priorities run in ID order). IDs must be unique; a topic
// filter the hook lists must be valid.
func (s *Server) AddHook(h Hook, priority int) error {
	id := h.ID()
	if id == "" {
		return fmt.Errorf("core: hook %T has an empty ID", h)
	}
	hs, events, err := hookEvents(h)
	if err != nil {
		return fmt.Errorf("core: hook %s (%T): %w", id, h, err)
	}
	filters, err := hookTopics(h)
	if err != nil {
		return fmt.Errorf("core: hook %s: %w", id, err)
	}
	p := &s.hooks
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range p.entries {
		if e.id == id {
			return fmt.Errorf("core: hook %s: a hook with this ID is already added", id)
		}
	}
	p.entries = append(p.entries, &hookEntry{
		hook: h, h: hs, id: id, priority: priority, events: events, filters: filters,
	})
	slices.SortStableFunc(p.entries, func(a, b *hookEntry) int {
		if c := cmp.Compare(b.priority, a.priority); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	p.rebuildLocked()
	return nil
}

// RemoveHook removes the hook with the given ID and reports whether there
// was one.
func (s *Server) RemoveHook(id string) bool {
	p := &s.hooks
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, e := range p.entries {
		if e.id == id {
			p.entries = slices.Delete(p.entries, i, i+1)
			p.rebuildLocked()
			return true
		}
	}
	return false
}

// EventsOf returns the events the pipeline would call h for, as AddHook
// works them out (see Hook), or why AddHook would refuse it: a test of a
// hook can check that it handles what it should.
func EventsOf(h Hook) (EventSet, error) {
	_, ev, err := hookEvents(h)
	return ev, err
}

// hookTopics returns a copy of the topic filters of a TopicFilter, checked;
// nil for every topic.
func hookTopics(h Hook) ([]string, error) {
	tf, ok := h.(TopicFilter)
	if !ok {
		return nil, nil
	}
	filters := tf.Topics()
	for _, f := range filters {
		if err := topics.ValidateFilter(f); err != nil {
			return nil, fmt.Errorf("topic filter %q: %w", f, err)
		}
	}
	return slices.Clone(filters), nil
}

// RefreshHook reads again the Events and Topics of the hook with the given
// ID, for a hook whose events changed (a reloaded script that handles
// other events), and switches the pipeline to them at once: every event is
// then dispatched by the new lists, with no moment where the hook is
// missing. It fails for an unknown ID or an invalid filter, and then
// changes nothing.
func (s *Server) RefreshHook(id string) error {
	p := &s.hooks
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, e := range p.entries {
		if e.id != id {
			continue
		}
		hs, events, err := hookEvents(e.hook)
		if err != nil {
			return fmt.Errorf("core: hook %s (%T): %w", id, e.hook, err)
		}
		filters, err := hookTopics(e.hook)
		if err != nil {
			return fmt.Errorf("core: hook %s: %w", id, err)
		}
		// A new entry, so that calls under way on the old lists keep a
		// consistent view; the counters carry over.
		ne := &hookEntry{hook: e.hook, h: hs, id: e.id, priority: e.priority, events: events, filters: filters}
		ne.failures.Store(e.failures.Load())
		ne.calls.Store(e.calls.Load())
		ne.nanos.Store(e.nanos.Load())
		p.entries[i] = ne
		p.rebuildLocked()
		return nil
	}
	return fmt.Errorf("core: no hook %s to refresh", id)
}

// Hooks describes the pipeline's hooks in call order.
func (s *Server) Hooks() []HookStatus {
	// The hooks' own methods (Failures, Health, Restarts) run on a
	// snapshot, not under pipeline.mu: hook code runs under no lock of the
	// server's (LOCKS.md).
	entries := s.hooks.snapshot()
	out := make([]HookStatus, len(entries))
	for i, e := range entries {
		out[i] = HookStatus{ID: e.id, Priority: e.priority, Events: e.events, Topics: slices.Clone(e.filters),
			Failures: e.failures.Load(), Calls: e.calls.Load(), Time: time.Duration(e.nanos.Load())}
		if fc, ok := e.hook.(FailureCounter); ok {
			out[i].Failures += fc.Failures()
		}
		if hc, ok := e.hook.(HealthChecker); ok {
			if err := hc.Health(); err != nil {
				out[i].Unhealthy = err.Error()
			}
		}
		if r, ok := e.hook.(Restarter); ok {
			out[i].Restarts = r.Restarts()
		}
	}
	return out
}

func (p *pipeline) rebuildLocked() {
	var l eventLists
	for _, e := range p.entries {
		for ev := range numEvents {
			if e.events.Has(ev) {
				l[ev] = append(l[ev], e)
			}
		}
	}
	p.lists.Store(&l)
}

// snapshot returns the hooks, in call order, as they are now: a copy to
// range over without holding the lock.
func (p *pipeline) snapshot() []*hookEntry {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.entries)
}

// list returns the hooks handling ev.
func (p *pipeline) list(ev Event) []*hookEntry {
	l := p.lists.Load()
	if l == nil {
		return nil
	}
	return l[ev]
}

// has reports whether any hook handles ev.
func (p *pipeline) has(ev Event) bool { return len(p.list(ev)) > 0 }

// failed records a recovered panic of a hook.
func (p *pipeline) failed(e *hookEntry, ev Event, r any) {
	e.failures.Add(1)
	p.log.Error("hook failed: recovered a panic", "hook", e.id, "event", ev.String(), "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
}

// decide runs a decision or modifier chain: the first Allow or Deny ends
// it; Next when every hook has no opinion. topic limits the chain to hooks
// whose filters match it ("" for events without a topic). A panicking hook
// denies (fail closed).
//
// A Transient verdict taints the chain's result: a hook that failed and
// fell back to Next (on_failure: next) did not decide, so whatever the
// chain returns after it holds for this call only, and is not cached.
//
// The chain's verdict is SameForAll only when every hook asked said so:
// a hook that said Next for this client may decide for another.
func (p *pipeline) decide(ev Event, topic string, call func(*handlers) Verdict) Verdict {
	transient, all := false, true
	for _, e := range p.list(ev) {
		if topic != "" && !e.wants(topic) {
			continue
		}
		v := p.safeDecide(e, ev, call)
		if v.Decision == DecisionNext {
			transient = transient || v.Transient
			all = all && v.SameForAll
			continue
		}
		if v.Decision == DecisionDeny && v.Code < 0x80 {
			v.Code = packets.NotAuthorized
		}
		v.Transient = v.Transient || transient
		v.SameForAll = v.SameForAll && all && ev == EventAuthorizeRead
		return v
	}
	return Verdict{Decision: DecisionNext, Transient: transient, SameForAll: all && ev == EventAuthorizeRead}
}

func (p *pipeline) safeDecide(e *hookEntry, ev Event, call func(*handlers) Verdict) (v Verdict) {
	defer e.end(e.begin())
	defer func() {
		if r := recover(); r != nil {
			p.failed(e, ev, r)
			v = Deny(packets.ImplementationSpecificError, "hook "+e.id+" failed")
			v.Transient = true
		}
	}()
	return call(e.h)
}

// notify tells every hook handling ev; panics are recovered and ignored.
func (p *pipeline) notify(ev Event, topic string, call func(*handlers)) {
	for _, e := range p.list(ev) {
		if topic != "" && !e.wants(topic) {
			continue
		}
		p.safeNotify(e, ev, call)
	}
}

func (p *pipeline) safeNotify(e *hookEntry, ev Event, call func(*handlers)) {
	defer e.end(e.begin())
	defer func() {
		if r := recover(); r != nil {
			p.failed(e, ev, r)
		}
	}()
	call(e.h)
}

// closeHooks closes, in call order, the hooks that implement io.Closer:
// the server's last call to its hooks, after OnStopped. A panic or an
// error is logged and counted as the hook's failure.
func (p *pipeline) closeHooks() {
	for _, e := range p.snapshot() {
		c, ok := e.hook.(io.Closer)
		if !ok {
			continue
		}
		func() {
			defer func() {
				if r := recover(); r != nil {
					p.failed(e, EventStopped, r)
				}
			}()
			if err := c.Close(); err != nil {
				e.failures.Add(1)
				p.log.Warn("hook failed to close", "hook", e.id, "cause", err)
			}
		}()
	}
}

// background is the context of events that belong to no connection.
func (s *Server) background() context.Context {
	if s.ctx != nil {
		return s.ctx
	}
	return context.Background()
}
