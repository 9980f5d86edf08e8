package auth

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/packets"
)

func TestIDPatternMatches(t *testing.T) {
	tests := []struct {
		pattern, user, id string
		want              bool
	}{
		{"%u", "alice", "alice", true},
		{"%u", "alice", "alice2", false},
		{"%u", "alice", "bob", false},
		{"%u", "alice", "", false},
		{"%u-*", "alice", "alice-phone", true},
		{"%u-*", "alice", "alice-", true}, // '*' matches the empty run too
		{"%u-*", "alice", "alice", false},
		{"%u-*", "alice", "bob-alice-1", false},
		{"sensor-*", "alice", "sensor-17", true},
		{"sensor-*", "alice", "Sensor-17", false}, // case counts
		{"sensor-*", "alice", "my-sensor-17", false},
		{"*", "alice", "", true},
		{"*", "alice", "anything at all", true},
		{"**", "alice", "x", true},
		{"*-%u", "alice", "phone-alice", true},
		{"*-%u", "alice", "phone-alice-2", false},
		{"a*b*c", "u", "abc", true},
		{"a*b*c", "u", "aXbYc", true},
		{"a*b*c", "u", "abbbc", true},
		{"a*b*c", "u", "acb", false},
		{"a*b*c", "u", "ac", false},
		{"ab*ba", "u", "aba", false}, // prefix and suffix may not share a byte
		{"ab*ba", "u", "abba", true},
		{"x*%u*y", "alice", "x-alice-y", true},
		{"x*%u*y", "alice", "x-bob-y", false},
		{"dev/%u/*", "alice", "dev/alice/1", true}, // '/' is an ordinary character in a client ID
		// The user name is taken literally: a '*' in it is no wildcard.
		{"%u", "a*", "a*", true},
		{"%u", "a*", "abc", false},
		{"%u-1", "*", "x-1", false},
		{"%u%u", "ab", "abab", true},
		{"gw-%u", "", "gw-", true},
		{"héllo-*", "u", "héllo-ü", true},
	}
	for _, tc := range tests {
		pt, why := compileIDPattern(tc.pattern)
		if why != "" {
			t.Fatalf("compileIDPattern(%q): %s", tc.pattern, why)
		}
		if got := pt.matches(tc.user, tc.id); got != tc.want {
			t.Errorf("%q for user %q matches %q = %v, want %v", tc.pattern, tc.user, tc.id, got, tc.want)
		}
	}
}

