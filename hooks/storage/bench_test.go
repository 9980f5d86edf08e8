package storage

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/mqtttest"
	"github.com/vanemq/vanemq/core/packets"
	"github.com/vanemq/vanemq/hooks/storage/redistest"
	"github.com/vanemq/vanemq/listeners/tcp"
)

// BenchmarkPersistQoS1 measures QoS 1 throughput into a persistent session:
// 8 publishers, each with 64 messages in flight, publish to one subscriber
// whose session has an expiry, so every message is stored before it is
// acknowledged (with a durable store) and deleted when the subscriber
// acknowledges it. The memory row has no store; pebble-sync-wait1ms sets
// commit_interval 1ms; redis is a local redis-server without persistence
// of its own (what the broker waits for is its reply); nats is one
// embedded NATS server (R1; the broker waits for JetStream's
// acknowledgement of each batch), nats-r3 a cluster of three (R3). Run
// with
//
//	go test -run '^$' -bench PersistQoS1 -benchtime 200000x ./hooks/storage/
//
// and compare the msg/s of the rows of one run.
func BenchmarkPersistQoS1(b *testing.B) {
	for _, mode := range []string{"memory", "pebble-sync", "pebble-none", "pebble-sync-wait1ms", "redis", "nats", "nats-r3"} {
		b.Run(mode, func(b *testing.B) { benchPersist(b, mode) })
	}
}

func benchPersist(b *testing.B, mode string) {
	// The session queue holds every message a publisher got a PUBACK
	// for: the default bound (1000) would drop some when the subscriber
	// falls behind, and the rows would not compare like for like.
	srv, err := core.New(core.Options{Logger: slog.New(slog.DiscardHandler), SysInterval: -1, AllowAnonymous: true, MaxQueuedMessages: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	if mode != "memory" {
		cfg := Config{Path: filepath.Join(b.TempDir(), "data")}
		switch mode {
		case "redis":
			cfg = Config{Type: TypeRedis, Redis: RedisConfig{Address: redistest.Start(b).Addr}}
		case "nats":
			cfg = Config{Type: TypeNATS, NATS: NATSConfig{URLs: startNATS(b, 1).URLs()}}
		case "nats-r3":
			cfg = Config{Type: TypeNATS, NATS: NATSConfig{URLs: startNATS(b, 3).URLs()}}
		case "pebble-none":
			cfg.Durability = DurabilityNone
		case "pebble-sync-wait1ms":
			cfg.CommitInterval = time.Millisecond
		}
		st, err := Open(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = st.Close() }) // after the server's shutdown
		if err := srv.AddHook(st, 0); err != nil {
			b.Fatal(err)
		}
	}
	addr := mqtttest.Serve(b, srv, tcp.New("tcp", "127.0.0.1:0"))

	const publishers, window = 8, 64
	sub := mqtttest.DialConnect(b, addr, v5Connect("sub", true, 3600))
	sub.Subscribe(b, "bench/#", 1)
	pubs := make([]*mqtttest.Conn, publishers)
	for i := range pubs {
		pubs[i] = mqtttest.DialConnect(b, addr, v5Connect(fmt.Sprintf("pub%d", i), true, 0))
	}
	total := b.N
	received := make(chan int, 1)
	go func() { received <- drain(sub, total) }()

	payload := make([]byte, 64)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for i, pc := range pubs {
		n := total / publishers
		if i < total%publishers {
			n++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			publishWindow(b, pc, fmt.Sprintf("bench/%d", i), payload, n, window)
		}()
	}
	wg.Wait()
	got := <-received
	elapsed := time.Since(start)
	b.StopTimer()
	if got != total {
		b.Fatalf("subscriber got %d of %d messages (dropped: %d)", got, total, srv.Stats().Dropped)
	}
	b.ReportMetric(float64(total)/elapsed.Seconds(), "msg/s")
}

// benchRead is how long the benchmark's clients wait for a packet.
const benchRead = 30 * time.Second

// publishWindow publishes n QoS 1 messages on c keeping up to window of
// them unacknowledged.
func publishWindow(b *testing.B, c *mqtttest.Conn, topic string, payload []byte, n, window int) {
	slots := make(chan struct{}, window)
	acked := make(chan error, 1)
	go func() {
		for range n {
			p := c.Read(benchRead)
			if p == nil || p.Type != packets.Puback || p.ReasonCode.IsError() {
				acked <- fmt.Errorf("got %+v, want PUBACK", p)
				return
			}
			<-slots
		}
		acked <- nil
	}()
	p := packets.Packet{Type: packets.Publish, Topic: topic, QoS: 1, Payload: payload}
	for i := range n {
		select {
		case slots <- struct{}{}:
		default:
			c.Flush()
			slots <- struct{}{}
		}
		p.PacketID = uint16(i%65000) + 1
		c.Send(&p)
	}
	c.Flush()
	if err := <-acked; err != nil {
		b.Error(err)
	}
}

// drain reads and acknowledges messages on c until it has n, or the
// connection fails; it returns how many it got.
func drain(c *mqtttest.Conn, n int) int {
	got := 0
	for got < n {
		p := c.Read(benchRead)
		if p == nil || p.Type != packets.Publish {
			return got
		}
		got++
		c.Send(&packets.Packet{Type: packets.Puback, PacketID: p.PacketID})
		if c.Buffered() == 0 {
			c.Flush()
		}
	}
	c.Flush()
	return got
}

// BenchmarkApplyRoundTrip is the latency one client sees: one change
// handed to the store and its done called, with durability sync and none.
func BenchmarkApplyRoundTrip(b *testing.B) {
	for _, d := range []string{DurabilitySync, DurabilityNone} {
		b.Run(d, func(b *testing.B) {
			st, err := Open(context.Background(), Config{Path: filepath.Join(b.TempDir(), "data"), Durability: d})
			if err != nil {
				b.Fatal(err)
			}
			defer func() { _ = st.Close() }()
			ops := []core.StoreOp{{Kind: core.OpSessionPut, ClientID: "c", Expiry: 60}}
			done := make(chan error, 1)
			b.ResetTimer()
			for range b.N {
				st.Apply(ops, func(err error) { done <- err })
				if err := <-done; err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
