package core

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/vanemq/vanemq/core/editdist"
)

// handlers are a hook's event methods, found by type assertion once, when
// the hook is added, so that a call costs no assertion. A nil field is an
// event the hook does not implement.
type handlers struct {
	authenticate       AuthenticateHook
	enhancedAuth       EnhancedAuthHook
	authorizePublish   AuthorizePublishHook
	authorizeSubscribe AuthorizeSubscribeHook
	authorizeRead      AuthorizeReadHook
	connect            ConnectHook
	publish            PublishHook
	deliver            DeliverHook
	will               WillHook
	session            SessionHook
	disconnected       DisconnectedHook
	subscribed         SubscribedHook
	unsubscribed       UnsubscribedHook
	published          PublishedHook
	dropped            DroppedHook
	acked              AckedHook
	retained           RetainedHook
	started            StartedHook
	stopped            StoppedHook
	sysTick            SysTickHook
}

// bind finds h's event methods, and the set of events they handle.
func bind(h Hook) (*handlers, EventSet) {
	hs := new(handlers)
	var set EventSet
	found := func(ok bool, e Event) {
		if ok {
			set |= 1 << e
		}
	}
	var ok bool
	hs.authenticate, ok = h.(AuthenticateHook)
	found(ok, EventAuthenticate)
	hs.enhancedAuth, ok = h.(EnhancedAuthHook)
	found(ok, EventEnhancedAuth)
	hs.authorizePublish, ok = h.(AuthorizePublishHook)
	found(ok, EventAuthorizePublish)
	hs.authorizeSubscribe, ok = h.(AuthorizeSubscribeHook)
	found(ok, EventAuthorizeSubscribe)
	hs.authorizeRead, ok = h.(AuthorizeReadHook)
	found(ok, EventAuthorizeRead)
	hs.connect, ok = h.(ConnectHook)
	found(ok, EventConnect)
	hs.publish, ok = h.(PublishHook)
	found(ok, EventPublish)
	hs.deliver, ok = h.(DeliverHook)
	found(ok, EventDeliver)
	hs.will, ok = h.(WillHook)
	found(ok, EventWill)
	hs.session, ok = h.(SessionHook)
	found(ok, EventSession)
	hs.disconnected, ok = h.(DisconnectedHook)
	found(ok, EventDisconnected)
	hs.subscribed, ok = h.(SubscribedHook)
	found(ok, EventSubscribed)
	hs.unsubscribed, ok = h.(UnsubscribedHook)
	found(ok, EventUnsubscribed)
	hs.published, ok = h.(PublishedHook)
	found(ok, EventPublished)
	hs.dropped, ok = h.(DroppedHook)
	found(ok, EventDropped)
	hs.acked, ok = h.(AckedHook)
	found(ok, EventAcked)
	hs.retained, ok = h.(RetainedHook)
	found(ok, EventRetained)
	hs.started, ok = h.(StartedHook)
	found(ok, EventStarted)
	hs.stopped, ok = h.(StoppedHook)
	found(ok, EventStopped)
	hs.sysTick, ok = h.(SysTickHook)
	found(ok, EventSysTick)
	return hs, set
}

// eventInterfaces are the event interfaces, by event, for the signatures
// named in errors.
var eventInterfaces = [numEvents]reflect.Type{
	reflect.TypeFor[AuthenticateHook](), reflect.TypeFor[EnhancedAuthHook](),
	reflect.TypeFor[AuthorizePublishHook](), reflect.TypeFor[AuthorizeSubscribeHook](), reflect.TypeFor[AuthorizeReadHook](),
	reflect.TypeFor[ConnectHook](), reflect.TypeFor[PublishHook](), reflect.TypeFor[DeliverHook](),
	reflect.TypeFor[WillHook](), reflect.TypeFor[SessionHook](), reflect.TypeFor[DisconnectedHook](),
	reflect.TypeFor[SubscribedHook](), reflect.TypeFor[UnsubscribedHook](), reflect.TypeFor[PublishedHook](),
	reflect.TypeFor[DroppedHook](), reflect.TypeFor[AckedHook](), reflect.TypeFor[RetainedHook](),
	reflect.TypeFor[StartedHook](), reflect.TypeFor[StoppedHook](), reflect.TypeFor[SysTickHook](),
}

