package accept

import (
	"errors"
	"net"
	"net/http"
)

// StartHTTP starts serving hs on the bound listener, on a goroutine of its
// own, until Close: for a listener that answers HTTP before the server
// calls its Serve (the admin listener's /healthz while the broker restores
// its state). ServeHTTP(hs) then waits for it. hs.Handler (nil meaning
// http.DefaultServeMux) is wrapped so that Serve can wait for the handlers
// running, and a request that arrives once the listener is closing gets
// 503. Accept errors are handled as Loop handles them: temporary ones are
// retried with its backoff, any other stops hs, and ServeHTTP returns it.
// StartHTTP fails before Bind, after Close, and when an HTTP server runs
// already.
func (s *Lifecycle) StartHTTP(hs *http.Server) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return s.errorf("serve: %w", net.ErrClosed)
	case s.ln == nil:
		return s.errorf("serve called before listen")
	case s.serving || s.hs != nil:
		return s.errorf("already serving")
	}
	s.startLocked(hs)
	return nil
}

// ServeHTTP serves hs on the bound listener until Close, under Serve's
// rules: nil once closed (also when closed before ServeHTTP), an error
// before Bind, when already serving, or when Accept fails for good. It
// returns only once every handler hs started has returned. When StartHTTP
// has started hs already, ServeHTTP waits for it; see StartHTTP for how hs
// is run.
func (s *Lifecycle) ServeHTTP(hs *http.Server) error {
	s.mu.Lock()
	if s.closed {
		// Still wait for a server StartHTTP started to finish.
		stopped := s.stopped
		s.mu.Unlock()
		if stopped != nil {
			<-stopped
		}
		return nil
	}
	switch {
	case s.ln == nil:
		s.mu.Unlock()
		return s.errorf("serve called before listen")
	case s.serving || (s.hs != nil && s.hs != hs):
		s.mu.Unlock()
		return s.errorf("already serving")
	}
	if s.hs == nil {
		s.startLocked(hs)
	}
	s.serving = true
	stopped := s.stopped
	s.mu.Unlock()

	<-stopped
	if s.hsErr != nil {
		return s.errorf("%w", s.hsErr)
	}
	return nil
}

// startLocked runs hs on s.ln until it stops, then waits for its handlers
// and closes s.stopped.
func (s *Lifecycle) startLocked(hs *http.Server) {
	next := hs.Handler
	if next == nil {
		next = http.DefaultServeMux
	}
	hs.Handler = s.track(next)
	s.hs, s.stopped = hs, make(chan struct{})
	ln, done := s.ln, s.doneLocked()
	go func() {
		err := hs.Serve(retrying{Listener: ln, done: done})
		select {
		case <-done:
			err = nil // Close stopped it, whatever Serve saw first
		default:
			if errors.Is(err, http.ErrServerClosed) {
				err = nil
			}
		}
		s.mu.Lock()
		s.draining = true
		s.mu.Unlock()
		s.handlers.Wait()
		s.hsErr = err
		close(s.stopped)
	}()
}

// track counts next's calls in s.handlers, and answers 503 once the
// listener is closing.
func (s *Lifecycle) track(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		if s.closed || s.draining {
			s.mu.Unlock()
			w.Header().Set("Connection", "close")
			http.Error(w, s.Kind+" listener "+s.ID+" is closing", http.StatusServiceUnavailable)
			return
		}
		// Under s.mu, which draining is set under: no Add once Wait may
		// have begun.
		s.handlers.Add(1)
		s.mu.Unlock()
		defer s.handlers.Done()
		next.ServeHTTP(w, r)
	})
}
