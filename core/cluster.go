package core

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/valyala/bytebufferpool"

	"github.com/vanemq/vanemq/core/packets"
)

// ClusterHook is implemented by a hook that joins this broker to others so
// that they act as one broker (hooks/cluster). A server has at most one;
// without one, nothing on the publish path changes.
//
// The server tells it of this node's interest, the distinct subscription
// filters its sessions hold, and hands it every message published on this
// node; the hook carries them to the nodes with interest, which route them
// to their own subscribers with Server.DeliverRemote.
type ClusterHook interface {
	Hook
	// InterestChanged is told, in order, each time this node gains its
	// first subscription to a (share group, filter) pair, loses its last
	// one (Count 0), or the highest QoS granted on it changes. It is
	// called under the server's locks: it must not block or call into
	// the Server, only queue the change for its own goroutines. Before
	// Start returns it has been told of every subscription restored from
	// storage.
	InterestChanged(in Interest)
	// Forward is handed each message published on this node (by a client,
	// as a will, or by Server.Publish; never the broker's own $SYS topics
	// nor a message that came from another node) after it was routed
	// here. f is valid only during the call.
	//
	// A hand-off the publisher's acknowledgement (PUBACK, PUBREC) must
	// wait for is announced with f.Hold, during the call; a message Forward
	// does not Hold is acknowledged as if no other node wanted it.
	//
	// The message's share groups are Forward's to deliver: the server
	// leaves them out when it routes the message, and Forward picks, for
	// each group with members anywhere in the cluster, the node whose
	// member gets it, which for this node is f.DeliverShared.
	//
	// It returns how many deliveries it made and hand-offs it started
	// (a node handed the message counts one), which the server adds to
	// its own: with none, an MQTT 5 publisher is told No matching
	// subscribers. Forward must not call into the Server (but for f's
	// methods) nor wait for anything but the hand-off's own backpressure.
	Forward(f *Forwarded) int
	// ClaimSession is called when a client connects, after it is
	// authenticated and before its session is looked up here. It returns
	// once no other node holds the session: the node that did has let it
	// go (ReleaseSession, with the claim's identity), which, unless the
	// claim is clean, ClaimSession has installed here with AdoptSession
	// for the connection to resume. An error wrapping ErrForeignSession
	// refuses the connection as a session of another identity is refused
	// here (Not authorized); any other error refuses it with Server
	// unavailable.
	ClaimSession(ctx context.Context, claim SessionClaim) error
	// SessionEnded is told that the session of client id left this node:
	// it ended (clean, expired, discarded) or another node took it. It is
	// called under the server's locks and must not block.
	SessionEnded(id string)
	// WillSettled is told that client id owes no will any more: the will
	// its claim carried (SessionClaim.Will), or its adopted session's
	// (StoredSession.Will), was published or discarded here. A will
	// pending on its delay is not settled. It must not block.
	WillSettled(id string)
}

// SessionClaim is a connecting client's claim to its session
// (ClusterHook.ClaimSession).
type SessionClaim struct {
	// ClientID is the client's identifier.
	ClientID string
	// Clean is the CONNECT's Clean Start (Clean Session) flag: the
	// session is to be discarded, not resumed.
	Clean bool
	// Identity is who the client authenticated as: a session another
	// identity owns is not resumed (Options.ForeignSession).
	Identity Identity
	// Fenced, for ReleaseSession, lets the session go whoever owns it,
	// discarded: the cluster gave it to another node while this one was
	// not looking (see hooks/cluster's fencing).
	Fenced bool
	// Adopted, with Fenced, says the node that took the session adopted
	// it as the session of a dead node, with the will it owed: this node
	// publishes none.
	Adopted bool
	// Will, for ClaimSession, is the connecting client's will, which the
	// cluster keeps with the session's record until WillSettled (nil for
	// none).
	Will *StoredWill
}

// ErrForeignSession is what ClusterHook.ClaimSession returns, wrapped,
// when the session belongs to another identity and
// Options.ForeignSession refuses such a claim.
var ErrForeignSession = errors.New("the client identifier's session belongs to another identity")

