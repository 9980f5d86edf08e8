package mqtttest

import (
	"context"
	"testing"
	"time"

	"github.com/vanemq/vanemq/core"
)

// Serve adds l to srv, starts srv and shuts it down when the test ends;
// it returns l's address. The test fails if srv does not start or stop.
func Serve(tb testing.TB, srv *core.Server, l core.Listener) string {
	tb.Helper()
	if err := srv.AddListener(l); err != nil {
		tb.Fatalf("AddListener: %v", err)
	}
	if err := srv.Start(context.Background()); err != nil {
		tb.Fatalf("Start: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			tb.Errorf("Shutdown: %v", err)
		}
	})
	return l.Address()
}
