package core

import "testing"

// The notifier's queue is bounded: events beyond it are lost and counted,
// never waited for (docs/hooks.md, "Notifications").
func TestNotifyLaterIsBounded(t *testing.T) {
	s, err := New(Options{SysInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	capacity := cap(s.later)
	for range capacity + 3 {
		s.notifyLater(func() {})
	}
	if got := s.Stats().HookEventsLost; got != 3 {
		t.Errorf("HookEventsLost = %d after %d events into a queue of %d, want 3", got, capacity+3, capacity)
	}
}
