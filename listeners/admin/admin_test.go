package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/logtest"
	"github.com/vanemq/vanemq/core/mqtttest"
	"github.com/vanemq/vanemq/listeners/tcp"
)

const waitTimeout = 10 * time.Second

// countingHook counts publishes, so that hook metrics have values.
type countingHook struct{}

func (countingHook) ID() string { return "test.counter" }
func (countingHook) Events() core.EventSet {
	return core.Events(core.EventPublish)
}
func (countingHook) Publish(context.Context, *core.ClientInfo, *core.Message) core.Verdict {
	return core.Next
}

// Bridges implements core.BridgeReporter, as the bridge hook does, for
// GET /api/v1/bridges.
func (countingHook) Bridges() []core.BridgeStatus {
	return []core.BridgeStatus{{Name: "cloud", Remote: "tcp://broker.example:1883", Connected: true, Queued: 3, Sent: 10}}
}

// broker starts a server with a tcp listener and an admin listener on
// loopback and returns the MQTT address, the admin base URL and its log.
func broker(t *testing.T, token string, hook bool) (mqttAddr, base string, logs *logtest.Buffer) {
	t.Helper()
	_, mqttAddr, base, logs = brokerWith(t, core.Options{}, token, hook)
	return mqttAddr, base, logs
}

// brokerWith is broker with opts (zero fields default), and returns the
// server too.
func brokerWith(t *testing.T, opts core.Options, token string, hook bool) (srv *core.Server, mqttAddr, base string, logs *logtest.Buffer) {
	t.Helper()
	opts.AllowAnonymous, opts.SysInterval = true, -1
	srv, err := core.New(opts)
	if err != nil {
		t.Fatalf("core.New: %v", err)
	}
	if hook {
		if err := srv.AddHook(countingHook{}, 0); err != nil {
			t.Fatalf("AddHook: %v", err)
		}
	}
	logs = &logtest.Buffer{}
	al := New("admin", "127.0.0.1:0", srv, Options{Token: token, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	mqttAddr = mqtttest.Serve(t, srv, tcp.New("tcp", "127.0.0.1:0"), al)
	if al.Protocol() != "http" {
		t.Errorf("Protocol() = %q, want http", al.Protocol())
	}
	return srv, mqttAddr, "http://" + al.Address(), logs
}

// get fetches url with an optional bearer token.
func get(t *testing.T, url, token string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	c := &http.Client{Timeout: waitTimeout}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", url, err)
	}
	return resp, body
}

// client connects a paho client, subscribes to a/# with QoS 1 and
// publishes one QoS 1 message to itself.
func client(t *testing.T, addr, id string) {
	t.Helper()
	got := make(chan struct{}, 1)
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id))
	if tok := c.Connect(); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	if tok := c.Subscribe("a/#", 1, func(mqtt.Client, mqtt.Message) {
		select {
		case got <- struct{}{}:
		default:
		}
	}); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	if tok := c.Publish("a/b", 1, false, "hello"); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	select {
	case <-got:
	case <-time.After(waitTimeout):
		t.Fatal("message not delivered")
	}
}

// scrape fetches /metrics and parses it.
func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, body := get(t, base+"/metrics", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	return fams
}

// value returns the value of the metric of family name whose labels
// include labels (name=value pairs), and whether there is one.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Untyped != nil:
			return m.Untyped.GetValue(), true
		}
	}
	return 0, false
}

