package js

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// pool holds a program's runtimes: calls take one, waiting at most the
// wait, and give it back; there are never more than size. One
// watchdog goroutine interrupts calls that run past their deadline.
type pool struct {
	prog    *program
	free    chan *vm
	vms     []*vm
	timeout time.Duration
	wait    time.Duration
	clock   *atomic.Int64

	// users counts the calls using the pool; closedBit is set once a
	// retired pool has no users, after which enter refuses.
	users   atomic.Int64
	retired atomic.Bool

	stop     chan struct{}
	stopOnce sync.Once
	stopped  chan struct{}
}

const closedBit = int64(1) << 62

// enter registers a call; false means the pool was retired and closed,
// and the caller takes the hook's current pool instead.
func (p *pool) enter() bool {
	if p.users.Add(1)&closedBit != 0 {
		p.users.Add(-1)
		return false
	}
	return true
}

// leave ends a call; the last call of a retired pool closes it.
func (p *pool) leave() {
	if p.users.Add(-1) == 0 && p.retired.Load() {
		p.tryClose()
	}
}

// tryClose closes the pool when no call uses it.
func (p *pool) tryClose() {
	if p.users.CompareAndSwap(0, closedBit) {
		p.close()
	}
}

// newPool makes size runtimes for prog, the first being first, and
// starts the watchdog.
func newPool(prog *program, first *vm, size int, lim vmLimits) (*pool, error) {
	p := &pool{prog: prog, free: make(chan *vm, size), timeout: lim.timeout, wait: lim.wait, clock: lim.clock,
		stop: make(chan struct{}), stopped: make(chan struct{})}
	for i := range size {
		v := first
		if i > 0 {
			var err error
			if v, err = newVM(prog, lim); err != nil {
				return nil, err
			}
		}
		p.vms = append(p.vms, v)
		p.free <- v
	}
	go p.watchdog()
	return p, nil
}

// errBusy is what a call fails with when no runtime frees up in time.
var errBusy = fmt.Errorf("no free runtime within the wait (raise pool or wait, or make the script faster)")

// get takes a runtime, waiting at most the wait.
func (p *pool) get() (*vm, error) {
	select {
	case v := <-p.free:
		return v, nil
	default:
	}
	t := time.NewTimer(p.wait)
	defer t.Stop()
	select {
	case v := <-p.free:
		return v, nil
	case <-t.C:
		return nil, errBusy
	}
}

// put gives a runtime back.
func (p *pool) put(v *vm) { p.free <- v }

// watchdog checks the runtimes' deadlines a few times per timeout.
func (p *pool) watchdog() {
	defer close(p.stopped)
	// Half the timeout: a runaway call stops within 1.5 timeouts, and a
	// short timeout does not wake the watchdog too often.
	tick := time.NewTicker(max(p.timeout/2, 2*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-p.stop:
			return
		case now := <-tick.C:
			if p.clock != nil {
				p.clock.Store(now.UnixNano())
			}
			for _, v := range p.vms {
				v.overdue(now)
			}
		}
	}
}

// retire marks a replaced pool: it closes once the calls under way on it
// have ended. It does not block.
func (p *pool) retire() {
	p.retired.Store(true)
	p.tryClose()
}

// close stops the watchdog.
func (p *pool) close() {
	p.stopOnce.Do(func() { close(p.stop) })
	<-p.stopped
}
