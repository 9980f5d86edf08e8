package cluster

// Helpers of the cluster's end-to-end tests: embedded nats-server nodes
// (natsdev), vanemq nodes in process each joined to one of them, and MQTT
// clients (paho.golang, paho.mqtt.golang, mosquitto_pub/mosquitto_sub)
// connected to different nodes.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/mqtttest"
	"github.com/vanemq/vanemq/hooks/cluster/natsdev"
	"github.com/vanemq/vanemq/hooks/storage"
	"github.com/vanemq/vanemq/listeners/tcp"
)

const waitTimeout = 10 * time.Second

// testNode is a vanemq node of a test cluster.
type testNode struct {
	nats *natsdev.Cluster // the NATS servers
	ni   int              // the one this node is joined through
	name string
	addr string
	srv  *core.Server
	hook *Hook
}

// startNATS starts n embedded NATS servers, clustered, with JetStream.
func startNATS(t testing.TB, n int) *natsdev.Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nc, err := natsdev.Start(ctx, natsdev.Options{Nodes: n, Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("natsdev: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// testLogger logs to the test's log with -v, else nowhere.
func testLogger(t testing.TB) *slog.Logger {
	var w io.Writer = io.Discard
	if testing.Verbose() {
		w = testWriter{t}
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// startNode starts vanemq node name, joined to the cluster through url,
// and waits until it is connected to NATS.
func startNode(t testing.TB, name, url string) *testNode {
	t.Helper()
	return startNodeWith(t, name, Config{URLs: []string{url}}, "", "127.0.0.1:0")
}

// startNodeWith starts node name with cfg (its Node set to name),
// keeping its sessions in a pebble store in dir unless dir is "", and
// listening on addr; it waits until the node is ready.
func startNodeWith(t testing.TB, name string, cfg Config, dir, addr string) *testNode {
	t.Helper()
	return startNodeOpts(t, name, cfg, dir, addr, core.Options{AllowAnonymous: true, SysInterval: -1})
}

// startNodeOpts is startNodeWith with the server's options (its Logger
// set here).
func startNodeOpts(t testing.TB, name string, cfg Config, dir, addr string, opts core.Options, hooks ...core.Hook) *testNode {
	t.Helper()
	log := testLogger(t).With("test_node", name)
	opts.Logger = log
	srv, err := core.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if dir != "" {
		st, err := storage.Open(context.Background(), storage.Config{Path: dir, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.AddHook(st, 0); err != nil {
			t.Fatal(err)
		}
	}
	for _, hk := range hooks {
		if err := srv.AddHook(hk, 0); err != nil {
			t.Fatal(err)
		}
	}
	cfg.Node = name
	h, err := New(ID, cfg, srv, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.AddHook(h, 0); err != nil {
		t.Fatal(err)
	}
	addr = mqtttest.Serve(t, srv, tcp.New("tcp", addr))
	mqtttest.Eventually(t, waitTimeout, name+" connected to NATS", func() bool { return h.Health() == nil })
	return &testNode{name: name, addr: addr, srv: srv, hook: h}
}

// startCluster starts n NATS servers and n vanemq nodes, node i joined
// through NATS server i.
func startCluster(t *testing.T, n int) []*testNode {
	t.Helper()
	nats := startNATS(t, n)
	nodes := make([]*testNode, n)
	for i := range nodes {
		nodes[i] = startNode(t, fmt.Sprintf("n%d", i+1), nats.URL(i))
		nodes[i].nats, nodes[i].ni = nats, i
	}
	return nodes
}

// waitInterest waits until from's NATS server knows at least n
// subscriptions matching topic's subject: until the interest of other
// nodes has spread through NATS to the node that publishes. A server
// counts another server's interest in a subject once, however many
// subscriptions there match it: n counts servers, not subscriptions.
func waitInterest(t testing.TB, from *testNode, topic string, n int) {
	t.Helper()
	subj := from.hook.subject(topic)
	mqtttest.Eventually(t, waitTimeout, fmt.Sprintf("%d subscriptions to %s known to %s's NATS server", n, subj, from.name), func() bool {
		return from.nats.Interest(from.ni, subj) >= n
	})
}

// waitRoutes waits until from's route table has n other nodes with
// interest in topic (ordinary subscriptions or share group members): until
// from hands QoS 1/2 messages on topic to them.
func waitRoutes(t testing.TB, from *testNode, topic string, n int) {
	t.Helper()
	mqtttest.Eventually(t, waitTimeout, fmt.Sprintf("%d other nodes in %s's route table for %s", n, from.name, topic), func() bool {
		return len(from.hook.routes.nodesFor(topic)) >= n
	})
}

// waitReach waits until from reaches n other nodes for topic both ways:
// QoS 0 (NATS interest in its subject, counted by NATS server) and QoS
// 1/2 (the route table).
func waitReach(t testing.TB, from *testNode, topic string, n int) {
	t.Helper()
	waitInterest(t, from, topic, n)
	waitRoutes(t, from, topic, n)
}

// v5Sub is a paho.golang client collecting what it receives.
type v5Sub struct {
	c    *paho.Client
	id   string
	mu   sync.Mutex
	got  []*paho.Publish
	news chan struct{}
}

// connectV5 connects a paho.golang client with a clean session to node.
func connectV5(t *testing.T, n *testNode, id string) *v5Sub {
	t.Helper()
	s := &v5Sub{id: id, news: make(chan struct{}, 1)}
	c, _, err := mqtttest.ConnectPaho(t, n.addr, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30}, s.collect)
	if err != nil {
		t.Fatal(err)
	}
	s.c = c
	return s
}

// collect is the client's message handler.
func (s *v5Sub) collect(p *paho.Publish) {
	s.mu.Lock()
	s.got = append(s.got, p)
	s.mu.Unlock()
	select {
	case s.news <- struct{}{}:
	default:
	}
}

// subscribe subscribes to filters, each at qos.
func (s *v5Sub) subscribe(t *testing.T, qos byte, filters ...string) {
	t.Helper()
	sub := &paho.Subscribe{}
	for _, f := range filters {
		sub.Subscriptions = append(sub.Subscriptions, paho.SubscribeOptions{Topic: f, QoS: qos})
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	sa, err := s.c.Subscribe(ctx, sub)
	if err != nil {
		t.Fatalf("%s: subscribe %v: %v", s.id, filters, err)
	}
	for i, r := range sa.Reasons {
		if r != qos {
			t.Fatalf("%s: SUBACK 0x%02x for %s", s.id, r, filters[i])
		}
	}
}

// publish publishes from the client, waiting for QoS 1/2 acknowledgements.
func (s *v5Sub) publish(t *testing.T, topic string, qos byte, payload string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := s.c.Publish(ctx, &paho.Publish{Topic: topic, QoS: qos, Payload: []byte(payload)}); err != nil {
		t.Fatalf("%s: publish %s: %v", s.id, topic, err)
	}
}

// reset forgets what the client received so far.
func (s *v5Sub) reset() {
	s.mu.Lock()
	s.got = nil
	s.mu.Unlock()
}

// messages returns what the client received so far.
func (s *v5Sub) messages() []*paho.Publish {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*paho.Publish(nil), s.got...)
}

// waitCount waits until the client has received n messages.
func (s *v5Sub) waitCount(t *testing.T, n int) []*paho.Publish {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		if got := s.messages(); len(got) >= n {
			return got
		}
		select {
		case <-s.news:
		case <-deadline:
			var got []string
			for _, m := range s.messages() {
				got = append(got, fmt.Sprintf("%.20s:%.20s", m.Topic, m.Payload))
			}
			t.Fatalf("%s: %d messages after %v, want %d: %v", s.id, len(got), waitTimeout, n, got)
		}
	}
}
