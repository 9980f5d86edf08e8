package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vanemq/vanemq/core"
)

// What keeps a storm of CONNECTs with wrong passwords from starving
// everyone else: a bcrypt check costs tens of milliseconds of CPU, which a
// client pays nothing for.
//
//   - A verified password is remembered (verifiedCache): a known user
//     connecting again costs no bcrypt.
//   - A source (an IP address; an IPv6 /64) or a user name with too many
//     failed logins in a while is refused without a check (failureLimits),
//     with Connection rate exceeded (0x9F; 3.1.1: server unavailable). A
//     source is checked before the cache, so that the cache cannot answer
//     a limited source's guesses; a user name after it, so that a user
//     whose name is attacked gets in with a password verified before.
//   - At most a few checks run at once, and a few more wait
//     (verifyPool); beyond that a login is refused at once with Server
//     busy (0x89; 3.1.1: server unavailable) rather than queued without
//     bound.
//   - Every refusal is answered after a delay (FailureDelay): a client
//     that tries again as soon as it is refused, as a storm's do, then
//     makes the broker refuse it a few times a second, not thousands.

// GuardOptions bounds the password checks of an auth.file hook. The zero
// value of a field takes the default beside it; a negative CacheSize or
// MaxFailures turns that defence off.
type GuardOptions struct {
	// Concurrency is how many password checks run at once. Default half
	// the CPUs (GOMAXPROCS), at least 1: the other half keeps serving
	// connected clients during a storm.
	Concurrency int
	// Queue is how many checks may wait for one of those; a login beyond
	// them is refused at once with Server busy. Default 32.
	Queue int
	// CacheSize is how many verified passwords are remembered. Default
	// 10000; negative: none.
	CacheSize int
	// CacheTTL is how long a verified password is remembered. Default
	// 15m. A reload of the users file forgets every one.
	CacheTTL time.Duration
	// MaxFailures is how many failed logins a source or a user name may
	// have within FailureWindow before further logins from it (for a user
	// name: from a source that has failed too) are refused without a
	// check. Default 10; negative: no limit.
	MaxFailures int
	// FailureWindow is the window of MaxFailures: a source regains one
	// attempt every FailureWindow/MaxFailures. Default 1m.
	FailureWindow time.Duration
	// FailureDelay is how long a refused login waits for its CONNACK
	// (while its connection lasts). Default 1s; negative: none.
	FailureDelay time.Duration
}

// The bounds of the guard's options, checked by fill.
const (
	maxConcurrency = 1024
	maxQueue       = 1 << 16
	maxCacheSize   = 1 << 24
	maxCacheTTL    = 24 * time.Hour
	maxFailures    = 1 << 20
	maxWindow      = 24 * time.Hour
	maxDelay       = time.Minute
	// maxSources bounds the failure records kept, for sources and user
	// names each: an attacker with many addresses cannot grow them
	// without bound.
	maxSources = 100_000
)

// fill checks o and fills in defaults.
func (o *GuardOptions) fill() error {
	return errors.Join(
		core.DefaultWithin(&o.Concurrency, max(1, runtime.GOMAXPROCS(0)/2), maxConcurrency, "verify_concurrency"),
		core.DefaultWithin(&o.Queue, 32, maxQueue, "verify_queue"),
		defaultOrOff(&o.CacheSize, 10_000, maxCacheSize, "cache_size"),
		core.DefaultWithin(&o.CacheTTL, 15*time.Minute, maxCacheTTL, "cache_ttl"),
		defaultOrOff(&o.MaxFailures, 10, maxFailures, "max_failures"),
		core.DefaultWithin(&o.FailureWindow, time.Minute, maxWindow, "failure_window"),
		defaultOrOff(&o.FailureDelay, time.Second, maxDelay, "failure_delay"),
	)
}

// defaultOrOff is core.DefaultWithin for a value that a negative turns
// off: a negative becomes -1, and is not an error.
func defaultOrOff[T int | time.Duration](v *T, def, max T, key string) error {
	if *v < 0 {
		*v = -1
		return nil
	}
	return core.DefaultWithin(v, def, max, key)
}

// maxDelayed bounds the refusals waiting out their delay at once: beyond
// it a refusal is answered at once, so that the connections a storm keeps
// open in delays are bounded too.
const maxDelayed = 1000

// delayed counts the refusals waiting out their delay.
type delayed struct{ n atomic.Int64 }

