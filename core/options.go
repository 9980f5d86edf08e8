package core

import (
	"log/slog"
	"time"
)

// Options are the broker's limits and capabilities. The zero value of a field
// means "use the default" listed beside it; DefaultOptions returns them all.
type Options struct {
	// MaxPacketSize is the largest packet, in bytes, the broker accepts and
	// the Maximum Packet Size it announces in CONNACK. Default 1 MiB.
	MaxPacketSize uint32
	// ReceiveMaximum is how many QoS 1 and 2 PUBLISH packets a client may
	// have unacknowledged towards the broker. Default 1024.
	ReceiveMaximum uint16
	// MaxInflight caps how many QoS 1 and 2 messages the broker sends to a
	// client before it must acknowledge them (further capped by the
	// client's own Receive Maximum). Default 1024.
	MaxInflight uint16
	// MaxQueuedMessages bounds a session's queue of messages waiting to be
	// sent (offline, or beyond the inflight window). Default 1000.
	MaxQueuedMessages int
	// QueueQoS0 queues QoS 0 messages for offline persistent sessions too.
	// Default false, like Mosquitto.
	QueueQoS0 bool
	// ForeignSession says what happens when a client connects with the
	// client identifier of a session another identity (user name, or
	// certificate subject) created: ForeignSessionDiscard (the default)
	// discards that session and starts a clean one, so the newcomer gets
	// none of its messages or subscriptions; ForeignSessionRefuse refuses
	// the CONNECT with Not authorized (0x87; 0x05 in 3.1.1), leaving the
	// session and any live connection alone.
	ForeignSession ForeignSessionPolicy
	// TopicAliasMaximum is the number of topic aliases a client may use
	// towards the broker, and the most the broker assigns towards a client.
	// Default 32 (a zero field takes the default): enough for a device's
	// every topic, while an alias table's memory stays small (Mosquitto
	// announces 10, HiveMQ 5); DisableTopicAliases
	// turns aliases off, which is what topic_alias_maximum: 0 in the config
	// file maps to.
	TopicAliasMaximum uint16
	// DisableTopicAliases announces Topic Alias Maximum 0 and never
	// assigns outbound aliases.
	DisableTopicAliases bool
	// SessionExpiryMax caps the session expiry interval a client may ask
	// for, in seconds. Default 86400 (one day).
	SessionExpiryMax uint32
	// ServerKeepAlive, when non-zero, overrides the client's keep alive
	// with this many seconds (v5 Server Keep Alive). Default 0 (accept).
	ServerKeepAlive uint16
	// ConnectTimeout is how long a new connection may take to send
	// CONNECT. Default 10s.
	ConnectTimeout time.Duration
	// SysInterval is how often $SYS topics are published; negative turns
	// them off. Default 10s.
	SysInterval time.Duration
	// MaxClientIDLen is the longest client identifier accepted. Default 65535.
	MaxClientIDLen int
	// MaxConnectSize is the largest packet, in bytes, accepted before the
	// broker has answered CONNECT: the CONNECT itself (with its will) and
	// any AUTH exchange. It is capped at MaxPacketSize. A client that is
	// not yet authenticated can then make the broker read no more than
	// this. Default 65536.
	MaxConnectSize uint32
	// MaxTopicLevels is the most levels (parts between '/') a topic name or
	// topic filter may have; deeper ones are refused with Topic Name
	// invalid (0x90) or Topic Filter invalid (0x8F). Default 128, as EMQX.
	MaxTopicLevels int
	// TopicAliasBytes bounds the bytes of topic names one connection's
	// topic aliases hold, inbound and outbound each. A client that sets
	// aliases beyond it is disconnected with Quota exceeded (0x97); an
	// outbound topic beyond it is sent in full. Default 65536.
	TopicAliasBytes int
	// OutboundQueue is the per-client bound of packets waiting for the
	// writer. Default 1024.
	OutboundQueue int
	// MaxSubscriptions is the most subscriptions one session may hold,
	// shared ones included. A SUBSCRIBE entry for one more filter is
	// refused with Quota exceeded (0x97; 0x80 for MQTT 3.x), the others in
	// the packet are still granted; subscribing again to a filter the
	// session holds does not count twice. A session restored from a store
	// with more keeps them, but may add none. Default 10000; negative: no
	// limit.
	MaxSubscriptions int
	// MaxRetainedMessages and MaxRetainedBytes bound the broker's retained
	// messages, all clients together: how many, and their size (the bytes
	// of topic, payload and the properties kept with them). A retained
	// PUBLISH that would take the store over either is refused whole: not
	// retained, not delivered, answered with Quota exceeded (0x97) to an
	// MQTT 5 client at QoS 1 or 2. Replacing a message counts by the
	// difference in size, clearing one is always allowed, and messages
	// restored from a store are kept even over the bounds. Defaults
	// 1000000 and 1 GiB; negative: no limit.
	MaxRetainedMessages int
	MaxRetainedBytes    int64
	// DisableRetain, DisableWildcardSubs, DisableSubIDs and
	// DisableSharedSubs turn optional features off (all are on by default);
	// v5 clients are told in CONNACK, and requests that use them are refused
	// with the matching reason code.
	DisableRetain       bool
	DisableWildcardSubs bool
	DisableSubIDs       bool
	DisableSharedSubs   bool

	// AllowAnonymous lets a client connect when no hook authenticated it
	// (every Authenticate hook said Next, or there are none). Default
	// false: with no authentication hook, nobody connects; the vanemq
	// binary's built-in config, loopback only, sets it, as Mosquitto 2
	// does for local-only use.
	AllowAnonymous bool

	// Logger receives the broker's logs. Default slog.Default().
	Logger *slog.Logger
	// Version is reported in $SYS/broker/version.
	Version string
}

// DefaultOptions returns the documented defaults.
func DefaultOptions() Options {
	var o Options
	o.fill()
	return o
}

// fill replaces zero values with defaults.
func (o *Options) fill() {
	if o.MaxPacketSize == 0 {
		o.MaxPacketSize = 1 << 20
	}
	if o.ReceiveMaximum == 0 {
		o.ReceiveMaximum = 1024
	}
	if o.MaxInflight == 0 {
		o.MaxInflight = 1024
	}
	if o.MaxQueuedMessages == 0 {
		o.MaxQueuedMessages = 1000
	}
	if o.TopicAliasMaximum == 0 {
		o.TopicAliasMaximum = 32
	}
	if o.SessionExpiryMax == 0 {
		o.SessionExpiryMax = 86400
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = 10 * time.Second
	}
	if o.SysInterval == 0 {
		o.SysInterval = 10 * time.Second
	}
	if o.MaxClientIDLen == 0 {
		o.MaxClientIDLen = 65535
	}
	if o.MaxConnectSize == 0 {
		o.MaxConnectSize = 64 << 10
	}
	if o.MaxTopicLevels == 0 {
		o.MaxTopicLevels = 128
	}
	if o.TopicAliasBytes == 0 {
		o.TopicAliasBytes = 64 << 10
	}
	if o.OutboundQueue == 0 {
		o.OutboundQueue = 1024
	}
	if o.MaxSubscriptions == 0 {
		o.MaxSubscriptions = 10000
	}
	if o.MaxRetainedMessages == 0 {
		o.MaxRetainedMessages = 1000000
	}
	if o.MaxRetainedBytes == 0 {
		o.MaxRetainedBytes = 1 << 30
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Version == "" {
		o.Version = "dev"
	}
}
