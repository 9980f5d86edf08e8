package main

import (
	"bytes"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/mqtttest"
	"github.com/vanemq/vanemq/hooks/auth"
	"github.com/vanemq/vanemq/listeners/tcp"
)

// authFileBroker starts an in-process vanemq with the acl command's
// auth.file (its users file and ACL, loaded by the real hook) and returns
// its address.
func authFileBroker(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	users, err := aclUsersFile(aclUsers())
	if err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{"users.yaml": users, "acl.yaml": aclRules} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	srv, err := core.New(core.Options{
		MaxQueuedMessages: 1 << 20,
		SysInterval:       -1,
		Logger:            slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatalf("core.New: %v", err)
	}
	f, err := auth.NewFile(auth.FileOptions{Users: filepath.Join(dir, "users.yaml"), ACL: filepath.Join(dir, "acl.yaml"),
		Guard: auth.GuardOptions{Queue: 256}})
	if err != nil {
		t.Fatalf("auth.NewFile: %v", err)
	}
	if err := srv.AddHook(f, 100); err != nil {
		t.Fatal(err)
	}
	return mqtttest.Serve(t, srv, tcp.New("tcp", "127.0.0.1:0"))
}

// TestFanoutAuthFile runs the acl command's fan-out, briefly, against
// auth.file: every client logs in with its own user, the publisher rotates
// over its topics, and the subscribers on # receive those they may read.
func TestFanoutAuthFile(t *testing.T) {
	pid := strconv.Itoa(os.Getpid())
	addr := authFileBroker(t)
	common := []string{"-scenario", "fanout", "-addr", addr, "-qos", "1", "-subscribers", "5", "-filter", "#",
		"-username", aclUsername, "-password", aclPassword, "-duration", "300ms", "-warmup", "0", "-drain", "10s",
		"-broker-pid", pid}

	t.Run("allowed topics", func(t *testing.T) {
		res := runBenchJSON(t, slices.Concat(common, []string{"-topics", "8", "-topic-pattern", aclTopicPattern, "-label", t.Name()})...)
		checkMessageResult(t, res, "fanout", true)
		if res.Topics != 8 || res.Filter != "#" || res.Subscribers != 5 {
			t.Errorf("topics %d, filter %q, subscribers %d; want 8, #, 5", res.Topics, res.Filter, res.Subscribers)
		}
	})
	// Every other message is on a topic the subscribers may not read: half
	// of the deliveries are missing, which shows that the publisher
	// rotates message by message and that the broker checks each one.
	t.Run("every other topic denied", func(t *testing.T) {
		res := runBenchJSON(t, slices.Concat(common, []string{"-topics", "2", "-topic-pattern", "public/" + topicNumber + ",secret/" + topicNumber})...)
		if res.Sent < 100 || math.Abs(res.LossPct-50) > 1 {
			t.Errorf("sent %d, received %d of %d (loss %v %%); want half of at least 100 messages lost", res.Sent, res.Received, res.Expected, res.LossPct)
		}
	})
	t.Run("no credentials", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		args := []string{"-scenario", "fanout", "-addr", addr, "-subscribers", "1", "-duration", "100ms", "-warmup", "0", "-json"}
		if code := runCLI(t.Context(), args, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "CONNACK refused the connection") {
			t.Errorf("exit status %d, stderr %q: want 1 and a refused CONNACK", code, stderr.String())
		}
	})
}

