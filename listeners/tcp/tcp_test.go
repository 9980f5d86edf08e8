package tcp

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vanemq/vanemq/core"
)

var _ core.Listener = (*Listener)(nil)

// waitTimeout bounds every wait in these tests, so a bug fails the test
// instead of hanging it.
const waitTimeout = 5 * time.Second

// startServe runs l.Serve on a goroutine, passes every accepted connection to
// the returned channel, and reports Serve's result on the second channel.
func startServe(t *testing.T, l *Listener) (<-chan net.Conn, <-chan error) {
	t.Helper()
	conns := make(chan net.Conn, 8)
	served := make(chan error, 1)
	go func() { served <- l.Serve(func(c net.Conn) { conns <- c }) }()
	t.Cleanup(func() {
		l.Close()
		for {
			select {
			case c := <-conns:
				c.Close()
			default:
				return
			}
		}
	})
	return conns, served
}

func TestServeLoopback(t *testing.T) {
	l := New("tcp1", "127.0.0.1:0")
	if got := l.Address(); got != "127.0.0.1:0" {
		t.Errorf("Address before Listen = %q, want the configured address", got)
	}
	if err := l.Listen(); err != nil {
		t.Fatalf("Listen: %v", err)
	}
	if l.ID() != "tcp1" || l.Protocol() != "tcp" {
		t.Errorf("ID, Protocol = %q, %q; want tcp1, tcp", l.ID(), l.Protocol())
	}
	addr := l.Address()
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host != "127.0.0.1" || port == "0" {
		t.Fatalf("Address after Listen = %q, want 127.0.0.1 with a real port", addr)
	}

	conns, served := startServe(t, l)

	client, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer client.Close()

	var server net.Conn
	select {
	case server = <-conns:
	case <-time.After(waitTimeout):
		t.Fatal("Serve did not hand over the connection")
	}
	defer server.Close()
	if server.RemoteAddr().String() != client.LocalAddr().String() {
		t.Errorf("handed conn's peer = %s, want the client %s", server.RemoteAddr(), client.LocalAddr())
	}
	if _, err := client.Write([]byte{0xC0, 0x00}); err != nil { // PINGREQ
		t.Fatalf("client Write: %v", err)
	}
	buf := make([]byte, 2)
	server.SetReadDeadline(time.Now().Add(waitTimeout))
	if _, err := io.ReadFull(server, buf); err != nil || buf[0] != 0xC0 {
		t.Fatalf("server read %x, %v; want c000", buf, err)
	}

	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve after Close = %v, want nil", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Serve did not return after Close")
	}

	// The handed-over connection outlives the listener.
	if _, err := server.Write([]byte{0xD0, 0x00}); err != nil { // PINGRESP
		t.Fatalf("server Write after Close: %v", err)
	}
	client.SetReadDeadline(time.Now().Add(waitTimeout))
	if _, err := io.ReadFull(client, buf); err != nil || buf[0] != 0xD0 {
		t.Fatalf("client read %x, %v; want d000", buf, err)
	}
	// New connections are refused.
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Error("Dial after Close succeeded")
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
}

func TestManyConnections(t *testing.T) {
	l := New("tcp", "127.0.0.1:0")
	if err := l.Listen(); err != nil {
		t.Fatalf("Listen: %v", err)
	}
	conns, _ := startServe(t, l)
	const n = 20
	for i := range n {
		c, err := net.Dial("tcp", l.Address())
		if err != nil {
			t.Fatalf("Dial %d: %v", i, err)
		}
		defer c.Close()
	}
	for i := range n {
		select {
		case c := <-conns:
			c.Close()
		case <-time.After(waitTimeout):
			t.Fatalf("got %d of %d connections", i, n)
		}
	}
}

func TestMisuse(t *testing.T) {
	tests := []struct {
		name    string
		run     func(l *Listener) error
		wantErr string // "" means no error
	}{
		{"serve before listen", func(l *Listener) error {
			return l.Serve(func(net.Conn) {})
		}, "serve called before listen"},
		{"listen twice", func(l *Listener) error {
			if err := l.Listen(); err != nil {
				return err
			}
			defer l.Close()
			return l.Listen()
		}, "already listening"},
		{"listen after close", func(l *Listener) error {
			l.Close()
			return l.Listen()
		}, "closed"},
		{"close before listen", func(l *Listener) error {
			return l.Close()
		}, ""},
		{"serve after close", func(l *Listener) error {
			if err := l.Listen(); err != nil {
				return err
			}
			l.Close()
			return l.Serve(func(net.Conn) {})
		}, ""},
		{"bad address", func(l *Listener) error {
			l.address = "127.0.0.1:99999"
			return l.Listen()
		}, "invalid port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.run(New("x", "127.0.0.1:0"))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("got error %v, want none", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestServeTwice(t *testing.T) {
	l := New("x", "127.0.0.1:0")
	if err := l.Listen(); err != nil {
		t.Fatal(err)
	}
	results := make(chan error, 2)
	for range 2 {
		go func() { results <- l.Serve(func(c net.Conn) { c.Close() }) }()
	}
	// Whichever call loses the race returns at once; the winner serves
	// until Close.
	select {
	case err := <-results:
		if err == nil || !strings.Contains(err.Error(), "already serving") {
			t.Fatalf("losing Serve = %v, want already serving", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("neither Serve call returned")
	}
	l.Close()
	select {
	case err := <-results:
		if err != nil {
			t.Fatalf("serving Serve = %v after Close, want nil", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Serve did not return after Close")
	}
}
