package core

import (
	"context"
	"iter"

	"github.com/vanemq/vanemq/core/packets"
)

// Hook is one stage of the broker's hook pipeline: authentication,
// authorization, message rewriting, persistence, bridging, metrics. A hook
// is any type with an ID that implements one or more of the event
// interfaces below (AuthenticateHook … SysTickHook), one per event; AddHook
// finds them by type assertion, and the pipeline calls a hook only for
// the events it implements (and, for message events, only for topics
// matching its TopicFilter), so an event nobody handles costs nothing.
//
// State what a hook implements with compile-time guards next to it, so
// that a misspelt or mistyped method is a build error:
//
//	var (
//		_ core.Hook                 = (*ACL)(nil)
//		_ core.AuthorizePublishHook = (*ACL)(nil)
//		_ core.SubscribedHook       = (*ACL)(nil)
//	)
//
// AddHook also refuses a hook with a method that looks like an event
// method and is not one (OnPublish for OnPublished, or OnPublished with the
// wrong signature), and a hook that implements no event and no optional
// interface (hook_optional.go lists those). A hook whose events change
// while it runs (a script, a plugin binary) implements every event
// interface (DynamicHook) and says which it handles now with EventLister.
//
// Decisions (Authenticate, EnhancedAuth, AuthorizePublish,
// AuthorizeSubscribe, AuthorizeRead, Connect) return a Verdict: Allow or Deny ends the
// chain, Next passes to the next hook; when every hook says Next the
// server's default applies (deny unless AllowAnonymous). Modifiers
// (Publish, Deliver, Will) may change the message they are given, or Deny
// it. Notifications (the On methods) return nothing and are told what
// happened.
//
// Hooks run in priority order, higher first, ties broken by ID. Each call
// gets a context carrying the connection's lifetime; a panic is recovered,
// logged with the hook's ID and counted as the hook's failure: a decision
// fails closed (deny), a modifier leaves the message unchanged and denies
// it, a notification is ignored. After OnStopped the server closes every
// hook that implements io.Closer.
type Hook interface {
	// ID names the hook in config, logs and metrics, e.g. "auth.file".
	ID() string
}

// AuthenticateHook decides whether a CONNECT may proceed, from its
// credentials and the TLS peer identity when there is one.
type AuthenticateHook interface {
	Authenticate(ctx context.Context, cl *ClientInfo, cred *Credentials) Verdict
}

// EnhancedAuthHook runs one step of an MQTT 5 AUTH exchange: the first step
// comes from CONNECT's Authentication Method and Data, later ones from AUTH
// packets, and re-authentication from an AUTH with reason 0x19 after
// connecting. Allow ends it successfully, Deny refuses, and Next with
// step.Continue set asks the client for another round with step.Response
// as its Authentication Data.
type EnhancedAuthHook interface {
	EnhancedAuth(ctx context.Context, cl *ClientInfo, step *AuthStep) Verdict
}

// AuthorizePublishHook decides whether the client may publish m. m is only
// valid during the call: a hook must copy what it keeps.
type AuthorizePublishHook interface {
	AuthorizePublish(ctx context.Context, cl *ClientInfo, m *Message) Verdict
}

// AuthorizeSubscribeHook decides whether the client may subscribe to
// filter; it may lower *qos, the QoS to grant.
type AuthorizeSubscribeHook interface {
	AuthorizeSubscribe(ctx context.Context, cl *ClientInfo, filter string, qos *byte) Verdict
}

// AuthorizeReadHook decides whether a subscriber may receive a message
// on topic: it is asked at delivery, for each subscriber a message is
// routed to (retained messages sent on subscribe included), with the
// subscriber's identity; a Deny drops that one delivery, silently. A
// subscription is granted by AuthorizeSubscribe when some topic it can
// match may be read; AuthorizeRead then filters what reaches it.
//
// The server caches the verdict per subscriber and topic (not for a
// Verdict with Transient set), so a hook must decide from cl and topic
// alone, and call Server.InvalidateAuthorization when what it decides
// from changes (a reloaded ACL file): every subscriber is then asked again,
// messages already queued for it included. cl is the subscriber's last
// connection; for a session restored from storage and not yet resumed, only
// ID and Username are set.
type AuthorizeReadHook interface {
	AuthorizeRead(ctx context.Context, cl *ClientInfo, topic string) Verdict
}

