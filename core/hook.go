package core

import (
	"context"
	"crypto/tls"
	"time"

	"github.com/vanemq/vanemq/core/packets"
)

// Hook is one stage of the broker's hook pipeline: authentication,
// authorization, message rewriting, persistence, bridging, metrics. A hook
// embeds HookBase, overrides the methods of the events it handles, and
// lists those events in Events; the pipeline calls a hook only for the
// events it lists (and, for message events, only for topics matching its
// Topics), so an event nobody handles costs nothing.
//
// Decisions (Authenticate, AuthorizePublish, AuthorizeSubscribe, Connect)
// return a Verdict: Allow or Deny ends the chain, Next passes to the next
// hook; when every hook says Next the server's default applies (deny
// unless AllowAnonymous). Modifiers (Publish, Deliver, Will) may change
// the message they are given, or Deny it. Notifications (the On methods)
// return nothing and are told what happened.
//
// Hooks run in priority order, higher first, ties broken by ID. Each call
// gets a context carrying the connection's lifetime; a panic is recovered,
// logged with the hook's ID and counted as the hook's failure: a decision
// fails closed (deny), a modifier leaves the message unchanged and denies
// it, a notification is ignored.
type Hook interface {
	// ID names the hook in config, logs and metrics, e.g. "auth.file".
	ID() string
	// Events lists the events the hook handles.
	Events() EventSet
	// Topics lists the topic filters whose messages the hook's message
	// events (AuthorizePublish, Publish, Deliver, Will, OnPublished,
	// OnDropped, OnAcked, OnRetained) see; nil means every topic.
	Topics() []string

	// Authenticate decides whether a CONNECT may proceed, from its
	// credentials and the TLS peer identity when there is one.
	Authenticate(ctx context.Context, cl *ClientInfo, cred *Credentials) Verdict
	// EnhancedAuth runs one step of an MQTT 5 AUTH exchange: the first
	// step comes from CONNECT's Authentication Method and Data, later ones
	// from AUTH packets, and re-authentication from an AUTH with reason
	// 0x19 after connecting. Allow ends it successfully, Deny refuses, and
	// Next with step.Continue set asks the client for another round with
	// step.Response as its Authentication Data.
	EnhancedAuth(ctx context.Context, cl *ClientInfo, step *AuthStep) Verdict
	// AuthorizePublish decides whether the client may publish m. m is
	// only valid during the call: a hook must copy what it keeps.
	AuthorizePublish(ctx context.Context, cl *ClientInfo, m *Message) Verdict
	// AuthorizeSubscribe decides whether the client may subscribe to
	// filter; it may lower *qos, the QoS to grant.
	AuthorizeSubscribe(ctx context.Context, cl *ClientInfo, filter string, qos *byte) Verdict
	// Connect decides, after authentication, whether the client may
	// connect, and may set its policy.
	Connect(ctx context.Context, cl *ClientInfo, policy *ClientPolicy) Verdict

	// Publish may rewrite an inbound message (topic, payload, QoS, retain,
	// properties) or Deny it, which drops it and answers QoS 1/2 with the
	// verdict's reason code.
	Publish(ctx context.Context, cl *ClientInfo, m *Message) Verdict
	// Deliver may rewrite or Deny one delivery to one subscriber.
	Deliver(ctx context.Context, subscriber string, m *Message) Verdict
	// Will may rewrite a will message before it is published, or Deny it
	// to suppress it.
	Will(ctx context.Context, cl *ClientInfo, m *Message) Verdict

	// OnSession is told when a session is created, resumed, taken over or
	// expires.
	OnSession(ctx context.Context, cl *ClientInfo, change SessionChange)
	// OnDisconnected is told when a connection ends, with the reason.
	OnDisconnected(ctx context.Context, cl *ClientInfo, reason packets.ReasonCode, err error)
	// OnSubscribed and OnUnsubscribed are told of subscription changes.
	OnSubscribed(ctx context.Context, cl *ClientInfo, filter string, qos byte)
	OnUnsubscribed(ctx context.Context, cl *ClientInfo, filter string)
	// OnPublished is told of every message accepted for routing. m is
	// only valid during the call: a hook must copy what it keeps.
	OnPublished(ctx context.Context, cl *ClientInfo, m *Message)
	// OnDropped is told of a message dropped for a client, and why.
	OnDropped(ctx context.Context, clientID string, m *Message, why string)
	// OnAcked is told when a subscriber acknowledges a QoS 1/2 message.
	OnAcked(ctx context.Context, clientID string, m *Message)
	// OnRetained is told when a retained message is set (m non-empty),
	// cleared or expires (m with an empty payload).
	OnRetained(ctx context.Context, m *Message)
	// OnStarted and OnStopped bracket the server's life.
	OnStarted(ctx context.Context)
	OnStopped(ctx context.Context)
	// OnSysTick is told of each $SYS round, with the counters.
	OnSysTick(ctx context.Context, st Stats)
}

