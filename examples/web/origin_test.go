//go:build unix

package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/mqtttest"
	"github.com/vanemq/vanemq/listeners/tcp"
	"github.com/vanemq/vanemq/listeners/websocket"
)

// rebindHost is the other site's name of the DNS-rebinding pages: Chromium
// resolves it, as every name, to 127.0.0.1 (origin_test.mjs).
const rebindHost = "evil.test"

// originPage is the page the cases open: MQTT.js, which origin_test.mjs
// drives from the page.
const originPage = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>vanemq origin test</title><link rel="icon" href="data:,"></head>` +
	`<body><script src="/mqtt.min.js"></script></body></html>`

// servePages serves originPage and MQTT.js on a loopback port and returns
// the port.
func servePages(t *testing.T) string {
	t.Helper()
	bundle, err := os.ReadFile(filepath.Join("node_modules", "mqtt", "dist", "mqtt.min.js"))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(originPage))
	})
	mux.HandleFunc("GET /mqtt.min.js", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		_, _ = w.Write(bundle)
	})
	hs := httptest.NewServer(mux) // on 127.0.0.1
	t.Cleanup(hs.Close)
	u, err := url.Parse(hs.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Port()
}

// originResult is what origin_test.mjs saw of one case.
type originResult struct {
	Name string `json:"name"`
	Raw  struct {
		Opened   bool `json:"opened"`
		Code     int  `json:"code"`
		TimedOut bool `json:"timedOut"`
	} `json:"raw"`
	MQTT struct {
		Connected bool     `json:"connected"`
		Closed    bool     `json:"closed"`
		TimedOut  bool     `json:"timedOut"`
		Errors    []string `json:"errors"`
		Messages  []string `json:"messages"`
	} `json:"mqtt"`
	Console []string `json:"console"`
}

// TestBrowserOriginPolicy checks the WebSocket listener's origin policy
// (listeners/websocket/origin.go) both ways with real pages in headless
// Chromium, served from another loopback port than the broker's. On a
// loopback listener without allowed_origins, a page of a loopback origin
// connects with MQTT.js, and its messages and a Go client's over TCP make
// the round trip. A DNS-rebinding page (http://evil.test:PORT, which
// Chromium resolves to 127.0.0.1) opening ws://evil.test:PORT fails its
// handshake in the browser, and the broker logs its Origin, its Host and
// the key to set; the key named does let the page in: allowed_hosts for a
// loopback page that names the broker evil.test, allowed_origins for the
// evil.test page, which allowed_hosts alone does not let in (issue 17 §5;
// RFC 6455 §10.2).
func TestBrowserOriginPolicy(t *testing.T) {
	node := requireBrowser(t)
	pagePort := servePages(t)
	loopbackPage := "http://" + net.JoinHostPort("localhost", pagePort) + "/"
	rebindOrigin := "http://" + net.JoinHostPort(rebindHost, pagePort)

	var logs logBuffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	srv, err := core.New(core.Options{AllowAnonymous: true, SysInterval: -1, Logger: logger})
	if err != nil {
		t.Fatalf("core.New: %v", err)
	}
	wsDefault := websocket.New("ws-default", "127.0.0.1:0", websocket.Options{Logger: logger})
	wsHosts := websocket.New("ws-hosts", "127.0.0.1:0", websocket.Options{AllowedHosts: []string{rebindHost}, Logger: logger})
	wsOrigins := websocket.New("ws-origins", "127.0.0.1:0", websocket.Options{AllowedOrigins: []string{rebindOrigin}, Logger: logger})
	tcpAddr := mqtttest.Serve(t, srv, tcp.New("tcp", "127.0.0.1:0"), wsDefault, wsHosts, wsOrigins)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("broker log:\n%s", &logs)
		}
	})
	wsURL := func(host string, l *websocket.Listener) string {
		_, p, _ := net.SplitHostPort(l.Address())
		return "ws://" + net.JoinHostPort(host, p) + websocket.DefaultPath
	}
	hostOf := func(l *websocket.Listener, host string) string {
		_, p, _ := net.SplitHostPort(l.Address())
		return "host=" + net.JoinHostPort(host, p)
	}

	tests := []struct {
		name     string
		page     string   // the page's URL: its origin is the Origin of the handshake
		ws       string   // what the page connects to
		refusals []string // nil: connects; else what the broker's refusal line holds
	}{
		{"loopback page, loopback listener", loopbackPage, wsURL("127.0.0.1", wsDefault), nil},
		{"127.0.0.1 page, localhost listener", "http://" + net.JoinHostPort("127.0.0.1", pagePort) + "/",
			wsURL("localhost", wsDefault), nil},
		{"DNS rebinding", rebindOrigin + "/", wsURL(rebindHost, wsDefault),
			[]string{"listener=ws-default", "origin=" + rebindOrigin, hostOf(wsDefault, rebindHost), "key=allowed_hosts", "DNS rebinding"}},
		{"loopback page, Host evil.test", loopbackPage, wsURL(rebindHost, wsDefault),
			[]string{"listener=ws-default", "origin=http://localhost:" + pagePort, hostOf(wsDefault, rebindHost), "key=allowed_hosts"}},
		{"loopback page, Host evil.test in allowed_hosts", loopbackPage, wsURL(rebindHost, wsHosts), nil},
		{"DNS rebinding, Host in allowed_hosts", rebindOrigin + "/", wsURL(rebindHost, wsHosts),
			[]string{"listener=ws-hosts", "origin=" + rebindOrigin, hostOf(wsHosts, rebindHost), "key=allowed_origins", "not a loopback origin"}},
		{"DNS rebinding, Origin in allowed_origins", rebindOrigin + "/", wsURL(rebindHost, wsOrigins), nil},
	}
	type jsCase struct {
		Name  string   `json:"name"`
		Page  string   `json:"page"`
		WS    string   `json:"ws"`
		Topic string   `json:"topic"`
		Send  string   `json:"send"`
		Want  []string `json:"want"`
	}
	// Each page's topic holds a message the Go client retained, over TCP,
	// for the page to receive besides its own.
	goClient, goGot := connectPaho(t, tcpAddr, "origin/#")
	cases := make([]jsCase, len(tests))
	for i, tc := range tests {
		c := jsCase{Name: tc.name, Page: tc.page, WS: tc.ws, Topic: fmt.Sprintf("origin/%d", i),
			Send: "from the page: " + tc.name, Want: []string{"from the page: " + tc.name, "from Go: " + tc.name}}
		if tok := goClient.Publish(c.Topic, 1, true, c.Want[1]); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
			t.Fatalf("paho publish %s: %v", c.Topic, tok.Error())
		}
		cases[i] = c
	}
	casesJSON, err := json.Marshal(cases)
	if err != nil {
		t.Fatal(err)
	}

	run := startNode(t, node, "origin_test.mjs", string(casesJSON))
	results := map[string]originResult{}
	sc := bufio.NewScanner(run.stdout)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "result: ") {
			t.Logf("origin_test.mjs: %s", line)
			continue
		}
		var r originResult
		if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "result: ")), &r); err != nil {
			t.Errorf("origin_test.mjs printed %q: %v", line, err)
			continue
		}
		results[r.Name] = r
	}
	run.wait(t, fmt.Sprintf("%d of %d cases done", len(results), len(tests)))

	// Over TCP, the Go client gets the message of every page that
	// connected (besides its own retained ones, delivered live).
	var fromPages []string
	for i, tc := range tests {
		if tc.refusals == nil {
			fromPages = append(fromPages, cases[i].Send)
		}
	}
	var got []string
	deadline := time.After(waitTimeout)
wait:
	for slices.ContainsFunc(fromPages, func(s string) bool { return !slices.Contains(got, s) }) {
		select {
		case m := <-goGot:
			got = append(got, m)
		case <-deadline:
			break wait // each case says what it lacks
		}
	}

	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, ok := results[tc.name]
			if !ok {
				t.Fatal("origin_test.mjs printed no result")
			}
			t.Logf("page %s, ws %s: %+v", tc.page, tc.ws, r)
			if tc.refusals == nil {
				if !r.Raw.Opened {
					t.Errorf("the page's WebSocket did not open (close code %d, timed out %v), want it open; console: %q",
						r.Raw.Code, r.Raw.TimedOut, r.Console)
				}
				if !r.MQTT.Connected {
					t.Fatalf("MQTT.js did not connect (errors %q, closed %v, timed out %v), want connected; console: %q",
						r.MQTT.Errors, r.MQTT.Closed, r.MQTT.TimedOut, r.Console)
				}
				for _, w := range cases[i].Want {
					if !slices.Contains(r.MQTT.Messages, w) {
						t.Errorf("the page received %q, want %q among them", r.MQTT.Messages, w)
					}
				}
				if !slices.Contains(got, cases[i].Send) {
					t.Errorf("the Go client received %q over TCP, want %q among them", got, cases[i].Send)
				}
				if line := logLine(&logs, "websocket handshake refused", "origin="+originOf(t, tc.page), "host="+originOf(t, tc.ws)[len("ws://"):]); line != "" {
					t.Errorf("the broker logged a refusal for this page: %s", line)
				}
				return
			}
			// The handshake failed in the browser: the WebSocket closed
			// without opening (1006, abnormal closure: no close frame),
			// MQTT.js saw its connection close, never connected.
			if r.Raw.Opened || r.Raw.Code != 1006 {
				t.Errorf("the page's WebSocket: opened %v, close code %d (timed out %v), want a failed handshake (not opened, 1006)",
					r.Raw.Opened, r.Raw.Code, r.Raw.TimedOut)
			}
			// Chromium tells the page's console why: "Error during WebSocket
			// handshake: Unexpected response code: 403".
			if !slices.ContainsFunc(r.Console, func(l string) bool { return strings.Contains(l, "WebSocket") && strings.Contains(l, "403") }) {
				t.Errorf("the page's console does not show the 403: %q", r.Console)
			}
			if r.MQTT.Connected || !r.MQTT.Closed {
				t.Errorf("MQTT.js: connected %v, closed %v (timed out %v, errors %q), want closed, never connected",
					r.MQTT.Connected, r.MQTT.Closed, r.MQTT.TimedOut, r.MQTT.Errors)
			}
			if line := logLine(&logs, append([]string{"websocket handshake refused", "status=403"}, tc.refusals...)...); line == "" {
				t.Errorf("the broker logged no refusal holding %q", tc.refusals)
			}
		})
	}
}

// logLine returns the first line of logs that holds every one of want, or
// "".
func logLine(logs *logBuffer, want ...string) string {
	for line := range strings.Lines(logs.String()) {
		if !slices.ContainsFunc(want, func(w string) bool { return !strings.Contains(line, w) }) {
			return strings.TrimSpace(line)
		}
	}
	return ""
}

// originOf returns the origin (scheme://host:port) of rawURL.
func originOf(t *testing.T, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Scheme + "://" + u.Host
}
