package core

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// checkInflight compares t with want, the identifiers it should hold, and
// checks the table's invariants: at most half full, every entry reachable
// from its home without crossing a free slot, in Robin Hood order.
func checkInflight(tb testing.TB, t *inflightTable, want map[uint16]bool) {
	tb.Helper()
	if t.len() != len(want) {
		tb.Fatalf("len = %d, want %d", t.len(), len(want))
	}
	if t.n > 0 && 2*t.n > len(t.slots) {
		tb.Fatalf("%d entries in %d slots: more than half full", t.n, len(t.slots))
	}
	var got []uint16
	t.each(func(m *inflightMsg) { got = append(got, m.id) })
	if len(got) != len(want) {
		tb.Fatalf("each visited %d entries, want %d", len(got), len(want))
	}
	for _, id := range got {
		if !want[id] {
			tb.Fatalf("each visited %d, which is not in flight", id)
		}
		m, ok := t.get(id)
		if !ok || m.id != id {
			tb.Fatalf("get(%d) = %v, %v", id, m, ok)
		}
		if m.seq != uint64(id) {
			tb.Fatalf("get(%d).seq = %d: entry moved without its message", id, m.seq)
		}
	}
	mask := len(t.slots) - 1
	for i := range t.slots {
		id := t.slots[i].id
		if id == 0 {
			continue
		}
		for j := t.home(id); j != i; j = (j + 1) & mask {
			if t.slots[j].id == 0 {
				tb.Fatalf("identifier %d in slot %d is cut off from its home %d by free slot %d", id, i, t.home(id), j)
			}
		}
		if next := (i + 1) & mask; t.slots[next].id != 0 && t.dist(next) > t.dist(i)+1 {
			tb.Fatalf("slot %d is %d from its home after slot %d at %d: not in Robin Hood order", next, t.dist(next), i, t.dist(i))
		}
	}
}

// TestInflightTable runs sequences of puts and removes against a map of
// the identifiers that should be in flight: windows sliding over the
// identifier space and wrapping at 65535 as allocIDLocked hands them out,
// acknowledgements out of order, identifiers that share a home slot, and
// random ones, as a restored session may bring.
func TestInflightTable(t *testing.T) {
	type step struct {
		put    []uint16
		remove []uint16
	}
	seq := func(from, n int) []uint16 {
		var ids []uint16
		for i := range n {
			ids = append(ids, uint16((from+i-1)%65535+1))
		}
		return ids
	}
	strided := func(from, stride, n int) []uint16 {
		var ids []uint16
		for i := range n {
			ids = append(ids, uint16(from+i*stride))
		}
		return ids
	}
	reversed := func(ids []uint16) []uint16 {
		ids = slices.Clone(ids)
		slices.Reverse(ids)
		return ids
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"empty", nil},
		{"one", []step{{put: []uint16{1}}, {remove: []uint16{1}}}},
		{"remove absent", []step{{put: []uint16{5}}, {remove: []uint16{6}}}},
		{"grow", []step{{put: seq(1, 1000)}, {remove: seq(1, 1000)}}},
		{"remove newest first", []step{{put: seq(1, 300)}, {remove: reversed(seq(1, 300))}}},
		{"window wrapping at 65535", []step{
			{put: seq(65400, 200)}, {remove: seq(65400, 100)}, {put: seq(65600, 100)}, {remove: seq(65500, 200)},
		}},
		{"same home slot", []step{
			{put: strided(3, 64, 20)}, {remove: strided(3+64*5, 64, 5)}, {put: strided(2, 64, 20)}, {remove: strided(3, 64, 20)},
		}},
		{"chain across the end", []step{
			{put: []uint16{7, 15, 23, 31}}, {remove: []uint16{7}}, {put: []uint16{8, 6}}, {remove: []uint16{15, 31, 8}},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var tab inflightTable
			want := map[uint16]bool{}
			for _, st := range tc.steps {
				for _, id := range st.put {
					if want[id] {
						continue
					}
					tab.put(inflightMsg{id: id, delivery: delivery{seq: uint64(id)}})
					want[id] = true
				}
				for _, id := range st.remove {
					m, ok := tab.remove(id)
					if ok != want[id] || (ok && (m.id != id || m.seq != uint64(id))) {
						t.Fatalf("remove(%d) = %d (seq %d), %v; want ok %v", id, m.id, m.seq, ok, want[id])
					}
					delete(want, id)
				}
				checkInflight(t, &tab, want)
			}
			if tab.has(0) {
				t.Fatal("has(0): identifier 0 is never in flight")
			}
		})
	}
}

