package vanemqcmd

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/vanemq/vanemq/core/mqtttest"
)

func TestRunClusterUsage(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
	}{
		{"no command", []string{"cluster"}, 2, "want a command: dev"},
		{"unknown command", []string{"cluster", "up"}, 2, `unknown command "up"`},
		{"help", []string{"cluster", "--help"}, 0, "Usage: vanemq cluster dev"},
		{"dev help", []string{"cluster", "dev", "--help"}, 0, "-nodes N"},
		{"unknown flag", []string{"cluster", "dev", "--node", "2"}, 2, "flag provided but not defined: -node"},
		{"extra argument", []string{"cluster", "dev", "now"}, 2, `unexpected argument "now"`},
		{"no nodes", []string{"cluster", "dev", "--nodes", "0"}, 2, "--nodes 0: want 1 to 16"},
		{"too many nodes", []string{"cluster", "dev", "--nodes", "17"}, 2, "--nodes 17: want 1 to 16"},
		{"not loopback", []string{"cluster", "dev", "--host", "0.0.0.0"}, 2, `--host "0.0.0.0": want a loopback address`},
		{"host name", []string{"cluster", "dev", "--host", "example.com"}, 2, `--host "example.com": want a loopback address`},
		{"ports past 65535", []string{"cluster", "dev", "--port", "65534"}, 2, "--port 65534: want 0 (free ports) or a port from 1 to 65533"},
		{"negative port", []string{"cluster", "dev", "--port", "-1"}, 2, "--port -1:"},
		{"in the main usage", []string{"--help"}, 0, "vanemq cluster dev [--nodes N]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			if code := run(t.Context(), tt.args, &out); code != tt.wantCode || !strings.Contains(out.String(), tt.wantOut) {
				t.Errorf("run(%q) = %d, output:\n%s\nwant %d and output containing %q", tt.args, code, out.String(), tt.wantCode, tt.wantOut)
			}
		})
	}
}

func TestDevAddr(t *testing.T) {
	o := devOptions{nodes: 3, host: "127.0.0.1", port: 1883}
	for i, want := range []string{"127.0.0.1:1883", "127.0.0.1:1884", "127.0.0.1:1885"} {
		if got := o.addr(i); got != want {
			t.Errorf("addr(%d) = %s, want %s", i, got, want)
		}
	}
	o = devOptions{nodes: 2, host: "::1", port: 0}
	if got := o.addr(1); got != "[::1]:0" {
		t.Errorf("addr(1) with port 0 = %s, want [::1]:0", got)
	}
}

// devOutput collects what cluster dev prints and announces each line.
type devOutput struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	lines chan string
}

func (o *devOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf.Write(p)
	for {
		line, err := o.buf.ReadString('\n')
		if err != nil {
			o.buf.Reset()
			o.buf.WriteString(line)
			return len(p), nil
		}
		o.lines <- strings.TrimSuffix(line, "\n")
	}
}

// devNodeRE matches a node's line.
var devNodeRE = regexp.MustCompile(`^(n\d+) mqtt=(\S+) nats=(nats://\S+)$`)

// runDev runs cluster dev with args in this process, printing to out,
// and returns once it has printed its ready line: the nodes' MQTT
// addresses by name and NATS URLs, and stop, which ends it and returns
// its exit status.
func runDev(t *testing.T, args ...string) (addrs, nats map[string]string, ready string, stop func() int, logs *logLines) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	out := &devOutput{lines: make(chan string, 64)}
	logs = newLogLines()
	done := make(chan int, 1)
	go func() { done <- runClusterDev(ctx, args, out, logs) }()
	var once sync.Once
	code := -1
	stop = func() int {
		once.Do(func() {
			cancel()
			select {
			case code = <-done:
			case <-time.After(2 * shutdownTimeout):
				t.Errorf("cluster dev did not stop; logs:\n%s", logs)
			}
		})
		return code
	}
	t.Cleanup(func() { stop() })
	addrs, nats = map[string]string{}, map[string]string{}
	deadline := time.After(devStartTimeout)
	for {
		select {
		case line := <-out.lines:
			if strings.HasPrefix(line, "ready: ") {
				return addrs, nats, line, stop, logs
			}
			m := devNodeRE.FindStringSubmatch(line)
			if m == nil {
				t.Fatalf("cluster dev printed %q, want a node's line or the ready line", line)
			}
			addrs[m[1]], nats[m[1]] = m[2], m[3]
		case c := <-done:
			t.Fatalf("cluster dev ended with %d before it was ready; logs:\n%s", c, logs)
		case <-deadline:
			t.Fatalf("cluster dev not ready after %v; logs:\n%s", devStartTimeout, logs)
		}
	}
}

