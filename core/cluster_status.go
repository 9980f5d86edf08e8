package core

import "time"

// ClusterReporter is implemented by a ClusterHook that can describe its
// membership of the cluster for operators (hooks/cluster): its status
// shows in Server.ClusterStatus, the admin API and the metrics.
type ClusterReporter interface {
	ClusterStatus() ClusterStatus
}

// ClusterStatus describes this node's membership of a cluster: its link
// to the cluster's messaging system, the nodes it knows of, and its
// counts since it started.
type ClusterStatus struct {
	// Node is this node's name in the cluster.
	Node string `json:"node"`
	// Connected reports whether the node is connected to the cluster's
	// messaging system (NATS); Server is the server it is connected to,
	// with any password in the URL redacted, empty while not connected.
	Connected bool   `json:"connected"`
	Server    string `json:"server,omitempty"`
	// JetStream reports whether the node's persistent state (its inbox,
	// the route table) is set up: QoS 1 and 2 messages are handed to
	// other nodes only while it is.
	JetStream bool `json:"jetstream"`
	// Unhealthy says why the node is not ready (as /readyz reports it),
	// empty when it is.
	Unhealthy string `json:"unhealthy,omitempty"`
	// Peers are the nodes of the cluster this node knows of, this one
	// included, by name.
	Peers []ClusterPeer `json:"peers"`
	// Counters are the node's counts since it started.
	Counters ClusterCounters `json:"counters"`
}

// ClusterPeer is a node of the cluster as this node knows it.
type ClusterPeer struct {
	// Name is the node's name.
	Name string `json:"name"`
	// Self marks this node.
	Self bool `json:"self"`
	// Alive reports whether the node has shown itself lately (for
	// hooks/cluster: written its registry entry within three heartbeats).
	Alive bool `json:"alive"`
	// Since is when the node's current process joined the cluster.
	Since time.Time `json:"since"`
	// LastSeen is when this node last heard from it.
	LastSeen time.Time `json:"last_seen"`
	// Routes is how many distinct subscriptions the node holds.
	Routes int `json:"routes"`
}

// ClusterCounters are a node's counts of the messages it exchanged with
// the other nodes.
type ClusterCounters struct {
	// Forwarded counts messages published to other nodes (a QoS 1/2
	// message once per node it was handed to).
	Forwarded int64 `json:"forwarded"`
	// Received counts messages received from other nodes, and Delivered
	// the copies of them delivered to this node's subscribers.
	Received  int64 `json:"received"`
	Delivered int64 `json:"delivered"`
	// Duplicates counts copies of a message received again and not
	// routed twice.
	Duplicates int64 `json:"duplicates"`
	// Unrouted counts messages that other nodes wanted but could not be
	// sent to them (a topic too long, the link down).
	Unrouted int64 `json:"unrouted"`
	// Dropped counts messages from other nodes dropped because this node
	// routed them more slowly than they came.
	Dropped int64 `json:"dropped"`
	// Bad counts messages received that did not decode.
	Bad int64 `json:"bad"`
	// HandoffFailures counts QoS 1/2 messages whose copy for another
	// node was not stored in time: their publishers got no
	// acknowledgement and send them again.
	HandoffFailures int64 `json:"handoff_failures"`
	// SessionsAdopted counts sessions that moved here from other nodes,
	// SessionsReleased those that moved from here to other nodes.
	SessionsAdopted  int64 `json:"sessions_adopted"`
	SessionsReleased int64 `json:"sessions_released"`
	// SessionsLost counts sessions whose node did not answer when their
	// client connected here: they started over here without their state.
	SessionsLost int64 `json:"sessions_lost"`
	// SessionsFenced counts sessions this node let go on finding it had
	// been stopped (frozen) long enough for other nodes to claim them.
	SessionsFenced int64 `json:"sessions_fenced"`
	// SessionsUnclaimed counts connections served without claiming their
	// session in the cluster (NATS away).
	SessionsUnclaimed int64 `json:"sessions_unclaimed"`
	// SessionsFromDead counts sessions this node adopted, with what their
	// stores and inboxes held, from nodes that died.
	SessionsFromDead int64 `json:"sessions_from_dead"`
	// PassedOn counts messages this node passed on to the node a session
	// had just moved to; PassedOnLost those passed on here for a session
	// that never arrived.
	PassedOn     int64 `json:"passed_on"`
	PassedOnLost int64 `json:"passed_on_lost"`
}

// ClusterStatus describes the node's membership of its cluster, from the
// hook that implements ClusterReporter; false when the broker is not
// clustered (no such hook).
func (s *Server) ClusterStatus() (ClusterStatus, bool) {
	for _, e := range s.hooks.snapshot() {
		if cr, ok := e.hook.(ClusterReporter); ok {
			return cr.ClusterStatus(), true
		}
	}
	return ClusterStatus{}, false
}
