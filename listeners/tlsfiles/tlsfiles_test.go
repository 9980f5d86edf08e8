package tlsfiles_test

import (
	"crypto/tls"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vanemq/vanemq/listeners/tlsfiles"
	"github.com/vanemq/vanemq/listeners/tlsfiles/tlstest"
)

// handshake runs a TLS handshake over loopback TCP between a server using
// srv and a client using cli. It returns the Common Name of the server
// certificate the client saw and the client certificate chain the server
// saw, or the first error of either side.
func handshake(t *testing.T, srv, cli *tls.Config) (serverCN string, peers int, err error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		peers int
		err   error
	}
	done := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		tc := tls.Server(c, srv)
		if err := tc.Handshake(); err != nil {
			done <- result{err: err}
			return
		}
		// Under TLS 1.3 the client's handshake ends before the server
		// has checked its certificate: echo one byte so a refusal
		// reaches the client.
		b := make([]byte, 1)
		if _, err := io.ReadFull(tc, b); err == nil {
			tc.Write(b)
		}
		done <- result{peers: len(tc.ConnectionState().PeerCertificates)}
	}()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(), cli)
	if err == nil {
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		serverCN = c.ConnectionState().PeerCertificates[0].Subject.CommonName
		if _, err = c.Write([]byte{1}); err == nil {
			_, err = io.ReadFull(c, make([]byte, 1))
		}
	}
	r := <-done
	if err == nil {
		err = r.err
	}
	return serverCN, r.peers, err
}

