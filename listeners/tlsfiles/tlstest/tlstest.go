// Package tlstest generates a throw-away PKI for tests of TLS listeners: a
// CA, server certificates for 127.0.0.1 and a client certificate, written
// as PEM files into a test's temporary directory.
package tlstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// ClientCN is the Common Name of the client certificate PKI makes.
const ClientCN = "test-client"

// PKI is a test CA with a server and a client certificate, on disk.
type PKI struct {
	// Dir is the directory holding the files.
	Dir string
	// CAFile is the CA certificate, PEM; CAPool holds it.
	CAFile string
	CAPool *x509.CertPool
	// ServerCert and ServerKey are a certificate for 127.0.0.1 (and
	// "localhost"), Common Name "server-1", signed by the CA.
	ServerCert, ServerKey string
	// ClientCert and ClientKey are a client certificate with Common Name
	// ClientCN, signed by the CA; Client is the same as a tls.Certificate.
	ClientCert, ClientKey string
	Client                tls.Certificate

	ca    *x509.Certificate
	caKey *ecdsa.PrivateKey
	t     testing.TB
}

// New creates a PKI in a fresh t.TempDir. It fails the test on error.
func New(t testing.TB) *PKI {
	t.Helper()
	p := &PKI{Dir: t.TempDir(), t: t}
	p.caKey = newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: "vanemq test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &p.caKey.PublicKey, p.caKey)
	if err != nil {
		t.Fatalf("tlstest: create CA: %v", err)
	}
	if p.ca, err = x509.ParseCertificate(der); err != nil {
		t.Fatalf("tlstest: parse CA: %v", err)
	}
	p.CAPool = x509.NewCertPool()
	p.CAPool.AddCert(p.ca)
	p.CAFile = filepath.Join(p.Dir, "ca.pem")
	p.write(p.CAFile, "CERTIFICATE", der)
	p.ServerCert, p.ServerKey = p.Issue("server-1", false)
	p.ClientCert, p.ClientKey = p.Issue(ClientCN, true)
	if p.Client, err = tls.LoadX509KeyPair(p.ClientCert, p.ClientKey); err != nil {
		t.Fatalf("tlstest: load client cert: %v", err)
	}
	return p
}

// Issue signs a new certificate with Common Name cn, for client
// authentication if client, else for a server at 127.0.0.1 and localhost,
// and writes it and its key to cn.pem and cn-key.pem in Dir.
func (p *PKI) Issue(cn string, client bool) (certFile, keyFile string) {
	p.t.Helper()
	key := newKey(p.t)
	tmpl := &x509.Certificate{
		SerialNumber: serial(p.t),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	if client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		tmpl.IPAddresses, tmpl.DNSNames = nil, nil
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		p.t.Fatalf("tlstest: issue %s: %v", cn, err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		p.t.Fatalf("tlstest: marshal key: %v", err)
	}
	certFile = filepath.Join(p.Dir, cn+".pem")
	keyFile = filepath.Join(p.Dir, cn+"-key.pem")
	p.write(certFile, "CERTIFICATE", der)
	p.write(keyFile, "PRIVATE KEY", kder)
	return certFile, keyFile
}

// ClientConfig returns a client *tls.Config that trusts the CA, with the
// client certificate if withCert.
func (p *PKI) ClientConfig(withCert bool) *tls.Config {
	cfg := &tls.Config{RootCAs: p.CAPool, ServerName: "127.0.0.1"}
	if withCert {
		cfg.Certificates = []tls.Certificate{p.Client}
	}
	return cfg
}

func (p *PKI) write(file, typ string, der []byte) {
	p.t.Helper()
	data := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
	if err := os.WriteFile(file, data, 0o600); err != nil {
		p.t.Fatalf("tlstest: %v", err)
	}
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("tlstest: generate key: %v", err)
	}
	return k
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatalf("tlstest: serial: %v", err)
	}
	return n
}
