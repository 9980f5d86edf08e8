package accept

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
)

// Lifecycle is the state a listener goes through: bound once, served once,
// closed once. It gives every listener the same rules: Bind after Close
// fails, Serve before Bind fails, Serve twice fails, Serve after Close
// returns nil, and Close is idempotent. A stream listener (tcp, unix)
// serves with Serve, which runs Loop; one that speaks HTTP (websocket,
// admin) with ServeHTTP, which runs an http.Server under the same rules.
// Either way Serve returns only once no handler runs any more, and no
// handler starts after it has returned, so the server that calls Serve
// can wait for it. It is safe for concurrent use. Kind and ID name the
// listener in errors ("tcp listener \"mqtt\": …").
type Lifecycle struct {
	Kind, ID string

	mu      sync.Mutex
	ln      net.Listener
	serving bool
	closed  bool
	done    chan struct{} // closed by Close

	// The HTTP server StartHTTP or ServeHTTP runs; see http.go.
	hs       *http.Server
	stopped  chan struct{}  // closed once hs has stopped and its handlers have returned
	hsErr    error          // why hs stopped, set before stopped is closed
	handlers sync.WaitGroup // hs's handlers running
	draining bool           // hs has stopped: no handler may start
}

func (s *Lifecycle) errorf(format string, args ...any) error {
	return fmt.Errorf("%s listener %q: "+format, append([]any{s.Kind, s.ID}, args...)...)
}

// doneLocked returns the channel Close closes, making it on first use.
func (s *Lifecycle) doneLocked() chan struct{} {
	if s.done == nil {
		s.done = make(chan struct{})
	}
	return s.done
}

// Bind calls open, under the lifecycle's lock, and keeps the listener it
// returns. open's error is returned as it is.
func (s *Lifecycle) Bind(open func() (net.Listener, error)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return s.errorf("listen: %w", net.ErrClosed)
	case s.ln != nil:
		return s.errorf("already listening on %s", s.ln.Addr())
	}
	ln, err := open()
	if err != nil {
		return err
	}
	s.ln = ln
	return nil
}

// Addr returns the bound address, or nil before Bind.
func (s *Lifecycle) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Serve runs Loop on the bound listener until Close. It returns nil once
// closed (also when closed before Serve), and an error if Bind has not
// succeeded, Serve is already running, or Accept fails for good.
func (s *Lifecycle) Serve(handle func(net.Conn)) error {
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		return nil
	case s.ln == nil:
		s.mu.Unlock()
		return s.errorf("serve called before listen")
	case s.serving || s.hs != nil:
		s.mu.Unlock()
		return s.errorf("already serving")
	}
	s.serving = true
	ln, done := s.ln, s.doneLocked()
	s.mu.Unlock()

	if err := Loop(ln, done, handle); err != nil {
		return s.errorf("%w", err)
	}
	return nil
}

// Serving reports whether Serve or ServeHTTP has been called, past its
// checks, and Close has not.
func (s *Lifecycle) Serving() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.serving && !s.closed
}

// Close stops accepting and makes Serve return (once the handlers running
// have returned: Close itself does not wait for them, so a handler may
// call it). Connections already handed over stay open; the HTTP server's
// own connections (requests in progress, idle keep-alive ones) are
// closed. Calling it again does nothing.
func (s *Lifecycle) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	close(s.doneLocked())
	var err error
	switch {
	case s.hs != nil:
		// Closes ln too, also when hs.Serve has not started yet (it
		// then returns at once and closes ln itself).
		err = s.hs.Close()
	case s.ln != nil:
		err = s.ln.Close()
	}
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return s.errorf("close: %w", err)
	}
	return nil
}
