package core

import (
	"hash/maphash"
	"strconv"
	"testing"
)

// TestReadCache: verdicts are found for their topic and generation only; a
// few topics never evict each other; a cache that keeps evicting grows up
// to its bound, and then holds as many topics as it has room for.
func TestReadCache(t *testing.T) {
	seed := maphash.MakeSeed()
	h := func(topic string) uint64 { return maphash.String(seed, topic) }
	topic := func(i int) string { return "sensors/" + strconv.Itoa(i) + "/temperature" }
	held := func(rc *readCache, n int, gen uint64) int {
		k := 0
		for i := range n {
			if allow, ok := rc.lookup(h(topic(i)), topic(i), gen); ok && allow == (i%3 != 0) {
				k++
			}
		}
		return k
	}
	fill := func(rc *readCache, n int, gen uint64, size, max int) {
		for range 3 { // later rounds find what the first evicted
			for i := range n {
				if _, ok := rc.lookup(h(topic(i)), topic(i), gen); !ok {
					rc.store(h(topic(i)), topic(i), gen, i%3 != 0, size, max)
				}
			}
		}
	}

	var rc readCache
	if _, ok := rc.lookup(h("a"), "a", 1); ok {
		t.Fatal("an empty cache found a verdict")
	}
	fill(&rc, 8, 1, 64, 64)
	if got := held(&rc, 8, 1); got != 8 {
		t.Errorf("8 topics in a 64-slot, %d-way cache: %d held, want 8", readWays, got)
	}
	if got := held(&rc, 8, 2); got != 0 {
		t.Errorf("%d verdicts of generation 1 found in generation 2", got)
	}
	rc.reset()
	if got := held(&rc, 8, 1); got != 0 {
		t.Errorf("%d verdicts found after reset", got)
	}

	var fixed readCache
	fill(&fixed, 1000, 1, 64, 64)
	if n := len(*fixed.table.Load()); n != 64 {
		t.Errorf("a cache bounded at 64 slots has %d", n)
	}
	if got := held(&fixed, 1000, 1); got > 64 {
		t.Errorf("a 64-slot cache holds %d verdicts", got)
	}

	var growing readCache
	fill(&growing, 1000, 1, sessionReadSlots, sessionReadMax)
	if n := len(*growing.table.Load()); n != sessionReadMax {
		t.Errorf("after 1000 topics the table has %d slots, want it grown to %d", n, sessionReadMax)
	}
	if got := held(&growing, 1000, 1); got < 990 {
		t.Errorf("the grown cache holds %d of 1000 topics", got)
	}
}
