// Package tcp is the plain TCP transport: a core.Listener over net.Listen("tcp").
//
// Accepted connections keep Go's default TCP_NODELAY (on: MQTT packets are
// small and latency matters more than coalescing) and have TCP keepalive
// enabled with the operating system's own probe timings (one setsockopt per
// connection), so a peer that vanished without a FIN is noticed even when
// the client set an MQTT keep alive of 0.
package tcp

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"

	"github.com/vanemq/vanemq/listeners/accept"
	"github.com/vanemq/vanemq/listeners/limit"
	"github.com/vanemq/vanemq/listeners/proxyproto"
)

// Listener accepts MQTT clients over TCP. Create it with New; it is safe for
// concurrent use, and Close may be called from any goroutine.
type Listener struct {
	id       string
	address  string
	tls      *tls.Config    // nil for plain TCP; see NewTLS
	proxy    bool           // require a PROXY header; see WithProxyProtocol
	trusted  []netip.Prefix // the proxies that may send one
	certUser bool           // client certificate's CN is the username; see WithCertUsername
	log      *slog.Logger   // for refused PROXY headers
	limits   limit.Options  // see WithLimits
	limLog   *slog.Logger   // for connections refused by the limits

	mu sync.Mutex // guards the options set by the With methods

	life accept.Lifecycle // bind, serve, close
}

// New returns a listener named id that will bind address ("host:port"; an
// empty host means every interface, port 0 picks a free port) on Listen.
func New(id, address string) *Listener {
	return &Listener{id: id, address: address, life: accept.Lifecycle{Kind: "tcp", ID: id}}
}

// WithProxyProtocol makes the listener require a PROXY protocol header (v1
// or v2, see the proxyproto package) at the start of every connection from
// the trusted networks, so RemoteAddr of the connections handed to Serve's
// handle is the client's address as the proxy saw it. A connection from
// any other address is closed at once, header or not; one from a trusted
// proxy without a valid header is closed too. Each is logged on logger
// (slog.Default() when nil) with its remote address and the cause; reading
// headers never stalls Accept. Listen fails when trusted is empty. With
// NewTLS the header comes first, before the TLS handshake, as proxies send
// it. It must be called before Listen, and returns l.
func (l *Listener) WithProxyProtocol(trusted []netip.Prefix, logger *slog.Logger) *Listener {
	l.mu.Lock()
	defer l.mu.Unlock()
	if logger == nil {
		logger = slog.Default()
	}
	l.proxy, l.trusted, l.log = true, append([]netip.Prefix(nil), trusted...), logger.With("listener", l.id)
	return l
}

// WithLimits puts per-listener connection limits on the listener (see the
// limit package): at most opts.MaxConnections open at once, and
// opts.RatePerIP new connections per second per source IP. A connection
// over a limit is closed at once and logged on logger (slog.Default() when
// nil) with its remote address and the limit. With WithProxyProtocol the
// limits see the client address from the PROXY header; with NewTLS they
// apply before the TLS handshake. It must be called before Listen, and
// returns l.
func (l *Listener) WithLimits(opts limit.Options, logger *slog.Logger) *Listener {
	l.mu.Lock()
	defer l.mu.Unlock()
	if logger == nil {
		logger = slog.Default()
	}
	l.limits, l.limLog = opts, logger.With("listener", l.id)
	return l
}

// ID returns the listener's name, as given to New.
func (l *Listener) ID() string { return l.id }

// Protocol returns "tcp", or "tls" for a listener made with NewTLS.
func (l *Listener) Protocol() string {
	if l.tls != nil {
		return "tls"
	}
	return "tcp"
}

// Listen binds the address. It may be called once, and not after Close. A
// failure to bind is returned as the *net.OpError from the net package.
func (l *Listener) Listen() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.life.Bind(func() (net.Listener, error) {
		// TCP keep-alive with the system's timings (one setsockopt per
		// connection, not four): MQTT's own keep alive does the real
		// work, TCP keep-alive only reaps half-open connections of
		// clients that chose keep alive 0.
		lc := net.ListenConfig{KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: -1, Interval: -1, Count: -1}}
		ln, err := lc.Listen(context.Background(), "tcp", l.address)
		if err != nil {
			// Already "listen tcp ADDRESS: CAUSE"; the server adds the id.
			return nil, err
		}
		if l.proxy {
			pln, err := proxyproto.Wrap(ln, proxyproto.Options{Trusted: l.trusted, Logger: l.log})
			if err != nil {
				_ = ln.Close()
				return nil, fmt.Errorf("listen tcp %s: %w", l.address, err)
			}
			ln = pln
		}
		// Outside proxyproto, to see the client's address; inside TLS, so
		// refused connections cost no handshake.
		ln = limit.Wrap(ln, l.limits, l.limLog)
		if l.tls != nil {
			ln = tls.NewListener(ln, l.tls)
			if l.certUser {
				ln = certListener{ln}
			}
		}
		return ln, nil
	})
}

// Address returns the bound address after Listen (with the real port when
// the configured port was 0), and the configured address before.
func (l *Listener) Address() string {
	if a := l.life.Addr(); a != nil {
		return a.String()
	}
	return l.address
}

// Serve accepts connections until Close and calls handle for each one on
// Serve's goroutine, so handle must return quickly and leave the
// connection's lifetime to goroutines of its own. Temporary Accept errors
// are retried with a bounded backoff. Serve returns nil once the listener is
// closed (also if it was closed before Serve was called), and an error if
// Listen has not succeeded, Serve is already running, or Accept fails for
// good.
func (l *Listener) Serve(handle func(net.Conn)) error {
	return l.life.Serve(handle)
}

// Close stops accepting and makes Serve return. Connections already handed
// to the server stay open. Calling Close again does nothing.
func (l *Listener) Close() error {
	return l.life.Close()
}
