package websocket_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	gws "github.com/gorilla/websocket"
	pp "github.com/pires/go-proxyproto"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/logtest"
	"github.com/vanemq/vanemq/core/mqtttest"
	"github.com/vanemq/vanemq/listeners/limit"
	"github.com/vanemq/vanemq/listeners/proxyproto"
	"github.com/vanemq/vanemq/listeners/websocket"
)

// waitTimeout bounds every wait for something that should happen.
const waitTimeout = 5 * time.Second

var discard = slog.New(slog.DiscardHandler)

var _ core.Listener = (*websocket.Listener)(nil)

type logBuffer = logtest.Buffer

// startBroker starts a broker with one WebSocket listener built from opts
// and returns the listener's address. The broker stops when the test ends.
func startBroker(t *testing.T, opts websocket.Options) string {
	t.Helper()
	srv, err := core.New(core.Options{AllowAnonymous: true, SysInterval: -1, Logger: discard})
	if err != nil {
		t.Fatalf("core.New: %v", err)
	}
	if opts.Logger == nil {
		opts.Logger = discard
	}
	return mqtttest.Serve(t, srv, websocket.New("ws", "127.0.0.1:0", opts))
}

// testCert returns a server certificate for 127.0.0.1 and a pool that
// trusts it.
func testCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "vanemq test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// ---------------------------------------------------------------------------
// A gorilla client connection as a net.Conn, for paho.golang and raw MQTT.
// ---------------------------------------------------------------------------

// clientConn implements sync.Locker: paho.golang writes from several
// goroutines and holds the lock around the Writes of one packet.
type clientConn struct {
	*gws.Conn
	sync.Mutex
	r io.Reader
}

func (c *clientConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			typ, r, err := c.NextReader()
			if err != nil {
				return 0, err
			}
			if typ != gws.BinaryMessage {
				return 0, fmt.Errorf("unexpected message type %d", typ)
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if err == io.EOF {
			c.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

func (c *clientConn) Write(p []byte) (int, error) {
	if err := c.WriteMessage(gws.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *clientConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// dialWS opens a WebSocket to addr offering "mqtt"; writeBuf, if not 0,
// sets the client's write buffer (and so its frame size).
func dialWS(t *testing.T, url string, tlsc *tls.Config, writeBuf int) *clientConn {
	t.Helper()
	d := gws.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: waitTimeout, TLSClientConfig: tlsc, WriteBufferSize: writeBuf}
	ws, resp, err := d.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	resp.Body.Close()
	if got := ws.Subprotocol(); got != "mqtt" {
		t.Fatalf("subprotocol %q, want mqtt", got)
	}
	t.Cleanup(func() { ws.Close() })
	return &clientConn{Conn: ws}
}

// ---------------------------------------------------------------------------
// Raw MQTT 3.1.1 packets.
// ---------------------------------------------------------------------------

func remLen(n int) []byte {
	var b []byte
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			return b
		}
	}
}

func mqttString(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }

func packet(header byte, body []byte) []byte {
	return append(append([]byte{header}, remLen(len(body))...), body...)
}

func connectPkt(id string) []byte {
	body := append(mqttString("MQTT"), 4, 0x02, 0, 60)
	return packet(0x10, append(body, mqttString(id)...))
}

func subscribePkt(topic string) []byte {
	return packet(0x82, append(append([]byte{0, 1}, mqttString(topic)...), 0))
}

func publishPkt(topic string, payload []byte) []byte {
	return packet(0x30, append(mqttString(topic), payload...))
}

// readPacket reads one MQTT packet: its first byte and its body.
func readPacket(t *testing.T, r *bufio.Reader) (byte, []byte) {
	t.Helper()
	h, err := r.ReadByte()
	if err != nil {
		t.Fatalf("read packet: %v", err)
	}
	n, mul := 0, 1
	for {
		b, err := r.ReadByte()
		if err != nil {
			t.Fatalf("read remaining length: %v", err)
		}
		n += int(b&0x7f) * mul
		mul *= 128
		if b&0x80 == 0 {
			break
		}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		t.Fatalf("read packet body: %v", err)
	}
	return h, body
}

func expectPacket(t *testing.T, r *bufio.Reader, wantHeader byte, wantBody []byte) {
	t.Helper()
	h, body := readPacket(t, r)
	if h != wantHeader || !bytes.Equal(body, wantBody) {
		t.Fatalf("got packet 0x%02x (%d bytes), want 0x%02x (%d bytes)", h, len(body), wantHeader, len(wantBody))
	}
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

// TestPahoV311 round-trips a message with paho.mqtt.golang over ws and wss.
func TestPahoV311(t *testing.T) {
	cert, pool := testCert(t)
	for _, tc := range []struct {
		name   string
		scheme string
		opts   websocket.Options
		tlsc   *tls.Config
	}{
		{name: "ws", scheme: "ws"},
		{name: "wss", scheme: "wss", opts: websocket.Options{TLS: &tls.Config{Certificates: []tls.Certificate{cert}}},
			tlsc: &tls.Config{RootCAs: pool}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := startBroker(t, tc.opts)
			url := tc.scheme + "://" + addr + "/mqtt"
			connect := func(id string) mqtt.Client {
				o := mqtt.NewClientOptions().AddBroker(url).SetClientID(id).
					SetProtocolVersion(4).SetAutoReconnect(false).SetConnectTimeout(waitTimeout)
				if tc.tlsc != nil {
					o.SetTLSConfig(tc.tlsc)
				}
				c := mqtt.NewClient(o)
				if tok := c.Connect(); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
					t.Fatalf("connect %s: %v", id, tok.Error())
				}
				t.Cleanup(func() { c.Disconnect(100) })
				return c
			}
			sub, pub := connect("sub"), connect("pub")
			got := make(chan mqtt.Message, 1)
			if tok := sub.Subscribe("a/b", 1, func(_ mqtt.Client, m mqtt.Message) { got <- m }); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
				t.Fatalf("subscribe: %v", tok.Error())
			}
			if tok := pub.Publish("a/b", 1, false, "hello over "+tc.name); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
				t.Fatalf("publish: %v", tok.Error())
			}
			select {
			case m := <-got:
				if m.Topic() != "a/b" || string(m.Payload()) != "hello over "+tc.name {
					t.Fatalf("got %s %q", m.Topic(), m.Payload())
				}
			case <-time.After(waitTimeout):
				t.Fatal("no message")
			}
		})
	}
}

