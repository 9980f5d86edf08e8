package auth

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/mqtttest"
	"github.com/vanemq/vanemq/core/packets"
	"github.com/vanemq/vanemq/core/sourceip"
)

// newGuardedFile is newTestFile with guard options, its compare counting
// the bcrypt checks.
func newGuardedFile(t *testing.T, g GuardOptions) (*File, *atomic.Int64) {
	t.Helper()
	dir := t.TempDir()
	users := writeFile(t, dir, "users.yaml", "users:\n  - {username: alice, password: '"+hashOf(t, "secret")+
		"'}\n  - {username: bob, password: '"+hashOf(t, "builder")+"'}\n")
	if g.FailureDelay == 0 {
		g.FailureDelay = -1 // TestRefusalDelay tests it
	}
	f, err := NewFile(FileOptions{Users: users, Guard: g})
	if err != nil {
		t.Fatalf("NewFile: %v", err)
	}
	t.Cleanup(func() { _ = f.Close() })
	var n atomic.Int64
	real := f.compare
	f.compare = func(hash, pw []byte) error {
		n.Add(1)
		return real(hash, pw)
	}
	return f, &n
}

func login(f *File, remote, user, password string) core.Verdict {
	cl := &core.ClientInfo{ID: "c-" + user, Username: user, Remote: remote}
	return f.Authenticate(context.Background(), cl, &core.Credentials{Username: user, UsernameSet: true,
		Password: []byte(password), PasswordSet: true})
}

var rateRefusal = packets.ConnectionRateExceeded

// A password verified once is not checked with bcrypt again: a known user
// connecting again costs none. A wrong password is still checked (and
// refused) after a right one was cached, and a reload forgets what was
// verified.
func TestVerifiedCache(t *testing.T) {
	f, checks := newGuardedFile(t, GuardOptions{})
	for i := range 3 {
		if v := login(f, "192.0.2.1:5000", "alice", "secret"); v != core.Allow {
			t.Fatalf("login %d: %+v", i, v)
		}
	}
	if n := checks.Load(); n != 1 {
		t.Fatalf("%d bcrypt checks for 3 logins with one password, want 1", n)
	}
	if v := login(f, "192.0.2.1:5000", "alice", "wrong"); v != badCredentials() {
		t.Fatalf("wrong password after a cached right one: %+v, want refused", v)
	}
	if v := login(f, "192.0.2.1:5000", "bob", "secret"); v != badCredentials() {
		t.Fatalf("alice's password for bob: %+v, want refused", v)
	}
	if n := checks.Load(); n != 3 {
		t.Fatalf("%d bcrypt checks, want 3: the wrong passwords are checked", n)
	}
	if err := f.Reload(); err != nil {
		t.Fatal(err)
	}
	if v := login(f, "192.0.2.1:5000", "alice", "secret"); v != core.Allow {
		t.Fatalf("after reload: %+v", v)
	}
	if n := checks.Load(); n != 4 {
		t.Fatalf("%d bcrypt checks, want 4: a reload forgets the verified passwords", n)
	}
	if st := f.GuardStats(); st.Cached != 2 || st.Checks != 4 {
		t.Errorf("stats %+v, want 2 cached and 4 checks", st)
	}
}

// The cache holds no password: its entries are keyed HMACs, under a key of
// each cache's own, so the same password gives unrelated entries in two
// caches and none contains it.
func TestVerifiedCacheRevealsNoPassword(t *testing.T) {
	a, b := newVerifiedCache(10, time.Minute), newVerifiedCache(10, time.Minute)
	ea := a.entry("alice", []byte("secret"), []byte("$2a$hash"))
	if ea == b.entry("alice", []byte("secret"), []byte("$2a$hash")) {
		t.Fatal("two caches key one password alike: a dump of one could be checked against guesses")
	}
	if ea == a.entry("alice", []byte("secret"), []byte("$2a$other")) {
		t.Fatal("a changed hash gives the same entry")
	}
	if ea == a.entry("alicesecret", nil, []byte("$2a$hash")) {
		t.Fatal("user name and password are not told apart")
	}
	now := time.Now()
	a.add(ea, now)
	if !a.has(ea, now) || a.has(ea, now.Add(time.Minute)) {
		t.Fatal("an entry does not last exactly its TTL")
	}
}

