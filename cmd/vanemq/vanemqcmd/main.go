// Package vanemqcmd is the vanemq command: flags, the YAML configuration,
// hooks, storage, listeners, signals and the passwd, data check and
// cluster dev subcommands. cmd/vanemq is a thin main around it, and so is a custom
// binary that compiles in hooks of its own: blank-import the packages that
// register them, call Main, and the config file can name them like the
// built-in ones.
//
// Usage:
//
//	vanemq [--config FILE]
//	vanemq passwd FILE USER
//	vanemq data check [--config FILE]
//	vanemq cluster dev [--nodes N] [--host ADDR] [--port PORT] [--dir DIR]
//
// Without --config it uses the embedded default configuration (default.yaml
// in this directory): TCP on 127.0.0.1:1883 only, state kept in ./data.
// SIGINT or SIGTERM shut the broker down gracefully, telling MQTT 5 clients
// "server shutting down", waiting up to ten seconds for connections to
// close and then closing the store; a second signal during that time stops
// the process at once. SIGHUP never stops it: hooks such as
// auth.file reload their files on it, and a plugin that is down or waiting
// for its restart is started at once.
//
// Exit status: 0 after a clean shutdown, 1 when the broker cannot start (the
// error is printed on standard error) or its shutdown fails, 2 for bad
// command-line usage. The configuration file format is described in
// docs/configuration.md.
package vanemqcmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/hooks/storage"
)

// shutdownTimeout bounds the graceful shutdown after a signal.
const shutdownTimeout = 10 * time.Second

// loopbackHint is logged when every listener is bound to a loopback address.
const loopbackHint = "listening on loopback only; to listen on all interfaces, " +
	"set listeners[].address to 0.0.0.0:1883 in a config file and pass --config"

// Main runs the command with the process's arguments, standard error and
// signals, and returns the exit status for os.Exit.
func Main() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	go func() {
		// After the first signal, restore the default handling so that a
		// second one ends a shutdown that hangs.
		<-ctx.Done()
		stop()
	}()
	// SIGHUP asks hooks to reload their files (auth.file listens for it)
	// and the plugin hook to start a plugin that is not serving; it must
	// never end the broker, so it is caught here too and dropped.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
		}
	}()
	code := run(ctx, os.Args[1:], os.Stderr)
	stop()
	return code
}

// run is the whole program: it parses args, loads the configuration, serves
// until ctx is done, then shuts down. Logs and errors go to stderr. It
// returns the exit status.
func run(ctx context.Context, args []string, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "passwd" {
		return runPasswd(ctx, args[1:], os.Stdin, stderr)
	}
	if len(args) > 0 && args[0] == "data" {
		return runData(ctx, args[1:], os.Stdout, stderr)
	}
	if len(args) > 0 && args[0] == "cluster" {
		return runCluster(ctx, args[1:], os.Stdout, stderr)
	}
	fs := flag.NewFlagSet("vanemq", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "read the configuration from `FILE` (default: the embedded default, TCP on 127.0.0.1:1883)")
	cpuProfile := fs.String("cpuprofile", "", "write a Go CPU profile of the whole run to `FILE` (for performance work)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: vanemq [--config FILE]\n       vanemq passwd [--cost N] FILE USER\n       vanemq data check [--config FILE]\n       vanemq cluster dev [--nodes N] [--host ADDR] [--port PORT] [--dir DIR]\n\n"+
			"vanemq is an MQTT 3.1, 3.1.1 and 5.0 broker.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "vanemq: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return 2
	}

	cfg, err := loadConfig(*configPath)
	if err != nil {
		var ce *configError
		if errors.As(err, &ce) {
			// One "FILE:LINE: KEY: MESSAGE" line per problem, as compilers
			// print them, so editors can jump to each.
			fmt.Fprintln(stderr, err)
		} else {
			fmt.Fprintf(stderr, "vanemq: %v\n", err)
		}
		return 1
	}
	logger := newLogger(stderr, cfg.Log)
	if *cpuProfile != "" {
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "vanemq: %v\n", err)
			return 1
		}
		defer stop()
	}
	source := *configPath
	if source == "" {
		source = defaultConfigName
	}
	logger.Info("starting vanemq", "version", version(), "config", source)

	srv, store, err := start(ctx, cfg, logger)
	if err != nil {
		var ce *configError
		if errors.As(err, &ce) {
			fmt.Fprintln(stderr, err) // a hook's problems, FILE:LINE: KEY: MESSAGE each
		} else {
			fmt.Fprintf(stderr, "vanemq: %v\n", err)
		}
		return 1
	}

	<-ctx.Done()
	logger.Info("shutting down", "reason", context.Cause(ctx), "timeout", shutdownTimeout)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	code := 0
	if err := srv.Shutdown(sctx); err != nil {
		fmt.Fprintf(stderr, "vanemq: shutdown: %v\n", err)
		code = 1
	}
	// The server has stopped and written everything it handed the store
	// (or the shutdown timed out): close the store, which writes what is
	// still pending.
	if err := closeStore(store, logger); err != nil {
		fmt.Fprintf(stderr, "vanemq: %v\n", err)
		code = 1
	}
	if code == 0 {
		logger.Info("stopped")
	}
	return code
}

