package accept

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"
)

// mode is one way of serving a Lifecycle: Loop (tcp, unix), an HTTP server
// (websocket), or an HTTP server started on Bind, before Serve (admin).
type mode struct {
	name  string
	bind  func(s *Lifecycle, open func() (net.Listener, error)) error
	serve func(s *Lifecycle) error
}

// modes returns the modes, each with a fresh HTTP server.
func modes() []mode {
	bind := (*Lifecycle).Bind
	started := &http.Server{}
	return []mode{
		{"Serve", bind, func(s *Lifecycle) error { return s.Serve(func(c net.Conn) { c.Close() }) }},
		{"ServeHTTP", bind, func(s *Lifecycle) error { return s.ServeHTTP(&http.Server{}) }},
		{"StartHTTP", func(s *Lifecycle, open func() (net.Listener, error)) error {
			if err := s.Bind(open); err != nil {
				return err
			}
			return s.StartHTTP(started)
		}, func(s *Lifecycle) error { return s.ServeHTTP(started) }},
	}
}

func listen(t *testing.T) func() (net.Listener, error) {
	return func() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }
}

// TestLifecycleRules checks that every way of serving follows the same
// rules, and names the listener in its errors the same way.
func TestLifecycleRules(t *testing.T) {
	rules := []struct {
		name    string
		run     func(t *testing.T, s *Lifecycle, m mode) error
		wantErr string // "" means no error
	}{
		{"serve before bind", func(t *testing.T, s *Lifecycle, m mode) error {
			return m.serve(s)
		}, `ws listener "x": serve called before listen`},
		{"bind after close", func(t *testing.T, s *Lifecycle, m mode) error {
			s.Close()
			return m.bind(s, listen(t))
		}, `ws listener "x": listen: use of closed network connection`},
		{"bind twice", func(t *testing.T, s *Lifecycle, m mode) error {
			if err := m.bind(s, listen(t)); err != nil {
				return err
			}
			defer s.Close()
			return m.bind(s, listen(t))
		}, `ws listener "x": already listening on 127.0.0.1:`},
		{"serve after close", func(t *testing.T, s *Lifecycle, m mode) error {
			if err := m.bind(s, listen(t)); err != nil {
				return err
			}
			s.Close()
			return m.serve(s)
		}, ""},
		{"close twice", func(t *testing.T, s *Lifecycle, m mode) error {
			if err := m.bind(s, listen(t)); err != nil {
				return err
			}
			if err := s.Close(); err != nil {
				return err
			}
			return s.Close()
		}, ""},
		{"serve twice", func(t *testing.T, s *Lifecycle, m mode) error {
			if err := m.bind(s, listen(t)); err != nil {
				return err
			}
			results := make(chan error, 2)
			for range 2 {
				go func() { results <- m.serve(s) }()
			}
			// The loser returns at once, the winner once closed.
			var lost error
			select {
			case lost = <-results:
			case <-time.After(waitTimeout):
				t.Fatal("neither serve call returned")
			}
			if !s.Serving() {
				t.Error("Serving() = false while serving")
			}
			s.Close()
			if s.Serving() {
				t.Error("Serving() = true after Close")
			}
			select {
			case err := <-results:
				if err != nil {
					t.Errorf("winning serve = %v after Close, want nil", err)
				}
			case <-time.After(waitTimeout):
				t.Fatal("serve did not return after Close")
			}
			if err := m.serve(s); err != nil {
				t.Errorf("serve after serving and Close = %v, want nil", err)
			}
			return lost
		}, `ws listener "x": already serving`},
	}
	for i := range modes() {
		for _, r := range rules {
			m := modes()[i]
			t.Run(m.name+"/"+r.name, func(t *testing.T) {
				s := &Lifecycle{Kind: "ws", ID: "x"}
				defer s.Close()
				err := r.run(t, s, m)
				switch {
				case r.wantErr == "" && err != nil:
					t.Fatalf("got error %v, want none", err)
				case r.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), r.wantErr)):
					t.Fatalf("got error %v, want one starting %q", err, r.wantErr)
				}
			})
		}
	}
}

