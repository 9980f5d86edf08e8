package pluginexample_test

// End-to-end tests of the example: the two plugins built with go build and
// run by the plugin hook (package plugins) in a broker in this process,
// with the settings of the shipped vanemq.yaml, and real MQTT 5
// (paho.golang) and MQTT 3.1.1 (paho.mqtt.golang) clients over TCP.
// binary_test.go runs them under the vanemq binary.

import (
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/mqtttest"
	"github.com/vanemq/vanemq/listeners/tcp"
	"github.com/vanemq/vanemq/plugins"
)

// run is one plugin for startBroker: its hook config and priority.
type run struct {
	cfg      plugins.Config
	priority int
}

// authRun is the auth plugin as the shipped vanemq.yaml configures it,
// with the binary built by the test; the users file is the shipped one,
// found from the repository's root as the broker would (the broker's
// working directory is the root in the README's commands).
func authRun(t *testing.T, s shipped) run {
	t.Helper()
	cfg := s.auth.cfg
	cfg.Path = build(t, authPkg)
	block := s.auth.pluginConfig(t)
	users, _ := block["users"].(string)
	block["users"] = filepath.Join(repoRoot(t), users)
	cfg.Config = block
	return run{cfg: cfg, priority: s.auth.priority}
}

// auditRun is the audit plugin as the shipped vanemq.yaml configures it,
// writing to file, on topics when not nil.
func auditRun(t *testing.T, s shipped, file string, topics []string) run {
	t.Helper()
	cfg := s.audit.cfg
	cfg.Path = build(t, auditPkg)
	block := s.audit.pluginConfig(t)
	block["file"] = file
	if topics != nil {
		block["topics"] = topics
	}
	cfg.Config = block
	return run{cfg: cfg, priority: s.audit.priority}
}

// broker is a server in this process with plugins and a TCP listener.
type broker struct {
	srv   *core.Server
	hooks []*plugins.Hook
	addr  string
	logs  *logBuffer
}

// startBroker starts a broker on a free loopback port with the plugins.
func startBroker(t *testing.T, allowAnonymous bool, runs ...run) *broker {
	t.Helper()
	b := &broker{logs: &logBuffer{}}
	logger := slog.New(slog.NewTextHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := core.New(core.Options{Logger: logger, AllowAnonymous: allowAnonymous, SysInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("broker log:\n%s", b.logs)
		}
	})
	for _, r := range runs {
		cfg := r.cfg
		cfg.Logger = logger.With("hook", cfg.Name)
		h, err := plugins.New(cfg, srv)
		if err != nil {
			t.Fatalf("plugins.New(%s): %v", cfg.Path, err)
		}
		t.Cleanup(func() { _ = h.Close() }) // after Shutdown, which closes it too
		if err := srv.AddHook(h, r.priority); err != nil {
			t.Fatal(err)
		}
		b.hooks = append(b.hooks, h)
	}
	b.srv, b.addr = srv, mqtttest.Serve(t, srv, tcp.New("tcp", "127.0.0.1:0"))
	return b
}

