package plugins

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/mqtttest"
)

// restartTimeout bounds a wait for the supervisor: a start of the plugin
// binary takes a fraction of a second, many on a loaded machine.
const restartTimeout = 30 * time.Second

// decisionTimeout is the plugins' decision timeout here: the default 50ms
// is short for a plugin's first calls on a loaded machine, and the
// timeout is not what these tests are about.
const decisionTimeout = 5 * time.Second

// pid is the running plugin's process ID.
func (b *broker) pid(t *testing.T) int {
	t.Helper()
	inst := b.hook.cur.Load()
	if inst == nil {
		t.Fatalf("the plugin is not serving:\n%s", b.logs)
	}
	return inst.client.ReattachConfig().Pid
}

// kill kills the running plugin with SIGKILL.
func (b *broker) kill(t *testing.T) {
	t.Helper()
	if err := syscall.Kill(b.pid(t), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
}

// touch creates the file the test plugin's fail_while names.
func touch(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
}

// A plugin that cannot start is never left down for good: the restarts go
// on past max_restarts, with a back-off, the plugin counting as down
// (Health, an error line saying when the next attempt is) and decisions
// following the failure policy; once it can start, it serves again by
// itself.
func TestPluginBacksOffAndComesBack(t *testing.T) {
	fail := filepath.Join(t.TempDir(), "fail")
	b := startBroker(t, Config{Timeout: decisionTimeout, MaxRestarts: 2, RestartDelay: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
		Config: map[string]any{"mode": "acl", "fail_while": fail}})
	pub := dial(t, b.addr, "pub")
	if code := pub.publish(t, "deny/1", ""); code != 0x87 {
		t.Fatalf("PUBACK %#x before the kill, want 0x87 from the plugin", code)
	}
	touch(t, fail)
	b.kill(t)
	mqtttest.Eventually(t, restartTimeout, "restarts go on past max_restarts", func() bool { return b.hook.Restarts() >= 6 })
	if err := b.srv.Health(); err == nil || !strings.Contains(err.Error(), "hook plugin: plugin testplugin is") {
		t.Errorf("Health while the plugin cannot start: %v", err)
	}
	if st := b.srv.Hooks()[0]; st.Unhealthy == "" || st.Restarts < 6 {
		t.Errorf("Hooks: unhealthy %q, restarts %d", st.Unhealthy, st.Restarts)
	}
	if code := pub.publish(t, "deny/1", ""); code != 0x83 {
		t.Errorf("PUBACK %#x while the plugin is down, want 0x83 (on_failure deny)", code)
	}
	logs := b.logs.String()
	for _, want := range []string{
		`msg="plugin restart failed" plugin=testplugin cause=`,
		`msg="plugin is down: it keeps failing; decisions follow the failure policy, and it is restarted with a back-off"`,
		"restarts_in_a_row=2 next_attempt_in=",
		"the test plugin cannot start",
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log lacks %q:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, "stays down") {
		t.Errorf("the plugin was left down:\n%s", logs)
	}

	if err := os.Remove(fail); err != nil {
		t.Fatal(err)
	}
	mqtttest.Eventually(t, restartTimeout, "the plugin serves again by itself", func() bool { return b.srv.Health() == nil })
	if code := pub.publish(t, "deny/1", ""); code != 0x87 {
		t.Errorf("PUBACK %#x once the plugin is back, want 0x87 from the plugin", code)
	}
	if !b.hook.Stats().Up || !strings.Contains(b.logs.String(), `msg="plugin restarted"`) {
		t.Errorf("the plugin is not back:\n%s", b.logs)
	}
}

// While a plugin waits for its restart, Health (and so /readyz and
// vanemq_hook_up) says so, with the cause and when it is tried again.
// SIGHUP then starts it at once, back-off or not, and Health is nil again;
// a SIGHUP while it serves restarts nothing.
func TestPluginRestartOnSIGHUP(t *testing.T) {
	b := startBroker(t, Config{Timeout: decisionTimeout, RestartDelay: time.Hour, MaxBackoff: time.Hour, Config: map[string]any{"mode": "acl"}})
	pub := dial(t, b.addr, "pub")
	first := b.pid(t)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	mqtttest.Eventually(t, waitTimeout, "SIGHUP seen while serving", func() bool {
		return strings.Contains(b.logs.String(), "SIGHUP: the plugin is serving; nothing to restart")
	})
	if b.pid(t) != first || b.hook.Restarts() != 0 || b.srv.Health() != nil {
		t.Fatalf("SIGHUP restarted a serving plugin (restarts %d, health %v)", b.hook.Restarts(), b.srv.Health())
	}

	b.kill(t)
	mqtttest.Eventually(t, waitTimeout, "Health reports the restart due", func() bool {
		err := b.srv.Health()
		return err != nil && strings.Contains(err.Error(), " in a row at ")
	})
	err := b.srv.Health()
	for _, want := range []string{"hook plugin: plugin testplugin is restarting: the plugin process exited", "restart 1 in a row at "} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Health %q lacks %q", err, want)
		}
	}
	if st := b.srv.Hooks()[0]; st.Unhealthy == "" {
		t.Error("Hooks: the restarting plugin is not unhealthy")
	}
	if code := pub.publish(t, "ok/1", ""); code != 0x83 {
		t.Errorf("PUBACK %#x while the plugin waits for its restart, want 0x83", code)
	}

	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	mqtttest.Eventually(t, restartTimeout, "the plugin serves after SIGHUP, an hour before its restart was due", func() bool {
		return b.srv.Health() == nil
	})
	if b.pid(t) == first || b.hook.Restarts() != 1 {
		t.Errorf("after SIGHUP: pid %d (first %d), restarts %d, want a new process and 1", b.pid(t), first, b.hook.Restarts())
	}
	if code := pub.publish(t, "ok/1", ""); code > 0x10 {
		t.Errorf("PUBACK %#x after SIGHUP, want success", code)
	}
	if !strings.Contains(b.logs.String(), `msg="SIGHUP: starting the plugin at once"`) {
		t.Errorf("the log does not say why the plugin started:\n%s", b.logs)
	}
}

