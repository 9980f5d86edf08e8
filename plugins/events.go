package plugins

import (
	"sync"
	"unsafe"

	"github.com/vanemq/vanemq/core"
)

// The observer queue keeps events already encoded, in the wire format of
// EventBatch.events, in chunks: a chunk is one message on the Observe
// stream. Encoding when the event happens copies the message (whose
// payload may be the reader's, valid only during the call) without a
// per-event allocation, and the stream sends a chunk as it is.

const (
	chunkCap   = 64 << 10 // a new chunk's capacity
	chunkBytes = 1 << 20  // a chunk this full is closed even below batch events
	freeChunks = 8        // chunks kept for reuse
)

// chunk is a run of encoded events.
type chunk struct {
	buf *[]byte
	n   int
}

// eventQueue is the bounded queue of observed events. It is also the
// mem.BufferPool gRPC returns a sent chunk's buffer to, once written.
type eventQueue struct {
	max, batch int
	ready      chan struct{} // signalled when the queue stops being empty

	mu      sync.Mutex
	pending []chunk // in order; the last may still be filling
	free    []*[]byte
	queued  int
	clients [clientSlots]encodedClient
}

// clientSlots is the size of the queue's cache of encoded clients.
const clientSlots = 64

// encodedClient is a client as last encoded, kept by the queue: a
// connection's events repeat the same client, and encoding it is half the
// cost of an event.
type encodedClient struct {
	info  *core.ClientInfo
	saw   core.ClientInfo // its fields then: a changed client is encoded again
	bytes []byte
}

// client returns cl encoded (q.mu held).
func (q *eventQueue) client(cl *core.ClientInfo) []byte {
	slot := &q.clients[uintptr(unsafe.Pointer(cl))>>6%clientSlots]
	if slot.info == cl && slot.saw == *cl {
		return slot.bytes
	}
	slot.info, slot.saw = cl, *cl
	slot.bytes = appendClient(slot.bytes[:0], cl)
	if slot.bytes == nil {
		slot.bytes = []byte{} // encoded, and empty
	}
	return slot.bytes
}

func newEventQueue(max, batch int) *eventQueue {
	return &eventQueue{max: max, batch: batch, ready: make(chan struct{}, 1)}
}

// scratchSize is the room on the stack for an event's fields, encoded
// before the queue's lock is taken; a larger message is encoded under it.
const scratchSize = 512

// push encodes e at the end of the queue; false when the queue is full.
// Most of the encoding happens before the lock, into a buffer on the
// stack: publishers on several cores contend less.
func (q *eventQueue) push(e *observed) bool {
	var scratch [scratchSize]byte
	var fields []byte
	if e.msg == nil || len(e.msg.Topic)+len(e.msg.Payload) <= scratchSize/2 {
		fields = appendEventFields(scratch[:0], e)
	}
	q.mu.Lock()
	if q.queued >= q.max {
		q.mu.Unlock()
		return false
	}
	last := len(q.pending) - 1
	if last < 0 || q.pending[last].n >= q.batch || len(*q.pending[last].buf) >= chunkBytes {
		q.pending = append(q.pending, chunk{buf: q.buffer()})
		last++
	}
	c := &q.pending[last]
	var client []byte
	if e.client != nil {
		client = q.client(e.client)
	}
	if fields != nil {
		*c.buf = appendEventWith(*c.buf, e, client, fields)
	} else {
		b, at := beginEvent(*c.buf, e, client)
		*c.buf = endMessage(appendEventFields(b, e), at)
	}
	c.n++
	q.queued++
	first := q.queued == 1
	q.mu.Unlock()
	if first {
		select {
		case q.ready <- struct{}{}:
		default:
		}
	}
	return true
}

// take removes the oldest chunk.
func (q *eventQueue) take() (chunk, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.pending) == 0 {
		return chunk{}, false
	}
	c := q.pending[0]
	q.pending[0] = chunk{}
	q.pending = q.pending[1:]
	if len(q.pending) == 0 {
		q.pending = q.pending[:0:0] // let the drained array go
	}
	q.queued -= c.n
	return c, true
}

// len is the number of events queued.
func (q *eventQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.queued
}

// buffer returns an empty chunk buffer (q.mu held).
func (q *eventQueue) buffer() *[]byte {
	if n := len(q.free); n > 0 {
		b := q.free[n-1]
		q.free = q.free[:n-1]
		return b
	}
	b := make([]byte, 0, chunkCap)
	return &b
}

// Get implements mem.BufferPool.
func (q *eventQueue) Get(length int) *[]byte {
	b := make([]byte, length)
	return &b
}

// Put implements mem.BufferPool: gRPC is done with a sent chunk.
func (q *eventQueue) Put(b *[]byte) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.free) < freeChunks && cap(*b) <= chunkBytes*2 {
		*b = (*b)[:0]
		q.free = append(q.free, b)
	}
}

// appendDropped ends a batch with its dropped count.
func appendDropped(b []byte, dropped uint64) []byte {
	return appendUint(b, fieldBatchDropped, dropped)
}
