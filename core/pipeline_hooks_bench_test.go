package core

import (
	"context"
	"fmt"
	"testing"

	"github.com/vanemq/vanemq/core/packets"
)

// benchSessionHook handles only OnSession, an event unrelated to
// publishing: it must cost a publish nothing.
type benchSessionHook struct {
	id string
}

func (h *benchSessionHook) ID() string                                            { return h.id }
func (h *benchSessionHook) OnSession(context.Context, *ClientInfo, SessionChange) {}

// benchPublishHook is a Publish modifier that lets every message pass.
type benchPublishHook struct{}

func (*benchPublishHook) ID() string       { return "bench.publish" }
func (*benchPublishHook) Events() EventSet { return Events(EventPublish) }
func (*benchPublishHook) Publish(context.Context, *ClientInfo, *Message) Verdict {
	return Next
}

// benchAuthorizeHook allows every publish.
type benchAuthorizeHook struct{}

func (*benchAuthorizeHook) ID() string       { return "bench.authorize" }
func (*benchAuthorizeHook) Events() EventSet { return Events(EventAuthorizePublish) }
func (*benchAuthorizeHook) AuthorizePublish(context.Context, *ClientInfo, *Message) Verdict {
	return Allow
}

// benchPublishedHook is told of every message, and does nothing.
type benchPublishedHook struct{}

func (*benchPublishedHook) ID() string                                         { return "bench.published" }
func (*benchPublishedHook) Events() EventSet                                   { return Events(EventPublished) }
func (*benchPublishedHook) OnPublished(context.Context, *ClientInfo, *Message) {}

// BenchmarkPublishHooks measures one inbound PUBLISH (QoS 0, 64-byte
// payload) through handlePublish, the path a client's PUBLISH takes, with
// 0, 1 and 5 registered hooks that handle only OnSession, and with one
// Publish hook that lets the message pass (issue 4: "with no hook handling
// the event the overhead must be within noise of a broker without a
// pipeline, and no allocation is added"). As in BenchmarkPublishFanout,
// real loopback subscribers read every byte, so the writers' work is
// inside the measurement. The publishing client is an in-process client
// value whose deferred writer starts are run after each packet, as its
// reader would at the end of a read batch.
func BenchmarkPublishHooks(b *testing.B) {
	type hookSet struct {
		name  string
		hooks func() []Hook
	}
	sessionHooks := func(n int) func() []Hook {
		return func() []Hook {
			hs := make([]Hook, n)
			for i := range hs {
				hs[i] = &benchSessionHook{id: fmt.Sprintf("bench.session.%d", i)}
			}
			return hs
		}
	}
	sets := []hookSet{
		{"hooks=0", sessionHooks(0)},
		{"hooks=1-session", sessionHooks(1)},
		{"hooks=5-session", sessionHooks(5)},
		{"hooks=1-publish", func() []Hook { return []Hook{&benchPublishHook{}} }},
		{"hooks=1-authorize", func() []Hook { return []Hook{&benchAuthorizeHook{}} }},
		{"hooks=1-published", func() []Hook { return []Hook{&benchPublishedHook{}} }},
	}
	for _, subs := range []int{1, 10} {
		for _, hs := range sets {
			b.Run(fmt.Sprintf("v5/subs=%d/%s", subs, hs.name), func(b *testing.B) {
				benchPublishHooks(b, packets.Version5, subs, hs.hooks())
			})
		}
	}
}

func benchPublishHooks(b *testing.B, version byte, nsubs int, hooks []Hook) {
	srv, l := startBenchServer(b, hooks...)
	subs := make([]*benchSubscriber, nsubs)
	for i := range subs {
		subs[i] = dialSubscriber(b, l.Address(), fmt.Sprintf("sub-%d", i), "bench/+/data", version, 0)
	}
	pub := &packets.Packet{Type: packets.Publish, ProtocolVersion: version, Topic: "bench/1/data", Payload: make([]byte, 64)}
	wire := encodeRaw(b, pub)
	var decoded packets.Packet
	if _, err := packets.DecodeBytes(wire, version, 0, &decoded); err != nil {
		b.Fatal(err)
	}
	// The publisher: connected as far as handlePublish needs (QoS 0 uses
	// neither its session nor its outbound queue).
	pc := &client{srv: srv}
	pc.id, pc.version, pc.connected = "pub", version, true
	pc.info = ClientInfo{ID: "pub", ProtocolVersion: version}
	pc.sess = newSession(srv, "pub")
	ctx := context.Background()

	b.ReportAllocs()
	b.SetBytes(int64(len(wire)))
	b.ResetTimer()
	n := int64(0)
	for b.Loop() {
		if err := srv.handlePublish(ctx, pc, &decoded); err != nil {
			b.Fatal(err)
		}
		pc.batch.startWriters()
		n++
		if n%256 == 0 {
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
}
