package core

import "sync"

// timerGate tracks the session timers' callbacks (will delay, session
// expiry), which run on goroutines of the time package: Shutdown closes the
// gate and waits for running callbacks, so none outlives the server and
// OnStopped is the last event hooks hear.
type timerGate struct {
	mu     sync.Mutex
	cond   sync.Cond
	n      int
	closed bool
}

// enter reports whether a callback may run; if so it must call exit.
func (g *timerGate) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.n++
	return true
}

// exit ends a callback started with enter.
func (g *timerGate) exit() {
	g.mu.Lock()
	g.n--
	if g.n == 0 && g.cond.L != nil {
		g.cond.Broadcast()
	}
	g.mu.Unlock()
}

// close refuses new callbacks and waits for the running ones.
func (g *timerGate) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	if g.cond.L == nil {
		g.cond.L = &g.mu
	}
	for g.n > 0 {
		g.cond.Wait()
	}
}