// TestAcceptErrors checks that every way of serving rides out temporary
// Accept errors (also ENOBUFS and ENOMEM, on which http.Server's own
// retries give up) and reports a permanent one the same way.
func TestAcceptErrors(t *testing.T) {
	for i := range modes() {
		m := modes()[i]
		t.Run(m.name+"/temporary", func(t *testing.T) {
			f := newFake(syscall.ENOBUFS, syscall.ENOMEM, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE})
			s := &Lifecycle{Kind: "ws", ID: "x"}
			if err := m.bind(s, func() (net.Listener, error) { return f, nil }); err != nil {
				t.Fatal(err)
			}
			served := make(chan error, 1)
			go func() { served <- m.serve(s) }()
			select {
			case <-f.drained:
			case err := <-served:
				t.Fatalf("serve gave up: %v", err)
			case <-time.After(waitTimeout):
				t.Fatal("serve stopped retrying")
			}
			s.Close()
			select {
			case err := <-served:
				if err != nil {
					t.Fatalf("serve = %v after Close, want nil", err)
				}
			case <-time.After(waitTimeout):
				t.Fatal("serve did not return after Close")
			}
		})
		m = modes()[i]
		t.Run(m.name+"/permanent", func(t *testing.T) {
			boom := errors.New("boom")
			f := newFake(boom)
			s := &Lifecycle{Kind: "ws", ID: "x"}
			defer s.Close()
			if err := m.bind(s, func() (net.Listener, error) { return f, nil }); err != nil {
				t.Fatal(err)
			}
			err := m.serve(s)
			if !errors.Is(err, boom) || err.Error() != `ws listener "x": accept: boom` {
				t.Fatalf("serve = %v, want ws listener \"x\": accept: boom", err)
			}
		})
	}
}

// TestServeHTTPWaitsForHandlers checks that ServeHTTP returns only once a
// handler running at Close has returned, as Serve does (Loop runs the
// handler on its goroutine), so that nothing of the listener runs once a
// server waiting for its Serve has stopped.
func TestServeHTTPWaitsForHandlers(t *testing.T) {
	s := &Lifecycle{Kind: "ws", ID: "x"}
	if err := s.Bind(listen(t)); err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
	})}
	served := make(chan error, 1)
	go func() { served <- s.ServeHTTP(hs) }()
	go func() {
		if resp, err := http.Get("http://" + s.Addr().String() + "/"); err == nil {
			resp.Body.Close()
		}
	}()
	select {
	case <-entered:
	case <-time.After(waitTimeout):
		t.Fatal("the request never reached the handler")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Close does not wait; ServeHTTP does. Without the wait it returns
	// at once, well within this window.
	select {
	case err := <-served:
		t.Fatalf("ServeHTTP returned (%v) while a handler was running", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("ServeHTTP = %v, want nil", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("ServeHTTP did not return once the handler had")
	}
}

// TestServeHTTPRefusesWhenClosing checks that a request reaching the
// handler once the listener is closing gets 503 and does not run it.
func TestServeHTTPRefusesWhenClosing(t *testing.T) {
	s := &Lifecycle{Kind: "ws", ID: "x"}
	if err := s.Bind(listen(t)); err != nil {
		t.Fatal(err)
	}
	ran := false
	hs := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) { ran = true })}
	if err := s.StartHTTP(hs); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The connection that would carry it is closed by now: hand the
	// request to the handler ServeHTTP runs.
	w := httptest.NewRecorder()
	hs.Handler.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
	body, _ := io.ReadAll(w.Result().Body)
	if w.Code != http.StatusServiceUnavailable || ran || !strings.Contains(string(body), "ws listener x is closing") {
		t.Fatalf("after Close: %d %q, handler ran: %v; want 503 and not run", w.Code, body, ran)
	}
	if err := s.ServeHTTP(hs); err != nil {
		t.Fatalf("ServeHTTP after Close = %v, want nil", err)
	}
}
