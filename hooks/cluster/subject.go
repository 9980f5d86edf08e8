package cluster

import (
	"errors"
	"fmt"
	"strings"
)

// Every MQTT topic level becomes one NATS token, so that MQTT's '+' and
// '#' map onto NATS's '*' and '>'. A token holds only ASCII letters,
// digits, '-' and '_' as they are; every other byte, UTF-8 ones included,
// is written as '=' and two upper-case hex digits, and an empty level is
// the token "=" alone. A token is therefore never empty, never a
// wildcard, and holds only characters valid in both NATS subjects and
// JetStream KV keys ([-/_=.a-zA-Z0-9]), and the encoding can be undone.

// ErrBadToken is returned for a token that the encoding does not make.
var ErrBadToken = errors.New("cluster: not an encoded topic level")

const hexDigits = "0123456789ABCDEF"

// plain reports whether b stands for itself in a token.
func plain(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-' || b == '_'
}

// appendLevel appends the token of one topic level.
func appendLevel(dst []byte, level string) []byte {
	if level == "" {
		return append(dst, '=')
	}
	for i := 0; i < len(level); i++ {
		c := level[i]
		if plain(c) {
			dst = append(dst, c)
			continue
		}
		dst = append(dst, '=', hexDigits[c>>4], hexDigits[c&0xF])
	}
	return dst
}

// AppendTopic appends the tokens of topic's levels, joined by '.', to
// dst: "a/b" gives "a.b", "sensors/été" "sensors.=C3=A9t=C3=A9", "a//b"
// "a.=.b", "$SYS/x" "=24SYS.x". topic must be a valid MQTT topic name.
func AppendTopic(dst []byte, topic string) []byte {
	for {
		level, rest, more := strings.Cut(topic, "/")
		dst = appendLevel(dst, level)
		if !more {
			return dst
		}
		dst = append(dst, '.')
		topic = rest
	}
}

// Topic returns the tokens of topic (AppendTopic) as a string, e.g. for
// a KV key.
func Topic(topic string) string { return string(AppendTopic(nil, topic)) }

// Filter returns the NATS subjects, under prefix ("" for none), that
// together match every topic filter matches: '+' becomes '*', '#' becomes
// '>', and a filter ending in "/#", which also matches its parent level
// ("a/#" matches "a"), gives the parent's subject too. "#" alone gives
// ">", which NATS cannot narrow to topics not starting with '$'
// [MQTT-4.7.2-1]: a node receiving more than its filters match leaves the
// rest to its own matching. filter must be a valid MQTT topic filter.
func Filter(prefix, filter string) []string {
	var b []byte
	if prefix != "" {
		b = append(b, prefix...)
		b = append(b, '.')
	}
	start := len(b)
	var parent string
	for {
		level, rest, more := strings.Cut(filter, "/")
		switch level {
		case "+":
			b = append(b, '*')
		case "#":
			if len(b) > start {
				parent = string(b[:len(b)-1]) // without the '.'
			}
			b = append(b, '>')
		default:
			b = appendLevel(b, level)
		}
		if !more {
			break
		}
		b = append(b, '.')
		filter = rest
	}
	if parent != "" {
		return []string{string(b), parent}
	}
	return []string{string(b)}
}

// DecodeTopic undoes AppendTopic: "a.=.b" gives "a//b".
func DecodeTopic(tokens string) (string, error) {
	var b strings.Builder
	b.Grow(len(tokens))
	for i, tok := range strings.Split(tokens, ".") {
		if i > 0 {
			b.WriteByte('/')
		}
		if err := decodeLevel(&b, tok); err != nil {
			return "", fmt.Errorf("%w: %q in %q", err, tok, tokens)
		}
	}
	return b.String(), nil
}

// decodeLevel writes the topic level of one token.
func decodeLevel(b *strings.Builder, tok string) error {
	switch tok {
	case "":
		return ErrBadToken
	case "=":
		return nil
	}
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		switch {
		case plain(c):
			b.WriteByte(c)
		case c == '=' && i+2 < len(tok) && isHex(tok[i+1]) && isHex(tok[i+2]):
			v := unhex(tok[i+1])<<4 | unhex(tok[i+2])
			if plain(v) {
				return ErrBadToken // never escaped: one topic, one token
			}
			b.WriteByte(v)
			i += 2
		default:
			return ErrBadToken
		}
	}
	return nil
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'A' && c <= 'F' }

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'A' + 10
}
