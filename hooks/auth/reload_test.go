package auth

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vanemq/vanemq/core"
)

// reloadTimeout bounds each wait for a reload: the debounce plus the
// file-system notification, with room for a loaded machine.
const reloadTimeout = 10 * time.Second

// reloads returns an OnReload function and the channel it reports on.
func reloads() (func(error), <-chan error) {
	ch := make(chan error, 16)
	return func(err error) { ch <- err }, ch
}

// nextReload waits for the next reload's result.
func nextReload(t *testing.T, ch <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(reloadTimeout):
		t.Fatalf("no reload within %v after %s", reloadTimeout, what)
		return nil
	}
}

// reloadOK waits for reloads until one succeeds, tolerating those that
// saw a file half-way through a change (an editor may write in steps).
func reloadOK(t *testing.T, ch <-chan error, what string) {
	t.Helper()
	deadline := time.After(reloadTimeout)
	for {
		select {
		case err := <-ch:
			if err == nil {
				return
			}
			t.Logf("reload after %s failed (a partial write?): %v", what, err)
		case <-deadline:
			t.Fatalf("no successful reload within %v after %s", reloadTimeout, what)
		}
	}
}

// reloadFailed waits for a reload that fails, skipping successful ones
// left over from an earlier change, and returns its error.
func reloadFailed(t *testing.T, ch <-chan error, what string) error {
	t.Helper()
	deadline := time.After(reloadTimeout)
	for {
		select {
		case err := <-ch:
			if err != nil {
				return err
			}
		case <-deadline:
			t.Fatalf("no failed reload within %v after %s", reloadTimeout, what)
		}
	}
}

