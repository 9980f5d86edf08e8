package core

// Unit tests of the hook pipeline (issue 4, "Unit tests of the pipeline:
// ordering, verdicts, filters, panics, default policy"): the per-event
// lists AddHook and RemoveHook build, the order hooks run in, the verdict
// chain of decisions and modifiers, per-hook topic filters, and the
// isolation of panicking hooks. The pipeline is driven directly through
// decide and notify, as the broker's event sites call them; the
// end-to-end tests (e2e_hooks_test.go) drive the same paths over TCP.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/vanemq/vanemq/core/packets"
)

// pipeHook is a configurable test hook: it records every call it gets in
// a shared log as "id:event[:topic]", answers decisions with verdict, and
// panics when asked to.
type pipeHook struct {
	id      string
	events  EventSet
	topics  []string
	verdict Verdict
	panics  bool
	log     *[]string
}

func (h *pipeHook) ID() string       { return h.id }
func (h *pipeHook) Events() EventSet { return h.events }
func (h *pipeHook) Topics() []string { return h.topics }

func (h *pipeHook) record(ev Event, topic string) {
	if h.log != nil {
		s := h.id + ":" + ev.String()
		if topic != "" {
			s += ":" + topic
		}
		*h.log = append(*h.log, s)
	}
	if h.panics {
		panic("test hook " + h.id + " panics in " + ev.String())
	}
}

func (h *pipeHook) Authenticate(context.Context, *ClientInfo, *Credentials) Verdict {
	h.record(EventAuthenticate, "")
	return h.verdict
}

func (h *pipeHook) AuthorizePublish(_ context.Context, _ *ClientInfo, m *Message) Verdict {
	h.record(EventAuthorizePublish, m.Topic)
	return h.verdict
}

func (h *pipeHook) Publish(_ context.Context, _ *ClientInfo, m *Message) Verdict {
	h.record(EventPublish, m.Topic)
	return h.verdict
}

func (h *pipeHook) OnSession(context.Context, *ClientInfo, SessionChange) {
	h.record(EventSession, "")
}

func (h *pipeHook) OnPublished(_ context.Context, _ *ClientInfo, m *Message) {
	h.record(EventPublished, m.Topic)
}

// The rest of the events, so that a pipeHook can list any of them.
var _ DynamicHook = (*pipeHook)(nil)

func (h *pipeHook) EnhancedAuth(context.Context, *ClientInfo, *AuthStep) Verdict {
	h.record(EventEnhancedAuth, "")
	return h.verdict
}

func (h *pipeHook) AuthorizeSubscribe(context.Context, *ClientInfo, string, *byte) Verdict {
	h.record(EventAuthorizeSubscribe, "")
	return h.verdict
}

func (h *pipeHook) AuthorizeRead(context.Context, *ClientInfo, string) Verdict {
	h.record(EventAuthorizeRead, "")
	return h.verdict
}

func (h *pipeHook) Connect(context.Context, *ClientInfo, *ClientPolicy) Verdict {
	h.record(EventConnect, "")
	return h.verdict
}

func (h *pipeHook) Deliver(_ context.Context, _ *ClientInfo, m *Message) Verdict {
	h.record(EventDeliver, m.Topic)
	return h.verdict
}

func (h *pipeHook) Will(_ context.Context, _ *ClientInfo, m *Message) Verdict {
	h.record(EventWill, m.Topic)
	return h.verdict
}

func (h *pipeHook) OnDisconnected(context.Context, *ClientInfo, packets.ReasonCode, error) {
	h.record(EventDisconnected, "")
}

func (h *pipeHook) OnSubscribed(context.Context, *ClientInfo, string, byte) {
	h.record(EventSubscribed, "")
}

func (h *pipeHook) OnUnsubscribed(context.Context, *ClientInfo, string) {
	h.record(EventUnsubscribed, "")
}

func (h *pipeHook) OnDropped(_ context.Context, _ string, m *Message, _ string) {
	h.record(EventDropped, m.Topic)
}

