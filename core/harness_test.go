package core_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/listeners/tcp"
)

// testBroker is a broker on a loopback port for one test.
type testBroker struct {
	*core.Server
	Addr string // host:port of the TCP listener
}

// startBroker starts a broker with opts (zero fields default) on
// 127.0.0.1:0 and stops it when the test ends. Logs go to the test log at
// debug level when -v is set.
func startBroker(t testing.TB, opts core.Options) *testBroker {
	t.Helper()
	if opts.Logger == nil {
		var w io.Writer = io.Discard
		if testing.Verbose() {
			w = testWriter{t}
		}
		opts.Logger = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	// Tests of authentication add hooks that decide; everything else
	// connects anonymously, as the vanemq binary's default config allows.
	opts.AllowAnonymous = true
	if opts.SysInterval == 0 {
		opts.SysInterval = -1
	}
	srv, err := core.New(opts)
	if err != nil {
		t.Fatalf("core.New: %v", err)
	}
	l := tcp.New("tcp", "127.0.0.1:0")
	if err := srv.AddListener(l); err != nil {
		t.Fatalf("AddListener: %v", err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return &testBroker{Server: srv, Addr: l.Address()}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
