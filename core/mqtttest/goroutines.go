package mqtttest

import (
	"runtime"
	"testing"
	"time"
)

// GoroutineSlack is how many goroutines above a baseline CheckGoroutines
// tolerates: the testing package and the runtime may park a helper or
// two.
const GoroutineSlack = 2

// CheckGoroutines waits, for at most 5 s, until at most baseline +
// GoroutineSlack goroutines exist (baseline from runtime.NumGoroutine
// before the code under test ran), and otherwise fails tb with a dump of
// every goroutine; when says at which point of the test.
func CheckGoroutines(tb testing.TB, when string, baseline int) {
	tb.Helper()
	n := runtime.NumGoroutine()
	if Until(5*time.Second, func() bool { n = runtime.NumGoroutine(); return n <= baseline+GoroutineSlack }) {
		return
	}
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	tb.Errorf("goroutine leak %s: %d goroutines, want at most %d (baseline %d + slack %d)\n\n%s",
		when, n, baseline+GoroutineSlack, baseline, GoroutineSlack, buf)
}
