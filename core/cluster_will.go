package core

import (
	"fmt"
	"time"

	"github.com/valyala/bytebufferpool"

	"github.com/vanemq/vanemq/core/packets"
)

// A cluster keeps the will of each connection with the record of its
// session (SessionClaim.Will), so that a node that adopts the sessions of
// a node that died publishes the wills that node still owed
// (StoredSession.Will), once. ClusterHook.WillSettled tells the cluster
// when a will no longer needs keeping.

// StoredWill is a will a session still owes: the will of its client's
// last connection, which ended without settling it.
type StoredWill struct {
	// Publish is the will message as an MQTT 5 PUBLISH packet.
	Publish []byte
	// Delay is its Will Delay Interval in seconds.
	Delay uint32
}

// encodeWill makes w a StoredWill.
func encodeWill(w *packets.Will) (*StoredWill, error) {
	p := packets.Packet{
		Type: packets.Publish, ProtocolVersion: packets.Version5,
		QoS: w.QoS, Retain: w.Retain, Topic: w.Topic, Payload: w.Payload,
		Properties: w.Properties,
	}
	if w.QoS > 0 {
		p.PacketID = 1
	}
	p.Properties.WillDelay = 0
	p.Properties.Clear(packets.PropWillDelay)
	buf := bytebufferpool.Get()
	defer bytebufferpool.Put(buf)
	if err := p.Encode(buf); err != nil {
		return nil, fmt.Errorf("core: encode the will of %q: %w", w.Topic, err)
	}
	return &StoredWill{Publish: append([]byte(nil), buf.B...), Delay: w.Properties.WillDelay}, nil
}

// decode is the will sw stands for.
func (sw *StoredWill) decode() (*packets.Will, error) {
	var p packets.Packet
	if _, err := packets.DecodeBytes(sw.Publish, packets.Version5, 0, &p); err != nil {
		return nil, fmt.Errorf("core: stored will: %w", err)
	}
	if p.Type != packets.Publish {
		return nil, fmt.Errorf("core: stored will: a %s packet, not PUBLISH", p.Type)
	}
	w := &packets.Will{Topic: p.Topic, Payload: p.Payload, QoS: p.QoS, Retain: p.Retain, Properties: p.Properties}
	if sw.Delay > 0 {
		w.Properties.WillDelay = sw.Delay
		w.Properties.Set(packets.PropWillDelay)
	}
	return w, nil
}

// claimedWill is the will a connecting client's claim carries (nil for
// none, or one that does not encode: the cluster then keeps none).
func (s *Server) claimedWill(c *client) *StoredWill {
	if c.will == nil {
		return nil
	}
	sw, err := encodeWill(c.will)
	if err != nil {
		s.log.Warn("the cluster cannot keep the client's will: should this node die, it is not published", "client", c.id, "cause", err)
		return nil
	}
	c.willClaimed = true
	return sw
}

// restoreWill gives a restored session the will its record owed: pending
// for its delay (or the session's end), counted from now; a will without
// a delay is returned, to be published at once.
func (sess *session) restoreWill(sw *StoredWill, gen uint64) (*willMsg, error) {
	w, err := sw.decode()
	if err != nil {
		return nil, err
	}
	wm := &willMsg{will: w, origin: sess.id, info: sess.info.Load()}
	if sw.Delay == 0 {
		return wm, nil
	}
	s := sess.srv
	sess.will = wm
	d := time.Duration(min(sw.Delay, sess.expiry)) * time.Second
	sess.willTimer = time.AfterFunc(d, func() { s.willDelayElapsed(sess, gen) })
	return nil, nil
}

// willSettled tells the cluster that client id owes no will any more.
func (s *Server) willSettled(id string) {
	if s.cluster != nil {
		s.cluster.WillSettled(id)
	}
}
