package vanemqcmd

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/mqtttest"
	"github.com/vanemq/vanemq/hooks/cluster"
	"github.com/vanemq/vanemq/hooks/cluster/natsdev"
)

// The cluster section decodes into hooks/cluster.Config, the file's paths
// as written (buildHooks resolves them).
func TestParseClusterConfig(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want *cluster.Config // nil: no cluster
	}{
		{"none", "log: {level: info}\n", nil},
		{"empty section", "cluster:\n", nil},
		{"one URL", "cluster:\n  urls: [nats://127.0.0.1:4222]\n",
			&cluster.Config{URLs: []string{"nats://127.0.0.1:4222"}}},
		{"every key", `cluster:
  urls:
    - tls://nats-1.example:4222
    - tls://nats-2.example:4222
  node: edge-1
  prefix: plant_a
  credentials: nats/edge.creds
  tls:
    ca: nats/ca.pem
    cert: nats/edge.pem
    key: nats/edge-key.pem
  connect_timeout: 2s
  reconnect_wait: 500ms
  replicas: 3
  handoff_timeout: 10
  inbox_max_age: 1h
`, &cluster.Config{
			URLs: []string{"tls://nats-1.example:4222", "tls://nats-2.example:4222"},
			Node: "edge-1", Prefix: "plant_a", Credentials: "nats/edge.creds",
			TLS:            &cluster.TLSConfig{CA: "nats/ca.pem", Cert: "nats/edge.pem", Key: "nats/edge-key.pem"},
			ConnectTimeout: 2 * time.Second, ReconnectWait: 500 * time.Millisecond, Replicas: 3,
			HandoffTimeout: 10 * time.Second, InboxMaxAge: time.Hour,
		}},
		{"user and password", "cluster: {urls: [\"nats://a:4222\"], username: vanemq, password: s3cret}\n",
			&cluster.Config{URLs: []string{"nats://a:4222"}, Username: "vanemq", Password: "s3cret"}},
		{"token, TLS with the system's roots", "cluster: {urls: [\"tls://a:4222\"], token: t0k, tls: {}}\n",
			&cluster.Config{URLs: []string{"tls://a:4222"}, Token: "t0k", TLS: &cluster.TLSConfig{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parseConfig("t.yaml", []byte(tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tt.want == nil && cfg.Cluster != nil:
				t.Errorf("cluster = %+v, want none", cfg.Cluster.Config)
			case tt.want != nil && cfg.Cluster == nil:
				t.Errorf("no cluster, want %+v", *tt.want)
			case tt.want != nil && !reflect.DeepEqual(cfg.Cluster.Config, *tt.want):
				t.Errorf("cluster =\n%+v\nwant\n%+v", cfg.Cluster.Config, *tt.want)
			}
		})
	}
}

func TestParseClusterConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // every line of the error, in order
	}{
		{"unknown key", "cluster:\n  urls: [\"nats://a:4222\"]\n  url: nats://b:4222\n",
			[]string{"t.yaml:3: cluster.url: unknown key (did you mean urls?)"}},
		{"unknown tls key", "cluster:\n  urls: [\"tls://a:4222\"]\n  tls:\n    ca: ca.pem\n    cerf: c.pem\n    key: k.pem\n",
			[]string{
				"t.yaml:5: cluster.tls.cerf: unknown key (did you mean cert?)",
				"t.yaml:4: cluster.tls.cert: required key missing: the client certificate and its key go together",
			}},
		{"not a mapping", "cluster: nats://a:4222\n",
			[]string{`t.yaml:1: cluster: cannot use "nats://a:4222" as a mapping`}},
		{"no urls", "cluster:\n  node: n1\n",
			[]string{"t.yaml:2: cluster.urls: required key missing: the NATS servers to join through (nats://host:port or tls://host:port)"}},
		{"urls not a list", "cluster:\n  urls: nats://a:4222\n",
			[]string{`t.yaml:2: cluster.urls: cannot use "nats://a:4222" as a list of NATS server URLs`}},
		{"urls empty", "cluster:\n  urls: []\n",
			[]string{"t.yaml:2: cluster.urls: at least one NATS server URL is needed (nats://host:port or tls://host:port)"}},
		{"wrong types", `cluster:
  urls: ["nats://a:4222"]
  node: [n1]
  replicas: 9
  connect_timeout: soon
  handoff_timeout: -1s
`, []string{
			"t.yaml:3: cluster.node: cannot use a sequence as a string",
			"t.yaml:4: cluster.replicas: must be between 0 and 5, got 9",
			`t.yaml:5: cluster.connect_timeout: cannot use "soon" as a duration (want e.g. 10s, 1m30s or a number of seconds)`,
			"t.yaml:6: cluster.handoff_timeout: must not be negative, got -1s",
		}},
		{"duplicate key", "cluster:\n  urls: [\"nats://a:4222\"]\n  node: a\n  node: b\n",
			[]string{"t.yaml:4: cluster.node: duplicate key (first set at line 3)"}},
		{"tls cert without key", "cluster:\n  urls: [\"tls://a:4222\"]\n  tls: {cert: c.pem}\n",
			[]string{"t.yaml:3: cluster.tls.key: required key missing: the client certificate and its key go together"}},
		{"both the section and a hooks entry", `hooks:
  - id: cluster
    config: {urls: ["nats://a:4222"]}
cluster:
  urls: ["nats://a:4222"]
`, []string{"t.yaml:5: cluster: the cluster hook is also configured in hooks[0] (line 2): configure it once, in the cluster section or in hooks"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig("t.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatal("parseConfig succeeded, want an error")
			}
			if got, want := err.Error(), strings.Join(tt.want, "\n"); got != want {
				t.Errorf("error:\n%s\nwant:\n%s", got, want)
			}
			var ce *configError
			if !errors.As(err, &ce) || ce.File != "t.yaml" || ce.Line == 0 {
				t.Errorf("error %#v is not a *configError with a file and line", err)
			}
		})
	}
}

