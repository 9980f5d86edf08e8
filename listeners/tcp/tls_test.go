package tcp

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/logtest"
	"github.com/vanemq/vanemq/core/mqtttest"
	"github.com/vanemq/vanemq/listeners/tlsfiles"
	"github.com/vanemq/vanemq/listeners/tlsfiles/tlstest"
)

type logBuffer = logtest.Buffer

// waitLog waits until the log contains every one of want.
func waitLog(t *testing.T, b *logBuffer, want ...string) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		s := b.String()
		missing := ""
		for _, w := range want {
			if !strings.Contains(s, w) {
				missing = w
				break
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("log does not contain %q:\n%s", missing, s)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// certHook records the client certificate Common Name (or "" without one)
// that Authenticate sees.
type certHook struct {
	cns chan string
}

func (h *certHook) ID() string            { return "test.cert" }
func (h *certHook) Events() core.EventSet { return core.Events(core.EventAuthenticate) }
func (h *certHook) Authenticate(_ context.Context, cl *core.ClientInfo, _ *core.Credentials) core.Verdict {
	cn := "<no TLS state>"
	if cl.TLS != nil {
		cn = ""
		if len(cl.TLS.PeerCertificates) > 0 {
			cn = cl.TLS.PeerCertificates[0].Subject.CommonName
		}
	}
	h.cns <- cn
	return core.Next
}

// tlsBroker is a broker with one TLS listener on loopback.
type tlsBroker struct {
	addr  string
	files *tlsfiles.Config
	logs  *logBuffer
	hook  *certHook
}

// startTLSBroker starts a broker serving files on a NewTLS listener, with a
// certHook, and shuts it down when the test ends.
func startTLSBroker(t *testing.T, files tlsfiles.Files) *tlsBroker {
	t.Helper()
	cfg, err := tlsfiles.Load(files)
	if err != nil {
		t.Fatalf("tlsfiles.Load: %v", err)
	}
	logs := &logBuffer{}
	srv, err := core.New(core.Options{
		AllowAnonymous: true,
		SysInterval:    -1,
		Logger:         slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatalf("core.New: %v", err)
	}
	hook := &certHook{cns: make(chan string, 16)}
	if err := srv.AddHook(hook, 0); err != nil {
		t.Fatalf("AddHook: %v", err)
	}
	// Registered first, so it runs after the shutdown.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("broker log:\n%s", logs)
		}
	})
	addr := mqtttest.Serve(t, srv, NewTLS("tls", "127.0.0.1:0", cfg.TLSConfig()))
	return &tlsBroker{addr: addr, files: cfg, logs: logs, hook: hook}
}

// client is an MQTT client connected to a test broker.
type client interface {
	// roundTrip subscribes to topic, publishes to it and waits for the
	// message to come back.
	roundTrip(t *testing.T, topic string)
}

// v3Client is a paho.mqtt.golang (MQTT 3.1.1) client over ssl://.
type v3Client struct{ cli mqtt.Client }

func dialV3(t *testing.T, addr string, cfg *tls.Config, id string) (*v3Client, error) {
	t.Helper()
	opts := mqtt.NewClientOptions().
		AddBroker("ssl://" + addr).
		SetClientID(id).
		SetTLSConfig(cfg).
		SetConnectTimeout(waitTimeout).
		SetAutoReconnect(false).
		SetConnectRetry(false)
	cli := mqtt.NewClient(opts)
	tok := cli.Connect()
	if !tok.WaitTimeout(waitTimeout) {
		return nil, fmt.Errorf("connect %s: timed out", id)
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { cli.Disconnect(100) })
	return &v3Client{cli}, nil
}

func (c *v3Client) roundTrip(t *testing.T, topic string) {
	t.Helper()
	got := make(chan string, 1)
	tok := c.cli.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) { got <- string(m.Payload()) })
	if !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		t.Fatalf("v3 subscribe %s: %v", topic, tok.Error())
	}
	tok = c.cli.Publish(topic, 1, false, "hello "+topic)
	if !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		t.Fatalf("v3 publish %s: %v", topic, tok.Error())
	}
	select {
	case p := <-got:
		if p != "hello "+topic {
			t.Fatalf("v3 received %q, want %q", p, "hello "+topic)
		}
	case <-time.After(waitTimeout):
		t.Fatalf("v3 client did not receive its message on %s", topic)
	}
}

