package main

import (
	"bufio"
	"bytes"
	"context"
	"debug/buildinfo"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// mochiModule is the module path of mochi-mqtt, whose version is read from
// the peer binary's build information.
const mochiModule = "github.com/mochi-mqtt/server/v2"

// brokerBinaries are the resolved paths of the three brokers.
type brokerBinaries struct {
	vanemq, mochi, mosquitto string
}

// resolveBinaries checks that every broker binary exists, looking a bare
// name up in PATH (and, for Mosquitto, in /usr/sbin and /usr/local/sbin,
// which a non-root PATH may lack).
func (o *compareOptions) resolveBinaries() (brokerBinaries, error) {
	var b brokerBinaries
	var errs []error
	var err error
	if b.vanemq, err = lookBinary(o.vanemqBin); err != nil {
		errs = append(errs, fmt.Errorf("vanemq broker: %w (build it with: make build)", err))
	}
	if b.mochi, err = lookBinary(o.mochiBin); err != nil {
		errs = append(errs, fmt.Errorf("mochi peer: %w (build it with: cd cmd/vanemq-bench/peers/mochi && go build -o ../../../../bin/peer-mochi .)", err))
	}
	if b.mosquitto, err = lookBinary(o.mosquittoBin, "/usr/sbin", "/usr/local/sbin"); err != nil {
		errs = append(errs, fmt.Errorf("mosquitto: %w (install it with: apt-get install mosquitto)", err))
	}
	if len(errs) > 0 {
		return b, fmt.Errorf("compare: %w", errors.Join(errs...))
	}
	return b, nil
}

// lookBinary resolves name to an executable file: a name with a slash is
// used as it is, a bare name is looked up in PATH and then in extraDirs.
func lookBinary(name string, extraDirs ...string) (string, error) {
	if strings.ContainsRune(name, filepath.Separator) {
		fi, err := os.Stat(name)
		if err != nil {
			return "", fmt.Errorf("%s: %w", name, err)
		}
		if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
			return "", fmt.Errorf("%s: not an executable file", name)
		}
		return name, nil
	}
	path, err := exec.LookPath(name)
	if err == nil {
		return path, nil
	}
	for _, dir := range extraDirs {
		p := filepath.Join(dir, name)
		if fi, serr := os.Stat(p); serr == nil && !fi.IsDir() && fi.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: %w", name, err)
}

// vanemqConfig is the YAML configuration vanemq runs with: one TCP listener
// on 127.0.0.1:port, anonymous clients allowed (as the peers are
// configured), $SYS off, warnings and errors only, and no store: state in
// memory only, as Mosquitto (persistence false) and mochi (no storage
// hook) keep it, so that no broker pays for writes the others skip.
func vanemqConfig(port int) string {
	return fmt.Sprintf(`# Written by vanemq-bench compare.
listeners:
  - id: tcp
    type: tcp
    address: "127.0.0.1:%d"
allow_anonymous: true
mqtt:
  sys_interval: 0
log:
  level: warn
# No persistence, like the Mosquitto and mochi peers.
storage:
  type: memory
`, port)
}

// mosquittoConfig is the configuration Mosquitto runs with: one listener on
// 127.0.0.1:port, anonymous access, no persistence, queue and inflight
// limits like vanemq's defaults, TCP_NODELAY like Go's default, $SYS off and
// errors only, on stderr.
func mosquittoConfig(port int) string {
	return fmt.Sprintf(`# Written by vanemq-bench compare.
listener %d 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 1000
max_inflight_messages 1024
set_tcp_nodelay true
sys_interval 0
log_dest stderr
log_type error
`, port)
}

// brokerCommand writes broker's configuration, if it needs one, to dir and
// returns the command line that serves MQTT on 127.0.0.1:port.
func brokerCommand(broker string, bins brokerBinaries, dir string, port int) ([]string, error) {
	write := func(name, text string) (string, error) {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			return "", fmt.Errorf("write %s config: %w", broker, err)
		}
		return p, nil
	}
	switch broker {
	case brokerVanemq:
		p, err := write("vanemq.yaml", vanemqConfig(port))
		if err != nil {
			return nil, err
		}
		return []string{bins.vanemq, "--config", p}, nil
	case brokerVanemqAuthFile:
		p, err := writeAuthFileConfig(dir, port)
		if err != nil {
			return nil, err
		}
		return []string{bins.vanemq, "--config", p}, nil
	case brokerMochi:
		return []string{bins.mochi, "-addr", "127.0.0.1:" + strconv.Itoa(port)}, nil
	case brokerMosquitto:
		p, err := write("mosquitto.conf", mosquittoConfig(port))
		if err != nil {
			return nil, err
		}
		return []string{bins.mosquitto, "-c", p}, nil
	}
	return nil, fmt.Errorf("unknown broker %q", broker)
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	return port, nil
}

// brokerProc is a running broker process.
type brokerProc struct {
	cmd  *exec.Cmd
	out  *tailBuffer   // the end of its stdout and stderr
	done chan struct{} // closed when it has exited
	err  error         // cmd.Wait's result, set before done is closed
}

// startBroker starts argv and waits, at most timeout, until addr accepts
// TCP connections. On failure the process is killed.
func startBroker(ctx context.Context, argv []string, addr string, timeout time.Duration) (*brokerProc, error) {
	p, err := startProc(argv, io.Discard)
	if err != nil {
		return nil, err
	}
	if err := p.waitReady(ctx, addr, timeout); err != nil {
		p.kill()
		err = fmt.Errorf("start %s: %w", strings.Join(argv, " "), err)
		if tail := p.output(); tail != "" {
			err = fmt.Errorf("%w; output: %s", err, tail)
		}
		return nil, err
	}
	return p, nil
}

