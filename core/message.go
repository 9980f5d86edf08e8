package core

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/bytebufferpool"

	"github.com/vanemq/vanemq/core/packets"
)

// message is an application message as the broker stores and fans it out.
// It is immutable once published, so one *message is shared by every
// subscriber's queue, the retained index and the inline handlers.
type message struct {
	topic   string
	payload []byte
	qos     byte
	retain  bool
	// props are the PUBLISH properties that travel with the message: payload
	// format, message expiry (as received), content type, response topic,
	// correlation data and user properties; nil when there are none. Topic
	// alias, subscription identifiers and will delay are per-hop and are
	// never stored here.
	props *packets.Properties
	// origin is the publishing client's ID, "" for the broker itself.
	origin string
	// remote is set on a message another node of a cluster forwarded
	// here (DeliverRemote), which is not forwarded again.
	remote bool
	// expires is when the message expires (MQTT 5 Message Expiry); zero
	// means never.
	expires time.Time
	// storeID identifies the message in the store, shared by every stored
	// delivery of it; 0 until first stored (Server.messageID).
	storeID atomic.Uint64

	// fanout is how many deliveries the publish fanned out to; the encoded
	// views are cached only when more than one subscriber can share them.
	fanout atomic.Int32
	// refs counts deliveries queued for writers that may use the cached
	// views; when it drops to zero the views go back to the pool.
	refs atomic.Int32
	// viewMu guards views. The views cache the encoded PUBLISH for the
	// views that are the same for every subscriber (no subscription
	// identifier, no topic alias, no expiry to rewrite), by viewIndex, in
	// pooled buffers.
	viewMu sync.Mutex
	views  [viewSlots]*bytebufferpool.ByteBuffer
}

// hold records a queued delivery of m (see release).
func (m *message) hold() { m.refs.Add(1) }

// release ends a queued delivery of m; the last one returns the cached
// views to the pool. A delivery copies a view only while holding viewMu and
// its reference, so no view is returned while in use.
func (m *message) release() {
	if m.refs.Add(-1) != 0 {
		return
	}
	m.viewMu.Lock()
	if m.refs.Load() == 0 {
		for i, v := range m.views {
			if v != nil {
				bytebufferpool.Put(v)
				m.views[i] = nil
			}
		}
	}
	m.viewMu.Unlock()
}

// viewSlots is the number of shareable encoded views of one message: two
// wire formats (3.x and 5) × three QoS levels × retain flag.
const viewSlots = 2 * 3 * 2

// viewIndex returns the cache slot for a shareable view.
func viewIndex(version, qos byte, retain bool) int {
	i := int(qos) * 2
	if retain {
		i++
	}
	if version == packets.Version5 {
		i += 6
	}
	return i
}

// expired reports whether the message has expired at now.
func (m *message) expired(now time.Time) bool {
	return !m.expires.IsZero() && !now.Before(m.expires)
}

// remainingExpiry returns the message expiry interval to send at now, in
// whole seconds, rounded up so that a live message never reads as 0 [MQTT-3.3.2-6].
func (m *message) remainingExpiry(now time.Time) uint32 {
	d := m.expires.Sub(now)
	if d <= 0 {
		return 0
	}
	s := uint32((d + time.Second - 1) / time.Second)
	return s
}

// newMessage builds a message from a decoded PUBLISH. The packet's topic,
// payload and property memory is shared, not copied: a decoded packet owns
// its body.
func newMessage(p *packets.Packet, origin string, now time.Time) *message {
	return buildMessage(p.Topic, p.Payload, p.QoS, p.Retain, origin, &p.Properties, now)
}

// buildMessage makes a message, keeping only the properties that travel
// with it and working out when it expires.
func buildMessage(topic string, payload []byte, qos byte, retain bool, origin string, props *packets.Properties, now time.Time) *message {
	m := &message{topic: topic, payload: payload, qos: qos, retain: retain, origin: origin}
	kept := *props
	kept.TopicAlias = 0
	kept.Clear(packets.PropTopicAlias)
	kept.SubscriptionIDs = nil
	kept.WillDelay = 0
	kept.Clear(packets.PropWillDelay)
	if kept.Empty() {
		return m
	}
	m.props = new(packets.Properties)
	*m.props = kept
	if kept.Has(packets.PropMessageExpiry) {
		m.expires = now.Add(time.Duration(kept.MessageExpiry) * time.Second)
	}
	return m
}

// properties returns the message's properties (zero when it has none).
func (m *message) properties() packets.Properties {
	if m.props == nil {
		return packets.Properties{}
	}
	return *m.props
}
