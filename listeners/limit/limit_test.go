package limit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a log sink safe for concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// serve wraps a loopback listener with opts and accepts from it on a
// goroutine, handing each connection to the returned channel.
func serve(t *testing.T, opts Options) (net.Listener, <-chan net.Conn, *lockedBuffer) {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	ln := Wrap(raw, opts, slog.New(slog.NewTextHandler(logs, nil)))
	accepted := make(chan net.Conn, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		close(accepted)
		for c := range accepted {
			c.Close()
		}
	})
	return ln, accepted, logs
}

// dial connects to ln and reports whether the server handed the
// connection out (true) or closed it at once (false).
func dial(t *testing.T, ln net.Listener, accepted <-chan net.Conn) (client, server net.Conn) {
	t.Helper()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	eof := make(chan error, 1)
	go func() {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err := c.Read(make([]byte, 1))
		eof <- err
	}()
	select {
	case s := <-accepted:
		return c, s
	case err := <-eof:
		if !errors.Is(err, io.EOF) {
			t.Fatalf("read on a refused connection: %v, want EOF", err)
		}
		return c, nil
	}
}

func TestLimits(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want []bool // per dial in turn: handed out (true) or closed (false)
		log  string // in the log line of each refused connection
	}{
		{"max connections 2", Options{MaxConnections: 2}, []bool{true, true, false, false},
			"listener connection limit reached"},
		{"rate 1/s burst 2", Options{RatePerIP: 1, Burst: 2}, []bool{true, true, false},
			"connection rate per source IP exceeded"},
		{"rate 1/s default burst", Options{RatePerIP: 1}, []bool{true, false},
			"burst=1"},
		{"both, max first", Options{MaxConnections: 1, RatePerIP: 100, Burst: 100}, []bool{true, false},
			"max_connections=1"},
		{"both, rate first", Options{MaxConnections: 5, RatePerIP: 0.5, Burst: 1}, []bool{true, false},
			"rate=0.5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln, accepted, logs := serve(t, tt.opts)
			for i, want := range tt.want {
				c, s := dial(t, ln, accepted)
				if got := s != nil; got != want {
					t.Fatalf("dial %d: handed out = %v, want %v", i, got, want)
				}
				if want {
					continue
				}
				// Accept logs before it closes the connection.
				line := "remote=" + c.LocalAddr().String()
				if out := logs.String(); !strings.Contains(out, line) || !strings.Contains(out, tt.log) ||
					!strings.Contains(out, "level=WARN") {
					t.Errorf("dial %d: log lacks %q and %q:\n%s", i, line, tt.log, out)
				}
			}
		})
	}
}

func TestCloseFreesSlot(t *testing.T) {
	ln, accepted, _ := serve(t, Options{MaxConnections: 2})
	var servers []net.Conn
	for range 2 {
		_, s := dial(t, ln, accepted)
		if s == nil {
			t.Fatal("connection under the limit refused")
		}
		servers = append(servers, s)
	}
	if _, s := dial(t, ln, accepted); s != nil {
		t.Fatal("third connection handed out")
	}
	// Closing twice frees one slot only.
	for range 2 {
		servers[0].Close()
	}
	l := ln.(*listener)
	l.mu.Lock()
	got := l.count
	l.mu.Unlock()
	if got != 1 {
		t.Fatalf("open count after closing one twice = %d, want 1", got)
	}
	// The slot is free once Close returned; a bounded loop guards against
	// a slow scheduler anyway.
	var s net.Conn
	for range 50 {
		if _, s = dial(t, ln, accepted); s != nil {
			break
		}
	}
	if s == nil {
		t.Fatal("no connection handed out after closing one")
	}
	if _, s := dial(t, ln, accepted); s != nil {
		t.Fatal("connection over the limit handed out after the slot was taken again")
	}
	if nc := s.(interface{ NetConn() net.Conn }).NetConn(); nc == nil {
		t.Error("NetConn returned nil")
	}
}

func TestWrapNoLimits(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if ln := Wrap(raw, Options{}, nil); ln != raw {
		t.Error("Wrap with no limits did not return the listener itself")
	}
}

// fakeClock is a clock the test moves by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestBuckets(t *testing.T) {
	type step struct {
		advance time.Duration
		key     string
		want    bool
	}
	tests := []struct {
		name  string
		rate  float64
		burst int
		steps []step
	}{
		{"burst then empty", 1, 2, []step{{0, "a", true}, {0, "a", true}, {0, "a", false}}},
		{"refills at the rate", 1, 2, []step{
			{0, "a", true}, {0, "a", true}, {0, "a", false},
			{500 * time.Millisecond, "a", false}, {500 * time.Millisecond, "a", true}, {0, "a", false}}},
		{"refill capped at burst", 2, 2, []step{
			{0, "a", true}, {time.Hour, "a", true}, {0, "a", true}, {0, "a", false}}},
		{"keys are apart", 1, 1, []step{{0, "a", true}, {0, "a", false}, {0, "b", true}, {0, "b", false}}},
		{"fractional rate", 0.25, 1, []step{{0, "a", true}, {3 * time.Second, "a", false}, {time.Second, "a", true}}},
		{"clock going back earns nothing", 1, 1, []step{{0, "a", true}, {-time.Hour, "a", false}, {time.Hour, "a", false}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := &fakeClock{t: time.Unix(1000, 0)}
			b := newBuckets(tt.rate, tt.burst, clk.now)
			for i, s := range tt.steps {
				clk.t = clk.t.Add(s.advance)
				if got := b.allow(key{name: s.key}); got != s.want {
					t.Fatalf("step %d (%s after %v): allow = %v, want %v", i, s.key, s.advance, got, s.want)
				}
			}
		})
	}
}

