//go:build unix

package vanemqcmd

import (
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vanemq/vanemq/core/packets"
)

// buildBinary compiles this command into a temporary directory.
func buildBinary(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not on PATH; cannot build the binary")
	}
	exe := filepath.Join(t.TempDir(), "vanemq")
	out, err := exec.Command(goTool, "build", "-o", exe, "..").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return exe
}

// process is a running vanemq binary.
type process struct {
	cmd    *exec.Cmd
	logs   *logLines
	exited chan error // receives Wait's result once
}

// startBinary runs exe with args. The process is killed, by its PID, when
// the test ends if it is still running.
func startBinary(t *testing.T, exe string, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(exe, args...), logs: newLogLines(), exited: make(chan error, 1)}
	p.cmd.Stdout = p.logs
	p.cmd.Stderr = p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", exe, err)
	}
	waited := make(chan struct{})
	go func() {
		err := p.cmd.Wait()
		p.exited <- err
		close(waited)
	}()
	t.Cleanup(func() {
		select {
		case <-waited:
		default:
			p.cmd.Process.Kill()
			<-waited
		}
	})
	return p
}

// wait returns the process's exit status, failing the test if it does not
// exit in time.
func (p *process) wait(t *testing.T) int {
	t.Helper()
	select {
	case err := <-p.exited:
		var ee *exec.ExitError
		switch {
		case err == nil:
			return 0
		case errors.As(err, &ee):
			return ee.ExitCode() // -1 when killed by a signal
		default:
			t.Fatalf("wait: %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatalf("vanemq did not exit; log:\n%s", p.logs)
	}
	return -1
}

// TestBinarySIGTERM builds vanemq, runs it on a free loopback port,
// connects an MQTT 5 client and sends SIGTERM: the client must be told
// "server shutting down" (DISCONNECT 0x8B) and the process must exit 0. It
// needs the core engine.
func TestBinarySIGTERM(t *testing.T) {
	exe := buildBinary(t)
	p := startBinary(t, exe, "--config", writeConfig(t, loopbackConfig))

	var addr string
	select {
	case addr = <-p.logs.addrs:
	case <-p.exited:
		t.Fatalf("vanemq exited before listening; log:\n%s", p.logs)
	case <-time.After(waitTimeout):
		t.Fatalf("no listening address logged; log:\n%s", p.logs)
	}
	conn, r := connectClient(t, addr)

	// SIGHUP (reload) must not end the broker: the connection stays up
	// and a PINGREQ is still answered.
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatalf("SIGHUP: %v", err)
	}
	if _, err := conn.Write([]byte{0xC0, 0}); err != nil {
		t.Fatalf("PINGREQ after SIGHUP: %v", err)
	}
	var pkt packets.Packet
	pr := packets.NewReader(r, 0)
	pr.SetVersion(packets.Version5)
	_ = conn.SetReadDeadline(time.Now().Add(waitTimeout))
	if err := pr.ReadPacket(&pkt); err != nil || pkt.Type != packets.Pingresp {
		t.Fatalf("after SIGHUP: want PINGRESP, got %s (%v); log:\n%s", pkt.Type, err, p.logs)
	}
	_ = conn.SetReadDeadline(time.Time{})

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	expectShutdownDisconnect(t, conn, r)
	if code := p.wait(t); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0; log:\n%s", code, p.logs)
	}
	for _, want := range []string{"msg=listening id=tcp protocol=tcp address=" + addr, "listening on loopback only", `reason="terminated signal received"`, "msg=stopped"} {
		if !strings.Contains(p.logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, p.logs)
		}
	}
}

// TestBinaryStartupError checks that a bad configuration makes the binary
// exit 1 with the error, naming file, line and key, on stderr.
func TestBinaryStartupError(t *testing.T) {
	exe := buildBinary(t)
	path := writeConfig(t, "listeners:\n  - {id: a, type: tcp, address: \":1883\"}\nmqtt:\n  max_pakcet_size: 10\n")
	for _, flag := range []string{"--config", "-config"} {
		t.Run(flag, func(t *testing.T) {
			p := startBinary(t, exe, flag, path)
			if code := p.wait(t); code != 1 {
				t.Errorf("exit status %d, want 1", code)
			}
			want := path + ":4: mqtt.max_pakcet_size: unknown key"
			if !strings.HasPrefix(p.logs.String(), want) {
				t.Errorf("stderr:\n%s\nwant it to start %q", p.logs, want)
			}
		})
	}
}

// listenAddr waits for p to log the address it listens on.
func (p *process) listenAddr(t *testing.T) string {
	t.Helper()
	select {
	case addr := <-p.logs.addrs:
		return addr
	case <-p.exited:
		t.Fatalf("vanemq exited before listening; log:\n%s", p.logs)
	case <-time.After(waitTimeout):
		t.Fatalf("no listening address logged; log:\n%s", p.logs)
	}
	return ""
}

// stop sends SIGTERM to p and checks that it exits 0.
func (p *process) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	if code := p.wait(t); code != 0 {
		t.Fatalf("exit status %d after SIGTERM, want 0; log:\n%s", code, p.logs)
	}
}

// pahoClient connects an MQTT 3.1.1 client with clientID to addr.
func pahoClient(t *testing.T, addr, clientID string) mqtt.Client {
	t.Helper()
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(clientID).SetProtocolVersion(4))
	if tok := c.Connect(); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", clientID, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

// TestBinaryRestart runs vanemq with pebble storage in a temporary
// directory, publishes a retained QoS 1 message, stops the broker with
// SIGTERM and starts it again on the same directory: a new subscriber
// gets the retained message. Between the two runs, `vanemq data check`
// counts it.
func TestBinaryRestart(t *testing.T) {
	exe := buildBinary(t)
	dir := filepath.Join(t.TempDir(), "data")
	config := writeConfig(t, storageBroker(dir))

	p := startBinary(t, exe, "--config", config)
	addr := p.listenAddr(t)
	pub := pahoClient(t, addr, "e2e-pub")
	if tok := pub.Publish("e2e/kept", 1, true, "survives a restart"); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	pub.Disconnect(100)
	p.stop(t)
	for _, want := range []string{"msg=storage engine=pebble where=" + dir + " durability=sync", `msg="storage closed" where=` + dir, "msg=stopped"} {
		if !strings.Contains(p.logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, p.logs)
		}
	}

	out, err := exec.Command(exe, "data", "check", "--config", config).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "\nretained: 1\n") || !strings.HasPrefix(string(out), "sessions: 0\n") {
		t.Errorf("vanemq data check: %v, output:\n%s\nwant no sessions and one retained message", err, out)
	}

	p = startBinary(t, exe, "--config", config)
	addr = p.listenAddr(t)
	got := make(chan mqtt.Message, 1)
	sub := pahoClient(t, addr, "e2e-sub")
	if tok := sub.Subscribe("e2e/#", 1, func(_ mqtt.Client, m mqtt.Message) { got <- m }); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	select {
	case m := <-got:
		if m.Topic() != "e2e/kept" || string(m.Payload()) != "survives a restart" || !m.Retained() || m.Qos() != 1 {
			t.Errorf("got %q on %q (retained %v, QoS %d), want the retained QoS 1 message", m.Payload(), m.Topic(), m.Retained(), m.Qos())
		}
	case <-time.After(waitTimeout):
		t.Fatalf("the retained message did not survive the restart; log:\n%s", p.logs)
	}
	sub.Disconnect(100)
	p.stop(t)
}
