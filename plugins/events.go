package plugins

import (
	"sync"
	"sync/atomic"
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

	// clients caches encoded clients, outside mu: a connection's events
	// repeat the same client, and encoding it is half the cost of an
	// event.
	clients [clientSlots]atomic.Pointer[encodedClient]
}

const (
	// clientSlots is the size of the queue's cache of encoded clients.
	clientSlots = 64
	// clientEvict is how many events of other clients mapped to a slot
	// its client survives before one of them takes the slot: clients
	// that share a slot then rarely allocate a new encoding.
	clientEvict = 64
)

// encodedClient is a client as encoded when it was cached; it does not
// change once cached.
type encodedClient struct {
	info   *core.ClientInfo
	saw    core.ClientInfo // its fields then: a changed client is encoded again
	bytes  []byte
	misses atomic.Int32 // events of other clients in this slot
}

// client returns cl encoded: the cached encoding, or one appended to
// scratch when another client keeps the slot. It takes no lock.
func (q *eventQueue) client(cl *core.ClientInfo, scratch []byte) []byte {
	slot := &q.clients[uintptr(unsafe.Pointer(cl))>>6%clientSlots]
	ec := slot.Load()
	if ec != nil && ec.info == cl && ec.saw == *cl {
		return ec.bytes
	}
	if ec != nil && ec.info != cl && ec.misses.Add(1) < clientEvict {
		return appendClient(scratch, cl)
	}
	ec = &encodedClient{info: cl, saw: *cl}
	ec.bytes = appendClient([]byte{}, &ec.saw) // never nil: nil is "not encoded"
	slot.Store(ec)
	return ec.bytes
}

func newEventQueue(max, batch int) *eventQueue {
	return &eventQueue{max: max, batch: batch, ready: make(chan struct{}, 1)}
}

// scratchSize is the room on the stack for an event's fields, encoded
// before the queue's lock is taken; a larger message is encoded under it.
const scratchSize = 512

// clientScratch is the room on the stack for a client not cached.
const clientScratch = 256

// push encodes e at the end of the queue; false when the queue is full.
// Most of the encoding happens before the lock, into a buffer on the
// stack: publishers on several cores contend less.
func (q *eventQueue) push(e *observed) bool {
	var scratch [scratchSize]byte
	var fields, client []byte
	if e.msg == nil || len(e.msg.Topic)+len(e.msg.Payload) <= scratchSize/2 {
		fields = appendEventFields(scratch[:0], e)
	}
	if e.client != nil {
		var cs [clientScratch]byte
		client = q.client(e.client, cs[:0])
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