func TestBucketsPrune(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	b := newBuckets(10, 5, clk.now) // refills in 500ms
	for i := range 1000 {
		b.allow(key{name: fmt.Sprintf("10.0.%d.%d", i/256, i%256)})
	}
	if n := b.len(); n != 1000 {
		t.Fatalf("buckets = %d, want 1000", n)
	}
	// A bucket still refilling is kept; full ones are dropped.
	clk.t = clk.t.Add(450 * time.Millisecond)
	busy := key{name: "busy"}
	for range 5 {
		b.allow(busy)
	}
	clk.t = clk.t.Add(100 * time.Millisecond)
	if b.allow(key{name: "new"}) != true {
		t.Fatal("new key refused")
	}
	if n := b.len(); n != 2 {
		t.Fatalf("buckets after the sweep = %d, want 2 (busy and new)", n)
	}
	// busy spent its 5 tokens 100ms ago and has earned 1 since, not 5.
	if !b.allow(busy) || b.allow(busy) {
		t.Error("busy bucket was not kept as it was by the sweep")
	}
}

// TestSourceKey checks which remote addresses share a rate bucket: the
// ports of one host, the addresses of one IPv6 /64, and an IPv4 address
// whether or not a dual-stack socket maps it into IPv6. Real sockets give
// only loopback addresses, so the addresses here are built by hand; the
// tcp package's TestLimitsSeeProxyAddress checks the same through a
// listener, with IPv6 sources from PROXY headers.
func TestSourceKey(t *testing.T) {
	tcp := func(ip string, port int) net.Addr { return &net.TCPAddr{IP: net.ParseIP(ip), Port: port} }
	tests := []struct {
		name string
		a, b net.Addr
		same bool
		log  string // the key of a, as the log shows it
	}{
		{"ports of one IPv4 host", tcp("192.0.2.1", 1000), tcp("192.0.2.1", 2000), true, "192.0.2.1/32"},
		{"two IPv4 hosts", tcp("192.0.2.1", 1000), tcp("192.0.2.2", 1000), false, "192.0.2.1/32"},
		{"one IPv6 /64", tcp("2001:db8:1:2::1", 1000), tcp("2001:db8:1:2:ffff:ffff:ffff:ffff", 1000), true, "2001:db8:1:2::/64"},
		{"two IPv6 /64s", tcp("2001:db8:1:2::1", 1000), tcp("2001:db8:1:3::1", 1000), false, "2001:db8:1:2::/64"},
		{"IPv4-mapped is IPv4", tcp("::ffff:192.0.2.1", 1000), tcp("192.0.2.1", 1000), true, "192.0.2.1/32"},
		{"IPv4-mapped apart from the rest of ::ffff:0:0/96", tcp("::ffff:192.0.2.1", 1000), tcp("::ffff:192.0.2.2", 1000), false, "192.0.2.1/32"},
		{"zone dropped", &net.TCPAddr{IP: net.ParseIP("fe80::1"), Zone: "eth0"}, tcp("fe80::2", 1), true, "fe80::/64"},
		{"unix peers by name", &net.UnixAddr{Name: "@a", Net: "unix"}, &net.UnixAddr{Name: "@a", Net: "unix"}, true, "@a"},
		{"unix peers apart", &net.UnixAddr{Name: "@a", Net: "unix"}, &net.UnixAddr{Name: "@b", Net: "unix"}, false, "@a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ka, kb := sourceKey(tt.a), sourceKey(tt.b)
			if got := ka == kb; got != tt.same {
				t.Errorf("sourceKey(%v) = %v, sourceKey(%v) = %v; same = %v, want %v", tt.a, ka, tt.b, kb, got, tt.same)
			}
			if got := ka.String(); got != tt.log {
				t.Errorf("sourceKey(%v).String() = %q, want %q", tt.a, got, tt.log)
			}
		})
	}
}

// BenchmarkRateKey measures what the rate limit costs each accepted
// connection: the source key of its address and a token from its bucket
// (over many sources, as a busy listener sees them).
func BenchmarkRateKey(b *testing.B) {
	addrs := make([]net.Addr, 1024)
	for i := range addrs {
		if i%2 == 0 {
			addrs[i] = &net.TCPAddr{IP: net.IPv4(10, 0, byte(i>>8), byte(i)), Port: 40000 + i}
		} else {
			addrs[i] = &net.TCPAddr{IP: net.ParseIP(fmt.Sprintf("2001:db8:0:%x::1", i)), Port: 40000 + i}
		}
	}
	bk := newBuckets(1e9, 1<<30, time.Now)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		bk.allow(sourceKey(addrs[i%len(addrs)]))
	}
}
