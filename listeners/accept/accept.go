// Package accept is what every listener (tcp, unix, websocket, admin)
// shares: the accept loop, which hands each connection over and rides out
// temporary Accept errors (descriptor exhaustion, aborted connections) with
// a bounded backoff instead of spinning or giving up, and Lifecycle, the
// rules for binding, serving and closing a listener, either with that loop
// (Serve) or with an HTTP server (ServeHTTP).
package accept

import (
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"
)

// Backoff bounds for temporary Accept errors (such as running out of file
// descriptors): the first retry waits minBackoff, each further consecutive
// failure doubles the wait, up to maxBackoff.
const (
	minBackoff = 5 * time.Millisecond
	maxBackoff = time.Second
)

// Loop accepts connections from ln and calls handle for each, on Loop's
// goroutine, until done is closed: then it returns nil. Temporary Accept
// errors are retried after a backoff that closing done interrupts; any
// other Accept error is returned.
func Loop(ln net.Listener, done <-chan struct{}, handle func(net.Conn)) error {
	r := retrying{Listener: ln, done: done}
	for {
		conn, err := r.Accept()
		if err != nil {
			select {
			case <-done:
				return nil
			default:
				return err
			}
		}
		handle(conn)
	}
}

// retrying is a listener whose Accept rides out temporary errors as Loop
// does, for a server that runs an accept loop of its own (an http.Server,
// whose own retries give up on ENOBUFS and ENOMEM): Accept returns a
// connection, or, once done is closed or on an error that is not
// temporary, an error wrapped as "accept: …".
type retrying struct {
	net.Listener
	done <-chan struct{}
}

// Accept waits for a connection, retrying temporary errors with a backoff
// of minBackoff doubling up to maxBackoff, which closing done interrupts.
func (r retrying) Accept() (net.Conn, error) {
	var backoff time.Duration
	for {
		conn, err := r.Listener.Accept()
		if err == nil {
			return conn, nil
		}
		select {
		case <-r.done:
			return nil, fmt.Errorf("accept: %w", err)
		default:
		}
		if !Temporary(err) {
			return nil, fmt.Errorf("accept: %w", err)
		}
		backoff = min(max(2*backoff, minBackoff), maxBackoff)
		t := time.NewTimer(backoff)
		select {
		case <-r.done:
			t.Stop()
			return nil, fmt.Errorf("accept: %w", net.ErrClosed)
		case <-t.C:
		}
	}
}

// Temporary reports whether an Accept error is worth retrying: time-outs and
// resource exhaustion (file descriptors, buffers, memory), and connections
// that were aborted or reset while queued.
func Temporary(err error) bool {
	if errors.Is(err, net.ErrClosed) {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	for _, errno := range []syscall.Errno{
		syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
		syscall.ECONNABORTED, syscall.ECONNRESET, syscall.EINTR, syscall.EAGAIN,
	} {
		if errors.Is(err, errno) {
			return true
		}
	}
	return false
}