// buildCluster parses yml as t.yaml in dir and builds its hooks for a
// server that is never started (the cluster hook connects to NATS only
// when it starts).
func buildCluster(t *testing.T, yml, dir string) ([]builtHook, error) {
	t.Helper()
	cfg, err := parseConfig("t.yaml", []byte(yml))
	if err != nil {
		t.Fatalf("parseConfig: %v", err)
	}
	cfg.Dir = dir
	srv, err := core.New(core.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return buildHooks(srv, cfg, slog.New(slog.DiscardHandler))
}

// The cluster section builds the cluster hook, its files found relative
// to the config file's directory.
func TestBuildClusterHook(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"edge.creds", "ca.pem", "edge.pem", "edge-key.pem"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	built, err := buildCluster(t, `hooks:
  - id: test.hook
cluster:
  urls: ["tls://127.0.0.1:4222"]
  node: edge-1
  credentials: edge.creds
  tls: {ca: ca.pem, cert: edge.pem, key: edge-key.pem}
`, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer closeBuilt(built, slog.New(slog.DiscardHandler))
	if len(built) != 2 {
		t.Fatalf("%d hooks built, want test.hook and cluster", len(built))
	}
	h, ok := built[1].hook.(*cluster.Hook)
	if !ok || h.ID() != cluster.ID || h.Node() != "edge-1" {
		t.Fatalf("second hook %T %q, want the cluster hook of node edge-1", built[1].hook, built[1].hook.ID())
	}
	if k := built[1].cfg; k.Key != "cluster" || k.Line != 4 || k.File != "t.yaml" {
		t.Errorf("the cluster hook's entry is %+v, want key cluster at t.yaml:4", k)
	}
}

// cluster.New's errors name the key of the section, at its line.
func TestBuildClusterHookErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		yaml string
		want string
	}{
		{"URL without a scheme", "cluster:\n  urls:\n    - nats://a:4222\n    - b:4222\n",
			`t.yaml:4: cluster.urls[1]: "b:4222": want nats://host:port or tls://host:port`},
		{"bad node name", "cluster:\n  urls: [\"nats://a:4222\"]\n  node: edge 1\n",
			`t.yaml:3: cluster.node: "edge 1": use 1 to 64 letters, digits, '-' and '_'`},
		{"bad prefix", "cluster:\n  urls: [\"nats://a:4222\"]\n  prefix: a.b\n",
			`t.yaml:3: cluster.prefix: "a.b": use 1 to 32 letters, digits, '-' and '_'`},
		{"two ways to authenticate", "cluster:\n  urls: [\"nats://a:4222\"]\n  username: u\n  token: t\n",
			"t.yaml:2: cluster: username/password, token and credentials: set at most one"},
		{"password without username", "cluster:\n  urls: [\"nats://a:4222\"]\n  password: p\n",
			"t.yaml:3: cluster.password: set without username"},
		{"credentials missing, relative to the config's directory", "cluster:\n  urls: [\"nats://a:4222\"]\n  credentials: edge.creds\n",
			"t.yaml:3: cluster.credentials: stat " + filepath.Join(dir, "edge.creds") + ": no such file or directory"},
		{"tls file missing", "cluster:\n  urls: [\"tls://a:4222\"]\n  tls:\n    ca: ca.pem\n",
			"t.yaml:4: cluster.tls.ca: stat " + filepath.Join(dir, "ca.pem") + ": no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			built, err := buildCluster(t, tt.yaml, dir)
			if err == nil {
				closeBuilt(built, slog.New(slog.DiscardHandler))
				t.Fatal("buildHooks succeeded, want an error")
			}
			if err.Error() != tt.want {
				t.Errorf("error:\n%s\nwant:\n%s", err, tt.want)
			}
			var ce *configError
			if !errors.As(err, &ce) || ce.File != "t.yaml" || ce.Line == 0 {
				t.Errorf("error %#v is not a *configError with a file and line", err)
			}
		})
	}
}

