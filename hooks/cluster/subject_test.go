package cluster

import (
	"errors"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/vanemq/vanemq/core/topics"
)

// kvKey is what JetStream accepts as a KV key (nats.go's validKeyRe), and
// token what a NATS subject token may be here: no wildcard, no '.', no
// space.
var (
	kvKey = regexp.MustCompile(`^[-/_=\.a-zA-Z0-9]+$`)
	token = regexp.MustCompile(`^[-_=a-zA-Z0-9]+$`)
)

func TestTopic(t *testing.T) {
	tests := []struct{ topic, want string }{
		{"a", "a"},
		{"a/b", "a.b"},
		{"sensors/été", "sensors.=C3=A9t=C3=A9"},
		{"a//b", "a.=.b"},
		{"/", "=.="},
		{"/a", "=.a"},
		{"$SYS/broker/uptime", "=24SYS.broker.uptime"},
		{"a.b/c d", "a=2Eb.c=20d"},
		{"*/>", "=2A.=3E"},
		{"=", "=3D"},
		{"x-y_z", "x-y_z"},
	}
	for _, tc := range tests {
		if got := Topic(tc.topic); got != tc.want {
			t.Errorf("Topic(%q) = %q, want %q", tc.topic, got, tc.want)
		}
		back, err := DecodeTopic(tc.want)
		if err != nil || back != tc.topic {
			t.Errorf("DecodeTopic(%q) = %q, %v; want %q", tc.want, back, err, tc.topic)
		}
	}
}

func TestFilter(t *testing.T) {
	tests := []struct {
		prefix, filter string
		want           []string
	}{
		{"", "a/b", []string{"a.b"}},
		{"m", "a/+/c", []string{"m.a.*.c"}},
		{"m", "a/#", []string{"m.a.>", "m.a"}}, // "a/#" matches "a" too
		{"m", "#", []string{"m.>"}},            // one or more levels
		{"m", "+/#", []string{"m.*.>", "m.*"}}, // "+/#" matches "x"
		{"m", "$SYS/#", []string{"m.=24SYS.>", "m.=24SYS"}},
		{"m", "a//#", []string{"m.a.=.>", "m.a.="}}, // an empty level
		{"", "+", []string{"*"}},
	}
	for _, tc := range tests {
		if got := Filter(tc.prefix, tc.filter); !slices.Equal(got, tc.want) {
			t.Errorf("Filter(%q, %q) = %q, want %q", tc.prefix, tc.filter, got, tc.want)
		}
	}
}

// TestDecodeTopicRefuses tokens the encoding never makes, so that one
// topic has one key.
func TestDecodeTopicRefuses(t *testing.T) {
	for _, tok := range []string{"", "a..b", "a.", "=4", "=4g", "=41", "a=zz", "a b", "*", ">", "a=3d"} {
		if _, err := DecodeTopic(tok); !errors.Is(err, ErrBadToken) {
			t.Errorf("DecodeTopic(%q) = %v, want ErrBadToken", tok, err)
		}
	}
}

// TestTopicProperties: random valid topics (any UTF-8, empty levels, '$'
// first levels) become valid KV keys of valid tokens, decode back, and are
// matched by the subjects of every filter that matches them, as NATS
// matches subjects.
func TestTopicProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 18))
	alphabet := []rune("ab/$ .*>=+#é€😀_-\t")
	filters := []string{"#", "+", "+/+", "a/#", "+/#", "$SYS/#", "a//#", "ab", "a/+/b"}
	for range 5000 {
		var sb strings.Builder
		for range 1 + r.IntN(8) {
			c := alphabet[r.IntN(len(alphabet))]
			if c == '+' || c == '#' {
				continue // not in a topic name
			}
			sb.WriteRune(c)
		}
		topic := sb.String()
		if topics.ValidateTopicName(topic) != nil || !utf8.ValidString(topic) {
			continue
		}
		key := Topic(topic)
		if !kvKey.MatchString(key) || strings.HasPrefix(key, ".") || strings.HasSuffix(key, ".") {
			t.Fatalf("Topic(%q) = %q: not a KV key", topic, key)
		}
		for _, tok := range strings.Split(key, ".") {
			if !token.MatchString(tok) {
				t.Fatalf("Topic(%q) = %q: token %q", topic, key, tok)
			}
		}
		if back, err := DecodeTopic(key); err != nil || back != topic {
			t.Fatalf("DecodeTopic(Topic(%q)) = %q, %v", topic, back, err)
		}
		for _, f := range filters {
			if !topics.MatchFilter(f, topic) {
				continue
			}
			if !slices.ContainsFunc(Filter("m", f), func(s string) bool { return natsMatch(s, "m."+key) }) {
				t.Fatalf("filter %q matches topic %q, but none of %q matches subject %q", f, topic, Filter("m", f), "m."+key)
			}
		}
	}
}

// natsMatch is NATS's subject matching: '*' one token, '>' one or more at
// the end.
func natsMatch(pattern, subject string) bool {
	p, s := strings.Split(pattern, "."), strings.Split(subject, ".")
	for i, tok := range p {
		if tok == ">" {
			return len(s) > i
		}
		if i >= len(s) || (tok != "*" && tok != s[i]) {
			return false
		}
	}
	return len(p) == len(s)
}