// Failed logins are limited per source (an IPv6 /64 counting as one) and
// per user name: past max_failures in the window, a login is refused
// without a bcrypt check with Connection rate exceeded (0x9F), even with
// the right password; another source is not held back; a user whose name
// is attacked still gets in from a source that has not failed, and with a
// password verified before.
func TestFailureLimits(t *testing.T) {
	f, checks := newGuardedFile(t, GuardOptions{MaxFailures: 3, FailureWindow: time.Hour})
	if v := login(f, "198.51.100.9:1", "alice", "secret"); v != core.Allow { // cached before the attack
		t.Fatal(v)
	}
	for i := range 3 {
		if v := login(f, "192.0.2.1:4000", "alice", "guess"); v != badCredentials() {
			t.Fatalf("failure %d: %+v", i, v)
		}
	}
	before := checks.Load()
	v := login(f, "192.0.2.1:4001", "bob", "builder")
	if v.Code != rateRefusal || v.Decision != core.DecisionDeny {
		t.Fatalf("a fourth login from the source, with bob's right password: %+v, want refused with 0x9F", v)
	}
	if checks.Load() != before {
		t.Fatal("the refused login was checked with bcrypt")
	}
	if v := login(f, "203.0.113.5:1", "bob", "builder"); v != core.Allow {
		t.Fatalf("another source: %+v, want allowed", v)
	}
	// alice's name has had 3 failures: from a source that has failed it
	// is refused; from a clean one it is checked; with the cached
	// password it passes anywhere.
	if v := login(f, "203.0.113.6:1", "alice", "guess"); v != badCredentials() { // a clean source's first failure
		t.Fatalf("clean source: %+v", v)
	}
	if v := login(f, "203.0.113.6:2", "alice", "guess2"); v.Code != rateRefusal {
		t.Fatalf("a failed source, for the attacked name: %+v, want 0x9F", v)
	}
	if v := login(f, "203.0.113.7:1", "alice", "secret"); v != core.Allow {
		t.Fatalf("the cached password from a new source: %+v", v)
	}
	// A limited source is refused before the cache: it cannot test
	// guesses of a cached password without a limit.
	if v := login(f, "192.0.2.1:4002", "alice", "secret"); v.Code != rateRefusal {
		t.Fatalf("alice's cached password from the limited source: %+v, want 0x9F", v)
	}
	// IPv6: one /64 is one source.
	for i := range 3 {
		login(f, "[2001:db8:0:1::"+string(rune('a'+i))+"]:1", "nobody", "x")
	}
	// (bob's password is cached by now: a wrong one is what gets checked.)
	if v := login(f, "[2001:db8:0:1:ffff::1]:1", "bob", "wrong"); v.Code != rateRefusal {
		t.Fatalf("another address of the /64: %+v, want 0x9F", v)
	}
	if v := login(f, "[2001:db8:0:2::1]:1", "bob", "wrong"); v != badCredentials() {
		t.Fatalf("another /64: %+v, want checked (and refused)", v)
	}
	if st := f.GuardStats(); st.Limited != 4 {
		t.Errorf("stats %+v, want 4 limited", st)
	}
}

// A source regains attempts over the window.
func TestFailureLimitsRefill(t *testing.T) {
	l := newFailureLimits(2, time.Minute)
	src, _ := netipPrefix("192.0.2.1:1")
	now := time.Now()
	l.failed(src, true, "u", now)
	l.failed(src, true, "u", now)
	if l.refused(src, true, "u", now) == "" {
		t.Fatal("not refused after 2 failures of 2")
	}
	if why := l.refused(src, true, "u", now.Add(30*time.Second)); why != "" {
		t.Fatalf("refused half a window later (one attempt regained): %s", why)
	}
}