func (h *pipeHook) OnAcked(_ context.Context, _ string, m *Message) {
	h.record(EventAcked, m.Topic)
}

func (h *pipeHook) OnRetained(_ context.Context, m *Message) { h.record(EventRetained, m.Topic) }
func (h *pipeHook) OnStarted(context.Context)                { h.record(EventStarted, "") }
func (h *pipeHook) OnStopped(context.Context)                { h.record(EventStopped, "") }
func (h *pipeHook) OnSysTick(context.Context, Stats)         { h.record(EventSysTick, "") }

// newPipeServer returns a server (not started) for driving the pipeline.
func newPipeServer(t *testing.T) *Server {
	t.Helper()
	s, err := New(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), SysInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// runDecide runs a decision chain for ev through the pipeline the way the
// broker's event sites do, each hook seeing topic.
func runDecide(s *Server, ev Event, topic string) Verdict {
	cl := &ClientInfo{ID: "c"}
	m := &Message{Topic: topic}
	return s.hooks.decide(ev, topic, func(h *handlers) Verdict {
		switch ev {
		case EventAuthenticate:
			return h.authenticate.Authenticate(context.Background(), cl, &Credentials{})
		case EventAuthorizePublish:
			return h.authorizePublish.AuthorizePublish(context.Background(), cl, m)
		case EventPublish:
			return h.publish.Publish(context.Background(), cl, m)
		}
		panic("runDecide: unsupported event " + ev.String())
	})
}

// runNotify runs a notification for ev through the pipeline.
func runNotify(s *Server, ev Event, topic string) {
	cl := &ClientInfo{ID: "c"}
	m := &Message{Topic: topic}
	s.hooks.notify(ev, topic, func(h *handlers) {
		switch ev {
		case EventSession:
			h.session.OnSession(context.Background(), cl, SessionCreated)
		case EventPublished:
			h.published.OnPublished(context.Background(), cl, m)
		default:
			panic("runNotify: unsupported event " + ev.String())
		}
	})
}

func hookIDs(s *Server) []string {
	var ids []string
	for _, st := range s.Hooks() {
		ids = append(ids, st.ID)
	}
	return ids
}

// permutations returns every order of 0..n-1.
func permutations(n int) [][]int {
	if n == 0 {
		return [][]int{{}}
	}
	var out [][]int
	for _, p := range permutations(n - 1) {
		for i := 0; i <= len(p); i++ {
			q := slices.Insert(slices.Clone(p), i, n-1)
			out = append(out, q)
		}
	}
	return out
}

// Hooks run in priority order, higher first, ties broken by ID, whatever
// order they were added in (hook.go: "Hooks run in priority order, higher
// first, ties broken by ID"); Hooks() lists them in that call order.
func TestPipelineOrder(t *testing.T) {
	type spec struct {
		id       string
		priority int
	}
	cases := []struct {
		name  string
		hooks []spec
		want  []string
	}{
		{"priority descending", []spec{{"low", 1}, {"high", 100}, {"mid", 50}}, []string{"high", "mid", "low"}},
		{"ties broken by ID", []spec{{"c", 0}, {"a", 0}, {"b", 0}}, []string{"a", "b", "c"}},
		{"priority before ID", []spec{{"a", 1}, {"z", 2}, {"m", 1}, {"b", 2}}, []string{"b", "z", "a", "m"}},
		{"negative priorities", []spec{{"neg", -10}, {"zero", 0}, {"pos", 10}}, []string{"pos", "zero", "neg"}},
		{"extreme priorities", []spec{{"min", math.MinInt}, {"max", math.MaxInt}, {"zero", 0}}, []string{"max", "zero", "min"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, order := range permutations(len(tc.hooks)) {
				s := newPipeServer(t)
				var log []string
				var added []string
				for _, i := range order {
					h := tc.hooks[i]
					added = append(added, h.id)
					if err := s.AddHook(&pipeHook{id: h.id, events: Events(EventAuthenticate), log: &log}, h.priority); err != nil {
						t.Fatalf("AddHook(%s): %v", h.id, err)
					}
				}
				if got := hookIDs(s); !slices.Equal(got, tc.want) {
					t.Errorf("added in order %v: Hooks() = %v, want %v", added, got, tc.want)
				}
				runDecide(s, EventAuthenticate, "")
				var called []string
				for _, l := range log {
					called = append(called, strings.SplitN(l, ":", 2)[0])
				}
				if !slices.Equal(called, tc.want) {
					t.Errorf("added in order %v: hooks called in order %v, want %v", added, called, tc.want)
				}
			}
		})
	}
}

// AddHook refuses a hook whose ID is empty or already added, or whose
// topic filters are invalid (pipeline.go: "IDs must be unique; a topic
// filter the hook lists must be valid"), and a refused hook is not added.
func TestPipelineAddHookRejects(t *testing.T) {
	cases := []struct {
		name    string
		hook    *pipeHook
		wantErr string // substring of the error
	}{
		{"duplicate ID", &pipeHook{id: "dup", events: Events(EventSession)}, "dup"},
		{"empty ID", &pipeHook{id: "", events: Events(EventSession)}, "empty ID"},
		{"filter with # not last", &pipeHook{id: "bad1", events: Events(EventPublish), topics: []string{"a/#/b"}}, "bad1"},
		{"filter with + inside a level", &pipeHook{id: "bad2", events: Events(EventPublish), topics: []string{"a/b+"}}, "bad2"},
		{"empty filter", &pipeHook{id: "bad3", events: Events(EventPublish), topics: []string{"ok/#", ""}}, "bad3"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newPipeServer(t)
			var log []string
			if err := s.AddHook(&pipeHook{id: "dup", events: Events(EventSession), log: &log}, 5); err != nil {
				t.Fatalf("AddHook(dup): %v", err)
			}
			tc.hook.log = &log
			err := s.AddHook(tc.hook, 10)
			if err == nil {
				t.Fatalf("AddHook accepted %+v", tc.hook)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not mention %q", err, tc.wantErr)
			}
			st := s.Hooks()
			if len(st) != 1 || st[0].ID != "dup" || st[0].Priority != 5 {
				t.Errorf("after the refused AddHook, Hooks() = %+v, want only the first hook (dup, priority 5)", st)
			}
			runNotify(s, EventSession, "")
			runDecide(s, EventPublish, "ok/x")
			if want := []string{"dup:session"}; !slices.Equal(log, want) {
				t.Errorf("calls %v, want %v: a refused hook must not be called", log, want)
			}
		})
	}
}

