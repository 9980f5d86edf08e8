package js

import (
	"hash/maphash"
	"sync"
	"time"

	"github.com/vanemq/vanemq/core"
)

// The cached actions; a subscription's key adds the QoS asked for.
const (
	actionPublish   byte = 1
	actionSubscribe byte = 2 // 2, 3, 4: QoS 0, 1, 2
)

// cacheKey identifies a decision: the action, the client (its ID and
// username, which can change between connections) and the topic or filter.
// The cache is only right for scripts whose decision depends on nothing
// else (not the payload, not the time).
type cacheKey struct {
	action   byte
	client   string
	username string
	topic    string
}

// cached is a decision and, for a subscription, the QoS granted.
type cached struct {
	verdict core.Verdict
	qos     byte
	expires int64 // unix nanos
}

// decisionCache holds decisions for ttl, in shards that are emptied when
// they reach their share of size. A reload starts a new cache.
type decisionCache struct {
	ttl    time.Duration
	per    int
	seed   maphash.Seed
	shards [16]cacheShard
}

type cacheShard struct {
	mu sync.Mutex
	m  map[cacheKey]cached
}

func newDecisionCache(ttl time.Duration, size int) *decisionCache {
	c := &decisionCache{ttl: ttl, per: max(size/16, 1), seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].m = make(map[cacheKey]cached)
	}
	return c
}

func (c *decisionCache) shard(k *cacheKey) *cacheShard {
	var h maphash.Hash
	h.SetSeed(c.seed)
	_, _ = h.WriteString(k.client)
	_, _ = h.WriteString(k.topic)
	return &c.shards[h.Sum64()%16]
}

// get returns a live decision.
func (c *decisionCache) get(k cacheKey) (core.Verdict, byte, bool) {
	s := c.shard(&k)
	s.mu.Lock()
	e, ok := s.m[k]
	s.mu.Unlock()
	if !ok || time.Now().UnixNano() >= e.expires {
		return core.Verdict{}, 0, false
	}
	return e.verdict, e.qos, true
}

// put stores a decision.
func (c *decisionCache) put(k cacheKey, v core.Verdict, qos byte) {
	s := c.shard(&k)
	s.mu.Lock()
	if len(s.m) >= c.per {
		clear(s.m)
	}
	s.m[k] = cached{verdict: v, qos: qos, expires: time.Now().Add(c.ttl).UnixNano()}
	s.mu.Unlock()
}
