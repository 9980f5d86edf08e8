package core

import "sync/atomic"

// stats are the broker's counters, published under $SYS.
type stats struct {
	connections     atomic.Int64 // network connections accepted
	refused         atomic.Int64 // CONNECTs refused
	takeovers       atomic.Int64
	expired         atomic.Int64 // sessions expired
	protocolErrors  atomic.Int64
	packetsIn       atomic.Int64
	messagesIn      atomic.Int64
	messagesOut     atomic.Int64
	bytesIn         atomic.Int64
	bytesOut        atomic.Int64
	dropped         atomic.Int64
	willsSent       atomic.Int64
	hookEventsLost  atomic.Int64 // notifications lost to a full queue
	storeFailures   atomic.Int64 // client batches the store failed to write
	messagesRemote  atomic.Int64 // messages other nodes forwarded here (DeliverRemote)
	forwardFailures atomic.Int64 // client batches the cluster hook could not hand off
	droppedBy       [numDropReasons]atomic.Int64
	refusedBy       [numLimits]atomic.Int64 // requests refused by a limit
	messagesInQoS   [3]atomic.Int64
	messagesOutQoS  [3]atomic.Int64
	payloadInQoS    [3]atomic.Int64
	payloadOutQoS   [3]atomic.Int64
}

// Stats is a snapshot of the broker's counters and gauges.
type Stats struct {
	ClientsConnected int64 // connections with a session now
	Sessions         int64 // sessions, connected or not
	Connections      int64 // network connections accepted since start
	MessagesIn       int64 // PUBLISH packets received
	MessagesOut      int64 // PUBLISH packets sent
	BytesIn          int64 // payload bytes received
	BytesOut         int64 // bytes written to connections
	Dropped          int64 // messages dropped (queue full, expired, too large)
	Subscriptions    int64
	Retained         int64
	// RetainedBytes is the size of the retained messages, as
	// Options.MaxRetainedBytes counts it.
	RetainedBytes  int64
	ProtocolErrors int64
	// HookEventsLost counts OnDropped/OnAcked notifications lost because
	// the notifier's queue was full (see docs/hooks.md).
	HookEventsLost int64
	// StoreFailures counts client changes the store could not write: each
	// closed the client's connection with its acknowledgements withheld.
	StoreFailures int64
	// MessagesFromCluster counts the messages other nodes of a cluster
	// forwarded to this one (Server.DeliverRemote); MessagesIn does not
	// count them.
	MessagesFromCluster int64
	// ForwardFailures counts client batches whose QoS 1/2 messages the
	// cluster hook could not hand off: each closed the client's connection
	// with its acknowledgements withheld.
	ForwardFailures int64
	// DroppedBy counts dropped messages by reason (index: DropReason).
	DroppedBy [numDropReasons]int64
	// RefusedBy counts the subscriptions and retained messages refused
	// by a limit (index: Limit).
	RefusedBy [numLimits]int64
	// MessagesInByQoS and MessagesOutByQoS split MessagesIn and
	// MessagesOut by QoS (index: QoS).
	MessagesInByQoS  [3]int64
	MessagesOutByQoS [3]int64
	// PayloadBytesInByQoS and PayloadBytesOutByQoS count application
	// payload bytes received and sent, by QoS.
	PayloadBytesInByQoS  [3]int64
	PayloadBytesOutByQoS [3]int64
}

// Stats returns a snapshot of the broker's counters.
func (s *Server) Stats() Stats {
	st := Stats{
		Connections:         s.stats.connections.Load(),
		MessagesIn:          s.stats.messagesIn.Load(),
		MessagesOut:         s.stats.messagesOut.Load(),
		BytesIn:             s.stats.bytesIn.Load(),
		BytesOut:            s.stats.bytesOut.Load(),
		Dropped:             s.stats.dropped.Load(),
		Subscriptions:       int64(s.subs.Count()),
		Retained:            int64(s.retained.Len()),
		RetainedBytes:       s.retained.Bytes(),
		ProtocolErrors:      s.stats.protocolErrors.Load(),
		HookEventsLost:      s.stats.hookEventsLost.Load(),
		StoreFailures:       s.stats.storeFailures.Load(),
		MessagesFromCluster: s.stats.messagesRemote.Load(),
		ForwardFailures:     s.stats.forwardFailures.Load(),
	}
	for i := range st.DroppedBy {
		st.DroppedBy[i] = s.stats.droppedBy[i].Load()
	}
	for i := range st.RefusedBy {
		st.RefusedBy[i] = s.stats.refusedBy[i].Load()
	}
	for q := range 3 {
		st.MessagesInByQoS[q] = s.stats.messagesInQoS[q].Load()
		st.MessagesOutByQoS[q] = s.stats.messagesOutQoS[q].Load()
		st.PayloadBytesInByQoS[q] = s.stats.payloadInQoS[q].Load()
		st.PayloadBytesOutByQoS[q] = s.stats.payloadOutQoS[q].Load()
	}
	st.ClientsConnected = s.online.Load()
	s.sessMu.Lock()
	st.Sessions = int64(len(s.sessions))
	s.sessMu.Unlock()
	return st
}

// DropReason says why a message was dropped for a subscriber.
type DropReason uint8

// Why messages are dropped.
const (
	// DropOutboundQueueFull: a QoS 0 message found the client's outbound
	// queue full (a slow or stalled reader).
	DropOutboundQueueFull DropReason = iota
	// DropSessionQueueFull: the session's queue of messages waiting to be
	// sent (offline, or beyond the inflight window) was full.
	DropSessionQueueFull
	// DropExpired: the message expired while it waited.
	DropExpired
	// DropTooLarge: the message is larger than the client's Maximum
	// Packet Size.
	DropTooLarge
	// DropNotAuthorized: the subscriber may not read the topic (an
	// AuthorizeRead hook denied it), at delivery or when a reload
	// re-checked what its session held.
	DropNotAuthorized
	numDropReasons
)

var (
	dropReasonNames = [numDropReasons]string{"outbound_queue_full", "session_queue_full", "expired", "too_large", "not_authorized"}
	dropReasonTexts = [numDropReasons]string{"outbound queue full", "session queue full", "message expired",
		"larger than the client's maximum packet size", "not authorized to read the topic"}
)

// Text describes the reason in words, as OnDropped hooks and logs get it.
func (r DropReason) Text() string {
	if r < numDropReasons {
		return dropReasonTexts[r]
	}
	return "unknown"
}

// String returns the reason as metrics label it.
func (r DropReason) String() string {
	if r < numDropReasons {
		return dropReasonNames[r]
	}
	return "unknown"
}

// DropReasons lists every reason, for metrics.
func DropReasons() []DropReason {
	return []DropReason{DropOutboundQueueFull, DropSessionQueueFull, DropExpired, DropTooLarge}
}
