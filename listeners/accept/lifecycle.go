package accept

import (
	"errors"
	"fmt"
	"net"
	"sync"
)

// Lifecycle is the state a stream listener (tcp, unix) goes through: bound
// once, served once, closed once. It gives every such listener the same
// rules: Bind after Close fails, Serve before Bind fails, Serve twice
// fails, Serve after Close returns nil at once, and Close is idempotent.
// It is safe for concurrent use. Kind and ID name the listener in errors
// ("tcp listener \"mqtt\": …").
type Lifecycle struct {
	Kind, ID string

	mu      sync.Mutex
	ln      net.Listener
	serving bool
	closed  bool
	done    chan struct{} // closed by Close
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
	case s.serving:
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

// Close stops accepting and makes Serve return; connections already handed
// over stay open. Calling it again does nothing.
func (s *Lifecycle) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	close(s.doneLocked())
	if s.ln == nil {
		return nil
	}
	if err := s.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return s.errorf("close: %w", err)
	}
	return nil
}
