package tcp

import "crypto/tls"

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
