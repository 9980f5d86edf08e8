package core

import (
	"time"
)

// StoreOpKind says what a StoreOp changes.
type StoreOpKind uint8

// The changes a Store records.
const (
	// OpSessionPut creates or updates a session: ClientID, Expiry,
	// Disconnected (zero while a client is connected) and Owner.
	OpSessionPut StoreOpKind = iota + 1
	// OpSessionDelete removes a session and everything it owns:
	// subscriptions, queued and inflight messages, inbound QoS 2 state.
	// The deliveries it owned are each removed first with OpQueueDelete,
	// so a store that counts message references sees them go.
	OpSessionDelete
	// OpSubscriptionPut adds or replaces the session's subscription
	// Subscription (keyed by its Filter, which includes any $share prefix).
	OpSubscriptionPut
	// OpSubscriptionDelete removes the session's subscription
	// Subscription.Filter.
	OpSubscriptionDelete
	// OpQueueAdd adds a delivery to the session's queue: Seq orders the
	// session's deliveries and identifies this one; MessageID identifies
	// the message, shared by every delivery of it, whose content Message
	// returns; QoS, Retain and SubscriptionIDs are this subscriber's view
	// of it; PacketID is non-zero when it is already in flight.
	OpQueueAdd
	// OpQueueUpdate rewrites a stored delivery (the same fields as
	// OpQueueAdd): it went into flight (PacketID), or its PUBREC arrived
	// (Pubrec). The message it refers to is already stored.
	OpQueueUpdate
	// OpQueueDelete removes the delivery ClientID/Seq of message MessageID:
	// acknowledged, expired or discarded.
	OpQueueDelete
	// OpInboundPut records that the inbound QoS 2 message PacketID of
	// ClientID was received and awaits PUBREL.
	OpInboundPut
	// OpInboundDelete removes it on PUBREL.
	OpInboundDelete
	// OpRetainedPut sets the retained message of Message().Topic.
	OpRetainedPut
	// OpRetainedDelete clears the retained message of Topic.
	OpRetainedDelete
)

var storeOpNames = [...]string{
	"", "session_put", "session_delete", "subscription_put", "subscription_delete",
	"queue_add", "queue_update", "queue_delete", "inbound_put", "inbound_delete",
	"retained_put", "retained_delete",
}

// String names the kind.
func (k StoreOpKind) String() string {
	if int(k) < len(storeOpNames) && k != 0 {
		return storeOpNames[k]
	}
	return "unknown"
}

// StoreOp is one change of persistent state; Kind says which fields are
// set. The server reuses ops: a Store copies what it keeps.
type StoreOp struct {
	Kind     StoreOpKind
	ClientID string
	// Topic is the topic of OpRetainedDelete.
	Topic string

	// Session fields.
	Expiry       uint32    // session expiry interval, seconds
	Disconnected time.Time // when the client disconnected; zero while connected
	// Owner is the identity that created the session; a store keeps it so
	// that, restored, the session still refuses other identities.
	Owner Identity

	// Subscription is the subscription of OpSubscriptionPut; only its
	// Filter is set for OpSubscriptionDelete.
	Subscription StoredSubscription

	// Delivery fields (OpQueue*), and PacketID for OpInbound*.
	Seq             uint64
	MessageID       uint64
	PacketID        uint16
	QoS             byte
	Retain          bool
	Pubrec          bool
	SubscriptionIDs []uint32

	msg *message
}

// Message returns the message of an OpQueueAdd, OpQueueUpdate or
// OpRetainedPut: topic, payload, the QoS and retain flag it was published
// with, properties, origin, and when it expires. Its Payload is the
// server's memory: a Store must copy it, not keep it.
func (op *StoreOp) Message() StoredMessage {
	m := op.msg
	if m == nil {
		return StoredMessage{}
	}
	return StoredMessage{
		Message: Message{
			Topic: m.topic, Payload: m.payload, QoS: m.qos, Retain: m.retain,
			Properties: m.properties(), Origin: m.origin,
		},
		ID:      op.MessageID,
		Expires: m.expires,
	}
}

// SetMessage sets the message an op carries (what Message returns), for
// tests of a Store and tools that replay changes into one; the server sets
// it itself.
func (op *StoreOp) SetMessage(m *StoredMessage) {
	now := time.Now()
	props := m.Properties
	msg := buildMessage(m.Topic, m.Payload, m.QoS, m.Retain, m.Origin, &props, now)
	msg.expires = m.Expires
	op.msg = msg
}