// Event identifies one point of the pipeline.
type Event uint8

// The pipeline's events.
const (
	EventAuthenticate Event = iota
	EventEnhancedAuth
	EventAuthorizePublish
	EventAuthorizeSubscribe
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

var eventNames = [numEvents]string{
	"authenticate", "enhanced_auth", "authorize_publish", "authorize_subscribe", "connect",
	"publish", "deliver", "will",
	"session", "disconnected", "subscribed", "unsubscribed", "published",
	"dropped", "acked", "retained", "started", "stopped", "sys_tick",
}

// String returns the event's name as config and logs write it.
func (e Event) String() string {
	if e < numEvents {
		return eventNames[e]
	}
	return "unknown"
}

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

// Decision is the outcome of a hook's decision.
type Decision uint8

// The three outcomes.
const (
	// DecisionNext: no opinion; the next hook decides.
	DecisionNext Decision = iota
	// DecisionAllow: allowed; no later hook is asked.
	DecisionAllow
	// DecisionDeny: refused with a reason code; no later hook is asked.
	DecisionDeny
)

// Verdict is what a decision or modifier returns.
type Verdict struct {
	Decision Decision
	// Code is the MQTT reason code of a Deny (NotAuthorized when zero).
	Code packets.ReasonCode
	// Reason is the reason string sent to v5 clients that asked for
	// problem information, and logged.
	Reason string
}

// Verdicts to return.
var (
	// Next is the Next verdict.
	Next = Verdict{Decision: DecisionNext}
	// Allow is the Allow verdict.
	Allow = Verdict{Decision: DecisionAllow}
)

// Deny returns a Deny verdict with a reason code and reason string.
func Deny(code packets.ReasonCode, reason string) Verdict {
	return Verdict{Decision: DecisionDeny, Code: code, Reason: reason}
}

// ClientInfo describes a connection to hooks. Hooks must not change it.
type ClientInfo struct {
	ID              string
	Username        string
	Remote          string // remote address
	Listener        string // listener ID
	ProtocolVersion byte
	CleanStart      bool
	// TLS is the TLS state of the connection, with the verified peer
	// certificates under mTLS; nil for plain connections.
	TLS *tls.ConnectionState
}

// Credentials are what a CONNECT offers for authentication.
type Credentials struct {
	Username     string
	UsernameSet  bool
	Password     []byte
	PasswordSet  bool
	AuthMethod   string // MQTT 5 enhanced authentication method, if any
	AuthData     []byte
	UserProperty []packets.UserProperty
}

// AuthStep is one step of an MQTT 5 enhanced authentication exchange.
type AuthStep struct {
	Method string // the Authentication Method, fixed for the exchange
	Data   []byte // the client's Authentication Data for this step
	// Reauth is set when a connected client re-authenticates.
	Reauth bool
	// Continue and Response are set by the hook to ask for another round:
	// the server sends AUTH 0x18 with Response as Authentication Data.
	Continue bool
	Response []byte
}

// ClientPolicy is per-client policy a Connect hook may set; zero fields
// keep the server's options.
type ClientPolicy struct {
	MaxQueuedMessages int
	MaxInflight       uint16
	MaxPacketSize     uint32
	// Mountpoint prefixes every topic the client publishes or subscribes
	// to, and is removed from topics delivered to it: "tenant-a/".
	Mountpoint string
	// SessionExpiryMax, when set, replaces Options.SessionExpiryMax as the
	// longest session expiry interval the client may have, in seconds.
	SessionExpiryMax uint32
}

// Message is an application message as hooks and the inline client see it.
type Message struct {
	Topic      string
	Payload    []byte
	QoS        byte
	Retain     bool
	Properties packets.Properties
	// Origin is the publishing client's ID, "" for the broker itself.
	Origin string
	// Received is when the broker read the PUBLISH, for the events of its
	// publication (AuthorizePublish, Publish, OnPublished); it is zero
	// for the rest, whose messages were queued or stored before.
	Received time.Time
}

// SessionChange says what happened to a session.
type SessionChange uint8

// Session changes.
const (
	SessionCreated SessionChange = iota
	SessionResumed
	SessionTakenOver
	SessionExpired
)

// HookBase gives a hook no-op handlers for every event; embed it and
// override what the hook handles.
type HookBase struct{}

// Topics implements Hook: every topic.
func (HookBase) Topics() []string { return nil }

// EnhancedAuth implements Hook.
func (HookBase) EnhancedAuth(context.Context, *ClientInfo, *AuthStep) Verdict { return Next }

// Authenticate implements Hook.
func (HookBase) Authenticate(context.Context, *ClientInfo, *Credentials) Verdict { return Next }

// AuthorizePublish implements Hook.
func (HookBase) AuthorizePublish(context.Context, *ClientInfo, *Message) Verdict { return Next }

// AuthorizeSubscribe implements Hook.
func (HookBase) AuthorizeSubscribe(context.Context, *ClientInfo, string, *byte) Verdict { return Next }

// Connect implements Hook.
func (HookBase) Connect(context.Context, *ClientInfo, *ClientPolicy) Verdict { return Next }

// Publish implements Hook.
func (HookBase) Publish(context.Context, *ClientInfo, *Message) Verdict { return Next }

// Deliver implements Hook.
func (HookBase) Deliver(context.Context, string, *Message) Verdict { return Next }

// Will implements Hook.
func (HookBase) Will(context.Context, *ClientInfo, *Message) Verdict { return Next }

// OnSession implements Hook.
func (HookBase) OnSession(context.Context, *ClientInfo, SessionChange) {}

// OnDisconnected implements Hook.
func (HookBase) OnDisconnected(context.Context, *ClientInfo, packets.ReasonCode, error) {}

// OnSubscribed implements Hook.
func (HookBase) OnSubscribed(context.Context, *ClientInfo, string, byte) {}

// OnUnsubscribed implements Hook.
func (HookBase) OnUnsubscribed(context.Context, *ClientInfo, string) {}

// OnPublished implements Hook.
func (HookBase) OnPublished(context.Context, *ClientInfo, *Message) {}

// OnDropped implements Hook.
func (HookBase) OnDropped(context.Context, string, *Message, string) {}

// OnAcked implements Hook.
func (HookBase) OnAcked(context.Context, string, *Message) {}

// OnRetained implements Hook.
func (HookBase) OnRetained(context.Context, *Message) {}

// OnStarted implements Hook.
func (HookBase) OnStarted(context.Context) {}

// OnStopped implements Hook.
func (HookBase) OnStopped(context.Context) {}

// OnSysTick implements Hook.
func (HookBase) OnSysTick(context.Context, Stats) {}
