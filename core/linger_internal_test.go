package core

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// wrapped stands for a listener's wrapper (the connection limit's).
type wrapped struct{ net.Conn }

func (w wrapped) NetConn() net.Conn { return w.Conn }

// raw stands for the PROXY protocol's connection.
type raw struct{ net.Conn }

func (r raw) Raw() net.Conn { return r.Conn }

// closeWrite half-closes a TCP connection through the listeners'
// wrappers: the peer reads the end of the stream and can still write.
func TestCloseWriteThroughWrappers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	for _, tc := range []struct {
		name string
		wrap func(net.Conn) net.Conn
	}{
		{"tcp", func(c net.Conn) net.Conn { return c }},
		{"NetConn", func(c net.Conn) net.Conn { return wrapped{c} }},
		{"Raw inside NetConn", func(c net.Conn) net.Conn { return wrapped{raw{c}} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = client.Close() })
			server, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = server.Close() })
			if !closeWrite(tc.wrap(server)) {
				t.Fatal("closeWrite failed")
			}
			_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := client.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
				t.Fatalf("client read %v, want EOF", err)
			}
			if _, err := client.Write([]byte("still")); err != nil {
				t.Fatalf("client write after the half-close: %v", err)
			}
			_ = server.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.ReadFull(server, make([]byte, 5)); err != nil {
				t.Fatalf("server read after its half-close: %v", err)
			}
		})
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if closeWrite(a) {
		t.Error("closeWrite of a pipe (no socket) reported true")
	}
}
