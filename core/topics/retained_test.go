package topics

import (
	"fmt"
	"slices"
	"testing"
)

func TestRetainedSetGetDelete(t *testing.T) {
	r := NewRetained[string]()
	steps := []struct {
		op, topic, value string
		want             bool // isNew for set, found for delete and get
		len              int
	}{
		{"get", "a/b", "", false, 0},
		{"set", "a/b", "1", true, 1},
		{"get", "a/b", "1", true, 1},
		{"get", "a", "", false, 1},     // an inner node holds no value
		{"get", "a/b/c", "", false, 1}, // below a value
		{"get", "a/+", "", false, 1},   // Get does not expand wildcards
		{"set", "a/b", "2", false, 1},  // replace
		{"get", "a/b", "2", true, 1},
		{"set", "a", "3", true, 2},
		{"set", "a//b", "4", true, 3},
		{"set", "/", "5", true, 4},
		{"set", "$SYS/x", "6", true, 5},
		{"get", "a//b", "4", true, 5},
		{"get", "/", "5", true, 5},
		{"get", "", "", false, 5},
		{"delete", "a/c", "", false, 5},
		{"delete", "a/b/c", "", false, 5},
		{"delete", "a/b", "", true, 4},
		{"delete", "a/b", "", false, 4},
		{"get", "a/b", "", false, 4},
		{"get", "a", "3", true, 4},
		{"delete", "a", "", true, 3},
		{"get", "a//b", "4", true, 3},
		{"delete", "a//b", "", true, 2},
		{"delete", "/", "", true, 1},
		{"delete", "$SYS/x", "", true, 0},
	}
	for i, st := range steps {
		switch st.op {
		case "set":
			if got := r.Set(st.topic, st.value); got != st.want {
				t.Errorf("step %d: Set(%q) = %v, want %v", i, st.topic, got, st.want)
			}
		case "delete":
			if got := r.Delete(st.topic); got != st.want {
				t.Errorf("step %d: Delete(%q) = %v, want %v", i, st.topic, got, st.want)
			}
		case "get":
			if v, ok := r.Get(st.topic); ok != st.want || v != st.value {
				t.Errorf("step %d: Get(%q) = %q, %v, want %q, %v", i, st.topic, v, ok, st.value, st.want)
			}
		}
		if got := r.Len(); got != st.len {
			t.Errorf("step %d: Len() = %d, want %d", i, got, st.len)
		}
	}
	if n := rnodeCount(&r.root); n != 0 {
		t.Errorf("%d nodes left after deleting everything, want 0", n)
	}
}

// retainedMatch returns the sorted topics r.Match reports for filter.
func retainedMatch(r *Retained[int], filter string) []string {
	var got []string
	r.Match(filter, func(topic string, v int) bool {
		got = append(got, topic)
		return true
	})
	slices.Sort(got)
	return got
}

func TestRetainedMatch(t *testing.T) {
	r := NewRetained[int]()
	topics := tableTopics()
	for i, topic := range topics {
		r.Set(topic, i)
	}
	// Every table filter, checked against the reference over all topics; this
	// includes '+', '#' with its parent, empty levels and [MQTT-4.7.2-1].
	for _, f := range append(tableFilters(), "+/+/+", "$SYS/+", "a/b/c/#", "nothing", "$+") {
		var want []string
		for _, topic := range topics {
			if refMatch(f, topic) {
				want = append(want, topic)
			}
		}
		slices.Sort(want)
		if got := retainedMatch(r, f); !slices.Equal(got, want) {
			t.Errorf("Match(%q) = %q, want %q", f, got, want)
		}
	}
	// Values are passed along with their topics.
	r.Match("sport/tennis/player1/#", func(topic string, v int) bool {
		if topics[v] != topic {
			t.Errorf("Match passed %q with the value of %q", topic, topics[v])
		}
		return true
	})
}

func TestRetainedSysTopics(t *testing.T) {
	r := NewRetained[int]()
	for i, topic := range []string{"$SYS/broker/uptime", "$SYS", "$share/x", "a/$b", "a"} {
		r.Set(topic, i)
	}
	tests := []struct {
		filter string
		want   []string
	}{
		{"#", []string{"a", "a/$b"}},   // [MQTT-4.7.2-1]
		{"+", []string{"a"}},           // [MQTT-4.7.2-1]
		{"+/#", []string{"a", "a/$b"}}, // [MQTT-4.7.2-1]
		{"+/broker/uptime", nil},       // [MQTT-4.7.2-1]
		{"$SYS/#", []string{"$SYS", "$SYS/broker/uptime"}},
		{"$SYS/+/uptime", []string{"$SYS/broker/uptime"}},
		{"a/+", []string{"a/$b"}},
		{"$share/#", []string{"$share/x"}},
	}
	for _, tt := range tests {
		if got := retainedMatch(r, tt.filter); !slices.Equal(got, tt.want) {
			t.Errorf("Match(%q) = %q, want %q", tt.filter, got, tt.want)
		}
	}
}