// TestPahoV5 round-trips a message with paho.golang over a gorilla client
// connection.
func TestPahoV5(t *testing.T) {
	addr := startBroker(t, websocket.Options{})
	url := "ws://" + addr + "/mqtt"
	got := make(chan *paho.Publish, 1)
	connect := func(id string) *paho.Client {
		c := paho.NewClient(paho.ClientConfig{
			ClientID: id,
			Conn:     dialWS(t, url, nil, 0),
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
				got <- pr.Packet
				return true, nil
			}},
		})
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		ca, err := c.Connect(ctx, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30})
		if err != nil || ca.ReasonCode != 0 {
			t.Fatalf("connect %s: %v (%v)", id, err, ca)
		}
		t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
		return c
	}
	sub, pub := connect("sub5"), connect("pub5")
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := sub.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "v5/#", QoS: 1}}}); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	if _, err := pub.Publish(ctx, &paho.Publish{Topic: "v5/x", QoS: 1, Payload: []byte("five")}); err != nil {
		t.Fatalf("publish: %v", err)
	}
	select {
	case p := <-got:
		if p.Topic != "v5/x" || string(p.Payload) != "five" {
			t.Fatalf("got %s %q", p.Topic, p.Payload)
		}
	case <-ctx.Done():
		t.Fatal("no message")
	}
}

