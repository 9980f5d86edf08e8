package topics

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// TestTrieConcurrent runs writers that subscribe and unsubscribe churning
// clients (on the same nodes as the permanent ones, and on nodes that keep
// being created and pruned) while readers match. Every Match must report
// each permanent subscription exactly once, and nothing that does not match.
// Run it with -race.
func TestTrieConcurrent(t *testing.T) {
	tr := NewTrie()
	const topic = "a/b/c"
	permanent := []string{"a/b/c", "a/+/c", "a/#", "#", "+/b/+"}
	for _, f := range permanent {
		tr.Subscribe(sub("perm", f))
	}
	tr.Subscribe(Subscription{ClientID: "perm", Group: "g", Filter: "a/b/c"})

	churn := []string{"a/b/c", "a/+/c", "a/b/#", "a/b/c/d", "a/b/c/#", "a/b", "+/+/c", "x/%d/y", "a/%d", "a/b/%d"}
	const writers, readers = 4, 4
	iterations := 20000
	if testing.Short() {
		iterations = 300
	}

	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, readers)
	for r := range readers {
		wg.Go(func() {
			var res Matches
			for n := 0; !stop.Load(); n++ {
				res.Reset()
				tr.Match(topic, &res)
				if err := checkConcurrentMatch(&res, topic, permanent); err != nil {
					errs <- fmt.Errorf("reader %d, match %d: %w", r, n, err)
					return
				}
			}
		})
	}
	var writersWG sync.WaitGroup
	for w := range writers {
		writersWG.Go(func() {
			rnd := rand.New(rand.NewPCG(uint64(w), 99))
			for i := range iterations {
				client := fmt.Sprintf("w%d-%d", w, rnd.IntN(20))
				filter := churn[rnd.IntN(len(churn))]
				if strings.Contains(filter, "%d") {
					filter = fmt.Sprintf(filter, rnd.IntN(50))
				}
				group := ""
				if i%3 == 0 {
					group = "g" // join and leave the permanent member's group
				}
				if rnd.IntN(2) == 0 {
					tr.Subscribe(Subscription{ClientID: client, Group: group, Filter: filter, QoS: byte(i % 3)})
				} else {
					tr.Unsubscribe(client, group, filter)
				}
			}
		})
	}
	writersWG.Wait()
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// Remove everything the writers left behind: the trie must be back to
	// the permanent subscriptions only.
	for w := range writers {
		for c := range 20 {
			for _, f := range churn {
				for _, g := range []string{"", "g"} {
					if strings.Contains(f, "%d") {
						for k := range 50 {
							tr.Unsubscribe(fmt.Sprintf("w%d-%d", w, c), g, fmt.Sprintf(f, k))
						}
					} else {
						tr.Unsubscribe(fmt.Sprintf("w%d-%d", w, c), g, f)
					}
				}
			}
		}
	}
	if n := tr.Count(); n != len(permanent)+1 {
		t.Errorf("Count() = %d, want %d", n, len(permanent)+1)
	}
	fresh := NewTrie()
	for _, f := range permanent {
		fresh.Subscribe(sub("perm", f))
	}
	fresh.Subscribe(Subscription{ClientID: "perm", Group: "g", Filter: "a/b/c"})
	if got, want := nodeCount(&tr.root), nodeCount(&fresh.root); got != want {
		t.Errorf("%d nodes after the churn, want %d", got, want)
	}
}