// hookEvents works out which events h handles: those whose interfaces it
// implements, or, for an EventLister, those it lists, each of which it
// must implement. It refuses a hook with a method that looks like an
// event method and is not one (a misspelt name, or the right name with the
// wrong signature), which would otherwise compile and never be called, and
// a hook that handles no event and implements no optional interface.
func hookEvents(h Hook) (*handlers, EventSet, error) {
	hs, impl := bind(h)
	if err := checkMethods(h, impl); err != nil {
		return nil, 0, err
	}
	if l, ok := h.(EventLister); ok {
		ev := l.Events()
		if ev&^AllEvents() != 0 {
			return nil, 0, fmt.Errorf("lists unknown events (%#x)", uint64(ev&^AllEvents()))
		}
		if missing := ev &^ impl; missing != 0 {
			return nil, 0, fmt.Errorf("lists events it has no method for: %s", missing)
		}
		return hs, ev, nil
	}
	if impl == 0 && !optional(h) {
		return nil, 0, errors.New("implements no event interface (core.AuthenticateHook … core.SysTickHook) and no optional one (such as core.Store or core.HealthChecker)")
	}
	return hs, impl, nil
}

// optional reports whether h implements one of the optional interfaces
// that make a hook useful without events.
func optional(h Hook) bool {
	switch h.(type) {
	case Loader, HealthChecker, Restarter, BridgeReporter, ClusterReporter, FailureCounter, ClusterHook:
		return true
	}
	return false
}

// ctxType is context.Context, the first parameter of every event method.
var ctxType = reflect.TypeFor[context.Context]()

// checkMethods refuses the methods of h that take a context first and look
// like an event method without being one: the name of an event method with
// another signature, or a name close to one (OnPublish for OnPublished,
// OnConnect for Connect).
func checkMethods(h Hook, impl EventSet) error {
	t := reflect.TypeOf(h)
	for i := range t.NumMethod() {
		m := t.Method(i)
		if e, ok := eventOfMethod(m.Name); ok {
			if !impl.Has(e) {
				return fmt.Errorf("method %s is not the %s event's: it is %s, the event wants %s (core.%s)",
					m.Name, e, signature(m.Type, true), signature(eventInterfaces[e].Method(0).Type, false), eventInterfaces[e].Name())
			}
			continue
		}
		if m.Type.NumIn() < 2 || m.Type.In(1) != ctxType {
			continue // not shaped like an event method
		}
		if near := nearEvents(m.Name); len(near) > 0 {
			return fmt.Errorf("method %s is not an event method, so it would never be called; did you mean %s?", m.Name, strings.Join(near, " or "))
		}
	}
	return nil
}

// eventOfMethod returns the event whose Go method is named name.
func eventOfMethod(name string) (Event, bool) {
	for e := range numEvents {
		if eventSpecs[e].method == name {
			return e, true
		}
	}
	return 0, false
}

// nearEvents lists the event methods whose names are close to name: the
// same once a leading "On" and the case are set aside, or within two
// edits of it (editdist.Distance).
func nearEvents(name string) []string {
	bare := func(s string) string { return strings.ToLower(strings.TrimPrefix(s, "On")) }
	n := bare(name)
	var out []string
	for e := range numEvents {
		m := eventSpecs[e].method
		if d := editdist.Distance(n, bare(m)); d <= 2 && len(n) >= 4 {
			out = append(out, fmt.Sprintf("%s (%s)", m, eventSpecs[e].kind))
		}
	}
	return out
}

// signature writes a method's type as Go does, without its receiver when
// recv is set.
func signature(t reflect.Type, recv bool) string {
	var b strings.Builder
	b.WriteString("func(")
	first := 0
	if recv {
		first = 1
	}
	for i := first; i < t.NumIn(); i++ {
		if i > first {
			b.WriteString(", ")
		}
		b.WriteString(t.In(i).String())
	}
	b.WriteString(")")
	switch t.NumOut() {
	case 0:
	case 1:
		b.WriteString(" " + t.Out(0).String())
	default:
		b.WriteString(" (")
		for i := range t.NumOut() {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(t.Out(i).String())
		}
		b.WriteString(")")
	}
	return b.String()
}

// String lists the set's events by name.
func (s EventSet) String() string {
	var names []string
	for e := range s.All() {
		names = append(names, e.String())
	}
	return strings.Join(names, ", ")
}