// TestFraming checks that the stream of MQTT packets is independent of
// WebSocket message and frame boundaries.
func TestFraming(t *testing.T) {
	addr := startBroker(t, websocket.Options{})
	url := "ws://" + addr + "/mqtt"
	large := bytes.Repeat([]byte("0123456789abcdef"), 200<<10/16) // 200 KiB

	// split sends b as binary messages of at most n bytes each.
	split := func(t *testing.T, c *clientConn, b []byte, n int) {
		t.Helper()
		for len(b) > 0 {
			k := min(n, len(b))
			if err := c.WriteMessage(gws.BinaryMessage, b[:k]); err != nil {
				t.Fatalf("write: %v", err)
			}
			b = b[k:]
		}
	}
	for _, tc := range []struct {
		name     string
		writeBuf int // client write buffer: frames of about this size
		send     func(t *testing.T, c *clientConn, pkts ...[]byte)
		payload  []byte
	}{
		{
			name: "several packets in one frame",
			send: func(t *testing.T, c *clientConn, pkts ...[]byte) {
				if err := c.WriteMessage(gws.BinaryMessage, bytes.Join(pkts, nil)); err != nil {
					t.Fatalf("write: %v", err)
				}
			},
			payload: []byte("small"),
		},
		{
			name: "packets split across messages",
			send: func(t *testing.T, c *clientConn, pkts ...[]byte) {
				for _, p := range pkts {
					split(t, c, p, 7)
				}
			},
			payload: []byte("byte by byte-ish"),
		},
		{
			name: "large packet split across messages",
			send: func(t *testing.T, c *clientConn, pkts ...[]byte) {
				for _, p := range pkts {
					split(t, c, p, 7000)
				}
			},
			payload: large,
		},
		{
			name:     "large packet in one message of many frames",
			writeBuf: 1024,
			send: func(t *testing.T, c *clientConn, pkts ...[]byte) {
				for _, p := range pkts {
					if err := c.WriteMessage(gws.BinaryMessage, p); err != nil {
						t.Fatalf("write: %v", err)
					}
				}
			},
			payload: large,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialWS(t, url, nil, tc.writeBuf)
			if err := c.SetReadDeadline(time.Now().Add(waitTimeout)); err != nil {
				t.Fatal(err)
			}
			r := bufio.NewReader(c)
			id := strings.ReplaceAll(tc.name, " ", "-")
			tc.send(t, c, connectPkt(id), subscribePkt("f/"+id), publishPkt("f/"+id, tc.payload))
			expectPacket(t, r, 0x20, []byte{0, 0})
			expectPacket(t, r, 0x90, []byte{0, 1, 0})
			expectPacket(t, r, 0x30, append(mqttString("f/"+id), tc.payload...))
		})
	}
}

// TestCloseCodes checks the close codes of a text frame (1003) and of a
// message over the read limit (1009).
func TestCloseCodes(t *testing.T) {
	for _, tc := range []struct {
		name     string
		opts     websocket.Options
		msgType  int
		msg      []byte
		wantCode int
	}{
		{name: "text frame", msgType: gws.TextMessage, msg: connectPkt("text"), wantCode: gws.CloseUnsupportedData},
		{name: "oversized message", opts: websocket.Options{MaxMessageSize: 1024}, msgType: gws.BinaryMessage,
			msg: make([]byte, 2048), wantCode: gws.CloseMessageTooBig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := startBroker(t, tc.opts)
			c := dialWS(t, "ws://"+addr+"/mqtt", nil, 0)
			if err := c.WriteMessage(tc.msgType, tc.msg); err != nil {
				t.Fatalf("write: %v", err)
			}
			if err := c.SetReadDeadline(time.Now().Add(waitTimeout)); err != nil {
				t.Fatal(err)
			}
			_, _, err := c.ReadMessage()
			if !gws.IsCloseError(err, tc.wantCode) {
				t.Fatalf("read: %v, want close %d", err, tc.wantCode)
			}
		})
	}
}

