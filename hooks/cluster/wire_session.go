package cluster

import (
	"fmt"
	"time"

	"github.com/valyala/bytebufferpool"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/packets"
)

// wireSession is a session's state on its way between nodes (JSON). Each
// message is an MQTT 5 PUBLISH, so that its properties travel as the
// protocol writes them, its Message Expiry Interval what is left of it.
type wireSession struct {
	ClientID      string                    `json:"client_id"`
	Expiry        uint32                    `json:"expiry"`
	Owner         *core.Identity            `json:"owner,omitempty"`
	Subscriptions []core.StoredSubscription `json:"subscriptions,omitempty"`
	Deliveries    []wireDelivery            `json:"deliveries,omitempty"`
	Inbound       []uint16                  `json:"inbound,omitempty"`
}

// wireDelivery is one queued or inflight message of a wireSession.
type wireDelivery struct {
	QoS             byte     `json:"qos"`
	Retain          bool     `json:"retain,omitempty"`
	SubscriptionIDs []uint32 `json:"sub_ids,omitempty"`
	PacketID        uint16   `json:"packet_id,omitempty"`
	Pubrec          bool     `json:"pubrec,omitempty"`
	Origin          string   `json:"origin,omitempty"`
	Publish         []byte   `json:"publish"`
}

// encodeSession makes st a wireSession; deliveries whose message does not
// encode (expired on the way) are left out.
func encodeSession(st *core.StoredSession) *wireSession {
	ws := &wireSession{ClientID: st.ClientID, Expiry: st.Expiry, Owner: st.Owner, Subscriptions: st.Subscriptions, Inbound: st.Inbound}
	now := time.Now()
	buf := bytebufferpool.Get()
	defer bytebufferpool.Put(buf)
	for _, d := range st.Deliveries {
		m := d.Message
		p := packets.Packet{Type: packets.Publish, ProtocolVersion: packets.Version5, QoS: m.QoS, Retain: m.Retain, Topic: m.Topic, Payload: m.Payload, Properties: m.Properties}
		if m.QoS > 0 {
			p.PacketID = 1
		}
		if !m.Expires.IsZero() {
			left := m.Expires.Sub(now)
			if left <= 0 {
				continue
			}
			p.Properties.MessageExpiry = uint32((left + time.Second - 1) / time.Second)
			p.Properties.Set(packets.PropMessageExpiry)
		}
		buf.B = buf.B[:0]
		if err := p.Encode(buf); err != nil {
			continue
		}
		ws.Deliveries = append(ws.Deliveries, wireDelivery{
			QoS: d.QoS, Retain: d.Retain, SubscriptionIDs: d.SubscriptionIDs, PacketID: d.PacketID, Pubrec: d.Pubrec,
			Origin: m.Origin, Publish: append([]byte(nil), buf.B...),
		})
	}
	return ws
}

// decode makes ws a core.StoredSession, its messages' expiry counted from
// now.
func (ws *wireSession) decode(now time.Time) (*core.StoredSession, error) {
	if ws == nil || ws.ClientID == "" {
		return nil, fmt.Errorf("cluster: a session without a client ID")
	}
	st := &core.StoredSession{
		ClientID: ws.ClientID, Expiry: ws.Expiry, Disconnected: now, Owner: ws.Owner,
		Subscriptions: ws.Subscriptions, Inbound: ws.Inbound,
	}
	for i, d := range ws.Deliveries {
		var p packets.Packet
		if _, err := packets.DecodeBytes(d.Publish, packets.Version5, 0, &p); err != nil || p.Type != packets.Publish {
			return nil, fmt.Errorf("cluster: session %s: message %d: not a PUBLISH: %w", ws.ClientID, i, err)
		}
		m := &core.StoredMessage{Message: core.Message{
			Topic: p.Topic, Payload: p.Payload, QoS: p.QoS, Retain: p.Retain, Properties: p.Properties, Origin: d.Origin,
		}}
		if p.Properties.Has(packets.PropMessageExpiry) {
			m.Expires = now.Add(time.Duration(p.Properties.MessageExpiry) * time.Second)
		}
		st.Deliveries = append(st.Deliveries, core.StoredDelivery{
			Seq: uint64(i + 1), Message: m, QoS: d.QoS, Retain: d.Retain,
			SubscriptionIDs: d.SubscriptionIDs, PacketID: d.PacketID, Pubrec: d.Pubrec,
		})
	}
	return st, nil
}
