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
//			{Event: sdk.EventPublished, Mode: sdk.Observer},
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
)

// Plugin is a plugin's implementation. Every method but Init has a
// default in Base: embed it and override the events the plugin handles.
// Methods are called concurrently.
type Plugin interface {
	// Init is called once, before any event: it gets the plugin's config
	// block and a handle on the broker, and says which events the plugin
	// handles, for which topics, and how.
	Init(ctx context.Context, req InitRequest) (Description, error)

	// Authenticate decides whether a CONNECT may proceed.
	Authenticate(ctx context.Context, c *Client, cred *Credentials) Verdict
	// AuthorizePublish decides whether the client may publish m.
	AuthorizePublish(ctx context.Context, c *Client, m *Message) Verdict
	// AuthorizeSubscribe decides whether the client may subscribe to
	// filter; it may lower *qos.
	AuthorizeSubscribe(ctx context.Context, c *Client, filter string, qos *byte) Verdict
	// Connect decides, after authentication, whether the client may
	// connect.
	Connect(ctx context.Context, c *Client) Verdict
	// Publish may change m (topic, payload, QoS, retain, properties) or
	// refuse it, which drops it.
	Publish(ctx context.Context, c *Client, m *Message) Verdict
	// Observe is told of an event the plugin observes. Events come in
	// order, on one goroutine.
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
	Disconnect(ctx context.Context, clientID string, code byte, reason string) error
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
	// Topics limits a message event to these topic filters; empty: every
	// topic.
	Topics []string
}

// Mode is how the broker calls a handler.
type Mode uint8

const (
	// Decision: called synchronously, within the broker's timeout; its
	// result counts. Authenticate, AuthorizePublish, AuthorizeSubscribe,
	// Connect and Publish are decisions.
	Decision Mode = iota + 1
	// Observer: told afterwards, in batches, through Observe; the broker
	// never waits for it, and drops (and counts) events when the plugin
	// falls behind.
	Observer
)

// EventKind names an event.
type EventKind uint8

// The events. The first five are decisions; the rest are observed.
const (
	EventAuthenticate EventKind = iota + 1
	EventAuthorizePublish
	EventAuthorizeSubscribe
	EventConnect
	EventPublish
	EventSession
	EventDisconnected
	EventSubscribed
	EventUnsubscribed
	EventPublished
	EventDropped
	EventAcked
	EventRetained
)

var eventNames = [...]string{"", "authenticate", "authorize_publish", "authorize_subscribe", "connect",
	"publish", "session", "disconnected", "subscribed", "unsubscribed", "published", "dropped", "acked", "retained"}

// String names the event.
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
	AuthMethod  string
	AuthData    []byte
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
	// Client is the client concerned (nil for dropped, acked and
	// retained). It may be shared with the client's other events: read
	// it, do not change it.
	Client *Client
	Msg    *Message // message events
	// Filter and QoS: subscription events.
	Filter string
	QoS    byte
	// Reason: the session change (created, resumed, taken_over,
	// expired), why a message was dropped, or the disconnect reason.
	Reason string
	Code   byte
	// ClientID is the subscriber of dropped and acked events.
	ClientID string
	// Time is when the event happened in the broker; for published, when
	// the broker read the PUBLISH.
	Time time.Time
}

// Verdict is a decision's result.
type Verdict struct {
	Result Result
	// Code is a refusal's MQTT reason code (0x80 or above; 0: 0x87 Not
	// authorized); Reason its reason string.
	Code   byte
	Reason string
}

// Result is a decision's outcome.
type Result uint8

const (
	// ResultNext: no opinion, the next hook decides.
	ResultNext Result = iota
	// ResultAllow: allowed.
	ResultAllow
	// ResultDeny: refused.
	ResultDeny
)

// The common verdicts.
var (
	Next  = Verdict{Result: ResultNext}
	Allow = Verdict{Result: ResultAllow}
)

// Deny refuses with a reason code (0x80 or above) and a reason string.
func Deny(code byte, reason string) Verdict {
	return Verdict{Result: ResultDeny, Code: code, Reason: reason}
}

// Base gives every Plugin method but Init a default: decisions say Next,
// observations are ignored.
type Base struct{}

// Authenticate implements Plugin.
func (Base) Authenticate(context.Context, *Client, *Credentials) Verdict { return Next }

// AuthorizePublish implements Plugin.
func (Base) AuthorizePublish(context.Context, *Client, *Message) Verdict { return Next }

// AuthorizeSubscribe implements Plugin.
func (Base) AuthorizeSubscribe(context.Context, *Client, string, *byte) Verdict { return Next }

// Connect implements Plugin.
func (Base) Connect(context.Context, *Client) Verdict { return Next }

// Publish implements Plugin.
func (Base) Publish(context.Context, *Client, *Message) Verdict { return Next }

// Observe implements Plugin.
func (Base) Observe(context.Context, *Event) {}
