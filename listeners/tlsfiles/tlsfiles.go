// Package tlsfiles loads a server certificate, its private key and an
// optional client CA bundle from PEM files into a *tls.Config whose
// certificates can be swapped while the server runs (Reload).
//
// The *tls.Config returned by TLSConfig picks the current files' state per
// handshake through GetConfigForClient (and GetCertificate), so a Reload is
// seen by the next handshake; connections already established keep the
// certificate they were set up with and are not dropped.
//
// LoadClient reads the files of the client side (a CA bundle, an optional
// client certificate) the same way, for connections the broker makes.
package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
)

// Files names the PEM files of a TLS listener and its client
// authentication settings.
type Files struct {
	// Cert is the server certificate chain (leaf first), PEM.
	Cert string
	// Key is the server certificate's private key, PEM.
	Key string
	// ClientCA, if set, is a PEM bundle of CAs that sign client
	// certificates. A client that presents a certificate must have one
	// that verifies against it.
	ClientCA string
	// RequireClientCert refuses clients without a verified certificate
	// (mutual TLS). It needs ClientCA.
	RequireClientCert bool
	// MinVersion is the lowest TLS version accepted: "1.2" (the default
	// when empty) or "1.3".
	MinVersion string
}

// Config is a loaded TLS configuration. It is safe for concurrent use:
// handshakes may run while Reload swaps the files' contents.
type Config struct {
	files      Files
	minVersion uint16
	clientAuth tls.ClientAuthType

	mu    sync.Mutex // serialises Reload
	state atomic.Pointer[tls.Config]
}

// Load reads and checks the files and returns a Config serving them. The
// error names the file and what is wrong with it: unreadable, not PEM, a
// key that does not match the certificate, a bad MinVersion.
func Load(f Files) (*Config, error) {
	c := &Config{files: f}
	switch f.MinVersion {
	case "", "1.2":
		c.minVersion = tls.VersionTLS12
	case "1.3":
		c.minVersion = tls.VersionTLS13
	default:
		return nil, fmt.Errorf("tlsfiles: bad min_version %q: want \"1.2\" or \"1.3\"", f.MinVersion)
	}
	switch {
	case f.Cert == "" || f.Key == "":
		return nil, errors.New("tlsfiles: both a cert file and a key file are required")
	case f.RequireClientCert && f.ClientCA == "":
		return nil, errors.New("tlsfiles: require_client_cert needs a client CA file")
	case f.RequireClientCert:
		c.clientAuth = tls.RequireAndVerifyClientCert
	case f.ClientCA != "":
		c.clientAuth = tls.VerifyClientCertIfGiven
	default:
		c.clientAuth = tls.NoClientCert
	}
	if err := c.Reload(); err != nil {
		return nil, err
	}
	return c, nil
}

// Reload re-reads the files. On success the next handshake uses the new
// certificate and client CAs; connections already established are
// unaffected. On error the previous state stays in use and the error names
// the file at fault.
func (c *Config) Reload() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	cert, err := loadKeyPair(c.files.Cert, c.files.Key)
	if err != nil {
		return err
	}
	st := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   c.minVersion,
		ClientAuth:   c.clientAuth,
	}
	if c.files.ClientCA != "" {
		pool, err := loadCAs("client CA", c.files.ClientCA)
		if err != nil {
			return err
		}
		st.ClientCAs = pool
	}
	c.state.Store(st)
	return nil
}

// TLSConfig returns a *tls.Config for a server (tls.NewListener, tls.Server)
// that serves the files' current contents: every handshake reads the state
// of the latest successful Load or Reload. Each call returns a new
// *tls.Config the caller may adjust (NextProtos, for instance); fields that
// GetConfigForClient replaces (certificates, client CAs, ClientAuth,
// MinVersion) are taken from the files.
func (c *Config) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: c.minVersion,
		ClientAuth: c.clientAuth,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return &c.state.Load().Certificates[0], nil
		},
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			// A copy: the handshake records the outer config in the one
			// it gets, and several listeners may share c.
			return c.state.Load().Clone(), nil
		},
	}
}

// ClientFiles names the PEM files of a TLS client, such as the broker
// connecting to a storage server.
type ClientFiles struct {
	// CA, if set, is a PEM bundle of the CAs that sign the server's
	// certificate; without it the system's roots are used.
	CA string
	// Cert and Key, if set (both or neither), are the client's
	// certificate chain and private key, for servers that require one.
	Cert, Key string
	// ServerName is the name the server's certificate must carry; empty
	// means the host of the address dialled.
	ServerName string
}

// LoadClient reads and checks a client's files and returns its
// *tls.Config (TLS 1.2 or later). Unlike Load, the files are read once.
// Errors name the file at fault, as Load's do.
func LoadClient(f ClientFiles) (*tls.Config, error) {
	if (f.Cert == "") != (f.Key == "") {
		return nil, errors.New("tlsfiles: a client certificate needs both a cert file and a key file")
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: f.ServerName}
	if f.Cert != "" {
		cert, err := loadKeyPair(f.Cert, f.Key)
		if err != nil {
			return nil, err
		}
		c.Certificates = []tls.Certificate{cert}
	}
	if f.CA != "" {
		pool, err := loadCAs("CA", f.CA)
		if err != nil {
			return nil, err
		}
		c.RootCAs = pool
	}
	return c, nil
}

// loadKeyPair reads a certificate chain and its key, naming the file at
// fault in errors.
func loadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	certPEM, err := readPEM("cert", certFile, "CERTIFICATE")
	if err != nil {
		return tls.Certificate{}, err
	}
	keyPEM, err := readPEM("key", keyFile, "PRIVATE KEY")
	if err != nil {
		return tls.Certificate{}, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		if strings.Contains(err.Error(), "does not match") {
			return tls.Certificate{}, fmt.Errorf("tlsfiles: key file %q does not match cert file %q: %w", keyFile, certFile, err)
		}
		return tls.Certificate{}, fmt.Errorf("tlsfiles: cert file %q / key file %q: %w", certFile, keyFile, err)
	}
	return cert, nil // Go 1.23+ fills cert.Leaf
}

// loadCAs reads a bundle of CA certificates; what names the file in
// errors ("client CA").
func loadCAs(what, file string) (*x509.CertPool, error) {
	data, err := readPEM(what, file, "CERTIFICATE")
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		ca, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("tlsfiles: %s file %q: %w", what, file, err)
		}
		pool.AddCert(ca)
	}
	return pool, nil
}

// readPEM reads file and checks that it holds a PEM block whose type ends
// with typeSuffix ("CERTIFICATE", "PRIVATE KEY").
func readPEM(what, file, typeSuffix string) ([]byte, error) {
	if file == "" {
		return nil, fmt.Errorf("tlsfiles: no %s file given", what)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		// The *PathError already names the file.
		return nil, fmt.Errorf("tlsfiles: %s file: %w", what, err)
	}
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, fmt.Errorf("tlsfiles: %s file %q: no PEM %s block", what, file, typeSuffix)
		}
		if strings.HasSuffix(b.Type, typeSuffix) {
			return data, nil
		}
	}
}
