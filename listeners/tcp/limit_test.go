package tcp

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/mqtttest"
	"github.com/vanemq/vanemq/listeners/limit"
	"github.com/vanemq/vanemq/listeners/proxyproto"
)

// connectV3 connects a paho.mqtt.golang client over tcp://.
func connectV3(t *testing.T, addr, id string) (mqtt.Client, error) {
	t.Helper()
	cli := mqtt.NewClient(mqtt.NewClientOptions().
		AddBroker("tcp://" + addr).
		SetClientID(id).
		SetConnectTimeout(waitTimeout).
		SetAutoReconnect(false).
		SetConnectRetry(false))
	tok := cli.Connect()
	if !tok.WaitTimeout(waitTimeout) {
		return nil, fmt.Errorf("connect %s: timed out", id)
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { cli.Disconnect(100) })
	return cli, nil
}

// TestLimitsThroughBroker runs the broker on a tcp listener with limits and
// connects paho clients to it.
func TestLimitsThroughBroker(t *testing.T) {
	tests := []struct {
		name    string
		opts    limit.Options
		log     string // in the warning for the refused client
		frees   bool   // disconnecting a client lets a new one in
		connect int    // clients that get in before one is refused
	}{
		{"max connections 2", limit.Options{MaxConnections: 2}, "listener connection limit reached", true, 2},
		{"rate 1/s burst 2", limit.Options{RatePerIP: 1, Burst: 2}, "connection rate per source IP exceeded", false, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := &logBuffer{}
			logger := slog.New(slog.NewTextHandler(logs, nil))
			srv, err := core.New(core.Options{AllowAnonymous: true, SysInterval: -1, Logger: logger})
			if err != nil {
				t.Fatalf("core.New: %v", err)
			}
			// Registered first, so it runs after the shutdown.
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("log:\n%s", logs)
				}
			})
			addr := mqtttest.Serve(t, srv, New("limited", "127.0.0.1:0").WithLimits(tt.opts, logger))

			var clients []mqtt.Client
			for i := range tt.connect {
				c, err := connectV3(t, addr, fmt.Sprintf("c%d", i))
				if err != nil {
					t.Fatalf("client %d under the limit: %v", i, err)
				}
				clients = append(clients, c)
			}
			if _, err := connectV3(t, addr, "over"); err == nil {
				t.Fatal("client over the limit connected")
			}
			if out := logs.String(); !strings.Contains(out, tt.log) || !strings.Contains(out, "listener=limited") {
				t.Errorf("log lacks %q for the refused client:\n%s", tt.log, out)
			}
			if !tt.frees {
				return
			}
			// The broker closes the connection after the DISCONNECT, on a
			// goroutine of its own: poll, within a bound, until the slot is free.
			clients[0].Disconnect(100)
			var next mqtt.Client
			deadline := time.Now().Add(waitTimeout)
			for next == nil && time.Now().Before(deadline) {
				next, _ = connectV3(t, addr, "next")
			}
			if next == nil {
				t.Fatal("no client got in after one disconnected")
			}
			// The clients still in work.
			got := make(chan string, 1)
			tok := next.Subscribe("limits/t", 1, func(_ mqtt.Client, m mqtt.Message) { got <- string(m.Payload()) })
			if !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
				t.Fatalf("subscribe: %v", tok.Error())
			}
			if tok := clients[1].Publish("limits/t", 1, false, "hi"); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
				t.Fatalf("publish: %v", tok.Error())
			}
			select {
			case m := <-got:
				if m != "hi" {
					t.Errorf("got %q, want hi", m)
				}
			case <-time.After(waitTimeout):
				t.Fatal("message not delivered")
			}
		})
	}
}

// TestLimitsSeeProxyAddress checks the limits apply to the client address
// of the PROXY header, not the proxy's, and count IPv6 clients by their
// /64: a host holds a whole /64, so fresh addresses of it share a bucket.
func TestLimitsSeeProxyAddress(t *testing.T) {
	logs := &logBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	l := New("pp", "127.0.0.1:0").WithProxyProtocol([]netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, logger).
		WithLimits(limit.Options{RatePerIP: 0.001, Burst: 1}, logger)
	if err := l.Listen(); err != nil {
		t.Fatal(err)
	}
	conns, _ := startServe(t, l)
	tests := []struct {
		header string
		remote string
		source string // the bucket named in the log; "" means handed out
	}{
		{"PROXY TCP4 10.0.0.1 127.0.0.1 1001 1883", "10.0.0.1:1001", ""},
		{"PROXY TCP4 10.0.0.2 127.0.0.1 1002 1883", "10.0.0.2:1002", ""},                // another client behind the same proxy
		{"PROXY TCP4 10.0.0.1 127.0.0.1 1003 1883", "10.0.0.1:1003", "10.0.0.1/32"},     // the first client again, over its rate
		{"PROXY TCP6 2001:db8::1 ::1 1004 1883", "[2001:db8::1]:1004", ""},              // an IPv6 host
		{"PROXY TCP6 2001:db8::2 ::1 1005 1883", "[2001:db8::2]:1005", "2001:db8::/64"}, // the same /64: the same bucket
		{"PROXY TCP6 2001:db8:0:0:ffff:ffff:ffff:ffff ::1 1006 1883", "[2001:db8::ffff:ffff:ffff:ffff]:1006", "2001:db8::/64"},
		{"PROXY TCP6 2001:db8:0:1::1 ::1 1007 1883", "[2001:db8:0:1::1]:1007", ""}, // the next /64: another host
	}
	for _, tt := range tests {
		c, err := net.Dial("tcp", l.Address())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "%s\r\n", tt.header)
		if tt.source == "" {
			select {
			case s := <-conns:
				if got := s.RemoteAddr().String(); got != tt.remote {
					t.Errorf("remote = %s, want %s", got, tt.remote)
				}
				s.Close()
			case <-time.After(waitTimeout):
				t.Fatalf("%s: not handed out", tt.remote)
			}
			continue
		}
		_ = c.SetReadDeadline(time.Now().Add(waitTimeout))
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Fatalf("%s: read = %v, want EOF", tt.remote, err)
		}
		if out := logs.String(); !strings.Contains(out, "remote="+tt.remote+" source="+tt.source+" ") {
			t.Errorf("log does not name %s and its bucket %s:\n%s", tt.remote, tt.source, out)
		}
	}
}

// TestProxyProtocolNeedsTrusted checks that Listen refuses the PROXY
// protocol without trusted networks, rather than serving a listener that
// refuses every connection (or, as it once did, trusts every peer).
func TestProxyProtocolNeedsTrusted(t *testing.T) {
	l := New("pp", "127.0.0.1:0").WithProxyProtocol(nil, nil)
	if err := l.Listen(); !errors.Is(err, proxyproto.ErrNoTrusted) || !strings.Contains(err.Error(), "127.0.0.1:0") {
		l.Close()
		t.Fatalf("Listen: %v, want ErrNoTrusted naming the address", err)
	}
}
