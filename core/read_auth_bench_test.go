package core

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/vanemq/vanemq/core/packets"
)

// benchReadHook is an AuthorizeRead hook that lets every subscriber read
// every topic but those under secret/, as an ACL's "deny subscribe
// secret/#, allow both #" does. It counts its calls, so that the benchmark
// shows how often the cache sends a delivery to the hook.
type benchReadHook struct {
	calls atomic.Int64
	same  bool // its verdicts are the same for every subscriber (SameForAll)
}

func (*benchReadHook) ID() string       { return "bench.read" }
func (*benchReadHook) Events() EventSet { return Events(EventAuthorizeRead) }
func (h *benchReadHook) AuthorizeRead(_ context.Context, _ *ClientInfo, topic string) Verdict {
	h.calls.Add(1)
	v := Allow
	if strings.HasPrefix(topic, "secret/") {
		v = Deny(packets.NotAuthorized, "secret")
	}
	v.SameForAll = h.same
	return v
}

// BenchmarkFanoutRead measures one inbound PUBLISH (QoS 0, MQTT 3.1.1,
// 64-byte payload) through handlePublish to 50 subscribers on "#", without
// an AuthorizeRead hook and with one (issue 17: read permission checked at
// delivery, the verdicts cached, and fan-out must stay fast). The
// publisher rotates over 8 topics, which fit in a session's cache of
// verdicts (sessionReadSlots), or 1000, which do not; read=hook's verdicts
// are per subscriber, read=same's hold for every subscriber
// (Verdict.SameForAll, as auth.file's are when no rule that could match
// the topic depends on the client) and are cached once per topic in the
// server's shared cache (sharedReadSlots). As in BenchmarkPublishHooks, the
// subscribers are real loopback connections that read every byte, so the
// writers' work is inside the measurement; per op is one message, 50
// deliveries. ns/delivery and allocs/delivery divide by the deliveries
// (allocs/delivery counts every allocation of the process over the loop,
// the subscribers' readers included); hook-calls/delivery is the share of
// deliveries the caches did not answer.
func BenchmarkFanoutRead(b *testing.B) {
	const subs = 50
	for _, topics := range []int{8, 1000} {
		for _, read := range []string{"none", "hook", "same"} {
			b.Run(fmt.Sprintf("v4/subs=%d/topics=%d/read=%s", subs, topics, read), func(b *testing.B) {
				var h *benchReadHook
				if read != "none" {
					h = &benchReadHook{same: read == "same"}
				}
				benchFanoutRead(b, packets.Version311, subs, topics, h)
			})
		}
	}
}

// benchTopics are n distinct topics, alternately under public/ and
// sensors/, as the load tool's acl command publishes on.
func benchTopics(n int) []string {
	t := make([]string, n)
	for i := range t {
		if i%2 == 0 {
			t[i] = "public/news/" + strconv.Itoa(i/2)
		} else {
			t[i] = "sensors/" + strconv.Itoa(i/2) + "/temperature"
		}
	}
	return t
}

func benchFanoutRead(b *testing.B, version byte, nsubs, ntopics int, hook *benchReadHook) {
	var hooks []Hook
	if hook != nil {
		hooks = append(hooks, hook)
	}
	srv, l := startBenchServer(b, hooks...)
	subs := make([]*benchSubscriber, nsubs)
	for i := range subs {
		subs[i] = dialSubscriber(b, l.Address(), fmt.Sprintf("sub-%d", i), "#", version, 0)
	}
	topics := benchTopics(ntopics)
	decoded := make([]packets.Packet, len(topics))
	sizes := make([]int64, len(topics))
	for i, topic := range topics {
		pub := &packets.Packet{Type: packets.Publish, ProtocolVersion: version, Topic: topic, Payload: make([]byte, 64)}
		wire := encodeRaw(b, pub)
		if _, err := packets.DecodeBytes(wire, version, 0, &decoded[i]); err != nil {
			b.Fatal(err)
		}
		sizes[i] = int64(len(wire))
	}
	// The publisher: connected as far as handlePublish needs (QoS 0 uses
	// neither its session nor its outbound queue).
	pc := &client{srv: srv}
	pc.id, pc.version, pc.connected = "pub", version, true
	pc.info = ClientInfo{ID: "pub", ProtocolVersion: version}
	pc.sess = newSession(srv, "pub")
	ctx := context.Background()

	// One round over the topics first: with a hook, the cache then holds
	// what it can hold, as in a broker that has been running.
	var want int64
	for i := range decoded {
		if err := srv.handlePublish(ctx, pc, &decoded[i]); err != nil {
			b.Fatal(err)
		}
		pc.batch.startWriters()
		want += sizes[i]
	}
	for i, s := range subs {
		if !s.wait(want) {
			b.Fatalf("subscriber %d stalled in the first round", i)
		}
	}
	var calls0 int64
	if hook != nil {
		calls0 = hook.calls.Load()
	}
	var mem0, mem1 runtime.MemStats
	runtime.ReadMemStats(&mem0)

	b.ReportAllocs()
	b.ResetTimer()
	n, next := int64(0), 0
	for b.Loop() {
		if err := srv.handlePublish(ctx, pc, &decoded[next]); err != nil {
			b.Fatal(err)
		}
		pc.batch.startWriters()
		want += sizes[next]
		if next++; next == len(decoded) {
			next = 0
		}
		n++
		if n%256 == 0 {
			// Let the writers catch up, as a network publisher would be
			// paced: the queues stay at realistic sizes.
			for i, s := range subs {
				if !s.wait(want) {
					b.Fatalf("subscriber %d stalled", i)
				}
			}
		}
	}
	for i, s := range subs {
		if !s.wait(want) {
			b.Fatalf("subscriber %d read %d bytes, want %d (dropped %d)", i, s.n.Load(), want, srv.Stats().Dropped)
		}
	}
	b.StopTimer()
	runtime.ReadMemStats(&mem1)
	deliveries := float64(n) * float64(nsubs)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/deliveries, "ns/delivery")
	b.ReportMetric(float64(mem1.Mallocs-mem0.Mallocs)/deliveries, "allocs/delivery")
	if hook != nil {
		b.ReportMetric(float64(hook.calls.Load()-calls0)/deliveries, "hook-calls/delivery")
	}
}
