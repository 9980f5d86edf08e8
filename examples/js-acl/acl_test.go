package jsacl_test

// End-to-end tests of the example: a broker in this process with the js
// hook made from the shipped vanemq.yaml and acl.js, and real MQTT 5
// (paho.golang) and MQTT 3.1.1 (paho.mqtt.golang) clients over TCP.
// binary_test.go runs the vanemq binary with the same files.

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/mqtttest"
	"github.com/vanemq/vanemq/core/packets"
	"github.com/vanemq/vanemq/hooks/js"
	"github.com/vanemq/vanemq/listeners/tcp"
)

// broker is the example running in process.
type broker struct {
	srv  *core.Server
	hook *js.Hook
	addr string
	dir  string     // holds the copies of vanemq.yaml and acl.js in use
	logs *logBuffer // the broker's and the script's log
}

// startBroker copies the example into a temporary directory and starts a
// broker on a free loopback port with what its vanemq.yaml says:
// allow_anonymous, and the js hook with its config block and priority.
func startBroker(t *testing.T) *broker {
	t.Helper()
	b := &broker{dir: copyExample(t), logs: &logBuffer{}}
	cfg := readConfig(t, b.dir)
	logger := slog.New(slog.NewTextHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	srv, err := core.New(core.Options{AllowAnonymous: cfg.allowAnonymous, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	hc := cfg.hook
	hc.Dir = b.dir // as the vanemq binary does: paths relative to the config file
	// The rules are under test, not the shipped 10ms per call, which a
	// loaded machine running the race detector can exceed.
	hc.Timeout = 2 * time.Second
	hc.Logger = logger.With("hook", js.ID)
	h, err := js.New(hc, srv)
	if err != nil {
		t.Fatalf("js.New: %v", err)
	}
	t.Cleanup(func() { _ = h.Close() }) // runs after Shutdown, which closes it too
	if err := srv.AddHook(h, cfg.priority); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // after Serve's shutdown, so the log has it too
		if t.Failed() {
			t.Logf("broker log:\n%s", b.logs)
		}
	})
	b.srv, b.hook, b.addr = srv, h, mqtttest.Serve(t, srv, tcp.New("tcp", "127.0.0.1:0"))
	return b
}

// TestShippedConfig checks what the tests rely on in vanemq.yaml.
func TestShippedConfig(t *testing.T) {
	cfg := readConfig(t, ".")
	admins, _ := cfg.hook.Vars["admins"].([]any)
	if cfg.hook.Script != "acl.js" || cfg.priority != 50 || !cfg.allowAnonymous || len(admins) == 0 || admins[0] != "admin" {
		t.Errorf("vanemq.yaml: %+v; want script acl.js at priority 50, allow_anonymous, admins starting with admin", cfg)
	}
}

// TestRules walks the rules of acl.js with MQTT 5 clients: each publish and
// subscribe below gets the reason code in the table. An admin subscribed to
// "#" (itself a rule under test) sees every allowed publish, in order, and
// none of the refused ones.
func TestRules(t *testing.T) {
	b := startBroker(t)
	watcher := connectV5(t, b.addr, "admin-all", "admin")
	if code := watcher.subscribe(t, "#"); code != 1 {
		t.Fatalf("admin: subscribe to #: SUBACK %#x, want QoS 1 granted", code)
	}
	clients := map[string]*v5{
		"alice":    connectV5(t, b.addr, "alice", "alice"),
		"bob":      connectV5(t, b.addr, "bob", "bob"),
		"admin":    connectV5(t, b.addr, "admin-1", "admin"),
		"ops":      connectV5(t, b.addr, "ops-1", "ops"),
		"device-7": connectV5(t, b.addr, "device-7", "device-7"),
	}

	const (
		granted = 0x01 // QoS 1, as asked
		ok      = 0x00 // PUBACK success (someone, the watcher, subscribed)
		denied  = byte(packets.NotAuthorized)
	)
	tests := []struct {
		who, action, topic string
		want               byte
		reason             string // in the PUBACK's reason string
	}{
		// Every user owns users/{username}/#.
		{"alice", "pub", "users/alice/x", ok, ""},
		{"alice", "pub", "users/alice/a/b/c", ok, ""},
		{"alice", "sub", "users/alice/#", granted, ""},
		{"alice", "sub", "users/alice/+/status", granted, ""},
		{"alice", "sub", "users/alice", granted, ""},
		{"alice", "sub", "$share/workers/users/alice/jobs", granted, ""},
		{"alice", "pub", "users/bob/x", denied, "publishing to users/bob/x is not allowed; yours is users/alice/#"},
		{"alice", "pub", "users/alicex/y", denied, "not allowed"},
		{"alice", "sub", "users/bob/#", denied, ""},
		{"alice", "sub", "users/+/x", denied, ""},
		{"alice", "sub", "$share/workers/users/bob/#", denied, ""},
		{"alice", "sub", "#", denied, ""},
		{"alice", "pub", "public/x", denied, "not allowed"},
		{"bob", "pub", "users/bob/x", ok, ""},
		{"bob", "pub", "users/alice/x", denied, "yours is users/bob/#"},
		// $SYS: admins read it; nobody else does, and nobody writes it.
		{"alice", "sub", "$SYS/#", denied, ""},
		{"alice", "sub", "$SYS/broker/uptime", denied, ""},
		{"alice", "pub", "$SYS/broker/uptime", denied, "$SYS topics are the broker's"},
		{"admin", "sub", "$SYS/#", granted, ""},
		{"ops", "sub", "$SYS/broker/+", granted, ""},
		{"admin", "pub", "$SYS/broker/uptime", denied, "$SYS topics are the broker's"},
		// Admins read everything, and write like any user.
		{"admin", "sub", "users/+/x", granted, ""},
		{"ops", "sub", "devices/#", granted, ""},
		{"admin", "pub", "users/admin/notes", ok, ""},
		{"admin", "pub", "users/alice/x", denied, "yours is users/admin/#"},
		// Devices: their telemetry out, their commands in, nothing else.
		{"device-7", "pub", "devices/device-7/telemetry", ok, ""},
		{"device-7", "pub", "devices/device-8/telemetry", denied, "a device may publish to devices/device-7/telemetry only"},
		{"device-7", "pub", "devices/device-7/telemetry/extra", denied, "devices/device-7/telemetry only"},
		{"device-7", "pub", "users/device-7/x", denied, "devices/device-7/telemetry only"},
		{"device-7", "sub", "devices/device-7/commands/#", granted, ""},
		{"device-7", "sub", "devices/device-7/commands/reboot", granted, ""},
		{"device-7", "sub", "devices/device-7/#", denied, ""},
		{"device-7", "sub", "devices/+/commands/#", denied, ""},
		{"device-7", "sub", "users/device-7/#", denied, ""},
		{"bob", "pub", "devices/device-7/telemetry", denied, "not allowed"},
	}
	for i, tc := range tests {
		name := fmt.Sprintf("%s %s %s", tc.who, tc.action, tc.topic)
		c := clients[tc.who]
		switch tc.action {
		case "sub":
			if code := c.subscribe(t, tc.topic); code != tc.want {
				t.Errorf("%s: SUBACK %#x, want %#x", name, code, tc.want)
			}
		case "pub":
			payload := fmt.Sprintf("step %d", i)
			code, reason := c.publish(t, tc.topic, payload)
			if code != tc.want || !strings.Contains(reason, tc.reason) {
				t.Errorf("%s: PUBACK %#x %q, want %#x with a reason containing %q", name, code, reason, tc.want, tc.reason)
			}
			if code != ok || strings.HasPrefix(tc.topic, "$") {
				continue // "#" does not match $ topics
			}
			// The PUBACK came after the message was queued for the watcher,
			// so it is the next one: a refused message before it would show.
			if m := watcher.next(t); m.Topic != tc.topic || string(m.Payload) != payload {
				t.Errorf("%s: the admin watching # received %q on %s, want %q", name, m.Payload, m.Topic, payload)
			}
		}
	}

	// The admin subscribed to $SYS/# gets the broker's retained $SYS topics.
	// (next fails the test when nothing comes.)
	admin := clients["admin"]
	for m := admin.next(t); !strings.HasPrefix(m.Topic, "$SYS/"); m = admin.next(t) {
		t.Logf("admin-1 also received %s", m.Topic) // for users/+/x or devices/#
	}

	// The script's refusals are logged at debug level, with its line.
	if !within(b.logs.String(), `msg="refused publish users/bob/x for alice (client alice): publishing to users/bob/x is not allowed`, "script=acl.js line=") {
		t.Errorf("the log lacks acl.js's debug line for alice's refused publish")
	}
	if n := b.hook.Failures(); n != 0 {
		t.Errorf("the hook failed %d times", n)
	}
	if strings.Contains(b.logs.String(), "under its old name") {
		t.Errorf("acl.js uses an old function name:\n%s", b.logs)
	}
}

// TestConnectRules checks connect: a username is required, it must not
// hold wildcards, and a device's client ID is its username.
func TestConnectRules(t *testing.T) {
	b := startBroker(t)
	tests := []struct {
		name, clientID, user string
		want                 packets.ReasonCode
	}{
		{"no username", "anon", "", packets.BadUsernameOrPassword},
		{"wildcard username", "wild", "a+b", packets.BadUsernameOrPassword},
		{"slash in username", "slash", "alice/x", packets.BadUsernameOrPassword},
		{"device under another client ID", "device-8", "device-7", packets.ClientIdentifierNotValid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, ca, err := dialV5(t, b.addr, tc.clientID, tc.user)
			if err == nil || ca == nil || ca.ReasonCode != byte(tc.want) {
				t.Errorf("CONNACK %+v, error %v; want reason code %#x", ca, err, byte(tc.want))
			}
		})
	}
	connectV5(t, b.addr, "device-7", "device-7")
	if !within(b.logs.String(), "level=WARN", `msg="device device-7 connected with client ID device-8 from 127.0.0.1:`) {
		t.Errorf("the log lacks acl.js's warning about device-7's client ID")
	}
	if n := b.hook.Failures(); n != 0 {
		t.Errorf("the hook failed %d times", n)
	}
}