// TestAuthFileConfig checks the auth.file configuration's YAML and files.
func TestAuthFileConfig(t *testing.T) {
	var cfg struct {
		Listeners []struct {
			ID, Type, Address string
		}
		AllowAnonymous *bool `yaml:"allow_anonymous"`
		MQTT           struct {
			SysInterval int `yaml:"sys_interval"`
		}
		Log     struct{ Level string }
		Storage struct{ Type string }
		Hooks   []struct {
			ID       string
			Priority int
			Config   struct {
				Users, ACL  string
				VerifyQueue int `yaml:"verify_queue"`
			}
		}
	}
	dec := yaml.NewDecoder(strings.NewReader(vanemqAuthFileConfig(41883, "u.yaml", "a.yaml")))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Listeners) != 1 || cfg.Listeners[0].Address != "127.0.0.1:41883" || cfg.Storage.Type != "memory" || cfg.MQTT.SysInterval != 0 {
		t.Errorf("not compare's configuration: %+v", cfg)
	}
	if cfg.AllowAnonymous == nil || *cfg.AllowAnonymous {
		t.Error("allow_anonymous is not false: every client must log in through auth.file")
	}
	if len(cfg.Hooks) != 1 || cfg.Hooks[0].ID != "auth.file" || cfg.Hooks[0].Config.Users != "u.yaml" || cfg.Hooks[0].Config.ACL != "a.yaml" ||
		cfg.Hooks[0].Config.VerifyQueue < aclSubscribers+aclPublishers {
		t.Errorf("hooks = %+v", cfg.Hooks)
	}

	dir := t.TempDir()
	p, err := writeAuthFileConfig(dir, 41883)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(p)
	if err != nil || string(data) != vanemqAuthFileConfig(41883, "users.yaml", "acl.yaml") {
		t.Errorf("%s: %q, %v", p, data, err)
	}
	users, err := auth.ParseUsers("users.yaml", mustRead(t, filepath.Join(dir, "users.yaml")))
	if err != nil {
		t.Fatal(err)
	}
	want := aclUsers()
	if len(want) != aclSubscribers+aclPublishers || want[0] != "bench-s0" || want[len(want)-1] != "bench-p0" {
		t.Errorf("aclUsers = %q", want)
	}
	if got := users.Len(); got != len(want) {
		t.Errorf("users file has %d users, want %d", got, len(want))
	}
	acl, err := auth.ParseACL("acl.yaml", mustRead(t, filepath.Join(dir, "acl.yaml")))
	if err != nil {
		t.Fatal(err)
	}
	// The rules: # is granted beside the deny rule, the
	// publisher's topics are readable, secret/ is not.
	if ok, _ := acl.CanSubscribe("bench-s0", "c", "#"); !ok {
		t.Error("# is refused")
	}
	for _, topic := range []string{"public/news/0", "sensors/7/temperature", "users/bench-s0/x"} {
		if ok, _ := acl.CanRead("bench-s0", "c", topic); !ok {
			t.Errorf("%s is not readable", topic)
		}
		if ok, _ := acl.CanPublish("bench-p0", "c", topic); !ok {
			t.Errorf("%s cannot be published", topic)
		}
	}
	if ok, _ := acl.CanRead("bench-s0", "c", "secret/a"); ok {
		t.Error("secret/a is readable")
	}
}

// mustRead returns the contents of file p.
func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestACLMatrix checks the acl command's scenarios: fan-out 1→50 on #,
// QoS 0 and 1, over 8 and 1000 topics, with flags the tool accepts.
func TestACLMatrix(t *testing.T) {
	var ids []string
	for _, s := range aclMatrix() {
		ids = append(ids, s.ID)
		if s.Kind != scenarioFanout || s.Subscribers != aclSubscribers || s.Publishers != aclPublishers || s.Filter != "#" || s.Size != 64 {
			t.Errorf("%s: %+v", s.ID, s)
		}
		args := append(s.toolArgs(defaultACLDuration, warmupFor(defaultACLDuration)), "-addr", "127.0.0.1:1")
		cfg, err := parseBenchFlags(args, &bytes.Buffer{})
		if err != nil {
			t.Errorf("%s: the tool refuses %q: %v", s.ID, args, err)
			continue
		}
		topics, err := cfg.fanoutTopics()
		if err != nil || len(topics) != s.Topics || cfg.Username != aclUsername || cfg.Password != aclPassword {
			t.Errorf("%s: %d topics (%v), credentials %q/%q", s.ID, len(topics), err, cfg.Username, cfg.Password)
		}
		for _, topic := range topics {
			if !strings.HasPrefix(topic, "public/news/") && !strings.HasPrefix(topic, "sensors/") {
				t.Errorf("%s: topic %q", s.ID, topic)
			}
		}
	}
	want := []string{"fanout-acl-q0-64-t8", "fanout-acl-q1-64-t8", "fanout-acl-q0-64-t1000", "fanout-acl-q1-64-t1000"}
	if !slices.Equal(ids, want) {
		t.Errorf("IDs %q, want %q", ids, want)
	}
}

