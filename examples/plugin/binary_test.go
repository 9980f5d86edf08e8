//go:build unix

package pluginexample_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// listeningRE picks the address out of the broker's "listening" log line.
var listeningRE = regexp.MustCompile(`\bmsg=listening\b.*\baddress=(\S+)`)

// TestBinary runs the vanemq binary with the shipped vanemq.yaml, changed
// only where a test must: the listener on a free port, the plugins' paths
// to the binaries the test built, the auth plugin's sha256 set to its
// binary's checksum, and the audit file in a temporary directory. The
// broker runs in the repository's root, the working directory the
// config's relative users path is written for. It checks a good and a bad
// login and an audit line.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the vanemq binary")
	}
	exe := build(t, "github.com/vanemq/vanemq/cmd/vanemq")
	authBin, auditBin := build(t, authPkg), build(t, auditPkg)
	data, err := os.ReadFile(authBin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)

	// config writes the shipped config changed for the test, with only
	// the plugins keep says, and returns its path and the audit file's.
	config := func(t *testing.T, keep ...string) (string, string) {
		t.Helper()
		s := readShipped(t)
		dir := t.TempDir()
		audit := filepath.Join(dir, "audit.jsonl")
		root := s.doc.Content[0]
		setKey(t, at(t, root, "listeners").Content[0], "address", "127.0.0.1:0")
		hooks := at(t, root, "hooks")
		var kept []*yaml.Node
		for _, h := range hooks.Content {
			cfg := at(t, h, "config")
			switch name := filepath.Base(at(t, cfg, "path").Value); {
			case !slices.Contains(keep, name):
				continue
			case name == "vanemq-auth":
				setKey(t, cfg, "path", authBin)
				setKey(t, cfg, "sha256", hex.EncodeToString(sum[:]))
				at(t, cfg, "sha256").Style = yaml.DoubleQuotedStyle // never a number
			case name == "vanemq-audit":
				setKey(t, cfg, "path", auditBin)
				setKey(t, at(t, cfg, "config"), "file", audit)
			}
			kept = append(kept, h)
		}
		hooks.Content = kept
		if !slices.Contains(keep, "vanemq-auth") {
			setKey(t, root, "allow_anonymous", "true")
		}
		out, err := yaml.Marshal(&s.doc)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "vanemq.yaml")
		if err := os.WriteFile(path, out, 0o600); err != nil {
			t.Fatal(err)
		}
		return path, audit
	}

	// checkAuth checks a good login (which then publishes) and bad ones.
	checkAuth := func(t *testing.T, addr string) {
		t.Helper()
		alice := connectV5(t, addr, "alice-1", "alice", "alice-secret")
		refusedV5(t, addr, "intruder", "alice", "guess")
		if c, code := connectV311(t, addr, "intruder-3", "mallory", "guess"); c != nil || code != 4 {
			t.Errorf("MQTT 3.1.1 mallory: return code %d, want 4", code)
		}
		publishV5(t, alice, "sensors/1/temp", []byte("21.5"), 1, false)
	}
	// checkAudit publishes as user (anonymously for "") and checks the
	// audit line.
	checkAudit := func(t *testing.T, addr, audit, user, password string) {
		t.Helper()
		c := connectV5(t, addr, "pub-1", user, password)
		publishV5(t, c, "sensors/2/temp", []byte("19"), 1, false)
		var got []auditLine
		waitFor(t, "the audit line", func() bool {
			got = slices.DeleteFunc(readAudit(t, audit), func(l auditLine) bool { return l.ClientID != "pub-1" })
			return len(got) > 0
		})
		if len(got) != 1 || got[0].Username != user || got[0].Topic != "sensors/2/temp" || got[0].Payload != "19" || got[0].QoS != 1 {
			t.Errorf("audit lines of pub-1: %+v, want its one publish", got)
		}
	}

	t.Run("both", func(t *testing.T) {
		path, audit := config(t, "vanemq-auth", "vanemq-audit")
		addr, logs, err := runVanemq(t, exe, path)
		if err != nil {
			t.Fatal(err)
		}
		checkAuth(t, addr)
		checkAudit(t, addr, audit, "bob", "bob-secret")
		if !strings.Contains(logs.String(), "plugin=auth") || !strings.Contains(logs.String(), "plugin=audit") {
			t.Errorf("the log does not name both plugins")
		}
	})
	t.Run("auth", func(t *testing.T) {
		path, _ := config(t, "vanemq-auth")
		addr, logs, err := runVanemq(t, exe, path)
		if err != nil {
			t.Fatal(err)
		}
		checkAuth(t, addr)
		if !strings.Contains(logs.String(), `msg="users loaded"`) {
			t.Errorf("the plugin's own log line is not in vanemq's log")
		}
	})
	t.Run("audit", func(t *testing.T) {
		path, audit := config(t, "vanemq-audit")
		addr, _, err := runVanemq(t, exe, path)
		if err != nil {
			t.Fatal(err)
		}
		checkAudit(t, addr, audit, "", "")
	})
	t.Run("checksum mismatch", func(t *testing.T) {
		path, _ := config(t, "vanemq-auth")
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		bad := strings.Replace(string(b), hex.EncodeToString(sum[:]), strings.Repeat("ab", 32), 1)
		if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		_, logs, err := runVanemq(t, exe, path)
		if err == nil || !strings.Contains(logs.String(), authBin) || !strings.Contains(logs.String(), "not run") {
			t.Errorf("vanemq with a wrong sha256: %v; want it to refuse to start, naming the binary:\n%s", err, logs)
		}
	})
}

