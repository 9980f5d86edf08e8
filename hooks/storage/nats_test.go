package storage

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/mqtttest"
	"github.com/vanemq/vanemq/hooks/cluster/natsdev"
)

// natsStartTimeout bounds starting and restarting embedded NATS servers.
const natsStartTimeout = 45 * time.Second

// startNATS starts n embedded nats-servers with JetStream (a cluster
// when n > 1), closed when the test ends.
func startNATS(t testing.TB, n int) *natsdev.Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), natsStartTimeout)
	defer cancel()
	c, err := natsdev.Start(ctx, natsdev.Options{Nodes: n, Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("natsdev.Start(%d nodes): %v", n, err)
	}
	t.Cleanup(c.Close)
	return c
}

// natsOpener gives each test its own prefix (so its own bucket) on the
// servers at urls; the same test gets the same prefix again.
func natsOpener(urls []string) opener {
	var (
		mu       sync.Mutex
		prefixes = map[*testing.T]string{}
	)
	return func(t *testing.T) Config {
		mu.Lock()
		defer mu.Unlock()
		p, ok := prefixes[t]
		if !ok {
			p = fmt.Sprintf("contract%d", len(prefixes))
			prefixes[t] = p
		}
		return Config{Type: TypeNATS, NATS: NATSConfig{URLs: urls, Prefix: p}}
	}
}

// TestNATSContract runs the engine contract against one embedded NATS
// server, each subtest in its own bucket.
func TestNATSContract(t *testing.T) {
	c := startNATS(t, 1)
	runContract(t, natsOpener(c.URLs()))
}

// rawNATS is a plain JetStream client of url, to look behind the store's
// back.
func rawNATS(t *testing.T, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// bucketKeys lists the live keys of a bucket, sorted.
func bucketKeys(t *testing.T, js jetstream.JetStream, bucket string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := kv.Keys(ctx)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return sortedCopy(keys)
}

// The keys are the documented layout, so that they can be inspected
// with the nats CLI; a purge leaves the other clients' records.
func TestNATSKeyLayout(t *testing.T) {
	c := startNATS(t, 1)
	st := openStore(t, Config{Type: TypeNATS, NATS: NATSConfig{URLs: c.URLs(), Prefix: "lay"}})
	m := core.StoredMessage{Message: core.Message{Topic: "t", Payload: []byte("p"), QoS: 1}}
	retained := core.StoreOp{Kind: core.OpRetainedPut}
	retained.SetMessage(&core.StoredMessage{Message: core.Message{Topic: "r/1", Payload: []byte("kept"), Retain: true}})
	apply(t, st,
		core.StoreOp{Kind: core.OpSessionPut, ClientID: "c1", Expiry: 10},
		core.StoreOp{Kind: core.OpSubscriptionPut, ClientID: "c1", Subscription: core.StoredSubscription{Filter: "a/#"}},
		core.StoreOp{Kind: core.OpInboundPut, ClientID: "c1", PacketID: 0x0102},
		msgOp(core.OpQueueAdd, "c1", 7, 42, m),
		core.StoreOp{Kind: core.OpSessionPut, ClientID: "c2", Expiry: 10},
		core.StoreOp{Kind: core.OpSubscriptionPut, ClientID: "c2", Subscription: core.StoredSubscription{Filter: "x"}},
		retained,
	)
	apply(t, st, core.StoreOp{Kind: core.OpSessionDelete, ClientID: "c2"})

	_, js := rawNATS(t, c.URL(0))
	tok := func(s string) string { b, _ := appendNATSToken(nil, []byte(s)); return string(b) }
	want := sortedCopy([]string{
		"c." + tok("c1") + ".s." + tok(""),
		"c." + tok("c1") + ".b." + tok("a/#"),
		"c." + tok("c1") + ".i." + tok("\x01\x02"),
		"c." + tok("c1") + ".q." + tok("\x00\x00\x00\x00\x00\x00\x00\x07"),
		"m." + tok("\x00\x00\x00\x00\x00\x00\x00\x2a"),
		"r." + tok("r/1"),
		"v." + tok("schema"),
	})
	if got := bucketKeys(t, js, "lay_state"); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("keys\n%q\nwant\n%q", got, want)
	}
	if want := "c.kYzE.s.k"; want != "c."+tok("c1")+".s."+tok("") {
		t.Errorf("the session key of c1 is %q, want %q", "c."+tok("c1")+".s."+tok(""), want)
	}
	if w := st.Where(); w != "nats "+c.URL(0)+" bucket lay_state" {
		t.Errorf("Where() = %q", w)
	}
}

