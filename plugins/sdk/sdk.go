// Package sdk is what a vanemq plugin binary imports: implement Plugin
// (embed Base and override what the plugin handles), describe the events
// in Init, and call Serve from main. The broker runs the binary, talks to
// it over gRPC (hashicorp/go-plugin), and calls it only for the events
// and topics it described. See docs/plugins.md.
//
//	type audit struct{ sdk.Base }
//
//	func (a *audit) Init(ctx context.Context, req sdk.InitRequest) (sdk.Description, error) {
//		return sdk.Description{Name: "audit", Handlers: []sdk.Handler{
//			{Event: sdk.EventPublished, Mode: sdk.ModeObserver},
//		}}, nil
//	}
//
//	func (a *audit) Observe(ctx context.Context, e *sdk.Event) { ... }
//
//	func main() { sdk.Serve(&audit{}) }
package sdk

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/vanemq/vanemq/core/packets"
)

// Plugin is a plugin's implementation: the same events as the Go hook
// contract (core.Hook), with the same names, arguments and verdicts. Every
// method but Init has a default in Base: embed it and override the events
// the plugin handles. Methods are called concurrently.
type Plugin interface {
	// Init is called once, before any event: it gets the plugin's config
	// block and a handle on the broker, and says which events the plugin
	// handles, for which topics, and how.
	Init(ctx context.Context, req InitRequest) (Description, error)

	// Authenticate decides whether a CONNECT may proceed.
	Authenticate(ctx context.Context, c *Client, cred *Credentials) Verdict
	// EnhancedAuth runs one step of an MQTT 5 AUTH exchange: the first
	// comes from CONNECT's Authentication Method and Data, later ones
	// from AUTH packets, and re-authentication (step.Reauth) from an AUTH
	// 0x19 after connecting. Allow ends it successfully (step.Response,
	// when set, goes to the client as Authentication Data), Deny refuses,
	// and Next with step.Continue set asks the client for another round
	// with step.Response.
	EnhancedAuth(ctx context.Context, c *Client, step *AuthStep) Verdict
	// AuthorizePublish decides whether the client may publish m.
	AuthorizePublish(ctx context.Context, c *Client, m *Message) Verdict
	// AuthorizeSubscribe decides whether the client may subscribe to
	// filter; it may lower *qos.
	AuthorizeSubscribe(ctx context.Context, c *Client, filter string, qos *byte) Verdict
	// AuthorizeRead decides whether the subscriber c may receive a
	// message on topic: it is asked at delivery, for each subscriber a
	// message is routed to (retained messages sent on subscribe
	// included), and a Deny drops that one delivery, silently. The broker
	// caches the verdict per subscriber and topic, so decide from c and
	// topic alone; the cache is forgotten when the plugin restarts. For a
	// session restored from storage and not yet resumed, c has only ID
	// and Username.
	AuthorizeRead(ctx context.Context, c *Client, topic string) Verdict
	// Connect decides, after authentication, whether the client may
	// connect, and may change its policy: policy is as the hooks before
	// the plugin left it, and the fields the plugin changes change it. A
	// plugin that only sets policy returns Next: Allow would stop the
	// Connect hooks after it.
	Connect(ctx context.Context, c *Client, policy *ClientPolicy) Verdict
	// Publish may change m (topic, payload, QoS, retain, properties) or
	// Deny it, which drops it and answers QoS 1/2 with the verdict's code.
	Publish(ctx context.Context, c *Client, m *Message) Verdict
	// Deliver may change or Deny one delivery of m to the subscriber c
	// (as AuthorizeRead's c), after AuthorizeRead allowed it.
	Deliver(ctx context.Context, c *Client, m *Message) Verdict
	// Will may change a will message before it is published, or Deny it
	// to suppress it.
	Will(ctx context.Context, c *Client, m *Message) Verdict
	// Observe is told of an event the plugin observes: the notifications
	// (session, disconnected, subscribed, unsubscribed, published,
	// dropped, acked, retained, started, stopped, sys_tick). Events come
	// in order, on one goroutine.
	Observe(ctx context.Context, e *Event)
}

// InitRequest is what Init gets.
type InitRequest struct {
	// Config is the plugin's config block from the broker's config file,
	// as JSON ("null" when there is none).
	Config json.RawMessage
	// Host publishes and disconnects clients in the broker.
	Host Host
}

// Decode decodes the config block into v, refusing unknown keys.
func (r InitRequest) Decode(v any) error {
	if len(r.Config) == 0 || string(r.Config) == "null" {
		return nil
	}
	d := json.NewDecoder(bytes.NewReader(r.Config))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("plugin config: %w", err)
	}
	return nil
}

// Host is what a plugin may ask of the broker.
type Host interface {
	// Publish publishes a message as the broker.
	Publish(ctx context.Context, m *Message) error
	// Disconnect closes a client's connection; MQTT 5 clients get a
	// DISCONNECT with code (0: 0x98 Administrative action) and reason.
	Disconnect(ctx context.Context, clientID string, code ReasonCode, reason string) error
}

