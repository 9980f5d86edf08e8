package core

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"
)

// Limit names a bound beyond which the broker refuses a request: a
// subscription, a retained message. Refusals are counted by limit
// (Stats.RefusedBy) and logged.
type Limit uint8

// The limits, each named as its config key.
const (
	// LimitSubscriptions: a SUBSCRIBE entry for one more filter than
	// Options.MaxSubscriptions allows a session.
	LimitSubscriptions Limit = iota
	// LimitRetainedMessages: a retained message on a new topic while the
	// store holds Options.MaxRetainedMessages.
	LimitRetainedMessages
	// LimitRetainedBytes: a retained message that would take the store
	// over Options.MaxRetainedBytes.
	LimitRetainedBytes
	numLimits
)

var limitNames = [numLimits]string{"max_subscriptions", "max_retained_messages", "max_retained_bytes"}

// String returns the limit's config key, as metrics label it.
func (l Limit) String() string {
	if l < numLimits {
		return limitNames[l]
	}
	return "unknown"
}

// Limits lists every limit, for metrics.
func Limits() []Limit {
	return []Limit{LimitSubscriptions, LimitRetainedMessages, LimitRetainedBytes}
}

// refusalWarnEvery is how often, at most, a refusal by one limit is logged
// at warn level: the first, then at most one per interval, with the number
// refused since the previous warning. The others are logged at debug
// level, so that a flood of refused requests cannot flood the log; Stats
// counts every one.
const refusalWarnEvery = 10 * time.Second

// refusalLog throttles the warnings of one limit.
type refusalLog struct {
	next  atomic.Int64 // Unix nanoseconds before which refusals log at debug level
	since atomic.Int64 // refusals since the last warning
}

// level counts one event and says at which level to log it: warn when
// refusalWarnEvery has passed since the last warning, with the events
// since then, this one included; debug otherwise.
func (r *refusalLog) level() (slog.Level, int64) {
	r.since.Add(1)
	now := time.Now().UnixNano()
	next := r.next.Load()
	if now >= next && r.next.CompareAndSwap(next, now+int64(refusalWarnEvery)) {
		return slog.LevelWarn, r.since.Swap(0)
	}
	return slog.LevelDebug, 0
}

// refused counts a refusal by limit l and logs msg with args: at warn
// level if refusalWarnEvery passed since the last warning for l, else at
// debug level. The log line names the client: c's connection, or, for a
// message the broker publishes itself (a will, an inline publish), the
// client ID origin ("" for the broker).
func (s *Server) refused(l Limit, c *client, origin, msg string, args ...any) {
	s.stats.refusedBy[l].Add(1)
	level, since := s.refusals[l].level()
	if level == slog.LevelWarn {
		args = append(args, "refused_since_last_warning", since)
	}
	if !s.log.Enabled(context.Background(), level) {
		return
	}
	log := s.log
	if c != nil {
		log = c.logger()
	} else {
		log = log.With("client", origin)
	}
	log.Log(context.Background(), level, msg, args...)
}

// countSubscriptions notes a restored session holding more subscriptions
// than Options.MaxSubscriptions: it keeps them all, and may add none until
// it is under the limit again.
func (r *restorer) countSubscriptions(sess *session) {
	limit := r.s.opts.MaxSubscriptions
	if limit < 0 || len(sess.subs) <= limit {
		return
	}
	r.overSubs++
	if len(sess.subs) > r.mostN {
		r.mostSubs, r.mostN = sess.id, len(sess.subs)
	}
}

// warnOverLimits warns once of restored state over the limits: kept, not
// refused, but nothing more of the kind is accepted until it is under
// them again. Raise the limit, or clear retained messages, to go on.
func (r *restorer) warnOverLimits() {
	s := r.s
	if r.overSubs > 0 {
		s.log.Warn("restored sessions hold more subscriptions than allowed; they keep them but can add none",
			"sessions", r.overSubs, "largest", r.mostSubs, "subscriptions", r.mostN, LimitSubscriptions.String(), s.opts.MaxSubscriptions)
	}
	n, bytes := s.retained.Len(), s.retained.Bytes()
	if over := (s.opts.MaxRetainedMessages >= 0 && n > s.opts.MaxRetainedMessages) ||
		(s.opts.MaxRetainedBytes >= 0 && bytes > s.opts.MaxRetainedBytes); over {
		s.log.Warn("restored retained messages are over the limits; they are kept, but new retained topics (or larger messages) are refused until they are under them",
			"retained", n, LimitRetainedMessages.String(), s.opts.MaxRetainedMessages,
			"retained_bytes", bytes, LimitRetainedBytes.String(), s.opts.MaxRetainedBytes)
	}
}
