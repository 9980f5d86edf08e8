package plugins

import (
	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/plugins/proto/pluginv1"
)

// wireEvents pairs each of the pipeline's events with the wire's, in the
// order of core's table. TestWireEvents checks that it has every event of
// both.
var wireEvents = [...]struct {
	core core.Event
	wire pluginv1.Event
}{
	{core.EventAuthenticate, pluginv1.Event_EVENT_AUTHENTICATE},
	{core.EventEnhancedAuth, pluginv1.Event_EVENT_ENHANCED_AUTH},
	{core.EventAuthorizePublish, pluginv1.Event_EVENT_AUTHORIZE_PUBLISH},
	{core.EventAuthorizeSubscribe, pluginv1.Event_EVENT_AUTHORIZE_SUBSCRIBE},
	{core.EventAuthorizeRead, pluginv1.Event_EVENT_AUTHORIZE_READ},
	{core.EventConnect, pluginv1.Event_EVENT_CONNECT},
	{core.EventPublish, pluginv1.Event_EVENT_PUBLISH},
	{core.EventDeliver, pluginv1.Event_EVENT_DELIVER},
	{core.EventWill, pluginv1.Event_EVENT_WILL},
	{core.EventSession, pluginv1.Event_EVENT_SESSION},
	{core.EventDisconnected, pluginv1.Event_EVENT_DISCONNECTED},
	{core.EventSubscribed, pluginv1.Event_EVENT_SUBSCRIBED},
	{core.EventUnsubscribed, pluginv1.Event_EVENT_UNSUBSCRIBED},
	{core.EventPublished, pluginv1.Event_EVENT_PUBLISHED},
	{core.EventDropped, pluginv1.Event_EVENT_DROPPED},
	{core.EventAcked, pluginv1.Event_EVENT_ACKED},
	{core.EventRetained, pluginv1.Event_EVENT_RETAINED},
	{core.EventStarted, pluginv1.Event_EVENT_STARTED},
	{core.EventStopped, pluginv1.Event_EVENT_STOPPED},
	{core.EventSysTick, pluginv1.Event_EVENT_SYS_TICK},
}

// WireEvent returns the plugin protocol's value (plugin.proto's Event) for
// one of the pipeline's events, and false for a value that is not an
// event. Every core.Event has one: a plugin can handle each event a Go
// hook can, decisions and modifiers as MODE_DECISION, notifications as
// MODE_OBSERVER.
func WireEvent(e core.Event) (pluginv1.Event, bool) {
	for _, w := range wireEvents {
		if w.core == e {
			return w.wire, true
		}
	}
	return pluginv1.Event_EVENT_UNSPECIFIED, false
}

// eventOfWire returns the pipeline's event for a wire value.
func eventOfWire(e pluginv1.Event) (core.Event, bool) {
	for _, w := range wireEvents {
		if w.wire == e {
			return w.core, true
		}
	}
	return 0, false
}

// decisionEvent reports whether a plugin handles ev as a decision (the
// decisions and the modifiers); the notifications it can only observe.
func decisionEvent(ev core.Event) bool { return ev.Kind() != core.KindNotification }
