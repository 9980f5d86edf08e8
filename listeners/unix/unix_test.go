package unix

import (
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/mqtttest"
)

var _ core.Listener = (*Listener)(nil)

const waitTimeout = 5 * time.Second

// sockPath returns a socket path in a fresh temporary directory. Socket
// paths are limited to about 100 bytes, so a long t.TempDir is avoided.
func sockPath(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "vanemq-unix")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "mqtt.sock")
}

func TestRoundTripPaho(t *testing.T) {
	path := sockPath(t)
	srv, err := core.New(core.Options{
		AllowAnonymous: true,
		SysInterval:    -1,
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	// Registered first, so it runs after the shutdown.
	t.Cleanup(func() {
		if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("socket file after Shutdown: %v, want it removed", err)
		}
	})
	mqtttest.Serve(t, srv, New("unix", path, 0o600))

	opts := mqtt.NewClientOptions().
		AddBroker("unix://" + path).
		SetClientID("unix-client").
		SetConnectTimeout(waitTimeout).
		SetAutoReconnect(false)
	cli := mqtt.NewClient(opts)
	if tok := cli.Connect(); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		t.Fatalf("connect over unix://: %v", tok.Error())
	}
	defer cli.Disconnect(100)
	got := make(chan string, 1)
	if tok := cli.Subscribe("unix/t", 1, func(_ mqtt.Client, m mqtt.Message) { got <- string(m.Payload()) }); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	if tok := cli.Publish("unix/t", 1, false, "over a socket"); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	select {
	case p := <-got:
		if p != "over a socket" {
			t.Fatalf("received %q", p)
		}
	case <-time.After(waitTimeout):
		t.Fatal("message did not come back")
	}
}

func TestListenExistingPath(t *testing.T) {
	tests := []struct {
		name     string
		setup    func(t *testing.T, path string) // leaves something at path
		wantErr  string                          // "" means Listen succeeds
		wantKept bool                            // the original file must survive
	}{
		{"nothing there", func(*testing.T, string) {}, "", false},
		{"stale socket", func(t *testing.T, path string) {
			ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
			if err != nil {
				t.Fatal(err)
			}
			ln.SetUnlinkOnClose(false) // as if the process had died
			ln.Close()
		}, "", false},
		{"live socket", func(t *testing.T, path string) {
			ln, err := net.Listen("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
		}, "in use", true},
		{"regular file", func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte("precious"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "not a socket", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := sockPath(t)
			tt.setup(t, path)
			before, _ := os.Lstat(path)
			l := New("u", path, 0)
			err := l.Listen()
			defer l.Close()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Listen = %v, want an error containing %q", err, tt.wantErr)
				}
				after, serr := os.Lstat(path)
				if tt.wantKept && (serr != nil || !os.SameFile(before, after)) {
					t.Errorf("existing file was replaced or removed (%v)", serr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Listen: %v", err)
			}
			c, err := net.Dial("unix", path)
			if err != nil {
				t.Fatalf("dial the new socket: %v", err)
			}
			c.Close()
		})
	}
}

func TestModeAndRemoval(t *testing.T) {
	for _, mode := range []os.FileMode{0o600, 0o660, 0o666, 0o700} {
		t.Run(mode.String(), func(t *testing.T) {
			path := sockPath(t)
			l := New("u", path, mode)
			if l.Protocol() != "unix" || l.ID() != "u" || l.Address() != path {
				t.Errorf("Protocol, ID, Address = %q, %q, %q", l.Protocol(), l.ID(), l.Address())
			}
			if err := l.Listen(); err != nil {
				t.Fatalf("Listen: %v", err)
			}
			fi, err := os.Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != mode {
				t.Errorf("socket file mode = %v, want socket with %v", fi.Mode(), mode)
			}
			if err := l.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("after Close: Lstat = %v, want the file removed", err)
			}
			if err := l.Close(); err != nil {
				t.Errorf("second Close = %v", err)
			}
		})
	}
}

func TestServeHandsOverAndStops(t *testing.T) {
	path := sockPath(t)
	l := New("u", path, 0o600)
	if err := l.Serve(func(net.Conn) {}); err == nil || !strings.Contains(err.Error(), "before listen") {
		t.Fatalf("Serve before Listen = %v", err)
	}
	if err := l.Listen(); err != nil {
		t.Fatal(err)
	}
	if err := l.Listen(); err == nil || !strings.Contains(err.Error(), "already listening") {
		t.Fatalf("second Listen = %v", err)
	}
	conns := make(chan net.Conn, 1)
	served := make(chan error, 1)
	go func() { served <- l.Serve(func(c net.Conn) { conns <- c }) }()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var server net.Conn
	select {
	case server = <-conns:
	case <-time.After(waitTimeout):
		t.Fatal("connection not handed over")
	}
	defer server.Close()
	if server.RemoteAddr() == nil {
		t.Error("handed conn has a nil RemoteAddr (the core calls String on it)")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve after Close = %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Serve did not return after Close")
	}
	// The handed-over connection outlives the listener.
	if _, err := c.Write([]byte{0xC0, 0}); err != nil {
		t.Fatal(err)
	}
	server.SetReadDeadline(time.Now().Add(waitTimeout))
	if _, err := io.ReadFull(server, make([]byte, 2)); err != nil {
		t.Fatalf("read after Close: %v", err)
	}
	if err := l.Listen(); err == nil {
		t.Error("Listen after Close succeeded")
	}
}

func TestMaxConnections(t *testing.T) {
	path := sockPath(t)
	l := New("u", path, 0o600).WithMaxConnections(1, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := l.Listen(); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	conns := make(chan net.Conn, 2)
	go l.Serve(func(c net.Conn) { conns <- c })
	first, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	select {
	case s := <-conns:
		defer s.Close()
	case <-time.After(waitTimeout):
		t.Fatal("first connection not handed over")
	}
	second, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	_ = second.SetReadDeadline(time.Now().Add(waitTimeout))
	if _, err := second.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("second connection: read = %v, want EOF", err)
	}
}
