package cluster

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vanemq/vanemq/core"
)

// InterestChanged implements core.ClusterHook: the node's route table
// takes the change at once (Forward picks share group members by it), and
// applyInterest, woken by wakeInterest, makes it known to the cluster.
// Only the latest state of each (group, filter) matters.
func (h *Hook) InterestChanged(in core.Interest) {
	k := interestKey{in.Group, in.Filter}
	h.routes.setLocal(k, in.QoS, in.Count)
	h.pendMu.Lock()
	h.pending[k] = in
	h.pendMu.Unlock()
	h.signal(h.wakeInterest)
}

// applyInterest makes the interest changes known to the cluster: a NATS
// subscription per subject of each ordinary filter that gained its first
// subscription (dropped with its last), and the node's route table
// entries. A NATS subscription refused is logged and tried again at the
// next change; a route table write that fails (NATS away) is made when
// the node writes its whole entry set again, once NATS is back.
func (h *Hook) applyInterest() {
	h.pendMu.Lock()
	changes := h.pending
	h.pending = make(map[interestKey]core.Interest, len(changes))
	waiters := h.flushWaiters
	h.flushWaiters = nil
	h.pendMu.Unlock()
	defer func() {
		for _, ch := range waiters {
			close(ch)
		}
	}()

	h.mu.Lock()
	nc := h.nc.Load()
	if nc == nil {
		h.mu.Unlock()
		return
	}
	for k, in := range changes {
		if in.Count == 0 && h.mv.held(k) {
			// A session that moved away held it: its route entry stays a
			// while (moves.go), then this change is applied.
			delete(changes, k)
			h.pendMu.Lock()
			if _, newer := h.pending[k]; !newer {
				h.pending[k] = in
			}
			h.pendMu.Unlock()
			continue
		}
		if in.Count == 0 {
			delete(h.local, k)
		} else {
			h.local[k] = in.QoS
		}
		if k.group != "" {
			continue // share groups travel by the route table only
		}
		have := h.subs[k]
		switch {
		case in.Count > 0 && have == nil:
			subs, err := h.subscribe(nc, k.filter)
			if err != nil {
				h.log.Error("cluster: cannot subscribe in NATS; other nodes' QoS 0 messages for the filter will not arrive", "filter", k.filter, "cause", err)
				h.pendMu.Lock()
				if _, newer := h.pending[k]; !newer {
					h.pending[k] = in
				}
				h.pendMu.Unlock()
				continue
			}
			h.subs[k] = subs
		case in.Count == 0 && have != nil:
			for _, s := range have {
				_ = s.Unsubscribe()
			}
			delete(h.subs, k)
		}
	}
	var local map[interestKey]byte
	if h.resync.Load() {
		local = make(map[interestKey]byte, len(h.local))
		for k, q := range h.local {
			local[k] = q
		}
	}
	h.mu.Unlock()
	h.writeRoutes(changes, local)
}

// flushInterest returns once the interest changes pending now are
// applied (their route table entries written, if they can be), or ctx
// ends.
func (h *Hook) flushInterest(ctx context.Context) error {
	ch := make(chan struct{})
	h.pendMu.Lock()
	h.flushWaiters = append(h.flushWaiters, ch)
	h.pendMu.Unlock()
	h.signal(h.wakeInterest)
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("cluster: writing the route table: %w", ctx.Err())
	}
}

// writeRoutes writes the node's route table entries: its whole set
// (local, when a resync was asked for) or the changes.
func (h *Hook) writeRoutes(changes map[interestKey]core.Interest, local map[interestKey]byte) {
	st := h.js.Load()
	if st == nil {
		return // the next JetStream session writes the whole set
	}
	if !h.connected() {
		h.resync.Store(true) // written whole when NATS is back
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.ConnectTimeout)
	defer cancel()
	if local != nil {
		h.resync.Store(false)
		if err := h.syncRoutes(ctx, st.routes, local); err != nil {
			h.retryRoutes()
			h.log.Warn("cluster: cannot write this node's route table entries; other nodes' QoS 1/2 messages reach it once they are written", "cause", err)
		}
		return
	}
	for k, in := range changes {
		var err error
		if in.Count == 0 {
			err = st.routes.Delete(ctx, routeKey(h.cfg.Node, k))
		} else {
			_, err = st.routes.Put(ctx, routeKey(h.cfg.Node, k), routeValue(k, in.QoS))
		}
		if err != nil {
			h.retryRoutes()
			h.log.Warn("cluster: cannot write a route table entry; tried again", "filter", fullFilter(k), "cause", err)
			return
		}
	}
}

// retryRoutes has the whole entry set written again after reconnect_wait
// (JetStream may answer a moment after NATS does).
func (h *Hook) retryRoutes() {
	h.resync.Store(true)
	time.AfterFunc(h.cfg.ReconnectWait, func() { h.signal(h.wakeInterest) })
}

// subscribe makes the NATS subscriptions of one ordinary filter: one per
// subject of the filter (Filter).
func (h *Hook) subscribe(nc *nats.Conn, filter string) ([]*nats.Subscription, error) {
	var subs []*nats.Subscription
	undo := func() {
		for _, s := range subs {
			_ = s.Unsubscribe()
		}
	}
	for _, subj := range Filter(h.msgSubj, filter) {
		if len(subj) > maxSubject {
			undo()
			return nil, fmt.Errorf("the filter's NATS subject would be %d bytes, over %d: only this node's QoS 0 messages reach it", len(subj), maxSubject)
		}
		s, err := nc.ChanSubscribe(subj, h.msgs)
		if err != nil {
			undo()
			return nil, err
		}
		subs = append(subs, s)
	}
	return subs, nil
}

// fullFilter is the filter as a client wrote it.
func fullFilter(k interestKey) string {
	if k.group == "" {
		return k.filter
	}
	return "$share/" + k.group + "/" + k.filter
}
