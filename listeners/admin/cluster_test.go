package admin

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/mqtttest"
	"github.com/vanemq/vanemq/hooks/cluster"
	"github.com/vanemq/vanemq/hooks/cluster/natsdev"
	"github.com/vanemq/vanemq/listeners/tcp"
)

// clusterHook reports a cluster status (core.ClusterReporter), as
// hooks/cluster does.
type clusterHook struct{ st core.ClusterStatus }

func (clusterHook) ID() string                          { return "test.cluster" }
func (h clusterHook) ClusterStatus() core.ClusterStatus { return h.st }

// testClusterStatus is what clusterHook reports: three nodes, one of
// them down, and counters all different.
var testClusterStatus = core.ClusterStatus{
	Node: "n1", Connected: true, Server: "nats://127.0.0.1:4222", JetStream: true,
	Peers: []core.ClusterPeer{
		{Name: "n1", Self: true, Alive: true, Since: time.Unix(1000, 0).UTC(), LastSeen: time.Unix(2000, 0).UTC(), Routes: 2},
		{Name: "n2", Alive: true, Since: time.Unix(1100, 0).UTC(), LastSeen: time.Unix(1999, 0).UTC(), Routes: 5},
		{Name: "n3", Since: time.Unix(900, 0).UTC(), LastSeen: time.Unix(1500, 0).UTC()},
	},
	Counters: core.ClusterCounters{Forwarded: 1, Received: 2, Delivered: 3, Duplicates: 4, Unrouted: 5, Dropped: 6, Bad: 7, HandoffFailures: 8,
		SessionsAdopted: 9, SessionsReleased: 10, SessionsFromDead: 11, PassedOn: 12, PassedOnLost: 13},
}