// RemoveHook drops the hook from every event list, at once.
func TestPipelineRemoveHook(t *testing.T) {
	s := newPipeServer(t)
	var log []string
	for _, id := range []string{"a", "b", "c"} {
		if err := s.AddHook(&pipeHook{id: id, events: Events(EventSession, EventPublish), log: &log}, 0); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		remove string
		found  bool
		want   []string // hooks called afterwards, in order
	}{
		{"b", true, []string{"a", "c"}},
		{"b", false, []string{"a", "c"}},
		{"nope", false, []string{"a", "c"}},
		{"a", true, []string{"c"}},
		{"c", true, nil},
	}
	for _, st := range steps {
		if got := s.RemoveHook(st.remove); got != st.found {
			t.Errorf("RemoveHook(%q) = %v, want %v", st.remove, got, st.found)
		}
		for _, ev := range []Event{EventSession, EventPublish} {
			log = log[:0]
			if ev == EventSession {
				runNotify(s, ev, "")
			} else {
				runDecide(s, ev, "t")
			}
			var called []string
			for _, l := range log {
				called = append(called, strings.SplitN(l, ":", 2)[0])
			}
			if !slices.Equal(called, st.want) {
				t.Errorf("after RemoveHook(%q): %s called %v, want %v", st.remove, ev, called, st.want)
			}
			if got := s.hooks.has(ev); got != (len(st.want) > 0) {
				t.Errorf("after RemoveHook(%q): has(%s) = %v, want %v", st.remove, ev, got, len(st.want) > 0)
			}
		}
		if got := hookIDs(s); !slices.Equal(got, st.want) {
			t.Errorf("after RemoveHook(%q): Hooks() = %v, want %v", st.remove, got, st.want)
		}
	}
	// A removed ID can be added again.
	if err := s.AddHook(&pipeHook{id: "b", events: Events(EventSession), log: &log}, 0); err != nil {
		t.Errorf("re-adding a removed ID: %v", err)
	}
}

