package topics

import (
	"errors"
	"sync"
	"sync/atomic"
)

// Retained indexes one value per topic name (the broker stores its retained
// messages in it) and finds the topics matching a subscription filter.
// It is safe for concurrent use: Set and Delete are serialised by a writer
// lock, Get, Match, Range, Len and Bytes take no lock (see the package
// documentation), so their callbacks may call Set and Delete. Create one
// with NewRetained or NewSizedRetained (the zero value is an empty index
// too, that counts no bytes); a Retained must not be copied.
type Retained[V any] struct {
	mu   sync.Mutex // serialises writers
	root rnode[V]
	n    atomic.Int64
	// size, when set, tells what a value costs; bytes is the sum over the
	// values stored, kept by every writer under mu.
	size  func(topic string, v V) int64
	bytes atomic.Int64
}

// ErrRetainedCount and ErrRetainedBytes are SetWithin's refusals: the value
// would have taken the index over its bound of values, or of bytes.
var (
	ErrRetainedCount = errors.New("topics: too many retained values")
	ErrRetainedBytes = errors.New("topics: retained values too large")
)

// rnode is one topic level of a Retained index.
type rnode[V any] struct {
	kids  children[rnode[V]]
	entry atomic.Pointer[rentry[V]] // nil when no value ends here
}

// rentry is an immutable (topic, value) pair; keeping the topic saves
// rebuilding it from the levels during Match and Range.
type rentry[V any] struct {
	topic string
	v     V
}

// NewRetained returns an empty retained-message index.
func NewRetained[V any]() *Retained[V] {
	return new(Retained[V])
}

// NewSizedRetained returns an empty index that counts what its values
// cost, as size says (for the broker, the bytes of a message), in Bytes and
// against SetWithin's bound. size must give the same answer for the same
// topic and value every time: a value is counted out as it was counted in.
func NewSizedRetained[V any](size func(topic string, v V) int64) *Retained[V] {
	return &Retained[V]{size: size}
}

// Len returns the number of topics holding a value.
func (r *Retained[V]) Len() int {
	return int(r.n.Load())
}

// Bytes returns the sum of the stored values' sizes (0 without a size
// function).
func (r *Retained[V]) Bytes() int64 {
	return r.bytes.Load()
}

// sizeOf returns what v on topic costs.
func (r *Retained[V]) sizeOf(topic string, v V) int64 {
	if r.size == nil {
		return 0
	}
	return r.size(topic, v)
}

// Set stores v for topic, replacing any previous value, and reports whether
// the topic had no value before. topic should be a valid topic name.
func (r *Retained[V]) Set(topic string, v V) (isNew bool) {
	e := &rentry[V]{topic: topic, v: v}
	size := r.sizeOf(topic, v)

	r.mu.Lock()
	defer r.mu.Unlock()
	n, rest := r.root.find(topic)
	if rest >= 0 {
		n = n.grow(topic, rest)
	}
	return r.store(n, e, size)
}

// SetWithin stores v for topic like Set, unless that would take the index
// over maxLen values or maxBytes bytes (a bound of 0 or less: none); it
// then stores nothing and returns ErrRetainedCount or ErrRetainedBytes.
// Only growth is refused: replacing a value never counts as one more, and
// a replacement no larger than the value it replaces is always stored,
// even in an index already over its bounds.
func (r *Retained[V]) SetWithin(topic string, v V, maxLen int, maxBytes int64) (isNew bool, err error) {
	e := &rentry[V]{topic: topic, v: v}
	size := r.sizeOf(topic, v)

	r.mu.Lock()
	defer r.mu.Unlock()
	n, rest := r.root.find(topic)
	var cur *rentry[V]
	if rest < 0 {
		cur = n.entry.Load()
	}
	var old int64
	if cur != nil {
		old = r.sizeOf(cur.topic, cur.v)
	} else if maxLen > 0 && r.n.Load() >= int64(maxLen) {
		return false, ErrRetainedCount
	}
	if maxBytes > 0 && size > old && r.bytes.Load()-old+size > maxBytes {
		return false, ErrRetainedBytes
	}
	if rest >= 0 {
		n = n.grow(topic, rest)
	}
	n.entry.Store(e)
	if size != old {
		r.bytes.Add(size - old)
	}
	if cur == nil {
		r.n.Add(1)
	}
	return cur == nil, nil
}

// store puts e, of the given size, in n, topic's node; the caller holds mu.
func (r *Retained[V]) store(n *rnode[V], e *rentry[V], size int64) (isNew bool) {
	if old := n.entry.Swap(e); old != nil {
		if r.size != nil {
			r.bytes.Add(size - r.size(old.topic, old.v))
		}
		return false
	}
	if r.size != nil {
		r.bytes.Add(size)
	}
	r.n.Add(1)
	return true
}

