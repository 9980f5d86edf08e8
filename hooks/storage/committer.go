package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// errClosed is what writes handed to a closed store fail with.
var errClosed = errors.New("storage: store is closed")

// committer is the group committer: writers add to the open batch under
// mu, and one goroutine commits it, so changes that arrive while one batch
// is written are written together next, with one sync. With an interval
// set, under load (the last commit ended less than interval ago) it also
// waits up to interval, or until the batch holds maxOps writes, before
// committing; when idle it commits at once, so a lone client waits for one
// write, not for the interval. With sync set each
// commit is one synced write, however many clients it carries, which is
// what makes durable storage fast: an fsync per message caps any engine
// near the disk's sync rate.
type committer struct {
	eng      engine
	sync     bool
	interval time.Duration
	maxOps   int
	log      *slog.Logger

	mu     sync.Mutex
	cur    batch
	dones  []func(error)
	spare  []func(error)
	closed bool

	wake   chan struct{} // the open batch has work
	full   chan struct{} // the open batch reached maxOps
	stop   chan struct{}
	exited chan struct{}
	// last is when the last commit ended; loop-owned.
	last time.Time
}

func newCommitter(eng engine, sync bool, interval time.Duration, maxOps int, log *slog.Logger) *committer {
	c := &committer{
		eng: eng, sync: sync, interval: interval, maxOps: maxOps, log: log,
		cur:  eng.newBatch(),
		wake: make(chan struct{}, 1), full: make(chan struct{}, 1),
		stop: make(chan struct{}), exited: make(chan struct{}),
	}
	go c.loop()
	return c
}

// add fills the open batch under the committer's lock (fill may be nil,
// for a barrier) and queues done for its commit.
func (c *committer) add(fill func(b batch), done func(error)) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		if done != nil {
			// Not from inside Apply (core.Store's contract); every
			// earlier done has run, so order is kept.
			go done(errClosed)
		}
		return
	}
	if fill != nil {
		fill(c.cur)
	}
	if done != nil {
		c.dones = append(c.dones, done)
	}
	n := c.cur.count()
	c.mu.Unlock()
	signal(c.wake)
	if n >= c.maxOps {
		signal(c.full)
	}
}

// signal wakes a channel's reader without blocking.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// loop commits batches until close.
func (c *committer) loop() {
	defer close(c.exited)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-c.wake:
		case <-c.stop:
			c.commitOpen()
			return
		}
		if c.interval > 0 && time.Since(c.last) < c.interval && c.openCount() < c.maxOps {
			timer.Reset(c.interval)
			select {
			case <-timer.C:
			case <-c.full:
				timer.Stop()
			case <-c.stop:
				timer.Stop()
			}
		}
		c.commitOpen()
	}
}

func (c *committer) openCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur.count()
}

// commitOpen commits the open batch and runs its dones in order.
func (c *committer) commitOpen() {
	c.mu.Lock()
	b, dones := c.cur, c.dones
	if b.count() == 0 && len(dones) == 0 {
		c.mu.Unlock()
		return
	}
	c.cur = c.eng.newBatch()
	c.dones, c.spare = c.spare[:0], nil
	c.mu.Unlock()
	select {
	case <-c.full: // consumed with this batch
	default:
	}

	var err error
	if b.count() > 0 {
		if err = b.commit(context.Background(), c.sync); err != nil {
			err = fmt.Errorf("storage: writing %d changes to %s: %w", b.count(), c.eng.where(), err)
			c.log.Error("store write failed; the clients whose changes it held are disconnected without acknowledgement", "store", c.eng.where(), "cause", err)
		}
	}
	b.release()
	c.last = time.Now()
	for i, d := range dones {
		d(err)
		dones[i] = nil
	}
	c.mu.Lock()
	if cap(dones) <= 4096 {
		c.spare = dones[:0]
	}
	c.mu.Unlock()
}

// close commits what is open, stops the loop and closes the engine.
func (c *committer) close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	close(c.stop)
	<-c.exited
	return c.eng.close()
}