func TestLoad(t *testing.T) {
	p := tlstest.New(t)
	tests := []struct {
		name      string
		files     tlsfiles.Files
		client    *tls.Config
		wantAuth  tls.ClientAuthType
		wantMin   uint16
		wantPeers int    // client certificates the server sees
		wantErr   string // handshake error, "" for none
	}{
		{"server only", tlsfiles.Files{Cert: p.ServerCert, Key: p.ServerKey},
			p.ClientConfig(false), tls.NoClientCert, tls.VersionTLS12, 0, ""},
		{"client CA, no client cert", tlsfiles.Files{Cert: p.ServerCert, Key: p.ServerKey, ClientCA: p.CAFile},
			p.ClientConfig(false), tls.VerifyClientCertIfGiven, tls.VersionTLS12, 0, ""},
		{"client CA, client cert", tlsfiles.Files{Cert: p.ServerCert, Key: p.ServerKey, ClientCA: p.CAFile},
			p.ClientConfig(true), tls.VerifyClientCertIfGiven, tls.VersionTLS12, 1, ""},
		{"required, client cert", tlsfiles.Files{Cert: p.ServerCert, Key: p.ServerKey, ClientCA: p.CAFile, RequireClientCert: true},
			p.ClientConfig(true), tls.RequireAndVerifyClientCert, tls.VersionTLS12, 1, ""},
		{"required, no client cert", tlsfiles.Files{Cert: p.ServerCert, Key: p.ServerKey, ClientCA: p.CAFile, RequireClientCert: true},
			p.ClientConfig(false), tls.RequireAndVerifyClientCert, tls.VersionTLS12, 0, "certificate"},
		{"min 1.3 refuses 1.2", tlsfiles.Files{Cert: p.ServerCert, Key: p.ServerKey, MinVersion: "1.3"},
			func() *tls.Config { c := p.ClientConfig(false); c.MaxVersion = tls.VersionTLS12; return c }(),
			tls.NoClientCert, tls.VersionTLS13, 0, "protocol version"},
		{"min 1.2 explicit", tlsfiles.Files{Cert: p.ServerCert, Key: p.ServerKey, MinVersion: "1.2"},
			p.ClientConfig(false), tls.NoClientCert, tls.VersionTLS12, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tlsfiles.Load(tt.files)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			cfg := c.TLSConfig()
			if cfg.ClientAuth != tt.wantAuth || cfg.MinVersion != tt.wantMin {
				t.Errorf("ClientAuth, MinVersion = %v, %x; want %v, %x", cfg.ClientAuth, cfg.MinVersion, tt.wantAuth, tt.wantMin)
			}
			if cfg.GetConfigForClient == nil || cfg.GetCertificate == nil {
				t.Error("TLSConfig lacks GetConfigForClient/GetCertificate: certificates could not be swapped live")
			}
			cn, peers, err := handshake(t, cfg, tt.client)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("handshake error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			if cn != "server-1" || peers != tt.wantPeers {
				t.Errorf("server CN, client certs seen = %q, %d; want server-1, %d", cn, peers, tt.wantPeers)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	p := tlstest.New(t)
	notPEM := filepath.Join(p.Dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello, not PEM\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(p.Dir, "missing.pem")
	unreadable := p.Dir // a directory: read fails with EISDIR
	_, otherKey := p.Issue("other", false)
	ok := tlsfiles.Files{Cert: p.ServerCert, Key: p.ServerKey}
	with := func(f func(*tlsfiles.Files)) tlsfiles.Files { g := ok; f(&g); return g }
	tests := []struct {
		name   string
		files  tlsfiles.Files
		want   []string // substrings of the error
		wantIs error
	}{
		{"cert missing", with(func(f *tlsfiles.Files) { f.Cert = missing }),
			[]string{"cert file", missing, "no such file"}, fs.ErrNotExist},
		{"cert unreadable", with(func(f *tlsfiles.Files) { f.Cert = unreadable }),
			[]string{"cert file", unreadable}, nil},
		{"cert not PEM", with(func(f *tlsfiles.Files) { f.Cert = notPEM }),
			[]string{"cert file", notPEM, "no PEM CERTIFICATE"}, nil},
		{"cert is a key", with(func(f *tlsfiles.Files) { f.Cert = p.ServerKey }),
			[]string{"cert file", p.ServerKey, "no PEM CERTIFICATE"}, nil},
		{"key missing", with(func(f *tlsfiles.Files) { f.Key = missing }),
			[]string{"key file", missing}, fs.ErrNotExist},
		{"key not PEM", with(func(f *tlsfiles.Files) { f.Key = notPEM }),
			[]string{"key file", notPEM, "no PEM PRIVATE KEY"}, nil},
		{"key does not match", with(func(f *tlsfiles.Files) { f.Key = otherKey }),
			[]string{"key file", otherKey, "does not match", p.ServerCert}, nil},
		{"client CA missing", with(func(f *tlsfiles.Files) { f.ClientCA = missing }),
			[]string{"client CA file", missing}, fs.ErrNotExist},
		{"client CA not PEM", with(func(f *tlsfiles.Files) { f.ClientCA = notPEM }),
			[]string{"client CA file", notPEM, "no PEM CERTIFICATE"}, nil},
		{"bad min_version", with(func(f *tlsfiles.Files) { f.MinVersion = "1.1" }),
			[]string{"bad min_version", `"1.1"`}, nil},
		{"require without CA", with(func(f *tlsfiles.Files) { f.RequireClientCert = true }),
			[]string{"require_client_cert needs a client CA"}, nil},
		{"no key", with(func(f *tlsfiles.Files) { f.Key = "" }),
			[]string{"cert file and a key file are required"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tlsfiles.Load(tt.files)
			if err == nil {
				t.Fatalf("Load succeeded (%v), want an error", c)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %v does not wrap %v", err, tt.wantIs)
			}
		})
	}
}

func TestReload(t *testing.T) {
	p := tlstest.New(t)
	// The listener's files are copies, so the test can overwrite them.
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
	c, err := tlsfiles.Load(tlsfiles.Files{Cert: certFile, Key: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	cfg := c.TLSConfig() // taken once, as a listener does

	server2Cert, server2Key := p.Issue("server-2", false)
	otherCert, _ := p.Issue("other", false)
	steps := []struct {
		name    string
		change  func()
		wantErr []string // Reload error substrings; nil for success
		wantCN  string   // server CN after the step
	}{
		{"initial", func() {}, nil, "server-1"},
		{"new cert", func() { install(server2Cert, server2Key) }, nil, "server-2"},
		{"key not PEM keeps old", func() { os.WriteFile(keyFile, []byte("garbage"), 0o600) },
			[]string{"key file", keyFile, "no PEM"}, "server-2"},
		{"mismatch keeps old", func() { install(otherCert, server2Key) },
			[]string{"does not match", keyFile, certFile}, "server-2"},
		{"cert removed keeps old", func() { os.Remove(certFile) },
			[]string{"cert file", certFile, "no such file"}, "server-2"},
		{"back to first", func() { install(p.ServerCert, p.ServerKey) }, nil, "server-1"},
	}
	for _, st := range steps {
		st.change()
		err := c.Reload()
		switch {
		case st.wantErr == nil && err != nil:
			t.Fatalf("%s: Reload: %v", st.name, err)
		case st.wantErr != nil && err == nil:
			t.Fatalf("%s: Reload succeeded, want an error", st.name)
		}
		for _, w := range st.wantErr {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: Reload error %q does not contain %q", st.name, err, w)
			}
		}
		cn, _, err := handshake(t, cfg, p.ClientConfig(false))
		if err != nil {
			t.Fatalf("%s: handshake: %v", st.name, err)
		}
		if cn != st.wantCN {
			t.Errorf("%s: server CN = %q, want %q", st.name, cn, st.wantCN)
		}
	}
}

// TestLoadClient checks a client configuration from files against a
// server that requires client certificates: the CA verifies the server,
// the certificate is presented, and ServerName is checked.
func TestLoadClient(t *testing.T) {
	p := tlstest.New(t)
	srv, err := tlsfiles.Load(tlsfiles.Files{Cert: p.ServerCert, Key: p.ServerKey, ClientCA: p.CAFile, RequireClientCert: true})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		files   tlsfiles.ClientFiles
		wantErr string // handshake error, "" for none
	}{
		{"CA and client cert", tlsfiles.ClientFiles{CA: p.CAFile, Cert: p.ClientCert, Key: p.ClientKey}, ""},
		{"server name", tlsfiles.ClientFiles{CA: p.CAFile, Cert: p.ClientCert, Key: p.ClientKey, ServerName: "localhost"}, ""},
		{"wrong server name", tlsfiles.ClientFiles{CA: p.CAFile, Cert: p.ClientCert, Key: p.ClientKey, ServerName: "elsewhere"}, "elsewhere"},
		{"no CA: system roots", tlsfiles.ClientFiles{Cert: p.ClientCert, Key: p.ClientKey}, "unknown authority"},
		{"no client cert", tlsfiles.ClientFiles{CA: p.CAFile}, "certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cli, err := tlsfiles.LoadClient(tt.files)
			if err != nil {
				t.Fatalf("LoadClient: %v", err)
			}
			if cli.MinVersion != tls.VersionTLS12 {
				t.Errorf("MinVersion = %x, want TLS 1.2", cli.MinVersion)
			}
			_, peers, err := handshake(t, srv.TLSConfig(), cli)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("handshake error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || peers != 1 {
				t.Fatalf("handshake: %v, %d client certificates seen; want 1", err, peers)
			}
		})
	}
}

func TestLoadClientErrors(t *testing.T) {
	p := tlstest.New(t)
	notPEM := filepath.Join(p.Dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello, not PEM\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(p.Dir, "missing.pem")
	tests := []struct {
		name   string
		files  tlsfiles.ClientFiles
		want   []string // substrings of the error
		wantIs error
	}{
		{"cert without key", tlsfiles.ClientFiles{Cert: p.ClientCert}, []string{"both a cert file and a key file"}, nil},
		{"key without cert", tlsfiles.ClientFiles{Key: p.ClientKey}, []string{"both a cert file and a key file"}, nil},
		{"CA missing", tlsfiles.ClientFiles{CA: missing}, []string{"CA file", missing}, fs.ErrNotExist},
		{"CA not PEM", tlsfiles.ClientFiles{CA: notPEM}, []string{"CA file", notPEM, "no PEM CERTIFICATE"}, nil},
		{"key does not match", tlsfiles.ClientFiles{Cert: p.ClientCert, Key: p.ServerKey},
			[]string{"key file", p.ServerKey, "does not match", p.ClientCert}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tlsfiles.LoadClient(tt.files)
			if err == nil {
				t.Fatalf("LoadClient succeeded (%v), want an error", c)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %v does not wrap %v", err, tt.wantIs)
			}
			if strings.Contains(err.Error(), "client CA") {
				t.Errorf("error %q calls the server's CA a client CA", err)
			}
		})
	}
}
