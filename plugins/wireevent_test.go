package plugins

import (
	"strings"
	"testing"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/plugins/proto/pluginv1"
	"github.com/vanemq/vanemq/plugins/sdk"
)

// Every event of the Go contract has one value on the wire, and back; the
// SDK names it as core does; a plugin may describe it in its mode (a
// decision or modifier as MODE_DECISION, a notification as MODE_OBSERVER)
// and in no other.
func TestWireEvents(t *testing.T) {
	seen := map[pluginv1.Event]core.Event{}
	for e := range core.AllEvents().All() {
		w, ok := WireEvent(e)
		if !ok || w == pluginv1.Event_EVENT_UNSPECIFIED {
			t.Errorf("%s: no wire event", e)
			continue
		}
		if other, dup := seen[w]; dup {
			t.Errorf("%s and %s are both %s on the wire", e, other, w)
		}
		seen[w] = e
		if back, ok := eventOfWire(w); !ok || back != e {
			t.Errorf("%s: %s maps back to %s", e, w, back)
		}
		if got := sdk.EventKind(w).String(); got != e.String() {
			t.Errorf("%s: the SDK names %s %q", e, w, got)
		}
		if want := "EVENT_" + strings.ToUpper(e.String()); w.String() != want {
			t.Errorf("%s: wire name %s, want %s", e, w, want)
		}
		good, bad := pluginv1.Mode_MODE_OBSERVER, pluginv1.Mode_MODE_DECISION
		if e.Kind() != core.KindNotification {
			good, bad = bad, good
		}
		desc := func(m pluginv1.Mode) *pluginv1.Description {
			return &pluginv1.Description{Handlers: []*pluginv1.Handler{{Event: w, Mode: m}}}
		}
		if d, err := describe(desc(good)); err != nil || !d.events.Has(e) || d.events != core.Events(e) {
			t.Errorf("%s as %s: %v", e, good, err)
		}
		if _, err := describe(desc(bad)); err == nil || !strings.Contains(err.Error(), e.String()) {
			t.Errorf("%s as %s: %v, want an error naming the event", e, bad, err)
		}
	}
	for v := range pluginv1.Event_name {
		w := pluginv1.Event(v)
		if _, ok := seen[w]; !ok && w != pluginv1.Event_EVENT_UNSPECIFIED {
			t.Errorf("wire event %s is no event of the pipeline", w)
		}
	}
	if _, ok := WireEvent(core.Event(200)); ok {
		t.Error("WireEvent(200): a wire event for no event")
	}
}

// Topic filters apply to the events with a topic, and only to them.
func TestDescribeTopics(t *testing.T) {
	for e := range core.AllEvents().All() {
		w, _ := WireEvent(e)
		mode := pluginv1.Mode_MODE_OBSERVER
		if e.Kind() != core.KindNotification {
			mode = pluginv1.Mode_MODE_DECISION
		}
		d, err := describe(&pluginv1.Description{Handlers: []*pluginv1.Handler{{Event: w, Mode: mode, Topics: []string{"a/#"}}}})
		switch {
		case e.HasTopic() && (err != nil || len(d.filters[e]) != 1 || len(d.allTopic) != 1):
			t.Errorf("%s with a topic filter: %v", e, err)
		case !e.HasTopic() && (err == nil || !strings.Contains(err.Error(), "no topic")):
			t.Errorf("%s with a topic filter: %v, want it refused", e, err)
		}
	}
}