// At most Concurrency checks run at once and Queue wait; a login beyond
// them is refused at once with Server busy (0x89), without a check.
func TestVerifyPoolFailsFast(t *testing.T) {
	f, _ := newGuardedFile(t, GuardOptions{Concurrency: 1, Queue: 1, CacheSize: -1, MaxFailures: -1})
	gate, entered := make(chan struct{}), make(chan struct{}, 4)
	real := f.compare
	f.compare = func(hash, pw []byte) error {
		entered <- struct{}{}
		<-gate
		return real(hash, pw)
	}
	var wg sync.WaitGroup
	results := make(chan core.Verdict, 2)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results <- login(f, "192.0.2.1:1", "alice", "secret")
		}()
	}
	<-entered // one checks
	mqtttest.Eventually(t, 10*time.Second, "the second login waits for a check", func() bool { return f.pool.waiting.Load() == 1 })
	v := login(f, "192.0.2.2:1", "bob", "builder")
	if v.Code != packets.ServerBusy || v.Decision != core.DecisionDeny {
		t.Fatalf("a third login with one check running and one waiting: %+v, want refused with 0x89", v)
	}
	close(gate)
	wg.Wait()
	close(results)
	for v := range results {
		if v != core.Allow {
			t.Errorf("a login that ran or waited: %+v, want allowed", v)
		}
	}
	if st := f.GuardStats(); st.Busy != 1 || st.Checks != 2 {
		t.Errorf("stats %+v, want 1 busy and 2 checks", st)
	}
}

// A login waiting for a check gives up when its connection ends.
func TestVerifyPoolWaitEndsWithConnection(t *testing.T) {
	p := newVerifyPool(1, 4)
	if err := p.acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.acquire(ctx); err == nil {
		t.Fatal("acquired a taken slot with an ended context")
	}
	if n := p.waiting.Load(); n != 0 {
		t.Fatalf("%d still waiting", n)
	}
}

func netipPrefix(remote string) (netip.Prefix, bool) { return sourceip.OfString(remote) }

// Every refusal is answered after failure_delay, so a client retrying at
// once is refused a few times a second; an allowed login is not delayed.
func TestRefusalDelay(t *testing.T) {
	f, _ := newGuardedFile(t, GuardOptions{FailureDelay: 3 * time.Second, MaxFailures: 1, Concurrency: 1, Queue: 0})
	var delays []time.Duration
	f.refusalDelay = func(_ context.Context, d time.Duration) { delays = append(delays, d) }
	login(f, "192.0.2.1:1", "alice", "secret")
	login(f, "192.0.2.1:1", "alice", "wrong")  // checked: bad credentials
	login(f, "192.0.2.1:1", "alice", "wrong2") // limited
	login(f, "192.0.2.2:1", "mallory", "x")    // unknown user
	if len(delays) != 3 || delays[0] != 3*time.Second {
		t.Fatalf("delays %v, want 3s for each of the 3 refusals and none for the login allowed", delays)
	}
	// The real delay ends with the connection.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan struct{})
	var w delayed
	go func() { w.delay(ctx, time.Hour); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the delay outlived its connection")
	}
	// With maxDelayed refusals waiting, another is answered at once.
	var full delayed
	full.n.Store(maxDelayed)
	done = make(chan struct{})
	go func() { full.delay(context.Background(), time.Hour); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a refusal waited though maxDelayed were waiting")
	}
}

// Zero takes a default; a negative turns the cache, the failure limit and
// the delay off (as -1); out of range is an error naming the key.
func TestGuardOptionsFill(t *testing.T) {
	o := GuardOptions{CacheSize: -7, MaxFailures: -1, FailureDelay: -time.Second}
	if err := o.fill(); err != nil {
		t.Fatal(err)
	}
	if o.CacheSize != -1 || o.MaxFailures != -1 || o.FailureDelay != -1 || o.Queue != 32 || o.FailureWindow != time.Minute {
		t.Fatalf("filled %+v", o)
	}
	var d GuardOptions
	if err := d.fill(); err != nil || d.CacheSize != 10_000 || d.MaxFailures != 10 || d.FailureDelay != time.Second {
		t.Fatalf("defaults %+v, %v", d, err)
	}
	bad := GuardOptions{Queue: maxQueue + 1}
	if err := bad.fill(); err == nil || !strings.Contains(err.Error(), "verify_queue") {
		t.Fatalf("queue over the bound: %v", err)
	}
}