func TestReloadOnFileChange(t *testing.T) {
	onReload, ch := reloads()
	var logs logBuffer
	dir := t.TempDir()
	users := writeFile(t, dir, "users.yaml", "users:\n  - {username: alice, password: '"+hashOf(t, "secret")+"'}\n")
	acl := writeFile(t, dir, "acl.yaml", "rules:\n  - {allow: true, action: both, filter: \"users/%u/#\"}\n")
	f, err := NewFile(FileOptions{Users: users, ACL: acl, Watch: true, OnReload: onReload, Logger: logs.Logger(slog.LevelDebug)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })

	t.Run("ACL change takes effect", func(t *testing.T) {
		if ok, _ := f.ACL().CanPublish("alice", "c", "public/x"); ok {
			t.Fatal("public/x allowed before the change")
		}
		writeFile(t, dir, "acl.yaml", "rules:\n  - {allow: true, action: both, filter: \"public/#\"}\n")
		reloadOK(t, ch, "writing acl.yaml")
		if ok, _ := f.ACL().CanPublish("alice", "c", "public/x"); !ok {
			t.Error("public/x still denied after the reload")
		}
		if ok, _ := f.ACL().CanPublish("alice", "c", "users/alice/x"); ok {
			t.Error("the old rule is still in force")
		}
	})

	t.Run("users change takes effect", func(t *testing.T) {
		writeFile(t, dir, "users.yaml", "users:\n  - {username: alice, password: '"+hashOf(t, "secret")+
			"'}\n  - {username: carol, password: '"+hashOf(t, "c")+"'}\n")
		reloadOK(t, ch, "writing users.yaml")
		if !f.Users().Has("carol") {
			t.Error("carol missing after the reload")
		}
	})

	t.Run("in-place write takes effect", func(t *testing.T) {
		// As `echo ... > acl.yaml` does: truncate and write, no rename.
		if err := os.WriteFile(acl, []byte("rules:\n  - {allow: true, action: both, filter: \"inplace/#\"}\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		reloadOK(t, ch, "rewriting acl.yaml in place")
		if ok, _ := f.ACL().CanPublish("alice", "c", "inplace/x"); !ok {
			t.Error("inplace/x denied after the reload")
		}
	})

	t.Run("bad file keeps the old rules", func(t *testing.T) {
		before := f.ACL()
		writeFile(t, dir, "acl.yaml", "rules:\n  - {allow: true, action: both, filter: \"ok/#\"}\n  - {allow: true, action: read, filter: \"x\"}\n")
		err := reloadFailed(t, ch, "writing a bad acl.yaml")
		wantErrors(t, err, []string{filepath.Join(dir, "acl.yaml") + `:3: rules[1].action: "read": want publish, subscribe or both`})
		if f.ACL() != before {
			t.Error("the rules in force changed")
		}
		if ok, _ := f.ACL().CanPublish("alice", "c", "inplace/x"); !ok {
			t.Error("the old rule no longer applies")
		}
		log := logs.String()
		for _, want := range []string{"reload failed", "file=" + filepath.Join(dir, "acl.yaml"), "line=3", "key=rules[1].action", `problem="\"read\": want publish`} {
			if !strings.Contains(log, want) {
				t.Errorf("log lacks %q:\n%s", want, log)
			}
		}
	})

	t.Run("bad users file keeps both files' old contents", func(t *testing.T) {
		writeFile(t, dir, "acl.yaml", "rules: []\n")
		reloadOK(t, ch, "fixing acl.yaml")
		before := f.state.Load()
		writeFile(t, dir, "users.yaml", "users:\n  - {username: alice, password: hunter2-xyz}\n")
		err := reloadFailed(t, ch, "writing a bad users.yaml")
		wantErrors(t, err, []string{filepath.Join(dir, "users.yaml") + ":2: users[0].password: not a bcrypt hash"})
		if after := f.state.Load(); after != before || !after.users.Has("carol") || after.acl.Len() != 0 {
			t.Error("the users or rules in force changed")
		}
		if strings.Contains(logs.String(), "hunter2") {
			t.Error("the log quotes a password")
		}
	})

}

// SIGHUP reloads even when no file event is seen: here the users file is
// a symbolic link into a directory the hook does not watch.
func TestReloadOnSIGHUP(t *testing.T) {
	onReload, ch := reloads()
	real := t.TempDir()
	target := writeFile(t, real, "users.yaml", "users:\n  - {username: alice, password: '"+hashOf(t, "a")+"'}\n")
	dir := t.TempDir()
	link := filepath.Join(dir, "users.yaml")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	f, err := NewFile(FileOptions{Users: link, Watch: true, OnReload: onReload})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	writeFile(t, real, "users.yaml", "users:\n  - {username: dave, password: '"+hashOf(t, "d")+"'}\n")
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if err := nextReload(t, ch, "SIGHUP"); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if !f.Users().Has("dave") || f.Users().Has("alice") {
		t.Error("the users file was not re-read on SIGHUP")
	}
}

func TestReloadMethod(t *testing.T) {
	onReload, ch := reloads()
	f, dir := newTestFile(t, "", false, onReload)
	writeFile(t, dir, "users.yaml", "users: []\n")
	if err := f.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if got := nextReload(t, ch, "Reload"); got != nil {
		t.Errorf("OnReload got %v", got)
	}
	if f.Users().Len() != 0 {
		t.Errorf("%d users after Reload, want 0", f.Users().Len())
	}
	if err := os.Remove(filepath.Join(dir, "users.yaml")); err != nil {
		t.Fatal(err)
	}
	err := f.Reload()
	wantErrors(t, err, []string{"users.yaml: cannot read the users file: open "})
	if f.Users() == nil {
		t.Error("users lost on a failed reload")
	}
}

// Close stops the watcher, and is idempotent (TestStopsWithServer: the
// server closes the hook when it stops).
func TestClose(t *testing.T) {
	f, _ := newTestFile(t, "", true, nil)
	w := f.watch
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.Stopped():
	default:
		t.Fatal("the watcher still runs after Close")
	}
	if err := f.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// A watching hook stops watching when the server it is in stops.
func TestStopsWithServer(t *testing.T) {
	f, _ := newTestFile(t, "", true, nil)
	srv, err := core.New(core.Options{Logger: slog.New(slog.DiscardHandler), SysInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.AddHook(f, 1); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), reloadTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-f.watch.Stopped():
	default:
		t.Error("the hook still watches after the server stopped")
	}
}
