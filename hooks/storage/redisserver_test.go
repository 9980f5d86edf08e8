package storage

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

// redisServer is a redis-server process a test started.
type redisServer struct {
	addr   string
	port   int
	cmd    *exec.Cmd
	log    string        // its log file
	exited chan struct{} // closed once it has exited and been waited for
}

// startRedis starts a redis-server on a free loopback port, with no
// persistence, and stops it when the test ends. args are more options,
// such as "--requirepass", "secret". stop kills it earlier.
func startRedis(t *testing.T, args ...string) (addr string, stop func()) {
	t.Helper()
	// Another process may take the free port before the server binds
	// it; then the server exits, and another port is tried.
	var last string
	for range 3 {
		s, ok, log := launchRedis(t, freePort(t), args...)
		if ok {
			return s.addr, s.stop
		}
		last = log
	}
	t.Fatalf("redis-server did not start:\n%s", last)
	return "", nil
}

// startRedisOn starts a redis-server on port, as startRedis does.
func startRedisOn(t *testing.T, port int, args ...string) (addr string, stop func()) {
	t.Helper()
	s, ok, log := launchRedis(t, port, args...)
	if !ok {
		t.Fatalf("redis-server on port %d did not start:\n%s", port, log)
	}
	return s.addr, s.stop
}

// freePort is a loopback TCP port no one listened on a moment ago.
func freePort(t *testing.T) int {
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

// launchRedis starts redis-server on port and waits (at most 5s) until
// it answers. When it does not, the server is stopped and its log
// returned.
func launchRedis(t *testing.T, port int, args ...string) (*redisServer, bool, string) {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server is not installed (%v): the Redis store's tests need it; `make test` installs it (Debian package redis-server)", err)
	}
	dir := t.TempDir()
	s := &redisServer{
		addr:   net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		port:   port,
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
	t.Cleanup(s.stop)

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
			s.stop()
			return nil, false, "no answer within 5s\n" + s.readLog()
		}
	}
}

// answers reports whether the server replies to PING (an error reply,
// such as NOAUTH, counts: it is up).
func (s *redisServer) answers() bool {
	conn, err := net.DialTimeout("tcp", s.addr, 200*time.Millisecond)
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

// stop kills the server by its PID and waits until it has exited.
func (s *redisServer) stop() {
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
}

func (s *redisServer) readLog() string {
	b, err := os.ReadFile(s.log)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	return string(b)
}
