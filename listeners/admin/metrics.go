package admin

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vanemq/vanemq/core"
)

// Collector is a prometheus.Collector that reads a server's counters at
// scrape time: Server.Stats for the counters, Server.Clients for the
// inflight and queued messages, Server.Hooks for the hook metrics,
// Server.ClusterStatus for the cluster metrics.
type Collector struct {
	srv *core.Server

	clients, sessions, connections                 *prometheus.Desc
	messagesIn, messagesOut, bytesIn, bytesOut     *prometheus.Desc
	dropped, inflight, queued, retained, subs      *prometheus.Desc
	protocolErrors                                 *prometheus.Desc
	hookCalls, hookFailures, hookSeconds, hookLost *prometheus.Desc
	hookUp, hookRestarts                           *prometheus.Desc
	bridgeUp, bridgeQueued, bridgeSent, bridgeDrop *prometheus.Desc
	listenerOpen, listenerAccepted                 *prometheus.Desc
	payloadIn, payloadOut                          *prometheus.Desc
	retainedBytes, refused                         *prometheus.Desc
	cluster                                        clusterDescs
}

// clusterDescs are the descriptors of the cluster metrics, exported only
// by a clustered broker.
type clusterDescs struct {
	connected, jetStream, peers, peersAlive *prometheus.Desc
	forwarded, received, delivered          *prometheus.Desc
	duplicates, unrouted, dropped, bad      *prometheus.Desc
	handoffFailures                         *prometheus.Desc
	sessionsMoved, sessionsLost             *prometheus.Desc
	passedOn, passedOnLost                  *prometheus.Desc
	sessionsFenced, sessionsUnclaimed       *prometheus.Desc
}

