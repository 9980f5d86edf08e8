package proxyproto_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	pp "github.com/pires/go-proxyproto"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/logtest"
	"github.com/vanemq/vanemq/core/mqtttest"
	"github.com/vanemq/vanemq/listeners/proxyproto"
	"github.com/vanemq/vanemq/listeners/tcp"
)

// waitTimeout bounds every wait for something that should happen; it is
// shorter than DefaultHeaderTimeout, so a wait that succeeds shows that no
// header read stalled Accept.
const waitTimeout = 5 * time.Second

var discard = slog.New(slog.DiscardHandler)

type logBuffer = logtest.Buffer

// remoteHook records the ClientInfo.Remote each client authenticated with.
type remoteHook struct {
	mu      sync.Mutex
	remotes map[string]string // client ID → remote
}

func (h *remoteHook) ID() string              { return "remote-recorder" }
func (h *remoteHook) Events() core.EventSet   { return core.Events(core.EventAuthenticate) }
func (h *remoteHook) remote(id string) string { h.mu.Lock(); defer h.mu.Unlock(); return h.remotes[id] }
func (h *remoteHook) Authenticate(_ context.Context, cl *core.ClientInfo, _ *core.Credentials) core.Verdict {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.remotes[cl.ID] = cl.Remote
	return core.Next
}

// loopback trusts the address the tests' clients dial from by default.
var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}

// startBroker starts a broker with a tcp listener on address that requires
// PROXY headers from trusted, logging refusals to logs; it returns the
// listener's address and the recording hook.
func startBroker(t *testing.T, logs io.Writer, address string, trusted []netip.Prefix) (string, *remoteHook) {
	t.Helper()
	srv, err := core.New(core.Options{AllowAnonymous: true, SysInterval: -1, Logger: discard})
	if err != nil {
		t.Fatalf("core.New: %v", err)
	}
	h := &remoteHook{remotes: map[string]string{}}
	if err := srv.AddHook(h, 0); err != nil {
		t.Fatalf("AddHook: %v", err)
	}
	l := tcp.New("proxied", address).WithProxyProtocol(trusted, slog.New(slog.NewTextHandler(logs, nil)))
	return mqtttest.Serve(t, srv, l), h
}

func mqttString(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }

// connectPkt is an MQTT 3.1.1 CONNECT with a clean session.
func connectPkt(id string) []byte {
	body := append(mqttString("MQTT"), 4, 0x02, 0, 60)
	body = append(body, mqttString(id)...)
	return append([]byte{0x10, byte(len(body))}, body...)
}

var connack0 = []byte{0x20, 2, 0, 0}

func v2Header(t *testing.T, cmd pp.ProtocolVersionAndCommand, src, dst string) []byte {
	t.Helper()
	h := pp.HeaderProxyFromAddrs(2, tcpAddr(t, src), tcpAddr(t, dst))
	h.Command = cmd
	b, err := h.Format()
	if err != nil {
		t.Fatalf("format v2 header: %v", err)
	}
	return b
}

func tcpAddr(t *testing.T, s string) *net.TCPAddr {
	t.Helper()
	a, err := net.ResolveTCPAddr("tcp", s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	if err := nc.SetDeadline(time.Now().Add(waitTimeout)); err != nil {
		t.Fatal(err)
	}
	return nc
}

// TestBroker drives a broker's tcp listener with PROXY headers of every
// kind: good ones reach the hook as ClientInfo.Remote, bad ones close the
// connection with a log line naming the remote address, and a client that
// sends nothing at all stalls nobody.
func TestBroker(t *testing.T) {
	var logs logBuffer
	addr, hook := startBroker(t, &logs, "127.0.0.1:0", loopback)

	// Held open, silent, for the whole test: its header read must not keep
	// the others from being accepted.
	silent := dial(t, addr)

	for _, tc := range []struct {
		name       string
		header     func(t *testing.T) []byte
		wantRemote string // "" means the connection's real address
		wantCause  string // non-empty: refused, with this in the log
	}{
		{name: "v1 tcp4", header: func(*testing.T) []byte {
			return []byte("PROXY TCP4 203.0.113.7 127.0.0.1 40000 1883\r\n")
		}, wantRemote: "203.0.113.7:40000"},
		{name: "v1 tcp6", header: func(*testing.T) []byte {
			return []byte("PROXY TCP6 2001:db8::7 2001:db8::1 40001 1883\r\n")
		}, wantRemote: "[2001:db8::7]:40001"},
		{name: "v1 unknown keeps the real address", header: func(*testing.T) []byte {
			return []byte("PROXY UNKNOWN\r\n")
		}},
		{name: "v2 tcp4", header: func(t *testing.T) []byte {
			return v2Header(t, pp.PROXY, "203.0.113.7:40000", "127.0.0.1:1883")
		}, wantRemote: "203.0.113.7:40000"},
		{name: "v2 tcp6", header: func(t *testing.T) []byte {
			return v2Header(t, pp.PROXY, "[2001:db8::9]:40002", "[2001:db8::1]:1883")
		}, wantRemote: "[2001:db8::9]:40002"},
		{name: "v2 local keeps the real address", header: func(t *testing.T) []byte {
			return v2Header(t, pp.LOCAL, "203.0.113.7:40000", "127.0.0.1:1883")
		}},
		{name: "no header", header: func(*testing.T) []byte { return nil },
			wantCause: "signature not present"},
		{name: "garbage v1", header: func(*testing.T) []byte { return []byte("PROXY TCP4 not-an-ip\r\n") },
			wantCause: "proxyproto"},
		{name: "v1 without CRLF", header: func(*testing.T) []byte {
			return []byte("PROXY TCP4 203.0.113.7 127.0.0.1 40000 1883\n")
		}, wantCause: "proxyproto"},
		{name: "bad v2 version", header: func(t *testing.T) []byte {
			b := v2Header(t, pp.PROXY, "203.0.113.7:40000", "127.0.0.1:1883")
			b[12] = 0x31 // version 3
			return b
		}, wantCause: "proxyproto"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc := dial(t, addr)
			id := strings.ReplaceAll(tc.name, " ", "-")
			msg := append(tc.header(t), connectPkt(id)...)
			if _, err := nc.Write(msg); err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(io.LimitReader(nc, int64(len(connack0))))
			if tc.wantCause != "" {
				if len(got) != 0 || err != nil && !isClosed(err) {
					t.Fatalf("refused connection read %x, %v; want it closed", got, err)
				}
				// Logged before the close the client just saw.
				l := logs.String()
				if !strings.Contains(l, "PROXY protocol header") || !strings.Contains(l, "remote="+nc.LocalAddr().String()) ||
					!strings.Contains(l, tc.wantCause) {
					t.Errorf("log %q does not name %s and the cause %q", l, nc.LocalAddr(), tc.wantCause)
				}
				return
			}
			if err != nil || !bytes.Equal(got, connack0) {
				t.Fatalf("got %x, %v; want CONNACK 0 %x", got, err, connack0)
			}
			want := tc.wantRemote
			if want == "" {
				want = nc.LocalAddr().String()
			}
			if r := hook.remote(id); r != want {
				t.Errorf("hook saw remote %q, want %q", r, want)
			}
		})
	}

	// The silent client is still waiting: nothing closed it.
	if err := silent.SetReadDeadline(time.Now().Add(10 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	var ne net.Error
	if _, err := silent.Read(make([]byte, 1)); !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("silent client: read %v, want a timeout (still open)", err)
	}
}

// isClosed reports whether err is how a client sees the server closing the
// connection while the client's data was unread (a reset).
func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || strings.Contains(err.Error(), "connection reset")
}