// TestHandshake sends raw HTTP handshakes and checks the answers.
func TestHandshake(t *testing.T) {
	const key, accept = "dGhlIHNhbXBsZSBub25jZQ==", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" // RFC 6455 §1.3
	v13 := func(extra ...string) []string {
		return append([]string{"Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: " + key, "Sec-WebSocket-Version: 13"}, extra...)
	}
	for _, tc := range []struct {
		name       string
		opts       websocket.Options
		path       string   // default /mqtt
		headers    []string // Host is added; "ORIGIN" in a value is replaced by http://HOST
		body       string
		wantStatus int
		wantProto  string // Sec-WebSocket-Protocol on 101
	}{
		{name: "version 13", headers: v13("Sec-WebSocket-Protocol: mqtt"), wantStatus: 101, wantProto: "mqtt"},
		{name: "version 13 mqttv3.1", headers: v13("Sec-WebSocket-Protocol: mqttv3.1"), wantStatus: 101, wantProto: "mqttv3.1"},
		{name: "version 13 several offered", headers: v13("Sec-WebSocket-Protocol: chat, mqtt"), wantStatus: 101, wantProto: "mqtt"},
		{name: "version 8 hybi-10", headers: []string{"Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: " + key,
			"Sec-WebSocket-Version: 8", "Sec-WebSocket-Origin: ORIGIN", "Sec-WebSocket-Protocol: mqtt"}, wantStatus: 101, wantProto: "mqtt"},
		{name: "version 8 bad origin", headers: []string{"Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: " + key,
			"Sec-WebSocket-Version: 8", "Sec-WebSocket-Origin: http://evil.example", "Sec-WebSocket-Protocol: mqtt"}, wantStatus: 403},
		{name: "hixie-76", headers: []string{"Upgrade: WebSocket", "Connection: Upgrade", "Origin: ORIGIN",
			"Sec-WebSocket-Key1: 4 @1  46546xW%0l 1 5", "Sec-WebSocket-Key2: 12998 5 Y3 1  .P00", "Sec-WebSocket-Protocol: mqtt"},
			body: "^n:ds[4U", wantStatus: 426},
		{name: "unknown version", headers: []string{"Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: " + key,
			"Sec-WebSocket-Version: 7", "Sec-WebSocket-Protocol: mqtt"}, wantStatus: 426},
		{name: "plain GET", headers: nil, wantStatus: 426},
		{name: "wrong subprotocol", headers: v13("Sec-WebSocket-Protocol: chat"), wantStatus: 400},
		{name: "no subprotocol", headers: v13(), wantStatus: 400},
		{name: "missing key", headers: []string{"Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13",
			"Sec-WebSocket-Protocol: mqtt"}, wantStatus: 400},
		{name: "wrong path", path: "/other", headers: v13("Sec-WebSocket-Protocol: mqtt"), wantStatus: 404},
		{name: "same host origin", headers: v13("Sec-WebSocket-Protocol: mqtt", "Origin: ORIGIN"), wantStatus: 101, wantProto: "mqtt"},
		{name: "bad origin", headers: v13("Sec-WebSocket-Protocol: mqtt", "Origin: http://evil.example"), wantStatus: 403},
		{name: "allowed origin", opts: websocket.Options{AllowedOrigins: []string{"https://app.example", "other.example:8443"}},
			headers: v13("Sec-WebSocket-Protocol: mqtt", "Origin: https://APP.example"), wantStatus: 101, wantProto: "mqtt"},
		{name: "allowed origin by host", opts: websocket.Options{AllowedOrigins: []string{"https://app.example", "other.example:8443"}},
			headers: v13("Sec-WebSocket-Protocol: mqtt", "Origin: https://other.example:8443"), wantStatus: 101, wantProto: "mqtt"},
		{name: "origin not in list", opts: websocket.Options{AllowedOrigins: []string{"https://app.example"}},
			headers: v13("Sec-WebSocket-Protocol: mqtt", "Origin: ORIGIN"), wantStatus: 403},
		{name: "any origin", opts: websocket.Options{AllowedOrigins: []string{"*"}},
			headers: v13("Sec-WebSocket-Protocol: mqtt", "Origin: http://evil.example"), wantStatus: 101, wantProto: "mqtt"},
		{name: "custom path", opts: websocket.Options{Path: "/ws"}, path: "/ws",
			headers: v13("Sec-WebSocket-Protocol: mqtt"), wantStatus: 101, wantProto: "mqtt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs logBuffer
			tc.opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			addr := startBroker(t, tc.opts)
			path := tc.path
			if path == "" {
				path = "/mqtt"
			}
			var req strings.Builder
			fmt.Fprintf(&req, "GET %s HTTP/1.1\r\nHost: %s\r\n", path, addr)
			for _, h := range tc.headers {
				req.WriteString(strings.ReplaceAll(h, "ORIGIN", "http://"+addr) + "\r\n")
			}
			req.WriteString("\r\n" + tc.body)

			nc, err := net.DialTimeout("tcp", addr, waitTimeout)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			if err := nc.SetDeadline(time.Now().Add(waitTimeout)); err != nil {
				t.Fatal(err)
			}
			if _, err := io.WriteString(nc, req.String()); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
			if err != nil {
				t.Fatalf("read response: %v", err)
			}
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.wantStatus)
			}
			// Each refusal is logged, with the remote address, before it
			// is answered.
			if refused := resp.StatusCode >= 400 && resp.StatusCode != 404; refused {
				if l := logs.String(); !strings.Contains(l, "handshake refused") || !strings.Contains(l, nc.LocalAddr().String()) {
					t.Errorf("log %q does not name the refusal and %s", l, nc.LocalAddr())
				}
			}
			switch resp.StatusCode {
			case 101:
				if got := resp.Header.Get("Sec-WebSocket-Accept"); got != accept {
					t.Errorf("Sec-WebSocket-Accept %q, want %q", got, accept)
				}
				if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != tc.wantProto {
					t.Errorf("Sec-WebSocket-Protocol %q, want %q", got, tc.wantProto)
				}
				if got := resp.Header.Get("Sec-WebSocket-Extensions"); got != "" {
					t.Errorf("Sec-WebSocket-Extensions %q, want none", got)
				}
			case 426:
				if got := resp.Header.Get("Sec-WebSocket-Version"); got != "13" {
					t.Errorf("Sec-WebSocket-Version %q, want 13", got)
				}
			case 400:
				body, _ := io.ReadAll(resp.Body)
				if len(bytes.TrimSpace(body)) == 0 {
					t.Errorf("400 without a body")
				}
			}
		})
	}
}

