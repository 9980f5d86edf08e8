package topics

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestTrieMatchTable(t *testing.T) {
	for _, tt := range matchTable() {
		tr := NewTrie()
		tr.Subscribe(sub("c", tt.filter))
		got := matched(tr, tt.topic)
		var want []string
		if tt.want {
			want = []string{"c " + tt.filter}
		}
		if !slices.Equal(got, want) {
			t.Errorf("filter %q, topic %q: matched %q, want %q (%s)", tt.filter, tt.topic, got, want, tt.why)
		}
	}
}

// TestTrieMatchAllFilters puts every filter of the table in one trie and
// checks every topic against the reference matcher, so that filters sharing
// nodes cannot hide or duplicate one another.
func TestTrieMatchAllFilters(t *testing.T) {
	tr := NewTrie()
	filters := tableFilters()
	for i, f := range filters {
		tr.Subscribe(sub(fmt.Sprintf("c%d", i), f))
	}
	topics := append(tableTopics(), "a/b/c/d", "$", "$SYS/", "/a/", "//", "x")
	for _, topic := range topics {
		var want []string
		for i, f := range filters {
			if refMatch(f, topic) {
				want = append(want, fmt.Sprintf("c%d %s", i, f))
			}
		}
		slices.Sort(want)
		if got := matched(tr, topic); !slices.Equal(got, want) {
			t.Errorf("topic %q: matched %q, want %q", topic, got, want)
		}
	}
}

// TestTrieMatchRandom checks random filters against random topics over a
// small alphabet of levels, where collisions are frequent.
func TestTrieMatchRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "b", "", "$s"}
	randTopic := func() string {
		n := 1 + r.IntN(4)
		levels := make([]string, n)
		for i := range levels {
			levels[i] = alphabet[r.IntN(len(alphabet))]
		}
		return join(levels)
	}
	randFilter := func() string {
		n := 1 + r.IntN(4)
		levels := make([]string, n)
		for i := range levels {
			switch x := r.IntN(6); {
			case x == 0:
				levels[i] = "+"
			case x == 1 && i == n-1:
				levels[i] = "#"
			default:
				levels[i] = alphabet[r.IntN(len(alphabet))]
			}
		}
		return join(levels)
	}
	tr := NewTrie()
	var filters []string
	for len(filters) < 300 {
		f := randFilter()
		if !slices.Contains(filters, f) {
			filters = append(filters, f)
			tr.Subscribe(sub(f, f)) // client named after its filter
		}
	}
	for range 2000 {
		topic := randTopic()
		var want []string
		for _, f := range filters {
			if refMatch(f, topic) {
				want = append(want, f+" "+f)
			}
		}
		slices.Sort(want)
		if got := matched(tr, topic); !slices.Equal(got, want) {
			t.Fatalf("topic %q: matched %q, want %q", topic, got, want)
		}
	}
}

func join(levels []string) string {
	s := levels[0]
	for _, l := range levels[1:] {
		s += "/" + l
	}
	return s
}

func TestTrieOverlappingFiltersOfOneClient(t *testing.T) {
	tr := NewTrie()
	for _, f := range []string{"a/+", "a/#", "a/b", "#", "+/c"} {
		tr.Subscribe(Subscription{ClientID: "c", Filter: f, QoS: 1})
	}
	tr.Subscribe(sub("d", "a/b"))
	got := matched(tr, "a/b")
	want := []string{"c #", "c a/#", "c a/+", "c a/b", "d a/b"}
	if !slices.Equal(got, want) {
		t.Errorf("matched %q, want %q", got, want)
	}
	if n := tr.Count(); n != 6 {
		t.Errorf("Count() = %d, want 6", n)
	}
}

