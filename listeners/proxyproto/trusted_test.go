package proxyproto_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	pp "github.com/pires/go-proxyproto"

	"github.com/vanemq/vanemq/listeners/proxyproto"
)

func TestParseTrusted(t *testing.T) {
	tests := []struct {
		in   string
		want string // the prefix; "" means an error
		err  string // in the error
	}{
		{in: "10.0.0.0/8", want: "10.0.0.0/8"},
		{in: "10.0.0.7", want: "10.0.0.7/32"},
		{in: "10.0.0.7/32", want: "10.0.0.7/32"},
		{in: "::1", want: "::1/128"},
		{in: "::1/128", want: "::1/128"},
		{in: "2001:db8::/32", want: "2001:db8::/32"},
		{in: "0.0.0.0/0", want: "0.0.0.0/0"},
		{in: "::/0", want: "::/0"},
		{in: "10.0.0.7/8", err: "host bits set; write the network 10.0.0.0/8 or the address 10.0.0.7"},
		{in: "2001:db8::1/64", err: "host bits set; write the network 2001:db8::/64"},
		{in: "::ffff:10.0.0.0/104", err: "IPv4-mapped IPv6 address; write the IPv4 form (10.0.0.0/8)"},
		{in: "::ffff:10.0.0.7", err: "IPv4-mapped IPv6 address; write the IPv4 form (10.0.0.7)"},
		{in: "fe80::1%eth0", err: "has a zone; write the address without %eth0"},
		{in: "fe80::1%eth0/64", err: "not a network in CIDR form"},
		{in: "10.0.0.0/33", err: "not a network in CIDR form"},
		{in: "10.0.0.0/", err: "not a network in CIDR form"},
		{in: "010.0.0.1", err: "neither an IP address nor a network"},
		{in: "proxy.example.com", err: "neither an IP address nor a network"},
		{in: "", err: "neither an IP address nor a network"},
		{in: "10.0.0.1:1883", err: "neither an IP address nor a network"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			p, err := proxyproto.ParseTrusted(tt.in)
			if tt.want != "" {
				if err != nil || p.String() != tt.want {
					t.Fatalf("ParseTrusted(%q) = %v, %v; want %s", tt.in, p, err, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.Contains(err.Error(), fmt.Sprintf("%q", tt.in)) {
				t.Fatalf("ParseTrusted(%q) = %v, %v; want an error naming it and %q", tt.in, p, err, tt.err)
			}
		})
	}
}

func TestWrapNeedsTrusted(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := proxyproto.Wrap(raw, proxyproto.Options{}); !errors.Is(err, proxyproto.ErrNoTrusted) {
		t.Errorf("Wrap without Trusted: %v, want ErrNoTrusted", err)
	}
	bad := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), {}}
	if _, err := proxyproto.Wrap(raw, proxyproto.Options{Trusted: bad}); err == nil || !strings.Contains(err.Error(), "trusted network 1") {
		t.Errorf("Wrap with a zero prefix: %v, want an error naming entry 1", err)
	}
}

// dialFrom connects to addr from the local address from (a loopback
// address other than 127.0.0.1 stands for a proxy on another host).
func dialFrom(t *testing.T, from, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: waitTimeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, from, err)
	}
	t.Cleanup(func() { nc.Close() })
	if err := nc.SetDeadline(time.Now().Add(waitTimeout)); err != nil {
		t.Fatal(err)
	}
	return nc
}

// connectThrough connects a paho.golang client over nc, after header, and
// reports the CONNACK's error.
func connectThrough(t *testing.T, nc net.Conn, header []byte, id string) error {
	t.Helper()
	if _, err := nc.Write(header); err != nil {
		return err
	}
	c := paho.NewClient(paho.ClientConfig{Conn: nc})
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30}); err != nil {
		return err
	}
	t.Cleanup(func() {
		_ = c.Disconnect(&paho.Disconnect{})
		select {
		case <-c.Done():
		case <-time.After(waitTimeout):
		}
	})
	return nil
}

