package plugins

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/plugins/proto/pluginv1"
)

// takeAll decodes every chunk queued.
func takeAll(t *testing.T, q *eventQueue) (batches [][]*pluginv1.ObservedEvent) {
	t.Helper()
	for c, ok := q.take(); ok; c, ok = q.take() {
		var b pluginv1.EventBatch
		if err := proto.Unmarshal(*c.buf, &b); err != nil {
			t.Fatal(err)
		}
		if len(b.Events) != c.n {
			t.Fatalf("chunk says %d events, holds %d", c.n, len(b.Events))
		}
		batches = append(batches, b.Events)
		q.Put(c.buf)
	}
	return batches
}

// The queue keeps events in order, in chunks of at most batch events,
// refuses them beyond max, and encodes a client again when it changed.
func TestEventQueue(t *testing.T) {
	q := newEventQueue(5, 2)
	cl := &core.ClientInfo{ID: "c1", Username: "u1"}
	for i := range 5 {
		if !q.push(&observed{event: pluginv1.Event_EVENT_PUBLISHED, client: cl, msg: &core.Message{Topic: "t", QoS: byte(i % 3)}}) {
			t.Fatalf("push %d refused below the bound", i)
		}
		if i == 2 {
			cl.Username = "u2" // a client value reused with other fields
		}
	}
	if q.push(&observed{event: pluginv1.Event_EVENT_PUBLISHED, client: cl}) {
		t.Fatal("push accepted beyond the bound")
	}
	if n := q.len(); n != 5 {
		t.Fatalf("len %d, want 5", n)
	}
	batches := takeAll(t, q)
	if len(batches) != 3 || len(batches[0]) != 2 || len(batches[2]) != 1 {
		t.Fatalf("chunks of %d events, want 2, 2, 1", []int{len(batches[0]), len(batches[1]), len(batches[2])})
	}
	i := 0
	for _, b := range batches {
		for _, e := range b {
			want := "u1"
			if i > 2 {
				want = "u2"
			}
			if e.GetClient().GetUsername() != want || e.GetMessage().GetQos() != uint32(i%3) {
				t.Errorf("event %d: username %q qos %d, want %q %d", i, e.GetClient().GetUsername(), e.GetMessage().GetQos(), want, i%3)
			}
			i++
		}
	}
	if q.len() != 0 || len(q.free) == 0 {
		t.Fatalf("after taking all: len %d, %d free buffers", q.len(), len(q.free))
	}
	// The queue takes events again, in a reused buffer.
	if !q.push(&observed{event: pluginv1.Event_EVENT_RETAINED, msg: &core.Message{Topic: "r"}}) {
		t.Fatal("push refused after draining")
	}
	if b := takeAll(t, q); len(b) != 1 || b[0][0].GetMessage().GetTopic() != "r" || b[0][0].GetClient() != nil {
		t.Fatalf("after reuse: %v", b)
	}
}

// BenchmarkQueuePush is what the broker spends on an observed publish: the
// event encoded into the queue, its client from the cache.
func BenchmarkQueuePush(b *testing.B) {
	q := newEventQueue(1<<30, 512)
	cl := &core.ClientInfo{ID: "sensor-0001", Username: "u", Remote: "127.0.0.1:50000", Listener: "tcp", ProtocolVersion: 5}
	m := &core.Message{Topic: "sensors/1/temp", Payload: make([]byte, 64), Origin: "sensor-0001"}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		q.push(&observed{event: pluginv1.Event_EVENT_PUBLISHED, client: cl, msg: m, nanos: 1})
		if i%512 == 511 {
			for c, ok := q.take(); ok; c, ok = q.take() {
				q.Put(c.buf)
			}
		}
	}
}
