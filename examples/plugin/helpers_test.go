package pluginexample_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"go.yaml.in/yaml/v3"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/logtest"
	"github.com/vanemq/vanemq/core/mqtttest"
	"github.com/vanemq/vanemq/plugins"
)

// waitTimeout bounds every wait, so that a broken example fails a test
// instead of hanging it.
const waitTimeout = 15 * time.Second

// binaries are the example's plugins (and the vanemq binary, for
// binary_test.go), built once per run of the tests into a temporary
// directory that TestMain removes.
var binaries struct {
	mu    sync.Mutex
	dir   string
	built map[string]string // package → binary
}

// build builds the package pkg (an import path) once and returns the
// binary's path.
func build(t *testing.T, pkg string) string {
	t.Helper()
	binaries.mu.Lock()
	defer binaries.mu.Unlock()
	if p, ok := binaries.built[pkg]; ok {
		return p
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not on PATH; cannot build the plugins")
	}
	if binaries.dir == "" {
		if binaries.dir, err = os.MkdirTemp("", "vanemq-plugin-example"); err != nil {
			t.Fatal(err)
		}
		binaries.built = make(map[string]string)
	}
	out := filepath.Join(binaries.dir, filepath.Base(pkg))
	if b, err := exec.Command(goTool, "build", "-o", out, pkg).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	binaries.built[pkg] = out
	return out
}

// The example's packages, by import path: the test's working directory is
// this package's, and go build takes them from the module.
const (
	authPkg  = "github.com/vanemq/vanemq/examples/plugin/auth"
	auditPkg = "github.com/vanemq/vanemq/examples/plugin/audit"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binaries.dir != "" {
		_ = os.RemoveAll(binaries.dir)
	}
	os.Exit(code)
}

// repoRoot is the repository's root, the working directory the shipped
// vanemq.yaml is written for.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// shippedHook is one plugin entry of the shipped vanemq.yaml: its priority
// and its config block, decoded as the vanemq binary decodes it (strictly:
// an unknown key is an error).
type shippedHook struct {
	priority int
	cfg      plugins.Config
}

// shipped is what the tests take from the shipped vanemq.yaml.
type shipped struct {
	allowAnonymous bool
	auth, audit    shippedHook // told apart by the binary's name
	doc            yaml.Node   // the whole file, for binary_test.go
}

// readShipped reads the example's vanemq.yaml.
func readShipped(t *testing.T) shipped {
	t.Helper()
	b, err := os.ReadFile("vanemq.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var s shipped
	if err := yaml.Unmarshal(b, &s.doc); err != nil {
		t.Fatalf("vanemq.yaml: %v", err)
	}
	var file struct {
		AllowAnonymous bool `yaml:"allow_anonymous"`
		Hooks          []struct {
			ID       string    `yaml:"id"`
			Priority int       `yaml:"priority"`
			Config   yaml.Node `yaml:"config"`
		} `yaml:"hooks"`
	}
	if err := yaml.Unmarshal(b, &file); err != nil {
		t.Fatalf("vanemq.yaml: %v", err)
	}
	s.allowAnonymous = file.AllowAnonymous
	for i, h := range file.Hooks {
		if core.HookModuleOf(h.ID) != plugins.ID {
			t.Fatalf("vanemq.yaml: hooks[%d] is %q, want only %q hooks", i, h.ID, plugins.ID)
		}
		block, err := yaml.Marshal(&h.Config)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(block))
		dec.KnownFields(true)
		sh := shippedHook{priority: h.Priority}
		if err := dec.Decode(&sh.cfg); err != nil {
			t.Fatalf("vanemq.yaml: hooks[%d].config: %v", i, err)
		}
		sh.cfg.Name = h.ID
		switch filepath.Base(sh.cfg.Path) {
		case "vanemq-auth":
			s.auth = sh
		case "vanemq-audit":
			s.audit = sh
		default:
			t.Fatalf("vanemq.yaml: hooks[%d]: path %s is neither plugin", i, sh.cfg.Path)
		}
	}
	if s.auth.cfg.Path == "" || s.audit.cfg.Path == "" {
		t.Fatal("vanemq.yaml: want both plugins, auth and audit")
	}
	return s
}