// A hook is on the list of exactly the events it lists, so it is never
// called for another, and an event nobody handles has an empty list
// (hook.go: "the pipeline calls a hook only for the events it lists").
func TestPipelinePerEventLists(t *testing.T) {
	for ev := range numEvents {
		t.Run(ev.String(), func(t *testing.T) {
			s := newPipeServer(t)
			if err := s.AddHook(&pipeHook{id: "only", events: Events(ev)}, 0); err != nil {
				t.Fatal(err)
			}
			if err := s.AddHook(&pipeHook{id: "none", events: 0}, 0); err != nil {
				t.Fatal(err)
			}
			for other := range numEvents {
				var want []string
				if other == ev {
					want = []string{"only"}
				}
				var got []string
				for _, e := range s.hooks.list(other) {
					got = append(got, e.id)
				}
				if !slices.Equal(got, want) {
					t.Errorf("list(%s) = %v, want %v", other, got, want)
				}
				if s.hooks.has(other) != (other == ev) {
					t.Errorf("has(%s) = %v, want %v", other, s.hooks.has(other), other == ev)
				}
			}
		})
	}

	// Driven through decide and notify: a session-only hook is never
	// called for publish events, a publish-only hook never for sessions.
	s := newPipeServer(t)
	var log []string
	_ = s.AddHook(&pipeHook{id: "sess", events: Events(EventSession), verdict: Allow, log: &log}, 0)
	_ = s.AddHook(&pipeHook{id: "pub", events: Events(EventPublish), verdict: Next, log: &log}, 0)
	runNotify(s, EventSession, "")
	runDecide(s, EventPublish, "x")
	runDecide(s, EventAuthorizePublish, "x")
	runNotify(s, EventPublished, "x")
	if want := []string{"sess:session", "pub:publish:x"}; !slices.Equal(log, want) {
		t.Errorf("calls %v, want %v", log, want)
	}
	// With no hooks at all every list is empty (no list allocated yet).
	empty := newPipeServer(t)
	for ev := range numEvents {
		if empty.hooks.has(ev) {
			t.Errorf("a server without hooks has a hook for %s", ev)
		}
	}
}

