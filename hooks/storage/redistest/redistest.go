// Package redistest runs real redis-server processes for tests: the
// Redis store's tests and the broker's.
package redistest

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Server is a redis-server process a test started.
type Server struct {
	// Addr is its loopback host:port, and Port the port.
	Addr string
	Port int

	cmd    *exec.Cmd
	log    string        // its log file
	exited chan struct{} // closed once it has exited and been waited for
}

// Start starts a redis-server on a free loopback port, with no
// persistence, and stops it when the test ends. args are more options,
// such as "--requirepass", "secret". Stop kills it earlier. The test fails
// when redis-server is not installed: `make test` installs it.
func Start(t testing.TB, args ...string) *Server {
	t.Helper()
	// Another process may take the free port before the server binds
	// it; then the server exits, and another port is tried.
	var last string
	for range 3 {
		s, ok, log := launch(t, FreePort(t), args...)
		if ok {
			return s
		}
		last = log
	}
	t.Fatalf("redis-server did not start:\n%s", last)
	return nil
}

// StartOn starts a redis-server on port, as Start does.
func StartOn(t testing.TB, port int, args ...string) *Server {
	t.Helper()
	s, ok, log := launch(t, port, args...)
	if !ok {
		t.Fatalf("redis-server on port %d did not start:\n%s", port, log)
	}
	return s
}

// FreePort is a loopback TCP port no one listened on a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return port
}

// launch starts redis-server on port and waits (at most 5s) until
// it answers. When it does not, the server is stopped and its log
// returned.
func launch(t testing.TB, port int, args ...string) (*Server, bool, string) {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server is not installed (%v): the Redis store's tests need it; `make test` installs it (Debian package redis-server)", err)
	}
	dir := t.TempDir()
	s := &Server{
		Addr:   net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Port:   port,
		log:    filepath.Join(dir, "redis.log"),
		exited: make(chan struct{}),
	}
	argv := append([]string{
		"--bind", "127.0.0.1", "--port", strconv.Itoa(port),
		"--save", "", "--appendonly", "no", "--dir", dir,
		"--daemonize", "no", "--logfile", s.log,
	}, args...)
	s.cmd = exec.Command(bin, argv...)
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("starting redis-server: %v", err)
	}
	go func() {
		_ = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(s.Stop)

	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if s.answers() {
			return s, true, ""
		}
		select {
		case <-s.exited:
			return nil, false, s.readLog()
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, false, "no answer within 5s\n" + s.readLog()
		}
	}
}

// answers reports whether the server replies to PING (an error reply,
// such as NOAUTH, counts: it is up).
func (s *Server) answers() bool {
	conn, err := net.DialTimeout("tcp", s.Addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	return err == nil && (strings.HasPrefix(line, "+") || strings.HasPrefix(line, "-"))
}

// Stop kills the server by its PID and waits until it has exited.
func (s *Server) Stop() {
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
}

func (s *Server) readLog() string {
	b, err := os.ReadFile(s.log)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	return string(b)
}
