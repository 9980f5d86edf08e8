package topics

import (
	"slices"
	"testing"
)

// FuzzMatch checks, for an arbitrary filter and topic name, that the
// trie, the retained index and MatchFilter agree with the naive
// reference matcher: '+' one level, '#' the parent and below
// [MQTT-4.7.1-2]/[MQTT-4.7.1-3], and no wildcard first level matching a
// '$' topic [MQTT-4.7.2-1]. The filter and topic are checked among the
// table's, so that shared trie nodes are exercised too; invalid ones must
// be refused by validation, never matched or panicked on.
//
//	go test -run '^$' -fuzz '^FuzzMatch$' -fuzztime 60s ./core/topics/
func FuzzMatch(f *testing.F) {
	for _, tt := range matchTable() {
		f.Add(tt.filter, tt.topic)
	}
	f.Add("$share/g/a/+", "a/b")
	f.Add("a/\u0000", "a/\u0000")
	f.Add("+/#", "$SYS/x")
	filters, topicNames := tableFilters(), tableTopics()
	f.Fuzz(func(t *testing.T, filter, topic string) {
		_, inner, shared, err := ParseShared(filter)
		if err != nil || shared {
			return // shared filters are matched by their inner filter
		}
		if ValidateFilter(inner) != nil || ValidateTopicName(topic) != nil {
			return
		}
		want := refMatch(inner, topic)
		if got := MatchFilter(inner, topic); got != want {
			t.Fatalf("MatchFilter(%q, %q) = %v, want %v", inner, topic, got, want)
		}

		tr := NewTrie()
		var wantSubs []string
		for _, f := range filters {
			tr.Subscribe(sub("table", f))
			if refMatch(f, topic) {
				wantSubs = append(wantSubs, "table "+f)
			}
		}
		tr.Subscribe(sub("fuzz", inner))
		if want {
			wantSubs = append(wantSubs, "fuzz "+inner)
		}
		slices.Sort(wantSubs)
		if got := matched(tr, topic); !slices.Equal(got, wantSubs) {
			t.Fatalf("trie Match(%q) with %q subscribed = %q, want %q", topic, inner, got, wantSubs)
		}
		if !tr.Unsubscribe("fuzz", "", inner) {
			t.Fatalf("Unsubscribe(%q) found nothing", inner)
		}

		r := NewRetained[int]()
		for i, tp := range topicNames {
			r.Set(tp, i)
		}
		r.Set(topic, -1)
		var wantTopics []string
		for _, tp := range append(slices.Clone(topicNames), topic) {
			if refMatch(inner, tp) {
				wantTopics = append(wantTopics, tp)
			}
		}
		slices.Sort(wantTopics)
		wantTopics = slices.Compact(wantTopics)
		if got := retainedMatch(r, inner); !slices.Equal(got, wantTopics) {
			t.Fatalf("retained Match(%q) with %q set = %q, want %q", inner, topic, got, wantTopics)
		}
		if v, ok := r.Get(topic); !ok || v != -1 {
			t.Fatalf("retained Get(%q) = %d, %v after Set", topic, v, ok)
		}
	})
}
