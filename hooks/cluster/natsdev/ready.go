package natsdev

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// readyBucket is the KV bucket Start creates and deletes to check that
// JetStream is usable.
const readyBucket = "natsdev_ready"

// waitReady polls notReady until it reports nothing or ctx ends, and then
// returns an error wrapping ctx's and saying what was still not ready.
// c.mu is held.
func (c *Cluster) waitReady(ctx context.Context) error {
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		err := c.notReady()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("natsdev: %w: %w", ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// notReady returns what keeps the running nodes from being one working
// cluster, naming the node, or nil: each runs, is routed to every other
// running node, has JetStream with its meta state current, and (in a
// cluster) a meta leader sees every other running node current. c.mu is
// held.
func (c *Cluster) notReady() error {
	var running []*node
	for _, n := range c.nodes {
		if n.srv != nil {
			running = append(running, n)
		}
	}
	for _, n := range running {
		if !n.srv.Running() {
			return fmt.Errorf("node %s is not running", n.name)
		}
		if c.o.Nodes > 1 {
			if err := c.routedToAll(n, running); err != nil {
				return err
			}
		}
		if !n.srv.JetStreamEnabled() {
			return fmt.Errorf("node %s: JetStream is not enabled", n.name)
		}
		if !n.srv.JetStreamIsCurrent() {
			return fmt.Errorf("node %s: JetStream meta state is not current", n.name)
		}
	}
	if c.o.Nodes == 1 {
		return nil
	}
	var leader *node
	for _, n := range running {
		if n.srv.JetStreamIsLeader() {
			leader = n
		}
	}
	if leader == nil {
		return errors.New("no JetStream meta leader elected")
	}
	jsz, err := leader.srv.Jsz(nil)
	if err != nil {
		return fmt.Errorf("node %s: JetStream meta state: %w", leader.name, err)
	}
	if jsz.Meta == nil {
		return fmt.Errorf("node %s: no JetStream meta group", leader.name)
	}
	for _, n := range running {
		if n == leader {
			continue
		}
		current := false
		for _, p := range jsz.Meta.Replicas {
			if p.Name == n.name {
				current = p.Current && !p.Offline
			}
		}
		if !current {
			return fmt.Errorf("node %s: meta leader %s does not see it current", n.name, leader.name)
		}
	}
	return nil
}

// routedToAll reports which node of running, if any, n has no route to.
func (c *Cluster) routedToAll(n *node, running []*node) error {
	rz, err := n.srv.Routez(nil)
	if err != nil {
		return fmt.Errorf("node %s: routes: %w", n.name, err)
	}
	for _, m := range running {
		if m == n {
			continue
		}
		found := false
		for _, r := range rz.Routes {
			if r.RemoteName == m.name {
				found = true
				break
			}
		}
		if !found {
			return fmt.Errorf("node %s: no route to node %s", n.name, m.name)
		}
	}
	return nil
}

// checkKV creates a KV bucket with min(3, Nodes) replicas, writes a key
// and deletes the bucket, through a client that may use any node,
// retrying until it works (the stream's own leader election may still be
// under way) or ctx ends. c.mu is held.
func (c *Cluster) checkKV(ctx context.Context) error {
	replicas := min(3, len(c.nodes))
	// nats.go's default error handler writes to stderr: this one logs
	// to Options.Logger, or nowhere.
	onErr := func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if c.o.Logger != nil {
			c.o.Logger.Warn("natsdev: readiness check client", "err", err)
		}
	}
	nc, err := nats.Connect(strings.Join(c.URLs(), ","), nats.Name("natsdev readiness check"), nats.ErrorHandler(onErr))
	if err != nil {
		return fmt.Errorf("natsdev: connect to check JetStream: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("natsdev: JetStream client: %w", err)
	}
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		err := tryKV(ctx, js, replicas)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("natsdev: %w: JetStream not usable: an R%d KV bucket: %w", ctx.Err(), replicas, err)
		case <-tick.C:
		}
	}
}

// tryKV is one attempt of checkKV.
func tryKV(ctx context.Context, js jetstream.JetStream, replicas int) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:   readyBucket,
		Replicas: replicas,
		Storage:  jetstream.FileStorage,
	})
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	if _, err := kv.Put(ctx, "ready", []byte("ok")); err != nil {
		return fmt.Errorf("put: %w", err)
	}
	if err := js.DeleteKeyValue(ctx, readyBucket); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	return nil
}
