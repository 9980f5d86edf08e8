package cluster

import "context"

// maxInstances bounds the dedup windows kept, one per sending process; a
// cluster whose nodes restarted more often than that starts over.
const maxInstances = 4096

// receiveLoop routes the QoS 0 messages other nodes sent to this node, in
// the order they arrive. A message that matches several of the node's
// subscriptions arrives once for each and is routed once.
func (h *Hook) receiveLoop(ctx context.Context) {
	defer h.wg.Done()
	windows := make(map[uint64]*window)
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-h.msgs:
			e, ok := h.open(m.Data, m.Subject)
			if !ok || e.instance == h.instance {
				continue // not ours to route, or our own (were NoEcho off)
			}
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
				continue
			}
			h.deliver(e, m.Subject)
		}
	}
}

// open decodes an envelope, counting and logging one that does not.
func (h *Hook) open(data []byte, subject string) (envelope, bool) {
	e, err := decodeEnvelope(data)
	if err != nil {
		if n := h.stats.bad.Add(1); worthLogging(n) {
			h.log.Warn("cluster: a message on a vanemq subject is not a vanemq envelope; dropped", "subject", subject, "cause", err, "dropped", n)
		}
		return e, false
	}
	return e, true
}

// route decodes and delivers one message from another node.
func (h *Hook) route(data []byte, subject string) {
	if e, ok := h.open(data, subject); ok {
		h.deliver(e, subject)
	}
}

// deliver routes a message to what its envelope names: the node's
// ordinary subscriptions, and one member of each share group.
func (h *Hook) deliver(e envelope, subject string) {
	h.stats.received.Add(1)
	if e.ordinary {
		h.deliverTo(e, "", "", subject)
	}
	for _, g := range e.groups {
		h.deliverTo(e, g.group, g.filter, subject)
	}
}

func (h *Hook) deliverTo(e envelope, group, filter, subject string) {
	n, err := h.srv.DeliverRemote(e.publish, e.origin, group, filter)
	if err != nil {
		if c := h.stats.bad.Add(1); worthLogging(c) {
			h.log.Warn("cluster: a message from another node does not decode; dropped", "subject", subject, "cause", err, "dropped", c)
		}
		return
	}
	h.stats.delivered.Add(int64(n))
}
