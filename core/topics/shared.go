package topics

import "sync/atomic"

// SharedGroup is the member set of one shared subscription: one share name
// together with one topic filter ("$share/{name}/{filter}"). Match reports a
// group once per matching publication and the caller delivers to one member
// chosen with Next [MQTT-4.8.2].
//
// A group stays valid after its last member leaves (Len is then 0 and Next
// returns nil); a later subscription to the same share creates a new group.
type SharedGroup struct {
	name    string
	filter  string
	members set[Subscription] // keyed by client ID
	cursor  atomic.Uint32     // slot at which the next search starts
}

// Name returns the share name.
func (g *SharedGroup) Name() string { return g.name }

// Filter returns the topic filter, without the $share/{name}/ prefix.
func (g *SharedGroup) Filter() string { return g.filter }

// Len returns the number of members.
func (g *SharedGroup) Len() int { return g.members.len() }

// Next picks a member round-robin: it considers the members in turn, starting
// after the one it last chose, and returns the first for which accept returns
// true (a nil accept accepts every member). It returns nil when no member is
// accepted.
//
// Next is safe for concurrent use: concurrent callers are handed successive
// members. When two calls race, the loser searches again from the winner's
// choice, so accept may be called more than once for the same member within
// one Next and must not have side effects. Next does not allocate.
func (g *SharedGroup) Next(accept func(*Subscription) bool) *Subscription {
	for {
		p := g.members.slots.Load()
		if p == nil {
			return nil
		}
		slots := *p
		n := uint32(len(slots))
		start := g.cursor.Load()
		chosen := -1
		var sub *Subscription
		for k := range n {
			i := (start + k) % n
			s := slots[i].Load()
			if s != nil && (accept == nil || accept(s)) {
				chosen, sub = int(i), s
				break
			}
		}
		if chosen < 0 {
			return nil
		}
		if g.cursor.CompareAndSwap(start, uint32(chosen)+1) {
			return sub
		}
	}
}