// A client ID, filter or topic too long for a key is hashed in it and
// kept whole in the value: it loads back whole, LoadSession finds it, and
// a purge removes it.
func TestNATSLongNames(t *testing.T) {
	c := startNATS(t, 1)
	cfg := Config{Type: TypeNATS, NATS: NATSConfig{URLs: c.URLs(), Prefix: "long"}}
	st := openStore(t, cfg)
	longID := strings.Repeat("i", 65535)
	midID := strings.Repeat("j", natsInline) // the longest kept in the key
	longFilter := "f/" + strings.Repeat("x", 65000)
	longTopic := "t/" + strings.Repeat("y", 60000)
	retained := core.StoreOp{Kind: core.OpRetainedPut}
	retained.SetMessage(&core.StoredMessage{Message: core.Message{Topic: longTopic, Payload: []byte("kept"), Retain: true}})
	m := core.StoredMessage{Message: core.Message{Topic: longTopic, Payload: []byte("q"), QoS: 1}}
	apply(t, st,
		core.StoreOp{Kind: core.OpSessionPut, ClientID: longID, Expiry: 10},
		core.StoreOp{Kind: core.OpSubscriptionPut, ClientID: longID, Subscription: core.StoredSubscription{Filter: longFilter, QoS: 1}},
		msgOp(core.OpQueueAdd, longID, 3, 9, m),
		core.StoreOp{Kind: core.OpSessionPut, ClientID: midID, Expiry: 20},
		core.StoreOp{Kind: core.OpSubscriptionPut, ClientID: midID, Subscription: core.StoredSubscription{Filter: longFilter}},
		retained,
	)
	st = reopen(t, st, cfg)
	ret, err := st.LoadRetained(t.Context())
	if err != nil || len(ret) != 1 || ret[0].Topic != longTopic {
		t.Fatalf("retained: %v, %d messages, want the one on the long topic", err, len(ret))
	}
	sessions, err := st.LoadSessions(t.Context())
	if err != nil || len(sessions) != 2 {
		t.Fatalf("LoadSessions: %v, %d sessions, want 2", err, len(sessions))
	}
	s, ok, err := st.LoadSession(t.Context(), longID)
	if err != nil || !ok || s.ClientID != longID || len(s.Subscriptions) != 1 || s.Subscriptions[0].Filter != longFilter ||
		len(s.Deliveries) != 1 || s.Deliveries[0].Message.Topic != longTopic {
		t.Fatalf("LoadSession(long ID): ok %v, err %v, %d subscriptions, %d deliveries", ok, err, len(s.Subscriptions), len(s.Deliveries))
	}
	apply(t, st,
		core.StoreOp{Kind: core.OpQueueDelete, ClientID: longID, Seq: 3, MessageID: 9},
		core.StoreOp{Kind: core.OpSessionDelete, ClientID: longID},
	)
	_ = st.Close()
	counts, err := Check(t.Context(), cfg)
	if err != nil || counts != (Counts{Sessions: 1, Subscriptions: 1, Retained: 1}) {
		t.Errorf("Check after purging the long ID: %+v, %v; want the other session, its subscription and the retained message", counts, err)
	}
}

// A batch is all or nothing: when the bucket refuses one of its records,
// none of the others is stored either.
func TestNATSBatchAtomic(t *testing.T) {
	c := startNATS(t, 1)
	cfg := Config{Type: TypeNATS, NATS: NATSConfig{URLs: c.URLs(), Prefix: "atomic"}}
	st := openStore(t, cfg)
	apply(t, st, core.StoreOp{Kind: core.OpSessionPut, ClientID: "before", Expiry: 1})

	// The stream refuses values over 1 KiB from now on.
	_, js := rawNATS(t, c.URL(0))
	ctx := t.Context()
	s, err := js.Stream(ctx, "KV_atomic_state")
	if err != nil {
		t.Fatal(err)
	}
	sc := s.CachedInfo().Config
	sc.MaxMsgSize = 1024
	if _, err := js.UpdateStream(ctx, sc); err != nil {
		t.Fatal(err)
	}
	big := core.StoreOp{Kind: core.OpRetainedPut}
	big.SetMessage(&core.StoredMessage{Message: core.Message{Topic: "big", Payload: make([]byte, 4096), Retain: true}})
	err = applyResult(t, st,
		core.StoreOp{Kind: core.OpSessionPut, ClientID: "a", Expiry: 1},
		core.StoreOp{Kind: core.OpSubscriptionPut, ClientID: "a", Subscription: core.StoredSubscription{Filter: "f"}},
		big,
		core.StoreOp{Kind: core.OpSessionPut, ClientID: "b", Expiry: 1},
		core.StoreOp{Kind: core.OpSessionDelete, ClientID: "before"},
	)
	if err == nil || !strings.Contains(err.Error(), "bucket atomic_state") {
		t.Fatalf("a batch with a record the bucket refuses: %v, want an error naming the bucket", err)
	}
	tok := func(s string) string { b, _ := appendNATSToken(nil, []byte(s)); return string(b) }
	if got, want := bucketKeys(t, js, "atomic_state"), sortedCopy([]string{"c." + tok("before") + ".s." + tok(""), "v." + tok("schema")}); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("keys after the refused batch %q, want only %q: the batch was applied in part", got, want)
	}
	// The next batch is written.
	apply(t, st, core.StoreOp{Kind: core.OpSessionPut, ClientID: "after", Expiry: 1})
}

