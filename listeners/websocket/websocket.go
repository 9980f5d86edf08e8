// Package websocket is the MQTT over WebSocket transport (ws and wss): a
// core.Listener that serves an HTTP endpoint, upgrades requests on its path
// with github.com/gorilla/websocket and hands each upgraded connection to the
// server as a net.Conn that streams binary frames.
//
// Handshakes: RFC 6455 (Sec-WebSocket-Version: 13) and the older hybi-10 form
// (Sec-WebSocket-Version: 8, origin in Sec-WebSocket-Origin), whose framing
// and accept-key computation are the same, are accepted. Every other request
// on the path (no upgrade at all, the hixie-76 Sec-WebSocket-Key1/Key2
// handshake, an unknown version) gets 426 Upgrade Required with
// "Upgrade: websocket" and "Sec-WebSocket-Version: 13": RFC 6455 §4.2.2 asks
// for exactly that answer when the version is not understood, and RFC 9110
// §15.5.22 makes 426 the status that tells a plain HTTP client which protocol
// to switch to. The client must offer the subprotocol "mqtt" (MQTT 3.1.1 and
// 5) or "mqttv3.1" (MQTT 3.1); a request offering neither gets 400. An origin
// that is not allowed gets 403.
package websocket

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	gws "github.com/gorilla/websocket"

	"github.com/vanemq/vanemq/listeners/accept"
	"github.com/vanemq/vanemq/listeners/limit"
	"github.com/vanemq/vanemq/listeners/proxyproto"
)

// Defaults for Options.
const (
	// DefaultPath is the HTTP path served when Options.Path is empty.
	DefaultPath = "/mqtt"
	// DefaultMaxMessageSize is the read limit when Options.MaxMessageSize is
	// 0: the largest MQTT packet (a 268435455-byte remaining length plus a
	// five-byte fixed header).
	DefaultMaxMessageSize = 268435460
)

// Subprotocols are the WebSocket subprotocols the listener accepts, in order
// of preference: "mqtt" (MQTT 3.1.1 and 5) and "mqttv3.1" (MQTT 3.1).
var Subprotocols = []string{"mqtt", "mqttv3.1"}

// Timeouts of the HTTP side: reading the upgrade request (and the TLS
// handshake before it), and writing the handshake answer and the close frame.
const (
	handshakeTimeout  = 10 * time.Second
	closeFrameTimeout = time.Second
)

// Options configures a Listener. The zero value serves ws on DefaultPath
// with same-host origins only.
type Options struct {
	// Path is the HTTP path that accepts upgrades. Default DefaultPath.
	Path string
	// TLS, when not nil, makes the listener serve wss with this
	// configuration (cloned on Listen); nil serves plain ws.
	TLS *tls.Config
	// AllowedOrigins lists the browser origins allowed to connect. Each entry
	// is either a full origin ("https://app.example.com:8443") or a host with
	// an optional port ("app.example.com:8443"), compared without regard to
	// case. "*" allows any origin and must be given explicitly. When empty,
	// the default (origin.go) applies: on a listener bound to loopback, an
	// origin whose host is a loopback name or address, any port (a local
	// dev server), from a request whose Host is a loopback name, an IP
	// address or one of AllowedHosts (not a DNS-rebinding page); on other
	// listeners, an origin whose host equals the request's Host. Requests
	// without an Origin header (non-browser clients) are always allowed.
	AllowedOrigins []string
	// AllowedHosts lists host names, besides loopback names and IP
	// addresses, that a browser's request may name in its Host header on a
	// loopback listener without AllowedOrigins (a name of this machine in
	// /etc/hosts, say). Compared without regard to case, without the port.
	AllowedHosts []string
	// MaxMessageSize is the largest WebSocket message read, in bytes; a
	// larger one closes the connection with 1009. 0 means
	// DefaultMaxMessageSize.
	MaxMessageSize int64
	// Logger receives a line for each refused handshake (and each
	// connection refused for a missing or invalid PROXY header), naming the
	// remote address and the cause. Default: slog.Default().
	Logger *slog.Logger
	// ProxyProtocol makes every connection from ProxyTrusted open with a
	// PROXY protocol header (v1 or v2, see the proxyproto package), before
	// the TLS handshake and the HTTP upgrade request; the client address it
	// carries becomes the connection's remote address. A connection from
	// any other address is closed at once, header or not, and one from a
	// trusted proxy without a valid header is closed too; each is logged on
	// Logger.
	ProxyProtocol bool
	// ProxyTrusted lists the networks of the proxies that may send PROXY
	// headers (see proxyproto.Options.Trusted). With ProxyProtocol it must
	// not be empty, or Listen fails.
	ProxyTrusted []netip.Prefix
	// Limits caps the connections open at once and the rate of new
	// connections per source IP (see the limit package); a connection over
	// a limit is closed before the TLS handshake and the HTTP request, and
	// logged on Logger. With ProxyProtocol the limits see the client
	// address from the header. The zero value sets no limits.
	Limits limit.Options
}