// TestACLRatios checks the auth.file ÷ default rows: the ratio of the
// medians, each round's ratio, their median and range, and the target.
func TestACLRatios(t *testing.T) {
	rec := func(sc, broker string, round int, perCPU float64) runRecord {
		return runRecord{Scenario: sc, Broker: broker, Round: round, Result: benchResult{Scenario: "fanout", DeliveriesPerBrokerCPUS: perCPU}}
	}
	failed := rec("b", brokerVanemqAuthFile, 2, 0)
	failed.Err = os.ErrDeadlineExceeded
	records := []runRecord{
		rec("a", brokerVanemq, 0, 100), rec("a", brokerVanemqAuthFile, 0, 90),
		rec("a", brokerVanemqAuthFile, 1, 70), rec("a", brokerVanemq, 1, 100),
		rec("a", brokerVanemq, 2, 200), rec("a", brokerVanemqAuthFile, 2, 170),
		rec("b", brokerVanemq, 0, 100), rec("b", brokerVanemqAuthFile, 0, 50),
		rec("b", brokerVanemq, 2, 100), failed,
	}
	rows := aclRatios([]scenarioSpec{{ID: "a"}, {ID: "b"}, {ID: "c"}}, records)
	a, b, c := rows[0], rows[1], rows[2]
	if !slices.Equal(a.Paired, []float64{0.9, 0.7, 0.85}) || a.Median != 0.85 || a.Min != 0.7 || a.Max != 0.9 ||
		a.OfMedians != 0.9 || a.Status != statusPass {
		t.Errorf("a: %+v", a)
	}
	if !slices.Equal(b.Paired, []float64{0.5}) || b.Status != statusFail || b.Default != 100 || b.AuthFile != 50 {
		t.Errorf("b (a round without its auth.file run): %+v", b)
	}
	if c.Status != statusNoData || c.DefaultOK || c.AuthFileOK || len(c.Paired) != 0 {
		t.Errorf("c (no runs): %+v", c)
	}
}

