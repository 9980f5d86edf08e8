package tcp

import (
	"net"
	"syscall"
	"testing"
	"time"
)

// TestSocketOptions checks, on Linux, that accepted connections have
// TCP_NODELAY and SO_KEEPALIVE set.
func TestSocketOptions(t *testing.T) {
	l := New("tcp", "127.0.0.1:0")
	if err := l.Listen(); err != nil {
		t.Fatalf("Listen: %v", err)
	}
	conns, _ := startServe(t, l)
	client, err := net.Dial("tcp", l.Address())
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer client.Close()
	var conn net.Conn
	select {
	case conn = <-conns:
	case <-time.After(waitTimeout):
		t.Fatal("no connection handed over")
	}
	defer conn.Close()

	raw, err := conn.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatalf("SyscallConn: %v", err)
	}
	opts := []struct {
		name         string
		level, which int
	}{
		{"TCP_NODELAY", syscall.IPPROTO_TCP, syscall.TCP_NODELAY},
		{"SO_KEEPALIVE", syscall.SOL_SOCKET, syscall.SO_KEEPALIVE},
	}
	for _, o := range opts {
		var v int
		var gerr error
		if err := raw.Control(func(fd uintptr) {
			v, gerr = syscall.GetsockoptInt(int(fd), o.level, o.which)
		}); err != nil {
			t.Fatalf("Control: %v", err)
		}
		if gerr != nil {
			t.Fatalf("getsockopt %s: %v", o.name, gerr)
		}
		if v == 0 {
			t.Errorf("%s is off on an accepted connection", o.name)
		}
	}
}
