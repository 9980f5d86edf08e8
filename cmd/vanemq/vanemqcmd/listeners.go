package vanemqcmd

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/listeners/admin"
	"github.com/vanemq/vanemq/listeners/limit"
	"github.com/vanemq/vanemq/listeners/tcp"
	"github.com/vanemq/vanemq/listeners/tlsfiles"
	"github.com/vanemq/vanemq/listeners/unix"
	"github.com/vanemq/vanemq/listeners/websocket"
)

// listenerEnv is what building a listener needs beyond its config entry.
type listenerEnv struct {
	dir    string       // the config file's directory, for relative paths
	logger *slog.Logger // the server's logger
	srv    *core.Server // the server, for the http admin listener
	// certs collects the TLS configurations built, for reload on SIGHUP.
	certs []*tlsfiles.Config
}

// listenerTypes maps each value of listeners[].type to the constructor of
// its transport. The config loader accepts exactly these types and lists
// them in its error message; listenerKeys says which optional keys each
// takes.
func listenerTypes() map[string]func(listenerConfig, *listenerEnv) (core.Listener, error) {
	return map[string]func(listenerConfig, *listenerEnv) (core.Listener, error){
		"tcp": func(c listenerConfig, env *listenerEnv) (core.Listener, error) {
			var l *tcp.Listener
			if c.TLS == nil {
				l = tcp.New(c.ID, c.Address)
			} else {
				tc, err := env.tls(c)
				if err != nil {
					return nil, err
				}
				l = tcp.NewTLS(c.ID, c.Address, tc.TLSConfig())
				if c.TLS.IdentityAsUsername {
					l.WithCertUsername()
				}
			}
			if c.ProxyProtocol {
				l.WithProxyProtocol(c.ProxyTrusted, env.logger)
			}
			return l.WithLimits(c.limits(), env.logger), nil
		},
		"websocket": func(c listenerConfig, env *listenerEnv) (core.Listener, error) {
			if c.TLS != nil && c.TLS.IdentityAsUsername {
				return nil, fmt.Errorf("listener %s: tls.identity_as_username is supported on tcp listeners only", c.ID)
			}
			opts := websocket.Options{Path: c.Path, AllowedOrigins: c.AllowedOrigins, AllowedHosts: c.AllowedHosts, Logger: env.logger,
				ProxyProtocol: c.ProxyProtocol, ProxyTrusted: c.ProxyTrusted, Limits: c.limits(),
				// A message larger than the largest packet cannot be valid:
				// close with 1009 before buffering it.
				MaxMessageSize: int64(env.srv.Options().MaxPacketSize)}
			if c.TLS != nil {
				tc, err := env.tls(c)
				if err != nil {
					return nil, err
				}
				opts.TLS = tc.TLSConfig()
			}
			return websocket.New(c.ID, c.Address, opts), nil
		},
		"unix": func(c listenerConfig, env *listenerEnv) (core.Listener, error) {
			mode := c.Mode
			if mode == 0 {
				mode = 0o660
			}
			return unix.New(c.ID, env.path(c.Address), mode).WithMaxConnections(c.MaxConnections, env.logger), nil
		},
		"http": func(c listenerConfig, env *listenerEnv) (core.Listener, error) {
			if env.srv == nil { // a programming error: start sets it
				return nil, fmt.Errorf("listener %s: http listener needs the server", c.ID)
			}
			return admin.New(c.ID, c.Address, env.srv, admin.Options{Token: c.Token, Logger: env.logger}), nil
		},
	}
}

// limits returns a listener's connection limits (see the limit package).
func (c listenerConfig) limits() limit.Options {
	return limit.Options{MaxConnections: c.MaxConnections, RatePerIP: c.ConnectionRate, Burst: c.ConnectionBurst}
}

// path resolves a file path of the config against its directory.
func (env *listenerEnv) path(p string) string { return resolvePath(env.dir, p) }

// tls loads a listener's certificates.
func (env *listenerEnv) tls(c listenerConfig) (*tlsfiles.Config, error) {
	tc, err := tlsfiles.Load(tlsfiles.Files{
		Cert:              env.path(c.TLS.Cert),
		Key:               env.path(c.TLS.Key),
		ClientCA:          env.path(c.TLS.ClientCA),
		RequireClientCert: c.TLS.RequireClientCert,
		MinVersion:        c.TLS.MinVersion,
	})
	if err != nil {
		return nil, fmt.Errorf("listener %s: %w", c.ID, err)
	}
	env.certs = append(env.certs, tc)
	return tc, nil
}

// reloadCertsOnHUP reloads every listener's certificates on SIGHUP until ctx
// ends; connected clients keep their connections, new handshakes get the
// new certificates, and a bad file keeps the old ones.
func (env *listenerEnv) reloadCertsOnHUP(ctx context.Context) {
	if len(env.certs) == 0 {
		return
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				for _, tc := range env.certs {
					if err := tc.Reload(); err != nil {
						env.logger.Error("TLS certificates not reloaded; the old ones stay in use", "cause", err)
						continue
					}
					env.logger.Info("TLS certificates reloaded")
				}
			}
		}
	}()
}