// TestRulesMQTT311 checks the rules with an MQTT 3.1.1 client, which has no
// way to be told of a refused publish: the broker acknowledges it and drops
// it. The admin watching # sees the marker published after it, and not it.
func TestRulesMQTT311(t *testing.T) {
	b := startBroker(t)
	watcher := connectV5(t, b.addr, "admin-all", "admin")
	if code := watcher.subscribe(t, "#"); code != 1 {
		t.Fatalf("admin: subscribe to #: SUBACK %#x", code)
	}
	bob := connectV311(t, b.addr, "bob-311", "bob")
	if code := bob.subscribe(t, "users/bob/#"); code != 1 {
		t.Errorf("bob: subscribe to users/bob/#: SUBACK %#x, want QoS 1", code)
	}
	if code := bob.subscribe(t, "users/alice/#"); code != 0x80 {
		t.Errorf("bob: subscribe to users/alice/#: SUBACK %#x, want 0x80 (failure)", code)
	}
	if code := bob.subscribe(t, "$SYS/#"); code != 0x80 {
		t.Errorf("bob: subscribe to $SYS/#: SUBACK %#x, want 0x80 (failure)", code)
	}
	bob.publish(t, "users/alice/x", "refused")
	bob.publish(t, "users/bob/marker", "allowed")
	// bob's two messages reach the watcher in order, if at all: the first
	// one it gets must be the marker.
	if m := watcher.next(t); m.Topic != "users/bob/marker" || string(m.Payload) != "allowed" {
		t.Errorf("the admin watching # received %q on %s first, want bob's marker (his refused publish must not arrive)", m.Payload, m.Topic)
	}
	if n := b.hook.Failures(); n != 0 {
		t.Errorf("the hook failed %d times", n)
	}
}

