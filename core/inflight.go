package core

// inflightTable holds a session's outbound QoS 1/2 messages awaiting
// acknowledgement, by packet identifier: an open-addressing table whose
// slot for identifier id is id modulo its size, probing linearly.
//
// It replaces a Go map, whose cost grew with the window: identifiers go in
// flight in increasing order and leave oldest first, a sliding window that
// fills a map with tombstones until every lookup (and allocIDLocked looks up
// identifiers that are absent) walks long probe chains over a table grown
// far beyond the window. BenchmarkInflightWindow: at 64 messages in flight
// the map's work was ~115 ns per delivered message, at 1024 (a subscriber's
// full window) ~600 ns, against ~30 and ~50 ns here; so a subscriber that
// fell behind its publisher, its window full, cost the broker more for
// every message, which kept it behind.
//
// Here the identifiers of a window sit in consecutive slots, each at its
// home: a lookup mostly reads one slot (64 bytes, one cache line), and a
// removal shifts back only the entries displaced after it (Robin Hood
// order, backward-shift deletion) instead of leaving tombstones, so probe
// chains never outgrow the entries in them. Any identifiers work,
// consecutive or not (a restored session's, say): the table stays at most
// half full. It gives large slot arrays back when it
// empties, so an idle session keeps at most inflightKeepSlots.
type inflightTable struct {
	slots []inflightMsg // len is 0 or a power of two; id 0 marks a free slot
	n     int
}

// Sizes of the table's slot array.
const (
	inflightMinSlots  = 8
	inflightKeepSlots = 64 // an emptied table keeps at most this many slots
)

// len is the number of messages in flight.
func (t *inflightTable) len() int { return t.n }

// home is id's first slot.
func (t *inflightTable) home(id uint16) int { return int(id) & (len(t.slots) - 1) }

// dist is how far the entry in slot i sits from its home.
func (t *inflightTable) dist(i int) int { return (i - t.home(t.slots[i].id)) & (len(t.slots) - 1) }

// find returns the slot holding id, or -1. Entries are kept in Robin Hood
// order (along a chain, none is further from its home than the one before
// it plus one), so the search ends at the first entry nearer its home than
// id would be.
func (t *inflightTable) find(id uint16) int {
	if t.n == 0 || id == 0 {
		return -1
	}
	mask := len(t.slots) - 1
	for i, d := t.home(id), 0; ; i, d = (i+1)&mask, d+1 {
		switch {
		case t.slots[i].id == id:
			return i
		case t.slots[i].id == 0 || t.dist(i) < d:
			return -1
		}
	}
}

// get returns the message in flight with identifier id. The pointer is
// valid until the next put or remove.
func (t *inflightTable) get(id uint16) (*inflightMsg, bool) {
	i := t.find(id)
	if i < 0 {
		return nil, false
	}
	return &t.slots[i], true
}

// has reports whether identifier id is in flight.
func (t *inflightTable) has(id uint16) bool { return t.find(id) >= 0 }

// put adds m, whose identifier (not 0) must not be in flight.
func (t *inflightTable) put(m inflightMsg) {
	if 2*(t.n+1) > len(t.slots) {
		t.resize(max(inflightMinSlots, 2*len(t.slots)))
	}
	t.place(m)
	t.n++
}

// place stores m from its home on, displacing (Robin Hood) the first
// entry nearer its own home than m is and going on with that one.
func (t *inflightTable) place(m inflightMsg) {
	mask := len(t.slots) - 1
	for i, d := t.home(m.id), 0; ; i, d = (i+1)&mask, d+1 {
		if t.slots[i].id == 0 {
			t.slots[i] = m
			return
		}
		if e := t.dist(i); e < d {
			m, t.slots[i] = t.slots[i], m
			d = e
		}
	}
}

// resize moves the entries into a slot array of size slots.
func (t *inflightTable) resize(size int) {
	old := t.slots
	t.slots = make([]inflightMsg, size)
	for i := range old {
		if old[i].id != 0 {
			t.place(old[i])
		}
	}
}

// remove takes identifier id out of flight and returns its message. The
// entries after it that are away from their homes move back one slot
// (backward-shift deletion), so no tombstone is left and the shift stops
// at the first entry at home: in a window of consecutive identifiers, the
// next one.
func (t *inflightTable) remove(id uint16) (inflightMsg, bool) {
	i := t.find(id)
	if i < 0 {
		return inflightMsg{}, false
	}
	m := t.slots[i]
	mask := len(t.slots) - 1
	for j := (i + 1) & mask; t.slots[j].id != 0 && t.dist(j) > 0; i, j = j, (j+1)&mask {
		t.slots[i] = t.slots[j]
	}
	t.slots[i] = inflightMsg{}
	t.n--
	if t.n == 0 && len(t.slots) > inflightKeepSlots {
		t.slots = nil
	}
	return m, true
}

// each calls f with every message in flight, in no particular order; f may
// change the message but not its identifier.
func (t *inflightTable) each(f func(*inflightMsg)) {
	if t.n == 0 {
		return
	}
	for i := range t.slots {
		if t.slots[i].id != 0 {
			f(&t.slots[i])
		}
	}
}

// clear empties the table and releases its memory.
func (t *inflightTable) clear() {
	t.slots = nil
	t.n = 0
}
