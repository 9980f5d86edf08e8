package core

import "context"

// The optional interfaces a hook may implement besides its event
// interfaces (hook.go), all in one place. The server finds them by type
// assertion, as it finds the event interfaces; state them with
// compile-time guards next to the hook (var _ core.Store = (*S)(nil)).
//
//	TopicFilter     limits the hook's message events to some topics
//	EventLister     the events of a hook whose events change (DynamicHook)
//	FailureCounter  failures the hook counts itself, in HookStatus
//	HealthChecker   unhealthy states, in /readyz and HookStatus
//	Restarter       restarts on an operator's request (the admin API)
//	BridgeReporter  bridges to other brokers, in Server.Bridges and $SYS
//	ClusterReporter a node's cluster membership, in Server.ClusterStatus
//	                (cluster_status.go)
//	Loader, Store   the broker's state across restarts
//	io.Closer       closed by the server after OnStopped

// TopicFilter is implemented by hooks whose message events (those for
// which Event.HasTopic holds: AuthorizePublish, Publish, Deliver, Will,
// OnPublished, OnDropped, OnAcked, OnRetained) are for some topics only:
// Topics lists their filters. A hook that does not implement it, or
// returns nil, sees every topic.
type TopicFilter interface {
	Topics() []string
}

// EventLister is implemented by hooks whose events change while they run
// (see DynamicHook): Events lists the events the hook handles now, each of
// which it must implement, and replaces what the server would find by type
// assertion. The server reads it when the hook is added and on
// Server.RefreshHook.
type EventLister interface {
	Events() EventSet
}

// FailureCounter is implemented by hooks that fail in ways of their own
// without panicking (a script that throws or times out, a plugin that is
// down): their count is added to HookStatus.Failures, and so to the
// hook failure metric.
type FailureCounter interface {
	Failures() int64
}

// HealthChecker is implemented by hooks that can be unhealthy while the
// broker runs (a plugin that is down or restarting): Health returns why,
// or nil.
type HealthChecker interface {
	Health() error
}

// BridgeReporter is implemented by hooks that run bridges (hooks/bridge):
// their bridges show in Server.Bridges, $SYS and the metrics.
type BridgeReporter interface {
	Bridges() []BridgeStatus
}

// Restarter is implemented by hooks that run something of their own that
// can fail and be started again while the broker runs (a plugin's
// process): Server.RestartHook restarts them on an operator's request (the
// admin API), and HookStatus.Restarts counts their restarts.
type Restarter interface {
	// Restart starts it again at once, stopping it first if it runs, and
	// starts any back-off between restarts over. It returns nil once it
	// serves again, why it could not start (the hook then goes on
	// restarting it as it would have), or ctx's error when ctx ends first
	// (the restart may still be under way).
	Restart(ctx context.Context) error
	// Restarts counts the restarts tried since the hook was made,
	// whether they succeeded or not.
	Restarts() int64
}

// Store is implemented by a storage hook that keeps the broker's state
// across restarts: persistent sessions (those with a session expiry), their
// subscriptions, the messages queued for or in flight to them, the inbound
// QoS 2 identifiers awaiting PUBREL, and the retained messages. At Start the
// server restores that state through the Loader methods, before any
// listener accepts a connection; while it runs it tells the store of every
// change through Apply.
//
// A server uses at most one Store: Start fails when two hooks are one. Sessions with
// expiry 0, and QoS 0 messages sent straight to connected clients, are
// never stored: they end with their connection anyway.
type Store interface {
	Loader
	// Durable reports whether Apply's done waits until the operations are
	// on stable storage (durability: sync). When it does, the server sends
	// CONNACK, PUBACK, PUBREC, PUBCOMP, SUBACK and UNSUBACK for a change
	// only after the change is durable; when it does not, acknowledgements
	// go out at once and a crash may lose the last changes.
	Durable() bool
	// Apply records ops, in order, after the ops of every earlier call.
	// It must not keep ops, or anything it points to, after it returns.
	// done, when not nil, is called exactly once, on any goroutine, when
	// the ops are stored (err nil) or could not be (the store's error);
	// calls to done come in the order of the Apply calls. done must not be
	// called from inside Apply.
	//
	// The server may call Apply holding its session locks, which is what
	// keeps one session's changes in order across goroutines (an expiring
	// session's removal and a reconnecting client's new session, say; see
	// core/LOCKS.md). So Apply must not call into the Server, nor wait for
	// anything that does: it queues the ops for writing, under locks of
	// its own that it takes last, and returns.
	Apply(ops []StoreOp, done func(err error))
}

// Loader is implemented by storage hooks. At Start, before any listener
// accepts a connection, the server restores the retained messages and the
// sessions of every hook that implements it, in pipeline order; an error
// fails Start. Messages and sessions that expired while the broker was
// down are dropped during the restore (and, for a Store, deleted from it),
// never delivered.
type Loader interface {
	// LoadRetained returns the retained messages to restore.
	LoadRetained(ctx context.Context) ([]StoredMessage, error)
	// LoadSessions returns the sessions to restore, all offline.
	LoadSessions(ctx context.Context) ([]StoredSession, error)
}
