package main

import (
	"context"
	"fmt"
	"sync"
)

// idWindow is a publisher's inflight window: the packet identifiers free
// for new QoS 1/2 messages. The publisher takes identifiers in batches; its
// connection's reader gives them back, also in batches, as PUBACKs or
// PUBCOMPs arrive.
type idWindow struct {
	mu   sync.Mutex
	free []uint16
	busy []bool // busy[id] while id is in flight
	wake chan struct{}
}

// newIDWindow returns a window of size identifiers, 1 to size.
func newIDWindow(size int) *idWindow {
	w := &idWindow{
		free: make([]uint16, 0, size),
		busy: make([]bool, size+1),
		wake: make(chan struct{}, 1),
	}
	for id := size; id >= 1; id-- {
		w.free = append(w.free, uint16(id))
	}
	return w
}

// acquire appends up to limit free identifiers to dst, waiting until at least
// one is free or ctx ends.
func (w *idWindow) acquire(ctx context.Context, dst []uint16, limit int) ([]uint16, error) {
	for {
		w.mu.Lock()
		if k := len(w.free); k > 0 {
			take := w.free[k-min(k, limit):]
			for _, id := range take {
				w.busy[id] = true
			}
			dst = append(dst, take...)
			w.free = w.free[:k-len(take)]
			w.mu.Unlock()
			return dst, nil
		}
		w.mu.Unlock()
		select {
		case <-w.wake:
		case <-ctx.Done():
			return dst, ctx.Err()
		}
	}
}

// release returns identifiers whose flows completed. An identifier that is
// not in flight is the broker's protocol error; it is reported and nothing
// after it is released.
func (w *idWindow) release(ids []uint16) error {
	var err error
	w.mu.Lock()
	for _, id := range ids {
		if int(id) >= len(w.busy) || !w.busy[id] {
			err = fmt.Errorf("acknowledgement for packet identifier %d, which is not in flight", id)
			break
		}
		w.busy[id] = false
		w.free = append(w.free, id)
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return err
}