// TestListener drives a wss listener directly: the handed-over connection
// reports its TLS state, Close makes Serve return and leaves the connection
// open, and a ws connection does not claim TLS.
func TestListener(t *testing.T) {
	cert, pool := testCert(t)
	for _, tc := range []struct {
		name    string
		opts    websocket.Options
		scheme  string
		tlsc    *tls.Config
		wantTLS bool
	}{
		{name: "ws", scheme: "ws"},
		{name: "wss", scheme: "wss", opts: websocket.Options{TLS: &tls.Config{Certificates: []tls.Certificate{cert}}},
			tlsc: &tls.Config{RootCAs: pool}, wantTLS: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Logger = discard
			l := websocket.New("test", "127.0.0.1:0", tc.opts)
			if got := l.Protocol(); got != tc.scheme {
				t.Errorf("Protocol %q, want %q", got, tc.scheme)
			}
			if err := l.Listen(); err != nil {
				t.Fatal(err)
			}
			conns := make(chan net.Conn, 1)
			served := make(chan error, 1)
			go func() { served <- l.Serve(func(c net.Conn) { conns <- c }) }()

			client := dialWS(t, tc.scheme+"://"+l.Address()+"/mqtt", tc.tlsc, 0)
			var sc net.Conn
			select {
			case sc = <-conns:
			case <-time.After(waitTimeout):
				t.Fatal("no connection handed over")
			}
			defer sc.Close()

			st, ok := sc.(interface{ ConnectionState() tls.ConnectionState })
			if ok != tc.wantTLS {
				t.Fatalf("ConnectionState implemented: %v, want %v", ok, tc.wantTLS)
			}
			if ok && (!st.ConnectionState().HandshakeComplete || st.ConnectionState().Version < tls.VersionTLS12) {
				t.Errorf("TLS state %+v", st.ConnectionState())
			}
			if sc.RemoteAddr().String() != client.LocalAddr().String() {
				t.Errorf("RemoteAddr %v, want %v", sc.RemoteAddr(), client.LocalAddr())
			}

			if err := l.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			select {
			case err := <-served:
				if err != nil {
					t.Fatalf("Serve: %v", err)
				}
			case <-time.After(waitTimeout):
				t.Fatal("Serve did not return after Close")
			}

			// The connection outlives the listener, both ways.
			deadline := time.Now().Add(waitTimeout)
			if err := sc.SetDeadline(deadline); err != nil {
				t.Fatal(err)
			}
			if err := client.SetDeadline(deadline); err != nil {
				t.Fatal(err)
			}
			if _, err := client.Write([]byte("ping")); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 4)
			if _, err := io.ReadFull(sc, buf); err != nil || string(buf) != "ping" {
				t.Fatalf("server read %q, %v", buf, err)
			}
			if _, err := sc.Write([]byte("pong")); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(client, buf); err != nil || string(buf) != "pong" {
				t.Fatalf("client read %q, %v", buf, err)
			}

			// Close sends a normal close frame.
			if err := sc.Close(); err != nil {
				t.Fatalf("conn Close: %v", err)
			}
			if _, err := sc.Write([]byte("late")); !errors.Is(err, net.ErrClosed) {
				t.Errorf("write after close: %v, want net.ErrClosed", err)
			}
			if _, _, err := client.NextReader(); !gws.IsCloseError(err, gws.CloseNormalClosure) {
				t.Fatalf("client read: %v, want close 1000", err)
			}
		})
	}
}

