// Package limit puts per-listener connection limits on a stream listener:
// a cap on the connections open at once, and a rate of new connections per
// source IP (a token bucket per source, keyed by core/sourceip: an IPv4
// address counts alone, an IPv6 address with the rest of its /64, which a
// single host usually holds whole). A connection over a limit is
// accepted and closed at once, with a Warn log line naming its remote
// address and the limit; Accept then goes on to the next connection, so
// the caller never sees it.
//
// Wrap order: with the PROXY protocol, wrap the proxyproto listener (limit
// outside proxyproto), so the limits see the client address the header
// carries rather than the load balancer's; with TLS, wrap the limit
// listener in tls.NewListener (TLS outside limit), so refused connections
// cost no handshake and the server still gets a *tls.Conn:
//
//	tls.NewListener(limit.Wrap(proxyproto.Wrap(ln, ...), ...), cfg)
package limit

import (
	"log/slog"
	"math"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/vanemq/vanemq/core/sourceip"
)

// Options sets the limits of Wrap. The zero value sets none.
type Options struct {
	// MaxConnections is the most connections from this listener open at
	// once; 0 means unlimited. A connection counts until it is closed.
	MaxConnections int
	// RatePerIP is the number of new connections per second each source
	// IP may open, on average; 0 means unlimited. IPv6 sources are counted
	// by their /64 network (see core/sourceip).
	RatePerIP float64
	// Burst is how many connections a source IP may open at once before
	// RatePerIP paces it (the token bucket's size). 0 or less means
	// DefaultBurst(RatePerIP). Unused when RatePerIP is 0.
	Burst int
}

// DefaultBurst is the burst used when Options.Burst is 0: the rate rounded
// up, and at least 1.
func DefaultBurst(rate float64) int {
	return int(max(1, math.Ceil(rate)))
}

// enabled reports whether o sets any limit.
func (o Options) enabled() bool { return o.MaxConnections > 0 || o.RatePerIP > 0 }

// listener is the net.Listener returned by Wrap.
type listener struct {
	net.Listener
	max   int
	rate  *buckets // nil without a rate limit
	log   *slog.Logger
	mu    sync.Mutex
	count int // connections handed out and not yet closed
}

// Wrap returns a listener that applies opts to the connections accepted
// from ln; it returns ln itself when opts sets no limit. Refused
// connections are closed and logged on logger (slog.Default() when nil) at
// Warn level. A connection is checked against the rate first (so every
// attempt spends a token), then against MaxConnections. Accept errors of ln
// are returned unchanged; Close and Addr are ln's.
func Wrap(ln net.Listener, opts Options, logger *slog.Logger) net.Listener {
	if !opts.enabled() {
		return ln
	}
	if logger == nil {
		logger = slog.Default()
	}
	l := &listener{Listener: ln, max: opts.MaxConnections, log: logger}
	if opts.RatePerIP > 0 {
		burst := opts.Burst
		if burst <= 0 {
			burst = DefaultBurst(opts.RatePerIP)
		}
		l.rate = newBuckets(opts.RatePerIP, burst, time.Now)
	}
	return l
}

// Accept returns the next connection within the limits, closing and
// logging those over them.
func (l *listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.rate != nil {
			if k := sourceKey(c.RemoteAddr()); !l.rate.allow(k) {
				l.log.Warn("closing connection: connection rate per source IP exceeded",
					"remote", remote(c), "source", k.String(), "rate", l.rate.rate, "burst", int(l.rate.burst))
				_ = c.Close()
				continue
			}
		}
		if l.max <= 0 {
			return c, nil
		}
		if !l.acquire() {
			l.log.Warn("closing connection: listener connection limit reached",
				"remote", remote(c), "max_connections", l.max)
			_ = c.Close()
			continue
		}
		return &conn{Conn: c, release: l.release}, nil
	}
}

// acquire takes a connection slot; it reports false when none is free.
func (l *listener) acquire() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.count >= l.max {
		return false
	}
	l.count++
	return true
}

// release frees a connection slot.
func (l *listener) release() {
	l.mu.Lock()
	l.count--
	l.mu.Unlock()
}

// remote names c's remote address for the log ("" when it has none, as
// unnamed Unix socket peers may).
func remote(c net.Conn) string {
	if a := c.RemoteAddr(); a != nil {
		return a.String()
	}
	return ""
}

// key is a rate limit bucket's key: the sourceip key of an address that
// holds an IP, else the address string (a Unix socket peer's name).
type key struct {
	ip   netip.Prefix
	name string
}

// String returns the key as the log shows it: "2001:db8::/64", "10.0.0.1/32".
func (k key) String() string {
	if k.ip.IsValid() {
		return k.ip.String()
	}
	return k.name
}

// sourceKey is the rate limit's key for a remote address: its
// sourceip.OfAddr key when it holds an IP (so every port of a host, and
// every address of an IPv6 /64, share a bucket), the address string
// otherwise.
func sourceKey(a net.Addr) key {
	if p, ok := sourceip.OfAddr(a); ok {
		return key{ip: p}
	}
	if a == nil {
		return key{}
	}
	return key{name: a.String()}
}

// conn is a connection that holds a slot of MaxConnections until closed.
type conn struct {
	net.Conn
	once    sync.Once
	release func()
}

// Close closes the connection and frees its slot; the slot is freed once
// however often Close is called.
func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// NetConn returns the wrapped connection.
func (c *conn) NetConn() net.Conn { return c.Conn }

// buckets is a token bucket per key. Buckets refill lazily when used, and
// a bucket that has refilled completely (which is the same as a new one)
// is dropped by a sweep that runs at most once per refill period, so the
// map only holds keys seen within about two refill periods.
type buckets struct {
	rate, burst float64
	now         func() time.Time
	full        time.Duration // time an empty bucket takes to refill

	mu        sync.Mutex
	m         map[key]*bucket
	lastSweep time.Time
}

// bucket is one key's tokens as of last.
type bucket struct {
	tokens float64
	last   time.Time
}

// newBuckets returns token buckets of burst tokens, refilled at rate
// tokens per second, on the clock now.
func newBuckets(rate float64, burst int, now func() time.Time) *buckets {
	b := &buckets{rate: rate, burst: float64(burst), now: now, m: make(map[key]*bucket)}
	b.full = time.Duration(b.burst / rate * float64(time.Second))
	b.lastSweep = now()
	return b
}

// allow spends a token of key's bucket; it reports false when it is empty.
func (b *buckets) allow(k key) bool {
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if now.Sub(b.lastSweep) >= b.full {
		for k, bk := range b.m {
			if b.refill(bk, now) >= b.burst {
				delete(b.m, k)
			}
		}
		b.lastSweep = now
	}
	bk, ok := b.m[k]
	if !ok {
		bk = &bucket{tokens: b.burst, last: now}
		b.m[k] = bk
	}
	if b.refill(bk, now) < 1 {
		return false
	}
	bk.tokens--
	return true
}

// refill adds the tokens earned since bk.last, up to the burst, and
// returns the bucket's tokens. A clock that went back earns nothing.
func (b *buckets) refill(bk *bucket, now time.Time) float64 {
	if d := now.Sub(bk.last); d > 0 {
		bk.tokens = min(b.burst, bk.tokens+d.Seconds()*b.rate)
		bk.last = now
	}
	return bk.tokens
}

// len returns the number of buckets held.
func (b *buckets) len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.m)
}
