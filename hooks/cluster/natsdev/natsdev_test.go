package natsdev

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vanemq/vanemq/core/logtest"
	"github.com/vanemq/vanemq/core/mqtttest"
)

// startTimeout bounds every Start and Restart of these tests.
const startTimeout = 45 * time.Second

// checkLeaks checks, once every later cleanup (Close, the clients' Close)
// has run, that no goroutine started by the test is left.
func checkLeaks(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() { mqtttest.CheckGoroutines(t, "after the servers and clients closed", before) })
}

// start starts a cluster of n nodes in a temporary directory, closed
// when the test ends.
func start(t *testing.T, o Options) *Cluster {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(t.Context(), startTimeout)
	defer cancel()
	c, err := Start(ctx, o)
	if err != nil {
		t.Fatalf("Start(%d nodes): %v", o.Nodes, err)
	}
	t.Cleanup(c.Close)
	return c
}

// connect returns a client of url, closed when the test ends. It does not
// reconnect, so that what it does goes through that node only.
func connect(t *testing.T, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url, nats.NoReconnect())
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream.New: %v", err)
	}
	return nc, js
}

// opCtx is the context of one JetStream operation.
func opCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// bucket opens the KV bucket name through js.
func bucket(t *testing.T, js jetstream.JetStream, name string) jetstream.KeyValue {
	t.Helper()
	kv, err := js.KeyValue(opCtx(t), name)
	if err != nil {
		t.Fatalf("open KV bucket %s: %v", name, err)
	}
	return kv
}

// wantValue fails t unless key holds want in kv.
func wantValue(t *testing.T, kv jetstream.KeyValue, key, want, via string) {
	t.Helper()
	e, err := kv.Get(opCtx(t), key)
	if err != nil {
		t.Fatalf("Get(%s) via %s: %v", key, via, err)
	}
	if string(e.Value()) != want {
		t.Fatalf("Get(%s) via %s = %q, want %q", key, via, e.Value(), want)
	}
}

// TestThreeNodes: replicated KV across nodes, core NATS across routes,
// an R3 bucket surviving the loss of one node, and that node rejoining.
func TestThreeNodes(t *testing.T) {
	checkLeaks(t)
	c := start(t, Options{Nodes: 3})
	if c.Len() != 3 || len(c.URLs()) != 3 || c.URLs()[2] != c.URL(2) || c.Name(2) != "n3" {
		t.Fatalf("Len %d, URLs %q, Name(2) %q", c.Len(), c.URLs(), c.Name(2))
	}
	for i, u := range c.URLs() {
		if !strings.HasPrefix(u, "nats://127.0.0.1:") {
			t.Errorf("URL(%d) = %q, want nats://127.0.0.1:port", i, u)
		}
	}
	nc1, js1 := connect(t, c.URL(0))
	_, js2 := connect(t, c.URL(1))
	nc3, js3 := connect(t, c.URL(2))

	kv1, err := js1.CreateKeyValue(opCtx(t), jetstream.KeyValueConfig{Bucket: "test", Replicas: 3})
	if err != nil {
		t.Fatalf("create R3 bucket via n1: %v", err)
	}
	if _, err := kv1.Put(opCtx(t), "k", []byte("v1")); err != nil {
		t.Fatalf("Put via n1: %v", err)
	}
	kvs := []jetstream.KeyValue{kv1, bucket(t, js2, "test"), bucket(t, js3, "test")}
	wantValue(t, kvs[1], "k", "v1", "n2")

	// Core NATS: a subscription on n3 gets a publish on n1, once n1 knows
	// of the interest (it is propagated over the route).
	sub, err := nc3.SubscribeSync("core.x")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc3.Flush(); err != nil {
		t.Fatal(err)
	}
	mqtttest.Eventually(t, 5*time.Second, "n3 receiving a publish on n1", func() bool {
		if err := nc1.Publish("core.x", []byte("hello")); err != nil {
			t.Fatal(err)
		}
		m, err := sub.NextMsg(pollEvery)
		return err == nil && string(m.Data) == "hello"
	})

	// R3 survives the loss of one node, the bucket's stream leader (so
	// that a new one must be elected): written and read through the two
	// others.
	st, err := js1.Stream(opCtx(t), "KV_test")
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(opCtx(t))
	if err != nil || info.Cluster == nil {
		t.Fatalf("stream info: %+v, %v", info, err)
	}
	victim := slices.IndexFunc([]int{0, 1, 2}, func(i int) bool { return c.Name(i) == info.Cluster.Leader })
	if victim < 0 {
		t.Fatalf("stream leader %q is none of the nodes", info.Cluster.Leader)
	}
	t.Logf("stopping the stream leader %s", c.Name(victim))
	a, b := (victim+1)%3, (victim+2)%3
	c.Stop(victim)
	c.Stop(victim) // stopping a stopped node does nothing
	mqtttest.Eventually(t, 20*time.Second, "a Put via "+c.Name(a)+" with the leader "+c.Name(victim)+" down", func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		_, err := kvs[a].Put(ctx, "k", []byte("v2"))
		return err == nil
	})
	wantValue(t, kvs[b], "k", "v2", c.Name(b)+" with "+c.Name(victim)+" down")

	ctx, cancel := context.WithTimeout(t.Context(), startTimeout)
	defer cancel()
	if err := c.Restart(ctx, victim); err != nil {
		t.Fatalf("Restart(%d): %v", victim, err)
	}
	if err := c.Restart(ctx, victim); err == nil || !strings.Contains(err.Error(), c.Name(victim)) {
		t.Errorf("Restart of a running node = %v, want an error naming %s", err, c.Name(victim))
	}
	// The restarted node, on its old URL, serves what was written while
	// it was down.
	_, js := connect(t, c.URL(victim))
	mqtttest.Eventually(t, 20*time.Second, c.Name(victim)+" serving v2 after its restart", func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		kv, err := js.KeyValue(ctx, "test")
		if err != nil {
			return false
		}
		e, err := kv.Get(ctx, "k")
		return err == nil && string(e.Value()) == "v2"
	})

	c.Close()
	c.Close() // idempotent
	if err := c.Restart(ctx, 1); !errors.Is(err, ErrClosed) {
		t.Errorf("Restart after Close = %v, want ErrClosed", err)
	}
}

