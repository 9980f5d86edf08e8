package core_test

import (
	"io"
	"log/slog"
	"testing"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/mqtttest"
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
	addr := mqtttest.Serve(t, srv, tcp.New("tcp", "127.0.0.1:0"))
	return &testBroker{Server: srv, Addr: addr}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
