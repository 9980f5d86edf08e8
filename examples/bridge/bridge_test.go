//go:build unix

package bridge_test

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vanemq/vanemq/core/logtest"
	"github.com/vanemq/vanemq/core/mqtttest"
)

// waitTimeout bounds every wait.
const waitTimeout = 15 * time.Second

// proc is a process the test started; it is killed (by its PID) when the
// test ends, if it is still running.
type proc struct {
	name   string // the program, for messages
	cmd    *exec.Cmd
	out    *logtest.Buffer
	exited chan struct{}
}

func start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	p := &proc{name: filepath.Base(name), cmd: exec.Command(name, args...), out: &logtest.Buffer{}, exited: make(chan struct{})}
	if p.name == "stdbuf" && len(args) > 1 {
		p.name = args[1]
	}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("%s's output:\n%s", p.name, p.out)
		}
	})
	return p
}

// waitOutput waits until the process has printed every one of want.
func (p *proc) waitOutput(t *testing.T, want ...string) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		s, missing := p.out.String(), ""
		for _, w := range want {
			if !strings.Contains(s, w) {
				missing = w
				break
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not print %q", p.name, missing)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// copyWith copies the example's file name into dir, with each old string
// of the pairs replaced by the new one (each must be there).
func copyWith(t *testing.T, dir, name string, pairs ...string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.Contains(s, pairs[i]) {
			t.Fatalf("%s has no %q", name, pairs[i])
		}
		s = strings.ReplaceAll(s, pairs[i], pairs[i+1])
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestBinary runs the example as the README does, on free ports: Debian's
// mosquitto with central.conf, the vanemq binary with vanemq.yaml, and
// mosquitto_sub and mosquitto_pub on both sides. Readings go out renamed,
// commands come in renamed, and the centre sees the bridge's state go
// online, then offline when the edge stops.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the vanemq binary")
	}
	mosquitto, err := exec.LookPath("mosquitto")
	if err != nil {
		mosquitto = "/usr/sbin/mosquitto"
	}
	for _, tool := range []string{mosquitto, "mosquitto_sub", "mosquitto_pub", "stdbuf", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: `make deps` installs it", tool)
		}
	}
	exe := filepath.Join(t.TempDir(), "vanemq")
	if out, err := exec.Command("go", "build", "-o", exe, "github.com/vanemq/vanemq/cmd/vanemq").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dir := t.TempDir()
	edge, centre := mqtttest.FreeAddr(t), mqtttest.FreeAddr(t)
	_, centrePort, _ := net.SplitHostPort(centre)
	_, edgePort, _ := net.SplitHostPort(edge)
	conf := copyWith(t, dir, "central.conf", "listener 1884 ", "listener "+centrePort+" ")
	config := copyWith(t, dir, "vanemq.yaml", "127.0.0.1:1883", edge, "tcp://127.0.0.1:1884", "tcp://"+centre)

	central := start(t, mosquitto, "-c", conf)
	central.waitOutput(t, "running")
	// stdbuf: mosquitto_sub's debug lines (SUBACK) are not flushed to a
	// pipe otherwise.
	centreSub := start(t, "stdbuf", "-oL", "mosquitto_sub", "-h", "127.0.0.1", "-p", centrePort, "-V", "5", "-d", "-t", "site1/#", "-t", "bridges/#", "-v")
	centreSub.waitOutput(t, "SUBACK")

	vanemq := start(t, exe, "--config", config)
	vanemq.waitOutput(t, `msg="bridge: connected" hook=bridge bridge=central`)
	centreSub.waitOutput(t, "bridges/edge-1/state online")

	edgeSub := start(t, "stdbuf", "-oL", "mosquitto_sub", "-h", "127.0.0.1", "-p", edgePort, "-V", "5", "-d", "-t", "cmd/#", "-v")
	edgeSub.waitOutput(t, "SUBACK")
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("mosquitto_pub", args...).CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_pub %v: %v\n%s", args, err, out)
		}
	}
	run("-h", "127.0.0.1", "-p", edgePort, "-V", "5", "-q", "1", "-t", "sensors/boiler/temp", "-m", "71.5")
	centreSub.waitOutput(t, "site1/sensors/boiler/temp 71.5")
	run("-h", "127.0.0.1", "-p", centrePort, "-V", "5", "-q", "1", "-t", "commands/site1/boiler/off", "-m", "now")
	edgeSub.waitOutput(t, "cmd/boiler/off now")

	if err := vanemq.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	centreSub.waitOutput(t, "bridges/edge-1/state offline")
	select {
	case <-vanemq.exited:
	case <-time.After(waitTimeout):
		t.Fatal("vanemq did not stop on SIGTERM")
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); err != nil {
		t.Errorf("the store's directory next to the config: %v", err)
	}
}
