package js

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vanemq/vanemq/core"
)

// The cached actions; a subscription's key adds the QoS asked for.
const (
	actionPublish   byte = 1
	actionSubscribe byte = 2 // 2, 3, 4: QoS 0, 1, 2
)

// cacheKey identifies a decision of one connection: the action and the
// topic or filter. The cache is kept per connection (its ClientInfo), so
// a client that connects again, maybe as another user, starts afresh. It
// is only right for scripts whose decision depends on nothing else (not
// the payload, not the time).
type cacheKey struct {
	action byte
	topic  string
}

// cached is a decision and, for a subscription, the QoS granted.
type cached struct {
	verdict core.Verdict
	qos     byte
	expires int64 // unix nanos
}

// decisionCache holds decisions for ttl (by the watchdog's coarse clock,
// so up to half the call timeout longer), per connection. It holds at
// most size decisions: the hook starts a new cache when it is full, and
// on every reload.
type decisionCache struct {
	ttl     time.Duration
	clock   *atomic.Int64 // coarse unix nanos
	size    int64
	entries atomic.Int64
	conns   sync.Map // *core.ClientInfo -> *connCache
}

// connCache is one connection's decisions.
type connCache struct {
	mu sync.Mutex
	m  map[cacheKey]cached
}

func newDecisionCache(ttl time.Duration, size int, clock *atomic.Int64) *decisionCache {
	return &decisionCache{ttl: ttl, clock: clock, size: int64(size)}
}

// get returns a live decision.
func (c *decisionCache) get(cl *core.ClientInfo, k cacheKey) (core.Verdict, byte, bool) {
	v, ok := c.conns.Load(cl)
	if !ok {
		return core.Verdict{}, 0, false
	}
	cc := v.(*connCache)
	cc.mu.Lock()
	e, ok := cc.m[k]
	cc.mu.Unlock()
	if !ok || c.clock.Load() >= e.expires {
		return core.Verdict{}, 0, false
	}
	return e.verdict, e.qos, true
}

// put stores a decision; it reports false when the cache is full.
func (c *decisionCache) put(cl *core.ClientInfo, k cacheKey, v core.Verdict, qos byte) bool {
	cv, ok := c.conns.Load(cl)
	if !ok {
		cv, _ = c.conns.LoadOrStore(cl, &connCache{m: make(map[cacheKey]cached)})
	}
	cc := cv.(*connCache)
	cc.mu.Lock()
	_, had := cc.m[k]
	if !had {
		// A copy: the topic may point into the PUBLISH that carried it,
		// payload and all.
		k.topic = strings.Clone(k.topic)
	}
	cc.m[k] = cached{verdict: v, qos: qos, expires: c.clock.Load() + int64(c.ttl)}
	cc.mu.Unlock()
	if !had && c.entries.Add(1) > c.size {
		return false
	}
	return true
}

// forget drops a connection's decisions when it ends.
func (c *decisionCache) forget(cl *core.ClientInfo) {
	v, ok := c.conns.LoadAndDelete(cl)
	if !ok {
		return
	}
	cc := v.(*connCache)
	cc.mu.Lock()
	n := len(cc.m)
	cc.mu.Unlock()
	c.entries.Add(-int64(n))
}