// accepted runs Accept on ln in the background.
func accepted(ln net.Listener) (<-chan net.Conn, <-chan error) {
	conns, errs := make(chan net.Conn, 16), make(chan error, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				errs <- err
				return
			}
			conns <- c
		}
	}()
	return conns, errs
}

// TestWrap drives the wrapper directly: header timeout, addresses, data
// after the header, and Close with header reads in progress.
func TestWrap(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var logs logBuffer
	const headerTimeout = 200 * time.Millisecond
	ln, err := proxyproto.Wrap(raw, proxyproto.Options{Trusted: loopback,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)), HeaderTimeout: headerTimeout})
	if err != nil {
		t.Fatal(err)
	}
	if ln.Addr().String() != raw.Addr().String() {
		t.Errorf("Addr %s, want %s", ln.Addr(), raw.Addr())
	}
	conns, errs := accepted(ln)

	// A client that never sends a header is closed after the timeout.
	slow := dial(t, ln.Addr().String())
	if n, err := slow.Read(make([]byte, 1)); n != 0 || !isClosed(err) {
		t.Fatalf("slow client read %d, %v; want EOF", n, err)
	}
	if l := logs.String(); !strings.Contains(l, "no PROXY header within the header timeout") ||
		!strings.Contains(l, slow.LocalAddr().String()) {
		t.Errorf("log %q does not name the timeout and %s", l, slow.LocalAddr())
	}

	// A good header: the addresses come from it, the bytes after it are
	// the connection's data, and writes go through.
	good := dial(t, ln.Addr().String())
	if _, err := io.WriteString(good, "PROXY TCP4 198.51.100.1 192.0.2.1 5000 1883\r\nhello"); err != nil {
		t.Fatal(err)
	}
	var c net.Conn
	select {
	case c = <-conns:
	case err := <-errs:
		t.Fatalf("Accept: %v", err)
	case <-time.After(waitTimeout):
		t.Fatal("no connection accepted")
	}
	defer c.Close()
	if got := c.RemoteAddr().String(); got != "198.51.100.1:5000" {
		t.Errorf("RemoteAddr %s", got)
	}
	if got := c.LocalAddr().String(); got != "192.0.2.1:1883" {
		t.Errorf("LocalAddr %s", got)
	}
	_ = c.SetReadDeadline(time.Now().Add(waitTimeout))
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hello" {
		t.Errorf("read %q, %v; want hello", buf, err)
	}
	if _, err := io.WriteString(c, "back"); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(bufio.NewReader(good), buf[:4]); err != nil || string(buf[:4]) != "back" {
		t.Errorf("client read %q, %v; want back", buf[:4], err)
	}

	// Close ends Accept and the header reads still waiting.
	pending := dial(t, ln.Addr().String())
	if _, err := io.WriteString(pending, "PROXY "); err != nil { // half a header
		t.Fatal(err)
	}
	if err := ln.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-errs:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Accept did not return after Close")
	}
	if n, err := pending.Read(make([]byte, 1)); n != 0 || !isClosed(err) {
		t.Errorf("pending client read %d, %v; want EOF", n, err)
	}
	if err := ln.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