// runVanemq starts the vanemq binary with config, in the repository's
// root, and returns the address it listens on and its log. When it exits
// before listening, the error says so; otherwise it is stopped with
// SIGTERM when the test ends, and must exit with status 0.
func runVanemq(t *testing.T, exe, config string) (string, *logBuffer, error) {
	t.Helper()
	logs := &logBuffer{}
	cmd := exec.Command(exe, "--config", config)
	cmd.Dir = repoRoot(t)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1) // receives Wait's result once
	go func() { exited <- cmd.Wait() }()
	var addr string
	deadline := time.Now().Add(waitTimeout)
	for addr == "" {
		select {
		case err := <-exited:
			return "", logs, fmt.Errorf("vanemq exited before listening (%v):\n%s", err, logs)
		default:
		}
		if m := listeningRE.FindStringSubmatch(logs.String()); m != nil {
			addr = m[1]
		} else if time.Now().After(deadline) {
			_ = cmd.Process.Kill() // by its PID
			<-exited
			return "", logs, errors.New("vanemq did not listen in time:\n" + logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Registered before the clients connect, so it runs after their
	// cleanups: they disconnect, then the broker stops.
	t.Cleanup(func() {
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Errorf("SIGTERM: %v", err)
		}
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("vanemq exited with %v after SIGTERM, want status 0", err)
			}
		case <-time.After(waitTimeout):
			_ = cmd.Process.Kill() // by its PID
			<-exited
			t.Errorf("vanemq did not exit after SIGTERM")
		}
		if strings.Contains(logs.String(), "level=ERROR") {
			t.Errorf("vanemq logged errors")
		}
		if t.Failed() {
			t.Logf("vanemq's log:\n%s", logs)
		}
	})
	return addr, logs, nil
}

// at returns the value of key in the mapping n, failing the test when
// there is none.
func at(t *testing.T, n *yaml.Node, key string) *yaml.Node {
	t.Helper()
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	t.Fatalf("vanemq.yaml: no key %q at line %d", key, n.Line)
	return nil
}

// setKey sets key in the mapping n to the scalar value, adding it when
// missing.
func setKey(t *testing.T, n *yaml.Node, key, value string) {
	t.Helper()
	if n.Kind != yaml.MappingNode {
		t.Fatalf("vanemq.yaml: line %d is not a mapping", n.Line)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			n.Content[i+1] = &yaml.Node{Kind: yaml.ScalarNode, Value: value}
			return
		}
	}
	n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, &yaml.Node{Kind: yaml.ScalarNode, Value: value})
}