// start creates the server, adds the configured hooks, opens the store
// and adds it as a hook, binds every listener and starts serving, which
// restores the stored state before any listener serves. It returns the
// store, nil for storage type memory, for the caller to close after
// Shutdown. On error, listeners already bound, hooks already built and the
// store are closed; hook errors are *configErrors.
func start(ctx context.Context, cfg *config, logger *slog.Logger) (*core.Server, *storage.Store, error) {
	opts := cfg.Options
	opts.Logger = logger
	opts.Version = version()
	srv, err := core.New(opts)
	if err != nil {
		return nil, nil, fmt.Errorf("create server: %w", err)
	}
	// Every hook is built, or none is added and start-up fails.
	closeHooks, err := addHooks(srv, cfg, logger)
	if err != nil {
		return nil, nil, err
	}
	// The store is opened before the listeners bind, so that a data
	// directory another vanemq holds is reported as such.
	store, err := openStore(ctx, cfg, logger)
	if err != nil {
		closeHooks()
		return nil, nil, err
	}
	closeStoreQuietly := func() {
		if err := closeStore(store, logger); err != nil {
			logger.Warn("close storage", "err", err)
		}
	}
	if store != nil {
		if err := srv.AddHook(store, 0); err != nil {
			closeHooks()
			closeStoreQuietly()
			return nil, nil, fmt.Errorf("storage: %w", err)
		}
	}

	types := listenerTypes()
	env := &listenerEnv{dir: cfg.Dir, logger: logger, srv: srv}
	var bound []core.Listener
	closeBound := func() {
		closeHooks()
		for _, l := range bound {
			if err := l.Close(); err != nil {
				logger.Warn("close listener", "id", l.ID(), "err", err)
			}
		}
		closeStoreQuietly()
	}
	for _, lc := range cfg.Listeners {
		newListener, ok := types[lc.Type]
		if !ok { // the config loader has checked; this guards a programming error
			closeBound()
			return nil, nil, fmt.Errorf("listener %q: unknown type %q", lc.ID, lc.Type)
		}
		l, err := newListener(lc, env)
		if err != nil {
			closeBound()
			return nil, nil, err
		}
		if err := srv.AddListener(l); err != nil {
			closeBound()
			return nil, nil, err // names the listener and the address
		}
		bound = append(bound, l)
	}

	// The server's lifetime is ended by Shutdown, not by the signal that
	// cancels ctx: that would race the graceful shutdown. Start restores
	// the store's state before any listener serves; the http listener's
	// /readyz answers "ready" only once it serves.
	if err := srv.Start(context.WithoutCancel(ctx)); err != nil {
		closeBound()
		return nil, nil, fmt.Errorf("start server: %w", err)
	}
	env.reloadCertsOnHUP(ctx)

	// Start logs "listening" with the id, protocol and bound address of
	// each listener.
	addrs := make([]string, 0, len(bound))
	for _, l := range bound {
		addrs = append(addrs, l.Address())
	}
	if loopbackOnly(addrs) {
		logger.Info(loopbackHint)
	}
	logAuthPolicy(logger, srv, addrs)
	return srv, store, nil
}

// newLogger returns a text or JSON logger writing to w at the configured level.
func newLogger(w io.Writer, lc logConfig) *slog.Logger {
	opts := &slog.HandlerOptions{Level: lc.Level}
	if lc.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// loopbackOnly reports whether every address is on a loopback interface, so
// that no other machine can connect. An empty host (all interfaces) or a
// host name other than localhost is not loopback.
func loopbackOnly(addrs []string) bool {
	if len(addrs) == 0 {
		return false
	}
	for _, a := range addrs {
		host, _, err := net.SplitHostPort(a)
		if err != nil {
			return false
		}
		if host == "localhost" {
			continue
		}
		ip, err := netip.ParseAddr(host)
		if err != nil || !ip.IsLoopback() {
			return false
		}
	}
	return true
}

// version is the module version the binary was built from, or "dev".
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
