package topics

// MatchFilter reports whether topic name matches filter, by the same rules
// as the trie: '+' matches one level, '#' the parent level and any below,
// and topics starting with '$' are not matched by a filter starting with a
// wildcard [MQTT-4.7.2-1]. It is for checking a few filters without a trie
// (hooks' topic filters); filter should be valid.
func MatchFilter(filter, topic string) bool {
	if topic != "" && topic[0] == '$' && filter != "" && (filter[0] == '+' || filter[0] == '#') {
		return false
	}
	fi, ti := 0, 0
	for {
		fe := levelEnd(filter, fi)
		level := filter[fi:fe]
		if level == "#" {
			return true
		}
		te := levelEnd(topic, ti)
		if level != "+" && level != topic[ti:te] {
			return false
		}
		filterDone := fe == len(filter)
		topicDone := te == len(topic)
		switch {
		case filterDone && topicDone:
			return true
		case topicDone:
			// "a/#" matches "a": the rest of the filter must be "/#".
			return filter[fe:] == "/#"
		case filterDone:
			return false
		}
		fi, ti = fe+1, te+1
	}
}
