package websocket_test

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vanemq/vanemq/listeners/websocket"
)

// handshake sends an RFC 6455 opening handshake with the given Host and
// Origin (none when empty) and returns the response's status.
func handshake(t *testing.T, addr, host, origin string) int {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := nc.SetDeadline(time.Now().Add(waitTimeout)); err != nil {
		t.Fatal(err)
	}
	req := fmt.Sprintf("GET /mqtt HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n", host)
	if origin != "" {
		req += "Origin: " + origin + "\r\n"
	}
	if _, err := io.WriteString(nc, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	return resp.StatusCode
}

// The default origin policy of a listener bound to loopback (origin.go):
// a page of a local dev server on another port (Origin
// http://localhost:3000) connects, a DNS-rebinding page (Host and Origin
// both evil.test) does not, nor does a page of another site; non-browser
// clients (no Origin) always do. A refusal is logged with its Origin, its
// Host and the key to change (issue 17 §5; RFC 6455 §10.2).
func TestLoopbackOriginPolicy(t *testing.T) {
	port := func(addr string) string { _, p, _ := net.SplitHostPort(addr); return p }
	tests := []struct {
		name         string
		opts         websocket.Options
		host, origin string // "PORT" is replaced by the listener's port
		want         int
		logs         []string
	}{
		{"dev server on another port", websocket.Options{}, "127.0.0.1:PORT", "http://localhost:3000", 101, nil},
		{"loopback address origin", websocket.Options{}, "localhost:PORT", "http://127.0.0.1:5173", 101, nil},
		{"IPv6 loopback origin", websocket.Options{}, "127.0.0.1:PORT", "http://[::1]:8080", 101, nil},
		{"a name under localhost", websocket.Options{}, "127.0.0.1:PORT", "http://app.localhost:3000", 101, nil},
		{"no Origin, any Host", websocket.Options{}, "mybox:PORT", "", 101, nil},
		{"DNS rebinding", websocket.Options{}, "evil.test:PORT", "http://evil.test:PORT", 403,
			[]string{`origin=http://evil.test:`, `host=evil.test:`, "key=allowed_hosts", "DNS rebinding"}},
		{"another site's page", websocket.Options{}, "127.0.0.1:PORT", "https://evil.test", 403,
			[]string{`origin=https://evil.test`, "key=allowed_origins"}},
		{"a configured host name", websocket.Options{AllowedHosts: []string{"MyBox"}}, "mybox:PORT", "http://localhost:3000", 101, nil},
		{"allowed_origins replaces the default", websocket.Options{AllowedOrigins: []string{"https://app.example"}},
			"127.0.0.1:PORT", "http://localhost:3000", 403, []string{"not in allowed_origins", "key=allowed_origins"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var logs logBuffer
			tc.opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			addr := startBroker(t, tc.opts)
			p := port(addr)
			if got := handshake(t, addr, strings.ReplaceAll(tc.host, "PORT", p), strings.ReplaceAll(tc.origin, "PORT", p)); got != tc.want {
				t.Fatalf("status %d, want %d\n%s", got, tc.want, logs.String())
			}
			for _, w := range tc.logs {
				if !strings.Contains(logs.String(), w) {
					t.Errorf("log lacks %q:\n%s", w, logs.String())
				}
			}
		})
	}
}
