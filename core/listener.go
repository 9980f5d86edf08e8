package core

import "net"

// Listener is a transport that accepts client connections and hands each one
// to the server as a net.Conn. TCP, TLS, WebSocket and Unix listeners live in
// the listeners/ packages; the core only knows this interface.
type Listener interface {
	// ID names the listener in logs and metrics ("tcp", "ws", …).
	ID() string
	// Protocol names the transport ("tcp", "tls", "ws", "wss", "unix").
	Protocol() string
	// Listen binds the listener's address. It is called once, before Serve.
	Listen() error
	// Address is the bound address (after Listen), e.g. "127.0.0.1:1883".
	Address() string
	// Serve accepts connections and calls handle for each, in its own
	// goroutine or not; handle does not block on the connection's lifetime.
	// Serve returns when the listener is closed.
	Serve(handle func(net.Conn)) error
	// Close stops accepting; connections already handed over are unaffected.
	Close() error
}

// InternalConn is implemented by a connection the process opens to its own
// broker through Server.ServeConn, such as a bridge's local side: the
// client is the broker's own. Its CONNECT is neither authenticated nor
// refused by the Authenticate and Connect hooks, its publishes and
// subscriptions are not authorized by hooks (the other hooks see it as any
// client), and it gets the policy the connection gives. Its client ID
// must begin with InternalIDPrefix, which network clients may not use, so
// that no network client can take its session over.
type InternalConn interface {
	InternalPolicy() ClientPolicy
}

// InternalIDPrefix begins the client ID of every internal connection
// (InternalConn), and of no other.
const InternalIDPrefix = "$internal/"

// CertIdentity is implemented by connections whose verified TLS client
// certificate names the client (a TLS listener configured to take the
// username from the certificate, like Mosquitto's use_identity_as_username).
// The server then uses the returned name as the client's username, ignoring
// the one in CONNECT, and counts the client as authenticated: the
// Authenticate hooks are not asked, but the Connect and authorization hooks
// are. ok is false when there is no verified certificate, and the client is
// refused with Not authorized.
type CertIdentity interface {
	CertIdentity() (name string, ok bool)
}
