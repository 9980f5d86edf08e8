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
		{"negative restart delay", Config{Path: "p", RestartDelay: -time.Second}, "restart_delay: -1s is outside 0s..1h0m0s"},
		{"max backoff too long", Config{Path: "p", MaxBackoff: 2 * time.Hour}, "max_backoff: 2h0m0s is outside 0s..1h0m0s"},
		{"restart delay over the default max backoff", Config{Path: "p", RestartDelay: 10 * time.Minute}, "restart_delay: 10m0s is more than max_backoff (5m0s)"},
		{"restart delay and max backoff", Config{Path: "p", RestartDelay: 10 * time.Minute, MaxBackoff: time.Hour}, ""},
		{"max restarts too many", Config{Path: "p", MaxRestarts: 1001}, "max_restarts"},
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
	if c.MaxRestarts != 5 || c.RestartDelay != 100*time.Millisecond || c.MaxBackoff != 5*time.Minute {
		t.Errorf("defaults: max_restarts %d, restart_delay %s, max_backoff %s", c.MaxRestarts, c.RestartDelay, c.MaxBackoff)
	}
}

// Restarts in a row wait restart_delay, then twice as long each time, up
// to max_backoff and no further, however many there are.
func TestConfigBackoff(t *testing.T) {
	cases := []struct {
		delay, max time.Duration
		n          int
		want       time.Duration
	}{
		{100 * time.Millisecond, 5 * time.Minute, 1, 100 * time.Millisecond},
		{100 * time.Millisecond, 5 * time.Minute, 2, 200 * time.Millisecond},
		{100 * time.Millisecond, 5 * time.Minute, 6, 3200 * time.Millisecond},
		{100 * time.Millisecond, 5 * time.Minute, 12, 204800 * time.Millisecond},
		{100 * time.Millisecond, 5 * time.Minute, 13, 5 * time.Minute},
		{100 * time.Millisecond, 5 * time.Minute, 1 << 30, 5 * time.Minute},
		{time.Nanosecond, time.Hour, 1000, time.Hour},
		{time.Hour, time.Hour, 1, time.Hour},
		{50 * time.Millisecond, 120 * time.Millisecond, 3, 120 * time.Millisecond},
	}
	for _, tc := range cases {
		c := Config{Path: "p", RestartDelay: tc.delay, MaxBackoff: tc.max}
		if err := c.fill(); err != nil {
			t.Fatal(err)
		}
		if got := c.backoff(tc.n); got != tc.want {
			t.Errorf("restart_delay %s, max_backoff %s: restart %d waits %s, want %s", tc.delay, tc.max, tc.n, got, tc.want)
		}
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
