package auth

import (
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// A well-formed cost-4 hash (of "x"), written into files as text.
const goodHash = "$2a$04$B4BbHkVNcEKq4oKkBmZdVevDpOCLuTb1Cpn03VSuvjCL5bpCKWGHC"

func TestParseUsers(t *testing.T) {
	if _, err := bcrypt.Cost([]byte(goodHash)); err != nil {
		t.Fatalf("goodHash is not a bcrypt hash: %v", err)
	}
	tests := []struct {
		name  string
		data  string
		users []string // users expected on success
		errs  []string // problems expected, in order
	}{
		{"one user", "users:\n  - username: alice\n    password: \"" + goodHash + "\"\n", []string{"alice"}, nil},
		{"flow style, two users", "users:\n  - {username: alice, password: '" + goodHash + "'}\n  - {username: bob, password: '" + goodHash + "'}\n",
			[]string{"alice", "bob"}, nil},
		{"empty list", "users: []\n", nil, nil},
		{"null list", "users:\n", nil, nil},
		{"numeric user name", "users:\n  - {username: 123, password: '" + goodHash + "'}\n", []string{"123"}, nil},
		{"$2b$ and $2y$", "users:\n  - {username: a, password: '$2b" + goodHash[3:] + "'}\n  - {username: b, password: '$2y" + goodHash[3:] + "'}\n",
			[]string{"a", "b"}, nil},

		{"plaintext password", "users:\n  - username: alice\n    password: hunter2\n", nil,
			[]string{"users.yaml:3: users[0].password: not a bcrypt hash (a plaintext password?)"}},
		{"truncated hash", "users:\n  - username: alice\n    password: \"" + goodHash[:50] + "\"\n", nil,
			[]string{"users.yaml:3: users[0].password: not a bcrypt hash: 50 characters long, want 60"}},
		{"unknown version", "users:\n  - {username: alice, password: '$2x" + goodHash[3:] + "'}\n", nil,
			[]string{"users.yaml:2: users[0].password: not a bcrypt hash: the version must be"}},
		{"bad cost", "users:\n  - {username: alice, password: '$2a$99" + goodHash[6:] + "'}\n", nil,
			[]string{"users.yaml:2: users[0].password: not a bcrypt hash: cost 99"}},
		{"bad alphabet", "users:\n  - {username: alice, password: '" + goodHash[:59] + "!'}\n", nil,
			[]string{"users.yaml:2: users[0].password: not a bcrypt hash: character 60"}},
		{"missing password", "users:\n  - username: alice\n", nil,
			[]string{"users.yaml:2: users[0].password: missing key"}},
		{"missing username", "users:\n  - password: '" + goodHash + "'\n", nil,
			[]string{"users.yaml:2: users[0].username: missing key"}},
		{"empty username", "users:\n  - {username: '', password: '" + goodHash + "'}\n", nil,
			[]string{"users.yaml:2: users[0].username: empty"}},
		{"duplicate user", "users:\n  - {username: alice, password: '" + goodHash + "'}\n  - {username: alice, password: '" + goodHash + "'}\n", nil,
			[]string{`users.yaml:3: users[1].username: duplicate user "alice" (first at line 2)`}},
		{"unknown entry key", "users:\n  - {username: alice, password: '" + goodHash + "', role: admin}\n", nil,
			[]string{"users.yaml:2: users[0].role: unknown key (known keys: username, password, client_ids)"}},
		{"unknown top key", "users: []\ngroups: []\n", nil,
			[]string{`users.yaml:2: groups: unknown key (known keys: users, client_ids)`}},
		{"no users key", "rules: []\n", nil,
			[]string{`users.yaml:1: rules: unknown key`, "users.yaml:1: users: missing key"}},
		{"empty file", "", nil, []string{`users.yaml: the file is empty; want a mapping with the key "users"`}},
		{"users not a list", "users: alice\n", nil, []string{"users.yaml:1: users: want a list, found a str value"}},
		{"entry not a mapping", "users:\n  - alice\n", nil, []string{"users.yaml:2: users[0]: want a mapping with the keys username, password"}},
		{"password not a string", "users:\n  - username: alice\n    password: [a]\n", nil, []string{"users.yaml:3: users[0].password: want a bcrypt hash, found a list"}},
		{"bad YAML", "users:\n  - {username: alice\n", nil, []string{"users.yaml:1: not valid YAML: did not find expected ',' or '}'"}},
		{"several problems", "users:\n  - {username: a, password: x}\n  - {username: b}\n", nil,
			[]string{"users.yaml:2: users[0].password: not a bcrypt hash", "users.yaml:3: users[1].password: missing key"}},
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
			if u.Len() != len(tc.users) {
				t.Errorf("Len() = %d, want %d", u.Len(), len(tc.users))
			}
			for _, name := range tc.users {
				if !u.Has(name) {
					t.Errorf("user %q missing", name)
				}
			}
		})
	}
}