// startProc starts argv with its standard output written to stdout (and
// kept, with its standard error, in the process's tail).
func startProc(argv []string, stdout io.Writer) (*brokerProc, error) {
	p := &brokerProc{
		cmd:  exec.Command(argv[0], argv[1:]...),
		out:  newTailBuffer(4096),
		done: make(chan struct{}),
	}
	p.cmd.Stdout, p.cmd.Stderr = io.MultiWriter(p.out, stdout), p.out
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", argv[0], err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// waitReady polls addr until it accepts a connection, the process exits,
// ctx ends or timeout passes.
func (p *brokerProc) waitReady(ctx context.Context, addr string, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var d net.Dialer
	for {
		dctx, cancel := context.WithTimeout(ctx, time.Second)
		c, err := d.DialContext(dctx, "tcp", addr)
		cancel()
		if err == nil {
			return c.Close()
		}
		select {
		case <-p.done:
			return fmt.Errorf("exited before accepting connections: %w", exitError(p.err))
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", addr, context.Cause(ctx))
		case <-deadline.C:
			return fmt.Errorf("%s accepted no connection within %s: %w", addr, timeout, err)
		case <-tick.C:
		}
	}
}

// exitError describes how a process ended; a nil err (exit status 0) is
// still unexpected where this is used.
func exitError(err error) error {
	if err == nil {
		return errors.New("exit status 0")
	}
	return err
}

// pid is the broker's process ID.
func (p *brokerProc) pid() int { return p.cmd.Process.Pid }

// output is the end of what the broker printed, on one line.
func (p *brokerProc) output() string {
	return strings.Join(strings.Fields(p.out.String()), " ")
}

// stop ends the broker: SIGTERM, then SIGKILL if it has not exited within
// timeout. It returns an error if the broker had already exited, which
// means it died during the run.
func (p *brokerProc) stop(timeout time.Duration) error {
	select {
	case <-p.done:
		err := fmt.Errorf("broker exited during the run: %w", exitError(p.err))
		if tail := p.output(); tail != "" {
			err = fmt.Errorf("%w; output: %s", err, tail)
		}
		return err
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		p.kill()
		return nil
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		p.kill()
	}
	return nil
}

// kill sends SIGKILL and waits for the process to be reaped.
func (p *brokerProc) kill() {
	_ = p.cmd.Process.Kill() // fails only if it has exited already
	<-p.done
}

// tailBuffer is an io.Writer, safe for concurrent use, that keeps the last
// max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

// newTailBuffer returns a tailBuffer keeping the last max bytes.
func newTailBuffer(max int) *tailBuffer { return &tailBuffer{max: max} }

// Write keeps the end of p; it never fails.
func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

// String returns the kept bytes.
func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// raiseNoFileLimit raises the soft file-descriptor limit to the hard one
// and returns the new limit. Setting it explicitly also makes child
// processes (the brokers and the load generator) inherit it: the Go runtime
// otherwise restores the original soft limit in children.
func raiseNoFileLimit() (syscall.Rlimit, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return lim, fmt.Errorf("get RLIMIT_NOFILE: %w", err)
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return lim, fmt.Errorf("raise RLIMIT_NOFILE to %d: %w", lim.Max, err)
	}
	return lim, nil
}

// envInfo describes the machine and the software compared.
type envInfo struct {
	Started   time.Time
	CPU       string // model name
	Cores     int    // logical CPUs
	Kernel    string
	GoVersion string // the Go that built vanemq
	Vanemq    string // git describe, or the binary's VCS revision
	Mochi     string // mochi-mqtt module version
	Mosquitto string // first line of mosquitto -h
	NoFile    syscall.Rlimit
}

// gatherEnv collects envInfo; what cannot be found reads "unknown".
func gatherEnv(ctx context.Context, bins brokerBinaries) envInfo {
	e := envInfo{
		CPU:       "unknown",
		Cores:     runtime.NumCPU(),
		Kernel:    "unknown",
		GoVersion: runtime.Version(),
		Vanemq:    "unknown",
		Mochi:     "unknown",
		Mosquitto: "unknown",
	}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		if m := cpuModel(data); m != "" {
			e.CPU = m
		}
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		e.Kernel = "Linux " + strings.TrimSpace(string(data))
	}
	vinfo, verr := buildinfo.ReadFile(bins.vanemq)
	if verr == nil {
		e.GoVersion = vinfo.GoVersion
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(cctx, "git", "describe", "--tags", "--always", "--dirty").Output(); err == nil && len(bytes.TrimSpace(out)) > 0 {
		e.Vanemq = strings.TrimSpace(string(out))
	} else if verr == nil {
		if rev := vcsRevision(vinfo.Settings); rev != "" {
			e.Vanemq = rev
		}
	}
	if info, err := buildinfo.ReadFile(bins.mochi); err == nil {
		for _, d := range info.Deps {
			if d.Path == mochiModule {
				e.Mochi = d.Version
			}
		}
	}
	// mosquitto -h prints its usage and exits non-zero.
	out, _ := exec.CommandContext(cctx, bins.mosquitto, "-h").CombinedOutput()
	if line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n"); line != "" {
		e.Mosquitto = strings.TrimSpace(line)
	}
	return e
}

// cpuModel returns the first "model name" in /proc/cpuinfo's contents.
func cpuModel(cpuinfo []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(cpuinfo))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(key) == "model name" {
			return strings.TrimSpace(val)
		}
	}
	return ""
}

// vcsRevision returns the short VCS revision from build settings, with
// "-dirty" when the tree was modified.
func vcsRevision(settings []debug.BuildSetting) string {
	var rev, dirty string
	for _, s := range settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev == "" {
		return ""
	}
	return rev + dirty
}
