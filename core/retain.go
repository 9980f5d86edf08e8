package core

import (
	"errors"
	"fmt"

	"github.com/vanemq/vanemq/core/topics"
)

// ErrRetainedFull is the error of a retained message refused because the
// broker's retained messages are at Options.MaxRetainedMessages or would
// go over Options.MaxRetainedBytes: Publish returns it wrapped, naming the
// limit.
var ErrRetainedFull = errors.New("retained message store full")

// The refusals the retained store's two bounds make, each naming its limit.
var (
	errRetainedCount = fmt.Errorf("%w (%s)", ErrRetainedFull, LimitRetainedMessages)
	errRetainedBytes = fmt.Errorf("%w (%s)", ErrRetainedFull, LimitRetainedBytes)
)

// retainedSize is what a retained message counts against
// Options.MaxRetainedBytes: the bytes of its topic, its payload and the
// variable-length properties kept with it (content type, response topic,
// correlation data, user properties), which is what it holds in memory
// beyond a fixed overhead per message.
func retainedSize(topic string, m *message) int64 {
	n := len(topic) + len(m.payload)
	if p := m.props; p != nil {
		n += len(p.ContentType) + len(p.ResponseTopic) + len(p.CorrelationData)
		for _, u := range p.UserProperties {
			n += len(u.Key) + len(u.Value)
		}
	}
	return int64(n)
}

// retain stores m as its topic's retained message, or clears the topic for
// an empty payload [MQTT-3.3.1-5/6/7], records the change in the store and
// tells the hooks. When bounded, a message that would take the store over
// Options.MaxRetainedMessages or MaxRetainedBytes is refused instead: it
// returns an error wrapping ErrRetainedFull, having counted and logged the
// refusal, and changes nothing. Clearing is never refused, nor replacing a
// message with one no larger. The broker's own $SYS topics, few and
// replaced in place, are not bounded, so that clients filling the store
// cannot blank them.
func (s *Server) retain(m *message, from *client, bounded bool) error {
	switch {
	case len(m.payload) == 0:
		// A zero-byte retained message clears the topic and is not
		// stored [MQTT-3.3.1-6/7].
		s.retained.Delete(m.topic)
	case !bounded:
		s.retained.Set(m.topic, m)
	default:
		if _, err := s.retained.SetWithin(m.topic, m, s.opts.MaxRetainedMessages, s.opts.MaxRetainedBytes); err != nil {
			return s.retainRefused(m, from, err)
		}
	}
	s.persistRetained(m, from.readerBatch())
	s.retainedEvent(m)
	return nil
}

// retainRefused counts and logs a retained message the store refused with
// err (one of topics' ErrRetained errors), and returns the error for the
// publisher.
func (s *Server) retainRefused(m *message, from *client, err error) error {
	if errors.Is(err, topics.ErrRetainedCount) {
		s.refused(LimitRetainedMessages, from, m.origin, "retained message refused: the store holds the most retained messages allowed",
			"topic", m.topic, "retained", s.retained.Len(), LimitRetainedMessages.String(), s.opts.MaxRetainedMessages)
		return errRetainedCount
	}
	s.refused(LimitRetainedBytes, from, m.origin, "retained message refused: it would take the retained messages over their size limit",
		"topic", m.topic, "size", retainedSize(m.topic, m), "retained_bytes", s.retained.Bytes(), LimitRetainedBytes.String(), s.opts.MaxRetainedBytes)
	return errRetainedBytes
}