// NewCollector returns a collector of srv's metrics, all named vanemq_*.
func NewCollector(srv *core.Server) *Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("vanemq_"+name, help, labels, nil)
	}
	return &Collector{
		srv:            srv,
		clients:        d("clients_connected", "Clients connected now."),
		sessions:       d("sessions", "Sessions, connected or not."),
		connections:    d("connections_total", "Network connections accepted since start."),
		messagesIn:     d("messages_received_total", "PUBLISH packets received from clients, by QoS.", "qos"),
		messagesOut:    d("messages_sent_total", "PUBLISH packets sent to clients, by QoS.", "qos"),
		bytesIn:        d("bytes_received_total", "Payload bytes received."),
		bytesOut:       d("bytes_sent_total", "Bytes written to connections."),
		dropped:        d("messages_dropped_total", "Messages dropped for a subscriber, by reason.", "reason"),
		inflight:       d("inflight_messages", "QoS 1 and 2 messages sent and not yet acknowledged, over every session."),
		queued:         d("queued_messages", "Messages waiting to be sent, over every session."),
		retained:       d("retained_messages", "Retained messages stored."),
		retainedBytes:  d("retained_bytes", "Size of the retained messages: the bytes of their topics, payloads and properties, as mqtt.max_retained_bytes counts them."),
		refused:        d("limit_refusals_total", "Subscriptions and retained messages refused for a limit, by limit (its mqtt config key).", "limit"),
		subs:           d("subscriptions", "Subscriptions, over every session."),
		protocolErrors: d("protocol_errors_total", "Connections closed for a protocol error."),
		hookCalls:      d("hook_calls_total", "Calls made to a hook, by hook ID.", "hook"),
		hookFailures:   d("hook_failures_total", "Failures of a hook (panics recovered, and failures the hook counts itself, like a script's or a plugin's failed calls), by hook ID.", "hook"),
		hookUp:         d("hook_up", "1 while a hook is healthy, 0 while it reports itself not up (a plugin restarting, or down after its restarts), by hook ID.", "hook"),
		hookRestarts:   d("hook_restarts_total", "Restarts tried of what a hook runs (a plugin's process), successful or not, by hook ID.", "hook"),
		hookSeconds:    d("hook_seconds_total", "Time spent in a hook's calls, in seconds, by hook ID.", "hook"),
		hookLost:       d("hook_events_lost_total", "OnDropped/OnAcked notifications lost to a full queue."),
		payloadIn:      d("payload_bytes_received_total", "Application payload bytes received, by QoS.", "qos"),
		payloadOut:     d("payload_bytes_sent_total", "Application payload bytes sent, by QoS.", "qos"),
		bridgeUp:       d("bridge_connected", "1 while a bridge is connected to its remote broker, by bridge.", "bridge"),
		bridgeQueued:   d("bridge_queued_messages", "Messages waiting to go out over a bridge, inflight included, by bridge.", "bridge"),
		bridgeSent:     d("bridge_messages_total", "Messages forwarded over a bridge, by bridge and direction (out, in).", "bridge", "direction"),
		bridgeDrop:     d("bridge_dropped_total", "Outgoing messages a bridge dropped for a full queue, by bridge.", "bridge"),
		listenerOpen: d("listener_connections", "Connections open now, by listener.",
			"listener", "protocol"),
		listenerAccepted: d("listener_connections_accepted_total", "Connections accepted since start, by listener.",
			"listener", "protocol"),
		cluster: clusterDescs{
			connected:         d("cluster_connected", "1 while this node is connected to the cluster's NATS, else 0."),
			jetStream:         d("cluster_jetstream_ready", "1 while this node's JetStream state (inbox, route table) is set up, else 0: QoS 1/2 messages reach other nodes only then."),
			peers:             d("cluster_peers", "Nodes of the cluster this node knows of, alive or not, itself included."),
			peersAlive:        d("cluster_peers_alive", "Nodes of the cluster alive as this node sees them, itself included."),
			forwarded:         d("cluster_forwarded_total", "Messages published to other nodes (a QoS 1/2 message once per node it is handed to)."),
			received:          d("cluster_received_total", "Messages received from other nodes."),
			delivered:         d("cluster_delivered_total", "Copies of messages from other nodes delivered to this node's subscribers."),
			duplicates:        d("cluster_duplicates_total", "Copies of a message from another node received again and not delivered twice."),
			unrouted:          d("cluster_unrouted_total", "Messages other nodes wanted that could not be sent to them."),
			dropped:           d("cluster_dropped_total", "Messages from other nodes dropped because this node routed them more slowly than they came."),
			bad:               d("cluster_bad_total", "Messages received from the cluster that did not decode."),
			handoffFailures:   d("cluster_handoff_failures_total", "QoS 1/2 messages whose copy for another node was not stored in time (the publisher got no acknowledgement)."),
			sessionsMoved:     d("cluster_sessions_moved_total", "Sessions that moved between this node and others with their clients, by direction (in: adopted here, out: released to another node, from_dead: adopted here from a node that died).", "direction"),
			sessionsLost:      d("cluster_sessions_lost_total", "Sessions whose node did not answer when their client connected here: they started over without their state."),
			sessionsFenced:    d("cluster_sessions_fenced_total", "Sessions this node let go on finding it had been stopped long enough for other nodes to claim them."),
			sessionsUnclaimed: d("cluster_sessions_unclaimed_total", "Connections served without claiming their session in the cluster (NATS away)."),
			passedOn:          d("cluster_passed_on_total", "Messages this node passed on to the node a session had just moved to."),
			passedOnLost:      d("cluster_passed_on_lost_total", "Messages passed on to this node for a session that moved here and never arrived."),
		},
	}
}

// Describe sends the descriptors of every metric the collector exports.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.clients, c.sessions, c.connections, c.messagesIn, c.messagesOut,
		c.bytesIn, c.bytesOut, c.dropped, c.inflight, c.queued, c.retained, c.subs, c.protocolErrors,
		c.hookCalls, c.hookFailures, c.hookSeconds, c.hookLost, c.hookUp, c.hookRestarts,
		c.bridgeUp, c.bridgeQueued, c.bridgeSent, c.bridgeDrop, c.listenerOpen, c.listenerAccepted, c.payloadIn, c.payloadOut,
		c.retainedBytes, c.refused} {
		ch <- d
	}
	cd := &c.cluster
	for _, d := range []*prometheus.Desc{cd.connected, cd.jetStream, cd.peers, cd.peersAlive, cd.forwarded, cd.received,
		cd.delivered, cd.duplicates, cd.unrouted, cd.dropped, cd.bad, cd.handoffFailures,
		cd.sessionsMoved, cd.sessionsLost, cd.sessionsFenced, cd.sessionsUnclaimed, cd.passedOn, cd.passedOnLost} {
		ch <- d
	}
}

