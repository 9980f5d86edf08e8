package cluster

import (
	"bytes"
	"errors"
	"slices"
	"testing"
)

func TestEnvelopeRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name     string
		origin   string
		seq      uint64
		ordinary bool
		groups   []interestKey
		targets  []string
		publish  []byte
	}{
		{"plain", "client-1", 1, true, nil, nil, []byte{0x30, 0x03, 0x00, 0x01, 'a'}},
		{"broker's own", "", 1 << 40, true, nil, nil, []byte{0x30, 0x00}},
		{"utf-8 origin", "κλιέντ", 300, true, nil, nil, nil},
		{"share groups only", "c", 2, false, []interestKey{{"g", "a/#"}, {"γ", "+/b"}}, nil, []byte{0x32}},
		{"both", "c", 3, true, []interestKey{{"g", "#"}}, nil, []byte{0x32}},
		{"passed on for one session", "c", 4, true, nil, []string{"mover"}, []byte{0x32}},
		{"passed on for sessions and a group", "c", 5, true, []interestKey{{"g", "#"}}, []string{"m1", "μ2"}, []byte{0x32}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := appendTargetedHeader(nil, 0xDEADBEEF01020304, tc.seq, tc.ordinary, tc.groups, tc.targets, tc.origin)
			b = append(b, tc.publish...)
			e, err := decodeEnvelope(b)
			if err != nil {
				t.Fatal(err)
			}
			if e.instance != 0xDEADBEEF01020304 || e.seq != tc.seq || e.origin != tc.origin || e.ordinary != tc.ordinary || !bytes.Equal(e.publish, tc.publish) || !slices.Equal(e.groups, tc.groups) || !slices.Equal(e.targets, tc.targets) {
				t.Fatalf("decoded %+v", e)
			}
		})
	}
}

func TestEnvelopeRefuses(t *testing.T) {
	good := appendEnvelopeHeader(nil, 7, 9, false, []interestKey{{"g", "f"}}, "abc")
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"other version", append([]byte{2}, good[1:]...)},
		{"short", good[:5]},
		{"no sequence", good[:9]},
		{"no flags", good[:10]},
		{"no group count", good[:11]},
		{"group cut short", good[:13]},
		{"filter cut short", good[:15]},
		{"origin longer than the data", good[:len(good)-1]},
		{"targeted without clients", []byte{1, 0, 0, 0, 0, 0, 0, 0, 7, 9, flagOrdinary | flagTargeted, 0, 0, 0}},
		{"client cut short", []byte{1, 0, 0, 0, 0, 0, 0, 0, 7, 9, flagOrdinary | flagTargeted, 0, 1, 5, 'a'}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := decodeEnvelope(tc.data); !errors.Is(err, errEnvelope) {
				t.Fatalf("decodeEnvelope(%x) = %v, want errEnvelope", tc.data, err)
			}
		})
	}
}

func TestWindow(t *testing.T) {
	var w window
	steps := []struct {
		seq  uint64
		seen bool
	}{
		{1, false}, {1, true}, {3, false}, {2, false}, {2, true}, {3, true},
		{1000, false}, {999, false}, {1000, true},
		// A jump beyond the window forgets everything before it.
		{5000, false}, {5000, true}, {4000, false}, {4000, true},
		// Older than the window: taken as new.
		{10, false}, {10, false},
		// The slot of 5000+1024 held 5000: the new number is new.
		{5000 + windowSize, false}, {5000 + windowSize, true},
	}
	for i, s := range steps {
		if got := w.seen(s.seq); got != s.seen {
			t.Fatalf("step %d: seen(%d) = %v, want %v", i, s.seq, got, s.seen)
		}
	}
}

// TestRoutedWindow: the count at which each of the latest messages was
// routed is remembered; a slot reused by a later message forgets the
// earlier one.
func TestRoutedWindow(t *testing.T) {
	var w routedWindow
	if _, ok := w.at(5); ok {
		t.Fatal("an empty window remembers message 5")
	}
	w.note(5, 100)
	w.note(6, 101)
	if k, ok := w.at(5); !ok || k != 100 {
		t.Fatalf("at(5) = %d, %v; want 100", k, ok)
	}
	w.note(5+windowSize, 200)
	if _, ok := w.at(5); ok {
		t.Fatal("message 5 is remembered after its slot was reused")
	}
	if k, ok := w.at(5 + windowSize); !ok || k != 200 {
		t.Fatalf("at(5+size) = %d, %v; want 200", k, ok)
	}
}

func BenchmarkWindow(b *testing.B) {
	var w window
	b.ReportAllocs()
	for i := range b.N {
		seq := uint64(i) * 3
		w.seen(seq)
		w.seen(seq)
	}
}