func TestMetrics(t *testing.T) {
	addr, base, _ := broker(t, "", true)
	client(t, addr, "metrics-client")
	// The broker adds message counts once per read or write batch, so a
	// scrape right after the round trip may trail it: scrape until the
	// publish is counted (bounded).
	fams := scrape(t, base)
	for deadline := time.Now().Add(waitTimeout); time.Now().Before(deadline); fams = scrape(t, base) {
		if v, _ := value(fams, "vanemq_messages_received_total", "qos", "1"); v >= 1 {
			break
		}
	}

	checks := []struct {
		name   string
		labels []string
		min    float64
	}{
		{"vanemq_clients_connected", nil, 1},
		{"vanemq_sessions", nil, 1},
		{"vanemq_connections_total", nil, 1},
		{"vanemq_messages_received_total", []string{"qos", "1"}, 1},
		{"vanemq_messages_sent_total", []string{"qos", "1"}, 1},
		{"vanemq_bytes_received_total", nil, 5},
		{"vanemq_bytes_sent_total", nil, 1},
		{"vanemq_subscriptions", nil, 1},
		{"vanemq_hook_calls_total", []string{"hook", "test.counter"}, 1},
		{"vanemq_hook_seconds_total", []string{"hook", "test.counter"}, 0},
		{"vanemq_hook_failures_total", []string{"hook", "test.counter"}, 0},
		{"vanemq_hook_events_lost_total", nil, 0},
		{"vanemq_inflight_messages", nil, 0},
		{"vanemq_queued_messages", nil, 0},
		{"vanemq_retained_messages", nil, 0},
		{"vanemq_protocol_errors_total", nil, 0},
		{"vanemq_messages_received_total", []string{"qos", "0"}, 0},
		{"vanemq_listener_connections", []string{"listener", "tcp"}, 1},
		{"vanemq_payload_bytes_received_total", []string{"qos", "1"}, 5},
		{"vanemq_payload_bytes_sent_total", []string{"qos", "1"}, 5},
		{"vanemq_listener_connections_accepted_total", []string{"listener", "tcp"}, 1},
		{"go_goroutines", nil, 1},
	}
	for _, c := range checks {
		v, ok := value(fams, c.name, c.labels...)
		if !ok {
			t.Errorf("%s%v: missing", c.name, c.labels)
			continue
		}
		if v < c.min {
			t.Errorf("%s%v = %v, want >= %v", c.name, c.labels, v, c.min)
		}
	}
	if v, _ := value(fams, "vanemq_subscriptions"); v != 1 {
		t.Errorf("vanemq_subscriptions = %v, want 1", v)
	}
	if v, _ := value(fams, "vanemq_messages_received_total", "qos", "1"); v != 1 {
		t.Errorf(`vanemq_messages_received_total{qos="1"} = %v, want 1`, v)
	}
	for _, r := range core.DropReasons() {
		if _, ok := value(fams, "vanemq_messages_dropped_total", "reason", r.String()); !ok {
			t.Errorf("vanemq_messages_dropped_total{reason=%q} missing", r)
		}
	}
	if f := fams["vanemq_messages_received_total"]; f.GetType() != dto.MetricType_COUNTER {
		t.Errorf("vanemq_messages_received_total has type %v, want counter", f.GetType())
	}
	if _, ok := fams["process_open_fds"]; !ok {
		t.Error("process collector metrics missing")
	}
}

// Without hooks, the hook families have no series but the page parses.
func TestMetricsNoHooks(t *testing.T) {
	_, base, _ := broker(t, "", false)
	fams := scrape(t, base)
	if _, ok := value(fams, "vanemq_hook_calls_total"); ok {
		t.Error("hook calls reported without hooks")
	}
	if v, ok := value(fams, "vanemq_clients_connected"); !ok || v != 0 {
		t.Errorf("vanemq_clients_connected = %v, %v; want 0", v, ok)
	}
}

func TestHealth(t *testing.T) {
	_, base, _ := broker(t, "", false)
	for path, want := range map[string]string{"/healthz": "ok", "/readyz": "ready"} {
		resp, body := get(t, base+path, "")
		if resp.StatusCode != http.StatusOK || string(body) != want {
			t.Errorf("%s: %s %q, want 200 %q", path, resp.Status, body, want)
		}
	}
}

