package core

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/bytebufferpool"

	"github.com/vanemq/vanemq/core/packets"
)

// benchListener is the smallest Listener over loopback TCP, so the core's
// benchmarks need no listener package.
type benchListener struct{ ln net.Listener }

func (l *benchListener) ID() string       { return "bench" }
func (l *benchListener) Protocol() string { return "tcp" }
func (l *benchListener) Listen() (err error) {
	l.ln, err = net.Listen("tcp", "127.0.0.1:0")
	return err
}
func (l *benchListener) Address() string { return l.ln.Addr().String() }
func (l *benchListener) Close() error    { return l.ln.Close() }
func (l *benchListener) Serve(handle func(net.Conn)) error {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return nil
		}
		handle(c)
	}
}

// benchSubscriber is a raw subscriber that counts the bytes it receives.
type benchSubscriber struct {
	conn   net.Conn
	n      atomic.Int64
	mu     sync.Mutex
	target int64
	done   chan struct{} // closed when n reaches target
}

// wait blocks until the subscriber has read want bytes, or 30 s pass.
func (s *benchSubscriber) wait(want int64) bool {
	s.mu.Lock()
	s.target = want
	s.done = make(chan struct{})
	done := s.done
	s.mu.Unlock()
	if s.n.Load() >= want {
		return true
	}
	select {
	case <-done:
		return true
	case <-time.After(30 * time.Second):
		return false
	}
}

// add counts n bytes read and wakes a waiter whose target is reached.
func (s *benchSubscriber) add(n int) {
	got := s.n.Add(int64(n))
	s.mu.Lock()
	if s.done != nil && got >= s.target {
		close(s.done)
		s.done = nil
	}
	s.mu.Unlock()
}

func encodeRaw(tb testing.TB, p *packets.Packet) []byte {
	tb.Helper()
	buf := bytebufferpool.Get()
	defer bytebufferpool.Put(buf)
	if err := p.Encode(buf); err != nil {
		tb.Fatal(err)
	}
	return append([]byte(nil), buf.B...)
}

// dialSubscriber connects a raw client, subscribes to filter and starts
// draining; it returns once the SUBACK has been read.
func dialSubscriber(tb testing.TB, addr, id, filter string, version, qos byte) *benchSubscriber {
	tb.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	con := &packets.Packet{Type: packets.Connect, ProtocolVersion: version}
	con.Connect.ClientID = id
	con.Connect.CleanStart = true
	sub := &packets.Packet{Type: packets.Subscribe, ProtocolVersion: version, PacketID: 1,
		Subscriptions: []packets.Subscription{{Filter: filter, QoS: qos}}}
	if _, err := c.Write(append(encodeRaw(tb, con), encodeRaw(tb, sub)...)); err != nil {
		tb.Fatal(err)
	}
	r := packets.NewReader(bufio.NewReader(c), 0)
	r.SetVersion(version)
	var p packets.Packet
	for _, want := range []packets.Type{packets.Connack, packets.Suback} {
		if err := r.ReadPacket(&p); err != nil || p.Type != want {
			tb.Fatalf("subscriber %s: want %s, got %s (%v)", id, want, p.Type, err)
		}
	}
	s := &benchSubscriber{conn: c}
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := c.Read(buf)
			s.add(n)
			if err != nil {
				return
			}
		}
	}()
	return s
}

// BenchmarkPublishFanout routes one message per op from inside the broker to
// real loopback subscribers, and waits until every subscriber has read every
// byte, so the writers' work (and allocations) are inside the measurement.
func BenchmarkPublishFanout(b *testing.B) {
	for _, tc := range []struct {
		version byte
		subs    int
	}{
		{packets.Version311, 1}, {packets.Version311, 10},
		{packets.Version5, 1}, {packets.Version5, 10},
	} {
		b.Run(fmt.Sprintf("v%d/subs=%d", tc.version, tc.subs), func(b *testing.B) {
			srv, l := startBenchServer(b)
			subs := make([]*benchSubscriber, tc.subs)
			for i := range subs {
				subs[i] = dialSubscriber(b, l.Address(), fmt.Sprintf("sub-%d", i), "bench/+/data", tc.version, 0)
			}
			pub := &packets.Packet{Type: packets.Publish, ProtocolVersion: tc.version, Topic: "bench/1/data", Payload: make([]byte, 64)}
			wire := encodeRaw(b, pub)
			var decoded packets.Packet
			if _, err := packets.DecodeBytes(wire, tc.version, 0, &decoded); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(wire)))
			b.ResetTimer()
			n := int64(0)
			for b.Loop() {
				srv.route(newMessage(&decoded, "pub", time.Now()), nil)
				n++
				if n%256 == 0 {
					// Let the writers catch up, as a network publisher
					// would be paced: the queues stay at realistic sizes.
					for i, s := range subs {
						if !s.wait(n * int64(len(wire))) {
							b.Fatalf("subscriber %d stalled", i)
						}
					}
				}
			}
			want := n * int64(len(wire))
			for i, s := range subs {
				if !s.wait(want) {
					b.Fatalf("subscriber %d read %d bytes, want %d (dropped %d)", i, s.n.Load(), want, srv.Stats().Dropped)
				}
			}
		})
	}
}

// startBenchServer starts a server for the publish benchmarks, with the
// given hooks and a benchListener (its address is where subscribers
// dial), shut down when the benchmark ends.
func startBenchServer(b *testing.B, hooks ...Hook) (*Server, *benchListener) {
	b.Helper()
	srv, err := New(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), SysInterval: -1, OutboundQueue: 1 << 22, AllowAnonymous: true})
	if err != nil {
		b.Fatal(err)
	}
	for _, h := range hooks {
		if err := srv.AddHook(h, 0); err != nil {
			b.Fatal(err)
		}
	}
	l := &benchListener{}
	if err := srv.AddListener(l); err != nil {
		b.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return srv, l
}
