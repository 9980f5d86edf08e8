package mqtttest

import (
	"testing"
	"time"
)

// pollEvery is how often Until re-checks its condition.
const pollEvery = 5 * time.Millisecond

// Until re-checks cond every few milliseconds until it holds (true) or
// limit has passed (false). It is for state that has no event to wait on
// (a counter, a file, a metric); it never stands in for waiting on a
// message that can be received.
func Until(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
	return true
}

// Eventually is Until for the test's goroutine: it fails tb, naming what
// it waited for, when cond does not hold within limit.
func Eventually(tb testing.TB, limit time.Duration, what string, cond func() bool) {
	tb.Helper()
	if !Until(limit, cond) {
		tb.Fatalf("timed out after %v waiting until %s", limit, what)
	}
}