// TestLiveReload edits acl.js while a client publishes in a loop: the new
// rules (SHARED = ["public/#"]) take effect without a restart, and no
// publish of the loop is refused or lost to the swap. Then a broken edit
// (a syntax error) is refused with the file, line and column in the log,
// and the rules in force stay.
func TestLiveReload(t *testing.T) {
	b := startBroker(t)
	script := filepath.Join(b.dir, "acl.js")
	original, err := os.ReadFile(script)
	if err != nil {
		t.Fatal(err)
	}
	const before, after = "var SHARED = [];", `var SHARED = ["public/#"];`
	if n := strings.Count(string(original), before); n != 1 {
		t.Fatalf("acl.js holds %q %d times, want once", before, n)
	}
	watcher := connectV5(t, b.addr, "admin-all", "admin")
	if code := watcher.subscribe(t, "users/alice/#"); code != 1 {
		t.Fatalf("admin: subscribe: SUBACK %#x", code)
	}
	alice := connectV5(t, b.addr, "alice", "alice")
	bob := connectV5(t, b.addr, "bob", "bob")
	if code, _ := bob.publish(t, "public/x", "before"); code != byte(packets.NotAuthorized) {
		t.Fatalf("bob: publish to public/x before the edit: PUBACK %#x, want 0x87", code)
	}

	// alice publishes until told to stop (at most maxLoop messages); each
	// PUBACK must be 0x00: allowed, and routed to the watcher.
	const maxLoop = 20000
	var sent atomic.Int64
	stop := make(chan struct{})
	loopDone := make(chan error, 1)
	go func() {
		for i := range maxLoop {
			select {
			case <-stop:
				loopDone <- nil
				return
			default:
			}
			code, reason, err := alice.tryPublish(context.Background(), "users/alice/loop", fmt.Sprint(i))
			if err == nil && code != 0 {
				err = fmt.Errorf("PUBACK %#x %q", code, reason)
			}
			if err != nil {
				loopDone <- fmt.Errorf("publish %d: %w", i, err)
				return
			}
			sent.Add(1)
		}
		loopDone <- fmt.Errorf("the loop ran out (%d publishes) before the reload was seen", maxLoop)
	}()
	loopError := func() error {
		select {
		case err := <-loopDone:
			if err == nil {
				err = fmt.Errorf("the loop stopped early")
			}
			return err
		default:
			return nil
		}
	}
	waitFor(t, "alice's loop to get going", func() bool { return sent.Load() >= 50 })

	// The edit, written as editors and deployment tools do: a new file
	// renamed over the old one.
	replace(t, script, strings.Replace(string(original), before, after, 1))
	atEdit := sent.Load()
	waitFor(t, "bob's publish to public/x to be allowed", func() bool {
		if err := loopError(); err != nil {
			t.Fatalf("alice's loop: %v", err)
		}
		code, _ := bob.publish(t, "public/x", "after")
		return code < 0x80 // 0x10, no matching subscribers: allowed
	})
	atReload := sent.Load()
	// Let the loop go on a little under the new script, then stop it.
	waitFor(t, "alice's loop to go on after the reload", func() bool { return sent.Load() >= atReload+100 })
	close(stop)
	select {
	case err := <-loopDone:
		if err != nil {
			t.Fatalf("alice's loop: %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("alice's loop did not stop")
	}
	total := sent.Load()
	waitFor(t, "the watcher to receive all of alice's messages", func() bool { return watcher.got.Load() == total })
	if n := b.hook.Failures(); n != 0 {
		t.Errorf("the hook failed %d times during the reload", n)
	}
	if !within(b.logs.String(), `msg="script reloaded"`, `trigger="file change"`) {
		t.Errorf("the log does not say the script was reloaded on the file change")
	}
	t.Logf("alice published %d messages: %d before the edit, %d until the new rule was seen, %d after", total, atEdit, atReload-atEdit, total-atReload)

	// A mistake: the edit does not compile. The old script stays in force,
	// and the log names the file, line and column.
	broken := strings.Replace(string(original), before, after+"\n  ) // a stray parenthesis", 1)
	line := strings.Count(broken[:strings.Index(broken, "  ) //")], "\n") + 1
	replace(t, script, broken)
	waitFor(t, "the log to report the failed reload", func() bool {
		return strings.Contains(b.logs.String(), "script reload failed")
	})
	if want := fmt.Sprintf("acl.js: Line %d:3 Unexpected token )", line); !strings.Contains(b.logs.String(), want) {
		t.Errorf("the failed reload's log line lacks %q:\n%s", want, b.logs)
	}
	if code, _ := bob.publish(t, "public/x", "still"); code >= 0x80 {
		t.Errorf("after the broken edit, bob's publish to public/x got PUBACK %#x; the previous script should still allow it", code)
	}
	if code, _ := bob.publish(t, "users/alice/x", "still"); code != byte(packets.NotAuthorized) {
		t.Errorf("after the broken edit, bob's publish to users/alice/x got PUBACK %#x, want 0x87", code)
	}
}

// replace writes content to a new file next to path and renames it over
// path, so that the hook never reads a half-written script.
func replace(t *testing.T, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), ".acl.js.tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}