// checkConcurrentMatch verifies one Match result taken under churn.
func checkConcurrentMatch(res *Matches, topic string, permanent []string) error {
	seen := map[string]int{}
	for _, s := range res.Subs {
		if !refMatch(s.Filter, topic) {
			return fmt.Errorf("matched %q with non-matching filter %q", s.ClientID, s.Filter)
		}
		if s.Group != "" {
			return fmt.Errorf("shared subscription %+v in Subs", s)
		}
		key := s.ClientID + " " + s.Filter
		if seen[key]++; seen[key] > 1 {
			return fmt.Errorf("%s matched twice", key)
		}
	}
	for _, f := range permanent {
		if seen["perm "+f] != 1 {
			return fmt.Errorf("permanent subscription to %q missing", f)
		}
	}
	groups := 0
	for _, g := range res.Shared {
		if !refMatch(g.Filter(), topic) {
			return fmt.Errorf("matched group with non-matching filter %q", g.Filter())
		}
		if g.Name() == "g" && g.Filter() == "a/b/c" {
			groups++
			perm := g.Next(func(s *Subscription) bool { return s.ClientID == "perm" })
			if perm == nil || g.Len() < 1 {
				return fmt.Errorf("permanent member missing from group g (Len %d)", g.Len())
			}
		}
	}
	if groups != 1 {
		return fmt.Errorf("group g on a/b/c matched %d times, want 1", groups)
	}
	return nil
}

// TestRetainedConcurrent sets and deletes retained topics while readers
// match, get and range; permanent topics must always be found.
func TestRetainedConcurrent(t *testing.T) {
	r := NewRetained[int]()
	permanent := []string{"a/b/c", "a/b", "$SYS/x"}
	for i, p := range permanent {
		r.Set(p, i)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for range 3 {
		wg.Go(func() {
			for !stop.Load() {
				found := 0
				r.Match("a/#", func(topic string, v int) bool {
					if topic == "a/b/c" || topic == "a/b" {
						found++
					}
					return true
				})
				if found != 2 {
					errs <- fmt.Errorf("Match(a/#) found %d permanent topics, want 2", found)
					return
				}
				if v, ok := r.Get("$SYS/x"); !ok || v != 2 {
					errs <- fmt.Errorf("Get($SYS/x) = %v, %v", v, ok)
					return
				}
			}
		})
	}
	rnd := rand.New(rand.NewPCG(5, 6))
	for i := range 5000 {
		topic := fmt.Sprintf("a/b/%d/%d", rnd.IntN(30), rnd.IntN(3))
		if rnd.IntN(2) == 0 {
			r.Set(topic, i)
		} else {
			r.Delete(topic)
		}
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	r.Match("a/b/+/+", func(topic string, _ int) bool {
		r.Delete(topic) // callbacks may write
		return true
	})
	if r.Len() != len(permanent) {
		t.Errorf("Len() = %d, want %d", r.Len(), len(permanent))
	}
	if n := rnodeCount(&r.root); n != 5 { // a, a/b, a/b/c, $SYS, $SYS/x
		t.Errorf("%d retained nodes left, want 5", n)
	}
}

// TestRetainedSetWithinConcurrent has writers set, replace and delete
// values of varying sizes on shared topics through SetWithin: the bounds
// hold throughout, and Len and Bytes end equal to what Range counts.
func TestRetainedSetWithinConcurrent(t *testing.T) {
	size := func(topic string, v int) int64 { return int64(len(topic) + v) }
	r := NewSizedRetained(size)
	const maxLen, maxBytes = 20, 400
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 4 {
		wg.Go(func() {
			rnd := rand.New(rand.NewPCG(uint64(w), 7))
			for range 5000 {
				topic := fmt.Sprintf("t/%d", rnd.IntN(40))
				if rnd.IntN(3) == 0 {
					r.Delete(topic)
					continue
				}
				if _, err := r.SetWithin(topic, rnd.IntN(40), maxLen, maxBytes); err != nil && err != ErrRetainedCount && err != ErrRetainedBytes {
					errs <- err
					return
				}
				if n, b := r.Len(), r.Bytes(); n > maxLen || b > maxBytes {
					errs <- fmt.Errorf("Len %d, Bytes %d: over the bounds %d, %d", n, b, maxLen, maxBytes)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var n int
	var bytes int64
	r.Range(func(topic string, v int) bool {
		n++
		bytes += size(topic, v)
		return true
	})
	if r.Len() != n || r.Bytes() != bytes {
		t.Errorf("Len %d, Bytes %d; Range counts %d values of %d bytes", r.Len(), r.Bytes(), n, bytes)
	}
}
