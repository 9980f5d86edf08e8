package topics

import (
	"errors"
	"fmt"
	"strings"
)

// Errors returned by the validation functions wrap one of these, so callers
// can pick the reason code with errors.Is: ErrInvalidTopicName maps to 0x90
// (Topic Name invalid), ErrInvalidFilter to 0x8F (Topic Filter invalid).
var (
	ErrInvalidTopicName = errors.New("invalid topic name")
	ErrInvalidFilter    = errors.New("invalid topic filter")
)

// MaxTopicLength is the longest topic name or filter, in bytes: they are UTF-8
// encoded strings, which carry a two-byte length [MQTT-4.7.3-3].
const MaxTopicLength = 65535

// SharePrefix starts every shared-subscription filter [MQTT-4.8.2-1].
const SharePrefix = "$share/"

const (
	levelSep    = '/'
	singleLevel = "+"
	multiLevel  = "#"
)

// ValidateTopicName checks a topic name as carried in a PUBLISH or a will
// message. It must be at least one byte long [MQTT-4.7.3-1], contain no
// wildcard ([MQTT-4.7.1-1] in 3.1.1, [MQTT-4.7.0-1] in 5.0; [MQTT-3.3.2-2])
// and no U+0000 [MQTT-4.7.3-2], and fit in a UTF-8 encoded string
// [MQTT-4.7.3-3]. UTF-8 well-formedness is the codec's job.
func ValidateTopicName(name string) error {
	if err := checkCommon(name); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidTopicName, err)
	}
	if i := strings.IndexAny(name, "+#"); i >= 0 {
		return fmt.Errorf("%w: wildcard %q at byte %d: wildcards are not allowed in a topic name [MQTT-4.7.1-1/MQTT-4.7.0-1]",
			ErrInvalidTopicName, name[i], i)
	}
	return nil
}

// CheckLevels reports whether the topic name or filter s (for a shared
// subscription, its inner filter) has at most max levels, the parts
// between '/' (an empty string has one). Deeper topics are valid MQTT that
// a broker may refuse: each level costs a node of the subscription trie or
// a step of every match. The error wraps ErrInvalidTopicName, or
// ErrInvalidFilter when filter is set. It reads s only when it is long
// enough to be too deep.
func CheckLevels(s string, max int, filter bool) error {
	if len(s) < max {
		return nil // at most len(s)+1 levels
	}
	if n := strings.Count(s, "/") + 1; n > max {
		kind := ErrInvalidTopicName
		if filter {
			kind = ErrInvalidFilter
		}
		return fmt.Errorf("%w: %d levels, more than max_topic_levels (%d)", kind, n, max)
	}
	return nil
}

// ValidateFilter checks a topic filter as carried in a SUBSCRIBE or
// UNSUBSCRIBE (for a shared subscription, the part after $share/{group}/;
// see ParseShared). It must be at least one byte long [MQTT-4.7.3-1], '#'
// may only be the whole last level ([MQTT-4.7.1-2] in 3.1.1, [MQTT-4.7.1-1]
// in 5.0), '+' may only be a whole level ([MQTT-4.7.1-3] in 3.1.1,
// [MQTT-4.7.1-2] in 5.0), and it must contain no U+0000 [MQTT-4.7.3-2] and
// fit in a UTF-8 encoded string [MQTT-4.7.3-3].
func ValidateFilter(filter string) error {
	if err := checkCommon(filter); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidFilter, err)
	}
	for start := 0; ; {
		end := levelEnd(filter, start)
		level := filter[start:end]
		if i := strings.IndexByte(level, '#'); i >= 0 {
			if len(level) != 1 {
				return fmt.Errorf("%w: '#' at byte %d is not a whole level [MQTT-4.7.1-2/MQTT-4.7.1-1]",
					ErrInvalidFilter, start+i)
			}
			if end != len(filter) {
				return fmt.Errorf("%w: '#' at byte %d is not the last level [MQTT-4.7.1-2/MQTT-4.7.1-1]",
					ErrInvalidFilter, start)
			}
		}
		if i := strings.IndexByte(level, '+'); i >= 0 && len(level) != 1 {
			return fmt.Errorf("%w: '+' at byte %d is not a whole level [MQTT-4.7.1-3/MQTT-4.7.1-2]",
				ErrInvalidFilter, start+i)
		}
		if end == len(filter) {
			return nil
		}
		start = end + 1
	}
}

// ParseShared splits a shared-subscription filter "$share/{group}/{filter}"
// into its share name and inner filter. The share name must be at least one
// byte long [MQTT-4.8.2-1], must not contain '/', '+' or '#', and must be
// followed by '/' and a valid topic filter [MQTT-4.8.2-2].
//
// For a filter that does not start with "$share/", ParseShared returns
// shared == false, inner == filter and a nil error without validating it;
// call ValidateFilter on inner in either case if it was not checked here.
// When shared is true and err is nil, inner has been validated.
func ParseShared(filter string) (group, inner string, shared bool, err error) {
	rest, ok := strings.CutPrefix(filter, SharePrefix)
	if !ok {
		return "", filter, false, nil
	}
	group, inner, found := strings.Cut(rest, "/")
	if group == "" {
		return "", "", true, fmt.Errorf("%w: empty share name [MQTT-4.8.2-1]", ErrInvalidFilter)
	}
	if i := strings.IndexAny(group, "+#"); i >= 0 {
		return "", "", true, fmt.Errorf("%w: share name %q contains %q [MQTT-4.8.2-2]", ErrInvalidFilter, group, group[i])
	}
	if !found {
		return "", "", true, fmt.Errorf("%w: share name %q is not followed by '/' and a topic filter [MQTT-4.8.2-2]",
			ErrInvalidFilter, group)
	}
	if err := ValidateFilter(inner); err != nil {
		return "", "", true, fmt.Errorf("share name %q: %w [MQTT-4.8.2-2]", group, err)
	}
	return group, inner, true, nil
}

// IsSysTopic reports whether name starts with '$': such topics are reserved
// for server use and hidden from filters that start with a wildcard
// [MQTT-4.7.2-1].
func IsSysTopic(name string) bool {
	return len(name) > 0 && name[0] == '$'
}

// checkCommon applies the rules shared by topic names and filters.
func checkCommon(s string) error {
	switch {
	case s == "":
		return errors.New("empty [MQTT-4.7.3-1]")
	case len(s) > MaxTopicLength:
		return fmt.Errorf("%d bytes long, more than %d [MQTT-4.7.3-3]", len(s), MaxTopicLength)
	}
	if i := strings.IndexByte(s, 0); i >= 0 {
		return fmt.Errorf("U+0000 at byte %d [MQTT-4.7.3-2]", i)
	}
	return nil
}

// levelEnd returns the index of the '/' ending the level that starts at
// start, or len(s) for the last level.
func levelEnd(s string, start int) int {
	if i := strings.IndexByte(s[start:], levelSep); i >= 0 {
		return start + i
	}
	return len(s)
}
