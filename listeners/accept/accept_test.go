package accept

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"
)

const waitTimeout = 5 * time.Second

// fakeListener returns the queued errors from Accept, then blocks until
// closed. Every Accept call is counted.
type fakeListener struct {
	mu      sync.Mutex
	errs    []error
	accepts int
	closed  chan struct{}
	drained chan struct{} // closed when errs runs out
}

func newFake(errs ...error) *fakeListener {
	return &fakeListener{errs: errs, closed: make(chan struct{}), drained: make(chan struct{})}
}

func (f *fakeListener) Accept() (net.Conn, error) {
	f.mu.Lock()
	f.accepts++
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		f.mu.Unlock()
		return nil, err
	}
	select {
	case <-f.drained:
	default:
		close(f.drained)
	}
	f.mu.Unlock()
	<-f.closed
	return nil, net.ErrClosed
}

func (f *fakeListener) Close() error   { close(f.closed); return nil }
func (f *fakeListener) Addr() net.Addr { return &net.TCPAddr{} }

type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

func TestServeRetriesTemporaryErrors(t *testing.T) {
	emfile := &net.OpError{Op: "accept", Net: "tcp", Err: fmt.Errorf("wrapped: %w", syscall.EMFILE)}
	f := newFake(emfile, timeoutError{}, syscall.ECONNABORTED, emfile)
	done := make(chan struct{})
	served := make(chan error, 1)
	go func() { served <- Loop(f, done, func(c net.Conn) {}) }()

	select {
	case <-f.drained:
	case <-time.After(waitTimeout):
		t.Fatal("Loop stopped retrying")
	}
	f.mu.Lock()
	accepts := f.accepts
	f.mu.Unlock()
	if accepts != 5 {
		t.Errorf("Accept called %d times, want 5 (4 errors, then the blocking one)", accepts)
	}
	close(done)
	f.Close()
	if err := <-served; err != nil {
		t.Fatalf("Loop = %v after close, want nil", err)
	}
}

func TestServeStopsOnPermanentError(t *testing.T) {
	boom := errors.New("boom")
	f := newFake(boom)
	defer f.Close()
	err := Loop(f, make(chan struct{}), func(net.Conn) {})
	if !errors.Is(err, boom) {
		t.Fatalf("Loop = %v, want it to wrap %v", err, boom)
	}
}

func TestCloseInterruptsBackoff(t *testing.T) {
	// Enough temporary errors to reach the maximum backoff many times over.
	errs := make([]error, 100)
	for i := range errs {
		errs[i] = syscall.EMFILE
	}
	f := newFake(errs...)
	defer f.Close()
	done := make(chan struct{})
	served := make(chan error, 1)
	go func() { served <- Loop(f, done, func(net.Conn) {}) }()
	close(done)
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Loop = %v, want nil", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Loop kept backing off after done was closed")
	}
}

func TestTemporary(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{syscall.EMFILE, true},
		{syscall.ENFILE, true},
		{&net.OpError{Op: "accept", Err: syscall.ECONNABORTED}, true},
		{timeoutError{}, true},
		{net.ErrClosed, false},
		{&net.OpError{Op: "accept", Err: net.ErrClosed}, false},
		{errors.New("other"), false},
	}
	for _, tt := range tests {
		if got := Temporary(tt.err); got != tt.want {
			t.Errorf("Temporary(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