// ConnectHook decides, after authentication, whether the client may
// connect, and may set its policy. A hook that only sets policy returns
// Next: Allow would stop the Connect hooks after it.
type ConnectHook interface {
	Connect(ctx context.Context, cl *ClientInfo, policy *ClientPolicy) Verdict
}

// PublishHook may rewrite an inbound message (topic, payload, QoS, retain,
// properties) or Deny it, which drops it and answers QoS 1/2 with the
// verdict's reason code.
type PublishHook interface {
	Publish(ctx context.Context, cl *ClientInfo, m *Message) Verdict
}

// DeliverHook may rewrite or Deny one delivery to one subscriber; cl is
// the subscriber, as AuthorizeReadHook describes it. Deliver runs after
// AuthorizeRead has allowed the delivery, for every delivery (its result
// is not cached).
type DeliverHook interface {
	Deliver(ctx context.Context, cl *ClientInfo, m *Message) Verdict
}

// WillHook may rewrite a will message before it is published, or Deny it
// to suppress it.
type WillHook interface {
	Will(ctx context.Context, cl *ClientInfo, m *Message) Verdict
}

// SessionHook is told when a session is created, resumed, taken over or
// expires.
type SessionHook interface {
	OnSession(ctx context.Context, cl *ClientInfo, change SessionChange)
}

// DisconnectedHook is told when a connection ends, with the reason.
type DisconnectedHook interface {
	OnDisconnected(ctx context.Context, cl *ClientInfo, reason packets.ReasonCode, err error)
}

// SubscribedHook is told of each subscription granted.
type SubscribedHook interface {
	OnSubscribed(ctx context.Context, cl *ClientInfo, filter string, qos byte)
}

// UnsubscribedHook is told of each subscription removed.
type UnsubscribedHook interface {
	OnUnsubscribed(ctx context.Context, cl *ClientInfo, filter string)
}

// PublishedHook is told of every message accepted for routing. m is only
// valid during the call: a hook must copy what it keeps.
type PublishedHook interface {
	OnPublished(ctx context.Context, cl *ClientInfo, m *Message)
}

// DroppedHook is told of a message dropped for a client, and why.
type DroppedHook interface {
	OnDropped(ctx context.Context, clientID string, m *Message, why string)
}

// AckedHook is told when a subscriber acknowledges a QoS 1/2 message.
type AckedHook interface {
	OnAcked(ctx context.Context, clientID string, m *Message)
}

// RetainedHook is told when a retained message is set (m non-empty),
// cleared or expires (m with an empty payload).
type RetainedHook interface {
	OnRetained(ctx context.Context, m *Message)
}

// StartedHook is told when the server has started, before its listeners
// accept connections.
type StartedHook interface {
	OnStarted(ctx context.Context)
}

// StoppedHook is told when the server has stopped: every connection is
// closed and the store has written what it was given. It is the last
// event; the server then closes the hooks that implement io.Closer.
type StoppedHook interface {
	OnStopped(ctx context.Context)
}

// SysTickHook is told of each $SYS round, with the counters.
type SysTickHook interface {
	OnSysTick(ctx context.Context, st Stats)
}

// DynamicHook is a hook whose events change while it runs (hooks/js,
// plugins): it implements every event interface, and EventLister and
// TopicFilter say which events and topics it handles now; the server reads
// them when the hook is added and again on Server.RefreshHook. A
// compile-time guard (var _ core.DynamicHook = (*Hook)(nil)) keeps such a
// hook complete as events are added.
type DynamicHook interface {
	Hook
	EventLister
	TopicFilter
	AuthenticateHook
	EnhancedAuthHook
	AuthorizePublishHook
	AuthorizeSubscribeHook
	AuthorizeReadHook
	ConnectHook
	PublishHook
	DeliverHook
	WillHook
	SessionHook
	DisconnectedHook
	SubscribedHook
	UnsubscribedHook
	PublishedHook
	DroppedHook
	AckedHook
	RetainedHook
	StartedHook
	StoppedHook
	SysTickHook
}

// Event identifies one point of the pipeline.
type Event uint8

// The pipeline's events, in the order of eventSpecs.
const (
	EventAuthenticate Event = iota
	EventEnhancedAuth
	EventAuthorizePublish
	EventAuthorizeSubscribe
	EventAuthorizeRead
	EventConnect
	EventPublish
	EventDeliver
	EventWill
	EventSession
	EventDisconnected
	EventSubscribed
	EventUnsubscribed
	EventPublished
	EventDropped
	EventAcked
	EventRetained
	EventStarted
	EventStopped
	EventSysTick
	numEvents
)

