package cluster

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vanemq/vanemq/core"
)

// The node registry is the KV bucket PREFIX_nodes: each node keeps its
// entry (key: its name) fresh by writing it every heartbeat, and deletes
// it when it stops. A node that stops writing for three heartbeats is
// taken to be down; the bucket's TTL clears entries of nodes long gone.

// heartbeat is how often a node writes its registry entry.
const heartbeat = 2 * time.Second

// nodeRecord is a node's registry entry.
type nodeRecord struct {
	// Instance identifies the node's process: it changes when the node
	// restarts.
	Instance uint64 `json:"instance"`
	// Since is when the process joined.
	Since time.Time `json:"since"`
}

// registry is what this node saw of the node registry.
type registry struct {
	mu    sync.Mutex
	nodes map[string]seenNode
}

type seenNode struct {
	rec  nodeRecord
	seen time.Time
}

// beat writes this node's entry every heartbeat until ctx ends.
func (h *Hook) beat(ctx context.Context, kv jetstream.KeyValue) {
	rec, _ := json.Marshal(nodeRecord{Instance: h.instance, Since: h.since})
	t := time.NewTicker(heartbeat)
	defer t.Stop()
	for {
		wctx, cancel := context.WithTimeout(ctx, heartbeat)
		if _, err := kv.Put(wctx, h.cfg.Node, rec); err != nil && ctx.Err() == nil {
			h.log.Debug("cluster: cannot write this node's registry entry", "cause", err)
		}
		cancel()
		h.adoptStale(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// watchdogTick is how often the watchdog notes that the process runs.
const watchdogTick = 250 * time.Millisecond

// watchdog notes, every watchdogTick, that the process runs (lastTick),
// and fences the node when it finds it did not for longer than the other
// nodes wait for it (three heartbeats): the process was stopped (SIGSTOP,
// a frozen VM), and they may have claimed its sessions meanwhile. It does
// nothing else, so that only a stopped process, not a slow NATS, looks
// stopped.
func (h *Hook) watchdog(ctx context.Context) {
	defer h.wg.Done()
	t := time.NewTicker(watchdogTick)
	defer t.Stop()
	h.lastTick.Store(int64(time.Since(h.since)))
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := int64(time.Since(h.since))
		if last := h.lastTick.Swap(now); now-last > int64(3*heartbeat) {
			h.stallSeen.Store(true)
			h.fenceIfStalled(ctx)
		}
	}
}

// fenceIfStalled fences the node (fence) once after the watchdog found
// it stopped, or when the watchdog has not run for three heartbeats (it
// was stopped too, and has not run yet since). The receive loop calls it
// before routing what came while the node was stopped, so that nothing
// reaches a session another node holds now.
func (h *Hook) fenceIfStalled(ctx context.Context) {
	stalled := func() bool {
		last := h.lastTick.Load()
		return h.stallSeen.Load() || last != 0 && int64(time.Since(h.since))-last > int64(3*heartbeat)
	}
	if !stalled() {
		return
	}
	h.fenceMu.Lock()
	defer h.fenceMu.Unlock()
	if stalled() && h.js.Load() != nil { // not fenced meanwhile; and it can be now
		h.fence(ctx)
		h.stallSeen.Store(false)
		h.lastTick.Store(int64(time.Since(h.since)))
	}
}

// leave deletes this node's registry entry (the node stops).
func (h *Hook) leave(nc *nats.Conn, kv jetstream.KeyValue) {
	if !nc.IsConnected() {
		return // the others see its heartbeats stop
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.ConnectTimeout)
	defer cancel()
	_ = kv.Delete(ctx, h.cfg.Node)
}

// watchNodes follows the registry until ctx ends or the watch fails.
func (h *Hook) watchNodes(ctx context.Context, kv jetstream.KeyValue) error {
	return h.watchBucket(ctx, kv, "the node registry", func(e jetstream.KeyValueEntry) error {
		h.reg.mu.Lock()
		defer h.reg.mu.Unlock()
		if e.Operation() != jetstream.KeyValuePut {
			delete(h.reg.nodes, e.Key())
			return nil
		}
		var rec nodeRecord
		if err := json.Unmarshal(e.Value(), &rec); err != nil {
			return err
		}
		h.reg.nodes[e.Key()] = seenNode{rec: rec, seen: time.Now()}
		return nil
	}, func() {})
}

// alive reports whether node wrote its registry entry within the last
// three heartbeats, as this node saw.
func (h *Hook) alive(node string) bool {
	h.reg.mu.Lock()
	defer h.reg.mu.Unlock()
	n, ok := h.reg.nodes[node]
	return ok && time.Since(n.seen) < 3*heartbeat
}

// Peers lists the nodes of the cluster this node knows of, by name: those
// in the registry and those with routes, this one included.
func (h *Hook) Peers() []core.ClusterPeer {
	now := time.Now()
	byName := map[string]*core.ClusterPeer{}
	peer := func(name string) *core.ClusterPeer {
		p := byName[name]
		if p == nil {
			p = &core.ClusterPeer{Name: name, Self: name == h.cfg.Node}
			byName[name] = p
		}
		return p
	}
	self := peer(h.cfg.Node)
	self.Alive, self.Since, self.LastSeen = true, h.since, now
	h.reg.mu.Lock()
	for name, n := range h.reg.nodes {
		if name == h.cfg.Node {
			continue
		}
		p := peer(name)
		p.Since, p.LastSeen = n.rec.Since, n.seen
		p.Alive = now.Sub(n.seen) < 3*heartbeat
	}
	h.reg.mu.Unlock()
	h.routes.mu.Lock()
	for _, s := range h.routes.keys {
		peer(s.ClientID).Routes++
	}
	h.routes.mu.Unlock()
	h.mu.Lock()
	self.Routes = len(h.local)
	h.mu.Unlock()
	out := make([]core.ClusterPeer, 0, len(byName))
	for _, p := range byName {
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b core.ClusterPeer) int { return strings.Compare(a.Name, b.Name) })
	return out
}