// TestShippedConfig checks what the README says of vanemq.yaml.
func TestShippedConfig(t *testing.T) {
	s := readShipped(t)
	if s.allowAnonymous {
		t.Error("allow_anonymous: true; want false, so that only the auth plugin lets clients in")
	}
	if s.auth.priority != 100 || s.audit.priority != 10 {
		t.Errorf("priorities: auth %d, audit %d; want 100 and 10", s.auth.priority, s.audit.priority)
	}
	if s.auth.cfg.Timeout < time.Second {
		t.Errorf("auth timeout %s: want at least 1s, several bcrypt checks' time", s.auth.cfg.Timeout)
	}
	if s.auth.cfg.OnFailure != core.FailDeny {
		t.Errorf("auth on_failure %q: want %q, failing closed", s.auth.cfg.OnFailure, core.FailDeny)
	}
	// The plugins' paths are relative to vanemq.yaml's directory and name
	// the README's build outputs, bin/vanemq-auth and bin/vanemq-audit.
	for _, h := range []shippedHook{s.auth, s.audit} {
		if got, want := filepath.Clean(h.cfg.Path), filepath.Join("..", "..", "bin", filepath.Base(h.cfg.Path)); got != want {
			t.Errorf("path %s: want %s", got, want)
		}
	}
	// The plugins' own files are relative to the broker's working
	// directory, the repository's root in the README's commands.
	users, _ := s.auth.pluginConfig(t)["users"].(string)
	if _, err := os.Stat(filepath.Join(repoRoot(t), users)); err != nil {
		t.Errorf("users file: %v", err)
	}
	if file, _ := s.audit.pluginConfig(t)["file"].(string); !strings.HasPrefix(file, "bin/") {
		t.Errorf("audit file %q: want it under bin/, which git ignores", file)
	}
}

// The auth plugin lets in the users of the shipped users.json with their
// passwords, and refuses everyone else with Bad User Name or Password:
// CONNACK 0x86 with the plugin's reason string for MQTT 5, return code 4
// for MQTT 3.1.1.
func TestAuth(t *testing.T) {
	s := readShipped(t)
	b := startBroker(t, s.allowAnonymous, authRun(t, s))

	connectV5(t, b.addr, "alice-5", "alice", "alice-secret")
	connectV5(t, b.addr, "bob-5", "bob", "bob-secret")
	refusedV5(t, b.addr, "wrong-5", "alice", "bob-secret")
	refusedV5(t, b.addr, "unknown-5", "mallory", "alice-secret")
	refusedV5(t, b.addr, "nopass-5", "alice", "")
	refusedV5(t, b.addr, "anon-5", "", "")

	if c, code := connectV311(t, b.addr, "alice-3", "alice", "alice-secret"); c == nil || code != 0 {
		t.Errorf("MQTT 3.1.1 alice with her password: return code %d, want 0", code)
	}
	for _, tc := range []struct{ user, password string }{{"alice", "nope"}, {"mallory", "alice-secret"}} {
		if c, code := connectV311(t, b.addr, "bad-3", tc.user, tc.password); c != nil || code != 4 {
			t.Errorf("MQTT 3.1.1 %s with password %q: return code %d, want 4 (bad user name or password)", tc.user, tc.password, code)
		}
	}

	if f := b.hooks[0].Stats().Failures; f != 0 {
		t.Errorf("%d decisions failed (timeouts?); want every one made by the plugin", f)
	}
	logs := b.logs.String()
	if !strings.Contains(logs, `msg="plugin started" hook=plugin:auth plugin=auth`) || !strings.Contains(logs, "events=[authenticate:decision]") {
		t.Errorf("no start-up line for the auth plugin with its event")
	}
	if !strings.Contains(logs, `msg="users loaded"`) || !strings.Contains(logs, "users=2") {
		t.Errorf("the plugin's own log line (sdk.Logger) did not reach the broker's log")
	}
	if strings.Contains(logs, "alice-secret") || strings.Contains(logs, "bob-secret") {
		t.Errorf("a password is in the log")
	}
}