// TestACLExec runs the whole acl command against a fake broker (in both
// configurations) and a fake load generator.
func TestACLExec(t *testing.T) {
	dir := t.TempDir()
	broker := buildFake(t, dir, "broker", fakeBrokerSrc)
	tool := buildFake(t, dir, "tool", fakeToolSrc)
	logPath := filepath.Join(dir, "acl.log")
	t.Setenv("FAKE_TOOL_LOG", logPath)
	t.Setenv("FAKE_TOOL_FAIL", "")
	out := filepath.Join(dir, "acl.md")
	profiles := filepath.Join(dir, "profiles")
	o, err := parseACLFlags([]string{"-vanemq", broker, "-out", out, "-rounds", "3", "-duration", "1s", "-run", "t8$", "-profile", profiles}, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	o.tool = tool
	var stdout, stderr bytes.Buffer
	if err := o.runACL(t.Context(), &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\nstderr:\n%s", err, stderr.String())
	}
	var want []string
	for range 2 {
		for _, b := range []string{"vanemq", "vanemq+auth.file", "vanemq+auth.file", "vanemq", "vanemq", "vanemq+auth.file"} {
			want = append(want, b+" fanout")
		}
	}
	if got := strings.TrimSpace(string(mustRead(t, logPath))); got != strings.Join(want, "\n") {
		t.Errorf("run order:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	md := mustRead(t, out)
	for _, re := range []string{
		`\| fanout-acl-q0-64-t8 +\| vanemq\+auth.file +\| +135,000 \| +270,000 \| +0.00 % \| +50 % \| +3/3 \|`,
		`\| fanout-acl-q1-64-t8 +\| +300,000 \| +270,000 \| +0.90× \| +0.90× \| +0.90× – 0.90× \| +3 \| PASS \(≥ 0.8×\) \|`,
		"`-scenario fanout -transport tcp -mqtt 4 -qos 1 -size 64 -publishers 1 -subscribers 50 -topics 8 " +
			`-topic-pattern public/news/\{n\},sensors/\{n\}/temperature -filter # -username bench-\{c\} -password bench-password`,
		`- \{allow: false, action: subscribe, filter: "secret/#"\}`,
		"bin/vanemq-bench acl -vanemq ",
	} {
		if !regexp.MustCompile(re).Match(md) {
			t.Errorf("report lacks a line matching %s", re)
		}
	}
	if strings.Contains(string(md), "÷ mochi") || strings.Contains(string(md), "## Targets") {
		t.Error("the report compares with peers")
	}
	if !strings.Contains(string(md), stdout.String()) || !strings.Contains(stdout.String(), "## auth.file ÷ default") {
		t.Errorf("stdout is not the report's tables:\n%s", stdout.String())
	}
	// The fake broker writes no profile, but each run was asked for one.
	if !strings.Contains(stderr.String(), "acl: 2 scenarios × 3 rounds × 2 brokers = 12 runs") {
		t.Errorf("progress lacks the run count:\n%s", stderr.String())
	}
	if fi, err := os.Stat(profiles); err != nil || !fi.IsDir() {
		t.Errorf("-profile directory: %v", err)
	}
	if t.Failed() {
		t.Logf("report:\n%s\nstderr:\n%s", md, stderr.String())
	}

	t.Run("failed run", func(t *testing.T) {
		t.Setenv("FAKE_TOOL_LOG", "")
		t.Setenv("FAKE_TOOL_FAIL", "vanemq+auth.file/fanout")
		o, err := parseACLFlags([]string{"-vanemq", broker, "-quick", "-run", "q0-64-t8$"}, os.Stderr)
		if err != nil {
			t.Fatal(err)
		}
		o.tool = tool
		var stdout, stderr bytes.Buffer
		err = o.runACL(t.Context(), &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), "1 of 2 runs failed") {
			t.Errorf("err = %v, want 1 of 2 runs failed", err)
		}
		if !regexp.MustCompile(`\| fanout-acl-q0-64-t8 +\| +300,000 \| +– \| +– \| +– \| +– \| +0 \| NO DATA`).Match(stdout.Bytes()) ||
			!strings.Contains(stdout.String(), "fake tool: failing as asked") {
			t.Errorf("tables:\n%s", stdout.String())
		}
	})
}

// TestParseACLFlags checks the acl command's defaults and bad usage.
func TestParseACLFlags(t *testing.T) {
	o, err := parseACLFlags(nil, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if o.rounds != defaultACLRounds || o.duration != defaultACLDuration || o.out != "" || o.vanemqBin != "bin/vanemq" || o.profileDir != "" {
		t.Errorf("defaults: %+v", o)
	}
	for _, tc := range []struct{ args, want string }{
		{"-rounds 0", "-rounds must be at least 1"},
		{"-duration 0s", "-duration must be positive"},
		{"-run (", "-run: error parsing regexp"},
		{"extra", `unexpected argument "extra"`},
	} {
		if _, err := parseACLFlags(strings.Fields(tc.args), &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.args, err, tc.want)
		}
	}
	var stdout, stderr bytes.Buffer
	if code := runCLI(t.Context(), []string{"acl", "-h"}, &stdout, &stderr); code != 0 || !strings.Contains(stderr.String(), "Usage: vanemq-bench acl") {
		t.Errorf("acl -h: exit status %d, stderr %q", code, stderr.String())
	}
	if code := runCLI(t.Context(), []string{"acl", "-run", "nothing"}, &stdout, &stderr); code != 1 {
		t.Errorf("acl -run nothing: exit status %d, want 1", code)
	}
}