func TestAPI(t *testing.T) {
	const token = "s3cret-token"
	addr, base, logs := broker(t, token, false)
	client(t, addr, "api-client")

	resp, body := get(t, base+"/api/v1/clients", token)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("clients: %s %s", resp.Status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	var clients []core.ClientStatus
	if err := json.Unmarshal(body, &clients); err != nil {
		t.Fatalf("decode clients: %v\n%s", err, body)
	}
	if len(clients) != 1 || clients[0].ID != "api-client" || !clients[0].Connected || clients[0].Subscriptions != 1 {
		t.Errorf("clients = %+v", clients)
	}

	resp, body = get(t, base+"/api/v1/clients/api-client", token)
	var one core.ClientStatus
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("client: %s %s", resp.Status, body)
	}
	if err := json.Unmarshal(body, &one); err != nil {
		t.Fatalf("decode client: %v\n%s", err, body)
	}
	if one.ID != "api-client" || !one.Connected || one.Listener != "tcp" || one.ProtocolVersion == 0 {
		t.Errorf("client = %+v", one)
	}

	resp, body = get(t, base+"/api/v1/subscriptions", token)
	var subs []core.SubscriptionStatus
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("subscriptions: %s %s", resp.Status, body)
	}
	if err := json.Unmarshal(body, &subs); err != nil {
		t.Fatalf("decode subscriptions: %v\n%s", err, body)
	}
	if len(subs) != 1 || subs[0].ClientID != "api-client" || subs[0].Filter != "a/#" || subs[0].QoS != 1 {
		t.Errorf("subscriptions = %+v", subs)
	}

	resp, body = get(t, base+"/api/v1/stats", token)
	var st Stats
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("stats: %s %s", resp.Status, body)
	}
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("decode stats: %v\n%s", err, body)
	}
	if st.ClientsConnected != 1 || st.MessagesInByQoS["1"] != 1 || st.Subscriptions != 1 {
		t.Errorf("stats = %+v", st)
	}
	if _, ok := st.DroppedBy["session_queue_full"]; !ok {
		t.Errorf("stats has no session_queue_full drop counter: %s", body)
	}

	resp, body = get(t, base+"/api/v1/clients/nobody", token)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown client: %s %s, want 404", resp.Status, body)
	}

	for _, tok := range []string{"", "wrong", token + "x"} {
		for _, path := range []string{"/api/v1/clients", "/api/v1/clients/api-client", "/api/v1/stats", "/api/v1/nothing"} {
			resp, _ := get(t, base+path, tok)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s with token %q: %s, want 401", path, tok, resp.Status)
			}
			if h := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(h, "Bearer") {
				t.Errorf("%s with token %q: WWW-Authenticate %q", path, tok, h)
			}
		}
	}
	// A Basic authorization header is not a bearer token.
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/api/v1/clients", nil)
	req.SetBasicAuth("admin", token)
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("basic auth: %s, want 401", resp.Status)
		}
	}
	if l := logs.String(); !strings.Contains(l, "remote=127.0.0.1:") || !strings.Contains(l, "invalid bearer token") ||
		!strings.Contains(l, "missing bearer token") {
		t.Errorf("refusals not logged with the remote address:\n%s", l)
	}
	if strings.Contains(logs.String(), token) {
		t.Error("the log contains the token")
	}

	// The reading endpoints take no POST.
	req, _ = http.NewRequestWithContext(t.Context(), http.MethodPost, base+"/api/v1/clients", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("POST: %s, want 405", resp.Status)
		}
	}
}

// Without a token the API does not exist.
func TestAPIDisabled(t *testing.T) {
	addr, base, _ := broker(t, "", false)
	client(t, addr, "c")
	for _, tok := range []string{"", "anything"} {
		for _, path := range []string{"/api/v1/clients", "/api/v1/clients/c", "/api/v1/subscriptions", "/api/v1/stats"} {
			if resp, body := get(t, base+path, tok); resp.StatusCode != http.StatusNotFound {
				t.Errorf("%s with the API off: %s %s, want 404", path, resp.Status, body)
			}
		}
	}
}

