package plugins

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestConfigFill(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		err  string // "" when valid
	}{
		{"defaults", Config{Path: "p"}, ""},
		{"no path", Config{}, "path: required"},
		{"bad checksum", Config{Path: "p", SHA256: "abc"}, "sha256"},
		{"timeout too long", Config{Path: "p", Timeout: 2 * time.Minute}, "timeout"},
		{"negative batch delay", Config{Path: "p", BatchDelay: -time.Millisecond}, "batch_delay"},
		{"bad policy", Config{Path: "p", OnFailure: "allow"}, "on_failure"},
		{"procs too many", Config{Path: "p", Procs: 5000}, "procs"},
		{"env name with =", Config{Path: "p", Env: map[string]string{"A=B": "x"}}, "env"},
		{"empty env name", Config{Path: "p", Env: map[string]string{"": "x"}}, "env"},
		{"env ok", Config{Path: "p", Env: map[string]string{"AUTH_URL": "http://x"}}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.fill()
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.err != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.err)):
				t.Fatalf("error %v, want one starting %q", err, tc.err)
			}
		})
	}
	c := Config{Path: "p"}
	if err := c.fill(); err != nil {
		t.Fatal(err)
	}
	if c.Procs != 1 || c.BatchDelay != 2*time.Millisecond || c.BatchSize != 2048 || c.Timeout != 50*time.Millisecond {
		t.Errorf("defaults: procs %d, batch_delay %s, batch_size %d, timeout %s", c.Procs, c.BatchDelay, c.BatchSize, c.Timeout)
	}
}

// The plugin's environment: the broker's, then GOMAXPROCS and GOGC, then
// env, so that env wins (exec keeps the last of a repeated name).
func TestConfigEnviron(t *testing.T) {
	c := Config{Path: "p", Procs: 2, Env: map[string]string{"GOGC": "100", "B": "2", "A": "1"}}
	if err := c.fill(); err != nil {
		t.Fatal(err)
	}
	got := c.environ([]string{"HOME=/root"})
	want := []string{"HOME=/root", "GOMAXPROCS=2", "GOGC=400", "A=1", "B=2", "GOGC=100"}
	if !slices.Equal(got, want) {
		t.Fatalf("environ = %q, want %q", got, want)
	}
}