// find walks topic's path from n as far as it exists: it returns topic's
// own node and -1, or the deepest node on the path and the start of the
// first level below it that does not exist.
func (n *rnode[V]) find(topic string) (*rnode[V], int) {
	for start := 0; ; {
		end := levelEnd(topic, start)
		c := n.kids.get(topic[start:end])
		if c == nil {
			return n, start
		}
		n = c
		if end == len(topic) {
			return n, -1
		}
		start = end + 1
	}
}

// grow creates the levels of topic from start below n, the deepest node of
// its path that exists (find), and returns topic's node. The caller holds
// the writer lock.
func (n *rnode[V]) grow(topic string, start int) *rnode[V] {
	for {
		end := levelEnd(topic, start)
		c := new(rnode[V])
		n.kids.add(topic[start:end], c)
		n = c
		if end == len(topic) {
			return n
		}
		start = end + 1
	}
}

// lookup returns the entry for topic, nil when there is none.
func (r *Retained[V]) lookup(topic string) *rentry[V] {
	if n, rest := r.root.find(topic); rest < 0 {
		return n.entry.Load()
	}
	return nil
}

// Delete removes the value for topic and reports whether there was one.
// Nodes left empty are detached.
func (r *Retained[V]) Delete(topic string) bool {
	return r.DeleteFunc(topic, nil)
}

// DeleteFunc removes the value for topic if match (nil: any) reports true
// for it, atomically with respect to Set, and reports whether it removed
// one. The broker uses it to drop an expired message without racing a newer
// one stored on the same topic.
func (r *Retained[V]) DeleteFunc(topic string, match func(V) bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()

	type step struct {
		parent *rnode[V]
		level  string
	}
	var buf [8]step
	path := buf[:0]

	n := &r.root
	for start := 0; ; {
		end := levelEnd(topic, start)
		level := topic[start:end]
		c := n.kids.get(level)
		if c == nil {
			return false
		}
		path = append(path, step{n, level})
		n = c
		if end == len(topic) {
			break
		}
		start = end + 1
	}
	e := n.entry.Load()
	if e == nil || (match != nil && !match(e.v)) {
		return false
	}
	n.entry.Store(nil)
	r.n.Add(-1)
	if r.size != nil {
		r.bytes.Add(-r.size(e.topic, e.v))
	}
	for i := len(path) - 1; i >= 0 && n.entry.Load() == nil && n.kids.empty(); i-- {
		path[i].parent.kids.remove(path[i].level)
		n = path[i].parent
	}
	return true
}

// Get returns the value for topic.
func (r *Retained[V]) Get(topic string) (V, bool) {
	if e := r.lookup(topic); e != nil {
		return e.v, true
	}
	var zero V
	return zero, false
}

// Match calls fn for every topic matching filter, in no particular order,
// until fn returns false. filter may contain wildcards and should be valid
// (ValidateFilter); topics starting with '$' are not matched by a filter
// starting with a wildcard [MQTT-4.7.2-1]. Values set or deleted during the
// walk may or may not be seen.
func (r *Retained[V]) Match(filter string, fn func(topic string, v V) bool) {
	r.root.match(filter, 0, fn)
}

// Range calls fn for every topic, '$' topics included, in no particular
// order, until fn returns false.
func (r *Retained[V]) Range(fn func(topic string, v V) bool) {
	r.root.all(false, fn)
}

// match matches the filter level starting at filter[start] against n's
// children and reports whether fn wants more. At the first level (n is the
// root) wildcards skip '$' topics [MQTT-4.7.2-1].
func (n *rnode[V]) match(filter string, start int, fn func(string, V) bool) bool {
	root := start == 0
	end := levelEnd(filter, start)
	last := end == len(filter)
	switch level := filter[start:end]; level {
	case multiLevel:
		// "a/#" matches "a" as well as everything below it [MQTT-4.7.1-2],
		// so n's own value is included.
		return n.all(root, fn)
	case singleLevel:
		return n.kids.each(func(level string, c *rnode[V]) bool {
			if root && IsSysTopic(level) {
				return true
			}
			if last {
				return c.yield(fn)
			}
			return c.match(filter, end+1, fn)
		})
	default:
		c := n.kids.get(level)
		switch {
		case c == nil:
			return true
		case last:
			return c.yield(fn)
		}
		return c.match(filter, end+1, fn)
	}
}

// all calls fn for every value below n (n's own included) and reports
// whether fn wants more. noSys skips children whose level starts with '$'.
func (n *rnode[V]) all(noSys bool, fn func(string, V) bool) bool {
	if !n.yield(fn) {
		return false
	}
	return n.kids.each(func(level string, c *rnode[V]) bool {
		if noSys && IsSysTopic(level) {
			return true
		}
		return c.all(false, fn)
	})
}

// yield calls fn with n's value, if any, and reports whether fn wants more.
func (n *rnode[V]) yield(fn func(string, V) bool) bool {
	if e := n.entry.Load(); e != nil {
		return fn(e.topic, e.v)
	}
	return true
}
