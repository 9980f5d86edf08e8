package core

import (
	"net"
	"time"
)

// The bounds of a lingering close.
const (
	// lingerTimeout is how long the broker goes on reading from a client
	// it has closed, waiting for the client to close too.
	lingerTimeout = time.Second
	// lingerBytes is the most it reads and discards meanwhile.
	lingerBytes = 1 << 20
)

// linger is the lingering close HTTP servers do, for a connection the broker
// ended with a last packet of its own (a DISCONNECT or a refusing CONNACK
// carrying the reason), whose write side finish has shut down (closeWrite),
// so that a FIN follows that packet: it reads and discards what the client
// still sends until the client closes too, for at most lingerTimeout and
// lingerBytes. Closing at once, with the client's bytes unread, would send
// a reset, and a client still writing would then often lose the packet
// that says why before it reads it. finish skips it when the broker is
// shutting down and for transports that cannot half-close (WebSocket,
// which has its own closing handshake).
func (c *client) linger() {
	_ = c.conn.SetReadDeadline(time.Now().Add(lingerTimeout))
	var buf [512]byte
	for n := 0; n < lingerBytes; {
		k, err := c.conn.Read(buf[:])
		n += k
		if err != nil {
			return // the client closed, or the time is up
		}
	}
}

// closeWrite shuts down the write side of nc's socket, through the
// listeners' wrappers (NetConn, as the connection limit's and crypto/tls's
// have, or Raw, as the PROXY protocol's has); a TLS connection sends its
// close_notify first. It reports false when nc has no socket to half-close.
func closeWrite(nc net.Conn) bool {
	for range 8 { // wrappers do not nest deeper
		switch c := nc.(type) {
		case *net.TCPConn:
			return c.CloseWrite() == nil
		case *net.UnixConn:
			return c.CloseWrite() == nil
		case interface {
			CloseWrite() error
			NetConn() net.Conn
		}: // *tls.Conn: its CloseWrite sends close_notify and leaves the socket open
			_ = c.CloseWrite()
			nc = c.NetConn()
		case interface{ NetConn() net.Conn }:
			nc = c.NetConn()
		case interface{ Raw() net.Conn }:
			nc = c.Raw()
		default:
			return false
		}
	}
	return false
}