// Message events honour per-hook topic filters: a hook with Topics
// ["a/#"] sees messages on a, a/x and a/x/y but not on b/x (hook.go,
// Topics; MQTT 5 section 4.7.1.2: "#" also matches the parent level).
// Events without a topic are not filtered.
func TestPipelineTopicFilters(t *testing.T) {
	cases := []struct {
		name    string
		filters []string
		topic   string
		want    bool
	}{
		{"a/# sees a/x", []string{"a/#"}, "a/x", true},
		{"a/# sees a/x/y", []string{"a/#"}, "a/x/y", true},
		{"a/# sees a (parent level)", []string{"a/#"}, "a", true},
		{"a/# does not see b/x", []string{"a/#"}, "b/x", false},
		{"a/# does not see ab/x", []string{"a/#"}, "ab/x", false},
		{"a/+ sees a/x", []string{"a/+"}, "a/x", true},
		{"a/+ does not see a/x/y", []string{"a/+"}, "a/x/y", false},
		{"any of several filters", []string{"a/#", "b/+"}, "b/x", true},
		{"none of several filters", []string{"a/#", "b/+"}, "c/x", false},
		{"# does not see $SYS (MQTT-4.7.2-1)", []string{"#"}, "$SYS/x", false},
		{"nil filters see every topic", nil, "anything/at/all", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newPipeServer(t)
			var log []string
			h := &pipeHook{id: "f", events: Events(EventAuthorizePublish, EventPublish, EventPublished), topics: tc.filters, log: &log}
			if err := s.AddHook(h, 0); err != nil {
				t.Fatal(err)
			}
			// An unfiltered hook after it shows that the chain continues.
			if err := s.AddHook(&pipeHook{id: "z-all", events: Events(EventPublish), log: &log}, -1); err != nil {
				t.Fatal(err)
			}
			runDecide(s, EventAuthorizePublish, tc.topic)
			runDecide(s, EventPublish, tc.topic)
			runNotify(s, EventPublished, tc.topic)
			var want []string
			if tc.want {
				want = []string{"f:authorize_publish:" + tc.topic, "f:publish:" + tc.topic, "z-all:publish:" + tc.topic, "f:published:" + tc.topic}
			} else {
				want = []string{"z-all:publish:" + tc.topic}
			}
			if !slices.Equal(log, want) {
				t.Errorf("calls %v, want %v", log, want)
			}
		})
	}

	t.Run("the pipeline keeps its own copy of the filters", func(t *testing.T) {
		// Hooks() reports the filters; changing the slice the hook's Topics
		// returned does not change the pipeline's copy.
		s := newPipeServer(t)
		filters := []string{"a/#"}
		_ = s.AddHook(&pipeHook{id: "f", events: Events(EventPublish), topics: filters}, 0)
		filters[0] = "b/#"
		if got := s.Hooks()[0].Topics; !slices.Equal(got, []string{"a/#"}) {
			t.Errorf("Hooks()[0].Topics = %v, want [a/#]", got)
		}
		var log []string
		s.RemoveHook("f")
		_ = s.AddHook(&pipeHook{id: "f", events: Events(EventPublish), topics: []string{"a/#"}, log: &log}, 0)
		// Nor does changing the Topics slice Hooks() returned (a caller's
		// copy, which must not alias the filters readers use without a lock).
		st := s.Hooks()
		st[0].Topics[0] = "b/#"
		runDecide(s, EventPublish, "b/x")
		if len(log) > 0 {
			t.Errorf("the filter changed with the Topics slice Hooks() returned: %v", log)
		}
		if got := s.Hooks()[0].Topics; !slices.Equal(got, []string{"a/#"}) {
			t.Errorf("after the caller changed its copy, Hooks()[0].Topics = %v, want [a/#]", got)
		}
	})
}

// The verdict chain: the first Allow or Deny wins and later hooks are not
// asked; Next passes on; all-Next is Pass; a Deny without a code is
// Not Authorized (hook.go, Verdict.Code: "NotAuthorized when zero").
func TestPipelineVerdictChain(t *testing.T) {
	deny := func(code packets.ReasonCode, reason string) Verdict { return Deny(code, reason) }
	cases := []struct {
		name     string
		verdicts []Verdict // in call order (priorities descending)
		want     Verdict
		called   int // how many hooks were asked
	}{
		{"no hooks: Pass", nil, Next, 0},
		{"all Next: Pass", []Verdict{Next, Next, Next}, Next, 3},
		{"first Allow wins", []Verdict{Allow, deny(packets.Banned, "x")}, Allow, 1},
		{"first Deny wins", []Verdict{deny(packets.Banned, "banned"), Allow}, deny(packets.Banned, "banned"), 1},
		{"Next passes to Allow", []Verdict{Next, Next, Allow, Next}, Allow, 3},
		{"Next passes to Deny", []Verdict{Next, deny(packets.BadUsernameOrPassword, "bad"), Allow}, deny(packets.BadUsernameOrPassword, "bad"), 2},
		{"Deny code 0 becomes Not Authorized", []Verdict{{Decision: DecisionDeny}}, Verdict{Decision: DecisionDeny, Code: packets.NotAuthorized}, 1},
		{"Deny keeps its reason string", []Verdict{{Decision: DecisionDeny, Reason: "why"}}, Verdict{Decision: DecisionDeny, Code: packets.NotAuthorized, Reason: "why"}, 1},
		{"Deny keeps an error code", []Verdict{deny(packets.QuotaExceeded, "")}, deny(packets.QuotaExceeded, ""), 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newPipeServer(t)
			var log []string
			for i, v := range tc.verdicts {
				id := fmt.Sprintf("h%d", i)
				if err := s.AddHook(&pipeHook{id: id, events: Events(EventAuthenticate, EventPublish), verdict: v, log: &log}, 100-i); err != nil {
					t.Fatal(err)
				}
			}
			for _, ev := range []Event{EventAuthenticate, EventPublish} {
				log = log[:0]
				if got := runDecide(s, ev, "t"); got != tc.want {
					t.Errorf("%s: verdict %+v, want %+v", ev, got, tc.want)
				}
				if len(log) != tc.called {
					t.Errorf("%s: %d hooks asked (%v), want %d", ev, len(log), log, tc.called)
				}
			}
		})
	}
}

