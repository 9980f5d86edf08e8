package vanemqcmd

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/vanemq/vanemq/hooks/auth"
)

// passwd runs `vanemq passwd` through run, as the binary does, with stdin
// as standard input, and returns the exit status and what it printed.
func passwd(t *testing.T, stdin string, args ...string) (int, string) {
	t.Helper()
	var stderr bytes.Buffer
	code := runPasswd(context.Background(), args, strings.NewReader(stdin), &stderr)
	return code, stderr.String()
}

// checkPassword fails unless file gives user the password.
func checkPassword(t *testing.T, file, user, password string) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	u, err := auth.ParseUsers(file, data)
	if err != nil {
		t.Fatalf("the written file does not load: %v\n%s", err, data)
	}
	if !u.Has(user) {
		t.Fatalf("%s missing:\n%s", user, data)
	}
	h := hashFor(t, data, user)
	if err := bcrypt.CompareHashAndPassword([]byte(h), []byte(password)); err != nil {
		t.Errorf("%s's hash does not match %q: %v", user, password, err)
	}
}

// hashFor picks user's hash out of a users file written by passwd.
func hashFor(t *testing.T, data []byte, user string) string {
	t.Helper()
	lines := strings.Split(string(data), "\n")
	for i, l := range lines {
		if strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "- ")) == "username: "+user && i+1 < len(lines) {
			_, h, _ := strings.Cut(lines[i+1], "password: ")
			return strings.Trim(h, "'\"")
		}
	}
	t.Fatalf("no entry for %s in:\n%s", user, data)
	return ""
}

func TestPasswdRoundTrip(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "users.yaml")
	steps := []struct {
		user, password string
		wantMsg        string
	}{
		{"alice", "first", "added alice"},
		{"bob", "builder", "added bob"},
		{"alice", "second", "changed the password of alice"},
	}
	for _, s := range steps {
		code, out := passwd(t, s.password+"\n", "--cost", "4", file, s.user)
		if code != 0 {
			t.Fatalf("passwd %s: exit %d: %s", s.user, code, out)
		}
		if !strings.Contains(out, s.wantMsg) {
			t.Errorf("output %q lacks %q", out, s.wantMsg)
		}
		if strings.Contains(out, s.password) {
			t.Errorf("output shows the password: %q", out)
		}
	}
	checkPassword(t, file, "alice", "second")
	checkPassword(t, file, "bob", "builder")
	data, _ := os.ReadFile(file)
	if c, err := bcrypt.Cost([]byte(hashFor(t, data, "alice"))); err != nil || c != 4 {
		t.Errorf("cost %d (%v), want 4", c, err)
	}
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*tmp*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// The default cost is bcrypt's default, and a file with comments keeps
// them.
func TestPasswdDefaultCostKeepsComments(t *testing.T) {
	file := filepath.Join(t.TempDir(), "users.yaml")
	if err := os.WriteFile(file, []byte("# broker users\nusers: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out := passwd(t, "pw", file, "carol"); code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	data, _ := os.ReadFile(file)
	if !strings.Contains(string(data), "# broker users") {
		t.Errorf("comment lost:\n%s", data)
	}
	if c, _ := bcrypt.Cost([]byte(hashFor(t, data, "carol"))); c != bcrypt.DefaultCost {
		t.Errorf("cost %d, want %d", c, bcrypt.DefaultCost)
	}
	checkPassword(t, file, "carol", "pw")
}

func TestPasswdStdin(t *testing.T) {
	tests := []struct {
		name, stdin, want string
	}{
		{"line", "s3cret\n", "s3cret"},
		{"CRLF", "s3cret\r\n", "s3cret"},
		{"no newline", "s3cret", "s3cret"},
		{"only the first line", "one\ntwo\n", "one"},
		{"spaces kept", " a b \n", " a b "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "users.yaml")
			if code, out := passwd(t, tc.stdin, "--cost", "4", file, "u"); code != 0 {
				t.Fatalf("exit %d: %s", code, out)
			}
			checkPassword(t, file, "u", tc.want)
		})
	}
	// A pipe is an *os.File that is not a terminal: read as a line too.
	t.Run("pipe", func(t *testing.T) {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		if _, err := w.WriteString("piped\n"); err != nil {
			t.Fatal(err)
		}
		w.Close()
		file := filepath.Join(t.TempDir(), "users.yaml")
		var stderr bytes.Buffer
		if code := runPasswd(context.Background(), []string{"--cost", "4", file, "u"}, r, &stderr); code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
		checkPassword(t, file, "u", "piped")
	})
}

func TestPasswdErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	badData := "users:\n  - {username: bob, password: plain}\n"
	if err := os.WriteFile(bad, []byte(badData), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		stdin string
		args  []string
		code  int
		want  string
	}{
		{"no arguments", "pw\n", nil, 2, "want FILE and USER, got 0"},
		{"one argument", "pw\n", []string{"f"}, 2, "Usage: vanemq passwd"},
		{"three arguments", "pw\n", []string{"f", "u", "x"}, 2, "got 3"},
		{"bad flag", "pw\n", []string{"--nope", "f", "u"}, 2, "flag provided but not defined"},
		{"cost too low", "pw\n", []string{"--cost", "3", "f", "u"}, 2, "--cost 3: want 4 to 31"},
		{"empty user", "pw\n", []string{filepath.Join(dir, "x.yaml"), ""}, 2, "USER is empty"},
		{"empty password", "\n", []string{filepath.Join(dir, "x.yaml"), "u"}, 1, "empty password refused"},
		{"no input", "", []string{filepath.Join(dir, "x.yaml"), "u"}, 1, "empty password refused"},
		{"password too long", strings.Repeat("x", 73) + "\n", []string{filepath.Join(dir, "x.yaml"), "u"}, 1, "73 bytes long"},
		{"broken file", "pw\n", []string{"--cost", "4", bad, "alice"}, 1, bad + ":2: users[0].password: not a bcrypt hash"},
		{"directory missing", "pw\n", []string{"--cost", "4", filepath.Join(dir, "no", "users.yaml"), "u"}, 1, "writing"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out := passwd(t, tc.stdin, tc.args...)
			if code != tc.code || !strings.Contains(out, tc.want) {
				t.Errorf("exit %d, output:\n%s\nwant exit %d and %q", code, out, tc.code, tc.want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "x.yaml")); err == nil {
		t.Error("a refused run wrote the file")
	}
	if data, _ := os.ReadFile(bad); string(data) != badData {
		t.Errorf("the broken file was changed:\n%s", data)
	}
	if code, _ := passwd(t, "", "--help"); code != 0 {
		t.Errorf("--help: exit %d, want 0", code)
	}
}

// A users file reached through a symbolic link is updated where it is,
// and the link stays.
func TestPasswdSymlink(t *testing.T) {
	real := filepath.Join(t.TempDir(), "users.yaml")
	link := filepath.Join(t.TempDir(), "users.yaml")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if code, out := passwd(t, "pw\n", "--cost", "4", link, "u"); code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the link was replaced (%v)", err)
	}
	checkPassword(t, real, "u", "pw")
}

// run dispatches "passwd" to runPasswd; stdin here is the test binary's,
// so only a usage error is exercised.
func TestRunDispatchesPasswd(t *testing.T) {
	var stderr bytes.Buffer
	if code := run(context.Background(), []string{"passwd"}, &stderr); code != 2 || !strings.Contains(stderr.String(), "vanemq passwd") {
		t.Errorf("run passwd: exit %d, output %q; want 2 and the passwd usage", code, stderr.String())
	}
}
