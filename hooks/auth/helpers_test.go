package auth

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/vanemq/vanemq/core/logtest"
)

// hashOf returns a bcrypt hash of password at the lowest cost, to keep
// the tests fast.
func hashOf(t testing.TB, password string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatalf("bcrypt: %v", err)
	}
	return string(h)
}

// writeFile writes data to dir/name the way editors and `vanemq passwd`
// do, a new file renamed over the old one, and returns the path.
func writeFile(t testing.TB, dir, name, data string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	return path
}

type logBuffer = logtest.Buffer

// wantErrors checks that err lists exactly the problems want, each a
// substring of one FileError's text, in order.
func wantErrors(t testing.TB, err error, want []string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %q", want)
	}
	got := FileErrors(err)
	var texts []string
	for _, fe := range got {
		texts = append(texts, fe.Error())
	}
	if len(got) != len(want) {
		t.Fatalf("got %d problem(s), want %d:\n%s\nwant:\n%s", len(got), len(want), strings.Join(texts, "\n"), strings.Join(want, "\n"))
	}
	for i, w := range want {
		if !strings.Contains(texts[i], w) {
			t.Errorf("problem %d = %q, want it to contain %q", i, texts[i], w)
		}
	}
}