// EventKind says how the pipeline runs an event's hooks.
type EventKind uint8

// The kinds of event.
const (
	// KindDecision: the first Allow or Deny ends the chain.
	KindDecision EventKind = iota + 1
	// KindModifier: each hook may change the message; a Deny drops it.
	KindModifier
	// KindNotification: every hook is told; nothing is returned.
	KindNotification
)

// String names the kind.
func (k EventKind) String() string {
	switch k {
	case KindDecision:
		return "decision"
	case KindModifier:
		return "modifier"
	case KindNotification:
		return "notification"
	}
	return "unknown"
}

// eventSpec describes one event: its name in config, logs and metrics, the
// Go method that handles it, and its kind. It is the one table of events
// in the broker: the plugin adapter, the JavaScript hook and the docs'
// table are checked against it.
type eventSpec struct {
	name   string
	method string
	kind   EventKind
}

var eventSpecs = [numEvents]eventSpec{
	EventAuthenticate:       {"authenticate", "Authenticate", KindDecision},
	EventEnhancedAuth:       {"enhanced_auth", "EnhancedAuth", KindDecision},
	EventAuthorizePublish:   {"authorize_publish", "AuthorizePublish", KindDecision},
	EventAuthorizeSubscribe: {"authorize_subscribe", "AuthorizeSubscribe", KindDecision},
	EventAuthorizeRead:      {"authorize_read", "AuthorizeRead", KindDecision},
	EventConnect:            {"connect", "Connect", KindDecision},
	EventPublish:            {"publish", "Publish", KindModifier},
	EventDeliver:            {"deliver", "Deliver", KindModifier},
	EventWill:               {"will", "Will", KindModifier},
	EventSession:            {"session", "OnSession", KindNotification},
	EventDisconnected:       {"disconnected", "OnDisconnected", KindNotification},
	EventSubscribed:         {"subscribed", "OnSubscribed", KindNotification},
	EventUnsubscribed:       {"unsubscribed", "OnUnsubscribed", KindNotification},
	EventPublished:          {"published", "OnPublished", KindNotification},
	EventDropped:            {"dropped", "OnDropped", KindNotification},
	EventAcked:              {"acked", "OnAcked", KindNotification},
	EventRetained:           {"retained", "OnRetained", KindNotification},
	EventStarted:            {"started", "OnStarted", KindNotification},
	EventStopped:            {"stopped", "OnStopped", KindNotification},
	EventSysTick:            {"sys_tick", "OnSysTick", KindNotification},
}

// String returns the event's name as config and logs write it.
func (e Event) String() string {
	if e < numEvents {
		return eventSpecs[e].name
	}
	return "unknown"
}

// Method returns the name of the Go method that handles the event, e.g.
// "OnPublished".
func (e Event) Method() string {
	if e < numEvents {
		return eventSpecs[e].method
	}
	return ""
}

// Kind says whether the event is a decision, a modifier or a
// notification.
func (e Event) Kind() EventKind {
	if e < numEvents {
		return eventSpecs[e].kind
	}
	return 0
}

// HasTopic reports whether the event concerns a message, so that a hook's
// TopicFilter limits it.
func (e Event) HasTopic() bool { return topicEvents.Has(e) }

// topicEvents are the events a hook's topic filters apply to.
var topicEvents = Events(EventAuthorizePublish, EventAuthorizeRead, EventPublish, EventDeliver, EventWill,
	EventPublished, EventDropped, EventAcked, EventRetained)

// EventNamed returns the event whose name (Event.String) is name.
func EventNamed(name string) (Event, bool) {
	for e := range numEvents {
		if eventSpecs[e].name == name {
			return e, true
		}
	}
	return 0, false
}

// AllEvents is the set of every event.
func AllEvents() EventSet { return EventSet(1)<<numEvents - 1 }

// EventSet is a set of events.
type EventSet uint64

// Events returns the set of the given events.
func Events(es ...Event) EventSet {
	var s EventSet
	for _, e := range es {
		s |= 1 << e
	}
	return s
}

// Has reports whether e is in the set.
func (s EventSet) Has(e Event) bool { return s&(1<<e) != 0 }

// All yields the set's events in order.
func (s EventSet) All() iter.Seq[Event] {
	return func(yield func(Event) bool) {
		for e := range numEvents {
			if s.Has(e) && !yield(e) {
				return
			}
		}
	}
}
