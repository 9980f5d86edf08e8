package topics

import (
	"slices"
	"strings"
	"testing"
)

// refMatch is a deliberately naive matcher that the trie and the retained
// index are checked against; TestRefMatch checks it against the table.
func refMatch(filter, topic string) bool {
	f := strings.Split(filter, "/")
	tp := strings.Split(topic, "/")
	if IsSysTopic(topic) && (f[0] == "+" || f[0] == "#") {
		return false
	}
	for i, level := range f {
		if level == "#" {
			return true
		}
		if i >= len(tp) || (level != "+" && level != tp[i]) {
			return false
		}
	}
	return len(f) == len(tp)
}

// matchCase is one (filter, topic) pair with the expected outcome.
type matchCase struct {
	filter, topic string
	want          bool
	why           string
}

// matchTable lists the matching cases shared by the trie, retained-index
// and reference-matcher tests.
func matchTable() []matchCase {
	return []matchCase{
		// Ordinary filters.
		{"a", "a", true, ""},
		{"a/b/c", "a/b/c", true, ""},
		{"a/b/c", "a/b", false, "fewer levels"},
		{"a/b", "a/b/c", false, "more levels"},
		{"a/b", "a/c", false, ""},
		{"Sport", "sport", false, "levels are case-sensitive"},
		{"a", "a/", false, "trailing empty level is a level"},
		{"a/", "a/", true, ""},
		{"/a", "/a", true, "leading empty level"},
		{"/a", "a", false, ""},
		{"a//b", "a//b", true, "empty level in the middle"},
		{"a//b", "a/b", false, ""},
		{"a/b", "a//b", false, ""},
		// '+' matches exactly one level [MQTT-4.7.1-3].
		{"sport/tennis/+", "sport/tennis/player1", true, "§4.7.1.3 example"},
		{"sport/tennis/+", "sport/tennis/player2", true, "§4.7.1.3 example"},
		{"sport/tennis/+", "sport/tennis/player1/ranking", false, "§4.7.1.3 example"},
		{"sport/+", "sport", false, "§4.7.1.3 example"},
		{"sport/+", "sport/", true, "§4.7.1.3 example: '+' matches an empty level"},
		{"+", "a", true, ""},
		{"+", "a/b", false, ""},
		{"+/+", "/finance", true, "§4.7.1.3 example"},
		{"/+", "/finance", true, "§4.7.1.3 example"},
		{"+", "/finance", false, "§4.7.1.3 example"},
		{"+/+", "/", true, "two empty levels"},
		{"a/+/c", "a//c", true, "'+' matches an empty middle level"},
		{"a/+/c", "a/b/d", false, ""},
		{"+/b/+", "a/b/c", true, ""},
		// '#' matches the parent and any number of child levels [MQTT-4.7.1-2].
		{"sport/tennis/player1/#", "sport/tennis/player1", true, "§4.7.1.2 example: parent level"},
		{"sport/tennis/player1/#", "sport/tennis/player1/ranking", true, "§4.7.1.2 example"},
		{"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true, "§4.7.1.2 example"},
		{"sport/#", "sport", true, "§4.7.1.2 example: parent level"},
		{"sport/#", "sports", false, ""},
		{"sport/#", "sport/", true, ""},
		{"sport/tennis/#", "sport", false, "only the direct parent"},
		{"#", "a", true, ""},
		{"#", "a/b/c", true, ""},
		{"#", "/", true, ""},
		{"/#", "/a", true, ""},
		{"/#", "a", false, ""},
		{"+/#", "a", true, "'+' then '#' parent"},
		{"a/+/#", "a/b", true, ""},
		{"a/+/#", "a", false, ""},
		// '$' topics and wildcards [MQTT-4.7.2-1].
		{"#", "$SYS/broker/clients", false, "[MQTT-4.7.2-1]"},
		{"#", "$SYS", false, "[MQTT-4.7.2-1]"},
		{"+/monitor/Clients", "$SYS/monitor/Clients", false, "[MQTT-4.7.2-1] §4.7.2 example"},
		{"+", "$SYS", false, "[MQTT-4.7.2-1]"},
		{"+/#", "$SYS/x", false, "[MQTT-4.7.2-1]"},
		{"$SYS/#", "$SYS/monitor/Clients", true, "§4.7.2 example"},
		{"$SYS/#", "$SYS", true, "parent level of a '$' topic"},
		{"$SYS/monitor/+", "$SYS/monitor/Clients", true, "§4.7.2 example"},
		{"$SYS/+/Clients", "$SYS/monitor/Clients", true, ""},
		{"$+/x", "$a/x", false, "'$+' is not a wildcard level (and not a valid filter)"},
		{"a/#", "a/$b", true, "only the first level is special"},
		{"a/+", "a/$b", true, "only the first level is special"},
		{"#", "a$", true, ""},
	}
}

func TestRefMatch(t *testing.T) {
	for _, tt := range matchTable() {
		if got := refMatch(tt.filter, tt.topic); got != tt.want {
			t.Errorf("refMatch(%q, %q) = %v, want %v (%s)", tt.filter, tt.topic, got, tt.want, tt.why)
		}
	}
}

// tableFilters returns the distinct filters of matchTable.
func tableFilters() []string {
	var fs []string
	for _, tt := range matchTable() {
		if !slices.Contains(fs, tt.filter) {
			fs = append(fs, tt.filter)
		}
	}
	return fs
}

// tableTopics returns the distinct topics of matchTable.
func tableTopics() []string {
	var ts []string
	for _, tt := range matchTable() {
		if !slices.Contains(ts, tt.topic) {
			ts = append(ts, tt.topic)
		}
	}
	return ts
}

// matched runs Match and renders the result as sorted strings:
// "client filter" for subscriptions, "$share/group/filter" for groups.
func matched(tr *Trie, topic string) []string {
	var res Matches
	tr.Match(topic, &res)
	out := make([]string, 0, len(res.Subs)+len(res.Shared))
	for _, s := range res.Subs {
		out = append(out, s.ClientID+" "+s.Filter)
	}
	for _, g := range res.Shared {
		out = append(out, SharePrefix+g.Name()+"/"+g.Filter())
	}
	slices.Sort(out)
	return out
}

// nodeCount counts the nodes below the root of a trie.
func nodeCount(n *node) int {
	count := 0
	visit := func(c *node) {
		if c != nil {
			count += 1 + nodeCount(c)
		}
	}
	n.lits.each(func(_ string, c *node) bool { visit(c); return true })
	visit(n.plus.Load())
	visit(n.hash.Load())
	return count
}

// rnodeCount counts the nodes below the root of a retained index.
func rnodeCount[V any](n *rnode[V]) int {
	count := 0
	n.kids.each(func(_ string, c *rnode[V]) bool {
		count += 1 + rnodeCount(c)
		return true
	})
	return count
}

func sub(client, filter string) Subscription {
	return Subscription{ClientID: client, Filter: filter}
}

func fatalIf(tb testing.TB, cond bool, format string, args ...any) {
	tb.Helper()
	if cond {
		tb.Fatalf(format, args...)
	}
}
