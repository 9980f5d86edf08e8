// Package proxyproto makes a stream listener require the PROXY protocol
// (HAProxy's v1 text and v2 binary headers, as sent by HAProxy, AWS NLB and
// other load balancers) from a list of trusted proxies, so the client
// address behind the proxy reaches the server's logs, hooks and per-IP
// limits. It wraps github.com/pires/go-proxyproto, whose
// TrustProxyHeaderFromRanges policy decides each connection.
//
// Only connections from a trusted network (Options.Trusted) are read: a
// connection from any other address is closed at once, whether it would
// have sent a header or not, and logged at Warn level with its address and
// the cause. A peer that can reach the port directly therefore can neither
// pick its source address with a header of its own nor bypass the proxy.
//
// Every connection from a trusted proxy must open with a PROXY header (the
// library's REQUIRE policy): one without a header, with a malformed header,
// or that sends none within the header timeout is closed and logged at
// Warn level with the connection's real remote address and the cause. A
// LOCAL command (v2) or an UNKNOWN family (v1), which load balancers use
// for health checks, is accepted and keeps the real remote address.
//
// The header is read before the connection is handed out, because the
// server takes the client's address from RemoteAddr as soon as it gets the
// connection, before its first Read. That read never blocks Accept: each
// connection's header is read on a goroutine of its own, bounded by the
// header timeout, and Accept returns connections in the order their headers
// complete.
package proxyproto

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	pp "github.com/pires/go-proxyproto"

	"github.com/vanemq/vanemq/listeners/accept"
)

// DefaultHeaderTimeout bounds the wait for a connection's PROXY header when
// Wrap is given a headerTimeout of 0 or less.
const DefaultHeaderTimeout = 10 * time.Second

// ErrHeaderTimeout is the cause logged for a connection that sent no
// complete PROXY header within the header timeout.
var ErrHeaderTimeout = errors.New("proxyproto: no PROXY header within the header timeout")

// ErrNoTrusted is returned by Wrap when Options.Trusted is empty: a
// listener that requires the PROXY protocol and trusts no proxy would
// refuse every connection.
var ErrNoTrusted = errors.New("proxyproto: no trusted proxy networks given")

// Options configures Wrap.
type Options struct {
	// Trusted lists the networks of the proxies that may connect and send
	// PROXY headers (see ParseTrusted for single addresses); at least one
	// is required. A connection from any other address is closed at once
	// and logged. An IPv4 network also matches IPv4 peers of a dual-stack
	// socket (::ffff:a.b.c.d). To trust every peer, as when a firewall
	// lets only the proxies reach the port, list 0.0.0.0/0 and ::/0.
	Trusted []netip.Prefix
	// HeaderTimeout bounds the wait for a trusted connection's header; 0
	// or less means DefaultHeaderTimeout.
	HeaderTimeout time.Duration
	// Logger receives a Warn line for each connection closed, naming its
	// remote address and the cause; nil means slog.Default().
	Logger *slog.Logger
}

// result is what the accept goroutine and the header goroutines hand to
// Accept: a connection whose header was read, or an Accept error.
type result struct {
	conn net.Conn
	err  error
}

// listener is the net.Listener returned by Wrap.
type listener struct {
	ln      net.Listener
	log     *slog.Logger
	timeout time.Duration
	policy  pp.ConnPolicyFunc // REQUIRE for trusted peers, an error for others

	results   chan result
	done      chan struct{}
	startOnce sync.Once
	closeOnce sync.Once

	mu      sync.Mutex
	pending map[net.Conn]struct{} // connections whose header is being read
	closed  bool
}