// The audit plugin writes one line per published message on its topics,
// QoS 0 and 1, from MQTT 5 and 3.1.1 clients, with the publisher's client
// ID and user name, the payload as a string when it is UTF-8 and in
// base64 otherwise, and nothing for other topics.
func TestAudit(t *testing.T) {
	s := readShipped(t)
	file := filepath.Join(t.TempDir(), "audit.jsonl")
	start := time.Now()
	b := startBroker(t, true, auditRun(t, s, file, []string{"audit/#"}))

	c5 := connectV5(t, b.addr, "pub-5", "carol", "")
	publishV5(t, c5, "audit/zero", []byte("qos 0"), 0, false)
	publishV5(t, c5, "skip/me", []byte("not audited"), 1, false)
	publishV5(t, c5, "audit/one", []byte("qos 1, retained ✓"), 1, true)
	publishV5(t, c5, "audit/bin", []byte{0xff, 0x00, 0xfe}, 1, false)
	publishV5(t, c5, "audit/last", nil, 0, false)
	c3, _ := connectV311(t, b.addr, "pub-3", "dave", "")
	if c3 == nil {
		t.Fatal("MQTT 3.1.1 client refused")
	}
	if tok := c3.Publish("audit/v311", 1, false, "from 3.1.1"); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		t.Fatalf("MQTT 3.1.1 publish: %v", tok.Error())
	}

	want := []auditLine{
		{ClientID: "pub-5", Username: "carol", Topic: "audit/zero", QoS: 0, Payload: "qos 0"},
		{ClientID: "pub-5", Username: "carol", Topic: "audit/one", QoS: 1, Retain: true, Payload: "qos 1, retained ✓"},
		{ClientID: "pub-5", Username: "carol", Topic: "audit/bin", QoS: 1, PayloadBase64: "/wD+"},
		{ClientID: "pub-5", Username: "carol", Topic: "audit/last", QoS: 0},
		{ClientID: "pub-3", Username: "dave", Topic: "audit/v311", QoS: 1, Payload: "from 3.1.1"},
	}
	got := waitAudit(t, file, len(want))
	end := time.Now()
	for i := range got {
		at, err := time.Parse(time.RFC3339Nano, got[i].Time)
		if err != nil || at.Before(start) || at.After(end) {
			t.Errorf("line %d: time %q (%v), want RFC 3339 between %s and %s", i, got[i].Time, err, start, end)
		}
		got[i].Time = ""
	}
	// The two clients' lines may interleave; each client's are in order.
	byClient := func(ls []auditLine, id string) []auditLine {
		return slices.DeleteFunc(slices.Clone(ls), func(l auditLine) bool { return l.ClientID != id })
	}
	if len(got) != len(want) || !slices.Equal(byClient(got, "pub-5"), byClient(want, "pub-5")) ||
		!slices.Equal(byClient(got, "pub-3"), byClient(want, "pub-3")) {
		t.Errorf("audit lines:\n got %+v\nwant %+v", got, want)
	}
	// The hook counts a batch as sent once the send returns, which may be
	// after the plugin has written it.
	waitFor(t, "the hook to count the events sent", func() bool { return b.hooks[0].Stats().Sent >= uint64(len(want)) })
	if st := b.hooks[0].Stats(); st.Lost != 0 || st.Sent != uint64(len(want)) {
		t.Errorf("hook stats %+v: want %d sent, none lost", st, len(want))
	}
}

// Both plugins in one broker, as in vanemq.yaml: auth decides who
// connects, and audit records who published what.
func TestBothPlugins(t *testing.T) {
	s := readShipped(t)
	file := filepath.Join(t.TempDir(), "audit.jsonl")
	b := startBroker(t, s.allowAnonymous, authRun(t, s), auditRun(t, s, file, nil))
	if hs := b.srv.Hooks(); len(hs) != 2 || !hs[0].Events.Has(core.EventAuthenticate) || !hs[1].Events.Has(core.EventPublished) {
		t.Fatalf("hooks %+v: want auth, then audit", hs)
	}

	alice := connectV5(t, b.addr, "alice-1", "alice", "alice-secret")
	refusedV5(t, b.addr, "intruder", "alice", "guess")
	publishV5(t, alice, "sensors/1/temp", []byte("21.5"), 1, false)

	got := waitAudit(t, file, 1)
	if len(got) != 1 || got[0].ClientID != "alice-1" || got[0].Username != "alice" || got[0].Topic != "sensors/1/temp" || got[0].Payload != "21.5" {
		t.Errorf("audit lines %+v: want alice's one publish", got)
	}
}
