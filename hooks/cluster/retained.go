package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/valyala/bytebufferpool"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/packets"
)

// Retained messages are the KV bucket PREFIX_retained, one key per topic:
// a node that routes a retained message writes it there (a QoS 1/2
// publisher's acknowledgement waits for the write, as for a hand-off),
// and every node mirrors the bucket into its own retained store
// (Server.SetRetained), so that a subscription on any node gets every
// matching retained message from its own node. A value is an envelope
// (origin and PUBLISH); a cleared topic is a deleted key.

// maxRetainedKey is the longest key a topic's tokens are used as; a longer
// topic's key is retainedHashPrefix and a hash of the topic, and the
// topic is read from the PUBLISH.
const maxRetainedKey = 1024

// retainedHashPrefix starts a hashed key: "=hash" is no token AppendTopic
// makes ('=' is followed by two upper-case hex digits or nothing there).
const retainedHashPrefix = "=hash."

// retainedKey is the bucket key of topic.
func retainedKey(topic string) string {
	key := Topic(topic)
	if len(key) <= maxRetainedKey {
		return key
	}
	sum := sha256.Sum256([]byte(topic))
	return retainedHashPrefix + hex.EncodeToString(sum[:16])
}

// retainedState is what the node's watch read of the bucket.
type retainedState struct {
	hashed map[string]string // hashed key -> topic, for deletes; the watch's goroutine only
}

// putRetained writes f, a retained message, into the bucket, or deletes
// its topic's key for an empty payload.
func (h *Hook) putRetained(st *jsState, f *core.Forwarded) (jetstream.PubAckFuture, error) {
	msg := &nats.Msg{Subject: "$KV." + h.names.retained + "." + retainedKey(f.Topic())}
	if len(f.Payload()) == 0 {
		msg.Header = nats.Header{"KV-Operation": []string{"DEL"}}
	} else {
		buf := bytebufferpool.Get()
		defer bytebufferpool.Put(buf)
		if !h.encode(buf, f, false, nil) {
			return nil, errExpired
		}
		msg.Data = append([]byte(nil), buf.B...)
	}
	return st.js.PublishMsgAsync(msg)
}

// errExpired is a message that expired before it was handed off.
var errExpired = errors.New("cluster: the message expired")

// watchRetained mirrors the bucket into this node's retained store until
// ctx ends or the watch fails; it sets loaded once the entries present at
// its start are in.
func (h *Hook) watchRetained(ctx context.Context, kv jetstream.KeyValue) error {
	st := &retainedState{hashed: make(map[string]string)}
	return h.watchBucket(ctx, kv, "the retained messages", func(e jetstream.KeyValueEntry) error {
		return h.applyRetained(st, e)
	}, func() { h.retainedLoaded.Store(true) })
}

// applyRetained applies one bucket entry to the node's retained store.
func (h *Hook) applyRetained(st *retainedState, e jetstream.KeyValueEntry) error {
	key := e.Key()
	hashed := strings.HasPrefix(key, retainedHashPrefix)
	if e.Operation() != jetstream.KeyValuePut {
		topic, ok := st.hashed[key]
		if hashed {
			delete(st.hashed, key)
		} else {
			var err error
			if topic, err = DecodeTopic(key); err != nil {
				return err
			}
			ok = true
		}
		if ok {
			h.srv.ClearRetained(topic)
		}
		return nil
	}
	env, err := decodeEnvelope(e.Value())
	if err != nil {
		return err
	}
	if hashed {
		var p packets.Packet
		if _, err := packets.DecodeBytes(env.publish, packets.Version5, 0, &p); err != nil {
			return err
		}
		st.hashed[key] = strings.Clone(p.Topic)
	}
	return h.srv.SetRetained(env.publish, env.origin, e.Created())
}