// A panicking hook is isolated: the panic is recovered and counted in the
// hook's Failures; a decision or modifier fails closed (Deny with
// Implementation Specific Error, the chain ends), a notification is
// ignored and the later hooks still run (issue 4: "Every call is isolated").
func TestPipelinePanicIsolation(t *testing.T) {
	cases := []struct {
		name       string
		ev         Event
		notify     bool
		wantCalled []string
	}{
		{"decision (authenticate) fails closed", EventAuthenticate, false, []string{"a:authenticate", "b-panics:authenticate"}},
		{"decision (authorize publish) fails closed", EventAuthorizePublish, false, []string{"a:authorize_publish:t", "b-panics:authorize_publish:t"}},
		{"modifier (publish) fails closed", EventPublish, false, []string{"a:publish:t", "b-panics:publish:t"}},
		{"notification (session) ignored", EventSession, true, []string{"a:session", "b-panics:session", "c:session"}},
		{"notification (published) ignored", EventPublished, true, []string{"a:published:t", "b-panics:published:t", "c:published:t"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newPipeServer(t)
			var log []string
			hooks := []*pipeHook{
				{id: "a", events: Events(tc.ev), verdict: Next, log: &log},
				{id: "b-panics", events: Events(tc.ev), verdict: Allow, panics: true, log: &log},
				{id: "c", events: Events(tc.ev), verdict: Allow, log: &log},
			}
			for i, h := range hooks {
				if err := s.AddHook(h, 10-i); err != nil {
					t.Fatal(err)
				}
			}
			for round := 1; round <= 2; round++ {
				log = log[:0]
				if tc.notify {
					runNotify(s, tc.ev, "t")
				} else {
					v := runDecide(s, tc.ev, "t")
					if v.Decision != DecisionDeny || v.Code != packets.ImplementationSpecificError {
						t.Errorf("round %d: verdict %+v, want Deny with Implementation Specific Error (0x83)", round, v)
					}
					if !strings.Contains(v.Reason, "b-panics") {
						t.Errorf("round %d: reason %q does not name the failing hook", round, v.Reason)
					}
				}
				if !slices.Equal(log, tc.wantCalled) {
					t.Errorf("round %d: calls %v, want %v", round, log, tc.wantCalled)
				}
				for _, st := range s.Hooks() {
					want := int64(0)
					if st.ID == "b-panics" {
						want = int64(round)
					}
					if st.Failures != want {
						t.Errorf("round %d: Hooks() reports %d failures for %s, want %d", round, st.Failures, st.ID, want)
					}
				}
			}
		})
	}
}

// The panic is logged with the hook's ID and the event (issue 4: "a panic
// is recovered, logged with the hook ID").
func TestPipelinePanicLogged(t *testing.T) {
	var buf strings.Builder
	s, err := New(Options{Logger: slog.New(slog.NewTextHandler(&buf, nil)), SysInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AddHook(&pipeHook{id: "boom.hook", events: Events(EventSession), panics: true}, 0); err != nil {
		t.Fatal(err)
	}
	runNotify(s, EventSession, "")
	out := buf.String()
	for _, want := range []string{"hook=boom.hook", "event=session", "level=ERROR"} {
		if !strings.Contains(out, want) {
			t.Errorf("log %q lacks %q", out, want)
		}
	}
}
