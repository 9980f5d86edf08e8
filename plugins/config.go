// Package plugins runs hooks as separate plugin binaries
// (hashicorp/go-plugin over gRPC): the host side of the contract in
// plugins/proto/pluginv1. The hook's ID is "plugin"; plugin authors use
// plugins/sdk. See docs/plugins.md.
package plugins

import (
	"cmp"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vanemq/vanemq/core"
)

// ID is the hook's ID.
const ID = "plugin"

// Config configures a plugin.
type Config struct {
	// Path is the plugin binary, relative to Dir.
	Path string `yaml:"path"`
	// Args are its command-line arguments.
	Args []string `yaml:"args"`
	// SHA256, when set, is the binary's checksum (hex): a binary that
	// does not match is not run.
	SHA256 string `yaml:"sha256"`
	// Timeout bounds each decision call (default 50ms).
	Timeout time.Duration `yaml:"timeout"`
	// OnFailure is what a failed decision becomes: deny (default) or next.
	OnFailure core.FailurePolicy `yaml:"on_failure"`
	// Config is the plugin's own config block, passed to it as JSON.
	Config any `yaml:"config"`
	// QueueSize bounds the observer events waiting to be sent (default
	// 65536); beyond it events are dropped and counted.
	QueueSize int `yaml:"queue_size"`
	// BatchSize is the most events sent in one message (default 2048).
	BatchSize int `yaml:"batch_size"`
	// BatchDelay is how long a batch that is not full waits for more
	// events before it is sent (default 2ms): fewer, fuller messages
	// cost the broker and the plugin far less than one per event, and
	// wake the plugin less often.
	BatchDelay time.Duration `yaml:"batch_delay"`
	// HealthInterval is how often a running plugin is checked (default
	// 5s); a plugin that does not answer within Timeout×10 is restarted.
	HealthInterval time.Duration `yaml:"health_interval"`
	// MaxRestarts is how many restarts in a row (without a healthy
	// minute between) the plugin may need before it counts as down
	// (default 5): the restarts go on, but each is then logged as an
	// error, and Health says it is down rather than restarting.
	MaxRestarts int `yaml:"max_restarts"`
	// RestartDelay is the wait before the first restart in a row
	// (default 100ms); each further one waits twice as long as the one
	// before, up to MaxBackoff, with up to half as much again at random.
	RestartDelay time.Duration `yaml:"restart_delay"`
	// MaxBackoff caps the wait between restarts (default 5m): a plugin
	// that keeps failing is tried again at least this often, for ever,
	// and SIGHUP or Restart tries it at once.
	MaxBackoff time.Duration `yaml:"max_backoff"`
	// StartTimeout bounds starting the binary and its handshake
	// (default 10s).
	StartTimeout time.Duration `yaml:"start_timeout"`
	// Procs is how many cores a Go plugin's runtime uses (GOMAXPROCS in
	// its environment; default 1). One keeps a decision call's wake-ups
	// cheap and a busy plugin off the broker's other cores; raise it for
	// a plugin that computes in parallel (bcrypt under a connect storm).
	Procs int `yaml:"procs"`
	// Env holds environment variables for the plugin, added to the
	// broker's. GOGC is 400 unless set here: a plugin's heap is small, and
	// at Go's default it would collect many times a second under a
	// stream of events.
	Env map[string]string `yaml:"env"`

	// Name is the hook's ID: "plugin" (the default), or "plugin:NAME" to
	// run several plugins in one broker.
	Name string `yaml:"-"`
	// Dir is the config file's directory, for a relative Path.
	Dir string `yaml:"-"`
	// Logger receives the hook's lines and the plugin's own.
	Logger *slog.Logger `yaml:"-"`
}

// fill checks the config and fills in defaults.
func (c *Config) fill() error {
	if c.Path == "" {
		return errors.New("path: required: the plugin binary")
	}
	if c.Name == "" {
		c.Name = ID
	}
	c.SHA256 = strings.ToLower(c.SHA256)
	if c.Dir != "" && !filepath.IsAbs(c.Path) {
		c.Path = filepath.Join(c.Dir, c.Path)
	}
	if c.SHA256 != "" {
		if b, err := hex.DecodeString(c.SHA256); err != nil || len(b) != 32 {
			return fmt.Errorf("sha256: %q is not 64 hexadecimal digits", c.SHA256)
		}
	}
	err := cmp.Or( // the first error
		core.DefaultWithin(&c.Timeout, 50*time.Millisecond, time.Minute, "timeout"),
		core.DefaultWithin(&c.BatchDelay, 2*time.Millisecond, time.Second, "batch_delay"),
		core.DefaultWithin(&c.HealthInterval, 5*time.Second, time.Hour, "health_interval"),
		core.DefaultWithin(&c.StartTimeout, 10*time.Second, 10*time.Minute, "start_timeout"),
		core.DefaultWithin(&c.QueueSize, 65536, 1<<24, "queue_size"),
		core.DefaultWithin(&c.BatchSize, 2048, 65536, "batch_size"),
		core.DefaultWithin(&c.MaxRestarts, 5, 1000, "max_restarts"),
		core.DefaultWithin(&c.RestartDelay, 100*time.Millisecond, time.Hour, "restart_delay"),
		core.DefaultWithin(&c.MaxBackoff, 5*time.Minute, time.Hour, "max_backoff"),
		core.DefaultWithin(&c.Procs, 1, 1024, "procs"),
	)
	if err != nil {
		return err
	}
	if c.RestartDelay > c.MaxBackoff {
		return fmt.Errorf("restart_delay: %s is more than max_backoff (%s)", c.RestartDelay, c.MaxBackoff)
	}
	if err := c.OnFailure.Fill(); err != nil {
		return err
	}
	for k := range c.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return fmt.Errorf("env: %q is not an environment variable name", k)
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// environ is the plugin's environment: the broker's, GOMAXPROCS from
// Procs, GOGC=400, then Env (later entries win).
func (c *Config) environ(base []string) []string {
	env := append(base, "GOMAXPROCS="+strconv.Itoa(c.Procs), "GOGC=400")
	for _, k := range slices.Sorted(maps.Keys(c.Env)) {
		env = append(env, k+"="+c.Env[k])
	}
	return env
}

// backoff is the wait before the nth restart in a row (n from 1):
// RestartDelay doubled n-1 times, at most MaxBackoff, before jitter.
func (c *Config) backoff(n int) time.Duration {
	d := c.RestartDelay
	for i := 1; i < n && d < c.MaxBackoff; i++ { // at most ~36 doublings from 1ns to an hour
		d *= 2
	}
	return min(d, c.MaxBackoff)
}

// policyVerdict is what a failed decision becomes.
func (c *Config) policyVerdict() core.Verdict {
	return c.OnFailure.Verdict("plugin unavailable")
}
