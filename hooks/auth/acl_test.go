package auth

import (
	"testing"
)

func TestParseACL(t *testing.T) {
	tests := []struct {
		name  string
		data  string
		rules int
		errs  []string
	}{
		{"the issue's example", `rules:
  - {allow: false, action: subscribe, filter: "test/nosubscribe"}
  - {user: admin, allow: true, action: both, filter: "#"}
  - {allow: true, action: both, filter: "users/%u/#"}
`, 3, nil},
		{"block style, client, %c inside a level", "rules:\n  - allow: true\n    action: publish\n    client: sensor-1\n    filter: devices/dev-%c/+\n", 1, nil},
		{"no rules", "rules: []\n", 0, nil},

		{"missing allow", "rules:\n  - {action: both, filter: a}\n", 0, []string{"acl.yaml:2: rules[0].allow: missing key"}},
		{"missing action and filter", "rules:\n  - {allow: true}\n", 0,
			[]string{"acl.yaml:2: rules[0].action: missing key", "acl.yaml:2: rules[0].filter: missing key"}},
		{"allow not a bool", "rules:\n  - {allow: yes, action: both, filter: a}\n", 0,
			[]string{"acl.yaml:2: rules[0].allow: want true or false, found a str value"}},
		{"bad action", "rules:\n  - {allow: true, action: read, filter: a}\n", 0,
			[]string{`acl.yaml:2: rules[0].action: "read": want publish, subscribe or both`}},
		{"bad filter", "rules:\n  - {allow: true, action: both, filter: \"a/#/b\"}\n", 0,
			[]string{`acl.yaml:2: rules[0].filter: "a/#/b": invalid topic filter: '#' at byte 2 is not the last level`}},
		{"bad placeholder", "rules:\n  - {allow: true, action: both, filter: \"users/%n\"}\n", 0,
			[]string{`acl.yaml:2: rules[0].filter: "users/%n": '%' must start %u (user name) or %c (client ID)`}},
		{"placeholder next to a wildcard", "rules:\n  - {allow: true, action: both, filter: \"users/%u#\"}\n", 0,
			[]string{`acl.yaml:2: rules[0].filter: "users/%u#": invalid topic filter`}},
		{"shared filter", "rules:\n  - {allow: true, action: both, filter: \"$share/g/a\"}\n", 0,
			[]string{`acl.yaml:2: rules[0].filter: "$share/g/a": a rule's filter cannot be a shared subscription`}},
		{"empty user", "rules:\n  - {allow: true, action: both, filter: a, user: ''}\n", 0,
			[]string{"acl.yaml:2: rules[0].user: empty"}},
		{"unknown key", "rules:\n  - {allow: true, action: both, filter: a, topic: b}\n", 0,
			[]string{"acl.yaml:2: rules[0].topic: unknown key (known keys: allow, action, filter, user, client)"}},
		{"duplicate key", "rules:\n  - allow: true\n    action: both\n    filter: a\n    allow: false\n", 0,
			[]string{"acl.yaml:5: rules[0].allow: duplicate key (first at line 2)"}},
		{"second rule's line", "rules:\n  - {allow: true, action: both, filter: a}\n\n  - {allow: true, action: all, filter: a}\n", 0,
			[]string{`acl.yaml:4: rules[1].action: "all"`}},
		{"no rules key", "{}\n", 0, []string{"acl.yaml:1: rules: missing key"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := ParseACL("acl.yaml", []byte(tc.data))
			if tc.errs != nil {
				wantErrors(t, err, tc.errs)
				return
			}
			if err != nil {
				t.Fatalf("ParseACL: %v", err)
			}
			if a.Len() != tc.rules {
				t.Errorf("Len() = %d, want %d", a.Len(), tc.rules)
			}
		})
	}
}

func mustACL(t *testing.T, data string) *ACL {
	t.Helper()
	a, err := ParseACL("acl.yaml", []byte(data))
	if err != nil {
		t.Fatalf("ParseACL: %v", err)
	}
	return a
}

// The example, with a client-narrowed rule and a publish-only
// rule added.
const exampleACL = `rules:
  - {allow: false, action: subscribe, filter: "test/nosubscribe"}
  - {user: admin, allow: true, action: both, filter: "#"}
  - {allow: true, action: both, filter: "users/%u/#"}
  - {client: sensor-1, allow: true, action: publish, filter: "devices/%c/+"}
  - {allow: false, action: publish, filter: "test/deny/#"}
  - {allow: true, action: both, filter: "test/#"}
`