// TestUntrusted runs a broker whose listener trusts only a proxy at
// 127.0.0.2 (and 10.0.0.0/8, which no test client has): a client at
// 127.0.0.1 is refused whatever it sends, with a log line naming it, so it
// cannot choose the address the broker sees; the proxy's header is used.
func TestUntrusted(t *testing.T) {
	var logs logBuffer
	trusted := []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32"), netip.MustParsePrefix("10.0.0.0/8")}
	addr, hook := startBroker(t, &logs, "127.0.0.1:0", trusted)

	for _, tc := range []struct {
		name   string
		header func(t *testing.T) []byte
	}{
		{"v1 header", func(*testing.T) []byte { return []byte("PROXY TCP4 10.1.2.3 127.0.0.1 40000 1883\r\n") }},
		{"v2 header", func(t *testing.T) []byte { return v2Header(t, pp.PROXY, "10.1.2.4:40000", "127.0.0.1:1883") }},
		{"v2 local", func(t *testing.T) []byte { return v2Header(t, pp.LOCAL, "10.1.2.5:40000", "127.0.0.1:1883") }},
		{"no header", func(*testing.T) []byte { return nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc := dialFrom(t, "127.0.0.1", addr)
			id := strings.ReplaceAll(tc.name, " ", "-")
			if _, err := nc.Write(append(tc.header(t), connectPkt(id)...)); err == nil {
				got, err := io.ReadAll(io.LimitReader(nc, int64(len(connack0))))
				if len(got) != 0 || err != nil && !isClosed(err) {
					t.Fatalf("untrusted client read %x, %v; want the connection closed", got, err)
				}
			}
			// Logged before the close the client saw.
			l := logs.String()
			for _, want := range []string{"level=WARN", "PROXY protocol source not trusted",
				"remote=" + nc.LocalAddr().String(), "127.0.0.1 is not a trusted PROXY sender"} {
				if !strings.Contains(l, want) {
					t.Errorf("log lacks %q:\n%s", want, l)
				}
			}
			if r := hook.remote(id); r != "" {
				t.Errorf("untrusted client authenticated, from %q", r)
			}
		})
	}

	t.Run("trusted proxy", func(t *testing.T) {
		nc := dialFrom(t, "127.0.0.2", addr)
		h := []byte("PROXY TCP4 198.51.100.20 127.0.0.1 40020 1883\r\n")
		if err := connectThrough(t, nc, h, "behind-proxy"); err != nil {
			t.Fatalf("client behind the trusted proxy: %v\nlog:\n%s", err, logs.String())
		}
		if r := hook.remote("behind-proxy"); r != "198.51.100.20:40020" {
			t.Errorf("hook saw remote %q, want the header's 198.51.100.20:40020", r)
		}
	})
	t.Run("trusted proxy without header", func(t *testing.T) {
		nc := dialFrom(t, "127.0.0.2", addr)
		if err := connectThrough(t, nc, nil, "no-header"); err == nil {
			t.Fatal("a trusted proxy's connection without a header was served")
		}
		if l := logs.String(); !strings.Contains(l, "remote="+nc.LocalAddr().String()) || !strings.Contains(l, "signature not present") {
			t.Errorf("log does not name %s and the missing header:\n%s", nc.LocalAddr(), l)
		}
	})
}

// TestTrustedIPv6 runs the listener on the IPv6 loopback: ::1/128 trusts
// the client there, and an IPv4-only list refuses it.
func TestTrustedIPv6(t *testing.T) {
	if ln, err := net.Listen("tcp", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	} else {
		ln.Close()
	}
	h := []byte("PROXY TCP6 2001:db8::20 ::1 40020 1883\r\n")
	t.Run("trusted", func(t *testing.T) {
		var logs logBuffer
		addr, hook := startBroker(t, &logs, "[::1]:0", []netip.Prefix{netip.MustParsePrefix("::1/128")})
		if err := connectThrough(t, dialFrom(t, "::1", addr), h, "v6"); err != nil {
			t.Fatalf("connect: %v\nlog:\n%s", err, logs.String())
		}
		if r := hook.remote("v6"); r != "[2001:db8::20]:40020" {
			t.Errorf("hook saw remote %q, want [2001:db8::20]:40020", r)
		}
	})
	t.Run("untrusted", func(t *testing.T) {
		var logs logBuffer
		addr, hook := startBroker(t, &logs, "[::1]:0", loopback)
		nc := dialFrom(t, "::1", addr)
		if err := connectThrough(t, nc, h, "v6"); err == nil {
			t.Fatal("client at ::1 served by a listener trusting 127.0.0.1 only")
		}
		if l := logs.String(); !strings.Contains(l, "remote="+nc.LocalAddr().String()) || !strings.Contains(l, "not a trusted PROXY sender") {
			t.Errorf("log does not name %s as untrusted:\n%s", nc.LocalAddr(), l)
		}
		if r := hook.remote("v6"); r != "" {
			t.Errorf("untrusted client authenticated, from %q", r)
		}
	})
}

// mappedListener hands out its connections with the remote address a
// dual-stack ([::]) socket gives an IPv4 peer: the IPv4-mapped 16-byte
// form. A real dual-stack socket would have to listen beyond loopback.
type mappedListener struct{ net.Listener }

func (l mappedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	ra := c.RemoteAddr().(*net.TCPAddr)
	return mappedConn{c, &net.TCPAddr{IP: ra.IP.To16(), Port: ra.Port}}, nil
}

type mappedConn struct {
	net.Conn
	remote net.Addr
}

func (c mappedConn) RemoteAddr() net.Addr { return c.remote }

// TestTrustedMapped checks that an IPv4 network trusts an IPv4 peer that
// a dual-stack socket reports as ::ffff:a.b.c.d, as the docs say.
func TestTrustedMapped(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := proxyproto.Wrap(mappedListener{raw}, proxyproto.Options{Trusted: loopback, Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	conns, errs := accepted(ln)
	nc := dial(t, ln.Addr().String())
	if _, err := io.WriteString(nc, "PROXY TCP4 198.51.100.30 127.0.0.1 40030 1883\r\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-conns:
		defer c.Close()
		if got := c.RemoteAddr().String(); got != "198.51.100.30:40030" {
			t.Errorf("RemoteAddr %s, want the header's", got)
		}
	case err := <-errs:
		t.Fatalf("Accept: %v", err)
	case <-time.After(waitTimeout):
		t.Fatal("the mapped IPv4 peer was not trusted")
	}
}