// Description is what a plugin handles.
type Description struct {
	// Name names the plugin in the broker's logs.
	Name     string
	Handlers []Handler
}

// Handler is one event a plugin handles.
type Handler struct {
	Event EventKind
	Mode  Mode
	// Topics limits a message event (authorize_publish, authorize_read,
	// publish, deliver, will, published, dropped, acked, retained) to
	// these topic filters; empty: every topic.
	Topics []string
}

// Mode is how the broker calls a handler.
type Mode uint8

const (
	// ModeDecision: called synchronously, within the broker's timeout;
	// its verdict counts. The decisions (authenticate, enhanced_auth,
	// authorize_publish, authorize_subscribe, authorize_read, connect)
	// and the modifiers (publish, deliver, will) are handled so, and only
	// so.
	ModeDecision Mode = iota + 1
	// ModeObserver: told afterwards, in batches, through Observe; the
	// broker never waits for it, and drops (and counts) events when the
	// plugin falls behind. The notifications are handled so, and only so.
	ModeObserver
)

// EventKind names an event. Its values are the plugin protocol's
// (plugin.proto's Event), and its names (String) core.Event's.
type EventKind uint8

// The events, numbered as the protocol numbers them, which is the order
// they were added to it, not core's.
const (
	EventAuthenticate       EventKind = 1  // decision
	EventAuthorizePublish   EventKind = 2  // decision
	EventAuthorizeSubscribe EventKind = 3  // decision
	EventConnect            EventKind = 4  // decision
	EventPublish            EventKind = 5  // modifier
	EventSession            EventKind = 6  // notification
	EventDisconnected       EventKind = 7  // notification
	EventSubscribed         EventKind = 8  // notification
	EventUnsubscribed       EventKind = 9  // notification
	EventPublished          EventKind = 10 // notification
	EventDropped            EventKind = 11 // notification
	EventAcked              EventKind = 12 // notification
	EventRetained           EventKind = 13 // notification
	EventEnhancedAuth       EventKind = 14 // decision
	EventDeliver            EventKind = 15 // modifier
	EventWill               EventKind = 16 // modifier
	EventStarted            EventKind = 17 // notification
	EventStopped            EventKind = 18 // notification
	EventSysTick            EventKind = 19 // notification
	EventAuthorizeRead      EventKind = 20 // decision
)

var eventNames = [...]string{"", "authenticate", "authorize_publish", "authorize_subscribe", "connect",
	"publish", "session", "disconnected", "subscribed", "unsubscribed", "published", "dropped", "acked", "retained",
	"enhanced_auth", "deliver", "will", "started", "stopped", "sys_tick", "authorize_read"}

// String names the event as the broker's config and logs do
// (core.Event.String): "authorize_publish", "sys_tick".
func (e EventKind) String() string {
	if int(e) < len(eventNames) && e != 0 {
		return eventNames[e]
	}
	return fmt.Sprintf("event(%d)", e)
}

// Client describes a client connection.
type Client struct {
	ID              string
	Username        string
	Remote          string
	Listener        string
	ProtocolVersion byte
	CleanStart      bool
	// CertCommonName and CertDNSNames are the verified TLS client
	// certificate's, when there is one.
	CertCommonName string
	CertDNSNames   []string
}

// Credentials are what a CONNECT offers.
type Credentials struct {
	Username    string
	UsernameSet bool
	Password    []byte
	PasswordSet bool
	AuthMethod  string // MQTT 5 enhanced authentication method, if any
	AuthData    []byte
	// UserProperty are CONNECT's user properties.
	UserProperty []UserProperty
}

// AuthStep is one step of an MQTT 5 enhanced authentication exchange.
type AuthStep struct {
	Method string // the Authentication Method, fixed for the exchange
	Data   []byte // the client's Authentication Data for this step
	// Reauth is set when a connected client re-authenticates.
	Reauth bool
	// Continue and Response are set by the plugin to ask for another
	// round: the broker sends AUTH 0x18 with Response as Authentication
	// Data. With Allow, Response is the final Authentication Data.
	Continue bool
	Response []byte
}

// ClientPolicy is per-client policy a Connect handler may set; zero
// fields keep the broker's options.
type ClientPolicy struct {
	MaxQueuedMessages int
	MaxInflight       uint16
	MaxPacketSize     uint32
	// Mountpoint prefixes every topic the client publishes or subscribes
	// to, and is removed from topics delivered to it: "tenant-a/". It may
	// not hold the wildcards + and #.
	Mountpoint string
	// SessionExpiryMax, when set, replaces the broker's
	// session_expiry_max as the longest session expiry interval the
	// client may have, in seconds.
	SessionExpiryMax uint32
}

// Message is an application message.
type Message struct {
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool
	// Origin is the publishing client's ID, "" for the broker.
	Origin     string
	Properties Properties
}