// A plaintext password in the file must not be repeated in the error,
// which ends up in logs.
func TestParseUsersNeverQuotesPasswords(t *testing.T) {
	for _, secret := range []string{"hunter2-secret", "$2a$10$short-secret", "$2q$10$" + strings.Repeat("s", 53)} {
		_, err := ParseUsers("users.yaml", []byte("users:\n  - {username: alice, password: '"+secret+"'}\n"))
		if err == nil {
			t.Fatalf("%q accepted as a hash", secret)
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "secret") {
			t.Errorf("error quotes the password: %v", err)
		}
	}
}

// The dummy cost is the commonest cost among the users.
func TestParseUsersCost(t *testing.T) {
	h5, _ := bcrypt.GenerateFromPassword([]byte("x"), 5)
	data := "users:\n  - {username: a, password: '" + goodHash + "'}\n  - {username: b, password: '" + string(h5) +
		"'}\n  - {username: c, password: '" + string(h5) + "'}\n"
	u, err := ParseUsers("users.yaml", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	if u.cost != 5 {
		t.Errorf("cost = %d, want 5", u.cost)
	}
	empty, err := ParseUsers("users.yaml", []byte("users: []"))
	if err != nil {
		t.Fatal(err)
	}
	if empty.cost != bcrypt.DefaultCost {
		t.Errorf("cost without users = %d, want %d", empty.cost, bcrypt.DefaultCost)
	}
}

func TestSetUser(t *testing.T) {
	h1 := hashOf(t, "one")
	h2 := hashOf(t, "two")
	tests := []struct {
		name      string
		in        string
		user      string
		hash      string
		wantAdded bool
		wantIn    []string // substrings of the output
		wantErr   string
	}{
		{"new file", "", "alice", h1, true, []string{"users:", "username: alice", h1}, ""},
		{"comment-only file", "# users of the broker\n", "alice", h1, true, []string{"username: alice", h1}, ""},
		{"append, keep others and comments", "# the users\nusers:\n  - username: bob # the admin\n    password: " + h1 + "\n",
			"alice", h2, true, []string{"# the users", "# the admin", "username: bob", h1, "username: alice", h2}, ""},
		{"update", "users:\n  - username: alice\n    password: '" + h1 + "' # set by hand\n  - username: bob\n    password: '" + h1 + "'\n",
			"alice", h2, false, []string{"username: bob", h2, "# set by hand"}, ""},
		{"update flow style", "users:\n  - {username: alice, password: '" + h1 + "'}\n", "alice", h2, false, []string{"{username: alice, password: '" + h2 + "'}"}, ""},
		{"append flow style", "users:\n  - {username: bob, password: '" + h1 + "'}\n", "alice", h2, true, []string{"{username: alice, password: '" + h2 + "'}"}, ""},
		{"null list", "users:\n", "alice", h1, true, []string{"username: alice"}, ""},
		{"fixes a plaintext password? no: the file is refused", "users:\n  - {username: bob, password: plain}\n", "alice", h1, false, nil,
			"users.yaml:2: users[0].password: not a bcrypt hash"},
		{"not a hash", "", "alice", "plain", false, nil, "users.yaml: password: not a bcrypt hash"},
		{"empty user", "", "", h1, false, nil, "users.yaml: username: empty user name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, added, err := SetUser("users.yaml", []byte(tc.in), tc.user, []byte(tc.hash))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("SetUser: %v", err)
			}
			if added != tc.wantAdded {
				t.Errorf("added = %v, want %v", added, tc.wantAdded)
			}
			for _, w := range tc.wantIn {
				if !strings.Contains(string(out), w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if strings.Contains(string(out), h1) && tc.hash == h2 && !tc.wantAdded && !strings.Contains(tc.in, "bob") {
				t.Errorf("old hash kept:\n%s", out)
			}
			u, err := ParseUsers("users.yaml", out)
			if err != nil {
				t.Fatalf("output does not parse: %v\n%s", err, out)
			}
			if got := string(u.hashes[tc.user]); got != tc.hash {
				t.Errorf("hash of %s = %q, want %q\n%s", tc.user, got, tc.hash, out)
			}
		})
	}
}