// A batch of more records than one atomic batch may hold is written as
// several, in order, and loads back whole.
func TestNATSLargeBatch(t *testing.T) {
	c := startNATS(t, 1)
	cfg := Config{Type: TypeNATS, NATS: NATSConfig{URLs: c.URLs(), Prefix: "large"}}
	st := openStore(t, cfg)
	const n = 2*natsAtomicMax + 10
	ops := []core.StoreOp{{Kind: core.OpSessionPut, ClientID: "c", Expiry: 60}}
	for i := range n {
		ops = append(ops, core.StoreOp{Kind: core.OpSubscriptionPut, ClientID: "c", Subscription: core.StoredSubscription{Filter: fmt.Sprintf("f/%d", i)}})
	}
	apply(t, st, ops...)
	s, ok, err := st.LoadSession(t.Context(), "c")
	if err != nil || !ok || len(s.Subscriptions) != n {
		t.Fatalf("LoadSession: ok %v, err %v, %d subscriptions, want %d", ok, err, len(s.Subscriptions), n)
	}
	apply(t, st, core.StoreOp{Kind: core.OpSessionDelete, ClientID: "c"})
	if _, ok, err := st.LoadSession(t.Context(), "c"); ok || err != nil {
		t.Fatalf("LoadSession after the purge of %d records: ok %v, err %v", n+1, ok, err)
	}
}

// Open fails soon, naming the servers and never the password, when NATS
// cannot be used.
func TestNATSOpenErrors(t *testing.T) {
	closed := fmt.Sprintf("nats://127.0.0.1:%d", freePort(t))
	tests := []struct {
		name string
		cfg  NATSConfig
		want string
	}{
		{"closed port", NATSConfig{URLs: []string{closed}, Timeout: time.Second}, "nats nats://127.0.0.1"},
		{"password in the URL", NATSConfig{URLs: []string{strings.Replace(closed, "//", "//u:s3cret@", 1)}, Timeout: time.Second}, "connecting"},
		{"no URL", NATSConfig{}, "needs at least one URL"},
		{"URL without scheme", NATSConfig{URLs: []string{"127.0.0.1:4222"}}, `urls[0]: "127.0.0.1:4222"`},
		{"bad prefix", NATSConfig{URLs: []string{closed}, Prefix: "a.b"}, `prefix "a.b"`},
		{"two credentials", NATSConfig{URLs: []string{closed}, Token: "t", Username: "u"}, "set at most one"},
		{"password without user", NATSConfig{URLs: []string{closed}, Password: "p"}, "without a username"},
		{"replicas", NATSConfig{URLs: []string{closed}, Replicas: 7}, "replicas 7"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, err := Open(t.Context(), Config{Type: TypeNATS, NATS: tc.cfg})
			if err == nil {
				_ = st.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "s3cret") {
				t.Errorf("Open: %q, want it to contain %q and no password", err, tc.want)
			}
		})
	}
}

// A key that is no record fails the load with errCorrupt, naming the
// bucket.
func TestNATSCorruptKey(t *testing.T) {
	c := startNATS(t, 1)
	st := openStore(t, Config{Type: TypeNATS, NATS: NATSConfig{URLs: c.URLs(), Prefix: "bad"}})
	apply(t, st, core.StoreOp{Kind: core.OpSessionPut, ClientID: "c", Expiry: 1})
	_, js := rawNATS(t, c.URL(0))
	kv, err := js.KeyValue(t.Context(), "bad_state")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(t.Context(), "c.kYw.m.kAA", []byte("x")); err != nil {
		t.Fatal(err)
	}
	_, err = st.LoadSessions(t.Context())
	if !errors.Is(err, errCorrupt) || !strings.Contains(err.Error(), "bucket bad_state") {
		t.Fatalf("LoadSessions: %v, want errCorrupt naming the bucket", err)
	}
}

