package cluster

import (
	"context"

	"github.com/nats-io/nats.go"
)

// maxInstances bounds the dedup windows kept, one per sending process; a
// cluster whose nodes restarted more often than that starts over.
const maxInstances = 4096

// receiveLoop routes the messages other nodes sent to this node's
// subscriptions, in the order they arrive.
func (h *Hook) receiveLoop(ctx context.Context) {
	defer h.wg.Done()
	windows := make(map[uint64]*window)
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-h.msgs:
			h.receive(m, windows)
		}
	}
}

// receive routes one message. A message that matches several of the
// node's ordinary subscriptions arrives once for each and is routed once;
// one for a share group is routed to that group.
func (h *Hook) receive(m *nats.Msg, windows map[uint64]*window) {
	e, err := decodeEnvelope(m.Data)
	if err != nil {
		if n := h.stats.bad.Add(1); worthLogging(n) {
			h.log.Warn("cluster: a message on a vanemq subject is not a vanemq envelope; dropped", "subject", m.Subject, "cause", err, "dropped", n)
		}
		return
	}
	if e.instance == h.instance {
		return // our own, were NoEcho off
	}
	v, ok := h.bySub.Load(m.Sub)
	if !ok {
		return // unsubscribed meanwhile
	}
	k := v.(interestKey)
	if k.group == "" {
		w := windows[e.instance]
		if w == nil {
			if len(windows) >= maxInstances {
				clear(windows)
			}
			w = new(window)
			windows[e.instance] = w
		}
		if w.seen(e.seq) {
			h.stats.duplicates.Add(1)
			return
		}
	}
	h.stats.received.Add(1)
	n, err := h.srv.DeliverRemote(e.publish, e.origin, k.group, k.filter)
	if err != nil {
		if c := h.stats.bad.Add(1); worthLogging(c) {
			h.log.Warn("cluster: a message from another node does not decode; dropped", "subject", m.Subject, "cause", err, "dropped", c)
		}
		return
	}
	h.stats.delivered.Add(int64(n))
}