// TestInflightTableRandom runs a seeded random mix of puts and removes of
// identifiers from a small and from the whole range, checking the table
// against a map after every operation.
func TestInflightTableRandom(t *testing.T) {
	for _, span := range []int{40, 65535} {
		t.Run(fmt.Sprint(span), func(t *testing.T) {
			r := rand.New(rand.NewPCG(16, uint64(span)))
			var tab inflightTable
			want := map[uint16]bool{}
			for range 20000 {
				id := uint16(r.IntN(span) + 1)
				if want[id] || (len(want) > 0 && r.IntN(2) == 0) {
					if !want[id] {
						for k := range want {
							id = k
							break
						}
					}
					if m, ok := tab.remove(id); !ok || m.id != id {
						t.Fatalf("remove(%d) = %d, %v", id, m.id, ok)
					}
					delete(want, id)
				} else {
					tab.put(inflightMsg{id: id, delivery: delivery{seq: uint64(id)}})
					want[id] = true
				}
				checkInflight(t, &tab, want)
			}
		})
	}
}

// TestInflightTableMemory checks that a table gives a large slot array back
// when it empties, keeps a small one, and that clear empties it.
func TestInflightTableMemory(t *testing.T) {
	var tab inflightTable
	for id := uint16(1); id <= 1000; id++ {
		tab.put(inflightMsg{id: id})
	}
	for id := uint16(1); id <= 1000; id++ {
		tab.remove(id)
	}
	if tab.slots != nil {
		t.Fatalf("emptied table kept %d slots", len(tab.slots))
	}
	for id := uint16(1); id <= 10; id++ {
		tab.put(inflightMsg{id: id})
	}
	for id := uint16(1); id <= 10; id++ {
		tab.remove(id)
	}
	if len(tab.slots) == 0 || len(tab.slots) > inflightKeepSlots {
		t.Fatalf("emptied small table has %d slots, want 1 to %d", len(tab.slots), inflightKeepSlots)
	}
	tab.put(inflightMsg{id: 9})
	tab.clear()
	if tab.len() != 0 || tab.slots != nil || tab.has(9) {
		t.Fatalf("after clear: len %d, %d slots, has(9) %v", tab.len(), len(tab.slots), tab.has(9))
	}
}

// BenchmarkInflightWindow is a subscriber's window as pumpLocked and
// handleAck drive it, per delivered message: find a free identifier, put
// the message in flight, and take it out when its acknowledgement comes, 16
// at a time, for 100 sessions. The map variant is what sessions used before
// inflightTable, for comparison.
func BenchmarkInflightWindow(b *testing.B) {
	const sessions, acks = 100, 16
	for _, window := range []int{64, 1024} {
		b.Run(fmt.Sprintf("table/%d", window), func(b *testing.B) {
			type sess struct {
				tab    inflightTable
				nextID uint16
				order  queue[uint16]
			}
			ss := make([]sess, sessions)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				s := &ss[i%sessions]
				for s.tab.len() < window {
					for s.nextID++; s.nextID == 0 || s.tab.has(s.nextID); s.nextID++ {
					}
					s.tab.put(inflightMsg{id: s.nextID})
					s.order.push(s.nextID)
				}
				for range acks {
					s.tab.remove(s.order.pop())
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*acks), "ns/msg")
		})
		b.Run(fmt.Sprintf("map/%d", window), func(b *testing.B) {
			type sess struct {
				m      map[uint16]inflightMsg
				nextID uint16
				order  queue[uint16]
			}
			ss := make([]sess, sessions)
			for i := range ss {
				ss[i].m = map[uint16]inflightMsg{}
			}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				s := &ss[i%sessions]
				for len(s.m) < window {
					for {
						s.nextID++
						if _, used := s.m[s.nextID]; s.nextID != 0 && !used {
							break
						}
					}
					s.m[s.nextID] = inflightMsg{id: s.nextID}
					s.order.push(s.nextID)
				}
				for range acks {
					id := s.order.pop()
					if _, ok := s.m[id]; ok {
						delete(s.m, id)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*acks), "ns/msg")
		})
	}
}
