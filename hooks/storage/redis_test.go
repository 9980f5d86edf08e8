package storage

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vanemq/vanemq/core"
)

// redisOpener gives each test its own prefix on the server at addr; the
// same test gets the same prefix again (for reopening).
func redisOpener(addr string) opener {
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
		return Config{Type: TypeRedis, Redis: RedisConfig{Address: addr, Prefix: p}}
	}
}

// TestRedisContract runs the engine contract against one server, each
// subtest under its own prefix: that the counts each subtest expects
// come out also shows prefixes keep stores apart.
func TestRedisContract(t *testing.T) {
	addr, _ := startRedis(t)
	runContract(t, redisOpener(addr))
}

// rawRedis is a plain client of the server at addr, to look behind the
// store's back.
func rawRedis(t *testing.T, addr string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// applyResult writes ops and returns what done reports, waiting at most 10s.
func applyResult(t *testing.T, st *Store, ops ...core.StoreOp) error {
	t.Helper()
	done := make(chan error, 1)
	st.Apply(ops, func(err error) { done <- err })
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Apply: done not called within 10s")
		return nil
	}
}

// The keys are the documented layout, so they can be inspected (and
// cleared) with redis-cli.
func TestRedisKeyLayout(t *testing.T) {
	addr, _ := startRedis(t)
	st := openStore(t, Config{Type: TypeRedis, Redis: RedisConfig{Address: addr, Prefix: "lay"}})
	m := core.StoredMessage{Message: core.Message{Topic: "t", Payload: []byte("p"), QoS: 1}}
	retained := core.StoreOp{Kind: core.OpRetainedPut}
	retained.SetMessage(&core.StoredMessage{Message: core.Message{Topic: "r/1", Payload: []byte("kept"), Retain: true}})
	apply(t, st,
		core.StoreOp{Kind: core.OpSessionPut, ClientID: "c1", Expiry: 10},
		core.StoreOp{Kind: core.OpSubscriptionPut, ClientID: "c1", Subscription: core.StoredSubscription{Filter: "a/#"}},
		core.StoreOp{Kind: core.OpInboundPut, ClientID: "c1", PacketID: 0x0102},
		msgOp(core.OpQueueAdd, "c1", 7, 42, m),
		core.StoreOp{Kind: core.OpSessionPut, ClientID: "c2", Expiry: 10},
		retained,
	)
	apply(t, st, core.StoreOp{Kind: core.OpSessionDelete, ClientID: "c2"})

	rdb := rawRedis(t, addr)
	ctx := context.Background()
	keys, err := rdb.Keys(ctx, "lay:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(sortedCopy(keys), " ")
	if want := "lay:c:c1 lay:clients lay:m lay:r lay:schema"; got != want {
		t.Errorf("keys %q, want %q", got, want)
	}
	fields, err := rdb.HKeys(ctx, "lay:c:c1").Result()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"ba/#", "i\x01\x02", "q\x00\x00\x00\x00\x00\x00\x00\x07", "s"}
	if g := sortedCopy(fields); strings.Join(g, "|") != strings.Join(want, "|") {
		t.Errorf("fields of lay:c:c1 %q, want %q", g, want)
	}
	if members, _ := rdb.SMembers(ctx, "lay:clients").Result(); len(members) != 1 || members[0] != "c1" {
		t.Errorf("lay:clients %q, want only c1 (c2 was purged)", members)
	}
	if ok, _ := rdb.HExists(ctx, "lay:m", "\x00\x00\x00\x00\x00\x00\x00\x2a").Result(); !ok {
		t.Error("lay:m has no field for message 42")
	}
	if ok, _ := rdb.HExists(ctx, "lay:r", "r/1").Result(); !ok {
		t.Error("lay:r has no field r/1")
	}
	if s, _ := rdb.Get(ctx, "lay:schema").Result(); s != schema {
		t.Errorf("lay:schema = %q, want %q", s, schema)
	}
	if w := st.Where(); w != "redis://"+addr+"/0" {
		t.Errorf("Where() = %q, want redis://%s/0", w, addr)
	}
}

func sortedCopy(s []string) []string { return slices.Sorted(slices.Values(s)) }