// Check reads a bucket without making one: a missing bucket is an error
// naming it, and stays missing.
func TestNATSCheckMissingBucket(t *testing.T) {
	c := startNATS(t, 1)
	cfg := Config{Type: TypeNATS, NATS: NATSConfig{URLs: c.URLs(), Prefix: "absent"}}
	if _, err := Check(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), "no bucket absent_state") {
		t.Fatalf("Check of a missing bucket: %v, want an error naming it", err)
	}
	_, js := rawNATS(t, c.URL(0))
	if _, err := js.KeyValue(t.Context(), "absent_state"); !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Errorf("after Check the bucket: %v, want none", err)
	}
}

// A session ended and started again in one batch keeps only what the
// new one wrote: the purge's deletions and the new writes of the same
// keys go in one atomic batch.
func TestNATSPurgeThenWrite(t *testing.T) {
	c := startNATS(t, 1)
	st := openStore(t, Config{Type: TypeNATS, NATS: NATSConfig{URLs: c.URLs(), Prefix: "again"}})
	apply(t, st,
		core.StoreOp{Kind: core.OpSessionPut, ClientID: "c", Expiry: 1},
		core.StoreOp{Kind: core.OpSubscriptionPut, ClientID: "c", Subscription: core.StoredSubscription{Filter: "old"}},
		core.StoreOp{Kind: core.OpSubscriptionPut, ClientID: "c", Subscription: core.StoredSubscription{Filter: "kept", QoS: 0}},
	)
	apply(t, st,
		core.StoreOp{Kind: core.OpSubscriptionPut, ClientID: "c", Subscription: core.StoredSubscription{Filter: "written-then-purged"}},
		core.StoreOp{Kind: core.OpSessionDelete, ClientID: "c"},
		core.StoreOp{Kind: core.OpSessionPut, ClientID: "c", Expiry: 2},
		core.StoreOp{Kind: core.OpSubscriptionPut, ClientID: "c", Subscription: core.StoredSubscription{Filter: "kept", QoS: 1}},
	)
	s, ok, err := st.LoadSession(t.Context(), "c")
	if err != nil || !ok || s.Expiry != 2 || len(s.Subscriptions) != 1 || s.Subscriptions[0].Filter != "kept" || s.Subscriptions[0].QoS != 1 {
		t.Fatalf("after the purge and new writes in one batch: ok %v, err %v, %+v; want expiry 2 and only kept at QoS 1", ok, err, s)
	}
}

// A server that refuses the credentials stops Open with an error saying
// so, naming the server and not the token.
func TestNATSAuthRefused(t *testing.T) {
	const token = "s3cret-token"
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true,
		Authorization: token, JetStream: true, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	url := srv.ClientURL()
	st, err := Open(t.Context(), Config{Type: TypeNATS, NATS: NATSConfig{URLs: []string{url}, Token: token + "x", Timeout: 2 * time.Second}})
	if err == nil {
		_ = st.Close()
		t.Fatal("Open with a wrong token succeeded")
	}
	if msg := err.Error(); !strings.Contains(msg, "authentication refused") || !strings.Contains(msg, url) || strings.Contains(msg, token) {
		t.Errorf("Open with a wrong token: %q, want authentication refused, naming %s, without the token", msg, url)
	}
	// The right token opens it.
	st = openStore(t, Config{Type: TypeNATS, NATS: NATSConfig{URLs: []string{url}, Token: token}})
	apply(t, st, core.StoreOp{Kind: core.OpSessionPut, ClientID: "c", Expiry: 1})
}

// A store that is opened, written, read and closed leaves no goroutine
// behind (the connection's, the scans' consumers).
func TestNATSNoLeak(t *testing.T) {
	c := startNATS(t, 1)
	cfg := Config{Type: TypeNATS, NATS: NATSConfig{URLs: c.URLs(), Prefix: "leak"}}
	// The bucket is made first: its stream has goroutines of the server's.
	if err := openStore(t, cfg).Close(); err != nil {
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()
	st, err := Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	apply(t, st, core.StoreOp{Kind: core.OpSessionPut, ClientID: "c", Expiry: 1},
		core.StoreOp{Kind: core.OpSubscriptionPut, ClientID: "c", Subscription: core.StoredSubscription{Filter: "f"}})
	if _, ok, err := st.LoadSession(t.Context(), "c"); !ok || err != nil {
		t.Fatalf("LoadSession: %v %v", ok, err)
	}
	if _, err := st.LoadSessions(t.Context()); err != nil {
		t.Fatal(err)
	}
	apply(t, st, core.StoreOp{Kind: core.OpSessionDelete, ClientID: "c"})
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	mqtttest.CheckGoroutines(t, "after the store closed", before)
}
