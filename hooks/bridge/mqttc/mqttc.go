// Package mqttc is a small MQTT 3.1.1 and 5.0 client over a net.Conn, on the broker's own codec: what a bridge needs, acknowledgements under the caller's control included.
//
// A Client is one network connection: Connect sends CONNECT and waits for
// CONNACK, then three goroutines serve the connection until it ends:
//
//   - the reader decodes packets, calls Options.OnMessage for each PUBLISH
//     and the done callbacks of Publish, and answers the server's PUBREL;
//   - the writer writes every packet, one batch at a time, under a write
//     deadline: acknowledgements and other control packets never wait
//     behind the caller's publishes, and the reader never blocks on the
//     network;
//   - the keepalive loop (with a non-zero keep alive) sends PINGREQ and
//     ends a connection the server stopped answering.
//
// A new connection is a new Client: packet identifiers, the inbound QoS 2
// state and topic aliases are per Client. After reconnecting to a session
// the server kept (SessionPresent true), QoS 1 and 2 publishes whose done
// got an error are not re-sent by the Client; re-publishing them is the
// caller's choice. What a persistent session needs carried over is the
// identifiers of incomplete outbound QoS 2 flows: pass the previous
// Client's Unreleased as Options.Unreleased.
package mqttc

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/vanemq/vanemq/core/packets"
)

// Errors the Client returns or wraps; compare with errors.Is.
var (
	// ErrClosed is Err after Close or Disconnect, and is wrapped by what
	// the operations still waiting on the connection return.
	ErrClosed = errors.New("mqttc: connection closed")
	// ErrKeepAliveTimeout is wrapped by Err when the server did not answer
	// within the keep alive.
	ErrKeepAliveTimeout = errors.New("mqttc: keepalive timeout")
	// ErrPacketTooLarge is returned for a packet larger than the server's
	// Maximum Packet Size (v5 CONNACK).
	ErrPacketTooLarge = errors.New("mqttc: packet exceeds the server's maximum packet size")
	// ErrNoPacketID is returned when all 65535 packet identifiers are in
	// use.
	ErrNoPacketID = errors.New("mqttc: no packet identifier is free")
	// ErrNotSupported is returned for a publish the server announced it
	// does not support (QoS above its Maximum QoS, retain when Retain
	// Available is 0).
	ErrNotSupported = errors.New("mqttc: not supported by the server")
)

