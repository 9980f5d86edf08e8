package cluster

import (
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/vanemq/vanemq/core"
)

// InterestChanged implements core.ClusterHook: the change is noted for
// applyInterest, which subscribes or unsubscribes (woken by wakeInterest); only the latest state of
// each (group, filter) matters.
func (h *Hook) InterestChanged(in core.Interest) {
	h.mu.Lock()
	h.pending[interestKey{in.Group, in.Filter}] = in
	h.mu.Unlock()
	h.signal(h.wakeInterest)
}

// applyInterest subscribes for each (group, filter) that gained its first
// subscription, and unsubscribes for each that lost its last. A
// subscription NATS refuses is logged and tried again at the next change.
func (h *Hook) applyInterest() {
	h.mu.Lock()
	defer h.mu.Unlock()
	nc := h.nc.Load()
	if nc == nil {
		return
	}
	for k, in := range h.pending {
		have := h.subs[k]
		switch {
		case in.Count > 0 && have == nil:
			subs, err := h.subscribe(nc, k)
			if err != nil {
				h.log.Error("cluster: cannot subscribe in NATS; other nodes' messages for the filter will not arrive", "filter", fullFilter(k), "cause", err)
				continue
			}
			h.subs[k] = subs
		case in.Count == 0 && have != nil:
			for _, s := range have {
				_ = s.Unsubscribe()
				h.bySub.Delete(s)
			}
			delete(h.subs, k)
		}
		delete(h.pending, k)
	}
}

// subscribe makes the NATS subscriptions of one (group, filter): one per
// subject of the filter (Filter), queue subscriptions for a share group.
func (h *Hook) subscribe(nc *nats.Conn, k interestKey) ([]*nats.Subscription, error) {
	var subs []*nats.Subscription
	for _, subj := range Filter(h.msgSubj, k.filter) {
		if len(subj) > maxSubject {
			for _, s := range subs {
				_ = s.Unsubscribe()
				h.bySub.Delete(s)
			}
			return nil, fmt.Errorf("the filter's NATS subject would be %d bytes, over %d: only this node's messages reach it", len(subj), maxSubject)
		}
		var (
			s   *nats.Subscription
			err error
		)
		if k.group == "" {
			s, err = nc.ChanSubscribe(subj, h.msgs)
		} else {
			s, err = nc.ChanQueueSubscribe(subj, queueName(k), h.msgs)
		}
		if err != nil {
			for _, s := range subs {
				_ = s.Unsubscribe()
				h.bySub.Delete(s)
			}
			return nil, err
		}
		h.bySub.Store(s, k)
		subs = append(subs, s)
	}
	return subs, nil
}

// queueName is the NATS queue group of a share group: MQTT identifies a
// share group by its name and its filter together, so both are in it.
func queueName(k interestKey) string {
	b := appendLevel(nil, k.group)
	b = append(b, '.')
	return string(AppendTopic(b, k.filter))
}

// fullFilter is the filter as a client wrote it.
func fullFilter(k interestKey) string {
	if k.group == "" {
		return k.filter
	}
	return "$share/" + k.group + "/" + k.filter
}
