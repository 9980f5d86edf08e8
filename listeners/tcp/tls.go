package tcp

import (
	"crypto/tls"
	"net"
)

// NewTLS returns a listener like New whose connections are TLS: Protocol
// is "tls" and every connection handed to Serve's handle is a *tls.Conn
// wrapping the accepted TCP connection, so the server can read its
// ConnectionState (the verified client certificates under mTLS) once the
// handshake is done. cfg must carry a certificate (Certificates,
// GetCertificate or GetConfigForClient; see the tlsfiles package) and must
// not be changed after Listen. NewTLS panics if cfg is nil.
//
// The accept loop never runs the handshake: it happens lazily, on the
// first Read by the goroutine that reads the connection (in vanemq, the
// core's reader waiting for CONNECT, under the connect timeout's read
// deadline). So a slow or failing client cannot stall Accept, and a failed
// handshake surfaces as that first read's error, which the core logs as
// "reading CONNECT failed" with the TLS error as the cause (a client that
// hangs up mid-handshake is logged at debug level as "connection closed
// before CONNECT").
func NewTLS(id, address string, cfg *tls.Config) *Listener {
	if cfg == nil {
		panic("tcp: NewTLS with a nil *tls.Config")
	}
	l := New(id, address)
	l.tls = cfg
	return l
}

// WithCertUsername makes a TLS listener take each client's identity from
// its verified client certificate, as Mosquitto's use_identity_as_username
// does: the certificate's Common Name becomes the MQTT username, and the
// server counts the client as authenticated by the TLS handshake (see
// core.CertIdentity). Use it with a required, verified client certificate
// (tlsfiles.Files.RequireClientCert). Call it before Listen.
func (l *Listener) WithCertUsername() *Listener {
	l.certUser = true
	return l
}

// certConn is a TLS connection whose verified client certificate names the
// client (core.CertIdentity).
type certConn struct{ *tls.Conn }

// CertIdentity returns the Common Name of the verified client certificate.
func (c certConn) CertIdentity() (string, bool) {
	st := c.ConnectionState()
	if len(st.VerifiedChains) == 0 || len(st.PeerCertificates) == 0 {
		return "", false
	}
	cn := st.PeerCertificates[0].Subject.CommonName
	return cn, cn != ""
}

// certListener hands out TLS connections as certConns.
type certListener struct{ net.Listener }

// Accept implements net.Listener.
func (l certListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*tls.Conn); ok {
		return certConn{tc}, nil
	}
	return c, nil
}