// Options configure a connection. The zero value connects with MQTT 3.1.1,
// an empty client identifier and no keep alive.
type Options struct {
	// ClientID is the client identifier; "" asks the server to assign one
	// (v5 returns it in CONNACK as Assigned Client Identifier; 3.1.1
	// requires CleanStart then).
	ClientID string
	// Version is the protocol version: packets.Version311 (4, also taken
	// for 0), packets.Version5 (5) or packets.Version31 (3, protocol name
	// "MQIsdp").
	Version byte
	// Username and Password are sent when UsernameSet and PasswordSet are.
	// Before MQTT 5 a password needs a user name [MQTT-3.1.2-22].
	Username    string
	UsernameSet bool
	Password    []byte
	PasswordSet bool
	// CleanStart is Clean Start (v5) or Clean Session (3.x).
	CleanStart bool
	// KeepAlive is the keep alive; 0 means none. It is rounded to whole
	// seconds in CONNECT (a positive value to at least one second). In v5
	// the server's Server Keep Alive, when present, replaces it.
	KeepAlive time.Duration
	// SessionExpiry is the v5 Session Expiry Interval, in seconds.
	SessionExpiry uint32
	// ReceiveMaximum is the v5 Receive Maximum announced in CONNECT: how
	// many QoS 1 and 2 messages the server may have unacknowledged
	// towards this client. 0 is not sent, which means 65535. A server that
	// exceeds it is disconnected with 0x93 [MQTT-3.3.4-9].
	ReceiveMaximum uint16
	// MaxPacketSize is the largest packet accepted, announced as Maximum
	// Packet Size in v5; 0 means the protocol maximum (256 MiB), not
	// announced.
	MaxPacketSize uint32
	// Will is the will message, if any.
	Will *packets.Will
	// Bridge sets the top bit of a 3.x CONNECT's protocol level, as
	// Mosquitto's bridges do (try_private): a server that knows it does
	// not send back what this client publishes, and keeps the retained
	// flag of what it forwards. A server that does not refuses the
	// connection with 0x01 (unacceptable protocol version).
	Bridge bool
	// Unreleased are the packet identifiers of QoS 2 publishes a previous
	// connection to the same session left incomplete: what its
	// Client.Unreleased returned. When the server resumes the session
	// (SessionPresent), the client sends PUBREL for each before anything
	// else [MQTT-4.4.0-1], and does not reuse them until their PUBCOMP.
	// Otherwise the server may still hold them as received, awaiting
	// PUBREL: it would take a new QoS 2 message under one of them for a
	// duplicate and drop it [MQTT-4.3.3-10], and keep counting them against
	// its Receive Maximum. A message whose PUBREC never came is completed
	// rather than re-sent: if the server had it, it is delivered, and
	// publishing it again delivers it twice. Ignored for a new session.
	Unreleased []uint16
	// OnMessage is called for each PUBLISH received, in order, on the
	// client's reader goroutine. For QoS 1 and 2, ack must be called
	// exactly once, from any goroutine, at any later time: it sends
	// PUBACK (QoS 1) or PUBREC (QoS 2; the client then answers the
	// server's PUBREL with PUBCOMP itself). ack(code): code is the reason
	// code (v5; 0 success; ≥0x80 refuses; on 3.x the code is ignored), and
	// must be one PUBACK and PUBREC may carry. A QoS 2 message the server
	// re-sends with DUP while its PUBREC is pending is not delivered twice
	// [MQTT-4.3.3-10] (3.1.1: [MQTT-4.3.3-2]); neither is a QoS 1 message re-sent before its ack.
	// For QoS 0, ack does nothing; calls after the first, and calls after
	// the connection ended, do nothing either. Acknowledgements are sent
	// in the order ack is called: MQTT asks for the order of reception
	// [MQTT-4.6.0-2] [MQTT-4.6.0-3], which is the caller's to keep if it
	// matters to the server. OnMessage must not block for long (it stalls
	// reading), so it must not wait for the server either: Subscribe,
	// Unsubscribe and a QoS 1 or 2 Publish (which may wait for the receive
	// maximum) need the reader it runs on; Close may be called. With no
	// OnMessage, messages are acknowledged with success and dropped.
	OnMessage func(m Message, ack func(code packets.ReasonCode))
	// Logger receives the client's logs; nil discards them.
	Logger *slog.Logger
}

// Message is an application message, received or to publish.
type Message struct {
	Topic string
	// Payload is owned by the Message: a received one does not share
	// memory with the client's buffers.
	Payload []byte
	QoS     byte
	Retain  bool
	// Dup is the DUP flag of a received PUBLISH; it is ignored by Publish,
	// which sends every message for the first time.
	Dup bool
	// Properties are the v5 PUBLISH properties; zero for 3.x. A received
	// message's Topic Alias is resolved into Topic and removed; its
	// Subscription Identifiers are kept. Publish never sends a Topic
	// Alias or Subscription Identifiers (a client must not
	// [MQTT-3.3.4-6]), so a received Message can be published as it is.
	Properties packets.Properties
}

// ConnectError is a CONNACK that refused the connection.
type ConnectError struct {
	// Code is the v5 reason code (0x80 and above), or the 3.x return code
	// (0x01 to 0x05).
	Code packets.ReasonCode
	// Reason is the v5 Reason String, if the server sent one.
	Reason string

	version byte
}

// Error implements error.
func (e *ConnectError) Error() string {
	what := e.Code.String()
	if n := packets.V3ConnackName(e.Code); e.version != packets.Version5 && n != "" {
		what = fmt.Sprintf("%s (0x%02X)", n, byte(e.Code))
	}
	if e.Reason != "" {
		return fmt.Sprintf("mqttc: connection refused: %s: %s", what, e.Reason)
	}
	return "mqttc: connection refused: " + what
}

// DisconnectError is a DISCONNECT the server sent, which ended the
// connection.
type DisconnectError struct {
	// Code is the v5 reason code (0 for a 3.x DISCONNECT, which servers
	// should not send).
	Code packets.ReasonCode
	// Reason is the v5 Reason String, if the server sent one.
	Reason string
}

// Error implements error.
func (e *DisconnectError) Error() string {
	if e.Reason != "" {
		return fmt.Sprintf("mqttc: server disconnected: %s: %s", e.Code, e.Reason)
	}
	return "mqttc: server disconnected: " + e.Code.String()
}