// Listen answers at once, /readyz with 503 until Serve; Close makes Serve
// return and Listen refuses afterwards; Serve before Listen is an error.
func TestLifecycle(t *testing.T) {
	srv, err := core.New(core.Options{AllowAnonymous: true, SysInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	l := New("admin", "127.0.0.1:0", srv, Options{})
	if err := l.Serve(nil); err == nil {
		t.Error("Serve before Listen succeeded")
	}
	if err := l.Listen(); err != nil {
		t.Fatal(err)
	}
	base := "http://" + l.Address()
	// Between Listen and Serve the broker is restoring its state: alive,
	// not ready.
	for path, want := range map[string]int{"/readyz": http.StatusServiceUnavailable, "/healthz": http.StatusOK} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatalf("%s before Serve: %v", path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s before Serve: %s, want %d", path, resp.Status, want)
		}
	}
	done := make(chan error, 1)
	go func() { done <- l.Serve(nil) }()
	deadline := time.Now().Add(waitTimeout)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never answered 200: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Serve did not return after Close")
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := l.Listen(); err == nil {
		t.Error("Listen after Close succeeded")
	}
}

// sickHook is a hook that reports itself unhealthy while sick is set.
type sickHook struct {
	sick *atomic.Bool
}

func (sickHook) ID() string            { return "test.sick" }
func (sickHook) Events() core.EventSet { return 0 }
func (h sickHook) Health() error {
	if h.sick.Load() {
		return errors.New("plugin x is down")
	}
	return nil
}

// /readyz answers 503 naming a hook that reports itself unhealthy (a
// plugin that is restarting or down), and 200 again once it is well; /healthz stays
// 200 throughout.
func TestReadyzHookHealth(t *testing.T) {
	srv, err := core.New(core.Options{AllowAnonymous: true, SysInterval: -1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	sick := &atomic.Bool{}
	if err := srv.AddHook(sickHook{sick: sick}, 0); err != nil {
		t.Fatal(err)
	}
	base := "http://" + mqtttest.Serve(t, srv, New("admin", "127.0.0.1:0", srv, Options{}))
	deadline := time.Now().Add(waitTimeout)
	for {
		resp, _ := get(t, base+"/readyz", "")
		if resp.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("never ready")
		}
		time.Sleep(10 * time.Millisecond) // until Start's Serve runs, bounded
	}
	sick.Store(true)
	if resp, body := get(t, base+"/readyz", ""); resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "hook test.sick: plugin x is down") {
		t.Errorf("/readyz with a sick hook: %s %q", resp.Status, body)
	}
	if resp, _ := get(t, base+"/healthz", ""); resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz with a sick hook: %s", resp.Status)
	}
	if _, body := get(t, base+"/metrics", ""); !strings.Contains(string(body), `vanemq_hook_up{hook="test.sick"} 0`) {
		t.Errorf("/metrics does not show the hook down")
	}
	sick.Store(false)
	if resp, _ := get(t, base+"/readyz", ""); resp.StatusCode != http.StatusOK {
		t.Errorf("/readyz after recovery: %s", resp.Status)
	}
}

// GET /api/v1/bridges lists the bridges of the hooks that run some
// (core.BridgeReporter), and is an empty list without any.
func TestAPIBridges(t *testing.T) {
	const token = "s3cret-token"
	for _, withBridges := range []bool{false, true} {
		_, base, _ := broker(t, token, withBridges)
		resp, body := get(t, base+"/api/v1/bridges", token)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("bridges: %s %s", resp.Status, body)
		}
		var got []core.BridgeStatus
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("decode bridges: %v\n%s", err, body)
		}
		switch {
		case !withBridges && (got == nil || len(got) != 0):
			t.Errorf("no bridges: %s, want []", body)
		case withBridges && (len(got) != 1 || got[0].Name != "cloud" || !got[0].Connected || got[0].Queued != 3 || got[0].Sent != 10):
			t.Errorf("bridges: %s", body)
		}
	}
}

// restartableHook runs something of its own (core.Restarter), as a plugin
// does: Restart fails while broken is set.
type restartableHook struct {
	broken   *atomic.Bool
	restarts *atomic.Int64
}

func (restartableHook) ID() string            { return "test.restartable" }
func (restartableHook) Events() core.EventSet { return 0 }
func (h restartableHook) Restart(context.Context) error {
	h.restarts.Add(1)
	if h.broken.Load() {
		return errors.New("the process cannot start")
	}
	return nil
}
func (h restartableHook) Restarts() int64 { return h.restarts.Load() }

// slowRestartHook is a restartableHook whose Restart runs until released,
// whatever its context says: a plugin slow to come back.
type slowRestartHook struct {
	restartableHook
	entered, release chan struct{}
}

func (slowRestartHook) ID() string { return "test.slow" }
func (h slowRestartHook) Restart(context.Context) error {
	close(h.entered)
	<-h.release
	return nil
}

