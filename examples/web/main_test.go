//go:build unix

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vanemq/vanemq/core/logtest"
)

// Bounds of the test: each MQTT wait, and the whole browser run (Chromium's
// start included).
const (
	waitTimeout    = 10 * time.Second
	browserTimeout = 90 * time.Second
)

// chromiumPath is the browser the test drives: Debian's chromium, which
// `make deps` installs.
const chromiumPath = "/usr/bin/chromium"

// requireBrowser fails the test, naming the fix, when what the browser test
// needs is missing: `make deps` (run by `make test`) installs it all.
func requireBrowser(t *testing.T) string {
	t.Helper()
	var missing []string
	if _, err := os.Stat(chromiumPath); err != nil {
		missing = append(missing, chromiumPath+" (Debian package chromium)")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing = append(missing, "node (Node.js)")
	}
	for _, f := range []string{
		filepath.Join("node_modules", "playwright-core", "package.json"),
		filepath.Join("node_modules", "mqtt", "dist", "mqtt.min.js"),
	} {
		if _, err := os.Stat(f); err != nil {
			missing = append(missing, "examples/web/"+f+" (npm ci in examples/web)")
		}
	}
	if len(missing) > 0 {
		t.Fatalf("the browser test needs:\n\t%s\nrun `make test` (or `make deps`) from the repository root to install them",
			strings.Join(missing, "\n\t"))
	}
	return node
}

type logBuffer = logtest.Buffer

// startExample starts the example with every listener on a free loopback
// port.
func startExample(t *testing.T) *example {
	t.Helper()
	logs := &logBuffer{}
	cfg := config{
		TCP: "127.0.0.1:0", WS: "127.0.0.1:0", HTTP: "127.0.0.1:0",
		Static: "static", MQTTJS: filepath.Join("node_modules", "mqtt", "dist", "mqtt.min.js"),
	}
	ex, err := start(t.Context(), cfg, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := ex.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if t.Failed() {
			t.Logf("example log:\n%s", logs)
		}
	})
	return ex
}

// connectPaho connects an MQTT 3.1.1 client over TCP, subscribed to
// filter, and returns it with the payloads it receives.
func connectPaho(t *testing.T, addr, filter string) (mqtt.Client, <-chan string) {
	t.Helper()
	got := make(chan string, 16)
	opts := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("go-test").
		SetAutoReconnect(false).SetConnectTimeout(waitTimeout)
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		t.Fatalf("paho connect %s: %v", addr, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	tok := c.Subscribe(filter, 1, func(_ mqtt.Client, m mqtt.Message) { got <- string(m.Payload()) })
	if !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		t.Fatalf("paho subscribe %s: %v", filter, tok.Error())
	}
	return c, got
}

// nodeScript is a browser script running under node, with the Chromium it
// starts, in a process group of its own, so that a timeout (or a failed
// test) ends them all by that group's id.
type nodeScript struct {
	cmd    *exec.Cmd
	ctx    context.Context
	stdout io.Reader
	stderr logBuffer
	pgid   int
	start  time.Time
}

// startNode starts `node script args...`, to be ended by browserTimeout at
// the latest; read its stdout, then call wait.
func startNode(t *testing.T, node, script string, args ...string) *nodeScript {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), browserTimeout)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, node, append([]string{script}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	s := &nodeScript{cmd: cmd, ctx: ctx}
	cmd.Stderr = &s.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s.stdout = stdout
	s.start = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s %s: %v", node, script, err)
	}
	s.pgid = cmd.Process.Pid
	t.Cleanup(func() { _ = syscall.Kill(-s.pgid, syscall.SIGKILL) }) // whatever is left of the group
	return s
}

// wait reads what is left of the script's stdout and waits for it to exit.
// The test stops if the script ran past browserTimeout or failed (state,
// if any, says how far it got), and fails if its processes outlive it.
func (s *nodeScript) wait(t *testing.T, state string) {
	t.Helper()
	_, _ = io.Copy(io.Discard, s.stdout)
	err := s.cmd.Wait()
	script := s.cmd.Args[1]
	if s.ctx.Err() != nil {
		t.Fatalf("%s still running after %v; killed its process group %d\nstderr:\n%s", script, browserTimeout, s.pgid, &s.stderr)
	}
	if err != nil {
		t.Fatalf("%s: %v (%s)\nstderr:\n%s", script, err, state, &s.stderr)
	}
	t.Logf("browser run took %v", time.Since(s.start).Round(time.Millisecond))
	// Nothing of the browser outlives the script (Chromium's helpers may
	// take a moment to exit after their parent).
	for end := time.Now().Add(5 * time.Second); syscall.Kill(-s.pgid, 0) == nil; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(end) {
			t.Errorf("processes of group %d (node, Chromium) still run 5s after %s exited", s.pgid, script)
			break
		}
	}
}

// TestBrowserChat opens the chat page in headless Chromium (driven by
// browser_test.mjs through playwright-core), which connects to the broker
// over ws with MQTT.js. The page's own message makes the round trip through
// the broker back to the page and reaches a Go client over TCP; a message
// the Go client publishes shows up on the page.
func TestBrowserChat(t *testing.T) {
	node := requireBrowser(t)
	ex := startExample(t)
	goClient, goGot := connectPaho(t, ex.TCPAddr, Topic)

	const fromBrowser, fromGo = "hello from the browser", "hello from Go over TCP"
	run := startNode(t, node, "browser_test.mjs", ex.PageURL, fromBrowser, fromGo)
	var messages []string
	sawConnected := false
	sc := bufio.NewScanner(run.stdout)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "connected":
			sawConnected = true
			t.Logf("page connected over ws after %v", time.Since(run.start).Round(time.Millisecond))
			if tok := goClient.Publish(Topic, 1, false, fromGo); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
				t.Errorf("paho publish: %v", tok.Error())
			}
		case strings.HasPrefix(line, "messages: "):
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "messages: ")), &messages); err != nil {
				t.Errorf("browser_test.mjs printed %q: %v", line, err)
			}
		default:
			t.Logf("browser_test.mjs: %s", line)
		}
	}
	run.wait(t, fmt.Sprintf("connected: %v", sawConnected))

	// What the page shows: its own message, back from the broker, and the
	// Go client's, each once.
	for _, want := range []string{fromBrowser, fromGo} {
		if n := countOf(messages, want); n != 1 {
			t.Errorf("the page lists %q %d times, want once; it lists %q", want, n, messages)
		}
	}
	// The Go client got the page's message (and its own) over TCP.
	var got []string
	deadline := time.After(waitTimeout)
	for len(got) < 2 {
		select {
		case m := <-goGot:
			got = append(got, m)
		case <-deadline:
			t.Fatalf("the Go client received %q, want %q and %q", got, fromBrowser, fromGo)
		}
	}
	if !slices.Contains(got, fromBrowser) || !slices.Contains(got, fromGo) {
		t.Errorf("the Go client received %q, want %q and %q", got, fromBrowser, fromGo)
	}
}

func countOf(list []string, s string) int {
	n := 0
	for _, v := range list {
		if v == s {
			n++
		}
	}
	return n
}
