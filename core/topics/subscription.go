package topics

// Subscription is one client's subscription to one topic filter. Once passed
// to Trie.Subscribe it is immutable: the trie stores its own copy, hands out
// pointers to that copy from Match, and a later Subscribe with the same key
// publishes a new copy rather than changing the old one. Callers must not
// modify a *Subscription obtained from Match or SharedGroup.Next.
type Subscription struct {
	ClientID          string
	Filter            string // the filter matched against topics (without the $share/{group}/ prefix)
	Group             string // share group, "" when not shared
	QoS               byte   // maximum QoS granted
	NoLocal           bool   // v5: do not deliver the client's own publications
	RetainAsPublished bool   // v5: keep the RETAIN flag when forwarding
	RetainHandling    byte   // v5: 0, 1 or 2, when to send retained messages on subscribe
	Identifier        uint32 // v5 subscription identifier, 0 = none
}

// Matches is the reusable output of Trie.Match. Keep one per goroutine (or
// pool them), call Reset before each Match, and the slices' capacity is
// reused so that matching does not allocate.
type Matches struct {
	// Subs holds every matching non-shared subscription. A client appears
	// once for each of its filters that matches; merging them (highest QoS,
	// all subscription identifiers, [MQTT-3.3.4-2]/[MQTT-3.3.4-3]) is the
	// caller's job.
	Subs []*Subscription
	// Shared holds every matching share group once; the caller picks one
	// member of each with SharedGroup.Next.
	Shared []*SharedGroup
}

// Reset empties m, keeping its capacity. It clears the old entries so that a
// pooled Matches does not keep removed subscriptions reachable.
func (m *Matches) Reset() {
	clear(m.Subs)
	clear(m.Shared)
	m.Subs = m.Subs[:0]
	m.Shared = m.Shared[:0]
}
