package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// testCert returns a self-signed certificate for 127.0.0.1.
func testCert(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "vanemq-bench test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("create certificate: %v", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// testListener is a core.Listener for the transports vanemq does not serve
// yet: TLS, and WebSocket (ws, wss) on path /mqtt, whose connections it
// adapts with the tool's own wsConn.
type testListener struct {
	proto string
	tls   *tls.Config // tls and wss
	ln    net.Listener
	srv   *http.Server // ws and wss
}

// ID returns the transport's name.
func (l *testListener) ID() string { return l.proto }

// Protocol returns the transport's name.
func (l *testListener) Protocol() string { return l.proto }

// Address returns the bound address.
func (l *testListener) Address() string { return l.ln.Addr().String() }

// Listen binds 127.0.0.1:0, with TLS for tls and wss.
func (l *testListener) Listen() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	if l.tls != nil {
		ln = tls.NewListener(ln, l.tls)
	}
	l.ln = ln
	return nil
}

// Serve hands the broker each TLS connection, or each WebSocket upgraded
// on /mqtt, until Close.
func (l *testListener) Serve(handle func(net.Conn)) error {
	if l.proto == transportTLS {
		for {
			c, err := l.ln.Accept()
			if err != nil {
				return nil
			}
			handle(c)
		}
	}
	up := websocket.Upgrader{Subprotocols: []string{"mqtt"}}
	mux := http.NewServeMux()
	mux.HandleFunc("/mqtt", func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		handle(newWSConn(ws))
	})
	l.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	if err := l.srv.Serve(l.ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Close stops accepting.
func (l *testListener) Close() error {
	if l.srv != nil {
		return l.srv.Close()
	}
	return l.ln.Close()
}

// TestBenchTransports runs a short QoS 1 pairs scenario over TLS, ws and
// wss, through the tool's dialer and WebSocket adapter.
func TestBenchTransports(t *testing.T) {
	cert := testCert(t)
	serverTLS := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	cases := []struct {
		transport string
		tls       *tls.Config
	}{
		{transportTLS, serverTLS},
		{transportWS, nil},
		{transportWSS, serverTLS},
	}
	for _, tc := range cases {
		t.Run(tc.transport, func(t *testing.T) {
			t.Parallel()
			addr := startBenchBroker(t, &testListener{proto: tc.transport, tls: tc.tls})
			res := runBenchJSON(t, "-scenario", "pairs", "-pairs", "2", "-qos", "1", "-mqtt", "5",
				"-transport", tc.transport, "-tls-insecure", "-addr", addr,
				"-duration", "200ms", "-warmup", "0", "-drain", "10s")
			if res.Transport != tc.transport {
				t.Errorf("transport %q, want %q", res.Transport, tc.transport)
			}
			if res.Received <= 0 || res.Received != res.Expected {
				t.Errorf("received %d of %d, want all and some", res.Received, res.Expected)
			}
		})
	}
	t.Run("tls-unverified", func(t *testing.T) {
		t.Parallel()
		addr := startBenchBroker(t, &testListener{proto: transportTLS, tls: serverTLS})
		var stdout, stderr bytes.Buffer
		code := runCLI(t.Context(), []string{"-scenario", "conns", "-conns", "1", "-transport", "tls", "-addr", addr}, &stdout, &stderr)
		if code != 1 || !strings.Contains(stderr.String(), "certificate") {
			t.Errorf("exit status %d, stderr %q: want 1 and a certificate error", code, stderr.String())
		}
	})
}