// TestServeWaitsForHandle checks the accept.Lifecycle rules the listener
// follows: Serve returns only once a handle call running at Close has
// returned (the HTTP server's own Close does not wait for its handlers),
// so a broker that waits for Serve is never handed a connection after;
// and errors name the listener as the stream listeners' do.
func TestServeWaitsForHandle(t *testing.T) {
	l := websocket.New("test", "127.0.0.1:0", websocket.Options{Logger: discard})
	if err := l.Serve(func(net.Conn) {}); err == nil || err.Error() != `ws listener "test": serve called before listen` {
		t.Errorf("Serve before Listen = %v", err)
	}
	if err := l.Listen(); err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan net.Conn, 1), make(chan struct{})
	served := make(chan error, 1)
	go func() {
		served <- l.Serve(func(c net.Conn) {
			entered <- c
			<-release
		})
	}()
	dialWS(t, "ws://"+l.Address()+"/mqtt", nil, 0)
	select {
	case c := <-entered:
		defer c.Close()
	case <-time.After(waitTimeout):
		t.Fatal("no connection handed over")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// Without the wait Serve returns at once, well within this window.
	select {
	case err := <-served:
		t.Fatalf("Serve returned (%v) while handle was running", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Serve did not return once handle had")
	}
	if err := l.Listen(); err == nil || err.Error() != `ws listener "test": listen: use of closed network connection` {
		t.Errorf("Listen after Close = %v", err)
	}
}

// remoteHook records the ClientInfo.Remote each client authenticated with.
type remoteHook struct {
	mu      sync.Mutex
	remotes map[string]string // client ID → remote
}

func (h *remoteHook) ID() string            { return "remote-recorder" }
func (h *remoteHook) Events() core.EventSet { return core.Events(core.EventAuthenticate) }
func (h *remoteHook) Authenticate(_ context.Context, cl *core.ClientInfo, _ *core.Credentials) core.Verdict {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.remotes[cl.ID] = cl.Remote
	return core.Next
}

// TestProxyProtocol sends a PROXY header before the HTTP upgrade: the
// address it carries reaches the hooks, and a connection without one, or
// from a peer not in ProxyTrusted, is closed with a log line naming its
// address and the cause.
func TestProxyProtocol(t *testing.T) {
	var logs logBuffer
	srv, err := core.New(core.Options{AllowAnonymous: true, SysInterval: -1, Logger: discard})
	if err != nil {
		t.Fatalf("core.New: %v", err)
	}
	hook := &remoteHook{remotes: map[string]string{}}
	if err := srv.AddHook(hook, 0); err != nil {
		t.Fatalf("AddHook: %v", err)
	}
	addr := mqtttest.Serve(t, srv, websocket.New("ws", "127.0.0.1:0", websocket.Options{ProxyProtocol: true,
		ProxyTrusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, Logger: slog.New(slog.NewTextHandler(&logs, nil))}))
	v2 := pp.HeaderProxyFromAddrs(2, &net.TCPAddr{IP: net.ParseIP("198.51.100.9"), Port: 41000},
		&net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 8083})
	v2b, err := v2.Format()
	if err != nil {
		t.Fatal(err)
	}
	v1 := []byte("PROXY TCP4 203.0.113.7 127.0.0.1 40000 8083\r\n")
	for _, tc := range []struct {
		name       string
		from       string // the client's address; "" is 127.0.0.1, the trusted one
		header     []byte
		wantRemote string // "" means refused
		wantCause  string // in the refusal's log line
	}{
		{name: "v1", header: v1, wantRemote: "203.0.113.7:40000"},
		{name: "v2", header: v2b, wantRemote: "198.51.100.9:41000"},
		{name: "no header", wantCause: "missing or invalid PROXY protocol header"},
		{name: "untrusted", from: "127.0.0.2", header: v1, wantCause: "127.0.0.2 is not a trusted PROXY sender"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var local string
			nd := &net.Dialer{}
			if tc.from != "" {
				nd.LocalAddr = &net.TCPAddr{IP: net.ParseIP(tc.from)}
			}
			d := gws.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: waitTimeout,
				NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
					nc, err := nd.DialContext(ctx, network, addr)
					if err != nil {
						return nil, err
					}
					local = nc.LocalAddr().String()
					if _, err := nc.Write(tc.header); err != nil {
						nc.Close()
						return nil, err
					}
					return nc, nil
				}}
			ws, resp, err := d.Dial("ws://"+addr+"/mqtt", nil)
			if tc.wantRemote == "" {
				if err == nil {
					ws.Close()
					t.Fatal("upgrade without a PROXY header succeeded")
				}
				if l := logs.String(); !strings.Contains(l, tc.wantCause) || !strings.Contains(l, "remote="+local) {
					t.Errorf("log %q does not name the refusal (%s) and %s", l, tc.wantCause, local)
				}
				return
			}
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			resp.Body.Close()
			defer ws.Close()
			c := &clientConn{Conn: ws}
			if err := c.SetDeadline(time.Now().Add(waitTimeout)); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Write(connectPkt(tc.name)); err != nil {
				t.Fatal(err)
			}
			expectPacket(t, bufio.NewReader(c), 0x20, []byte{0, 0})
			hook.mu.Lock()
			got := hook.remotes[tc.name]
			hook.mu.Unlock()
			if got != tc.wantRemote {
				t.Errorf("hook saw remote %q, want %q", got, tc.wantRemote)
			}
		})
	}
}

