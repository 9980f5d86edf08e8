// Package cluster joins vanemq nodes into one broker over NATS (hook ID
// "cluster"; see docs/clustering.md).
//
// Each node holds one NATS subscription per distinct filter its sessions
// subscribe to (core.ClusterHook's interest, reference-counted by the
// core), on subjects made from the filter by Filter: MQTT's '+' and '#'
// become NATS's '*' and '>'. A message published on a node is sent on the
// subject made from its topic by Topic, so NATS carries it only to the
// nodes with interest; each routes it to its own subscribers with
// core.Server.DeliverRemote. A share group ($share/g/f) is a NATS queue
// subscription, so that each message reaches one node with members of
// the group, which picks one of them.
package cluster