// Interest is one distinct subscription of this node (ClusterHook).
type Interest struct {
	// Group is the share name of a $share/{Group}/{Filter} subscription,
	// "" for an ordinary one.
	Group string
	// Filter is the topic filter, without any $share prefix.
	Filter string
	// QoS is the highest QoS granted among the subscriptions.
	QoS byte
	// Count is how many subscriptions this node holds to the pair; 0 means
	// the last one went.
	Count int
}

// interestKey identifies an Interest.
type interestKey struct{ group, filter string }

// highest returns the highest QoS with a subscription, and the total count.
func highest(c *[3]int) (byte, int) {
	n := c[0] + c[1] + c[2]
	switch {
	case c[2] > 0:
		return 2, n
	case c[1] > 0:
		return 1, n
	}
	return 0, n
}

// interestAdded counts a subscription of qos to (group, filter); old is the
// QoS of the subscription it replaces, or -1 when it is new.
func (s *Server) interestAdded(group, filter string, qos byte, old int) {
	if s.cluster == nil {
		return
	}
	s.interestMu.Lock()
	defer s.interestMu.Unlock()
	if s.interest == nil {
		s.interest = make(map[interestKey]*[3]int)
	}
	k := interestKey{group, filter}
	c := s.interest[k]
	if c == nil {
		c = new([3]int)
		s.interest[k] = c
	}
	before, n := highest(c)
	if old >= 0 && c[old] > 0 {
		c[old]--
	}
	c[min(qos, 2)]++
	after, m := highest(c)
	if n == 0 || after != before || m != n {
		s.cluster.InterestChanged(Interest{Group: group, Filter: filter, QoS: after, Count: m})
	}
}

// interestRemoved uncounts a subscription of qos to (group, filter).
func (s *Server) interestRemoved(group, filter string, qos byte) {
	if s.cluster == nil {
		return
	}
	s.interestMu.Lock()
	defer s.interestMu.Unlock()
	k := interestKey{group, filter}
	c := s.interest[k]
	if c == nil {
		return
	}
	if c[min(qos, 2)] > 0 {
		c[min(qos, 2)]--
	}
	after, m := highest(c)
	if m == 0 {
		delete(s.interest, k)
	}
	s.cluster.InterestChanged(Interest{Group: group, Filter: filter, QoS: after, Count: m})
}

// Interests returns this node's distinct subscriptions as the cluster hook
// was told of them; nil without a cluster hook.
func (s *Server) Interests() []Interest {
	if s.cluster == nil {
		return nil
	}
	s.interestMu.Lock()
	defer s.interestMu.Unlock()
	out := make([]Interest, 0, len(s.interest))
	for k, c := range s.interest {
		q, n := highest(c)
		out = append(out, Interest{Group: k.group, Filter: k.filter, QoS: q, Count: n})
	}
	return out
}

// pickCluster chooses the ClusterHook among the hooks: at most one.
func (s *Server) pickCluster() error {
	s.hooks.mu.Lock()
	defer s.hooks.mu.Unlock()
	ch, err := onlyHook[ClusterHook](s.hooks.entries, "join the broker to a cluster (ClusterHook)")
	s.cluster = ch
	return err
}

// Forwarded is a message published on this node, as Forward sees it.
type Forwarded struct {
	s    *Server
	m    *message
	from *client // the publisher, nil for the broker
	held bool
}

// Hold makes the publisher's acknowledgement (PUBACK, PUBREC) wait for
// the hook's hand-off of the message, and returns the done that ends the
// wait. It is nil when nobody waits: a QoS 0 message, the broker's own
// publishes, or a second call. Otherwise done must be called exactly
// once, on any goroutine: with nil once the message is safely handed to
// every node that has interest in it (or to storage the cluster shares),
// or with the error that kept it from being, and then the publisher is
// disconnected without its acknowledgement so that it sends again. Call
// it only during Forward, and only when there is a hand-off to wait for:
// a message nobody else wants costs no wait.
func (f *Forwarded) Hold() func(error) {
	c, m := f.from, f.m
	if c == nil || m.qos == 0 || f.held {
		return nil
	}
	f.held = true
	done := c.batch.ticket(c).part()
	if m.qos == 2 && c.pubID != 0 {
		done = c.unforwardedOnFailure(c.pubID, m, done)
	}
	return done
}

