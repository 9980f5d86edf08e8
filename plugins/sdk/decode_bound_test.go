package sdk

import (
	"bytes"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/vanemq/vanemq/plugins/proto/pluginv1"
)

// field is the field num of type bytes, holding v.
func field(num protowire.Number, v []byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), v)
}

// repeatTo repeats unit(i), for i = 0, 1, ..., up to n bytes or fewer.
func repeatTo(n int, unit func(i int) []byte) []byte {
	var b []byte
	for i := 0; ; i++ {
		u := unit(i)
		if len(b)+len(u) > n {
			return b
		}
		b = append(b, u...)
	}
}

// hostileBatches are batches of up to n bytes that make the decoder do
// the most for their size: the least bytes per event, client (new or
// seen), user property or name, or the most nesting (groups, skipped:
// the broker never sends them). They are fuzz seeds, in
// testdata/fuzz/FuzzBatchDecoder/seed-*.
func hostileBatches(n int) map[string][]byte {
	// Groups of field 1 nested 100 deep.
	nested := append(bytes.Repeat([]byte{0x0b}, 100), bytes.Repeat([]byte{0x0c}, 100)...)
	id := func(i int) []byte { return field(1, strconv.AppendInt(nil, int64(i), 36)) }
	in := func(fields ...protowire.Number) func([]byte) []byte {
		return func(b []byte) []byte {
			for _, num := range fields {
				b = field(num, b)
			}
			return b
		}
	}
	const hdr = 8 // room for the enclosing fields' tags and lengths
	return map[string][]byte{
		"empty events":          repeatTo(n, func(int) []byte { return []byte{0x0a, 0x00} }),
		"events of empty parts": repeatTo(n, func(int) []byte { return field(1, []byte{0x12, 0x00, 0x1a, 0x02, 0x32, 0x00}) }),
		"a client per event":    repeatTo(n, func(i int) []byte { return in(2, 1)(id(i)) }),
		"one client, seen":      repeatTo(n, func(int) []byte { return in(2, 1)([]byte{0x0a, 0x00}) }),
		"clients in one event":  in(1)(repeatTo(n-hdr, func(i int) []byte { return field(2, id(i)) })),
		"user properties":       in(6, 3, 1)(bytes.Repeat([]byte{0x32, 0x00}, max(0, n-3*hdr)/2)),
		"names of a client":     in(2, 1)(bytes.Repeat([]byte{0x42, 0x00}, max(0, n-2*hdr)/2)),
		"nested groups":         repeatTo(n, func(int) []byte { return nested }),
		"groups in an event":    repeatTo(n, func(int) []byte { return field(1, nested) }),
		"unknown fixed fields":  repeatTo(n, func(int) []byte { return []byte{0x49, 1, 2, 3, 4, 5, 6, 7, 8, 0x55, 1, 2, 3, 4} }),
		// A sys_tick's Stats is allocated, with its maps: empty ones in
		// every event, or one with a counter per reason name.
		"empty stats":        repeatTo(n, func(int) []byte { return field(1, []byte{0x52, 0x00}) }),
		"stats map entries":  in(10, 1)(repeatTo(max(0, n-2*hdr), func(i int) []byte { return field(15, field(1, strconv.AppendInt(nil, int64(i), 36))) })),
		"stats by QoS, long": in(17, 10, 1)(bytes.Repeat([]byte{0x01}, max(0, n-3*hdr))),
	}
}

// allocated reports the allocations and bytes allocated by f, run once
// after a first run.
func allocated(f func()) (allocs, bytes uint64) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	f()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.Mallocs - before.Mallocs, after.TotalAlloc - before.TotalAlloc
}

