package topics

import (
	"strings"
	"sync"
	"sync/atomic"
)

// children maps a topic level to a child node. Readers look levels up
// without locking and without allocating (sync.Map.Load does not let a string
// key escape); writers, serialised by the owner's writer lock, add and remove
// entries. The map itself is allocated with the first child and dropped with
// the last, so leaves cost one nil pointer.
type children[N any] struct {
	m atomic.Pointer[sync.Map] // level (string) → *N
	n int                      // number of entries; writer only
}

// get returns the child for level, or nil. Safe for concurrent use.
func (c *children[N]) get(level string) *N {
	m := c.m.Load()
	if m == nil {
		return nil
	}
	v, ok := m.Load(level)
	if !ok {
		return nil
	}
	return v.(*N)
}

// add stores child under level, which must not be present. Writer only.
func (c *children[N]) add(level string, child *N) {
	m := c.m.Load()
	if m == nil {
		m = new(sync.Map)
		c.m.Store(m)
	}
	// Clone so that the key does not pin whatever larger string the level
	// was cut from.
	m.Store(strings.Clone(level), child)
	c.n++
}

// remove deletes level. Writer only.
func (c *children[N]) remove(level string) {
	m := c.m.Load()
	if m == nil {
		return
	}
	if _, ok := m.LoadAndDelete(level); !ok {
		return
	}
	if c.n--; c.n == 0 {
		c.m.Store(nil)
	}
}

// each calls fn for every child until fn returns false, and reports whether
// it ran to the end. Safe for concurrent use; children added or removed
// meanwhile may or may not be visited.
func (c *children[N]) each(fn func(level string, child *N) bool) bool {
	m := c.m.Load()
	if m == nil {
		return true
	}
	done := true
	m.Range(func(k, v any) bool {
		done = fn(k.(string), v.(*N))
		return done
	})
	return done
}

// empty reports whether there are no children. Writer only.
func (c *children[N]) empty() bool {
	return c.n == 0
}
