//go:build unix

package jsacl_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/vanemq/vanemq/core/packets"
)

// listeningRE picks the address out of the broker's "listening" log line.
var listeningRE = regexp.MustCompile(`\bmsg=listening\b.*\baddress=(\S+)`)

// TestBinary runs the vanemq binary with the shipped vanemq.yaml and acl.js
// (copied, with the listener moved to a free port): the config file works
// as it is, an allowed publish is delivered and a refused one gets 0x87, and
// SIGHUP reloads the script without stopping the broker.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the vanemq binary")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not on PATH; cannot build the binary")
	}
	exe := filepath.Join(t.TempDir(), "vanemq")
	if out, err := exec.Command(goTool, "build", "-o", exe, "github.com/vanemq/vanemq/cmd/vanemq").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dir := copyExample(t)
	config := filepath.Join(dir, "vanemq.yaml")
	freePort(t, config)

	logs := &logBuffer{}
	cmd := exec.Command(exe, "--config", config)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1) // receives Wait's result once
	waited := make(chan struct{}) // closed after that
	go func() {
		exited <- cmd.Wait()
		close(waited)
	}()
	t.Cleanup(func() {
		// Kill the process (by its PID) if the test ended without stopping it.
		select {
		case <-waited:
		default:
			_ = cmd.Process.Kill()
			<-waited
		}
		if t.Failed() {
			t.Logf("vanemq's log:\n%s", logs)
		}
	})

	var addr string
	waitFor(t, "vanemq to listen", func() bool {
		select {
		case err := <-exited:
			t.Fatalf("vanemq exited before listening: %v", err)
		default:
		}
		if m := listeningRE.FindStringSubmatch(logs.String()); m != nil {
			addr = m[1]
		}
		return addr != ""
	})
	if !within(logs.String(), `msg="script loaded" hook=js`, `functions="[authorizePublish authorizeSubscribe connect]"`) {
		t.Errorf("the log does not show the script loaded with its three functions")
	}

	alice := connectV5(t, addr, "alice", "alice")
	if code := alice.subscribe(t, "users/alice/#"); code != 1 {
		t.Errorf("alice: subscribe to users/alice/#: SUBACK %#x, want QoS 1", code)
	}
	if code, reason := alice.publish(t, "users/alice/x", "mine"); code != 0 {
		t.Errorf("alice: publish to users/alice/x: PUBACK %#x %q, want 0x00", code, reason)
	}
	if m := alice.next(t); m.Topic != "users/alice/x" || string(m.Payload) != "mine" {
		t.Errorf("alice received %q on %s, want her own message", m.Payload, m.Topic)
	}
	code, reason := alice.publish(t, "users/bob/x", "not mine")
	if code != byte(packets.NotAuthorized) || !strings.Contains(reason, "yours is users/alice/#") {
		t.Errorf("alice: publish to users/bob/x: PUBACK %#x %q, want 0x87 with acl.js's reason", code, reason)
	}

	// SIGHUP reloads the script; the broker and alice's connection stay.
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reload on SIGHUP", func() bool {
		return within(logs.String(), `msg="script reloaded"`, "trigger=SIGHUP")
	})
	if code, _ := alice.publish(t, "users/alice/y", "still here"); code != 0 {
		t.Errorf("alice: publish after SIGHUP: PUBACK %#x, want 0x00", code)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("vanemq exited with %v after SIGTERM, want status 0", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("vanemq did not exit after SIGTERM")
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("vanemq logged errors")
	}
}

// freePort rewrites the config file's listeners to 127.0.0.1:0, a port the
// system picks (the broker logs which), keeping the rest of the file.
func freePort(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	root := doc.Content[0]
	changed := 0
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value != "listeners" {
			continue
		}
		for _, l := range root.Content[i+1].Content {
			for j := 0; j+1 < len(l.Content); j += 2 {
				if l.Content[j].Value == "address" {
					l.Content[j+1].Value = "127.0.0.1:0"
					changed++
				}
			}
		}
	}
	if changed != 1 {
		t.Fatalf("vanemq.yaml: %d listener addresses, want 1", changed)
	}
	out, err := yaml.Marshal(&doc)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
}