func TestACLPublish(t *testing.T) {
	a := mustACL(t, exampleACL)
	tests := []struct {
		name         string
		user, client string
		topic        string
		allow        bool
		rule         int
	}{
		{"%u: own topic", "alice", "c1", "users/alice/x", true, 2},
		{"%u: own parent level", "alice", "c1", "users/alice", true, 2},
		{"%u: another user's topic", "alice", "c1", "users/bob/x", false, -1},
		{"%u: anonymous gets nothing", "", "c1", "users//x", false, -1},
		{"%u: user name with '/' gets nothing", "alice/x", "c1", "users/alice/x/y", false, -1},
		{"%u: user name '+' gets nothing", "+", "c1", "users/bob/x", false, -1},
		{"%u: user name '#' gets nothing", "#", "c1", "users/bob/x", false, -1},
		{"user narrowing: admin", "admin", "c1", "anything/at/all", true, 1},
		{"user narrowing: not admin", "alice", "c1", "anything/at/all", false, -1},
		{"admin's # does not reach $SYS", "admin", "c1", "$SYS/broker/uptime", false, -1},
		{"client narrowing and %c", "", "sensor-1", "devices/sensor-1/temp", true, 3},
		{"%c: another client's topic", "", "sensor-1", "devices/sensor-2/temp", false, -1},
		{"client narrowing: other client", "", "sensor-2", "devices/sensor-2/temp", false, -1},
		{"subscribe-only rule does not apply to publish", "bob", "c", "test/nosubscribe", true, 5},
		{"first match wins: deny before allow", "bob", "c", "test/deny/x", false, 4},
		{"first match wins: allow after", "bob", "c", "test/ok", true, 5},
		{"admin's allow precedes the deny", "admin", "c", "test/deny/x", true, 1},
		{"default deny", "bob", "c", "other", false, -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			allow, rule := a.CanPublish(tc.user, tc.client, tc.topic)
			if allow != tc.allow || rule != tc.rule {
				t.Errorf("CanPublish(%q, %q, %q) = %v by rule %d, want %v by rule %d", tc.user, tc.client, tc.topic, allow, rule, tc.allow, tc.rule)
			}
		})
	}
}

func TestACLSubscribe(t *testing.T) {
	a := mustACL(t, exampleACL)
	tests := []struct {
		name         string
		user, client string
		filter       string
		allow        bool
		rule         int
	}{
		{"%u: own subtree", "alice", "c", "users/alice/#", true, 2},
		{"%u: narrower filter", "alice", "c", "users/alice/x/+", true, 2},
		{"%u: wider filter: granted, reads only alice's", "alice", "c", "users/#", true, 2},
		{"%u: '+' over users: granted, reads only alice's", "alice", "c", "users/+/x", true, 2},
		{"%u: another user", "alice", "c", "users/bob/#", false, -1},
		{"%u: user name '+' does not widen", "+", "c", "users/+/x", false, -1},
		{"shared: inner filter checked", "alice", "c", "$share/g/users/alice/x", true, 2},
		{"shared: inner filter denied", "alice", "c", "$share/g/users/bob/x", false, -1},
		{"deny: exact", "bob", "c", "test/nosubscribe", false, 0},
		{"deny: a filter reaching past the denied topic", "bob", "c", "test/nosubscribe/#", true, 5},
		{"deny: wildcard granted beside it", "bob", "c", "test/#", true, 5},
		{"deny: '+' whose only readable topic is denied", "bob", "c", "+/nosubscribe", false, -1},
		{"deny: admin's # granted beside it", "admin", "c", "#", true, 1},
		{"shared: wildcard beside a deny", "bob", "c", "$share/g/test/#", true, 5},
		{"admin elsewhere", "admin", "c", "a/b/#", true, 1},
		{"admin: $SYS not covered by #", "admin", "c", "$SYS/#", false, -1},
		{"no overlap with the deny", "bob", "c", "test/other", true, 5},
		{"publish-only rule does not apply", "", "sensor-1", "devices/sensor-1/temp", false, -1},
		{"default deny", "bob", "c", "elsewhere/#", false, -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			allow, rule := a.CanSubscribe(tc.user, tc.client, tc.filter)
			if allow != tc.allow || rule != tc.rule {
				t.Errorf("CanSubscribe(%q, %q, %q) = %v by rule %d, want %v by rule %d", tc.user, tc.client, tc.filter, allow, rule, tc.allow, tc.rule)
			}
		})
	}
}

