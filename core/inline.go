package core

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vanemq/vanemq/core/packets"
	"github.com/vanemq/vanemq/core/topics"
)

// InlineMessage is a message published or received by in-process Go code.
type InlineMessage struct {
	Topic      string
	Payload    []byte
	QoS        byte
	Retain     bool
	Properties packets.Properties
}

// inlineSubs holds the handlers of inline subscriptions. Inline
// subscriptions sit in the trie under client IDs that begin with a NUL byte,
// which no network client can use (client IDs are UTF-8 without U+0000).
type inlineSubs struct {
	next     atomic.Uint64
	handlers sync.Map // client ID -> func(InlineMessage)
}

func isInlineID(id string) bool { return len(id) > 0 && id[0] == 0 }

// deliver calls the handler of an inline subscription; a panic in the
// handler is recovered and logged.
func (in *inlineSubs) deliver(id string, d delivery) bool {
	h, ok := in.handlers.Load(id)
	if !ok {
		return false
	}
	m := d.msg
	call(h.(func(InlineMessage)), InlineMessage{
		Topic:      m.topic,
		Payload:    m.payload,
		QoS:        d.qos,
		Retain:     d.retain,
		Properties: m.properties(),
	})
	return true
}

func call(h func(InlineMessage), m InlineMessage) {
	defer func() { _ = recover() }()
	h(m)
}

// Publish publishes m from inside the process, as the broker itself: it is
// routed, retained and delivered exactly like a client's PUBLISH. A
// retained message the retained store has no room for is refused, neither
// retained nor delivered, with an error wrapping ErrRetainedFull.
func (s *Server) Publish(m InlineMessage) error {
	if err := topics.ValidateTopicName(m.Topic); err != nil {
		return fmt.Errorf("core: inline publish: %w", err)
	}
	if err := topics.CheckLevels(m.Topic, s.opts.MaxTopicLevels, false); err != nil {
		return fmt.Errorf("core: inline publish: %w", err)
	}
	if m.QoS > 2 {
		return fmt.Errorf("core: inline publish: QoS %d is not 0, 1 or 2", m.QoS)
	}
	if m.Retain && s.opts.DisableRetain {
		return errors.New("core: inline publish: retain is not available")
	}
	msg := buildMessage(m.Topic, m.Payload, m.QoS, m.Retain, "", &m.Properties, time.Now())
	s.stats.messagesIn.Add(1)
	if _, err := s.route(msg, nil); err != nil {
		return fmt.Errorf("core: inline publish to %q: %w", m.Topic, err)
	}
	return nil
}

// Subscribe delivers every message matching filter (which may be a
// $share/{group}/ filter) to handler, at QoS 2 or the message's QoS if
// lower. The handler runs on the publishing goroutine and must not block;
// a panic in it is recovered. Retained messages matching filter are
// delivered before Subscribe returns. The returned function unsubscribes.
func (s *Server) Subscribe(filter string, handler func(InlineMessage)) (func(), error) {
	if handler == nil {
		return nil, errors.New("core: inline subscribe: nil handler")
	}
	group, inner, _, err := topics.ParseShared(filter)
	if err != nil {
		return nil, fmt.Errorf("core: inline subscribe: %w", err)
	}
	if err := topics.ValidateFilter(inner); err != nil {
		return nil, fmt.Errorf("core: inline subscribe: %w", err)
	}
	if err := topics.CheckLevels(inner, s.opts.MaxTopicLevels, true); err != nil {
		return nil, fmt.Errorf("core: inline subscribe: %w", err)
	}
	id := "\x00inline/" + strconv.FormatUint(s.inline.next.Add(1), 10)
	s.inline.handlers.Store(id, handler)
	s.subs.Subscribe(topics.Subscription{ClientID: id, Filter: inner, Group: group, QoS: 2})
	s.interestAdded(group, inner, 2, -1)
	if group == "" {
		now := time.Now()
		s.retained.Match(inner, func(topic string, m *message) bool {
			if m.expired(now) {
				s.dropExpiredRetained(topic, m)
				return true
			}
			s.inline.deliver(id, delivery{msg: m, qos: m.qos, retain: true})
			return true
		})
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			s.subs.Unsubscribe(id, group, inner)
			s.interestRemoved(group, inner, 2)
			s.inline.handlers.Delete(id)
		})
	}, nil
}