// The cluster section takes every key of the hook's config block, and
// docs/clustering.md documents each.
func TestClusterKeys(t *testing.T) {
	doc, err := os.ReadFile("../../../docs/clustering.md")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	var walk func(typ reflect.Type, path string)
	walk = func(typ reflect.Type, path string) {
		for f := range typ.Fields() {
			name := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if name == "-" {
				continue // set by the broker, not the file
			}
			k := path + name
			keys = append(keys, k)
			if ft := f.Type; ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Struct {
				walk(ft.Elem(), k+".")
			}
		}
	}
	walk(reflect.TypeFor[cluster.Config](), "")
	var yml strings.Builder
	yml.WriteString("cluster:\n  urls: [\"nats://a:4222\"]\n")
	nested := map[string][]string{}
	for _, k := range keys {
		if !strings.Contains(string(doc), "`"+k+"`") {
			t.Errorf("docs/clustering.md does not document `%s`", k)
		}
		parent, sub, ok := strings.Cut(k, ".")
		isParent := slices.ContainsFunc(keys, func(o string) bool { return strings.HasPrefix(o, k+".") })
		switch {
		case ok:
			nested[parent] = append(nested[parent], sub+": x")
		case k != "urls" && !isParent:
			yml.WriteString("  " + k + ": x\n")
		}
	}
	for parent, subs := range nested {
		yml.WriteString("  " + parent + ": {" + strings.Join(subs, ", ") + "}\n")
	}
	_, err = parseConfig("t.yaml", []byte(yml.String()))
	if err != nil && strings.Contains(err.Error(), "unknown key") {
		t.Errorf("the cluster section does not take a key of cluster.Config:\n%v", err)
	}
}

// TestRunClusterSection: a config file's cluster section joins the broker
// to NATS, as the admin API reports.
func TestRunClusterSection(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	nats, err := natsdev.Start(ctx, natsdev.Options{Nodes: 1, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nats.Close)
	addr, logs := runBroker(t, `allow_anonymous: true
listeners:
  - {id: http, type: http, address: "127.0.0.1:0", token: t0ken}
storage: {type: memory}
cluster:
  urls: ["`+nats.URL(0)+`"]
  node: from-file
`)
	var st core.ClusterStatus
	mqtttest.Eventually(t, waitTimeout, "the node joined, as /api/v1/cluster says", func() bool {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/api/v1/cluster", nil)
		req.Header.Set("Authorization", "Bearer t0ken")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&st) == nil && st.JetStream
	})
	if st.Node != "from-file" || !st.Connected || st.Server != nats.URL(0) {
		t.Errorf("status %+v, want node from-file connected to %s; log:\n%s", st, nats.URL(0), logs)
	}
}

// TestClusterStorageBucket: a node of a cluster that keeps its state in
// NATS gets a bucket of its own, named after the cluster's prefix and its
// node, unless the file names one.
func TestClusterStorageBucket(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"default", "cluster: {urls: [\"nats://a:4222\"], node: n7}\nstorage: {type: nats, nats: {urls: [\"nats://a:4222\"]}}\n", "vanemq_n7"},
		{"cluster prefix", "cluster: {urls: [\"nats://a:4222\"], node: n7, prefix: site}\nstorage: {type: nats, nats: {urls: [\"nats://a:4222\"]}}\n", "site_n7"},
		{"set in the file", "cluster: {urls: [\"nats://a:4222\"], node: n7}\nstorage: {type: nats, nats: {urls: [\"nats://a:4222\"], prefix: mine}}\n", "mine"},
		{"no cluster", "storage: {type: nats, nats: {urls: [\"nats://a:4222\"]}}\n", "vanemq"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := parseConfig("t.yaml", []byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Storage.NATS.Prefix; got != tc.want {
				t.Fatalf("storage.nats.prefix = %q, want %q", got, tc.want)
			}
		})
	}
}