// TestACLRead checks read permission at delivery: the first rule for
// subscribing that matches the topic decides.
func TestACLRead(t *testing.T) {
	a := mustACL(t, exampleACL)
	tests := []struct {
		name         string
		user, client string
		topic        string
		allow        bool
		rule         int
	}{
		{"denied topic", "bob", "c", "test/nosubscribe", false, 0},
		{"denied even for admin: the deny comes first", "admin", "c", "test/nosubscribe", false, 0},
		{"admin reads the rest", "admin", "c", "any/thing", true, 1},
		{"admin's # does not reach $SYS", "admin", "c", "$SYS/broker/uptime", false, -1},
		{"%u: own topic", "alice", "c", "users/alice/x", true, 2},
		{"%u: another user's topic", "alice", "c", "users/bob/x", false, -1},
		{"publish-only rule does not give read", "", "sensor-1", "devices/sensor-1/temp", false, -1},
		{"a publish deny does not deny read", "bob", "c", "test/deny/x", true, 5},
		{"allowed", "bob", "c", "test/other", true, 5},
		{"default deny", "bob", "c", "elsewhere", false, -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			allow, rule := a.CanRead(tc.user, tc.client, tc.topic)
			if allow != tc.allow || rule != tc.rule {
				t.Errorf("CanRead(%q, %q, %q) = %v by rule %d, want %v by rule %d", tc.user, tc.client, tc.topic, allow, rule, tc.allow, tc.rule)
			}
		})
	}
}

func TestExpand(t *testing.T) {
	tests := []struct {
		filter, user, client string
		want                 string
		ok                   bool
	}{
		{"users/%u/#", "alice", "c1", "users/alice/#", true},
		{"d/%c/%u", "alice", "c1", "d/c1/alice", true},
		{"d/pre-%c-post", "", "c1", "d/pre-c1-post", true},
		{"plain/#", "", "", "plain/#", true},
		{"users/%u/#", "", "c1", "", false},            // no user name
		{"users/%u/#", "a/b", "c1", "", false},         // adds a level
		{"users/%u/#", "a+", "c1", "", false},          // a wildcard
		{"users/%u/#", "#", "c1", "", false},           // a wildcard
		{"d/%c", "alice", "x/#", "", false},            // client IDs too
		{"%u/#", "$SYS", "c1", "", false},              // would start a $ topic
		{"users/%u", "$SYS", "c1", "users/$SYS", true}, // harmless inside
	}
	for _, tc := range tests {
		segs, why := compileFilter(tc.filter)
		if why != "" {
			t.Fatalf("compileFilter(%q): %s", tc.filter, why)
		}
		r := rule{filter: tc.filter, segs: segs}
		got, ok := r.expand(tc.user, tc.client)
		if got != tc.want || ok != tc.ok {
			t.Errorf("expand(%q, user %q, client %q) = %q, %v; want %q, %v", tc.filter, tc.user, tc.client, got, ok, tc.want, tc.ok)
		}
	}
}

func TestCovers(t *testing.T) {
	tests := []struct {
		rule, req string
		want      bool
	}{
		{"users/alice/#", "users/alice/#", true},
		{"users/alice/#", "users/alice/x/+", true},
		{"users/alice/#", "users/alice", true},
		{"users/alice/#", "users/alice/x", true},
		{"users/alice/#", "users/#", false},
		{"users/alice/#", "users/+/x", false},
		{"users/alice/#", "users/bob/x", false},
		{"users/alice/#", "users", false},
		{"#", "anything/+/#", true},
		{"#", "$SYS/x", false},
		{"#", "+/x", true},
		{"+", "$SYS", false},
		{"+/#", "$SYS/#", false},
		{"$SYS/#", "$SYS/broker/+", true},
		{"a/+", "a/b", true},
		{"a/+", "a/+", true},
		{"a/+", "a/#", false},
		{"a/+", "a", false},
		{"a/+", "a/b/c", false},
		{"a/b", "a/+", false},
		{"a/b", "a/b", true},
		{"a/b", "a/b/c", false},
		{"a/b/c", "a/b", false},
		{"a/+/c", "a/+/c", true},
		{"a/+/c", "a/b/+", false},
		{"a//b", "a//b", true},
		{"a/+/b", "a//b", true},
		{"a/#", "a/", true},
		{"a", "a/#", false},
	}
	for _, tc := range tests {
		if got := covers(tc.rule, tc.req); got != tc.want {
			t.Errorf("covers(%q, %q) = %v, want %v", tc.rule, tc.req, got, tc.want)
		}
	}
}

