//go:build unix

package vanemqcmd

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/vanemq/vanemq/core/mqtttest"
)

// restartTimeout bounds a wait for a plugin to start: a fraction of a
// second, many on a loaded machine; far less than the test's hour of
// back-off.
const restartTimeout = 30 * time.Second

// pluginRestartConfig runs the plugins package's test plugin, which exits
// on its first publish decision, with an hour's wait before a restart, and
// the admin listener with its API.
const pluginRestartConfig = `allow_anonymous: true
storage: {type: memory}
hooks:
  - id: plugin
    priority: 80
    config:
      path: %s
      timeout: 5s # not the default 50ms: a loaded machine may be slower
      restart_delay: 1h
      max_backoff: 1h
      config: {mode: exit-after, exit_after: 1}
listeners:
  - {id: tcp, type: tcp, address: "127.0.0.1:0"}
  - {id: http, type: http, address: "127.0.0.1:0", token: %s}
log: {level: info, format: text}
`

// TestBinaryPluginRestarts runs vanemq with a plugin that exits on its
// first publish decision and waits an hour for each restart: while it
// waits, /readyz answers 503 naming it and why, and vanemq_hook_up is 0;
// SIGHUP starts it at once, and so does POST /api/v1/hooks/plugin/restart
// (with the token); once it serves, /readyz is 200, vanemq_hook_up 1, and
// vanemq_hook_restarts_total counts the restarts.
func TestBinaryPluginRestarts(t *testing.T) {
	const token = "e2e-token"
	exe := buildBinary(t) // skips without the go tool
	plugin := filepath.Join(t.TempDir(), "testplugin")
	goTool, _ := exec.LookPath("go")
	if out, err := exec.Command(goTool, "build", "-o", plugin, "../../../plugins/testdata/testplugin").CombinedOutput(); err != nil {
		t.Fatalf("build the test plugin: %v\n%s", err, out)
	}
	p := startBinary(t, exe, "--config", writeConfig(t, fmt.Sprintf(pluginRestartConfig, plugin, token)))
	mqttAddr, admin := p.listenerAddr(t, "tcp"), "http://"+p.listenerAddr(t, "http")

	readyz := func() (int, string) {
		code, body := request(t, http.MethodGet, admin+"/readyz", "")
		return code, body
	}
	metric := func(name string) string {
		_, body := request(t, http.MethodGet, admin+"/metrics", "")
		m := regexp.MustCompile(`(?m)^` + name + `\{hook="plugin"\} (\S+)$`).FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("/metrics has no %s for the plugin:\n%s", name, body)
		}
		return m[1]
	}
	serving := func(what string, restarts string) {
		t.Helper()
		mqtttest.Eventually(t, restartTimeout, what, func() bool { code, _ := readyz(); return code == http.StatusOK })
		if up, n := metric("vanemq_hook_up"), metric("vanemq_hook_restarts_total"); up != "1" || n != restarts {
			t.Errorf("%s: vanemq_hook_up %s, vanemq_hook_restarts_total %s; want 1 and %s", what, up, n, restarts)
		}
	}
	serving("ready at start", "0")

	// The plugin decides the CONNECT too: connect while it serves.
	pub, _, err := mqtttest.ConnectPaho(t, mqttAddr, &paho.Connect{ClientID: "e2e-pub", CleanStart: true, KeepAlive: 30}, nil)
	if err != nil {
		t.Fatalf("connect: %v\n%s", err, p.logs)
	}
	publish := func() byte {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		r, err := pub.Publish(ctx, &paho.Publish{Topic: "e2e/x", QoS: 1})
		if r == nil {
			t.Fatalf("publish: %v", err)
		}
		return r.ReasonCode
	}
	// The restarts after a SIGHUP or an API call are in a row with it:
	// the plugin did not run a healthy minute.
	restarting := regexp.MustCompile(`^not ready: hook plugin: plugin testplugin is restarting: the plugin process exited; restart [12] in a row at \S+$`)
	// kill makes the plugin exit, and waits until the broker says so.
	kill := func(what string) {
		t.Helper()
		publish()
		mqtttest.Eventually(t, restartTimeout, what, func() bool {
			code, body := readyz()
			return code == http.StatusServiceUnavailable && restarting.MatchString(body)
		})
		if up := metric("vanemq_hook_up"); up != "0" {
			t.Errorf("%s: vanemq_hook_up %s, want 0", what, up)
		}
		if code := publish(); code != 0x83 {
			t.Errorf("%s: PUBACK %#x, want 0x83 (on_failure deny)", what, code)
		}
	}

	kill("not ready once the plugin has exited")
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	serving("ready after SIGHUP, an hour before the restart was due", "1")

	kill("not ready once the restarted plugin has exited")
	if code, body := request(t, http.MethodPost, admin+"/api/v1/hooks/plugin/restart", token); code != http.StatusOK ||
		strings.Join(strings.Fields(body), "") != `{"id":"plugin","restarted":true}` {
		t.Fatalf("POST restart: %d %s\n%s", code, body, p.logs)
	}
	serving("ready after the restart over the API", "2")
	for _, tc := range []struct {
		path, token string
		code        int
	}{
		{"/api/v1/hooks/plugin:nope/restart", token, http.StatusNotFound},
		{"/api/v1/hooks/plugin/restart", "", http.StatusUnauthorized},
	} {
		if code, body := request(t, http.MethodPost, admin+tc.path, tc.token); code != tc.code {
			t.Errorf("POST %s: %d %s, want %d", tc.path, code, body, tc.code)
		}
	}
	for _, want := range []string{`msg="SIGHUP: starting the plugin at once"`, `msg="hook restarted on request" listener=http hook=plugin`} {
		if !strings.Contains(p.logs.String(), want) {
			t.Errorf("the log lacks %q:\n%s", want, p.logs)
		}
	}
	p.stop(t)
}

// listenerAddr waits for p to log the address of listener id.
func (p *process) listenerAddr(t *testing.T, id string) string {
	t.Helper()
	re := regexp.MustCompile(`\bmsg=listening id=` + regexp.QuoteMeta(id) + ` .*\baddress=(\S+)`)
	var addr string
	mqtttest.Eventually(t, waitTimeout, "listener "+id+" listening", func() bool {
		if m := re.FindStringSubmatch(p.logs.String()); m != nil {
			addr = m[1]
		}
		return addr != ""
	})
	return addr
}

// request sends an HTTP request with an optional bearer token and returns
// the status code and body.
func request(t *testing.T, method, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: restartTimeout}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return resp.StatusCode, string(body)
}
