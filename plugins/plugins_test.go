package plugins

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/logtest"
	"github.com/vanemq/vanemq/core/mqtttest"
	"github.com/vanemq/vanemq/core/packets"
	"github.com/vanemq/vanemq/listeners/tcp"
	"github.com/vanemq/vanemq/plugins/wire"
)

const waitTimeout = 10 * time.Second

// buildPlugin builds testdata/testplugin once per test binary run.
var buildOnce struct {
	sync.Once
	path string
	err  error
}

func testPlugin(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "vanemq-testplugin")
		if err != nil {
			buildOnce.err = err
			return
		}
		buildOnce.path = filepath.Join(dir, "testplugin")
		out, err := exec.Command("go", "build", "-o", buildOnce.path, "./testdata/testplugin").CombinedOutput()
		if err != nil {
			buildOnce.err = errors.New(string(out))
		}
	})
	if buildOnce.err != nil {
		t.Fatalf("building the test plugin: %v", buildOnce.err)
	}
	return buildOnce.path
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildOnce.path != "" {
		_ = os.RemoveAll(filepath.Dir(buildOnce.path))
	}
	os.Exit(code)
}

type logBuffer = logtest.Buffer

// broker is a server with the plugin hook and a TCP listener.
type broker struct {
	srv  *core.Server
	hook *Hook
	addr string
	logs *logBuffer
}

func startBroker(t *testing.T, cfg Config) *broker {
	t.Helper()
	logs := &logBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := core.New(core.Options{Logger: log, SysInterval: -1, AllowAnonymous: true})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Path == "" {
		cfg.Path = testPlugin(t)
	}
	cfg.Logger = log
	if cfg.Timeout == 0 {
		// A loaded machine can take longer than the 50ms default for a
		// decision; the tests that test the timeout set their own.
		cfg.Timeout = 5 * time.Second
	}
	h, err := New(cfg, srv)
	if err != nil {
		t.Fatalf("New: %v\n%s", err, logs)
	}
	t.Cleanup(func() { _ = h.Close() })
	if err := srv.AddHook(h, 80); err != nil {
		t.Fatal(err)
	}
	addr := mqtttest.Serve(t, srv, tcp.New("tcp", "127.0.0.1:0"))
	return &broker{srv: srv, hook: h, addr: addr, logs: logs}
}

// client is an MQTT 5 paho client.
type client struct {
	*paho.Client
	msgs chan *paho.Publish
	done <-chan struct{}
}

func dial(t *testing.T, addr, id string) *client {
	t.Helper()
	c := &client{msgs: make(chan *paho.Publish, 64)}
	cli, _, err := mqtttest.ConnectPaho(t, addr, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30, Username: "u-" + id, UsernameFlag: true,
		Properties: &paho.ConnectProperties{RequestProblemInfo: true}}, func(p *paho.Publish) { c.msgs <- p })
	if err != nil {
		t.Fatalf("connect %s: %v", id, err)
	}
	c.Client, c.done = cli, cli.Done()
	return c
}

// publish returns the PUBACK reason code of a QoS 1 publish.
func (c *client) publish(t *testing.T, topic, payload string) byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	r, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte(payload)})
	if r == nil {
		t.Fatalf("publish %s: %v", topic, err)
	}
	return r.ReasonCode
}