// clusterBroker starts a broker with an admin listener and, when st is
// not nil, a hook reporting st; it returns the admin base URL.
func clusterBroker(t *testing.T, token string, st *core.ClusterStatus) string {
	t.Helper()
	srv, err := core.New(core.Options{AllowAnonymous: true, SysInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if st != nil {
		if err := srv.AddHook(clusterHook{st: *st}, 0); err != nil {
			t.Fatalf("AddHook: %v", err)
		}
	}
	al := New("admin", "127.0.0.1:0", srv, Options{Token: token, Logger: slog.New(slog.DiscardHandler)})
	mqtttest.Serve(t, srv, al)
	return "http://" + al.Address()
}

// GET /api/v1/cluster answers the cluster hook's status, 404 with a JSON
// error on a broker that is not clustered, and 401 without the token.
func TestAPICluster(t *testing.T) {
	const token = "s3cret-token"
	for _, tt := range []struct {
		name     string
		st       *core.ClusterStatus
		token    string
		wantCode int
		wantBody string // a part of the body
	}{
		{"clustered", &testClusterStatus, token, http.StatusOK, `"handoff_failures": 8`},
		{"not clustered", nil, token, http.StatusNotFound, `"error": "not clustered: the broker runs no cluster hook`},
		{"no token", &testClusterStatus, "", http.StatusUnauthorized, `"error": "missing bearer token"`},
		{"wrong token", &testClusterStatus, "wrong", http.StatusUnauthorized, `"error": "invalid bearer token"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			base := clusterBroker(t, token, tt.st)
			resp, body := get(t, base+"/api/v1/cluster", tt.token)
			if resp.StatusCode != tt.wantCode || !strings.Contains(string(body), tt.wantBody) {
				t.Fatalf("GET /api/v1/cluster: %s\n%s\nwant %d with %s", resp.Status, body, tt.wantCode, tt.wantBody)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			if tt.wantCode != http.StatusOK {
				return
			}
			var got core.ClusterStatus
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatalf("decode: %v\n%s", err, body)
			}
			want, _ := json.Marshal(testClusterStatus)
			if gotJSON, _ := json.Marshal(got); string(gotJSON) != string(want) {
				t.Errorf("status\n got %s\nwant %s", gotJSON, want)
			}
		})
	}
}

// The cluster metrics carry the cluster hook's status, and a broker that
// is not clustered has none.
func TestMetricsCluster(t *testing.T) {
	fams := scrape(t, clusterBroker(t, "", &testClusterStatus))
	for _, c := range []struct {
		name string
		want float64
	}{
		{"vanemq_cluster_connected", 1},
		{"vanemq_cluster_jetstream_ready", 1},
		{"vanemq_cluster_peers", 3},
		{"vanemq_cluster_peers_alive", 2},
		{"vanemq_cluster_forwarded_total", 1},
		{"vanemq_cluster_received_total", 2},
		{"vanemq_cluster_delivered_total", 3},
		{"vanemq_cluster_duplicates_total", 4},
		{"vanemq_cluster_unrouted_total", 5},
		{"vanemq_cluster_dropped_total", 6},
		{"vanemq_cluster_bad_total", 7},
		{"vanemq_cluster_handoff_failures_total", 8},
		{"vanemq_cluster_passed_on_total", 12},
		{"vanemq_cluster_passed_on_lost_total", 13},
	} {
		if v, ok := value(fams, c.name); !ok || v != c.want {
			t.Errorf("%s = %v (present %v), want %v", c.name, v, ok, c.want)
		}
	}
	for dir, want := range map[string]float64{"in": 9, "out": 10, "from_dead": 11} {
		if v, ok := value(fams, "vanemq_cluster_sessions_moved_total", "direction", dir); !ok || v != want {
			t.Errorf("vanemq_cluster_sessions_moved_total{direction=%q} = %v (present %v), want %v", dir, v, ok, want)
		}
	}
	for name := range scrape(t, clusterBroker(t, "", nil)) {
		if strings.HasPrefix(name, "vanemq_cluster_") {
			t.Errorf("%s exported by a broker that is not clustered", name)
		}
	}
}

// With the real cluster hook joined to an embedded NATS server, the API
// and the metrics report the node connected to it, with JetStream.
func TestAPIClusterNATS(t *testing.T) {
	const token = "s3cret-token"
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	nats, err := natsdev.Start(ctx, natsdev.Options{Nodes: 1, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nats.Close)
	srv, err := core.New(core.Options{AllowAnonymous: true, SysInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	h, err := cluster.New(cluster.ID, cluster.Config{URLs: []string{nats.URL(0)}, Node: "solo"}, srv, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.AddHook(h, 0); err != nil {
		t.Fatal(err)
	}
	al := New("admin", "127.0.0.1:0", srv, Options{Token: token, Logger: slog.New(slog.DiscardHandler)})
	mqtttest.Serve(t, srv, tcp.New("tcp", "127.0.0.1:0"), al)
	base := "http://" + al.Address()
	mqtttest.Eventually(t, waitTimeout, "/readyz ready with the node joined", func() bool {
		resp, _ := get(t, base+"/readyz", "")
		return resp.StatusCode == http.StatusOK
	})

	resp, body := get(t, base+"/api/v1/cluster", token)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/v1/cluster: %s\n%s", resp.Status, body)
	}
	var st core.ClusterStatus
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("decode: %v\n%s", err, body)
	}
	if st.Node != "solo" || !st.Connected || st.Server != nats.URL(0) || !st.JetStream || st.Unhealthy != "" ||
		len(st.Peers) != 1 || !st.Peers[0].Self || !st.Peers[0].Alive {
		t.Errorf("status: %s", body)
	}
	fams := scrape(t, base)
	if v, _ := value(fams, "vanemq_cluster_connected"); v != 1 {
		t.Errorf("vanemq_cluster_connected = %v, want 1", v)
	}
	if v, _ := value(fams, "vanemq_cluster_peers_alive"); v != 1 {
		t.Errorf("vanemq_cluster_peers_alive = %v, want 1", v)
	}

	// Without its NATS server the node is not ready, and says why.
	nats.Stop(0)
	mqtttest.Eventually(t, waitTimeout, "/readyz not ready without NATS", func() bool {
		resp, body := get(t, base+"/readyz", "")
		return resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(string(body), "hook cluster: cluster: not connected to NATS")
	})
	if v, _ := value(scrape(t, base), "vanemq_cluster_connected"); v != 0 {
		t.Errorf("vanemq_cluster_connected = %v without NATS, want 0", v)
	}
	_, body = get(t, base+"/api/v1/cluster", token)
	var down core.ClusterStatus
	if err := json.Unmarshal(body, &down); err != nil || down.Connected || down.Server != "" || !strings.Contains(down.Unhealthy, "not connected") {
		t.Errorf("status without NATS: %s", body)
	}

	// NATS back, the node is ready again. (A node stopping while NATS is
	// down takes as long as the NATS client's requests time out.)
	if err := nats.Restart(ctx, 0); err != nil {
		t.Fatal(err)
	}
	mqtttest.Eventually(t, waitTimeout, "/readyz ready with NATS back", func() bool {
		resp, _ := get(t, base+"/readyz", "")
		return resp.StatusCode == http.StatusOK
	})
}
