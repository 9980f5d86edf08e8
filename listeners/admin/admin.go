// Package admin is the HTTP admin listener (type "http"): a core.Listener
// that serves no MQTT clients but operators and monitoring systems.
//
// Endpoints:
//
//   - GET /healthz answers 200 "ok" while the listener serves.
//   - GET /readyz answers 200 "ready" once the broker has started and 503
//     once the listener is closing. core.Server.Start restores storage
//     (sessions, retained messages) before it calls any listener's Serve,
//     so a listener that serves is a broker that has restored its state:
//     readiness is "Serve is running and Close has not been called".
//   - GET /metrics exposes the broker's counters in the Prometheus text
//     format, from a registry of the listener's own (see Collector), with
//     the Go runtime and process collectors.
//   - GET /api/v1/clients, /api/v1/clients/{id}, /api/v1/subscriptions,
//     /api/v1/stats, /api/v1/bridges and /api/v1/cluster (the node's
//     membership of its cluster, core.ClusterStatus; 404 when the broker
//     is not clustered) are a JSON API, protected by a
//     bearer token (Options.Token), with one action: POST
//     /api/v1/hooks/{id}/restart restarts a hook that runs a process of
//     its own (core.Restarter: a plugin) at once. Without a token the
//     API is disabled: every /api/ path answers 404. A request with a
//     missing or wrong token gets 401 with "WWW-Authenticate: Bearer" and
//     a log line naming its remote address.
package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/listeners/accept"
)

// Timeouts of the HTTP server.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 60 * time.Second
	maxHeaderBytes    = 16 << 10
	// restartWait bounds how long POST /api/v1/hooks/{id}/restart waits
	// for the hook to serve again, within writeTimeout.
	restartWait = 20 * time.Second
)

// Options configures a Listener.
type Options struct {
	// Token is the bearer token the JSON API under /api/ requires
	// ("Authorization: Bearer TOKEN"). Empty disables the API: its paths
	// answer 404.
	Token string
	// Logger receives a line for each request refused for a missing or
	// invalid token, naming the remote address. Default: slog.Default().
	Logger *slog.Logger
}

// Listener serves the admin endpoints over HTTP. Create it with New; it is
// safe for concurrent use, and Close may be called from any goroutine.
type Listener struct {
	id      string
	address string
	srv     *core.Server
	log     *slog.Logger
	token   [sha256.Size]byte // digest of Options.Token
	api     bool              // Options.Token is set
	reg     *prometheus.Registry

	hs   *http.Server     // started by Listen
	life accept.Lifecycle // bind, serve, close
}

// New returns a listener named id that will bind address ("host:port"; an
// empty host means every interface, port 0 picks a free port) on Listen and
// serve the admin endpoints for srv.
func New(id, address string, srv *core.Server, opts Options) *Listener {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	l := &Listener{id: id, address: address, srv: srv, log: log.With("listener", id),
		token: sha256.Sum256([]byte(opts.Token)), api: opts.Token != "",
		life: accept.Lifecycle{Kind: "http", ID: id}}
	l.reg = prometheus.NewRegistry()
	l.reg.MustRegister(NewCollector(srv), collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	l.hs = &http.Server{
		Handler:           l.Handler(),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(l.log.Handler(), slog.LevelWarn),
	}
	return l
}

// ID returns the listener's name, as given to New.
func (l *Listener) ID() string { return l.id }

// Protocol returns "http".
func (l *Listener) Protocol() string { return "http" }

// Listen binds the address and starts answering HTTP: until the server
// calls Serve, which it does once it has restored its stored state,
// /readyz answers 503 and the other endpoints work. It may be called
// once, and not after Close. A failure to bind is returned as the
// *net.OpError from the net package.
func (l *Listener) Listen() error {
	if err := l.life.Bind(func() (net.Listener, error) { return net.Listen("tcp", l.address) }); err != nil {
		return err
	}
	return l.life.StartHTTP(l.hs)
}

// Address returns the bound address after Listen (with the real port when
// the configured port was 0), and the configured address before.
func (l *Listener) Address() string {
	if a := l.life.Addr(); a != nil {
		return a.String()
	}
	return l.address
}

// Handler returns the listener's HTTP handler (every endpoint), for tests
// and for embedding in another server.
func (l *Listener) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeText(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !l.life.Serving() {
			writeText(w, http.StatusServiceUnavailable, "not ready")
			return
		}
		if err := l.srv.Health(); err != nil {
			writeText(w, http.StatusServiceUnavailable, "not ready: "+err.Error())
			return
		}
		writeText(w, http.StatusOK, "ready")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(l.reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(l.log.Handler(), slog.LevelWarn),
		Registry: l.reg,
	}))
	if l.api {
		api := http.NewServeMux()
		api.HandleFunc("GET /api/v1/clients", func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusOK, l.srv.Clients())
		})
		api.HandleFunc("GET /api/v1/clients/{id}", func(w http.ResponseWriter, r *http.Request) {
			c, ok := l.srv.Client(r.PathValue("id"))
			if !ok {
				writeJSON(w, http.StatusNotFound, errorBody{Error: "unknown client"})
				return
			}
			writeJSON(w, http.StatusOK, c)
		})
		api.HandleFunc("GET /api/v1/subscriptions", func(w http.ResponseWriter, _ *http.Request) {
			subs := l.srv.Subscriptions()
			if subs == nil {
				subs = []core.SubscriptionStatus{}
			}
			writeJSON(w, http.StatusOK, subs)
		})
		api.HandleFunc("GET /api/v1/stats", func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusOK, StatsOf(l.srv))
		})
		api.HandleFunc("GET /api/v1/bridges", func(w http.ResponseWriter, _ *http.Request) {
			bridges := l.srv.Bridges()
			if bridges == nil {
				bridges = []core.BridgeStatus{}
			}
			writeJSON(w, http.StatusOK, bridges)
		})
		api.HandleFunc("GET /api/v1/cluster", func(w http.ResponseWriter, _ *http.Request) {
			st, ok := l.srv.ClusterStatus()
			if !ok {
				writeJSON(w, http.StatusNotFound, errorBody{Error: "not clustered: the broker runs no cluster hook (see the cluster section of the configuration)"})
				return
			}
			if st.Peers == nil {
				st.Peers = []core.ClusterPeer{}
			}
			writeJSON(w, http.StatusOK, st)
		})
		api.HandleFunc("POST /api/v1/hooks/{id}/restart", l.restartHook)
		mux.Handle("/api/", l.authorize(api))
	}
	return mux
}