// Topic returns the message's topic.
func (f *Forwarded) Topic() string { return f.m.topic }

// QoS returns the QoS it was published with.
func (f *Forwarded) QoS() byte { return f.m.qos }

// Retain reports whether it was published retained; with an empty payload
// it clears the topic's retained message.
func (f *Forwarded) Retain() bool { return f.m.retain }

// Origin returns the publishing client's ID, "" for the broker itself.
func (f *Forwarded) Origin() string { return f.m.origin }

// Payload returns the payload: the server's memory, to be copied, not
// kept.
func (f *Forwarded) Payload() []byte { return f.m.payload }

// Encode appends the message to buf as an MQTT 5 PUBLISH packet, what
// DeliverRemote takes: its properties travel with it, a Message Expiry
// Interval counting down what is left of it. A QoS 1 or 2 message carries
// packet identifier 1, which DeliverRemote ignores. It fails for a message
// that already expired.
func (f *Forwarded) Encode(buf *bytebufferpool.ByteBuffer) error {
	m := f.m
	p := packets.Packet{
		Type: packets.Publish, ProtocolVersion: packets.Version5,
		QoS: m.qos, Retain: m.retain, Topic: m.topic, Payload: m.payload,
	}
	if m.qos > 0 {
		p.PacketID = 1
	}
	if m.props != nil {
		p.Properties = *m.props
		if !m.expires.IsZero() {
			left := time.Until(m.expires)
			if left <= 0 {
				return fmt.Errorf("core: forward %q: the message expired", m.topic)
			}
			p.Properties.MessageExpiry = uint32((left + time.Second - 1) / time.Second)
		}
	}
	if err := p.Encode(buf); err != nil {
		return fmt.Errorf("core: forward %q: %w", m.topic, err)
	}
	return nil
}

// DeliverShared delivers the message to one member of this node's share
// group {group} of filter, chosen round-robin, and reports whether one
// took it: false when the node has no such group (any more).
func (f *Forwarded) DeliverShared(group, filter string) bool {
	return f.s.deliverShared(f.m, group, filter, f.from.readerBatch()) > 0
}

// forwards reports whether m goes to the cluster hook once routed here:
// every message published on this node but the broker's own $SYS ones.
func (s *Server) forwards(m *message) bool {
	return s.cluster != nil && !m.remote && !strings.HasPrefix(m.topic, "$SYS/")
}

// forward hands m, routed here from from (nil for the broker itself), to
// the cluster hook; a hand-off it Holds makes the client's
// acknowledgements wait (see ackTicket). It returns the deliveries and
// hand-offs the hook made.
func (s *Server) forward(m *message, from *client) int {
	f := Forwarded{s: s, m: m, from: from}
	return s.cluster.Forward(&f)
}

// unforwardedOnFailure wraps the done of the hand-off of c's inbound QoS 2
// message m (identifier id): when the hand-off fails, m is kept for the
// client's resend of it (receiveQoS2), which is otherwise taken for a
// duplicate already routed, and would never reach the other nodes.
func (c *client) unforwardedOnFailure(id uint16, m *message, done func(error)) func(error) {
	sess := c.sess
	return func(err error) {
		if err != nil {
			sess.mu.Lock()
			if _, waiting := sess.inQoS2[id]; waiting {
				if sess.unforwarded == nil {
					sess.unforwarded = make(map[uint16]*message)
				}
				sess.unforwarded[id] = m
			}
			sess.mu.Unlock()
		}
		done(err)
	}
}

// DeliverRemote routes a message that another node forwarded to this one
// (Forwarded.Encode made publish) to this node's subscribers: with group
// "", to every matching ordinary subscription, each client once;
// otherwise to one member of the share group {group} of filter, which
// the cluster picked this node for. It neither retains the message nor
// forwards it again, and returns the number of deliveries. origin is the
// publisher's client ID. publish is not kept: the message is decoded into
// memory of its own. A RemoteBatch routes many more cheaply.
func (s *Server) DeliverRemote(publish []byte, origin, group, filter string) (int, error) {
	return s.deliverRemote(publish, origin, group, filter, nil)
}

