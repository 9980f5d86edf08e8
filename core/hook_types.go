package core

import (
	"crypto/tls"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/vanemq/vanemq/core/packets"
)

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
	// Transient marks a verdict that holds for this call only, such as
	// one a failing hook fell back to: a read verdict (AuthorizeReadHook)
	// with it set is not cached.
	Transient bool
	// SameForAll marks a read verdict (AuthorizeReadHook) that holds for
	// every subscriber, not only the one asked about: the server then
	// caches it per topic for all sessions. A chain's verdict has it only
	// when every hook that was asked set it (a Next included).
	SameForAll bool
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

// CheckMountpoint says what is wrong with a mountpoint (ClientPolicy), or
// nil: it becomes the start of every topic name and filter of its client,
// so it must be valid UTF-8 with no wildcard or NUL, no longer than a
// topic, and must not start with '$', which would put the client's topics
// among the broker's [MQTT-4.7.2-1]. "" is none. The server refuses a
// CONNECT whose Connect hooks set an invalid one (0x83); the plugin and
// JavaScript forms check theirs with it too.
func CheckMountpoint(mp string) error {
	switch {
	case !utf8.ValidString(mp):
		return fmt.Errorf("%q is not valid UTF-8", mp)
	case strings.ContainsAny(mp, "+#\x00"):
		return fmt.Errorf("%q holds a wildcard (+ or #) or a null character", mp)
	case strings.HasPrefix(mp, "$"):
		return fmt.Errorf("%q starts with $, which would put the client's topics among the broker's", mp)
	case len(mp) > 65535:
		return fmt.Errorf("mountpoint of %d bytes is longer than a topic can be", len(mp))
	}
	return nil
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
