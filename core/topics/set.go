package topics

import "sync/atomic"

// Tuning of set.
const (
	// indexAbove is the slot count above which a set keeps a key → slot map
	// instead of scanning its keys.
	indexAbove = 16
	// shrinkAbove is the slot count above which a set compacts itself once
	// three quarters of its slots are empty.
	shrinkAbove = 8
)

// set is a keyed collection of *T that readers walk without locking while a
// single writer at a time (the owner's writer lock) changes it.
//
// Entries live in a slot array published through an atomic pointer; each slot
// is itself an atomic pointer, nil when empty. Insertion fills a slot,
// removal clears one and replacement swaps one, each a single atomic store
// that readers observe without any other synchronisation. A new array is
// built and published only to grow, or to compact a mostly-empty array; the
// old one is left untouched for readers still walking it.
//
// Within one array a key keeps its slot: a removed entry leaves a tombstone
// (an empty slot still assigned to its key) that only the same key reuses,
// and new keys take never-used slots. A reader walking one array therefore
// meets each key at most once, even if the key is removed and re-added
// behind it. Tombstones are dropped when the array is rebuilt.
//
// The zero value is an empty set.
type set[T any] struct {
	slots atomic.Pointer[[]atomic.Pointer[T]]
	live  atomic.Int32 // number of non-nil slots

	// Writer-only bookkeeping, guarded by the owner's writer lock.
	keys  []string         // keys[i] is the key assigned to slot i, for i < used
	used  int              // slots assigned so far; slots[used:] are fresh
	index map[string]int32 // key → slot for i < used, kept when len(keys) > indexAbove
}

// load returns the current slot array (nil when the set is empty).
func (s *set[T]) load() []atomic.Pointer[T] {
	if p := s.slots.Load(); p != nil {
		return *p
	}
	return nil
}

// appendTo appends every entry to dst. Safe for concurrent use with writers.
func (s *set[T]) appendTo(dst []*T) []*T {
	p := s.slots.Load()
	if p == nil {
		return dst
	}
	slots := *p
	for i := range slots {
		if v := slots[i].Load(); v != nil {
			dst = append(dst, v)
		}
	}
	return dst
}

// len returns the number of entries. Safe for concurrent use with writers.
func (s *set[T]) len() int {
	return int(s.live.Load())
}

// find returns the slot assigned to key (holding its entry or its
// tombstone), or -1. Writer only.
func (s *set[T]) find(key string) int {
	if s.index != nil {
		if i, ok := s.index[key]; ok {
			return int(i)
		}
		return -1
	}
	for i, k := range s.keys[:s.used] {
		if k == key {
			return i
		}
	}
	return -1
}

// get returns the entry for key, or nil. Writer only.
func (s *set[T]) get(key string) *T {
	if i := s.find(key); i >= 0 {
		return s.load()[i].Load()
	}
	return nil
}

// put stores v under key, replacing (and reporting) any entry already there.
// Writer only.
func (s *set[T]) put(key string, v *T) (replaced bool) {
	if i := s.find(key); i >= 0 {
		if s.load()[i].Swap(v) != nil {
			return true
		}
		s.live.Add(1) // refilled its own tombstone
		return false
	}
	if s.used == len(s.keys) {
		s.resize(max(1, 2*s.len()))
	}
	i := s.used
	s.used++
	s.keys[i] = key
	if s.index != nil {
		s.index[key] = int32(i)
	}
	s.load()[i].Store(v)
	s.live.Add(1)
	return false
}

// remove deletes the entry for key and returns it, or nil if there was none.
// Writer only.
func (s *set[T]) remove(key string) *T {
	i := s.find(key)
	if i < 0 {
		return nil
	}
	old := s.load()[i].Swap(nil)
	if old == nil {
		return nil
	}
	switch n := int(s.live.Add(-1)); {
	case n == 0:
		s.slots.Store(nil)
		s.keys, s.used, s.index = nil, 0, nil
	case len(s.keys) > shrinkAbove && n*4 <= len(s.keys):
		s.resize(2 * n)
	}
	return old
}

// resize publishes a new slot array of the given size (more than the number
// of entries) holding the current entries, in order, at its front, and no
// tombstones. Writer only.
func (s *set[T]) resize(size int) {
	old := s.load()
	slots := make([]atomic.Pointer[T], size)
	keys := make([]string, size)
	n := 0
	for i := range old {
		if v := old[i].Load(); v != nil {
			slots[n].Store(v)
			keys[n] = s.keys[i]
			n++
		}
	}
	s.keys, s.used, s.index = keys, n, nil
	if size > indexAbove {
		s.index = make(map[string]int32, size)
		for i, k := range keys[:n] {
			s.index[k] = int32(i)
		}
	}
	s.slots.Store(&slots)
}