// TestServeWaitsForRequests checks the accept.Lifecycle rule the listener
// follows: Serve returns only once the requests in progress at Close have
// been answered (the HTTP server's own Close does not wait for its
// handlers), so nothing of the listener runs once the broker, which waits
// for Serve, has stopped.
func TestServeWaitsForRequests(t *testing.T) {
	const token = "slow-token"
	srv, err := core.New(core.Options{AllowAnonymous: true, SysInterval: -1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	h := slowRestartHook{restartableHook{broken: &atomic.Bool{}, restarts: &atomic.Int64{}}, make(chan struct{}), make(chan struct{})}
	if err := srv.AddHook(h, 0); err != nil {
		t.Fatal(err)
	}
	l := New("admin", "127.0.0.1:0", srv, Options{Token: token, Logger: slog.New(slog.DiscardHandler)})
	if err := l.Listen(); err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- l.Serve(nil) }()
	go func() {
		req, err := http.NewRequest(http.MethodPost, "http://"+l.Address()+"/api/v1/hooks/test.slow/restart", nil)
		if err != nil {
			return
		}
		req.Header.Set("Authorization", "Bearer "+token)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	select {
	case <-h.entered:
	case <-time.After(waitTimeout):
		t.Fatal("the restart request never reached the hook")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// Without the wait Serve returns at once, well within this window.
	select {
	case err := <-served:
		t.Fatalf("Serve returned (%v) while a request was in progress", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(h.release)
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Serve did not return once the request had been answered")
	}
	if err := l.Serve(nil); err != nil {
		t.Errorf("Serve after Close = %v, want nil", err)
	}
}

// post sends a POST to url with an optional bearer token.
func post(t *testing.T, url, token string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: waitTimeout}).Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("POST %s: read body: %v", url, err)
	}
	return resp, body
}

// POST /api/v1/hooks/{id}/restart restarts a hook that can restart (200),
// says why its start failed (502), and answers 404 for an unknown hook and
// 409 with a JSON error for one that cannot restart; it needs the token,
// and its restarts show in vanemq_hook_restarts_total and the stats.
func TestAPIRestartHook(t *testing.T) {
	const token = "s3cret-token"
	srv, err := core.New(core.Options{AllowAnonymous: true, SysInterval: -1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	broken := &atomic.Bool{}
	restarts := &atomic.Int64{}
	for _, h := range []core.Hook{restartableHook{broken: broken, restarts: restarts}, countingHook{}} {
		if err := srv.AddHook(h, 0); err != nil {
			t.Fatal(err)
		}
	}
	logs := &logtest.Buffer{}
	adminAddr := mqtttest.Serve(t, srv, New("admin", "127.0.0.1:0", srv, Options{Token: token, Logger: slog.New(slog.NewTextHandler(logs, nil))}))
	base := "http://" + adminAddr + "/api/v1/hooks/"

	cases := []struct {
		name, id, token string
		broken          bool
		status          int
		body            string
	}{
		{"restarted", "test.restartable", token, false, http.StatusOK, `{"id":"test.restartable","restarted":true}`},
		{"start failed", "test.restartable", token, true, http.StatusBadGateway, `{"error":"hook test.restartable: restart: the process cannot start"}`},
		{"unknown hook", "nope", token, false, http.StatusNotFound, `{"error":"unknown hook"}`},
		{"cannot restart", "test.counter", token, false, http.StatusConflict,
			`{"error":"hook test.counter cannot be restarted: it runs no process of its own"}`},
		{"no token", "test.restartable", "", false, http.StatusUnauthorized, `{"error":"missing bearer token"}`},
		{"wrong token", "test.restartable", "x", false, http.StatusUnauthorized, `{"error":"invalid bearer token"}`},
	}
	for _, tc := range cases {
		broken.Store(tc.broken)
		resp, body := post(t, base+tc.id+"/restart", tc.token)
		var got, want any
		if err := json.Unmarshal(body, &got); err != nil {
			t.Errorf("%s: body %q is not JSON: %v", tc.name, body, err)
			continue
		}
		_ = json.Unmarshal([]byte(tc.body), &want)
		if resp.StatusCode != tc.status || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: %s %s, want %d %s", tc.name, resp.Status, body, tc.status, tc.body)
		}
	}
	if n := restarts.Load(); n != 2 {
		t.Errorf("%d restarts, want 2 (the refused requests restart nothing)", n)
	}
	if resp, _ := get(t, base+"test.restartable/restart", token); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET of the restart action: %s, want 405", resp.Status)
	}
	for _, want := range []string{`msg="hook restarted on request" listener=admin hook=test.restartable remote=127.0.0.1:`,
		`msg="hook restart on request failed" listener=admin hook=test.restartable remote=127.0.0.1:`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log lacks %q:\n%s", want, logs)
		}
	}

	fams := scrape(t, "http://"+adminAddr)
	if v, ok := value(fams, "vanemq_hook_restarts_total", "hook", "test.restartable"); !ok || v != 2 {
		t.Errorf("vanemq_hook_restarts_total = %v, %v; want 2", v, ok)
	}
	if v, ok := value(fams, "vanemq_hook_restarts_total", "hook", "test.counter"); !ok || v != 0 {
		t.Errorf("vanemq_hook_restarts_total{hook=test.counter} = %v, %v; want 0", v, ok)
	}
	_, body := get(t, "http://"+adminAddr+"/api/v1/stats", token)
	var st Stats
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Hooks) != 2 || st.Hooks[0].ID != "test.counter" || !st.Hooks[0].Up || st.Hooks[1].Restarts != 2 {
		t.Errorf("stats hooks = %+v", st.Hooks)
	}
}

