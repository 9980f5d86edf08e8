package js

import (
	"context"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/packets"
)

// The notifications: each calls its function with the Go method's
// arguments as script values; what it returns is ignored, and a failure
// is only logged and counted.

// OnSession implements core.SessionHook: onSession(client, change), with
// change "created", "resumed", "takenOver" or "expired".
func (h *Hook) OnSession(_ context.Context, cl *core.ClientInfo, change core.SessionChange) {
	h.notify(fnSession, cl.ID, "", func(v *vm) error {
		_, err := v.call(fnSession, v.client(cl), v.rt.ToValue(sessionChangeName(change)))
		return err
	})
}

// sessionChangeNames are the names of the session changes, in order.
var sessionChangeNames = [...]string{
	core.SessionCreated: "created", core.SessionResumed: "resumed",
	core.SessionTakenOver: "takenOver", core.SessionExpired: "expired",
}

// sessionChangeName names a session change for scripts.
func sessionChangeName(c core.SessionChange) string {
	if int(c) < len(sessionChangeNames) {
		return sessionChangeNames[c]
	}
	return "unknown"
}

// OnDisconnected implements core.DisconnectedHook: onDisconnected(client,
// {code, reason, error}). It also drops the connection's cached decisions.
func (h *Hook) OnDisconnected(_ context.Context, cl *core.ClientInfo, reason packets.ReasonCode, cause error) {
	if c := h.cache.Load(); c != nil {
		c.forget(cl)
	}
	h.notify(fnDisconnected, cl.ID, "", func(v *vm) error {
		r := map[string]any{"code": int(reason), "reason": reason.String()}
		if cause != nil {
			r["error"] = cause.Error()
		}
		_, err := v.call(fnDisconnected, v.client(cl), freezeValue(v.rt, r))
		return err
	})
}

// OnSubscribed implements core.SubscribedHook: onSubscribed(client,
// {filter, qos}), with the QoS granted.
func (h *Hook) OnSubscribed(_ context.Context, cl *core.ClientInfo, filter string, qos byte) {
	h.notify(fnSubscribed, cl.ID, filter, func(v *vm) error {
		_, err := v.call(fnSubscribed, v.client(cl), freezeValue(v.rt, map[string]any{"filter": filter, "qos": int(qos)}))
		return err
	})
}

// OnUnsubscribed implements core.UnsubscribedHook: onUnsubscribed(client,
// {filter}).
func (h *Hook) OnUnsubscribed(_ context.Context, cl *core.ClientInfo, filter string) {
	h.notify(fnUnsubscribed, cl.ID, filter, func(v *vm) error {
		_, err := v.call(fnUnsubscribed, v.client(cl), freezeValue(v.rt, map[string]any{"filter": filter}))
		return err
	})
}

// OnPublished implements core.PublishedHook: onPublished(client, msg), for
// every message accepted for routing.
func (h *Hook) OnPublished(_ context.Context, cl *core.ClientInfo, m *core.Message) {
	h.notify(fnPublished, cl.ID, m.Topic, func(v *vm) error {
		mo, done := v.message(m)
		_, err := v.call(fnPublished, v.client(cl), mo)
		done()
		return err
	})
}

// OnDropped implements core.DroppedHook: onDropped(clientId, msg, why).
func (h *Hook) OnDropped(_ context.Context, clientID string, m *core.Message, why string) {
	h.notify(fnDropped, clientID, m.Topic, func(v *vm) error {
		mo, done := v.message(m)
		_, err := v.call(fnDropped, v.rt.ToValue(clientID), mo, v.rt.ToValue(why))
		done()
		return err
	})
}

// OnAcked implements core.AckedHook: onAcked(clientId, msg).
func (h *Hook) OnAcked(_ context.Context, clientID string, m *core.Message) {
	h.notify(fnAcked, clientID, m.Topic, func(v *vm) error {
		mo, done := v.message(m)
		_, err := v.call(fnAcked, v.rt.ToValue(clientID), mo)
		done()
		return err
	})
}

// OnRetained implements core.RetainedHook: onRetained(msg), a message
// retained, or, with an empty payload, a retained message cleared or
// expired.
func (h *Hook) OnRetained(_ context.Context, m *core.Message) {
	h.notify(fnRetained, "", m.Topic, func(v *vm) error {
		mo, done := v.message(m)
		_, err := v.call(fnRetained, mo)
		done()
		return err
	})
}

// OnStarted implements core.StartedHook: onStarted().
func (h *Hook) OnStarted(context.Context) {
	h.notify(fnStarted, "", "", func(v *vm) error {
		_, err := v.call(fnStarted)
		return err
	})
}

// OnStopped implements core.StoppedHook: onStopped(). The server closes
// the hook after it.
func (h *Hook) OnStopped(context.Context) {
	h.notify(fnStopped, "", "", func(v *vm) error {
		_, err := v.call(fnStopped)
		return err
	})
}

// OnSysTick implements core.SysTickHook: onSysTick(stats), at each $SYS
// round.
func (h *Hook) OnSysTick(_ context.Context, st core.Stats) {
	h.notify(fnSysTick, "", "", func(v *vm) error {
		_, err := v.call(fnSysTick, freezeValue(v.rt, statsMap(&st)))
		return err
	})
}