func (s *Server) deliverRemote(publish []byte, origin, group, filter string, rb *readBatch) (int, error) {
	var p packets.Packet
	if _, err := packets.DecodeBytes(publish, packets.Version5, 0, &p); err != nil {
		return 0, fmt.Errorf("core: remote message: %w", err)
	}
	if p.Type != packets.Publish {
		return 0, fmt.Errorf("core: remote message: a %s packet, not PUBLISH", p.Type)
	}
	m := newMessage(&p, origin, time.Now())
	m.remote = true
	s.stats.messagesRemote.Add(1)
	if group == "" {
		return s.fanoutWith(m, "", rb, false), nil
	}
	return s.deliverShared(m, group, filter, rb), nil
}

// RemoteBatch routes messages from other nodes (as DeliverRemote does)
// in batches, the way a client's reader routes the PUBLISH packets of one
// read: each subscriber's writer starts once per batch rather than once
// per message, the batch's store changes go to the store together, and
// subscribers whose queues fill up slow the batch down. One goroutine
// uses a RemoteBatch at a time; NewRemoteBatch makes one.
type RemoteBatch struct {
	s  *Server
	rb readBatch
}

// NewRemoteBatch makes a RemoteBatch.
func (s *Server) NewRemoteBatch() *RemoteBatch { return &RemoteBatch{s: s} }

// Deliver is DeliverRemote within the batch: the deliveries are queued,
// and the subscribers' writers start at Flush.
func (b *RemoteBatch) Deliver(publish []byte, origin, group, filter string) (int, error) {
	return b.s.deliverRemote(publish, origin, group, filter, &b.rb)
}

// DeliverTo is Deliver limited, for a message with group "", to the
// subscriptions of the clients only accepts: how a node that adopted the
// sessions of a node that died routes what was handed to that node,
// which this node's other clients received already through their own
// hand-offs. A share group's message goes to any member, as Deliver's.
func (b *RemoteBatch) DeliverTo(publish []byte, origin, group, filter string, only func(clientID string) bool) (int, error) {
	b.rb.only = only
	defer func() { b.rb.only = nil }()
	return b.s.deliverRemote(publish, origin, group, filter, &b.rb)
}

// Flush ends the batch: its store changes go to the store, the
// subscribers' writers start, and Flush waits (a bounded time) for
// subscribers it found falling behind. done, if not nil, is called once
// the batch's deliveries are stored, with the store's error (at once
// without a durable store): when a message handed to this node may be
// let go by the node that handed it.
func (b *RemoteBatch) Flush(done func(error)) {
	rb := &b.rb
	if st := b.s.store; st != nil && len(rb.storeOps) > 0 {
		if b.s.storeDurable && done != nil {
			st.Apply(rb.storeOps, done)
			done = nil
		} else {
			st.Apply(rb.storeOps, nil)
		}
		rb.resetStoreOps()
	}
	if done != nil {
		done(nil)
	}
	rb.startWriters()
	rb.pace()
}

// SetRetained makes a retained message that the cluster's shared retained
// store holds this node's retained message for its topic (an empty payload
// clears the topic), as if published here at at, from which its Message
// Expiry Interval counts; publish is a PUBLISH that Forwarded.Encode made.
// Nothing is delivered or forwarded, and the node's limits on retained
// messages do not apply: every node holds what the cluster holds. A message
// that expired already clears the topic.
func (s *Server) SetRetained(publish []byte, origin string, at time.Time) error {
	var p packets.Packet
	if _, err := packets.DecodeBytes(publish, packets.Version5, 0, &p); err != nil {
		return fmt.Errorf("core: retained message from the cluster: %w", err)
	}
	if p.Type != packets.Publish {
		return fmt.Errorf("core: retained message from the cluster: a %s packet, not PUBLISH", p.Type)
	}
	m := newMessage(&p, origin, at)
	m.remote, m.retain = true, true
	if !m.expires.IsZero() && !m.expires.After(time.Now()) {
		m.payload = nil
	}
	return s.retain(m, nil, false)
}

// ClearRetained removes the retained message of topic, if any, because the
// cluster's shared retained store no longer holds one.
func (s *Server) ClearRetained(topic string) {
	_ = s.retain(&message{topic: topic, retain: true, remote: true}, nil, false)
}
