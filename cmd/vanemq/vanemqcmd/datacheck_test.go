package vanemqcmd

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/hooks/storage"
)

// pebbleConfig writes a config file whose store is pebble in dir.
func pebbleConfig(t *testing.T, dir string) string {
	t.Helper()
	return writeConfig(t, "storage:\n  type: pebble\n  path: "+dir+"\n")
}

// openTestStore opens a pebble store in dir for a test; the caller closes
// it.
func openTestStore(t *testing.T, dir string) *storage.Store {
	t.Helper()
	st, err := storage.Open(t.Context(), storage.Config{Type: storage.TypePebble, Path: dir})
	if err != nil {
		t.Fatalf("storage.Open: %v", err)
	}
	return st
}

// applyOps writes ops to st and waits until they are stored.
func applyOps(t *testing.T, st *storage.Store, ops ...core.StoreOp) {
	t.Helper()
	done := make(chan error, 1)
	st.Apply(ops, func(err error) { done <- err })
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Apply: %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Apply: not stored in time")
	}
}

// dataCheck runs `vanemq data check` with args and returns its exit
// status, standard output and standard error.
func dataCheck(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := runData(t.Context(), append([]string{"check"}, args...), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// countsOutput is the report of data check for these counts.
func countsOutput(sessions, subscriptions, inflight, queued, inbound, messages, retained, dangling int) string {
	var b strings.Builder
	for _, c := range []struct {
		name string
		n    int
	}{{"sessions", sessions}, {"subscriptions", subscriptions}, {"inflight", inflight}, {"queued", queued},
		{"inbound", inbound}, {"messages", messages}, {"retained", retained}, {"dangling", dangling}} {
		b.WriteString(c.name + ": " + strconv.Itoa(c.n) + "\n")
	}
	return b.String()
}

// TestDataCheckEmpty checks a store that a broker created and left empty.
func TestDataCheckEmpty(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := openTestStore(t, dir).Close(); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := dataCheck(t, "--config", pebbleConfig(t, dir))
	if code != 0 || out != countsOutput(0, 0, 0, 0, 0, 0, 0, 0) {
		t.Errorf("exit %d, stdout:\n%s\nstderr:\n%s\nwant 0 and every count 0", code, out, errOut)
	}
}

// TestDataCheckState checks the counts of a store holding a session with
// a subscription, an inflight and a queued message and an inbound QoS 2
// identifier, a retained message, and a record of a client without a
// session (dangling).
func TestDataCheckState(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	st := openTestStore(t, dir)
	m1 := core.StoredMessage{Message: core.Message{Topic: "a/b", Payload: []byte("one"), QoS: 1}}
	m2 := core.StoredMessage{Message: core.Message{Topic: "a/c", Payload: []byte("two"), QoS: 2}}
	inflight := core.StoreOp{Kind: core.OpQueueAdd, ClientID: "c1", Seq: 1, MessageID: 100, QoS: 1, PacketID: 7}
	inflight.SetMessage(&m1)
	queued := core.StoreOp{Kind: core.OpQueueAdd, ClientID: "c1", Seq: 2, MessageID: 101, QoS: 2}
	queued.SetMessage(&m2)
	retained := core.StoreOp{Kind: core.OpRetainedPut}
	retained.SetMessage(&core.StoredMessage{Message: core.Message{Topic: "r/1", Payload: []byte("kept"), QoS: 1, Retain: true}})
	applyOps(t, st,
		core.StoreOp{Kind: core.OpSessionPut, ClientID: "c1", Expiry: 300, Disconnected: time.Now()},
		core.StoreOp{Kind: core.OpSubscriptionPut, ClientID: "c1", Subscription: core.StoredSubscription{Filter: "a/#", QoS: 2}},
		inflight, queued,
		core.StoreOp{Kind: core.OpInboundPut, ClientID: "c1", PacketID: 9},
		retained,
		// A subscription of a client with no session: dangling.
		core.StoreOp{Kind: core.OpSubscriptionPut, ClientID: "ghost", Subscription: core.StoredSubscription{Filter: "x", QoS: 0}},
	)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	config := pebbleConfig(t, dir)
	code, out, errOut := dataCheck(t, "--config", config)
	if want := countsOutput(1, 1, 1, 1, 1, 2, 1, 1); code != 0 || out != want {
		t.Errorf("exit %d, stdout:\n%s\nstderr:\n%s\nwant 0 and\n%s", code, out, errOut, want)
	}
	// It changed nothing: the dangling record is still there.
	if code, out, _ := dataCheck(t, "--config", config); code != 0 || !strings.Contains(out, "dangling: 1\n") {
		t.Errorf("second check: exit %d, stdout:\n%s\nwant the dangling record still counted", code, out)
	}
}

// TestDataCheckMissingDir checks that a data directory that does not
// exist is an error naming it, and is not created.
func TestDataCheckMissingDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nowhere")
	code, out, errOut := dataCheck(t, "--config", pebbleConfig(t, dir))
	if code != 1 || out != "" || !strings.HasPrefix(errOut, "vanemq data check: ") || !strings.Contains(errOut, dir) {
		t.Errorf("exit %d, stdout %q, stderr:\n%s\nwant 1 and an error naming %s", code, out, errOut, dir)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("data check created %s (stat: %v)", dir, err)
	}
}

// TestDataCheckRelativePath checks that a relative path is taken from the
// config file's directory, not the working directory.
func TestDataCheckRelativePath(t *testing.T) {
	config := writeConfig(t, "storage: {path: state}\n")
	dir := filepath.Join(filepath.Dir(config), "state")
	if err := openTestStore(t, dir).Close(); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := dataCheck(t, "--config", config); code != 0 || out != countsOutput(0, 0, 0, 0, 0, 0, 0, 0) {
		t.Errorf("exit %d, stdout:\n%s\nstderr:\n%s\nwant the store next to the config file", code, out, errOut)
	}
}

// TestDataCheckNotAStore checks directories that are not vanemq stores:
// random bytes named like a pebble manifest, a pebble database of someone
// else's, and a file where the directory should be. Each is an error
// naming the path.
func TestDataCheckNotAStore(t *testing.T) {
	tests := []struct {
		name string
		make func(t *testing.T, dir string)
	}{
		{"garbage manifest", func(t *testing.T, dir string) {
			garbage := make([]byte, 4096)
			rand.Read(garbage)
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			for name, data := range map[string][]byte{"MANIFEST-000001": garbage, "CURRENT": []byte("MANIFEST-000001\n")} {
				if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"only a garbage manifest", func(t *testing.T, dir string) {
			garbage := make([]byte, 4096)
			rand.Read(garbage)
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "MANIFEST-000001"), garbage, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"another program's pebble database", func(t *testing.T, dir string) {
			db, err := pebble.Open(dir, &pebble.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Set([]byte("users/alice"), []byte("{}"), pebble.Sync); err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
		}},
		{"a file", func(t *testing.T, dir string) {
			if err := os.WriteFile(dir, []byte("not a directory\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			tt.make(t, dir)
			code, out, errOut := dataCheck(t, "--config", pebbleConfig(t, dir))
			if code != 1 || out != "" || !strings.HasPrefix(errOut, "vanemq data check: ") || !strings.Contains(errOut, dir) {
				t.Errorf("exit %d, stdout %q, stderr:\n%s\nwant 1 and an error naming %s", code, out, errOut, dir)
			}
		})
	}
}

func TestDataCheckUsage(t *testing.T) {
	memory := writeConfig(t, "storage: {type: memory}\n")
	bad := writeConfig(t, "storage:\n  type: sqlite\n")
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"no command", nil, 2, "vanemq data: want a command: check"},
		{"unknown command", []string{"fix"}, 2, `vanemq data: unknown command "fix"`},
		{"help", []string{"--help"}, 0, "Usage: vanemq data check [--config FILE]"},
		{"check help", []string{"check", "--help"}, 0, "Usage: vanemq data check [--config FILE]"},
		{"extra argument", []string{"check", "data"}, 2, `vanemq data check: unexpected argument "data"`},
		{"unknown flag", []string{"check", "--repair"}, 2, "flag provided but not defined: -repair"},
		{"missing config", []string{"check", "--config", "/nonexistent/vanemq.yaml"}, 1,
			"vanemq data check: read config: open /nonexistent/vanemq.yaml: no such file or directory"},
		{"bad config", []string{"check", "--config", bad}, 1, bad + `:2: storage.type: unknown storage type "sqlite"`},
		{"memory", []string{"check", "--config", memory}, 1, "vanemq data check: storage type memory keeps no data to check"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := runData(t.Context(), tt.args, &stdout, &stderr)
			if code != tt.wantCode || !strings.Contains(stderr.String(), tt.wantErr) || stdout.Len() != 0 {
				t.Errorf("runData(%q) = %d, stdout %q, stderr:\n%s\nwant %d and stderr containing %q", tt.args, code, stdout.String(), stderr.String(), tt.wantCode, tt.wantErr)
			}
		})
	}
	// The broker's command line dispatches to it.
	var stderr bytes.Buffer
	if code := run(t.Context(), []string{"data", "check", "--config", memory}, &stderr); code != 1 || !strings.Contains(stderr.String(), "keeps no data to check") {
		t.Errorf("run(data check) = %d, stderr:\n%s", code, stderr.String())
	}
}

// TestDataCheckDefaultConfig checks that without --config the embedded
// default's ./data, in the working directory, is read, and that a missing
// one is not created (the tests must not leave a data directory in the
// repository).
func TestDataCheckDefaultConfig(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(wd, "data")
	if _, err := os.Stat(dir); err == nil {
		t.Skipf("%s exists; not touching it", dir)
	}
	code, out, errOut := dataCheck(t)
	if code != 1 || out != "" || !strings.Contains(errOut, dir) {
		t.Errorf("exit %d, stdout %q, stderr:\n%s\nwant 1 and an error naming %s", code, out, errOut, dir)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("data check created %s (stat: %v)", dir, err)
		_ = os.RemoveAll(dir)
	}
}