// Wrap returns a listener that accepts from ln and hands out only
// connections from opts.Trusted that opened with a valid PROXY header (v1
// or v2); their RemoteAddr and LocalAddr are the addresses the header
// carries. Other connections are closed and logged on opts.Logger at Warn
// level, naming the remote address and the cause: at once for a peer that
// is not trusted, after reading for one that sent no valid header. It
// returns ErrNoTrusted when opts.Trusted is empty, and an error naming the
// entry when one is not a valid prefix.
//
// Accept errors of ln are returned by the wrapper's Accept unchanged (so a
// caller's handling of temporary errors still applies). Close closes ln and
// every connection whose header is still being read.
func Wrap(ln net.Listener, opts Options) (net.Listener, error) {
	if len(opts.Trusted) == 0 {
		return nil, ErrNoTrusted
	}
	ranges := make([]string, len(opts.Trusted))
	for i, p := range opts.Trusted {
		if !p.IsValid() {
			return nil, fmt.Errorf("proxyproto: trusted network %d is not a valid prefix", i)
		}
		ranges[i] = p.String()
	}
	policy, err := pp.TrustProxyHeaderFromRanges(ranges)
	if err != nil {
		return nil, err
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	timeout := opts.HeaderTimeout
	if timeout <= 0 {
		timeout = DefaultHeaderTimeout
	}
	return &listener{
		ln:      ln,
		log:     logger,
		timeout: timeout,
		policy:  policy,
		results: make(chan result),
		done:    make(chan struct{}),
		pending: make(map[net.Conn]struct{}),
	}, nil
}

// Accept returns the next connection whose PROXY header has been read, or
// the next Accept error of the wrapped listener. After Close it returns an
// error wrapping net.ErrClosed.
func (l *listener) Accept() (net.Conn, error) {
	l.startOnce.Do(func() { go l.acceptLoop() })
	select {
	case r := <-l.results:
		return r.conn, r.err
	case <-l.done:
		return nil, fmt.Errorf("proxyproto: accept: %w", net.ErrClosed)
	}
}

// Close closes the wrapped listener and the connections whose header is
// still being read. Calling it again does nothing.
func (l *listener) Close() error {
	var err error
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.closed = true
		for c := range l.pending {
			_ = c.Close()
		}
		clear(l.pending)
		l.mu.Unlock()
		close(l.done)
		err = l.ln.Close()
	})
	return err
}

// Addr returns the wrapped listener's address.
func (l *listener) Addr() net.Addr { return l.ln.Addr() }

// acceptLoop accepts from the wrapped listener, closes the connections of
// untrusted peers and starts a header reader for each other one. An Accept
// error is handed to Accept; the loop stops after one that is not
// temporary. Handing errors over one at a time lets the caller's backoff
// pace the retries.
func (l *listener) acceptLoop() {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			select {
			case l.results <- result{err: err}:
			case <-l.done:
				return
			}
			if !accept.Temporary(err) {
				return
			}
			continue
		}
		policy, err := l.policy(pp.ConnPolicyOptions{Upstream: c.RemoteAddr(), Downstream: c.LocalAddr()})
		if err != nil {
			// Refused before reading: an untrusted peer holds no header
			// reader, and its header (if any) is never parsed.
			l.log.Warn("closing connection: PROXY protocol source not trusted",
				"remote", c.RemoteAddr().String(), "cause", err)
			_ = c.Close()
			continue
		}
		if !l.track(c) {
			_ = c.Close()
			return
		}
		go l.readHeader(c, policy)
	}
}

// track records c as pending; it reports false once the listener is closed.
func (l *listener) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.pending[c] = struct{}{}
	return true
}

// untrack forgets c; it reports false when Close already closed it.
func (l *listener) untrack(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.pending[c]; !ok {
		return false
	}
	delete(l.pending, c)
	return true
}

// readHeader reads c's PROXY header under policy (the library's REQUIRE
// for a trusted peer) and hands the connection to Accept, or closes it
// with a log line.
func (l *listener) readHeader(c net.Conn, policy pp.Policy) {
	start := time.Now()
	pc := pp.NewConn(c, pp.WithPolicy(policy), pp.SetReadHeaderTimeout(l.timeout))
	// A zero-length Read makes the library read and check the header (it
	// does so on the first Read) and consumes nothing after it.
	_, err := pc.Read(nil)
	if !l.untrack(c) {
		return // the listener was closed meanwhile, and c with it
	}
	if err != nil {
		l.refuse(c, err, time.Since(start))
		_ = c.Close()
		return
	}
	select {
	case l.results <- result{conn: pc}:
	case <-l.done:
		_ = c.Close()
	}
}

// refuse logs a connection closed for want of a valid header. The library
// reports a header timeout (and a connection closed before sending
// anything) as a missing signature; the cause says which it was.
func (l *listener) refuse(c net.Conn, err error, took time.Duration) {
	var ne net.Error
	switch {
	case errors.Is(err, pp.ErrNoProxyProtocol) && took >= l.timeout:
		err = fmt.Errorf("%w (%s)", ErrHeaderTimeout, l.timeout)
	case errors.As(err, &ne) && ne.Timeout():
		err = fmt.Errorf("%w (%s): %w", ErrHeaderTimeout, l.timeout, err)
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		err = fmt.Errorf("proxyproto: connection closed before a complete PROXY header: %w", err)
	}
	l.log.Warn("closing connection: missing or invalid PROXY protocol header",
		"remote", c.RemoteAddr().String(), "cause", err)
}
