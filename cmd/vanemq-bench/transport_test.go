package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/listeners/tcp"
	mqttws "github.com/vanemq/vanemq/listeners/websocket"
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

// listenerFor returns the broker's own listener for transport (tls, ws or
// wss) on 127.0.0.1:0, serving with cfg where it takes TLS.
func listenerFor(transport string, cfg *tls.Config) core.Listener {
	switch transport {
	case transportTLS:
		return tcp.NewTLS(transport, "127.0.0.1:0", cfg)
	default:
		return mqttws.New(transport, "127.0.0.1:0", mqttws.Options{TLS: cfg, Logger: slog.New(slog.DiscardHandler)})
	}
}

// TestBenchTransports runs a short QoS 1 pairs scenario over TLS, ws and
// wss, through the tool's dialer, against the broker's own listeners.
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
			addr := startBenchBroker(t, listenerFor(tc.transport, tc.tls))
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
		addr := startBenchBroker(t, listenerFor(transportTLS, serverTLS))
		var stdout, stderr bytes.Buffer
		code := runCLI(t.Context(), []string{"-scenario", "conns", "-conns", "1", "-transport", "tls", "-addr", addr}, &stdout, &stderr)
		if code != 1 || !strings.Contains(stderr.String(), "certificate") {
			t.Errorf("exit status %d, stderr %q: want 1 and a certificate error", code, stderr.String())
		}
	})
}