func TestTrieSubscribeReplaces(t *testing.T) {
	tr := NewTrie()
	steps := []struct {
		s        Subscription
		replaced bool
		count    int
	}{
		{Subscription{ClientID: "c", Filter: "a/b", QoS: 0}, false, 1},
		{Subscription{ClientID: "c", Filter: "a/b", QoS: 2, Identifier: 7}, true, 1},
		{Subscription{ClientID: "c", Filter: "a/+", QoS: 1}, false, 2},
		{Subscription{ClientID: "d", Filter: "a/b"}, false, 3},
		{Subscription{ClientID: "c", Filter: "a/b", Group: "g"}, false, 4},
		{Subscription{ClientID: "c", Filter: "a/b", Group: "g", QoS: 1}, true, 4},
		{Subscription{ClientID: "c", Filter: "a/b", Group: "h"}, false, 5},
	}
	for i, st := range steps {
		if got := tr.Subscribe(st.s); got != st.replaced {
			t.Errorf("step %d: Subscribe(%+v) = %v, want %v", i, st.s, got, st.replaced)
		}
		if got := tr.Count(); got != st.count {
			t.Errorf("step %d: Count() = %d, want %d", i, got, st.count)
		}
	}
	var res Matches
	tr.Match("a/b", &res)
	var c *Subscription
	for _, s := range res.Subs {
		if s.ClientID == "c" && s.Filter == "a/b" {
			fatalIf(t, c != nil, "client c matched twice on a/b")
			c = s
		}
	}
	if c == nil || c.QoS != 2 || c.Identifier != 7 {
		t.Errorf("replaced subscription = %+v, want QoS 2, identifier 7", c)
	}
	if len(res.Shared) != 2 {
		t.Fatalf("matched %d groups, want 2", len(res.Shared))
	}
	for _, g := range res.Shared {
		if g.Name() == "g" && (g.Len() != 1 || g.Next(nil).QoS != 1) {
			t.Errorf("group g: Len %d, want one member with QoS 1", g.Len())
		}
	}
}

func TestTrieSubscribeCopies(t *testing.T) {
	tr := NewTrie()
	s := Subscription{ClientID: "c", Filter: "a", QoS: 1}
	tr.Subscribe(s)
	s.QoS = 2 // must not reach the stored copy
	var res Matches
	tr.Match("a", &res)
	if len(res.Subs) != 1 || res.Subs[0].QoS != 1 {
		t.Errorf("stored subscription changed with the caller's value: %+v", res.Subs)
	}
}

func TestTrieUnsubscribe(t *testing.T) {
	tr := NewTrie()
	for _, s := range []Subscription{
		sub("c", "a/b"),
		sub("c", "a/+"),
		sub("d", "a/b"),
		{ClientID: "c", Filter: "a/b", Group: "g"},
		{ClientID: "e", Filter: "a/b", Group: "g"},
		sub("c", "x/#"),
	} {
		tr.Subscribe(s)
	}
	steps := []struct {
		client, group, filter string
		want                  bool
		count                 int
		matchAB               []string
	}{
		{"c", "", "a/c", false, 6, nil},
		{"c", "", "a", false, 6, nil},
		{"c", "", "a/b/c", false, 6, nil},
		{"zz", "", "a/b", false, 6, nil},
		{"c", "h", "a/b", false, 6, nil},
		{"d", "g", "a/b", false, 6, nil},
		{"c", "", "a/b", true, 5, []string{"$share/g/a/b", "c a/+", "d a/b"}},
		{"c", "", "a/b", false, 5, nil},
		{"c", "g", "a/b", true, 4, []string{"$share/g/a/b", "c a/+", "d a/b"}},
		{"e", "g", "a/b", true, 3, []string{"c a/+", "d a/b"}},
		{"c", "", "a/+", true, 2, []string{"d a/b"}},
		{"d", "", "a/b", true, 1, []string{}},
		{"c", "", "x/#", true, 0, []string{}},
	}
	for i, st := range steps {
		if got := tr.Unsubscribe(st.client, st.group, st.filter); got != st.want {
			t.Errorf("step %d: Unsubscribe(%q, %q, %q) = %v, want %v", i, st.client, st.group, st.filter, got, st.want)
		}
		if got := tr.Count(); got != st.count {
			t.Errorf("step %d: Count() = %d, want %d", i, got, st.count)
		}
		if st.matchAB != nil {
			if got := matched(tr, "a/b"); !slices.Equal(got, st.matchAB) {
				t.Errorf("step %d: matched %q, want %q", i, got, st.matchAB)
			}
		}
	}
	if n := nodeCount(&tr.root); n != 0 || !tr.root.empty() {
		t.Errorf("%d nodes left after unsubscribing everything, want 0", n)
	}
}