// Properties are the MQTT 5 properties that travel with a message.
type Properties struct {
	PayloadFormat   *byte
	MessageExpiry   *uint32
	ContentType     string
	ResponseTopic   string
	CorrelationData []byte
	UserProperties  []UserProperty
}

// UserProperty is an MQTT 5 user property.
type UserProperty struct{ Key, Value string }

// Event is an observed event. It may be kept after Observe returns; its
// strings and payload share memory with the other events of its batch,
// which stays allocated while any of them is referenced.
type Event struct {
	Kind EventKind
	// Client is the client concerned (nil for dropped, acked, retained,
	// started, stopped and sys_tick). It may be shared with the client's
	// other events: read it, do not change it.
	Client *Client
	Msg    *Message // message events
	// Filter and QoS: subscription events.
	Filter string
	QoS    byte
	// Reason: the session change (created, resumed, taken_over,
	// expired), why a message was dropped, or the disconnect reason.
	Reason string
	// Code is the disconnect's reason code.
	Code ReasonCode
	// ClientID is the subscriber of dropped and acked events.
	ClientID string
	// Stats are the broker's counters, for sys_tick.
	Stats *Stats
	// Time is when the event happened in the broker; for published, when
	// the broker read the PUBLISH.
	Time time.Time
}

// Stats are the broker's counters at a $SYS round (core.Stats), which a
// sys_tick event carries.
type Stats struct {
	ClientsConnected int64 // connections with a session now
	Sessions         int64 // sessions, connected or not
	Connections      int64 // network connections accepted since start
	MessagesIn       int64 // PUBLISH packets received
	MessagesOut      int64 // PUBLISH packets sent
	BytesIn          int64 // payload bytes received
	BytesOut         int64 // bytes written to connections
	Dropped          int64 // messages dropped (queue full, expired, too large, not authorized)
	Subscriptions    int64
	Retained         int64
	RetainedBytes    int64
	ProtocolErrors   int64
	HookEventsLost   int64
	StoreFailures    int64
	// DroppedBy counts dropped messages by reason, named as the metrics
	// label them: outbound_queue_full, session_queue_full, expired,
	// too_large, not_authorized.
	DroppedBy map[string]int64
	// RefusedBy counts refusals by limit, named as its config key:
	// max_subscriptions, max_retained_messages, max_retained_bytes.
	RefusedBy map[string]int64
	// The messages and payload bytes, by QoS.
	MessagesInByQoS      [3]int64
	MessagesOutByQoS     [3]int64
	PayloadBytesInByQoS  [3]int64
	PayloadBytesOutByQoS [3]int64
}

// ReasonCode is an MQTT reason code: the constants of
// github.com/vanemq/vanemq/core/packets (packets.NotAuthorized,
// packets.QuotaExceeded…) are of this type.
type ReasonCode = packets.ReasonCode

// Verdict is what a decision or modifier returns, as core.Verdict.
type Verdict struct {
	Decision Decision
	// Code is the MQTT reason code of a Deny (0x80 or above;
	// packets.NotAuthorized when zero).
	Code ReasonCode
	// Reason is the reason string sent to v5 clients that asked for
	// problem information, and logged.
	Reason string
}

// Decision is the outcome of a decision.
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

// Verdicts to return.
var (
	// Next is the Next verdict.
	Next = Verdict{Decision: DecisionNext}
	// Allow is the Allow verdict.
	Allow = Verdict{Decision: DecisionAllow}
)

// Deny returns a Deny verdict with a reason code (0x80 or above) and a
// reason string.
func Deny(code ReasonCode, reason string) Verdict {
	return Verdict{Decision: DecisionDeny, Code: code, Reason: reason}
}

// Base gives every Plugin method but Init a default: decisions say Next,
// observations are ignored.
type Base struct{}

// Authenticate implements Plugin.
func (Base) Authenticate(context.Context, *Client, *Credentials) Verdict { return Next }

// EnhancedAuth implements Plugin.
func (Base) EnhancedAuth(context.Context, *Client, *AuthStep) Verdict { return Next }

// AuthorizePublish implements Plugin.
func (Base) AuthorizePublish(context.Context, *Client, *Message) Verdict { return Next }

// AuthorizeSubscribe implements Plugin.
func (Base) AuthorizeSubscribe(context.Context, *Client, string, *byte) Verdict { return Next }

// Connect implements Plugin.
func (Base) Connect(context.Context, *Client, *ClientPolicy) Verdict { return Next }

// Publish implements Plugin.
func (Base) Publish(context.Context, *Client, *Message) Verdict { return Next }

// AuthorizeRead implements Plugin.
func (Base) AuthorizeRead(context.Context, *Client, string) Verdict { return Next }

// Deliver implements Plugin.
func (Base) Deliver(context.Context, *Client, *Message) Verdict { return Next }

// Will implements Plugin.
func (Base) Will(context.Context, *Client, *Message) Verdict { return Next }

// Observe implements Plugin.
func (Base) Observe(context.Context, *Event) {}
