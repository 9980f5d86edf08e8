package plugins

import (
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"

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

// Clients that share a slot of the queue's cache are each encoded as
// themselves, from several publishers at once, and one of them takes the
// slot after 64 events of the others.
func TestEventQueueClientSlots(t *testing.T) {
	q := newEventQueue(1<<20, 1<<20)
	all := make([]core.ClientInfo, 4096)
	slotOf := func(cl *core.ClientInfo) uintptr { return uintptr(unsafe.Pointer(cl)) >> 6 % clientSlots }
	var same []*core.ClientInfo // clients of one slot
	for i := range all {
		all[i] = core.ClientInfo{ID: fmt.Sprintf("c%d", i), Username: "u"}
		if slotOf(&all[i]) == slotOf(&all[0]) {
			same = append(same, &all[i])
		}
	}
	if len(same) < 4 {
		t.Fatalf("only %d clients share a slot", len(same))
	}
	const rounds = 3 * clientEvict
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for r := range rounds {
				for i, cl := range same {
					if i%4 == g {
						q.push(&observed{event: pluginv1.Event_EVENT_PUBLISHED, client: cl, msg: &core.Message{Topic: "t/" + strconv.Itoa(r)}})
					}
				}
			}
		})
	}
	wg.Wait()
	seen := make(map[string]int)
	for _, b := range takeAll(t, q) {
		for _, e := range b {
			id := e.GetClient().GetId()
			if e.GetClient().GetUsername() != "u" {
				t.Fatalf("event of %s: client %v", id, e.GetClient())
			}
			seen[id]++
		}
	}
	for _, cl := range same {
		if seen[cl.ID] != rounds {
			t.Errorf("client %s: %d events, want %d", cl.ID, seen[cl.ID], rounds)
		}
	}
	if ec := q.clients[slotOf(same[0])].Load(); ec == nil || ec.saw.Username != "u" {
		t.Fatalf("slot holds %+v, want one of the clients", ec)
	}
}

// BenchmarkQueuePush is what the broker spends on an observed publish: the
// event encoded into the queue, its client from the cache (one client),
// or mostly not (more clients than the cache's slots), and from four
// publishers at once.
//
//	go test -run '^$' -bench QueuePush -benchmem ./plugins/
func BenchmarkQueuePush(b *testing.B) {
	for _, n := range []int{1, 1000} {
		clients := make([]core.ClientInfo, n)
		for i := range clients {
			clients[i] = core.ClientInfo{ID: fmt.Sprintf("sensor-%04d", i), Username: "u", Remote: "127.0.0.1:50000", Listener: "tcp", ProtocolVersion: 5}
		}
		m := &core.Message{Topic: "sensors/1/temp", Payload: make([]byte, 64), Origin: "sensor-0001"}
		b.Run(fmt.Sprintf("clients=%d", n), func(b *testing.B) {
			q := newEventQueue(1<<30, 512)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				q.push(&observed{event: pluginv1.Event_EVENT_PUBLISHED, client: &clients[i%n], msg: m, nanos: 1})
				if i%512 == 511 {
					for c, ok := q.take(); ok; c, ok = q.take() {
						q.Put(c.buf)
					}
				}
			}
		})
	}
	b.Run("publishers=4", func(b *testing.B) {
		q := newEventQueue(1<<30, 512)
		var taken atomic.Bool
		b.ReportAllocs()
		b.SetParallelism(2) // 2 per P: 4 on this machine's 2 cores
		b.RunParallel(func(pb *testing.PB) {
			cl := &core.ClientInfo{ID: "sensor-0001", Username: "u", Remote: "127.0.0.1:50000", Listener: "tcp", ProtocolVersion: 5}
			m := &core.Message{Topic: "sensors/1/temp", Payload: make([]byte, 64), Origin: "sensor-0001"}
			for i := 0; pb.Next(); i++ {
				q.push(&observed{event: pluginv1.Event_EVENT_PUBLISHED, client: cl, msg: m, nanos: 1})
				if i%512 == 511 && taken.CompareAndSwap(false, true) {
					for c, ok := q.take(); ok; c, ok = q.take() {
						q.Put(c.buf)
					}
					taken.Store(false)
				}
			}
		})
	})
}