// delay waits d (if above 0, and fewer than maxDelayed wait) or until ctx
// ends: a refused login's answer.
func (w *delayed) delay(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	if w.n.Add(1) > maxDelayed {
		w.n.Add(-1)
		return
	}
	defer w.n.Add(-1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// errBusy is a login refused because the checks' queue is full.
var errBusy = errors.New("too many password checks waiting")

// verifyPool bounds the password checks running at once, and those
// waiting to run.
type verifyPool struct {
	slots   chan struct{}
	waiting atomic.Int64
	queue   int64
}

func newVerifyPool(concurrency, queue int) *verifyPool {
	return &verifyPool{slots: make(chan struct{}, concurrency), queue: int64(queue)}
}

// acquire takes a slot, waiting while ctx lasts if the queue has room;
// it fails at once with errBusy when it has none.
func (p *verifyPool) acquire(ctx context.Context) error {
	select {
	case p.slots <- struct{}{}:
		return nil
	default:
	}
	if p.waiting.Add(1) > p.queue {
		p.waiting.Add(-1)
		return errBusy
	}
	defer p.waiting.Add(-1)
	select {
	case p.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for a password check: %w", context.Cause(ctx))
	}
}

func (p *verifyPool) release() { <-p.slots }

// verifiedCache remembers the passwords verified against the users file
// in force, for ttl. An entry is an HMAC of the user name, the password
// and its hash, under a key made at random for the cache, so that the
// cache (in a core dump, say) gives away no password and cannot be
// checked against guesses; a changed hash no longer matches. A full
// cache starts afresh. It is part of one loaded generation of the users
// file (fileState), so a reload forgets it.
type verifiedCache struct {
	key  [32]byte
	ttl  time.Duration
	size int
	mu   sync.Mutex
	m    map[[sha256.Size]byte]time.Time // entry -> expiry
}

// newVerifiedCache returns a cache of size entries, or nil for none.
func newVerifiedCache(size int, ttl time.Duration) *verifiedCache {
	if size <= 0 {
		return nil
	}
	c := &verifiedCache{ttl: ttl, size: size, m: make(map[[sha256.Size]byte]time.Time)}
	_, _ = rand.Read(c.key[:]) // never fails (crypto/rand)
	return c
}

// entry is the cache's key of a user name, password and hash.
func (c *verifiedCache) entry(username string, password, hash []byte) [sha256.Size]byte {
	mac := hmac.New(sha256.New, c.key[:])
	var n [8]byte
	for _, part := range [][]byte{[]byte(username), password, hash} {
		binary.BigEndian.PutUint64(n[:], uint64(len(part)))
		mac.Write(n[:])
		mac.Write(part)
	}
	var out [sha256.Size]byte
	mac.Sum(out[:0])
	return out
}

// has reports whether the password was verified within the TTL.
func (c *verifiedCache) has(k [sha256.Size]byte, now time.Time) bool {
	c.mu.Lock()
	exp, ok := c.m[k]
	if ok && !now.Before(exp) {
		delete(c.m, k)
		ok = false
	}
	c.mu.Unlock()
	return ok
}

// add remembers a verified password.
func (c *verifiedCache) add(k [sha256.Size]byte, now time.Time) {
	c.mu.Lock()
	if len(c.m) >= c.size {
		clear(c.m)
	}
	c.m[k] = now.Add(c.ttl)
	c.mu.Unlock()
}

// failureLimits counts failed logins by source and by user name, each in
// a token bucket of max attempts refilled over window.
type failureLimits struct {
	max    float64
	refill float64 // attempts regained per second
	mu     sync.Mutex
	src    map[netip.Prefix]*bucket
	user   map[string]*bucket
}

// bucket is the attempts left to a source or a user name.
type bucket struct {
	left float64
	at   time.Time // when left was computed
}

// newFailureLimits returns the limits, or nil for none.
func newFailureLimits(max int, window time.Duration) *failureLimits {
	if max <= 0 {
		return nil
	}
	return &failureLimits{max: float64(max), refill: float64(max) / window.Seconds(),
		src: make(map[netip.Prefix]*bucket), user: make(map[string]*bucket)}
}

// left returns b's attempts at now.
func (l *failureLimits) left(b *bucket, now time.Time) float64 {
	if b == nil {
		return l.max
	}
	return min(l.max, b.left+now.Sub(b.at).Seconds()*l.refill)
}

// refused says why a login from src (valid when hasSrc) as username is
// refused without a check, or "" when it may be checked: its source has
// no attempt left, or its user name has none and the source has failed
// too. A user whose name is under attack from elsewhere still gets in
// from a source that has not failed.
func (l *failureLimits) refused(src netip.Prefix, hasSrc bool, username string, now time.Time) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	srcLeft := l.max
	if hasSrc {
		srcLeft = l.left(l.src[src], now)
	}
	switch {
	case srcLeft < 1:
		return "too many failed logins from this address"
	case srcLeft < l.max && l.left(l.user[username], now) < 1:
		return "too many failed logins for this user name"
	}
	return ""
}

// sourceRefused reports whether src has no attempt left.
func (l *failureLimits) sourceRefused(src netip.Prefix, hasSrc bool, now time.Time) bool {
	if !hasSrc {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.left(l.src[src], now) < 1
}

// failed records a failed login.
func (l *failureLimits) failed(src netip.Prefix, hasSrc bool, username string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if hasSrc {
		l.src[src] = spend(l, l.src, src, now)
	}
	l.user[username] = spend(l, l.user, username, now)
}

// spend takes an attempt from m[k], making room in m first if it is full.
func spend[K comparable](l *failureLimits, m map[K]*bucket, k K, now time.Time) *bucket {
	b := m[k]
	if b == nil {
		if len(m) >= maxSources {
			// Forget the records that have filled up again; if none has,
			// all of them: a bound matters more than the records.
			for key, old := range m {
				if l.left(old, now) >= l.max {
					delete(m, key)
				}
			}
			if len(m) >= maxSources {
				clear(m)
			}
		}
		b = &bucket{left: l.max, at: now}
	}
	b.left, b.at = max(0, l.left(b, now)-1), now
	return b
}

// logThrottle lets a warning through at most once per interval, counting
// the ones it held back, so that a storm of refused logins does not turn
// into a storm of log lines.
type logThrottle struct {
	every time.Duration
	mu    sync.Mutex
	last  time.Time
	held  int
}

// allow reports whether to log now, and how many were held back since
// the last line.
func (t *logThrottle) allow(now time.Time) (bool, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.last.IsZero() && now.Sub(t.last) < t.every {
		t.held++
		return false, 0
	}
	held := t.held
	t.last, t.held = now, 0
	return true, held
}

// warnThrottled logs a refusal through t.
func warnThrottled(log *slog.Logger, t *logThrottle, msg string, attrs ...any) {
	ok, held := t.allow(time.Now())
	if !ok {
		return
	}
	if held > 0 {
		attrs = append(attrs, "refused_since_last_line", held)
	}
	log.Warn(msg, attrs...)
}