func TestParseUsersClientIDs(t *testing.T) {
	h := goodHash
	tests := []struct {
		name string
		data string
		// allowed and refused are "user client-ID" pairs checked on success.
		allowed, refused []string
		errs             []string // problems expected, in order
	}{
		{"no list: any client ID", "users:\n  - {username: alice, password: '" + h + "'}\n",
			[]string{"alice alice", "alice x", "alice "}, nil, nil},
		{"own list", "users:\n  - {username: alice, password: '" + h + "', client_ids: ['%u', '%u-*', 'sensor-*']}\n" +
			"  - {username: bob, password: '" + h + "'}\n",
			[]string{"alice alice", "alice alice-1", "alice sensor-9", "bob alice", "bob bob-1"},
			[]string{"alice bob", "alice alice2", "alice vanemq-0123456789abcdef01234567"}, nil},
		{"block style", "users:\n  - username: alice\n    password: '" + h + "'\n    client_ids:\n      - '%u'\n      - \"gw-*\"\n",
			[]string{"alice alice", "alice gw-1"}, []string{"alice gw"}, nil},
		{"default for users without their own", "client_ids: ['%u']\nusers:\n  - {username: alice, password: '" + h + "'}\n" +
			"  - {username: bob, password: '" + h + "', client_ids: ['*']}\n  - {username: carol, password: '" + h + "', client_ids: ['c-*']}\n",
			[]string{"alice alice", "bob alice", "bob ", "carol c-1", "mallory mallory"},
			[]string{"alice bob", "carol carol", "mallory alice"}, nil},
		{"default after the users", "users:\n  - {username: alice, password: '" + h + "'}\nclient_ids: ['%u-*']\n",
			[]string{"alice alice-1"}, []string{"alice alice"}, nil},
		{"a number is a client ID", "users:\n  - {username: alice, password: '" + h + "', client_ids: [123]}\n",
			[]string{"alice 123"}, []string{"alice 1234"}, nil},
		{"anchored list", "client_ids: &ids ['%u']\nusers:\n  - {username: alice, password: '" + h + "', client_ids: *ids}\n",
			[]string{"alice alice"}, []string{"alice bob"}, nil},

		{"'%' not followed by u", "users:\n  - {username: alice, password: '" + h + "', client_ids: ['%c-1']}\n", nil, nil,
			[]string{`users.yaml:2: users[0].client_ids[0]: "%c-1": '%' must start %u (the user name)`}},
		{"'%' at the end", "client_ids: ['a', 'dev-%']\nusers: []\n", nil, nil,
			[]string{`users.yaml:1: client_ids[1]: "dev-%": '%' must start %u (the user name)`}},
		{"empty pattern", "users:\n  - username: alice\n    password: '" + h + "'\n    client_ids:\n      - '%u'\n      - ''\n", nil, nil,
			[]string{"users.yaml:6: users[0].client_ids[1]: empty"}},
		{"null pattern", "client_ids: [~]\nusers: []\n", nil, nil,
			[]string{"users.yaml:1: client_ids[0]: empty"}},
		{"pattern not a string", "client_ids: [[a]]\nusers: []\n", nil, nil,
			[]string{"users.yaml:1: client_ids[0]: want a string, found a list"}},
		{"NUL", "client_ids: [\"a\\0b\"]\nusers: []\n", nil, nil,
			[]string{`users.yaml:1: client_ids[0]: "a\x00b": contains U+0000, which no client ID can [MQTT-1.5.4-2]`}},
		{"the broker's own IDs", "client_ids: ['$internal/x*']\nusers: []\n", nil, nil,
			[]string{`client_ids[0]: "$internal/x*": client IDs beginning with $internal/ are the broker's own`}},
		{"empty list", "users:\n  - {username: alice, password: '" + h + "', client_ids: []}\n", nil, nil,
			[]string{`users.yaml:2: users[0].client_ids: an empty list allows no client ID, so no client could connect; to allow any client ID, remove the key or write ["*"]`}},
		{"null list", "client_ids:\nusers: []\n", nil, nil,
			[]string{`users.yaml:1: client_ids: want a list of client ID patterns, e.g. ["%u", "%u-*"], found nothing`}},
		{"a string, not a list", "users:\n  - {username: alice, password: '" + h + "', client_ids: '%u'}\n", nil, nil,
			[]string{`users.yaml:2: users[0].client_ids: want a list of client ID patterns, e.g. ["%u", "%u-*"], found a str value`}},
		{"a mapping, not a list", "client_ids: {alice: x}\nusers: []\n", nil, nil,
			[]string{`users.yaml:1: client_ids: want a list of client ID patterns`}},
		{"duplicate top key", "client_ids: ['a']\nusers: []\nclient_ids: ['b']\n", nil, nil,
			[]string{"users.yaml:3: client_ids: duplicate key (first at line 1)"}},
		{"duplicate entry key", "users:\n  - {username: alice, password: '" + h + "', client_ids: ['a'], client_ids: ['b']}\n", nil, nil,
			[]string{"users.yaml:2: users[0].client_ids: duplicate key (first at line 2)"}},
		{"misspelt top key", "client_id: ['%u']\nusers: []\n", nil, nil,
			[]string{"users.yaml:1: client_id: unknown key (known keys: users, client_ids)"}},
		{"misspelt entry key", "users:\n  - {username: alice, password: '" + h + "', clientids: ['%u']}\n", nil, nil,
			[]string{"users.yaml:2: users[0].clientids: unknown key (known keys: username, password, client_ids)"}},
		{"every problem of a list", "client_ids: ['%x', '', 'ok', '%']\nusers: []\n", nil, nil,
			[]string{`client_ids[0]: "%x"`, "client_ids[1]: empty", `client_ids[3]: "%"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, err := ParseUsers("users.yaml", []byte(tc.data))
			if tc.errs != nil {
				wantErrors(t, err, tc.errs)
				return
			}
			if err != nil {
				t.Fatalf("ParseUsers: %v", err)
			}
			for _, pair := range tc.allowed {
				user, id, _ := strings.Cut(pair, " ")
				if !u.AllowsClientID(user, id) {
					t.Errorf("user %q may not use client ID %q, want allowed", user, id)
				}
			}
			for _, pair := range tc.refused {
				user, id, _ := strings.Cut(pair, " ")
				if u.AllowsClientID(user, id) {
					t.Errorf("user %q may use client ID %q, want refused", user, id)
				}
			}
		})
	}
}

// SetUser, as `vanemq passwd` uses it, keeps the client_ids lists.
func TestSetUserKeepsClientIDs(t *testing.T) {
	in := "# devices\nclient_ids: ['%u']\nusers:\n  - username: alice\n    password: '" + goodHash +
		"'\n    client_ids: ['%u-*'] # phones\n"
	out, added, err := SetUser("users.yaml", []byte(in), "alice", []byte("$2b"+goodHash[3:]))
	if err != nil || added {
		t.Fatalf("SetUser alice: added %v, %v", added, err)
	}
	out, added, err = SetUser("users.yaml", out, "bob", []byte(goodHash))
	if err != nil || !added {
		t.Fatalf("SetUser bob: added %v, %v", added, err)
	}
	u, err := ParseUsers("users.yaml", out)
	if err != nil {
		t.Fatalf("the new file: %v\n%s", err, out)
	}
	if !u.AllowsClientID("alice", "alice-1") || u.AllowsClientID("alice", "alice") {
		t.Errorf("alice's own list was lost:\n%s", out)
	}
	if !u.AllowsClientID("bob", "bob") || u.AllowsClientID("bob", "bob-1") {
		t.Errorf("the default list does not apply to the new user bob:\n%s", out)
	}
	if !strings.Contains(string(out), "# phones") {
		t.Errorf("a comment was lost:\n%s", out)
	}
}

func TestAuthenticateClientID(t *testing.T) {
	var logs logBuffer
	dir := t.TempDir()
	users := writeFile(t, dir, "users.yaml", "client_ids: ['%u', '%u-*']\nusers:\n"+
		"  - {username: alice, password: '"+hashOf(t, "secret")+"'}\n"+
		"  - {username: bob, password: '"+hashOf(t, "builder")+"', client_ids: ['sensor-*']}\n")
	f, err := NewFile(FileOptions{Users: users, Logger: logs.Logger(slog.LevelDebug), Guard: GuardOptions{FailureDelay: -1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	refused := core.Deny(packets.ClientIdentifierNotValid, "this user may not connect with this client identifier")
	tests := []struct {
		name, user, password, id string
		cached                   bool // the password is in the cache, not checked with bcrypt
		want                     core.Verdict
		rule                     string // the rule a refusal's log line names
	}{
		{"alice as bob", "alice", "secret", "bob", false, refused, users + ":1 (client_ids)"},
		// The password, right, is cached now: the client ID is checked all
		// the same.
		{"alice as bob, cached", "alice", "secret", "bob", true, refused, users + ":1 (client_ids)"},
		{"alice as alice", "alice", "secret", "alice", true, core.Allow, ""},
		{"alice as alice-phone", "alice", "secret", "alice-phone", true, core.Allow, ""},
		{"bob as bob: his own list replaces the default", "bob", "builder", "bob", false, refused, users + ":4 (users[1].client_ids)"},
		{"bob as sensor-1", "bob", "builder", "sensor-1", true, core.Allow, ""},
		// The password is checked first: a wrong one says nothing of the
		// client IDs.
		{"wrong password and client ID", "alice", "builder", "bob", false, badCredentials(), ""},
		{"unknown user", "mallory", "secret", "mallory", false, badCredentials(), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(logs.String())
			stats := f.GuardStats()
			cl := &core.ClientInfo{ID: tc.id, Username: tc.user}
			got := f.Authenticate(context.Background(), cl, &core.Credentials{Username: tc.user, UsernameSet: true,
				Password: []byte(tc.password), PasswordSet: true})
			if got != tc.want {
				t.Errorf("Authenticate = %+v, want %+v", got, tc.want)
			}
			if cached := f.GuardStats().Cached > stats.Cached; cached != tc.cached {
				t.Errorf("password from the cache = %v, want %v", cached, tc.cached)
			}
			line := logs.String()[before:]
			if tc.rule != "" {
				for _, want := range []string{"may not use this client ID", "client=" + tc.id, "username=" + tc.user, "rule=\"" + tc.rule + "\""} {
					if !strings.Contains(line, want) {
						t.Errorf("log %q does not contain %q", line, want)
					}
				}
			}
			if strings.Contains(line, tc.password) {
				t.Errorf("the log holds the password: %q", line)
			}
		})
	}
}

// A refused client ID waits failure_delay like every refusal, but the
// password was right: it does not count towards max_failures.
func TestClientIDRefusalDelayNotFailure(t *testing.T) {
	dir := t.TempDir()
	users := writeFile(t, dir, "users.yaml", "users:\n  - {username: alice, password: '"+hashOf(t, "secret")+"', client_ids: ['%u']}\n")
	f, err := NewFile(FileOptions{Users: users, Guard: GuardOptions{MaxFailures: 1, FailureDelay: time.Second, CacheSize: -1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	var delays []time.Duration
	f.refusalDelay = func(_ context.Context, d time.Duration) { delays = append(delays, d) }
	login := func(id string) core.Verdict {
		cl := &core.ClientInfo{ID: id, Username: "alice", Remote: "192.0.2.1:1883"}
		return f.Authenticate(context.Background(), cl, &core.Credentials{Username: "alice", UsernameSet: true,
			Password: []byte("secret"), PasswordSet: true})
	}
	for range 3 {
		if v := login("bob"); v.Code != packets.ClientIdentifierNotValid {
			t.Fatalf("alice as bob = %+v, want Client Identifier not valid", v)
		}
	}
	if len(delays) != 3 || delays[0] != time.Second {
		t.Errorf("refusals delayed %v, want 1s each of 3", delays)
	}
	if v := login("alice"); v != core.Allow {
		t.Errorf("alice as alice after 3 client ID refusals with max_failures 1 = %+v, want Allow", v)
	}
}

// BenchmarkAllowsClientID measures a CONNECT's client ID check against a
// three-pattern list whose last pattern matches.
func BenchmarkAllowsClientID(b *testing.B) {
	u, err := ParseUsers("users.yaml", []byte("client_ids: ['%u', '%u-*', 'sensor-*-%u']\nusers:\n  - {username: alice, password: '"+goodHash+"'}\n"))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if !u.AllowsClientID("alice", "sensor-17-alice") {
			b.Fatal("refused")
		}
	}
}