// lockedConn makes paho.golang write each packet atomically: it writes a
// packet as several Write calls (one TLS record each) unless the conn is a
// sync.Locker, so its pinger's PINGREQ could otherwise land in the middle
// of another packet (eclipse-paho/paho.golang#81). Over plain TCP the
// writes are one writev and cannot interleave.
type lockedConn struct {
	*tls.Conn
	sync.Mutex
}

// v5Client is a paho.golang (MQTT 5) client on a connection from tls.Dial.
type v5Client struct {
	cli  *paho.Client
	conn *tls.Conn
	msgs chan *paho.Publish
}

func dialV5(t *testing.T, addr string, cfg *tls.Config, id string) (*v5Client, error) {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: waitTimeout}, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	c := &v5Client{conn: conn, msgs: make(chan *paho.Publish, 16)}
	c.cli = paho.NewClient(paho.ClientConfig{
		ClientID: id,
		Conn:     &lockedConn{Conn: conn},
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			c.msgs <- pr.Packet
			return true, nil
		}},
	})
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := c.cli.Connect(ctx, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30}); err != nil {
		conn.Close()
		return nil, err
	}
	t.Cleanup(func() {
		_ = c.cli.Disconnect(&paho.Disconnect{})
		select {
		case <-c.cli.Done():
		case <-time.After(waitTimeout):
		}
	})
	return c, nil
}

func (c *v5Client) roundTrip(t *testing.T, topic string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := c.cli.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: topic, QoS: 1}}}); err != nil {
		t.Fatalf("v5 subscribe %s: %v", topic, err)
	}
	if _, err := c.cli.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte("hello " + topic)}); err != nil {
		t.Fatalf("v5 publish %s: %v", topic, err)
	}
	select {
	case p := <-c.msgs:
		if p.Topic != topic || string(p.Payload) != "hello "+topic {
			t.Fatalf("v5 received %s %q, want %s %q", p.Topic, p.Payload, topic, "hello "+topic)
		}
	case <-time.After(waitTimeout):
		t.Fatalf("v5 client did not receive its message on %s", topic)
	}
}

// dialers connect each kind of test client.
var dialers = []struct {
	name string
	dial func(t *testing.T, addr string, cfg *tls.Config, id string) (client, error)
}{
	{"paho.mqtt.golang ssl://", func(t *testing.T, addr string, cfg *tls.Config, id string) (client, error) {
		c, err := dialV3(t, addr, cfg, id)
		if err != nil {
			return nil, err
		}
		return c, nil
	}},
	{"paho.golang tls.Dial", func(t *testing.T, addr string, cfg *tls.Config, id string) (client, error) {
		c, err := dialV5(t, addr, cfg, id)
		if err != nil {
			return nil, err
		}
		return c, nil
	}},
}

func TestTLSRoundTrip(t *testing.T) {
	p := tlstest.New(t)
	b := startTLSBroker(t, tlsfiles.Files{Cert: p.ServerCert, Key: p.ServerKey})
	for i, d := range dialers {
		t.Run(d.name, func(t *testing.T) {
			c, err := d.dial(t, b.addr, p.ClientConfig(false), fmt.Sprintf("rt-%d", i))
			if err != nil {
				t.Fatalf("connect: %v", err)
			}
			if cn := <-b.hook.cns; cn != "" {
				t.Errorf("hook saw client CN %q, want none (TLS without a client cert)", cn)
			}
			c.roundTrip(t, fmt.Sprintf("tls/rt/%d", i))
		})
	}
}