// TestStandalone: one node is a standalone server with JetStream (R1),
// logging through Options.Logger.
func TestStandalone(t *testing.T) {
	checkLeaks(t)
	var logs logtest.Buffer
	c := start(t, Options{Nodes: 1, Logger: logs.Logger(slog.LevelInfo)})
	if c.Len() != 1 {
		t.Fatalf("Len = %d", c.Len())
	}
	_, js := connect(t, c.URL(0))
	kv, err := js.CreateKeyValue(opCtx(t), jetstream.KeyValueConfig{Bucket: "one"})
	if err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	if _, err := kv.Put(opCtx(t), "k", []byte("v")); err != nil {
		t.Fatalf("Put: %v", err)
	}
	wantValue(t, kv, "k", "v", "n1")
	if out := logs.String(); !strings.Contains(out, "nats_server=n1") || !strings.Contains(out, "level=INFO") {
		t.Errorf("the server's notices did not reach Options.Logger at Info:\n%s", out)
	}
	if strings.Contains(logs.String(), "level=DEBUG") {
		t.Errorf("debug lines reached an Info logger")
	}

	// A restart keeps the port: with it taken, it fails, naming the node
	// and the port; with it free again, it works.
	c.Stop(0)
	addr := strings.TrimPrefix(c.URL(0), "nats://")
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on the stopped node's port: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), startTimeout)
	defer cancel()
	err = c.Restart(ctx, 0)
	t.Logf("Restart with the port taken: %v", err)
	if err == nil || !strings.Contains(err.Error(), "node n1") || !strings.Contains(err.Error(), addr) {
		t.Errorf("Restart with %s taken = %v, want an error naming n1 and the address", addr, err)
	}
	l.Close()
	if err := c.Restart(ctx, 0); err != nil {
		t.Fatalf("Restart with the port free: %v", err)
	}
	_, js = connect(t, c.URL(0))
	wantValue(t, bucket(t, js, "one"), "k", "v", "n1 restarted")
	c.Close()
	c.Close()
}

// TestStartRefuses options it cannot start, and a start its context
// cuts short, naming the cause and leaving nothing running.
func TestStartRefuses(t *testing.T) {
	checkLeaks(t)
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{Nodes: 0, Dir: t.TempDir()}, "Options.Nodes is 0"},
		{Options{Nodes: 1}, "Options.Dir is empty"},
		{Options{Nodes: 1, Dir: t.TempDir(), Host: "not a host"}, "node n1"},
	} {
		c, err := Start(t.Context(), tc.o)
		t.Logf("Start(%+v): %v", tc.o, err)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Start(%+v) = %v, want an error containing %q", tc.o, err, tc.want)
		}
		if c != nil {
			t.Errorf("Start(%+v) returned a cluster with its error", tc.o)
		}
	}
	// A start cut short, once the first server is up: the context is
	// cancelled by the log line saying so.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	logger := slog.New(cancelOn{"Server is ready", cancel})
	_, err := Start(ctx, Options{Nodes: 3, Dir: t.TempDir(), Logger: logger})
	t.Logf("Start cancelled: %v", err)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Start cancelled after n1 started = %v, want context.Canceled", err)
	}
}

// cancelOn is a slog.Handler calling cancel when a message contains msg.
type cancelOn struct {
	msg    string
	cancel context.CancelFunc
}

func (h cancelOn) Enabled(context.Context, slog.Level) bool { return true }
func (h cancelOn) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h cancelOn) WithGroup(string) slog.Handler            { return h }
func (h cancelOn) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, h.msg) {
		h.cancel()
	}
	return nil
}