// TestTriePruneChurn subscribes and unsubscribes many distinct filters and
// checks that the trie returns to its original shape.
func TestTriePruneChurn(t *testing.T) {
	tr := NewTrie()
	tr.Subscribe(sub("perm", "devices/1/temp"))
	tr.Subscribe(Subscription{ClientID: "perm", Filter: "devices/+/temp", Group: "g"})
	baseline := nodeCount(&tr.root)

	r := rand.New(rand.NewPCG(3, 4))
	shapes := []string{"devices/%d/temp", "devices/%d/+", "devices/1/%d/#", "+/%d", "%d", "devices/1/temp/%d"}
	type key struct{ client, group, filter string }
	var live []key
	for i := range 20000 {
		if len(live) > 0 && r.IntN(2) == 0 {
			j := r.IntN(len(live))
			k := live[j]
			live = slices.Delete(live, j, j+1)
			fatalIf(t, !tr.Unsubscribe(k.client, k.group, k.filter), "Unsubscribe(%v) = false", k)
			continue
		}
		k := key{client: fmt.Sprintf("c%d", i), filter: fmt.Sprintf(shapes[r.IntN(len(shapes))], r.IntN(500))}
		if r.IntN(4) == 0 {
			k.group = fmt.Sprintf("g%d", r.IntN(3))
		}
		tr.Subscribe(Subscription{ClientID: k.client, Group: k.group, Filter: k.filter})
		live = append(live, k)
	}
	if nodeCount(&tr.root) <= baseline {
		t.Fatal("churn did not grow the trie; the test is not exercising pruning")
	}
	for _, k := range live {
		fatalIf(t, !tr.Unsubscribe(k.client, k.group, k.filter), "Unsubscribe(%v) = false", k)
	}
	if n := nodeCount(&tr.root); n != baseline {
		t.Errorf("%d nodes after churn, want %d", n, baseline)
	}
	if n := tr.Count(); n != 2 {
		t.Errorf("Count() = %d after churn, want 2", n)
	}
	want := []string{"$share/g/devices/+/temp", "perm devices/1/temp"}
	if got := matched(tr, "devices/1/temp"); !slices.Equal(got, want) {
		t.Errorf("matched %q, want %q", got, want)
	}
}