// Without a token the restart action does not exist either.
func TestAPIRestartHookDisabled(t *testing.T) {
	_, base, _ := broker(t, "", true)
	if resp, body := post(t, base+"/api/v1/hooks/test.counter/restart", ""); resp.StatusCode != http.StatusNotFound {
		t.Errorf("restart with the API off: %s %s, want 404", resp.Status, body)
	}
}

// The refusals by a limit (mqtt.max_subscriptions, max_retained_messages,
// max_retained_bytes) are counted by limit, and the retained store's size
// is shown, in /metrics and GET /api/v1/stats.
func TestMetricsLimits(t *testing.T) {
	const token = "limits-token"
	srv, addr, base, _ := brokerWith(t, core.Options{MaxSubscriptions: 1, MaxRetainedMessages: 1}, token, false)
	client(t, addr, "limits-client") // holds a/#, its one subscription
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("limits-client2"))
	if tok := c.Connect(); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	tok := c.SubscribeMultiple(map[string]byte{"one": 0, "two": 0}, nil)
	if !tok.WaitTimeout(waitTimeout) {
		t.Fatal("SUBSCRIBE: no SUBACK")
	}
	if res := tok.(*mqtt.SubscribeToken).Result(); res["one"]+res["two"] != 0x80 {
		t.Fatalf("two filters with room for one: SUBACK %v, want one granted and one 0x80", res)
	}
	if err := srv.Publish(core.InlineMessage{Topic: "kept", Payload: []byte("12345"), Retain: true}); err != nil {
		t.Fatalf("first retained message: %v", err)
	}
	if err := srv.Publish(core.InlineMessage{Topic: "refused", Payload: []byte("x"), Retain: true}); !errors.Is(err, core.ErrRetainedFull) {
		t.Fatalf("second retained message: %v, want ErrRetainedFull", err)
	}

	fams := scrape(t, base)
	for _, m := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"vanemq_limit_refusals_total", []string{"limit", "max_subscriptions"}, 1},
		{"vanemq_limit_refusals_total", []string{"limit", "max_retained_messages"}, 1},
		{"vanemq_limit_refusals_total", []string{"limit", "max_retained_bytes"}, 0},
		{"vanemq_retained_messages", nil, 1},
		{"vanemq_retained_bytes", nil, float64(len("kept") + len("12345"))},
	} {
		if v, ok := value(fams, m.name, m.labels...); !ok || v != m.want {
			t.Errorf("%s%v = %v (present %v), want %v", m.name, m.labels, v, ok, m.want)
		}
	}
	if f := fams["vanemq_limit_refusals_total"]; f.GetType() != dto.MetricType_COUNTER {
		t.Errorf("vanemq_limit_refusals_total has type %v, want counter", f.GetType())
	}

	_, body := get(t, base+"/api/v1/stats", token)
	var st Stats
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("decode stats: %v\n%s", err, body)
	}
	want := map[string]int64{"max_subscriptions": 1, "max_retained_messages": 1, "max_retained_bytes": 0}
	if !maps.Equal(st.RefusedBy, want) || st.RetainedBytes != 9 {
		t.Errorf("stats: refused_by_limit %v, retained_bytes %d; want %v and 9\n%s", st.RefusedBy, st.RetainedBytes, want, body)
	}
}
