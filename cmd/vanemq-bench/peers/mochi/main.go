// Command peer-mochi runs the mochi-mqtt broker (github.com/mochi-mqtt/server/v2)
// as a benchmark peer for `vanemq-bench compare`.
//
// Usage:
//
//	peer-mochi [-addr 127.0.0.1:1883]
//
// It serves one plain TCP listener with mochi's allow-all auth hook and its
// default capabilities. mochi cannot turn $SYS off, so its $SYS interval is
// set to a year, which leaves one publish at start-up. Logs below warn are
// dropped and the rest go to stderr. SIGINT or SIGTERM close the server and
// the process exits 0.
//
// It is its own Go module so that the vanemq module never depends on mochi.
// Build it with:
//
//	cd cmd/vanemq-bench/peers/mochi && go build -o ../../../../bin/peer-mochi .
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// sysInterval is the $SYS publish interval in seconds: a year, i.e. off.
const sysInterval = 365 * 24 * 60 * 60

func main() {
	addr := flag.String("addr", "127.0.0.1:1883", "TCP `address` to listen on")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "peer-mochi: unexpected argument %q\n", flag.Arg(0))
		os.Exit(2)
	}
	if err := run(*addr); err != nil {
		fmt.Fprintf(os.Stderr, "peer-mochi: %v\n", err)
		os.Exit(1)
	}
}

// run serves on addr until SIGINT or SIGTERM.
func run(addr string) error {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	server := mqtt.New(&mqtt.Options{
		Logger:                 logger,
		SysTopicResendInterval: sysInterval,
	})
	if err := server.AddHook(new(auth.AllowHook), nil); err != nil {
		return fmt.Errorf("add allow-all hook: %w", err)
	}
	if err := server.AddListener(listeners.NewTCP(listeners.Config{ID: "tcp", Address: addr})); err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	if err := server.Serve(); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	<-sigs
	if err := server.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	return nil
}