// restartBody is the JSON body of a successful restart.
type restartBody struct {
	ID        string `json:"id"`
	Restarted bool   `json:"restarted"`
}

// restartHook answers POST /api/v1/hooks/{id}/restart: 200 once the hook
// serves again, 404 for an unknown hook, 409 for one that cannot restart,
// 502 when its start failed (it goes on restarting with its back-off),
// 504 when it is still starting after restartWait.
func (l *Listener) restartHook(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	ctx, cancel := context.WithTimeout(r.Context(), restartWait)
	defer cancel()
	err := l.srv.RestartHook(ctx, id)
	code := http.StatusOK
	switch {
	case err == nil:
		l.log.Info("hook restarted on request", "hook", id, "remote", r.RemoteAddr)
		writeJSON(w, code, restartBody{ID: id, Restarted: true})
		return
	case errors.Is(err, core.ErrNoHook):
		code = http.StatusNotFound
		err = errors.New("unknown hook")
	case errors.Is(err, core.ErrNotRestartable):
		code = http.StatusConflict
		err = fmt.Errorf("hook %s cannot be restarted: it runs no process of its own", id)
	case ctx.Err() != nil:
		code = http.StatusGatewayTimeout
	default:
		code = http.StatusBadGateway
	}
	l.log.Warn("hook restart on request failed", "hook", id, "remote", r.RemoteAddr, "status", code, "cause", err)
	writeJSON(w, code, errorBody{Error: err.Error()})
}

// authorize passes requests with the right bearer token to next and
// answers 401 to the others.
func (l *Listener) authorize(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Get("Authorization")
		cause := ""
		switch scheme, tok, _ := strings.Cut(h, " "); {
		case h == "":
			cause = "missing bearer token"
		case !strings.EqualFold(scheme, "Bearer"):
			cause = "authorization is not a bearer token"
		default:
			sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
			if subtle.ConstantTimeCompare(sum[:], l.token[:]) != 1 {
				cause = "invalid bearer token"
			}
		}
		if cause != "" {
			l.log.Warn("admin API request refused", "remote", r.RemoteAddr, "path", r.URL.Path, "cause", cause)
			w.Header().Set("WWW-Authenticate", `Bearer realm="vanemq"`)
			writeJSON(w, http.StatusUnauthorized, errorBody{Error: cause})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Serve marks the broker ready (/readyz answers 200) and returns when the
// HTTP server Listen started stops: nil after Close (also if it was closed
// before Serve was called), an error if Listen has not succeeded, Serve is
// already running, or Accept fails for good (temporary Accept errors are
// retried with a bounded backoff, see the accept package). It returns only
// once every request in progress has been answered. handle is not used:
// the admin listener hands no connections to the broker.
func (l *Listener) Serve(func(net.Conn)) error {
	// The server calls Serve after restoring its storage: ready from now
	// on, until Close.
	return l.life.ServeHTTP(l.hs)
}

// Close stops serving and makes Serve return; /readyz answers 503 from
// then on to requests still in flight. Calling Close again does nothing.
func (l *Listener) Close() error {
	return l.life.Close()
}

// errorBody is the JSON body of an API error.
type errorBody struct {
	Error string `json:"error"`
}

func writeText(w http.ResponseWriter, code int, s string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(s))
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