// Listener accepts MQTT clients over WebSocket. Create it with New; it is
// safe for concurrent use, and Close may be called from any goroutine.
type Listener struct {
	id      string
	address string
	opts    Options
	log     *slog.Logger

	life     accept.Lifecycle // bind, serve, close
	loopback atomic.Bool      // bound to a loopback address (set by Listen)
}

// New returns a listener named id that will bind address ("host:port"; an
// empty host means every interface, port 0 picks a free port) on Listen and
// serve WebSocket upgrades on opts.Path.
func New(id, address string, opts Options) *Listener {
	if opts.Path == "" {
		opts.Path = DefaultPath
	}
	if opts.MaxMessageSize <= 0 {
		opts.MaxMessageSize = DefaultMaxMessageSize
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	opts.AllowedOrigins = append([]string(nil), opts.AllowedOrigins...)
	opts.AllowedHosts = append([]string(nil), opts.AllowedHosts...)
	opts.ProxyTrusted = append([]netip.Prefix(nil), opts.ProxyTrusted...)
	l := &Listener{id: id, address: address, opts: opts, log: log.With("listener", id)}
	l.life = accept.Lifecycle{Kind: l.Protocol(), ID: id}
	return l
}

// ID returns the listener's name, as given to New.
func (l *Listener) ID() string { return l.id }

// Protocol returns "wss" when Options.TLS is set, "ws" otherwise.
func (l *Listener) Protocol() string {
	if l.opts.TLS != nil {
		return "wss"
	}
	return "ws"
}

// Listen binds the address. It may be called once, and not after Close. A
// failure to bind is returned as the *net.OpError from the net package.
func (l *Listener) Listen() error {
	return l.life.Bind(func() (net.Listener, error) {
		ln, err := net.Listen("tcp", l.address)
		if err != nil {
			return nil, err
		}
		if a, ok := ln.Addr().(*net.TCPAddr); ok {
			l.loopback.Store(a.IP.IsLoopback())
		}
		if l.opts.ProxyProtocol {
			pln, err := proxyproto.Wrap(ln, proxyproto.Options{Trusted: l.opts.ProxyTrusted, Logger: l.log})
			if err != nil {
				_ = ln.Close()
				return nil, fmt.Errorf("listen tcp %s: %w", l.address, err)
			}
			ln = pln
		}
		// Outside proxyproto, to see the client's address.
		ln = limit.Wrap(ln, l.opts.Limits, l.log)
		if l.opts.TLS != nil {
			cfg := l.opts.TLS.Clone()
			if len(cfg.NextProtos) == 0 {
				cfg.NextProtos = []string{"http/1.1"}
			}
			ln = tls.NewListener(ln, cfg)
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

// Serve runs the HTTP server until Close and calls handle, on the request's
// goroutine, for each upgraded connection. Temporary Accept errors are
// retried with a bounded backoff (see the accept package). Serve returns
// nil once the listener is closed (also if it was closed before Serve was
// called), and an error if Listen has not succeeded, Serve is already
// running, or Accept fails for good. It returns only once every handshake
// in progress has ended and every handle call has returned: no connection
// is handed over after it.
func (l *Listener) Serve(handle func(net.Conn)) error {
	mux := http.NewServeMux()
	mux.Handle(l.opts.Path, &handler{l: l, handle: handle})
	return l.life.ServeHTTP(&http.Server{
		Handler:           mux,
		ReadHeaderTimeout: handshakeTimeout,
		// Only HTTP/1.1 can be upgraded: never negotiate h2.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
		// TLS handshake failures and malformed requests, with the remote
		// address.
		ErrorLog: slog.NewLogLogger(l.log.Handler(), slog.LevelWarn),
	})
}

// Close stops accepting, ends handshakes in progress and makes Serve
// return. Connections already handed to the server stay open. Calling Close
// again does nothing.
func (l *Listener) Close() error {
	return l.life.Close()
}

// handler upgrades requests on the listener's path.
type handler struct {
	l      *Listener
	handle func(net.Conn)
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l := h.l
	if !isUpgrade(r) {
		l.refuseVersion(w, r, "not a WebSocket upgrade request")
		return
	}
	switch v := strings.TrimSpace(r.Header.Get("Sec-WebSocket-Version")); v {
	case "13":
	case "8":
		// hybi-10: same framing and accept key as RFC 6455; the origin
		// travels in Sec-WebSocket-Origin.
		r.Header.Set("Sec-WebSocket-Version", "13")
		if r.Header.Get("Origin") == "" {
			if o := r.Header.Get("Sec-WebSocket-Origin"); o != "" {
				r.Header.Set("Origin", o)
			}
		}
	case "":
		if r.Header.Get("Sec-WebSocket-Key1") != "" || r.Header.Get("Sec-WebSocket-Key2") != "" {
			l.refuseVersion(w, r, "hixie-76 handshake is not supported")
		} else {
			l.refuseVersion(w, r, "missing Sec-WebSocket-Version")
		}
		return
	default:
		l.refuseVersion(w, r, fmt.Sprintf("unsupported Sec-WebSocket-Version %q", v))
		return
	}
	if !offersSubprotocol(r) {
		msg := fmt.Sprintf("unsupported WebSocket subprotocol %q: offer \"mqtt\" or \"mqttv3.1\"",
			strings.Join(gws.Subprotocols(r), ", "))
		l.log.Warn("websocket handshake refused", "remote", r.RemoteAddr, "status", http.StatusBadRequest, "cause", msg)
		http.Error(w, msg, http.StatusBadRequest)
		return
	}
	if cause, key := l.checkOrigin(r); cause != "" {
		l.log.Warn("websocket handshake refused", "remote", r.RemoteAddr, "status", http.StatusForbidden,
			"origin", r.Header.Get("Origin"), "host", r.Host, "cause", cause, "key", key)
		http.Error(w, "websocket: "+cause+" (listener "+l.id+", key "+key+")", http.StatusForbidden)
		return
	}
	up := gws.Upgrader{
		HandshakeTimeout:  handshakeTimeout,
		Subprotocols:      Subprotocols,
		CheckOrigin:       func(*http.Request) bool { return true }, // checked above
		EnableCompression: false,
		Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
			l.log.Warn("websocket handshake refused", "remote", r.RemoteAddr, "status", status, "cause", reason)
			http.Error(w, reason.Error(), status)
		},
	}
	ws, err := up.Upgrade(w, r, nil)
	if err != nil {
		// Upgrade has answered (through Error) or closed the connection.
		l.log.Debug("websocket upgrade failed", "remote", r.RemoteAddr, "error", err)
		return
	}
	ws.SetReadLimit(l.opts.MaxMessageSize)
	h.handle(newConn(ws))
}

// refuseVersion answers 426 Upgrade Required, naming the one version the
// listener speaks (RFC 6455 §4.2.2).
func (l *Listener) refuseVersion(w http.ResponseWriter, r *http.Request, cause string) {
	l.log.Warn("websocket handshake refused", "remote", r.RemoteAddr, "status", http.StatusUpgradeRequired, "cause", cause)
	w.Header().Set("Upgrade", "websocket")
	w.Header().Set("Connection", "Upgrade")
	w.Header().Set("Sec-WebSocket-Version", "13")
	http.Error(w, cause+": this endpoint speaks MQTT over WebSocket (RFC 6455, Sec-WebSocket-Version: 13)", http.StatusUpgradeRequired)
}

// isUpgrade reports whether r asks for a WebSocket upgrade at all.
func isUpgrade(r *http.Request) bool {
	return headerHasToken(r.Header, "Connection", "upgrade") && headerHasToken(r.Header, "Upgrade", "websocket")
}

// offersSubprotocol reports whether r offers one of Subprotocols.
func offersSubprotocol(r *http.Request) bool {
	for _, p := range gws.Subprotocols(r) {
		for _, s := range Subprotocols {
			if p == s {
				return true
			}
		}
	}
	return false
}

// headerHasToken reports whether the comma-separated header name holds
// token, compared without regard to case.
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}