// Collect reads the server's counters and sends them as metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	st := c.srv.Stats()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge(c.clients, float64(st.ClientsConnected))
	gauge(c.sessions, float64(st.Sessions))
	counter(c.connections, float64(st.Connections))
	for q := range 3 {
		counter(c.messagesIn, float64(st.MessagesInByQoS[q]), strconv.Itoa(q))
		counter(c.messagesOut, float64(st.MessagesOutByQoS[q]), strconv.Itoa(q))
		counter(c.payloadIn, float64(st.PayloadBytesInByQoS[q]), strconv.Itoa(q))
		counter(c.payloadOut, float64(st.PayloadBytesOutByQoS[q]), strconv.Itoa(q))
	}
	counter(c.bytesIn, float64(st.BytesIn))
	counter(c.bytesOut, float64(st.BytesOut))
	for _, r := range core.DropReasons() {
		counter(c.dropped, float64(st.DroppedBy[r]), r.String())
	}
	var inflight, queued int
	for _, cl := range c.srv.Clients() {
		inflight += cl.Inflight
		queued += cl.Queued
	}
	gauge(c.inflight, float64(inflight))
	gauge(c.queued, float64(queued))
	gauge(c.retained, float64(st.Retained))
	gauge(c.retainedBytes, float64(st.RetainedBytes))
	for _, l := range core.Limits() {
		counter(c.refused, float64(st.RefusedBy[l]), l.String())
	}
	gauge(c.subs, float64(st.Subscriptions))
	counter(c.protocolErrors, float64(st.ProtocolErrors))
	for _, h := range c.srv.Hooks() {
		counter(c.hookCalls, float64(h.Calls), h.ID)
		counter(c.hookFailures, float64(h.Failures), h.ID)
		counter(c.hookSeconds, h.Time.Seconds(), h.ID)
		up := 1.0
		if h.Unhealthy != "" {
			up = 0
		}
		gauge(c.hookUp, up, h.ID)
		counter(c.hookRestarts, float64(h.Restarts), h.ID)
	}
	counter(c.hookLost, float64(st.HookEventsLost))
	for _, b := range c.srv.Bridges() {
		up := 0.0
		if b.Connected {
			up = 1
		}
		gauge(c.bridgeUp, up, b.Name)
		gauge(c.bridgeQueued, float64(b.Queued), b.Name)
		counter(c.bridgeSent, float64(b.Sent), b.Name, "out")
		counter(c.bridgeSent, float64(b.Received), b.Name, "in")
		counter(c.bridgeDrop, float64(b.Dropped), b.Name)
	}
	for _, l := range c.srv.Listeners() {
		gauge(c.listenerOpen, float64(l.Open), l.ID, l.Protocol)
		counter(c.listenerAccepted, float64(l.Accepted), l.ID, l.Protocol)
	}
	if cs, ok := c.srv.ClusterStatus(); ok {
		c.collectCluster(cs, gauge, counter)
	}
}

// collectCluster sends a clustered broker's cluster metrics.
func (c *Collector) collectCluster(cs core.ClusterStatus, gauge, counter func(*prometheus.Desc, float64, ...string)) {
	cd := &c.cluster
	gauge(cd.connected, oneIf(cs.Connected))
	gauge(cd.jetStream, oneIf(cs.JetStream))
	alive := 0
	for _, p := range cs.Peers {
		if p.Alive {
			alive++
		}
	}
	gauge(cd.peers, float64(len(cs.Peers)))
	gauge(cd.peersAlive, float64(alive))
	n := cs.Counters
	for _, m := range []struct {
		d *prometheus.Desc
		v int64
	}{
		{cd.forwarded, n.Forwarded}, {cd.received, n.Received}, {cd.delivered, n.Delivered},
		{cd.duplicates, n.Duplicates}, {cd.unrouted, n.Unrouted}, {cd.dropped, n.Dropped},
		{cd.bad, n.Bad}, {cd.handoffFailures, n.HandoffFailures},
		{cd.sessionsLost, n.SessionsLost}, {cd.sessionsFenced, n.SessionsFenced}, {cd.sessionsUnclaimed, n.SessionsUnclaimed},
		{cd.passedOn, n.PassedOn}, {cd.passedOnLost, n.PassedOnLost},
	} {
		counter(m.d, float64(m.v))
	}
	counter(cd.sessionsMoved, float64(n.SessionsAdopted), "in")
	counter(cd.sessionsMoved, float64(n.SessionsReleased), "out")
	counter(cd.sessionsMoved, float64(n.SessionsFromDead), "from_dead")
}

