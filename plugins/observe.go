package plugins

import (
	"context"
	"time"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/packets"
	"github.com/vanemq/vanemq/plugins/proto/pluginv1"
)

// The notifications: each is encoded into the observer queue at once and
// sent later, in a batch on the Observe stream (events.go, instance.go).
// They never wait for the plugin, so they take no context.

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

// OnSession implements core.SessionHook.
func (h *Hook) OnSession(_ context.Context, cl *core.ClientInfo, change core.SessionChange) {
	h.observe(&observed{event: pluginv1.Event_EVENT_SESSION, client: cl, reason: sessionChange(change)})
}

// OnDisconnected implements core.DisconnectedHook.
func (h *Hook) OnDisconnected(_ context.Context, cl *core.ClientInfo, reason packets.ReasonCode, err error) {
	e := observed{event: pluginv1.Event_EVENT_DISCONNECTED, client: cl, code: uint32(reason), reason: reason.String()}
	if err != nil {
		e.reason += ": " + err.Error()
	}
	h.observe(&e)
}

// OnSubscribed implements core.SubscribedHook.
func (h *Hook) OnSubscribed(_ context.Context, cl *core.ClientInfo, filter string, qos byte) {
	h.observe(&observed{event: pluginv1.Event_EVENT_SUBSCRIBED, client: cl, filter: filter, qos: uint32(qos)})
}

// OnUnsubscribed implements core.UnsubscribedHook.
func (h *Hook) OnUnsubscribed(_ context.Context, cl *core.ClientInfo, filter string) {
	h.observe(&observed{event: pluginv1.Event_EVENT_UNSUBSCRIBED, client: cl, filter: filter})
}

// OnPublished implements core.PublishedHook.
func (h *Hook) OnPublished(_ context.Context, cl *core.ClientInfo, m *core.Message) {
	if h.wants(core.EventPublished, m.Topic) {
		h.observe(&observed{event: pluginv1.Event_EVENT_PUBLISHED, client: cl, msg: m})
	}
}

// OnDropped implements core.DroppedHook.
func (h *Hook) OnDropped(_ context.Context, clientID string, m *core.Message, why string) {
	if h.wants(core.EventDropped, m.Topic) {
		h.observe(&observed{event: pluginv1.Event_EVENT_DROPPED, clientID: clientID, msg: m, reason: why})
	}
}

// OnAcked implements core.AckedHook.
func (h *Hook) OnAcked(_ context.Context, clientID string, m *core.Message) {
	if h.wants(core.EventAcked, m.Topic) {
		h.observe(&observed{event: pluginv1.Event_EVENT_ACKED, clientID: clientID, msg: m})
	}
}

// OnRetained implements core.RetainedHook.
func (h *Hook) OnRetained(_ context.Context, m *core.Message) {
	if h.wants(core.EventRetained, m.Topic) {
		h.observe(&observed{event: pluginv1.Event_EVENT_RETAINED, msg: m})
	}
}

// OnStarted implements core.StartedHook.
func (h *Hook) OnStarted(context.Context) {
	h.observe(&observed{event: pluginv1.Event_EVENT_STARTED})
}

// OnStopped implements core.StoppedHook. It is the last event: the server
// then closes the hook (Close), which sends it with every event still
// queued.
func (h *Hook) OnStopped(context.Context) {
	h.observe(&observed{event: pluginv1.Event_EVENT_STOPPED})
}

// OnSysTick implements core.SysTickHook: the event carries the counters.
func (h *Hook) OnSysTick(_ context.Context, st core.Stats) {
	h.observe(&observed{event: pluginv1.Event_EVENT_SYS_TICK, stats: &st})
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