func TestMTLS(t *testing.T) {
	p := tlstest.New(t)
	tls12 := func(c *tls.Config) *tls.Config { c.MaxVersion = tls.VersionTLS12; return c }
	tests := []struct {
		name    string
		require bool
		cfg     *tls.Config
		wantCN  string // "" with wantErr: refused
		wantErr string // substrings of the client's error, "|" between alternatives
		wantLog string // substring of the broker's log on refusal
	}{
		{"required, cert", true, p.ClientConfig(true), tlstest.ClientCN, "", ""},
		{"required, no cert, TLS 1.3", true, p.ClientConfig(false), "", "certificate required|broken pipe|connection reset|EOF", "client didn't provide a certificate"},
		{"required, no cert, TLS 1.2", true, tls12(p.ClientConfig(false)), "", "handshake failure", "client didn't provide a certificate"},
		{"optional, cert", false, p.ClientConfig(true), tlstest.ClientCN, "", ""},
		{"optional, no cert", false, p.ClientConfig(false), "", "", ""},
	}
	for _, tt := range tests {
		for i, d := range dialers {
			t.Run(tt.name+"/"+d.name, func(t *testing.T) {
				b := startTLSBroker(t, tlsfiles.Files{Cert: p.ServerCert, Key: p.ServerKey, ClientCA: p.CAFile, RequireClientCert: tt.require})
				c, err := d.dial(t, b.addr, tt.cfg.Clone(), fmt.Sprintf("mtls-%d", i))
				if tt.wantErr != "" {
					// Under TLS 1.3 the client finishes its handshake before
					// the server checks for a certificate, so it may see the
					// server's alert or just the closed connection.
					if err == nil || !containsAny(err.Error(), strings.Split(tt.wantErr, "|")) {
						t.Fatalf("connect error = %v, want one containing %q", err, tt.wantErr)
					}
					waitLog(t, b.logs, "reading CONNECT failed", tt.wantLog)
					select {
					case cn := <-b.hook.cns:
						t.Fatalf("refused client reached Authenticate (CN %q)", cn)
					default:
					}
					return
				}
				if err != nil {
					t.Fatalf("connect: %v", err)
				}
				if cn := <-b.hook.cns; cn != tt.wantCN {
					t.Errorf("hook saw client CN %q, want %q", cn, tt.wantCN)
				}
				c.roundTrip(t, "mtls/rt")
			})
		}
	}
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func TestTLSReloadKeepsClients(t *testing.T) {
	p := tlstest.New(t)
	certFile, keyFile := filepath.Join(p.Dir, "live.pem"), filepath.Join(p.Dir, "live-key.pem")
	install := func(cert, key string) {
		t.Helper()
		for src, dst := range map[string]string{cert: certFile, key: keyFile} {
			data, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dst, data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	install(p.ServerCert, p.ServerKey)
	b := startTLSBroker(t, tlsfiles.Files{Cert: certFile, Key: keyFile})
	serverCN := func(c *v5Client) string {
		return c.conn.ConnectionState().PeerCertificates[0].Subject.CommonName
	}

	before, err := dialV5(t, b.addr, p.ClientConfig(false), "before")
	if err != nil {
		t.Fatal(err)
	}
	v3before, err := dialV3(t, b.addr, p.ClientConfig(false), "v3before")
	if err != nil {
		t.Fatal(err)
	}
	if cn := serverCN(before); cn != "server-1" {
		t.Fatalf("server CN before reload = %q, want server-1", cn)
	}

	cert2, key2 := p.Issue("server-2", false)
	install(cert2, key2)
	if err := b.files.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	after, err := dialV5(t, b.addr, p.ClientConfig(false), "after")
	if err != nil {
		t.Fatal(err)
	}
	if cn := serverCN(after); cn != "server-2" {
		t.Fatalf("server CN after reload = %q, want server-2", cn)
	}
	// The clients connected before the reload are still there, on the
	// old certificate.
	before.roundTrip(t, "reload/before")
	v3before.roundTrip(t, "reload/v3before")
	after.roundTrip(t, "reload/after")
	if cn := serverCN(before); cn != "server-1" {
		t.Errorf("old connection's server CN = %q, want server-1", cn)
	}

	// A failed reload keeps serving the last good certificate.
	if err := os.WriteFile(keyFile, []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := b.files.Reload(); err == nil || !strings.Contains(err.Error(), keyFile) {
		t.Fatalf("Reload with a junk key = %v, want an error naming %s", err, keyFile)
	}
	again, err := dialV5(t, b.addr, p.ClientConfig(false), "again")
	if err != nil {
		t.Fatal(err)
	}
	if cn := serverCN(again); cn != "server-2" {
		t.Errorf("server CN after failed reload = %q, want server-2", cn)
	}
}

// TestTLSHandshakeIsLazy checks that Serve hands connections over before
// any handshake, so a client that never completes one does not hold up
// the accept loop.
func TestTLSHandshakeIsLazy(t *testing.T) {
	p := tlstest.New(t)
	cfg, err := tlsfiles.Load(tlsfiles.Files{Cert: p.ServerCert, Key: p.ServerKey})
	if err != nil {
		t.Fatal(err)
	}
	l := NewTLS("tls", "127.0.0.1:0", cfg.TLSConfig())
	if err := l.Listen(); err != nil {
		t.Fatal(err)
	}
	if l.ID() != "tls" || l.Protocol() != "tls" {
		t.Errorf("ID, Protocol = %q, %q; want tls, tls", l.ID(), l.Protocol())
	}
	conns, _ := startServe(t, l)

	// Two raw TCP clients that never send a ClientHello are both handed
	// over, as *tls.Conn with the handshake still to do.
	for i := range 2 {
		raw, err := net.Dial("tcp", l.Address())
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		select {
		case c := <-conns:
			defer c.Close()
			tc, ok := c.(*tls.Conn)
			if !ok {
				t.Fatalf("handed conn is %T, want *tls.Conn", c)
			}
			if tc.ConnectionState().HandshakeComplete {
				t.Errorf("conn %d: handshake already complete on hand-over", i)
			}
		case <-time.After(waitTimeout):
			t.Fatalf("silent client %d was not handed over: Accept is blocked", i)
		}
	}

	// A real client still gets through; the handshake runs on the first
	// read, on the reader's goroutine.
	type result struct {
		st  tls.ConnectionState
		err error
	}
	done := make(chan result, 1)
	go func() {
		cli, err := tls.Dial("tcp", l.Address(), p.ClientConfig(true))
		if err != nil {
			done <- result{err: err}
			return
		}
		defer cli.Close()
		_, err = cli.Write([]byte{0xC0, 0x00}) // PINGREQ
		done <- result{st: cli.ConnectionState(), err: err}
	}()
	var server net.Conn
	select {
	case server = <-conns:
	case <-time.After(waitTimeout):
		t.Fatal("TLS client was not handed over")
	}
	defer server.Close()
	server.SetDeadline(time.Now().Add(waitTimeout))
	buf := make([]byte, 2)
	if _, err := io.ReadFull(server, buf); err != nil || buf[0] != 0xC0 {
		t.Fatalf("server read %x, %v; want c000", buf, err)
	}
	if !server.(*tls.Conn).ConnectionState().HandshakeComplete {
		t.Error("handshake not complete after the first read")
	}
	if r := <-done; r.err != nil || r.st.PeerCertificates[0].Subject.CommonName != "server-1" {
		t.Fatalf("client: %v (server CN %v)", r.err, r.st.PeerCertificates)
	}
}

// TestTLSBadClientsAreLogged checks that failed handshakes reach the
// broker's log (the core's reader sees them) and do not stop the listener.
func TestTLSBadClientsAreLogged(t *testing.T) {
	p := tlstest.New(t)
	b := startTLSBroker(t, tlsfiles.Files{Cert: p.ServerCert, Key: p.ServerKey})
	// A client that connects and says nothing holds no one up.
	silent, err := net.Dial("tcp", b.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()

	untrusting := &tls.Config{ServerName: "127.0.0.1"} // system roots: rejects the test CA
	tests := []struct {
		name    string
		send    func() error
		wantLog []string
	}{
		{"plain MQTT to TLS port", func() error {
			c, err := net.Dial("tcp", b.addr)
			if err != nil {
				return err
			}
			defer c.Close()
			// CONNECT, MQTT 3.1.1, clean session, client ID "x".
			_, err = c.Write([]byte{0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 30, 0, 1, 'x'})
			c.SetReadDeadline(time.Now().Add(waitTimeout))
			io.Copy(io.Discard, c) // until the broker hangs up
			return err
		}, []string{"reading CONNECT failed", "first record does not look like a TLS handshake"}},
		{"client rejects server cert", func() error {
			c, err := tls.Dial("tcp", b.addr, untrusting)
			if err == nil {
				c.Close()
				return fmt.Errorf("handshake succeeded with an untrusting client")
			}
			return nil
		}, []string{"reading CONNECT failed", "remote error: tls: bad certificate"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.send(); err != nil {
				t.Fatal(err)
			}
			waitLog(t, b.logs, tt.wantLog...)
		})
	}
	// The listener still serves.
	c, err := dialV5(t, b.addr, p.ClientConfig(false), "still")
	if err != nil {
		t.Fatalf("connect after bad clients: %v", err)
	}
	c.roundTrip(t, "still/here")
}
