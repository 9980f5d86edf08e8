package topics

import "testing"

// MatchFilter agrees with the spec table and with the reference matcher on
// every filter × topic pair the table names [MQTT-4.7.1-2][MQTT-4.7.1-3]
// [MQTT-4.7.2-1].
func TestMatchFilter(t *testing.T) {
	for _, c := range matchTable() {
		if got := MatchFilter(c.filter, c.topic); got != c.want {
			t.Errorf("MatchFilter(%q, %q) = %v, want %v", c.filter, c.topic, got, c.want)
		}
	}
	for _, f := range tableFilters() {
		for _, tp := range tableTopics() {
			if got, want := MatchFilter(f, tp), refMatch(f, tp); got != want {
				t.Errorf("MatchFilter(%q, %q) = %v, reference says %v", f, tp, got, want)
			}
		}
	}
}