// oneIf is 1 for true and 0 for false, for 0/1 gauges.
func oneIf(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Stats is the body of GET /api/v1/stats: core.Stats with the per-QoS and
// per-reason counters keyed by label, and the hooks' counters.
type Stats struct {
	ClientsConnected int64            `json:"clients_connected"`
	Sessions         int64            `json:"sessions"`
	Connections      int64            `json:"connections"`
	MessagesIn       int64            `json:"messages_received"`
	MessagesOut      int64            `json:"messages_sent"`
	MessagesInByQoS  map[string]int64 `json:"messages_received_by_qos"`
	MessagesOutByQoS map[string]int64 `json:"messages_sent_by_qos"`
	BytesIn          int64            `json:"bytes_received"`
	BytesOut         int64            `json:"bytes_sent"`
	Dropped          int64            `json:"messages_dropped"`
	DroppedBy        map[string]int64 `json:"messages_dropped_by_reason"`
	Subscriptions    int64            `json:"subscriptions"`
	Retained         int64            `json:"retained_messages"`
	RetainedBytes    int64            `json:"retained_bytes"`
	RefusedBy        map[string]int64 `json:"refused_by_limit"`
	ProtocolErrors   int64            `json:"protocol_errors"`
	HookEventsLost   int64            `json:"hook_events_lost"`
	Hooks            []HookStats      `json:"hooks"`
}

// HookStats are one hook's counters in Stats.
type HookStats struct {
	ID       string  `json:"id"`
	Priority int     `json:"priority"`
	Calls    int64   `json:"calls"`
	Failures int64   `json:"failures"`
	Seconds  float64 `json:"seconds"`
	// Up is false while the hook reports itself unhealthy, Unhealthy
	// saying why; Restarts counts the restarts of a plugin's process.
	Up        bool   `json:"up"`
	Unhealthy string `json:"unhealthy,omitempty"`
	Restarts  int64  `json:"restarts"`
}

// StatsOf snapshots srv's counters for the JSON API.
func StatsOf(srv *core.Server) Stats {
	st := srv.Stats()
	out := Stats{
		ClientsConnected: st.ClientsConnected, Sessions: st.Sessions, Connections: st.Connections,
		MessagesIn: st.MessagesIn, MessagesOut: st.MessagesOut, BytesIn: st.BytesIn, BytesOut: st.BytesOut,
		Dropped: st.Dropped, Subscriptions: st.Subscriptions, Retained: st.Retained, RetainedBytes: st.RetainedBytes,
		ProtocolErrors: st.ProtocolErrors, HookEventsLost: st.HookEventsLost,
		MessagesInByQoS: map[string]int64{}, MessagesOutByQoS: map[string]int64{}, DroppedBy: map[string]int64{},
		RefusedBy: map[string]int64{}, Hooks: []HookStats{},
	}
	for q := range 3 {
		out.MessagesInByQoS[strconv.Itoa(q)] = st.MessagesInByQoS[q]
		out.MessagesOutByQoS[strconv.Itoa(q)] = st.MessagesOutByQoS[q]
	}
	for _, r := range core.DropReasons() {
		out.DroppedBy[r.String()] = st.DroppedBy[r]
	}
	for _, l := range core.Limits() {
		out.RefusedBy[l.String()] = st.RefusedBy[l]
	}
	for _, h := range srv.Hooks() {
		out.Hooks = append(out.Hooks, HookStats{ID: h.ID, Priority: h.Priority, Calls: h.Calls,
			Failures: h.Failures, Seconds: h.Time.Seconds(), Up: h.Unhealthy == "", Unhealthy: h.Unhealthy, Restarts: h.Restarts})
	}
	return out
}