func TestMatchesReset(t *testing.T) {
	tr := NewTrie()
	tr.Subscribe(sub("c", "a"))
	tr.Subscribe(Subscription{ClientID: "c", Filter: "a", Group: "g"})
	var res Matches
	tr.Match("a", &res)
	tr.Match("a", &res)
	if len(res.Subs) != 2 || len(res.Shared) != 2 {
		t.Fatalf("Match does not append: %d subs, %d groups", len(res.Subs), len(res.Shared))
	}
	subs, shared := res.Subs, res.Shared
	res.Reset()
	if len(res.Subs) != 0 || len(res.Shared) != 0 || cap(res.Subs) != cap(subs) || cap(res.Shared) != cap(shared) {
		t.Errorf("Reset: len %d/%d cap %d/%d", len(res.Subs), len(res.Shared), cap(res.Subs), cap(res.Shared))
	}
	if subs[0] != nil || shared[0] != nil {
		t.Error("Reset keeps pointers to old matches reachable")
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	tr := NewTrie()
	for i := range 1000 {
		tr.Subscribe(sub(fmt.Sprintf("c%d", i), fmt.Sprintf("devices/%d/temp", i)))
	}
	for _, f := range []string{"devices/+/temp", "devices/#", "#", "devices/7/+", "+/+/+"} {
		tr.Subscribe(sub("w", f))
	}
	tr.Subscribe(Subscription{ClientID: "s", Filter: "devices/+/temp", Group: "g"})
	var res Matches
	tr.Match("devices/7/temp", &res) // grow res once
	if len(res.Subs) != 6 || len(res.Shared) != 1 {
		t.Fatalf("matched %d subs and %d groups, want 6 and 1", len(res.Subs), len(res.Shared))
	}
	allocs := testing.AllocsPerRun(1000, func() {
		res.Reset()
		tr.Match("devices/7/temp", &res)
		tr.Match("$SYS/x", &res)
		tr.Match("nothing/here/at/all", &res)
		res.Shared[0].Next(nil)
	})
	if allocs != 0 {
		t.Errorf("Match allocates %v times per run, want 0", allocs)
	}
}

// TestSetCompacts checks the slot array bookkeeping: growth, compaction, the
// key index, and reuse of freed slots.
func TestSetCompacts(t *testing.T) {
	var s set[Subscription]
	check := func(step string, want []string) {
		t.Helper()
		var got []string
		for _, v := range s.appendTo(nil) {
			got = append(got, v.ClientID)
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) || s.len() != len(want) {
			t.Fatalf("%s: entries %q (len %d), want %q", step, got, s.len(), want)
		}
		for _, k := range want {
			if v := s.get(k); v == nil || v.ClientID != k {
				t.Fatalf("%s: get(%q) = %v", step, k, v)
			}
		}
	}
	var keys []string
	for i := range 100 {
		k := fmt.Sprintf("k%d", i)
		keys = append(keys, k)
		fatalIf(t, s.put(k, &Subscription{ClientID: k}), "put(%q) reported a replacement", k)
	}
	check("after 100 puts", keys)
	fatalIf(t, len(s.keys) != 128 || s.index == nil, "after 100 puts: %d slots, index %v; want 128 slots and an index", len(s.keys), s.index != nil)
	fatalIf(t, !s.put("k5", &Subscription{ClientID: "k5"}), "put of an existing key did not report a replacement")

	for _, k := range keys[:95] {
		fatalIf(t, s.remove(k) == nil, "remove(%q) = nil", k)
	}
	fatalIf(t, s.remove("k0") != nil, "second remove of k0 found it")
	check("after 95 removes", keys[95:])
	if len(s.keys) > 16 {
		t.Errorf("%d slots for 5 entries: the set did not compact", len(s.keys))
	}
	for _, k := range keys[:10] {
		s.put(k, &Subscription{ClientID: k})
	}
	check("after re-adding 10", append(slices.Clone(keys[95:]), keys[:10]...))
	for _, k := range append(keys[95:], keys[:10]...) {
		s.remove(k)
	}
	fatalIf(t, s.slots.Load() != nil || s.len() != 0 || s.keys != nil, "empty set keeps its slots")
}

// TestSetKeyKeepsSlot checks that a removed and re-added key takes back its
// own slot rather than a slot a concurrent reader may not have reached yet,
// which would let that reader see the key twice.
func TestSetKeyKeepsSlot(t *testing.T) {
	var s set[Subscription]
	for _, k := range []string{"a", "b", "c"} { // 3 of 4 slots used
		s.put(k, &Subscription{ClientID: k})
	}
	slotOf := func(k string) int {
		for i := range s.load() {
			if v := s.load()[i].Load(); v != nil && v.ClientID == k {
				return i
			}
		}
		return -1
	}
	before := s.slots.Load()
	a, c := slotOf("a"), slotOf("c")
	s.remove("a")
	s.remove("c")
	s.put("a", &Subscription{ClientID: "a"})
	fatalIf(t, s.slots.Load() != before, "slot array was rebuilt; the test needs it unchanged")
	if got := slotOf("a"); got != a {
		t.Errorf("re-added key in slot %d, want its old slot %d", got, a)
	}
	s.put("e", &Subscription{ClientID: "e"})
	fatalIf(t, s.slots.Load() != before, "slot array was rebuilt; the test needs it unchanged")
	if got := slotOf("e"); got == c || got == -1 || s.len() != 3 {
		t.Errorf("new key e took slot %d (c's tombstone is %d), len %d", got, c, s.len())
	}
}