func TestRetainedStopAndRange(t *testing.T) {
	r := NewRetained[int]()
	for i := range 100 {
		r.Set(fmt.Sprintf("d/%d/t", i), i)
	}
	r.Set("$SYS/n", -1)
	for _, f := range []string{"#", "d/#", "d/+/t", "+/+/+"} {
		calls := 0
		r.Match(f, func(string, int) bool {
			calls++
			return calls < 5
		})
		if calls != 5 {
			t.Errorf("Match(%q) made %d calls after fn returned false at 5", f, calls)
		}
	}
	var all []string
	r.Range(func(topic string, v int) bool {
		all = append(all, topic)
		return true
	})
	if len(all) != 101 || !slices.Contains(all, "$SYS/n") {
		t.Errorf("Range visited %d topics (want 101, '$SYS/n' included)", len(all))
	}
	calls := 0
	r.Range(func(string, int) bool { calls++; return false })
	if calls != 1 {
		t.Errorf("Range made %d calls after fn returned false, want 1", calls)
	}
}

// DeleteFunc removes a value only when the predicate accepts the value
// stored now, so a caller holding an old value cannot delete a newer one.
func TestRetainedDeleteFunc(t *testing.T) {
	tests := []struct {
		name      string
		stored    int
		matchWant int // DeleteFunc deletes only when the stored value equals this
		deleted   bool
	}{
		{"stored value matches", 1, 1, true},
		{"replaced by a newer value", 2, 1, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRetained[int]()
			r.Set("a/b", tc.stored)
			got := r.DeleteFunc("a/b", func(v int) bool { return v == tc.matchWant })
			if got != tc.deleted {
				t.Fatalf("DeleteFunc = %v, want %v", got, tc.deleted)
			}
			_, ok := r.Get("a/b")
			if ok == tc.deleted {
				t.Errorf("after DeleteFunc, Get found = %v, want %v", ok, !tc.deleted)
			}
			want := 1
			if tc.deleted {
				want = 0
			}
			if r.Len() != want {
				t.Errorf("Len = %d, want %d", r.Len(), want)
			}
			if r.DeleteFunc("no/such", nil) {
				t.Error("DeleteFunc of a missing topic reported a deletion")
			}
		})
	}
}

// SetWithin refuses only growth past a bound: a new topic beyond maxLen, or
// more bytes than maxBytes; a replacement counts by the difference in size,
// a no larger replacement always passes, and every writer keeps Bytes.
func TestRetainedSetWithin(t *testing.T) {
	r := NewSizedRetained(func(topic string, v string) int64 { return int64(len(topic) + len(v)) })
	const maxLen, maxBytes = 3, 20
	steps := []struct {
		op, topic, value string
		err              error
		len              int
		bytes            int64
	}{
		{"set", "a", "1234", nil, 1, 5},
		{"set", "b", "1234", nil, 2, 10},
		{"set", "a", "12345678", nil, 2, 14},            // replace: +4 bytes, same count
		{"set", "c", "123456", ErrRetainedBytes, 2, 14}, // 14+7 > 20
		{"set", "c", "12345", nil, 3, 20},               // exactly at the bytes bound
		{"set", "d", "", ErrRetainedCount, 3, 20},       // a fourth topic
		{"set", "a", "123456789", ErrRetainedBytes, 3, 20},
		{"set", "a", "1234567", nil, 3, 19}, // shrinking passes
		{"set", "a", "12345678", nil, 3, 20},
		{"delete", "b", "", nil, 2, 15},
		{"set", "d", "", nil, 3, 16},
		{"restore", "e", "0123456789", nil, 4, 27}, // Set ignores the bounds
		{"set", "f", "", ErrRetainedCount, 4, 27},
		{"set", "a", "1", nil, 4, 20},               // over both, a smaller replacement passes
		{"set", "a", "12", ErrRetainedBytes, 4, 20}, // …a larger one does not
		{"deletefunc", "e", "", nil, 3, 9},
	}
	for i, st := range steps {
		var err error
		switch st.op {
		case "set":
			_, err = r.SetWithin(st.topic, st.value, maxLen, maxBytes)
		case "restore":
			r.Set(st.topic, st.value)
		case "delete":
			r.Delete(st.topic)
		case "deletefunc":
			r.DeleteFunc(st.topic, func(string) bool { return true })
		}
		if err != st.err {
			t.Errorf("step %d: %s %q=%q: error %v, want %v", i, st.op, st.topic, st.value, err, st.err)
		}
		if r.Len() != st.len || r.Bytes() != st.bytes {
			t.Errorf("step %d: %s %q=%q: Len %d, Bytes %d, want %d, %d", i, st.op, st.topic, st.value, r.Len(), r.Bytes(), st.len, st.bytes)
		}
	}
	if v, _ := r.Get("a"); v != "1" {
		t.Errorf("Get(a) = %q after the refused replacement, want the stored %q", v, "1")
	}
	if _, ok := r.Get("f"); ok {
		t.Error("a refused topic was stored")
	}
	if _, err := NewRetained[string]().SetWithin("x", "y", 0, 0); err != nil {
		t.Errorf("SetWithin with no bounds: %v", err)
	}
}

// A refused SetWithin leaves no node behind: Match finds nothing under it
// and a later delete of a sibling prunes the path.
func TestRetainedSetWithinLeavesNoNodes(t *testing.T) {
	r := NewSizedRetained(func(string, int) int64 { return 1 })
	r.Set("a", 1)
	if _, err := r.SetWithin("x/y/z", 2, 1, 0); err != ErrRetainedCount {
		t.Fatalf("SetWithin past the count: %v, want ErrRetainedCount", err)
	}
	if r.root.kids.get("x") != nil {
		t.Error("a refused SetWithin created nodes for its topic")
	}
}