// The decoder's allocations are proportional to the bytes of a batch,
// whatever the batch: at most one per two bytes (the smallest field),
// and in bytes, per byte of the batch, its copy and half an event with
// room for its message (an empty event is two bytes), in a block rounded
// up to the allocator's size class (an eighth more at most). Its other
// work is a pass over each level of the batch (two over the top one), by
// construction; hostile batches that allocate nothing, as nested groups,
// are here to be decoded at every size, and are fuzz seeds.
func TestBatchDecoderWorkBoundedByInput(t *testing.T) {
	perByte := 1 + uint64(unsafe.Sizeof(eventAndMessage{}))*9/16
	// What a batch of one event may allocate besides: the copy, the
	// block, the cache's map and the client.
	const fixedAllocs, fixedBytes = 4, 2 << 10
	for _, n := range []int{16, 1 << 10, 64 << 10} {
		for name, b := range hostileBatches(n) {
			t.Run(fmt.Sprintf("%s/%d", name, n), func(t *testing.T) {
				if len(b) == 0 {
					t.Skip("no room for one")
				}
				var want pluginv1.EventBatch
				if err := proto.Unmarshal(b, &want); err != nil {
					t.Fatalf("not a batch: %v", err)
				}
				events := 0
				allocs, bytes := allocated(func() {
					var d batchDecoder
					events = 0
					if _, err := d.decode(b, func(*Event) { events++ }); err != nil {
						t.Fatal(err)
					}
				})
				if events != len(want.Events) {
					t.Fatalf("%d events, want %d", events, len(want.Events))
				}
				size := uint64(len(b))
				if max := size/2 + fixedAllocs; allocs > max {
					t.Errorf("%d bytes, %d events: %d allocations, want at most %d", size, events, allocs, max)
				}
				if max := perByte*size + fixedBytes; bytes > max {
					t.Errorf("%d bytes, %d events: %d bytes allocated (%.0f a byte), want at most %d", size, events, bytes, float64(bytes)/float64(size), max)
				}
				t.Logf("%d bytes, %d events: %d allocations, %d bytes", size, events, allocs, bytes)
			})
		}
	}
}

// The cache of clients, which outlives batches, keeps at most
// maxClientBytes, however long the clients' IDs and usernames, and does
// not keep a client bigger than that.
func TestBatchDecoderClientCacheBounded(t *testing.T) {
	var d batchDecoder
	cached := func() int {
		n := 0
		for k := range d.clients {
			n += len(k)
		}
		return n
	}
	long := strings.Repeat("x", 64<<10) // the longest MQTT client ID, and username
	for i := range 200 {
		c := &pluginv1.Client{Id: fmt.Sprint(i, long), Username: long}
		raw, err := proto.Marshal(&pluginv1.EventBatch{Events: []*pluginv1.ObservedEvent{
			{Event: pluginv1.Event_EVENT_CONNECT, Client: c}, {Event: pluginv1.Event_EVENT_DISCONNECTED, Client: c}}})
		if err != nil {
			t.Fatal(err)
		}
		var got []*Event
		if _, err := d.decode(raw, func(e *Event) { got = append(got, e) }); err != nil {
			t.Fatal(err)
		}
		if got[0].Client.ID != c.Id || got[0].Client != got[1].Client {
			t.Fatalf("batch %d: the client is not decoded once and shared", i)
		}
		if n := cached(); n > maxClientBytes {
			t.Fatalf("after %d batches of a %d-byte client: the cache keeps %d bytes of clients, want at most %d", i+1, len(long)*2, n, maxClientBytes)
		}
	}

	huge := &pluginv1.Client{Id: strings.Repeat("h", maxClientBytes)}
	raw, err := proto.Marshal(&pluginv1.EventBatch{Events: []*pluginv1.ObservedEvent{{Event: pluginv1.Event_EVENT_CONNECT, Client: huge}}})
	if err != nil {
		t.Fatal(err)
	}
	var got *Event
	if _, err := d.decode(raw, func(e *Event) { got = e }); err != nil {
		t.Fatal(err)
	}
	if got.Client.ID != huge.Id {
		t.Fatal("the huge client is not decoded")
	}
	for _, c := range d.clients {
		if c == got.Client {
			t.Errorf("a client of %d bytes is kept", len(huge.Id))
		}
	}
}
