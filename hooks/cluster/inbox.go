package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// QoS 1 and 2 messages travel between nodes through JetStream: each node
// has an inbox, the subject PREFIX.in.NODE of the work-queue stream
// PREFIX_inbox, which the node reads through one durable consumer of its
// own (never one per subscription). A publisher's PUBACK waits until the
// stream has stored the message, replicated, for every node with
// interest; a node that is down meanwhile finds its messages waiting when
// it returns.

// streamNames are the JetStream names the cluster uses under its prefix.
type streamNames struct {
	inbox, routes, nodes, retained, sessions string // stream and KV buckets
	inboxSubj                                string // PREFIX.in
}

func names(prefix string) streamNames {
	return streamNames{inbox: prefix + "_inbox", routes: prefix + "_routes", nodes: prefix + "_nodes", retained: prefix + "_retained", sessions: prefix + "_sessions", inboxSubj: prefix + ".in"}
}

// inboxSubject is the subject of node's inbox.
func (h *Hook) inboxSubject(node string) string { return h.names.inboxSubj + "." + node }

// replicas is how many copies the cluster's streams keep: the config's
// replicas, or as many NATS servers as the node knows of, up to 3.
func (h *Hook) replicas(nc *nats.Conn) int {
	if h.cfg.Replicas > 0 {
		return h.cfg.Replicas
	}
	return min(3, max(1, len(nc.Servers())))
}

// jsState is what one JetStream session of the node set up (openJetStream).
type jsState struct {
	js       jetstream.JetStream
	routes   jetstream.KeyValue
	nodes    jetstream.KeyValue
	retained jetstream.KeyValue
	sessions jetstream.KeyValue
	inbox    jetstream.Stream
	consume  jetstream.ConsumeContext
}

// openJetStream makes (or finds) the inbox stream, the buckets and this
// node's inbox consumer, within ctx, and starts reading the inbox into
// h.inbox until life ends (or the consumer is stopped).
func (h *Hook) openJetStream(ctx, life context.Context, nc *nats.Conn) (*jsState, error) {
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncTimeout(h.cfg.HandoffTimeout),
		jetstream.WithPublishAsyncMaxPending(1<<14))
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	r := h.replicas(nc)
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name:        h.names.inbox,
		Description: "vanemq: QoS 1/2 messages handed to each node",
		Subjects:    []string{h.names.inboxSubj + ".>"},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    r,
		MaxAge:      h.cfg.InboxMaxAge,
		Duplicates:  2 * time.Minute,
	})
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		stream, err = js.Stream(ctx, h.names.inbox)
	}
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", h.names.inbox, err)
	}
	kv, err := bucket(ctx, js, jetstream.KeyValueConfig{
		Bucket:      h.names.routes,
		Description: "vanemq: each node's distinct subscriptions",
		Storage:     jetstream.FileStorage,
		Replicas:    r,
	})
	if err != nil {
		return nil, err
	}
	nodes, err := bucket(ctx, js, jetstream.KeyValueConfig{
		Bucket:      h.names.nodes,
		Description: "vanemq: the nodes, each writing its entry every heartbeat",
		Storage:     jetstream.FileStorage,
		Replicas:    r,
		TTL:         time.Hour,
	})
	if err != nil {
		return nil, err
	}
	retained, err := bucket(ctx, js, jetstream.KeyValueConfig{
		Bucket:      h.names.retained,
		Description: "vanemq: the retained messages, by topic",
		Storage:     jetstream.FileStorage,
		Replicas:    r,
	})
	if err != nil {
		return nil, err
	}
	sessions, err := bucket(ctx, js, jetstream.KeyValueConfig{
		Bucket:      h.names.sessions,
		Description: "vanemq: which node holds each client's session",
		Storage:     jetstream.FileStorage,
		Replicas:    r,
	})
	if err != nil {
		return nil, err
	}
	// A node adopting this node's sessions (this node was taken for dead)
	// reads its inbox: this node waits until that is done.
	actx, acancel := context.WithTimeout(life, adoptTimeout)
	waited, err := h.awaitAdoption(actx, sessions, h.cfg.Node)
	acancel()
	if err != nil {
		return nil, err
	}
	if waited {
		h.log.Warn("cluster: another node adopted this node's sessions while it was away; those it holds now are let go")
	}
	cons, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       h.cfg.Node,
		Description:   "vanemq: node " + h.cfg.Node + "'s inbox",
		FilterSubject: h.inboxSubject(h.cfg.Node),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		MaxAckPending: 1 << 12,
	})
	if err != nil {
		return nil, fmt.Errorf("consumer %s of %s: %w", h.cfg.Node, h.names.inbox, err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		select {
		case h.inbox <- m:
		case <-life.Done(): // not acknowledged: sent again
		}
	},
		jetstream.PullMaxMessages(512),
		// A pull lost under load is noticed, and made again, in seconds.
		jetstream.PullExpiry(5*time.Second),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
				// Deleted by a node that adopted this node's sessions while
				// it was stopped: the JetStream session starts over, and
				// makes the consumer again once the adoption is done.
				if h.consumerLost.CompareAndSwap(false, true) {
					h.log.Warn("cluster: this node's inbox consumer is gone (another node adopted its sessions while it was stopped); setting JetStream up again", "cause", err)
					if f := h.rewatch.Load(); f != nil {
						(*f)()
					}
				}
				return
			}
			if !errors.Is(err, jetstream.ErrNoHeartbeat) {
				h.log.Debug("cluster: reading the inbox", "cause", err)
			}
		}))
	if err != nil {
		return nil, fmt.Errorf("read the inbox: %w", err)
	}
	return &jsState{js: js, routes: kv, nodes: nodes, retained: retained, sessions: sessions, inbox: stream, consume: cc}, nil
}

// bucket makes the KV bucket cfg describes, or opens it as it is when
// another node made it first.
func bucket(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := js.CreateKeyValue(ctx, cfg)
	if errors.Is(err, jetstream.ErrBucketExists) {
		kv, err = js.KeyValue(ctx, cfg.Bucket)
	}
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// drainInbox waits, up to ctx, until every message in this node's inbox
// when it is called has been routed here: before a session leaves the
// node, so that the messages handed to the node for it go with it.
func (h *Hook) drainInbox(ctx context.Context) error {
	st := h.js.Load()
	if st == nil {
		return errNoJetStream
	}
	last, err := st.inbox.GetLastMsgForSubject(ctx, h.inboxSubject(h.cfg.Node))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil // nothing waiting
	}
	if err != nil {
		return fmt.Errorf("cluster: read the inbox: %w", err)
	}
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for h.inboxSeq.Load() < last.Sequence {
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: the inbox is not drained (routed up to %d of %d): %w", h.inboxSeq.Load(), last.Sequence, ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

// handoff is a QoS 1/2 message waiting for JetStream to store it for
// every node it was published to.
type handoff struct {
	acks []jetstream.PubAckFuture
	done func(error)
}

// confirmHandoffs answers the hand-offs waiting, in order: done(nil) once
// every node's copy is stored, done(err) when one is not, within
// handoff_timeout.
func (h *Hook) confirmHandoffs() {
	h.hoMu.Lock()
	list := h.handoffs
	h.handoffs = nil
	h.hoMu.Unlock()
	for _, ho := range list {
		var err error
		for _, a := range ho.acks {
			select {
			case <-a.Ok():
			case e := <-a.Err():
				err = e
			}
		}
		if err != nil {
			h.stats.handoffFailures.Add(1)
			err = fmt.Errorf("cluster: a node's copy was not stored: %w", err)
		}
		ho.done(err)
	}
}
