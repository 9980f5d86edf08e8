package main

// Unit tests of the plugin's decisions, run in process over the same gRPC
// contract the broker uses (sdk/plugintest). examples/plugin's tests run
// the built binary in a broker.

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/vanemq/vanemq/plugins/sdk"
	"github.com/vanemq/vanemq/plugins/sdk/plugintest"
)

// hash is a bcrypt hash of password at the lowest cost, to keep tests
// fast.
func hash(t *testing.T, password string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// writeFile writes data to name in a new temporary directory and returns
// its path.
func writeFile(t *testing.T, name, data string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// cred is a CONNECT's credentials; user "" sends no user name.
func cred(user, password string) sdk.Credentials {
	return sdk.Credentials{Username: user, UsernameSet: user != "", Password: []byte(password), PasswordSet: password != ""}
}

// checkVerdicts checks the verdicts of h for alice (password "alice-pw")
// and everyone else.
func checkVerdicts(t *testing.T, h *plugintest.Harness) {
	t.Helper()
	tests := []struct {
		name string
		cred sdk.Credentials
		want sdk.Decision
	}{
		{"right password", cred("alice", "alice-pw"), sdk.DecisionAllow},
		{"wrong password", cred("alice", "nope"), sdk.DecisionDeny},
		{"no password", cred("alice", ""), sdk.DecisionDeny},
		{"unknown user", cred("mallory", "alice-pw"), sdk.DecisionDeny},
		{"no user name", cred("", "alice-pw"), sdk.DecisionDeny},
		{"password over 72 bytes", cred("alice", "alice-pw"+strings.Repeat("x", 70)), sdk.DecisionDeny},
	}
	for _, tc := range tests {
		v := h.Authenticate(sdk.Client{ID: "c-" + tc.cred.Username, Username: tc.cred.Username}, tc.cred)
		if v.Decision != tc.want {
			t.Errorf("%s: verdict %+v, want result %d", tc.name, v, tc.want)
		}
		if tc.want == sdk.DecisionDeny && (v.Code != 0x86 || v.Reason != "bad user name or password") {
			t.Errorf("%s: refused with %#x %q, want 0x86 \"bad user name or password\"", tc.name, v.Code, v.Reason)
		}
	}
}

// The plugin describes one decision, authentication, and decides it from
// a JSON users file.
func TestJSONUsers(t *testing.T) {
	users := writeFile(t, "users.json", `[
		{"username": "alice", "password_hash": "`+hash(t, "alice-pw")+`"},
		{"username": "bob", "password_hash": "`+hash(t, "bob-pw")+`"}
	]`)
	h := plugintest.Start(t, &authPlugin{}, map[string]any{"users": users})
	d := h.Description()
	if d.Name != "auth" || len(d.Handlers) != 1 || d.Handlers[0].Event != sdk.EventAuthenticate || d.Handlers[0].Mode != sdk.ModeDecision {
		t.Fatalf("description %+v, want auth deciding authenticate", d)
	}
	checkVerdicts(t, h)
	if v := h.Authenticate(sdk.Client{ID: "b"}, cred("bob", "bob-pw")); v.Decision != sdk.DecisionAllow {
		t.Errorf("bob: verdict %+v, want allow", v)
	}
}

// A users file whose name ends in .csv is read as CSV, with comments and
// an optional header.
func TestCSVUsers(t *testing.T) {
	users := writeFile(t, "users.CSV", "username,password_hash\n# a comment\nalice, "+hash(t, "alice-pw")+"\n")
	checkVerdicts(t, plugintest.Start(t, &authPlugin{}, map[string]any{"users": users}))
}

// The shipped users.json holds alice and bob with the passwords the
// README gives.
func TestShippedUsers(t *testing.T) {
	h := plugintest.Start(t, &authPlugin{}, map[string]any{"users": "users.json"})
	for user, pw := range map[string]string{"alice": "alice-secret", "bob": "bob-secret"} {
		if v := h.Authenticate(sdk.Client{ID: user}, cred(user, pw)); v.Decision != sdk.DecisionAllow {
			t.Errorf("%s: verdict %+v, want allow", user, v)
		}
	}
}

// Bad config and bad users files are refused by loadUsers (Init returns
// the error, and the broker does not start), naming the file and the
// entry, never quoting a hash.
func TestBadUsersFiles(t *testing.T) {
	good := hash(t, "pw")
	tests := []struct {
		name, file, data, want string
	}{
		{"missing", "", "", "no such file"},
		{"not JSON", "u.json", "alice:" + good, "want a JSON list"},
		{"unknown key", "u.json", `[{"username": "a", "password": "x"}]`, `unknown field "password"`},
		{"plaintext", "u.json", `[{"username": "a", "password_hash": "secret"}]`, `entry 1: user "a": password_hash is not a bcrypt hash`},
		{"empty name", "u.json", `[{"username": "", "password_hash": "` + good + `"}]`, "entry 1: empty user name"},
		{"twice", "u.json", `[{"username": "a", "password_hash": "` + good + `"}, {"username": "a", "password_hash": "` + good + `"}]`, `entry 2: user "a" listed twice`},
		{"CSV fields", "u.csv", "a," + good + ",x\n", "wrong number of fields"},
		{"CSV plaintext", "u.csv", "a,b\n# c\nc,secret\n", `line 1: user "a": password_hash is not a bcrypt hash`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "absent.json")
			if tc.file != "" {
				path = writeFile(t, tc.file, tc.data)
			}
			_, _, err := loadUsers(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("loadUsers: %v, want an error naming %s and %q", err, path, tc.want)
			}
			if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), good) {
				t.Errorf("the error quotes a password or hash: %v", err)
			}
		})
	}
	if err := initWith(t, map[string]any{}); err == nil || !strings.Contains(err.Error(), "users: required") {
		t.Errorf("Init without users: %v", err)
	}
	if err := initWith(t, map[string]any{"user": "x.json"}); err == nil || !strings.Contains(err.Error(), `unknown field "user"`) {
		t.Errorf("Init with a misspelt key: %v", err)
	}
}

// initWith calls Init directly with the config block cfg, for the errors
// that plugintest.Start would fail the test on.
func initWith(t *testing.T, cfg any) error {
	t.Helper()
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = (&authPlugin{}).Init(context.Background(), sdk.InitRequest{Config: b})
	return err
}