// Restart (core.Server.RestartHook, behind the admin API) restarts a
// serving plugin, says why a start failed (the supervisor goes on with its
// back-off), brings a waiting plugin back at once, and names unknown
// hooks and a stopped one.
func TestPluginRestart(t *testing.T) {
	fail := filepath.Join(t.TempDir(), "fail")
	b := startBroker(t, Config{Timeout: decisionTimeout, RestartDelay: time.Hour, MaxBackoff: time.Hour, Config: map[string]any{"mode": "acl", "fail_while": fail}})
	pub := dial(t, b.addr, "pub")
	ctx, cancel := context.WithTimeout(context.Background(), restartTimeout)
	defer cancel()
	first := b.pid(t)
	if err := b.srv.RestartHook(ctx, "plugin"); err != nil {
		t.Fatalf("restart a serving plugin: %v\n%s", err, b.logs)
	}
	if b.pid(t) == first || b.hook.Restarts() != 1 || b.srv.Health() != nil {
		t.Errorf("after Restart: pid %d (first %d), restarts %d, health %v", b.pid(t), first, b.hook.Restarts(), b.srv.Health())
	}
	if code := pub.publish(t, "deny/1", ""); code != 0x87 {
		t.Errorf("PUBACK %#x after Restart, want 0x87 from the plugin", code)
	}

	touch(t, fail)
	err := b.srv.RestartHook(ctx, "plugin")
	if err == nil || !strings.Contains(err.Error(), "hook plugin: restart: ") || !strings.Contains(err.Error(), "the test plugin cannot start") {
		t.Fatalf("restart of a plugin that cannot start: %v", err)
	}
	if h := b.srv.Health(); h == nil || !strings.Contains(h.Error(), "is restarting") {
		t.Errorf("Health after a failed restart: %v", h)
	}
	if code := pub.publish(t, "deny/1", ""); code != 0x83 {
		t.Errorf("PUBACK %#x while down, want 0x83", code)
	}

	if err := os.Remove(fail); err != nil {
		t.Fatal(err)
	}
	if err := b.srv.RestartHook(ctx, "plugin"); err != nil {
		t.Fatalf("restart of a plugin waiting an hour: %v\n%s", err, b.logs)
	}
	if b.srv.Health() != nil || b.hook.Restarts() != 3 {
		t.Errorf("after the restart: health %v, restarts %d, want nil and 3", b.srv.Health(), b.hook.Restarts())
	}
	if st := b.srv.Hooks()[0]; st.Restarts != 3 {
		t.Errorf("Hooks: restarts %d, want 3", st.Restarts)
	}
	if code := pub.publish(t, "deny/1", ""); code != 0x87 {
		t.Errorf("PUBACK %#x after the restart, want 0x87 from the plugin", code)
	}

	if err := b.srv.RestartHook(ctx, "plugin:nope"); !errors.Is(err, core.ErrNoHook) {
		t.Errorf("restart of an unknown hook: %v, want ErrNoHook", err)
	}
	_ = b.hook.Close()
	if err := b.hook.Restart(ctx); !errors.Is(err, errClosed) {
		t.Errorf("restart of a stopped hook: %v", err)
	}
	if h := b.hook.Health(); h == nil || !strings.Contains(h.Error(), "is stopped") {
		t.Errorf("Health of a stopped hook: %v", h)
	}
}
