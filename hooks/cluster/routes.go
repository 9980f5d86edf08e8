package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vanemq/vanemq/core/topics"
)

// The route table says which node holds which distinct subscriptions, so
// that a node hands a QoS 1/2 message to exactly the nodes with interest
// in it, and picks one node per share group. Each node writes its own
// entries into the KV bucket PREFIX_routes, key NODE.HASH (HASH names the
// (group, filter) pair), and watches everyone else's into a trie of its
// own: a topics.Trie whose "clients" are nodes.
//
// An entry's value is: the QoS byte, uvarint length of the group, the
// group, then the filter.

// routes is the route table as this node knows it: its own entries from
// the core directly (InterestChanged), the others' from the bucket.
type routes struct {
	node string
	trie *topics.Trie
	// loaded is set once the bucket's entries present when the watch began
	// have been read: until then the node does not know where to route.
	loaded atomic.Bool

	mu   sync.Mutex
	keys map[string]topics.Subscription // another node's key -> its entry

	// remote counts the other nodes' entries (keys), localShared this
	// node's share groups: with neither, Forward has nothing to do.
	remote, localShared atomic.Int64
	// localGroups are this node's share groups, for localShared; under
	// InterestChanged's order (the core's interest lock).
	localGroups map[interestKey]bool
}

// localOnly reports whether no other node has interest in anything and
// this node has no share group: a message published here then stays
// here.
func (r *routes) localOnly() bool {
	return r.remote.Load() == 0 && r.localShared.Load() == 0
}

func newRoutes(node string) *routes {
	return &routes{node: node, trie: topics.NewTrie(), keys: make(map[string]topics.Subscription), localGroups: make(map[interestKey]bool)}
}

// routeKey is the bucket key of node's entry for (group, filter).
func routeKey(node string, k interestKey) string {
	sum := sha256.Sum256([]byte(k.group + "\x00" + k.filter))
	return node + "." + hex.EncodeToString(sum[:16])
}

// routeValue encodes an entry's value.
func routeValue(k interestKey, qos byte) []byte {
	b := make([]byte, 0, 1+binary.MaxVarintLen64+len(k.group)+len(k.filter))
	b = append(b, qos)
	b = binary.AppendUvarint(b, uint64(len(k.group)))
	b = append(b, k.group...)
	return append(b, k.filter...)
}

// errRouteValue is returned for a bucket value routeValue did not make.
var errRouteValue = errors.New("cluster: not a route entry")

// decodeRoute decodes a bucket entry into the subscription it stands for.
func decodeRoute(key string, value []byte) (topics.Subscription, error) {
	node, _, ok := strings.Cut(key, ".")
	if !ok || len(value) < 2 || value[0] > 2 {
		return topics.Subscription{}, errRouteValue
	}
	gl, n := binary.Uvarint(value[1:])
	if n <= 0 || gl > uint64(len(value)-1-n) {
		return topics.Subscription{}, errRouteValue
	}
	rest := value[1+n:]
	s := topics.Subscription{ClientID: node, Group: string(rest[:gl]), Filter: string(rest[gl:]), QoS: value[0]}
	if err := topics.ValidateFilter(s.Filter); err != nil {
		return topics.Subscription{}, fmt.Errorf("%w: %w", errRouteValue, err)
	}
	return s, nil
}

// setLocal records this node's own interest in (group, filter); count 0
// removes it.
func (r *routes) setLocal(k interestKey, qos byte, count int) {
	if k.group != "" {
		if had := r.localGroups[k]; had != (count > 0) {
			if count > 0 {
				r.localGroups[k] = true
			} else {
				delete(r.localGroups, k)
			}
			r.localShared.Store(int64(len(r.localGroups)))
		}
	}
	if count == 0 {
		r.trie.Unsubscribe(r.node, k.group, k.filter)
		return
	}
	r.trie.Subscribe(topics.Subscription{ClientID: r.node, Group: k.group, Filter: k.filter, QoS: qos})
}

// prune removes the other nodes' entries whose keys are not in keep.
func (r *routes) prune(keep map[string]bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for key, s := range r.keys {
		if !keep[key] {
			r.trie.Unsubscribe(s.ClientID, s.Group, s.Filter)
			delete(r.keys, key)
		}
	}
	r.remote.Store(int64(len(r.keys)))
}

// nodesFor returns the other nodes with interest in topic, ordinary or
// shared, for tests and the admin API.
func (r *routes) nodesFor(topic string) []string {
	var m topics.Matches
	r.trie.Match(topic, &m)
	seen := map[string]bool{}
	var out []string
	add := func(s *topics.Subscription) bool {
		if s.ClientID != r.node && !seen[s.ClientID] {
			seen[s.ClientID] = true
			out = append(out, s.ClientID)
		}
		return false
	}
	for _, s := range m.Subs {
		add(s)
	}
	for _, g := range m.Shared {
		g.Next(add) // visits every member, taking none
	}
	return out
}

// apply records one bucket entry of another node, reporting whether it
// was one (this node's own entries come from the core, not the bucket).
func (r *routes) apply(e jetstream.KeyValueEntry) (bool, error) {
	key := e.Key()
	if strings.HasPrefix(key, r.node+".") {
		return false, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	defer func() { r.remote.Store(int64(len(r.keys))) }()
	if old, ok := r.keys[key]; ok {
		r.trie.Unsubscribe(old.ClientID, old.Group, old.Filter)
		delete(r.keys, key)
	}
	if e.Operation() != jetstream.KeyValuePut {
		return true, nil
	}
	s, err := decodeRoute(key, e.Value())
	if err != nil {
		return true, err
	}
	r.keys[key] = s
	r.trie.Subscribe(s)
	return true, nil
}

// watchRoutes keeps the table up to date with the bucket until ctx ends
// or the watch fails, dropping the entries deleted while nobody watched;
// it sets loaded once the entries present at its start are in.
func (h *Hook) watchRoutes(ctx context.Context, kv jetstream.KeyValue) error {
	seen := make(map[string]bool) // until the entries present at the start are in
	return h.watchBucket(ctx, kv, "the route table", func(e jetstream.KeyValueEntry) error {
		if seen != nil {
			seen[e.Key()] = true
		}
		_, err := h.routes.apply(e)
		return err
	}, func() {
		h.routes.prune(seen) // deleted while nobody watched
		seen = nil
		h.routes.loaded.Store(true)
	})
}

// syncRoutes makes the bucket hold exactly this node's interest, as
// applied so far: it writes every entry and deletes the node's entries
// left from before (a restart, or changes made while NATS was away).
func (h *Hook) syncRoutes(ctx context.Context, kv jetstream.KeyValue, local map[interestKey]byte) error {
	want := make(map[string]bool, len(local))
	for k, q := range local {
		key := routeKey(h.cfg.Node, k)
		want[key] = true
		if _, err := kv.Put(ctx, key, routeValue(k, q)); err != nil {
			return fmt.Errorf("write the route of %q: %w", fullFilter(k), err)
		}
	}
	lister, err := kv.ListKeysFiltered(ctx, h.cfg.Node+".>")
	if err != nil {
		return fmt.Errorf("list this node's routes: %w", err)
	}
	defer func() { _ = lister.Stop() }()
	var stale []string
	for key := range lister.Keys() {
		if !want[key] {
			stale = append(stale, key)
		}
	}
	for _, key := range stale {
		if err := kv.Delete(ctx, key); err != nil {
			return fmt.Errorf("delete a stale route: %w", err)
		}
	}
	return nil
}
