// Package unix is the Unix domain socket transport: a core.Listener over
// net.Listen("unix") for clients on the same host (sidecars, local
// bridges), with the socket file's permissions as access control.
package unix

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/vanemq/vanemq/listeners/accept"
	"github.com/vanemq/vanemq/listeners/limit"
)

// staleProbeTimeout bounds the dial that checks whether an existing socket
// file still has a listener behind it.
const staleProbeTimeout = time.Second

// Listener accepts MQTT clients on a Unix domain socket. Create it with
// New; it is safe for concurrent use, and Close may be called from any
// goroutine.
type Listener struct {
	id   string
	path string
	mode os.FileMode
	max  int          // see WithMaxConnections
	log  *slog.Logger // for connections refused by max

	mu sync.Mutex // guards the options set by the With methods

	life accept.Lifecycle // bind, serve, close
}

// New returns a listener named id that will create the socket file path on
// Listen and set its permission bits to mode (for example 0o660 to admit
// the owner and group only). A mode of 0 leaves the permissions the
// process's umask gives.
func New(id, path string, mode os.FileMode) *Listener {
	return &Listener{id: id, path: path, mode: mode, life: accept.Lifecycle{Kind: "unix", ID: id}}
}

// WithMaxConnections allows at most n connections open at once (0 means
// unlimited; see the limit package): a further one is closed at once and
// logged on logger (slog.Default() when nil). It must be called before
// Listen, and returns l.
func (l *Listener) WithMaxConnections(n int, logger *slog.Logger) *Listener {
	l.mu.Lock()
	defer l.mu.Unlock()
	if logger == nil {
		logger = slog.Default()
	}
	l.max, l.log = n, logger.With("listener", l.id)
	return l
}

// ID returns the listener's name, as given to New.
func (l *Listener) ID() string { return l.id }

// Protocol returns "unix".
func (l *Listener) Protocol() string { return "unix" }

// Address returns the socket file's path.
func (l *Listener) Address() string { return l.path }

// Listen creates the socket. A socket file left behind by a process that
// died is removed first, but only if nothing accepts connections on it: a
// live socket makes Listen fail ("in use"), and so does a path that exists
// and is not a socket. The permissions are set right after the socket is
// created (there is a short window in which the umask's apply; use a
// directory with restricted access if that matters).
func (l *Listener) Listen() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.life.Bind(func() (net.Listener, error) {
		if err := removeStale(l.path); err != nil {
			return nil, fmt.Errorf("unix listener %q: %w", l.id, err)
		}
		ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: l.path, Net: "unix"})
		if err != nil {
			return nil, fmt.Errorf("unix listener %q: %w", l.id, err)
		}
		// Close removes the socket file (the default for ListenUnix, made
		// explicit).
		ln.SetUnlinkOnClose(true)
		if l.mode != 0 {
			if err := os.Chmod(l.path, l.mode); err != nil {
				ln.Close()
				return nil, fmt.Errorf("unix listener %q: set socket mode %v: %w", l.id, l.mode, err)
			}
		}
		return limit.Wrap(ln, limit.Options{MaxConnections: l.max}, l.log), nil
	})
}

// removeStale removes path if it is a socket file nobody listens on.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("stat socket path: %w", err)
	case fi.Mode().Type() != fs.ModeSocket:
		return fmt.Errorf("socket path %s exists and is not a socket (%v)", path, fi.Mode().Type())
	}
	c, err := net.DialTimeout("unix", path, staleProbeTimeout)
	if err == nil {
		c.Close()
		return fmt.Errorf("socket %s is in use by another listener", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, syscall.ENOENT) {
		// Not provably stale (a full backlog, no permission): leave it.
		return fmt.Errorf("probing existing socket %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing stale socket: %w", err)
	}
	return nil
}

// Serve accepts connections until Close and calls handle for each one on
// Serve's goroutine, so handle must return quickly. Temporary Accept errors
// are retried with a bounded backoff. Serve returns nil once the listener
// is closed (also if it was closed before Serve was called), and an error
// if Listen has not succeeded, Serve is already running, or Accept fails
// for good.
func (l *Listener) Serve(handle func(net.Conn)) error {
	return l.life.Serve(handle)
}

// Close stops accepting, makes Serve return and removes the socket file.
// Connections already handed to the server stay open. Calling Close again
// does nothing.
func (l *Listener) Close() error {
	return l.life.Close()
}
