package core_test

// Helpers for mosquitto_test.go: running Debian's mosquitto_pub and
// mosquitto_sub against a test broker, bounded by timeouts and killed by PID
// when the test ends.

import (
	"bytes"
	"context"
	"net"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// mqNeedClients fails the test (it does not skip: CI must run it) when the
// mosquitto command-line clients are not installed.
func mqNeedClients(t *testing.T) {
	t.Helper()
	for _, bin := range []string{"mosquitto_pub", "mosquitto_sub"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s not found in PATH (%v): run `make test`, which installs Debian's mosquitto-clients "+
				"(`make deps`), or `apt-get install -y mosquitto-clients`", bin, err)
		}
	}
}

// mqHostPort splits a broker address for -h and -p.
func mqHostPort(t *testing.T, addr string) (string, string) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("split %q: %v", addr, err)
	}
	return host, port
}

// mqBuffer is a bytes.Buffer safe to read while the process writes.
type mqBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *mqBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *mqBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// mqProc is a running mosquitto client.
type mqProc struct {
	desc           string
	cmd            *exec.Cmd
	stdout, stderr mqBuffer
	done           chan struct{}
	err            error // set before done is closed
}

// mqStart starts name with args; the process is killed after timeout, and
// by PID when the test ends if it is still running.
func mqStart(t *testing.T, timeout time.Duration, name string, args ...string) *mqProc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = time.Second
	p := &mqProc{desc: name + " " + strings.Join(args, " "), cmd: cmd, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = &p.stdout, &p.stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s: %v", p.desc, err)
	}
	go func() {
		p.err = cmd.Wait()
		cancel()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
	})
	return p
}

// exited reports whether the process has ended.
func (p *mqProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits at most d for the process to exit with status 0.
func (p *mqProc) wait(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		_ = syscall.Kill(p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		t.Fatalf("%s: still running after %v; killed\nstdout:\n%s\nstderr:\n%s", p.desc, d, p.stdout.String(), p.stderr.String())
	}
	if p.err != nil {
		t.Fatalf("%s: %v\nstdout:\n%s\nstderr:\n%s", p.desc, p.err, p.stdout.String(), p.stderr.String())
	}
}

// lines returns the non-empty output lines.
func (p *mqProc) lines() []string {
	var out []string
	for _, l := range strings.Split(p.stdout.String(), "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

// mqRun runs a short-lived client (mosquitto_pub) to completion.
func mqRun(t *testing.T, name string, args ...string) {
	t.Helper()
	mqStart(t, 10*time.Second, name, args...).wait(t, 10*time.Second)
}

// mqWaitFor polls cond (at most 5 s) while the subscribers are running; it
// fails if one of them exits first or cond never holds.
func mqWaitFor(t *testing.T, what string, cond func() bool, subs ...*mqProc) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		for _, s := range subs {
			if s.exited() {
				t.Fatalf("waiting for %s: %s exited early (%v)\nstdout:\n%s\nstderr:\n%s", what, s.desc, s.err, s.stdout.String(), s.stderr.String())
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: not after 5s", what)
		}
		<-tick.C
	}
}

// mqSameLines compares output lines, ignoring order when unordered is set.
func mqSameLines(t *testing.T, who string, got, want []string, unordered bool) {
	t.Helper()
	g := slices.Clone(got)
	w := slices.Clone(want)
	if unordered {
		slices.Sort(g)
		slices.Sort(w)
	}
	if !slices.Equal(g, w) {
		t.Errorf("%s output:\n got %q\nwant %q", who, got, want)
	}
}