// pluginConfig returns the plugin's own config block of h, a copy.
func (h shippedHook) pluginConfig(t *testing.T) map[string]any {
	t.Helper()
	m, ok := h.cfg.Config.(map[string]any)
	if !ok {
		t.Fatalf("config block of %s: %T, want a mapping", h.cfg.Path, h.cfg.Config)
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

type logBuffer = logtest.Buffer

// waitFor polls cond every few milliseconds until it holds, failing the
// test with what after waitTimeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	mqtttest.Eventually(t, waitTimeout, what, cond)
}

// dialV5 connects an MQTT 5 client (paho.golang) that asks for problem
// information (reason strings), as user with password; user "" sends no
// user name. It returns the client, or the CONNACK and the error of a
// refused connection.
func dialV5(t *testing.T, addr, clientID, user, password string) (*paho.Client, *paho.Connack, error) {
	t.Helper()
	cp := &paho.Connect{ClientID: clientID, CleanStart: true, KeepAlive: 30,
		Properties: &paho.ConnectProperties{RequestProblemInfo: true}}
	if user != "" {
		cp.Username, cp.UsernameFlag = user, true
	}
	if password != "" {
		cp.Password, cp.PasswordFlag = []byte(password), true
	}
	return mqtttest.ConnectPaho(t, addr, cp, nil)
}

// connectV5 is dialV5 for a client that must be accepted.
func connectV5(t *testing.T, addr, clientID, user, password string) *paho.Client {
	t.Helper()
	c, ca, err := dialV5(t, addr, clientID, user, password)
	if err != nil {
		t.Fatalf("connect %s as %q: %v (CONNACK %+v)", clientID, user, err, ca)
	}
	return c
}

// refusedV5 checks that an MQTT 5 CONNECT as user with password is refused
// with 0x86 Bad User Name or Password and the plugin's reason string.
func refusedV5(t *testing.T, addr, clientID, user, password string) {
	t.Helper()
	c, ca, err := dialV5(t, addr, clientID, user, password)
	if err == nil {
		t.Errorf("MQTT 5 %s as %q with password %q: accepted, want CONNACK 0x86", clientID, user, password)
		_ = c.Disconnect(&paho.Disconnect{})
		return
	}
	if ca == nil || ca.ReasonCode != 0x86 {
		t.Errorf("MQTT 5 %s as %q with password %q: %v (CONNACK %+v), want CONNACK 0x86", clientID, user, password, err, ca)
		return
	}
	if ca.Properties == nil || ca.Properties.ReasonString != "bad user name or password" {
		t.Errorf("MQTT 5 %s as %q: CONNACK 0x86 with properties %+v, want the reason string \"bad user name or password\"", clientID, user, ca.Properties)
	}
}

// publishV5 publishes payload to topic at qos (and retain); at QoS 1 it
// waits for the PUBACK and fails the test unless it is a success (0x00,
// or 0x10 No matching subscribers).
func publishV5(t *testing.T, c *paho.Client, topic string, payload []byte, qos byte, retain bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	r, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: qos, Retain: retain, Payload: payload})
	if err != nil {
		t.Fatalf("publish to %s: %v", topic, err)
	}
	if qos > 0 && (r == nil || r.ReasonCode > 0x10) {
		t.Fatalf("publish to %s: PUBACK %+v, want success", topic, r)
	}
}

// connectV311 connects an MQTT 3.1.1 client (paho.mqtt.golang) as user
// with password, and returns it (nil when refused) and the CONNACK's
// return code.
func connectV311(t *testing.T, addr, clientID, user, password string) (mqtt.Client, byte) {
	t.Helper()
	opts := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(clientID).
		SetUsername(user).SetPassword(password).SetProtocolVersion(4).SetCleanSession(true).
		SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(waitTimeout)
	c := mqtt.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(waitTimeout) {
		t.Fatalf("MQTT 3.1.1 connect %s: no CONNACK", clientID)
	}
	code := tok.(*mqtt.ConnectToken).ReturnCode()
	if tok.Error() != nil {
		if code == 0 {
			t.Fatalf("MQTT 3.1.1 connect %s: %v", clientID, tok.Error())
		}
		return nil, code
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c, code
}

// auditLine is one line of the audit file, as the audit plugin writes it.
type auditLine struct {
	Time          string `json:"time"`
	ClientID      string `json:"client_id"`
	Username      string `json:"username"`
	Topic         string `json:"topic"`
	QoS           byte   `json:"qos"`
	Retain        bool   `json:"retain"`
	Payload       string `json:"payload"`
	PayloadBase64 string `json:"payload_base64"`
}

// readAudit returns the audit file's lines; a missing file has none.
func readAudit(t *testing.T, path string) []auditLine {
	t.Helper()
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []auditLine
	for _, s := range strings.SplitAfter(string(data), "\n") {
		if s == "" {
			continue
		}
		if !strings.HasSuffix(s, "\n") {
			break // a line still being written
		}
		var l auditLine
		if err := jsonStrict(s, &l); err != nil {
			t.Fatalf("audit line %q: %v", s, err)
		}
		out = append(out, l)
	}
	return out
}

// waitAudit polls the audit file until it holds at least n lines, and
// returns them.
func waitAudit(t *testing.T, path string, n int) []auditLine {
	t.Helper()
	var lines []auditLine
	waitFor(t, "the audit lines", func() bool {
		lines = readAudit(t, path)
		return len(lines) >= n
	})
	return lines
}

// jsonStrict decodes one JSON value from s into v, refusing unknown keys.
func jsonStrict(s string, v any) error {
	d := json.NewDecoder(strings.NewReader(s))
	d.DisallowUnknownFields()
	return d.Decode(v)
}