// Open fails, soon and naming the address, when the server cannot be
// used; the password is never in the message.
func TestRedisOpenErrors(t *testing.T) {
	const secret = "s3cret-pass"
	plain, _ := startRedis(t)
	locked, _ := startRedis(t, "--requirepass", secret)
	closed := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	tests := []struct {
		name string
		cfg  RedisConfig
		want string
	}{
		{"closed port", RedisConfig{Address: closed, DialTimeout: 2 * time.Second}, "connecting"},
		{"wrong password", RedisConfig{Address: locked, Password: secret + "x"}, "authentication refused"},
		{"no password", RedisConfig{Address: locked}, "authentication refused"},
		{"unknown user", RedisConfig{Address: locked, Username: "nobody", Password: secret}, "authentication refused"},
		{"no such database", RedisConfig{Address: plain, DB: 1000}, "connecting"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			st, err := Open(context.Background(), Config{Type: TypeRedis, Redis: tc.cfg})
			took := time.Since(start)
			if err == nil {
				_ = st.Close()
				t.Fatal("Open succeeded")
			}
			msg := err.Error()
			if !strings.Contains(msg, "redis at "+tc.cfg.Address) || !strings.Contains(msg, tc.want) {
				t.Errorf("Open: %q, want it to name redis at %s and contain %q", msg, tc.cfg.Address, tc.want)
			}
			if strings.Contains(msg, secret) {
				t.Errorf("Open: %q shows the password", msg)
			}
			if took > 4*time.Second {
				t.Errorf("Open took %s to fail, want under 4s", took)
			}
		})
	}
	// Check opens the same way.
	if _, err := Check(context.Background(), Config{Type: TypeRedis, Redis: RedisConfig{Address: closed, DialTimeout: time.Second}}); err == nil || !strings.Contains(err.Error(), closed) {
		t.Errorf("Check against a closed port: %v, want an error naming %s", err, closed)
	}
}

// A server that goes away fails the writes handed to it, naming it, and
// the store writes again once a server is back on the address.
func TestRedisServerStopped(t *testing.T) {
	addr, stop := startRedis(t)
	_, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(portStr)
	st := openStore(t, Config{Type: TypeRedis, Redis: RedisConfig{Address: addr, Prefix: "gone", DialTimeout: time.Second}})
	apply(t, st, core.StoreOp{Kind: core.OpSessionPut, ClientID: "before", Expiry: 1})

	stop()
	err = applyResult(t, st, core.StoreOp{Kind: core.OpSessionPut, ClientID: "during", Expiry: 1})
	if err == nil || !strings.Contains(err.Error(), addr) {
		t.Fatalf("Apply with the server stopped: %v, want an error naming %s", err, addr)
	}
	// A barrier after the failed write is not held up by it.
	if err := applyResult(t, st); err != nil {
		t.Fatalf("barrier: %v", err)
	}

	startRedisOn(t, port)
	apply(t, st, core.StoreOp{Kind: core.OpSessionPut, ClientID: "after", Expiry: 1})
	ok, err := rawRedis(t, addr).HExists(context.Background(), "gone:c:after", "s").Result()
	if err != nil || !ok {
		t.Fatalf("the write after the restart is not in the new server: %v %v", ok, err)
	}
}

// A prefix holding another schema, or data without one, is refused and
// left as it was.
func TestRedisSchemaRefused(t *testing.T) {
	addr, _ := startRedis(t)
	rdb := rawRedis(t, addr)
	ctx := context.Background()
	tests := []struct {
		name   string
		prefix string
		setup  func(p string) error
		want   string
	}{
		{"other schema", "old", func(p string) error {
			return rdb.Set(ctx, p+":schema", "vanemq-store/0", 0).Err()
		}, `was written with schema "vanemq-store/0"`},
		{"data without schema", "foreign", func(p string) error {
			return rdb.HSet(ctx, p+":r", "x", "y").Err()
		}, "no vanemq schema record"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.setup(tc.prefix); err != nil {
				t.Fatal(err)
			}
			before, err := rdb.Keys(ctx, tc.prefix+":*").Result()
			if err != nil {
				t.Fatal(err)
			}
			cfg := Config{Type: TypeRedis, Redis: RedisConfig{Address: addr, Prefix: tc.prefix}}
			st, err := Open(ctx, cfg)
			if err == nil {
				_ = st.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), addr) {
				t.Errorf("Open: %q, want it to name %s and contain %q", err, addr, tc.want)
			}
			if _, err := Check(ctx, cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Check: %v, want an error containing %q", err, tc.want)
			}
			after, err := rdb.Keys(ctx, tc.prefix+":*").Result()
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(sortedCopy(before), " ") != strings.Join(sortedCopy(after), " ") {
				t.Errorf("keys changed by the refused Open: %q, then %q", before, after)
			}
		})
	}
}

// A field that is no record fails the load with errCorrupt, naming the
// store.
func TestRedisCorruptField(t *testing.T) {
	addr, _ := startRedis(t)
	cfg := Config{Type: TypeRedis, Redis: RedisConfig{Address: addr, Prefix: "bad"}}
	st := openStore(t, cfg)
	apply(t, st, core.StoreOp{Kind: core.OpSessionPut, ClientID: "c", Expiry: 1})
	if err := rawRedis(t, addr).HSet(context.Background(), "bad:c:c", "m\x00", "x").Err(); err != nil {
		t.Fatal(err)
	}
	_, err := st.LoadSessions(context.Background())
	if !errors.Is(err, errCorrupt) || !strings.Contains(err.Error(), addr) {
		t.Fatalf("LoadSessions: %v, want errCorrupt naming %s", err, addr)
	}
}