// TestClusterDev: three nodes on free ports; a QoS 1 message published
// on n1 reaches a subscriber on n3; a stop leaves no goroutine and no
// temporary directory behind.
func TestClusterDev(t *testing.T) {
	baseline := runtime.NumGoroutine()
	addrs, nats, ready, stop, logs := runDev(t, "--nodes", "3", "--port", "0")
	if len(addrs) != 3 || addrs["n1"] == "" || addrs["n3"] == "" {
		t.Fatalf("nodes printed: %v", addrs)
	}
	for name, a := range addrs {
		if host, port, _ := net.SplitHostPort(a); host != "127.0.0.1" || port == "0" {
			t.Errorf("%s listens on %s, want 127.0.0.1 and a port", name, a)
		}
		if !strings.HasPrefix(nats[name], "nats://127.0.0.1:") {
			t.Errorf("%s's NATS server is %s, want on 127.0.0.1", name, nats[name])
		}
	}
	dir := regexp.MustCompile(`data in (\S+)\)`).FindStringSubmatch(ready)
	if dir == nil {
		t.Fatalf("ready line %q names no data directory", ready)
	}

	got := make(chan *paho.Publish, 16)
	sub, subConn, _, err := mqtttest.DialPaho(addrs["n3"], &paho.Connect{ClientID: "dev-sub", CleanStart: true, KeepAlive: 30},
		func(p *paho.Publish) { got <- p })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	if _, err := sub.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "dev/+", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	pub, pubConn, _, err := mqtttest.DialPaho(addrs["n1"], &paho.Connect{ClientID: "dev-pub", CleanStart: true, KeepAlive: 30}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// n1 hands a message to n3 once n3's subscription has reached n1's
	// route table: publish until one arrives (bounded).
	var msg *paho.Publish
	for i := 0; msg == nil && i < 100; i++ {
		if _, err := pub.Publish(ctx, &paho.Publish{Topic: "dev/a", QoS: 1, Payload: fmt.Appendf(nil, "m%d", i)}); err != nil {
			t.Fatalf("publish QoS 1 on n1: %v", err)
		}
		select {
		case msg = <-got:
		case <-time.After(100 * time.Millisecond):
		}
	}
	if msg == nil || msg.QoS != 1 || msg.Topic != "dev/a" || !strings.HasPrefix(string(msg.Payload), "m") {
		t.Fatalf("n3's subscriber got %+v, want a QoS 1 message on dev/a", msg)
	}
	mqtttest.ClosePaho(pub, pubConn)
	mqtttest.ClosePaho(sub, subConn)

	if code := stop(); code != 0 {
		t.Fatalf("cluster dev stopped with %d; logs:\n%s", code, logs)
	}
	if !strings.Contains(logs.String(), "msg=stopped") {
		t.Errorf("no stopped line; logs:\n%s", logs)
	}
	if _, err := os.Stat(dir[1]); !os.IsNotExist(err) {
		t.Errorf("the temporary data directory %s is left: %v", dir[1], err)
	}
	mqtttest.CheckGoroutines(t, "after cluster dev stopped", baseline)
}

// TestClusterDevDir: one node on the port asked for, its data kept in
// --dir.
func TestClusterDevDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dev")
	_, port, _ := net.SplitHostPort(mqtttest.FreeAddr(t))
	addrs, _, ready, stop, logs := runDev(t, "--nodes", "1", "--port", port, "--dir", dir)
	if want := "127.0.0.1:" + port; addrs["n1"] != want || len(addrs) != 1 {
		t.Errorf("nodes %v, want n1 on %s", addrs, want)
	}
	if !strings.Contains(ready, "ready: 1 node (data in "+dir+")") {
		t.Errorf("ready line %q", ready)
	}
	if code := stop(); code != 0 {
		t.Fatalf("cluster dev stopped with %d; logs:\n%s", code, logs)
	}
	for _, sub := range []string{"nats/n1"} {
		if _, err := os.Stat(filepath.Join(dir, sub)); err != nil {
			t.Errorf("data of %s not kept: %v", sub, err)
		}
	}
}

// TestClusterDevPortInUse: a node that cannot listen stops the start with
// exit status 1 and an error naming the address, and leaves nothing
// running and no temporary directory.
func TestClusterDevPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // where the temporary data directory goes
	baseline := runtime.NumGoroutine()
	var stdout, stderr bytes.Buffer
	if code := runClusterDev(t.Context(), []string{"--nodes", "1", "--port", port}, &stdout, &stderr); code != 1 {
		t.Fatalf("exit status %d, want 1; stderr:\n%s", code, &stderr)
	}
	if want := "vanemq cluster dev: node n1: listener tcp: listen tcp 127.0.0.1:" + port; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr:\n%s\nwant %q", &stderr, want)
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout %q, want nothing before the cluster is ready", &stdout)
	}
	if left, err := os.ReadDir(tmp); err != nil || len(left) != 0 {
		t.Errorf("temporary data directory left: %v %v", left, err)
	}
	mqtttest.CheckGoroutines(t, "after a failed start", baseline)
}
