package core

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"testing"
)

// TestIdentityOf: a session's owner is the user name and, under mTLS, the
// verified certificate's subject; an unverified certificate (a listener
// that does not ask for client certificates) adds nothing.
func TestIdentityOf(t *testing.T) {
	cert := &x509.Certificate{Subject: pkix.Name{CommonName: "dev-1", Organization: []string{"Acme"}}}
	verified := &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}, VerifiedChains: [][]*x509.Certificate{{cert}}}
	unverified := &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}}
	tests := []struct {
		name string
		cl   ClientInfo
		want Identity
		text string
	}{
		{"anonymous", ClientInfo{ID: "c"}, Identity{}, "anonymous"},
		{"user", ClientInfo{Username: "alice"}, Identity{Username: "alice"}, `user "alice"`},
		{"verified certificate", ClientInfo{TLS: verified}, Identity{CertSubject: "CN=dev-1,O=Acme"}, `certificate "CN=dev-1,O=Acme"`},
		{"user and certificate", ClientInfo{Username: "a", TLS: verified}, Identity{Username: "a", CertSubject: "CN=dev-1,O=Acme"},
			`user "a" with certificate "CN=dev-1,O=Acme"`},
		{"unverified certificate", ClientInfo{Username: "a", TLS: unverified}, Identity{Username: "a"}, `user "a"`},
		{"TLS without certificate", ClientInfo{Username: "a", TLS: &tls.ConnectionState{}}, Identity{Username: "a"}, `user "a"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := identityOf(&tc.cl)
			if got != tc.want {
				t.Errorf("identityOf = %+v, want %+v", got, tc.want)
			}
			if got.String() != tc.text {
				t.Errorf("String() = %q, want %q", got.String(), tc.text)
			}
		})
	}
}

// TestForeignSessionPolicy parses the config's words and refuses others.
func TestForeignSessionPolicy(t *testing.T) {
	for _, p := range []ForeignSessionPolicy{ForeignSessionDiscard, ForeignSessionRefuse} {
		got, err := ParseForeignSessionPolicy(p.String())
		if err != nil || got != p {
			t.Errorf("ParseForeignSessionPolicy(%q) = %v, %v", p.String(), got, err)
		}
	}
	if _, err := ParseForeignSessionPolicy("takeover"); err == nil {
		t.Error("ParseForeignSessionPolicy accepted takeover")
	}
}
