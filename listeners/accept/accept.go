// Package accept is the accept loop the stream listeners (tcp, unix)
// share: it hands each connection over and rides out temporary Accept
// errors (descriptor exhaustion, aborted connections) with a bounded
// backoff instead of spinning or giving up.
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
	var backoff time.Duration
	for {
		conn, err := ln.Accept()
		if err == nil {
			backoff = 0
			handle(conn)
			continue
		}
		select {
		case <-done:
			return nil
		default:
		}
		if !Temporary(err) {
			return fmt.Errorf("accept: %w", err)
		}
		backoff = min(max(2*backoff, minBackoff), maxBackoff)
		t := time.NewTimer(backoff)
		select {
		case <-done:
			t.Stop()
			return nil
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
