package topics

import (
	"slices"
	"sync"
	"testing"
)

// sharedGroup subscribes members to $share/{group}/{filter} and returns the
// group as Match reports it for topic.
func sharedGroup(t *testing.T, tr *Trie, group, filter, topic string, members ...string) *SharedGroup {
	t.Helper()
	for _, m := range members {
		tr.Subscribe(Subscription{ClientID: m, Group: group, Filter: filter})
	}
	var res Matches
	tr.Match(topic, &res)
	for _, g := range res.Shared {
		if g.Name() == group && g.Filter() == filter {
			return g
		}
	}
	t.Fatalf("group %q on %q not matched by %q", group, filter, topic)
	return nil
}

func TestSharedMatch(t *testing.T) {
	tr := NewTrie()
	for _, s := range []Subscription{
		{ClientID: "a", Group: "g", Filter: "s/+"},
		{ClientID: "b", Group: "g", Filter: "s/+"},
		{ClientID: "c", Group: "g", Filter: "s/+"},
		{ClientID: "a", Group: "h", Filter: "s/+"},
		{ClientID: "d", Group: "g", Filter: "s/#"},
		{ClientID: "a", Filter: "s/+"},
		{ClientID: "e", Group: "g", Filter: "$SYS/#"},
		{ClientID: "f", Group: "g", Filter: "#"},
	} {
		tr.Subscribe(s)
	}
	tests := []struct {
		topic string
		want  []string
	}{
		// One entry per (group, filter), however many members it has; the
		// same share name on two filters is two groups.
		{"s/x", []string{"$share/g/#", "$share/g/s/#", "$share/g/s/+", "$share/h/s/+", "a s/+"}},
		{"s", []string{"$share/g/#", "$share/g/s/#"}},
		{"s/x/y", []string{"$share/g/#", "$share/g/s/#"}},
		{"$SYS/uptime", []string{"$share/g/$SYS/#"}}, // [MQTT-4.7.2-1] applies to shared filters too
		{"t", []string{"$share/g/#"}},
	}
	for _, tt := range tests {
		if got := matched(tr, tt.topic); !slices.Equal(got, tt.want) {
			t.Errorf("topic %q: matched %q, want %q", tt.topic, got, tt.want)
		}
	}
	if n := tr.Count(); n != 8 {
		t.Errorf("Count() = %d, want 8 (members counted)", n)
	}
	g := sharedGroup(t, tr, "g", "s/+", "s/x")
	if g.Len() != 3 {
		t.Errorf("Len() = %d, want 3", g.Len())
	}
}

func TestSharedNext(t *testing.T) {
	reject := func(ids ...string) func(*Subscription) bool {
		return func(s *Subscription) bool { return !slices.Contains(ids, s.ClientID) }
	}
	tests := []struct {
		name    string
		members []string
		leave   []string // unsubscribed before picking
		accept  func(*Subscription) bool
		want    []string // successive Next results, "" for nil
	}{
		{"round robin", []string{"a", "b", "c"}, nil, nil, []string{"a", "b", "c", "a", "b", "c", "a"}},
		{"skip one", []string{"a", "b", "c"}, nil, reject("b"), []string{"a", "c", "a", "c"}},
		{"skip two", []string{"a", "b", "c"}, nil, reject("a", "c"), []string{"b", "b", "b"}},
		{"reject all", []string{"a", "b", "c"}, nil, reject("a", "b", "c"), []string{"", ""}},
		{"single member", []string{"a"}, nil, nil, []string{"a", "a"}},
		{"after a member left", []string{"a", "b", "c"}, []string{"b"}, nil, []string{"a", "c", "a", "c"}},
		{"everyone left", []string{"a", "b"}, []string{"a", "b"}, nil, []string{"", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := NewTrie()
			g := sharedGroup(t, tr, "g", "x/+", "x/y", tt.members...)
			for _, m := range tt.leave {
				fatalIf(t, !tr.Unsubscribe(m, "g", "x/+"), "Unsubscribe(%q) = false", m)
			}
			var got []string
			for range tt.want {
				s := g.Next(tt.accept)
				if s == nil {
					got = append(got, "")
					continue
				}
				fatalIf(t, s.Group != "g" || s.Filter != "x/+", "Next returned %+v", s)
				got = append(got, s.ClientID)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Next sequence %q, want %q", got, tt.want)
			}
			if g.Len() != len(tt.members)-len(tt.leave) {
				t.Errorf("Len() = %d, want %d", g.Len(), len(tt.members)-len(tt.leave))
			}
		})
	}
}

// TestSharedNextJoin checks that a member joining mid-rotation gets its turn.
func TestSharedNextJoin(t *testing.T) {
	tr := NewTrie()
	g := sharedGroup(t, tr, "g", "x", "x", "a", "b")
	if s := g.Next(nil); s.ClientID != "a" {
		t.Fatalf("first Next = %q, want a", s.ClientID)
	}
	tr.Subscribe(Subscription{ClientID: "c", Group: "g", Filter: "x"})
	var got []string
	for range 6 {
		got = append(got, g.Next(nil).ClientID)
	}
	if want := []string{"b", "c", "a", "b", "c", "a"}; !slices.Equal(got, want) {
		t.Errorf("Next sequence %q, want %q", got, want)
	}
}

// TestSharedNextConcurrent checks that concurrent Next calls share the work
// out evenly: every member is picked the same number of times.
func TestSharedNextConcurrent(t *testing.T) {
	tr := NewTrie()
	members := []string{"a", "b", "c", "d"}
	g := sharedGroup(t, tr, "g", "x", "x", members...)
	const workers, picks = 8, 1000
	counts := make([]map[string]int, workers)
	var wg sync.WaitGroup
	for w := range workers {
		counts[w] = map[string]int{}
		wg.Go(func() {
			for range picks {
				counts[w][g.Next(nil).ClientID]++
			}
		})
	}
	wg.Wait()
	total := map[string]int{}
	for _, c := range counts {
		for k, v := range c {
			total[k] += v
		}
	}
	for _, m := range members {
		if total[m] != workers*picks/len(members) {
			t.Errorf("member %q picked %d times, want %d (all: %v)", m, total[m], workers*picks/len(members), total)
		}
	}
}