// Decisions come from the plugin: an allowed publish gets 0x00 (or 0x10,
// no subscribers), a refused one 0x87 with the plugin's reason string
// [MQTT-3.4.2-1]; observed events reach it in order; Host callbacks
// publish and disconnect.
func TestPluginDecisionsAndEvents(t *testing.T) {
	events := filepath.Join(t.TempDir(), "events.jsonl")
	b := startBroker(t, Config{Config: map[string]any{"mode": "acl", "events": events, "observe": []any{"published", "session"}}})
	if ev := b.srv.Hooks()[0].Events; !ev.Has(core.EventAuthorizePublish) || !ev.Has(core.EventPublished) || ev.Has(core.EventSubscribed) {
		t.Fatalf("events %b: want what the plugin described", ev)
	}
	sub := dial(t, b.addr, "sub")
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := sub.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	pub := dial(t, b.addr, "pub")
	if code := pub.publish(t, "ok/1", "fine"); code != 0 {
		t.Errorf("allowed publish: PUBACK %#x, want 0", code)
	}
	if code := pub.publish(t, "deny/1", "no"); code != 0x87 {
		t.Errorf("refused publish: PUBACK %#x, want 0x87", code)
	}
	select {
	case m := <-sub.msgs:
		if m.Topic != "ok/1" {
			t.Errorf("subscriber got %s", m.Topic)
		}
	case <-time.After(waitTimeout):
		t.Fatal("allowed message not delivered")
	}
	// Host.Publish: connecting as "greet" makes the plugin publish.
	dial(t, b.addr, "greet")
	select {
	case m := <-sub.msgs:
		if m.Topic != "greetings/greet" || string(m.Payload) != "hello u-greet" {
			t.Errorf("plugin's publish: %s %q", m.Topic, m.Payload)
		}
	case <-time.After(waitTimeout):
		t.Fatal("the plugin's Host.Publish did not arrive")
	}
	// Host.Disconnect.
	k := dial(t, b.addr, "kickme")
	select {
	case <-k.done:
	case <-time.After(waitTimeout):
		t.Fatal("the plugin's Host.Disconnect did not close the client")
	}
	// Observed events arrive.
	deadline := time.Now().Add(waitTimeout)
	for {
		data, _ := os.ReadFile(events)
		s := string(data)
		if strings.Contains(s, `"topic":"ok/1"`) && strings.Contains(s, `"event":"session"`) && !strings.Contains(s, `"topic":"deny/1"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("observed events: %s", s)
		}
		time.Sleep(10 * time.Millisecond) // polling, bounded
	}
	if !strings.Contains(b.logs.String(), "test plugin ready") || !strings.Contains(b.logs.String(), "plugin=testplugin") {
		t.Errorf("the plugin's own log line did not reach the broker's log with its name:\n%s", b.logs)
	}
}

// A binary that is missing, not executable, fails its checksum, prints
// garbage instead of the handshake or speaks another protocol version is
// refused at start with an error naming it.
func TestBadBinaries(t *testing.T) {
	good := testPlugin(t)
	dir := t.TempDir()
	notExec := filepath.Join(dir, "notexec")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  Config
		env  string
		want string
	}{
		{"missing", Config{Path: filepath.Join(dir, "nope")}, "", "no such file"},
		{"not executable", Config{Path: notExec}, "", "not an executable file"},
		{"checksum", Config{Path: good, SHA256: strings.Repeat("ab", 32)}, "", "has sha256"},
		{"garbage on stdout", Config{Path: good}, "TESTPLUGIN_GARBAGE=1", "starting plugin"},
		{"wrong protocol", Config{Path: good}, "TESTPLUGIN_WRONG_PROTOCOL=1", "starting plugin"},
		{"bad config", Config{Path: good, Config: map[string]any{"nonsense": 1}}, "", "unknown field"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				k, v, _ := strings.Cut(tc.env, "=")
				t.Setenv(k, v)
			}
			tc.cfg.StartTimeout = 5 * time.Second
			_, err := New(tc.cfg, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.cfg.Path) {
				t.Fatalf("New: %v, want an error naming %s and %q", err, tc.cfg.Path, tc.want)
			}
		})
	}
	// The right checksum is accepted.
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	h, err := New(Config{Path: good, SHA256: hex.EncodeToString(sum[:])}, nil)
	if err != nil {
		t.Fatalf("right checksum: %v", err)
	}
	_ = h.Close()
}

// A plugin that panics, hangs, or returns an invalid verdict: the
// decision follows the failure policy (deny: 0x83), the broker and its
// other clients go on, the plugin goes on too.
func TestFaultyDecisions(t *testing.T) {
	for _, mode := range []string{"panic", "hang", "bad-verdict"} {
		t.Run(mode, func(t *testing.T) {
			b := startBroker(t, Config{Timeout: 200 * time.Millisecond, Config: map[string]any{"mode": mode}})
			pub := dial(t, b.addr, "pub")
			start := time.Now()
			if code := pub.publish(t, "x", "y"); code != 0x83 {
				t.Errorf("%s: PUBACK %#x, want 0x83 (fail closed)", mode, code)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("%s: the decision took %s", mode, d)
			}
			if b.hook.Stats().Failures == 0 {
				t.Error("no failure counted")
			}
			// The broker still serves: a ping round trip.
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			if _, err := pub.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "z", QoS: 0}}}); err != nil {
				t.Errorf("subscribe after the fault: %v", err)
			}
		})
	}
}

// A plugin killed with SIGKILL mid-traffic: decisions follow the policy
// while it is down, the supervisor restarts it, and then they work again.
func TestPluginKilledAndRestarted(t *testing.T) {
	b := startBroker(t, Config{Config: map[string]any{"mode": "acl"}})
	pub := dial(t, b.addr, "pub")
	if code := pub.publish(t, "ok/1", ""); code > 0x10 {
		t.Fatalf("PUBACK %#x before the kill", code)
	}
	pid := b.hook.cur.Load().client.ReattachConfig().Pid
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Until it is back, publishes are refused (deny), never hang.
	deadline := time.Now().Add(waitTimeout)
	sawDown := false
	for {
		code := pub.publish(t, "ok/1", "")
		if code == 0x83 {
			sawDown = true
		}
		if code <= 0x10 && b.hook.Stats().Restarts > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("plugin not back after %s (last PUBACK %#x)\n%s", waitTimeout, code, b.logs)
		}
		time.Sleep(20 * time.Millisecond) // polling, bounded
	}
	_ = sawDown // the window may be too short to see; the restart is what counts
	if !strings.Contains(b.logs.String(), "plugin restarted") {
		t.Errorf("no restart logged:\n%s", b.logs)
	}
}

// Stopping a plugin first sends it every event still queued, and waits
// until it has taken them: a clean stop loses no observed event.
func TestCloseDrainsEvents(t *testing.T) {
	events := filepath.Join(t.TempDir(), "events.jsonl")
	srv, err := core.New(core.Options{Logger: slog.New(slog.DiscardHandler), SysInterval: -1, AllowAnonymous: true})
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(Config{Path: testPlugin(t), Config: map[string]any{"observe_only": true, "observe": []any{"published"}, "events": events}}, srv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	if err := srv.AddHook(h, 10); err != nil {
		t.Fatal(err)
	}
	l := tcp.New("tcp", "127.0.0.1:0")
	if err := srv.AddListener(l); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	const n = 5000
	c := mqtttest.Dial(t, l.Address(), "pub", "")
	for i := range n - 1 {
		c.Send(&packets.Packet{Type: packets.Publish, Topic: "t/" + string(rune('a'+i%26)), Payload: []byte("x")})
	}
	// The last at QoS 1: its PUBACK means the broker has handled them all.
	c.Send(&packets.Packet{Type: packets.Publish, Topic: "t/last", QoS: 1, PacketID: 1})
	c.Flush()
	if p := c.Read(waitTimeout); p == nil || p.Type != packets.Puback {
		t.Fatal("no PUBACK")
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil { // closes the hook (OnStopped)
		t.Fatal(err)
	}
	_ = h.Close()
	data, err := os.ReadFile(events)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Count(string(data), "\n")
	st := h.Stats()
	if uint64(lines)+st.Lost != n {
		t.Errorf("%d events written by the plugin + %d counted lost, want %d", lines, st.Lost, n)
	}
	if st.Lost != 0 {
		t.Logf("%d events dropped for a full queue (counted)", st.Lost)
	}
}

// A plugin that describes itself differently after a restart is followed:
// the broker's pipeline switches to its new events.
func TestRestartedPluginNewEvents(t *testing.T) {
	flag := filepath.Join(t.TempDir(), "observe")
	b := startBroker(t, Config{Config: map[string]any{"mode": "acl", "observe_from": flag}})
	if b.srv.Hooks()[0].Events.Has(core.EventSubscribed) {
		t.Fatal("subscribed observed before the flag")
	}
	if err := os.WriteFile(flag, []byte("subscribed"), 0o600); err != nil {
		t.Fatal(err)
	}
	pid := b.hook.cur.Load().client.ReattachConfig().Pid
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(waitTimeout)
	for !b.srv.Hooks()[0].Events.Has(core.EventSubscribed) {
		if time.Now().After(deadline) {
			t.Fatalf("the restarted plugin's new event was not registered:\n%s", b.logs)
		}
		time.Sleep(20 * time.Millisecond) // polling, bounded
	}
}

// A plugin outlives no broker: when the process that started it dies
// (here a shell killed with SIGKILL, standing for a broker killed with
// SIGKILL), the plugin exits by itself. The broker passes its PID in the
// plugin's environment (wire.BrokerPIDEnv), so the plugin also sees a
// broker that died before the plugin's runtime started, whose orphan is
// re-parented before it can read its parent.
func TestPluginExitsWithBroker(t *testing.T) {
	bin := testPlugin(t)
	handshake := []string{"VANEMQ_PLUGIN=hook-v1-6f1d2c8e", "PLUGIN_PROTOCOL_VERSIONS=1", "PLUGIN_MIN_PORT=0", "PLUGIN_MAX_PORT=0"}
	t.Run("broker dies while the plugin runs", func(t *testing.T) {
		dir := t.TempDir()
		pidFile, out := filepath.Join(dir, "pid"), filepath.Join(dir, "stdout")
		// The shell starts the plugin in the background (it prints
		// go-plugin's handshake line, then waits for a broker that never
		// connects), writes its PID and then waits.
		sh := exec.Command("sh", "-c", `VANEMQ_BROKER_PID=$$ "$0" >"$2" 2>/dev/null & echo $! > "$1"; wait`, bin, pidFile, out)
		sh.Env = append(os.Environ(), handshake...)
		if err := sh.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sh.Process.Kill(); _ = sh.Wait() })
		var pid int
		mqtttest.Eventually(t, waitTimeout, "the shell has started the plugin", func() bool {
			b, err := os.ReadFile(pidFile)
			if err == nil {
				_, _ = fmt.Sscan(strings.TrimSpace(string(b)), &pid)
			}
			return pid != 0
		})
		t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
		mqtttest.Eventually(t, waitTimeout, "the plugin is serving (its handshake line printed)", func() bool {
			b, _ := os.ReadFile(out)
			return bytes.Contains(b, []byte("|grpc"))
		})
		if err := sh.Process.Kill(); err != nil { // the "broker" dies
			t.Fatal(err)
		}
		_ = sh.Wait()
		mqtttest.Eventually(t, waitTimeout, "the plugin has exited after its broker died", func() bool { return !alive(pid) })
	})
	t.Run("broker gone before the plugin starts", func(t *testing.T) {
		// A process that has exited stands for the broker; the plugin's
		// parent is this test, so the plugin must see that its broker is
		// not its parent at once, before any handshake.
		gone := exec.Command("true")
		if err := gone.Run(); err != nil {
			t.Fatal(err)
		}
		p := exec.Command(bin)
		p.Env = append(os.Environ(), append(handshake, wire.BrokerPIDEnv+"="+strconv.Itoa(gone.Process.Pid))...)
		if err := p.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Process.Kill() })
		done := make(chan error, 1)
		go func() { done <- p.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("the plugin exited with %v, want 0", err)
			}
		case <-time.After(waitTimeout):
			t.Fatal("the plugin still runs, though the broker that started it was gone before it started")
		}
	})
}

// alive reports whether a process runs: it exists and is not a zombie
// (an exited child that its new parent has not reaped yet).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses.
	i := bytes.LastIndexByte(b, ')')
	return i > 0 && i+2 < len(b) && b[i+2] != 'Z'
}

// Messages beyond gRPC's default 4 MiB go through a decision and an
// observed event both (MQTT allows payloads up to 256 MB), and an observed
// message is copied when it is queued: the broker reuses its buffers once
// the call returns.
func TestLargeAndReusedMessages(t *testing.T) {
	events := filepath.Join(t.TempDir(), "events.jsonl")
	h, err := New(Config{Path: testPlugin(t), Timeout: 10 * time.Second,
		Config: map[string]any{"mode": "acl", "events": events, "observe": []any{"published"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	cl := &core.ClientInfo{ID: "c1"}
	big := &core.Message{Topic: "ok/big", Payload: bytes.Repeat([]byte("b"), 5<<20)}
	if v := h.AuthorizePublish(context.Background(), cl, big); v != core.Allow {
		t.Fatalf("5 MiB payload: %+v, want Permit", v)
	}
	h.OnPublished(context.Background(), cl, big)
	buf := []byte("before")
	h.OnPublished(context.Background(), cl, &core.Message{Topic: "ok/reused", Payload: buf})
	copy(buf, "AFTER!") // what the broker's reader does with its buffer next
	_ = h.Close()
	if st := h.Stats(); st.Restarts != 0 || st.Lost != 0 || st.Failures != 0 {
		t.Fatalf("stats %+v: want no restart, loss or failure", st)
	}
	data, err := os.ReadFile(events)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d events written, want 2", len(lines))
	}
	var first, second struct{ Topic, Payload string }
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &second); err != nil {
		t.Fatal(err)
	}
	if first.Topic != "ok/big" || len(first.Payload) != 5<<20 {
		t.Errorf("first event: topic %q, %d bytes of payload", first.Topic, len(first.Payload))
	}
	if second.Payload != "before" {
		t.Errorf("second event's payload %q, want the bytes as they were during the call", second.Payload)
	}
}