// TestIntersect checks the filter of the topics two filters share, both
// ways round; want "" is no topic in common.
func TestIntersect(t *testing.T) {
	tests := []struct {
		a, b string
		want string
	}{
		{"test/nosubscribe", "test/nosubscribe", "test/nosubscribe"},
		{"test/nosubscribe", "test/#", "test/nosubscribe"},
		{"test/nosubscribe", "#", "test/nosubscribe"},
		{"test/nosubscribe", "+/nosubscribe", "test/nosubscribe"},
		{"test/nosubscribe", "+/+", "test/nosubscribe"},
		{"test/nosubscribe", "test/other", ""},
		{"test/nosubscribe", "test/+/x", ""},
		{"test/nosubscribe", "test", ""},
		{"test/#", "test", "test"}, // "#" also matches the parent level
		{"test/+", "test", ""},
		{"a/+/c", "a/b/+", "a/b/c"},
		{"a/+/c", "a/b/d", ""},
		{"a/#", "+/b", "a/b"},
		{"a/+/#", "+/b", "a/b"},
		{"#", "x/+", "x/+"},
		{"+/+", "+/#", "+/+"},
		{"#", "$SYS/x", ""},
		{"$SYS/x", "+/x", ""},
		{"$SYS/#", "$SYS/x", "$SYS/x"},
		{"x/$y", "+/+", "x/$y"}, // '$' only matters on the first level
		{"a//b", "a/+/b", "a//b"},
	}
	for _, tc := range tests {
		for _, ab := range [][2]string{{tc.a, tc.b}, {tc.b, tc.a}} {
			got, ok := intersect(ab[0], ab[1])
			if ok != (tc.want != "") || got != tc.want && ok {
				t.Errorf("intersect(%q, %q) = %q, %v; want %q", ab[0], ab[1], got, ok, tc.want)
			}
		}
	}
}

// TestACLReadSameForAll: a read verdict is the same for every client when
// no rule that could match the topic for some client depends on the
// client; the server then caches it once for all subscribers.
func TestACLReadSameForAll(t *testing.T) {
	a := mustACL(t, `rules:
  - {allow: false, action: subscribe, filter: "secret/#"}
  - {allow: true, action: both, filter: "users/%u/#"}
  - {user: admin, allow: true, action: subscribe, filter: "ops/#"}
  - {client: "dev-1", allow: true, action: publish, filter: "devices/#"}
  - {allow: true, action: both, filter: "#"}
`)
	tests := []struct {
		user, client, topic string
		allow, same         bool
	}{
		{"alice", "c", "secret/x", false, true},      // the first rule decides for everyone
		{"alice", "c", "public/news/1", true, true},  // no client rule can match it: # decides for everyone
		{"alice", "c", "users/alice/x", true, false}, // %u decides, for alice only
		{"bob", "c", "users/alice/x", true, false},   // # decides for bob, %u would for alice
		{"bob", "c", "ops/x", true, false},           // admin's rule could match
		{"bob", "c", "devices/x", true, true},        // dev-1's rule is for publishing only
		{"", "c", "$SYS/x", false, true},             // nothing reaches $SYS: default deny for all
	}
	for _, tc := range tests {
		allow, _, same := a.firstMatch(actSubscribe, tc.user, tc.client, tc.topic)
		if allow != tc.allow || same != tc.same {
			t.Errorf("firstMatch(read, %q, %q, %q) = %v, same %v; want %v, same %v", tc.user, tc.client, tc.topic, allow, same, tc.allow, tc.same)
		}
	}
}
