package mqtttest

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/vanemq/vanemq/core"
)

// Serve adds l (and more, after it) to srv, starts srv and shuts it down
// when the test ends; it returns l's address (the others' are their
// Address()). The test fails if a listener cannot listen, or srv does not
// start or stop.
func Serve(tb testing.TB, srv *core.Server, l core.Listener, more ...core.Listener) string {
	tb.Helper()
	for _, l := range append([]core.Listener{l}, more...) {
		if err := srv.AddListener(l); err != nil {
			tb.Fatalf("AddListener: %v", err)
		}
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

// FreeAddr returns a loopback address ("127.0.0.1:PORT") whose port is
// free now, for a broker that must listen, or listen again after a
// restart, on an address known beforehand.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
