package cluster

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// watchBucket follows every key of kv until ctx ends or the watch fails:
// entry is called with each entry in order, first those present when the
// watch starts, then loaded once, then the changes. An entry's error is
// counted (bad) and logged as about what, the bucket's contents. It
// returns nil when ctx ends.
func (h *Hook) watchBucket(ctx context.Context, kv jetstream.KeyValue, what string, entry func(jetstream.KeyValueEntry) error, loaded func()) error {
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watch %s: %w", what, err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return fmt.Errorf("the watch of %s ended", what)
			}
			if e == nil {
				loaded()
				continue
			}
			if err := entry(e); err != nil {
				if n := h.stats.bad.Add(1); worthLogging(n) {
					h.log.Warn("cluster: an entry of "+what+" does not decode; ignored", "key", e.Key(), "cause", err, "bad", n)
				}
			}
		}
	}
}