// TestProxyProtocolNeedsTrusted checks that Listen refuses ProxyProtocol
// without ProxyTrusted, rather than serving a listener that refuses every
// connection (or, as it once did, trusts every peer's header).
func TestProxyProtocolNeedsTrusted(t *testing.T) {
	l := websocket.New("ws", "127.0.0.1:0", websocket.Options{ProxyProtocol: true, Logger: discard})
	if err := l.Listen(); !errors.Is(err, proxyproto.ErrNoTrusted) {
		l.Close()
		t.Fatalf("Listen: %v, want ErrNoTrusted", err)
	}
}

// TestMaxConnections checks Options.Limits: a connection over the limit is
// closed before its HTTP request, and logged.
func TestMaxConnections(t *testing.T) {
	var logs logBuffer
	addr := startBroker(t, websocket.Options{Limits: limit.Options{MaxConnections: 1},
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	first, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	// The first connection holds the slot once the server has answered a
	// request on it.
	fmt.Fprintf(first, "GET /nothing HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
	_ = first.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := first.Read(make([]byte, 1)); err != nil {
		t.Fatalf("first connection: %v", err)
	}
	second, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	_ = second.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := second.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("second connection: read = %v, want EOF", err)
	}
	if out := logs.String(); !strings.Contains(out, "remote="+second.LocalAddr().String()) ||
		!strings.Contains(out, "max_connections=1") {
		t.Errorf("log lacks the refused connection:\n%s", out)
	}
}
