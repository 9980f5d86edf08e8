package auth

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/packets"
)

// newTestFile writes users (alice/secret, bob/builder) and, unless acl is
// empty, an ACL file into a temporary directory and loads them.
func newTestFile(t *testing.T, acl string, watch bool, onReload func(error)) (*File, string) {
	t.Helper()
	dir := t.TempDir()
	users := writeFile(t, dir, "users.yaml", "users:\n  - {username: alice, password: '"+hashOf(t, "secret")+
		"'}\n  - {username: bob, password: '"+hashOf(t, "builder")+"'}\n")
	opts := FileOptions{Users: users, Watch: watch, OnReload: onReload, Guard: GuardOptions{FailureDelay: -1}}
	if acl != "" {
		opts.ACL = writeFile(t, dir, "acl.yaml", acl)
	}
	f, err := NewFile(opts)
	if err != nil {
		t.Fatalf("NewFile: %v", err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f, dir
}

func TestAuthenticate(t *testing.T) {
	f, _ := newTestFile(t, "", false, nil)
	var compared [][]byte // the hashes compare was called with
	real := f.compare
	f.compare = func(hash, pw []byte) error {
		compared = append(compared, hash)
		return real(hash, pw)
	}
	st := f.state.Load()
	tests := []struct {
		name         string
		cred         core.Credentials
		want         core.Verdict
		wantCompared []byte // nil: no comparison
	}{
		{"right password", core.Credentials{Username: "alice", UsernameSet: true, Password: []byte("secret"), PasswordSet: true},
			core.Allow, st.users.hashes["alice"]},
		{"wrong password", core.Credentials{Username: "alice", UsernameSet: true, Password: []byte("builder"), PasswordSet: true},
			badCredentials(), st.users.hashes["alice"]},
		{"no password", core.Credentials{Username: "bob", UsernameSet: true},
			badCredentials(), st.users.hashes["bob"]},
		{"unknown user: checked against the dummy hash", core.Credentials{Username: "mallory", UsernameSet: true, Password: []byte("secret"), PasswordSet: true},
			badCredentials(), st.dummy},
		{"no user name: left to allow_anonymous", core.Credentials{Password: []byte("secret"), PasswordSet: true},
			core.Next, nil},
		{"password longer than bcrypt takes", core.Credentials{Username: "alice", UsernameSet: true, Password: []byte("secret" + strings.Repeat("x", 70)), PasswordSet: true},
			badCredentials(), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			compared = nil
			cl := &core.ClientInfo{ID: "c1", Username: tc.cred.Username}
			got := f.Authenticate(context.Background(), cl, &tc.cred)
			if got != tc.want {
				t.Errorf("Authenticate = %+v, want %+v", got, tc.want)
			}
			if tc.want.Decision == core.DecisionDeny && got.Code != packets.BadUsernameOrPassword {
				t.Errorf("code = %v, want Bad User Name or Password", got.Code)
			}
			switch {
			case tc.wantCompared == nil && len(compared) > 0:
				t.Errorf("compared against %d hash(es), want none", len(compared))
			case tc.wantCompared != nil && (len(compared) != 1 || !bytes.Equal(compared[0], tc.wantCompared)):
				t.Errorf("compared against %q, want once against %q", compared, tc.wantCompared)
			}
		})
	}
}

// The dummy hash has the users' cost, so an unknown user costs as much
// time as a known one.
func TestDummyHashCost(t *testing.T) {
	f, _ := newTestFile(t, "", false, nil)
	st := f.state.Load()
	if st.dummyCost != 4 || !strings.HasPrefix(string(st.dummy), "$2a$04$") {
		t.Errorf("dummy hash %q (cost %d), want cost 4 like the users'", st.dummy, st.dummyCost)
	}
	if err := f.compare(st.dummy, nil); err == nil {
		t.Error("the dummy hash accepts an empty password")
	}
}

func TestAuthorize(t *testing.T) {
	f, _ := newTestFile(t, exampleACL, false, nil)
	cl := &core.ClientInfo{ID: "c1", Username: "alice"}
	ctx := context.Background()
	qos := byte(1)
	if v := f.AuthorizeSubscribe(ctx, cl, "users/alice/#", &qos); v != core.Allow || qos != 1 {
		t.Errorf("subscribe users/alice/# = %+v (qos %d), want Permit, QoS kept", v, qos)
	}
	v := f.AuthorizeSubscribe(ctx, cl, "users/bob/#", &qos)
	if v.Decision != core.DecisionDeny || v.Code != packets.NotAuthorized {
		t.Errorf("subscribe users/bob/# = %+v, want Deny Not Authorized", v)
	}
	if v := f.AuthorizePublish(ctx, cl, &core.Message{Topic: "users/alice/x"}); v != core.Allow {
		t.Errorf("publish users/alice/x = %+v, want Permit", v)
	}
	v = f.AuthorizePublish(ctx, cl, &core.Message{Topic: "users/bob/x"})
	if v.Decision != core.DecisionDeny || v.Code != packets.NotAuthorized {
		t.Errorf("publish users/bob/x = %+v, want Deny Not Authorized", v)
	}
}

func TestEvents(t *testing.T) {
	without, _ := newTestFile(t, "", false, nil)
	with, _ := newTestFile(t, exampleACL, true, nil)
	tests := []struct {
		name string
		h    core.Hook
		has  []core.Event
		not  []core.Event
	}{
		{"auth.file without acl, not watching", without,
			[]core.Event{core.EventAuthenticate},
			[]core.Event{core.EventAuthorizePublish, core.EventAuthorizeSubscribe, core.EventPublish, core.EventStarted, core.EventStopped}},
		{"auth.file with acl, watching", with,
			[]core.Event{core.EventAuthenticate, core.EventAuthorizePublish, core.EventAuthorizeSubscribe},
			[]core.Event{core.EventPublish, core.EventDeliver, core.EventEnhancedAuth}},
		{"auth.allow", NewAllow(),
			[]core.Event{core.EventAuthenticate},
			[]core.Event{core.EventAuthorizePublish, core.EventAuthorizeSubscribe, core.EventStopped}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			es, err := core.EventsOf(tc.h)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range tc.has {
				if !es.Has(e) {
					t.Errorf("Events() lacks %s", e)
				}
			}
			for _, e := range tc.not {
				if es.Has(e) {
					t.Errorf("Events() has %s", e)
				}
			}
			if _, ok := tc.h.(core.TopicFilter); ok {
				t.Errorf("%T is a TopicFilter, want every topic", tc.h)
			}
		})
	}
	cl := &core.ClientInfo{ID: "x"}
	if v := NewAllow().Authenticate(context.Background(), cl, &core.Credentials{Username: "anyone"}); v != core.Allow {
		t.Errorf("auth.allow Authenticate = %+v, want Permit", v)
	}
	if v := without.AuthorizePublish(context.Background(), cl, &core.Message{Topic: "a"}); v != core.Next {
		t.Errorf("AuthorizePublish without an ACL = %+v, want Pass", v)
	}
}

// strictDecoder stands in for the config loader's Decode: YAML text decoded
// with unknown keys refused.
func strictDecoder(text string) func(any) error {
	return func(v any) error {
		if text == "" {
			return nil
		}
		dec := yaml.NewDecoder(strings.NewReader(text))
		dec.KnownFields(true)
		return dec.Decode(v)
	}
}

func TestModules(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "users.yaml", "users:\n  - {username: alice, password: '"+hashOf(t, "secret")+"'}\n")
	writeFile(t, dir, "acl.yaml", exampleACL)
	writeFile(t, dir, "bad.yaml", "users:\n  - {username: alice, password: plain}\n")
	tests := []struct {
		id, config string
		wantACL    bool
		wantErr    string
	}{
		{FileID, "users: users.yaml\nacl: acl.yaml\n", true, ""},
		{FileID, "users: " + filepath.Join(dir, "users.yaml") + "\n", false, ""},
		{FileID, "acl: acl.yaml\n", false, "auth.file: config: users: missing key"},
		{FileID, "", false, "auth.file: config: users: missing key"},
		{FileID, "users: users.yaml\nwatch: true\n", false, "field watch not found"},
		{FileID, "users: missing.yaml\n", false, "missing.yaml: cannot read the users file"},
		{FileID, "users: bad.yaml\n", false, "bad.yaml:2: users[0].password: not a bcrypt hash"},
		{FileID, "users: users.yaml\nacl: users.yaml\n", false, `users.yaml:1: users: unknown key (the only key is "rules")`},
		{FileID, "users: users.yaml\nverify_concurrency: 2\nverify_queue: 8\ncache_size: -1\ncache_ttl: 1m\nmax_failures: 5\nfailure_window: 30s\n", false, ""},
		{FileID, "users: users.yaml\nverify_queue: -1\n", false, "auth.file: config: verify_queue: -1 is outside 0..65536"},
		{FileID, "users: users.yaml\nfailure_window: 48h\n", false, "auth.file: config: failure_window: 48h0m0s is outside 0s..24h0m0s"},
		{AllowID, "", false, ""},
		{AllowID, "anything: 1\n", false, "field anything not found"},
	}
	for _, tc := range tests {
		t.Run(tc.id+" "+tc.config, func(t *testing.T) {
			m, ok := core.LookupHookModule(tc.id)
			if !ok {
				t.Fatalf("module %s not registered", tc.id)
			}
			h, err := m.New(core.HookConfig{Decode: strictDecoder(tc.config), Dir: dir})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("New: err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			if h.ID() != tc.id {
				t.Errorf("ID() = %q, want %q", h.ID(), tc.id)
			}
			if f, ok := h.(*File); ok {
				if err := f.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
				if (f.ACL() != nil) != tc.wantACL {
					t.Errorf("ACL loaded = %v, want %v", f.ACL() != nil, tc.wantACL)
				}
				if f.Users().Len() != 1 {
					t.Errorf("%d users, want 1", f.Users().Len())
				}
			}
		})
	}
}

func TestFileErrors(t *testing.T) {
	inner := errors.New("boom")
	fe := &FileError{File: "f.yaml", Line: 3, Key: "rules[0].allow", Problem: "bad", Err: inner}
	if got, want := fe.Error(), "f.yaml:3: rules[0].allow: bad: boom"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(fe, inner) {
		t.Error("FileError does not unwrap to its cause")
	}
	if got, want := (&FileError{File: "f.yaml", Problem: "empty"}).Error(), "f.yaml: empty"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	joined := errors.Join(fe, errors.Join(&FileError{File: "g"}, errors.New("plain")))
	if got := FileErrors(joined); len(got) != 3 || got[0] != fe || got[2].Problem != "plain" {
		t.Errorf("FileErrors = %v, want the three problems", got)
	}
}
