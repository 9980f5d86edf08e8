package js

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"time"

	"github.com/vanemq/vanemq/core"
)

// ID is the hook's ID.
const ID = "js"

// Config configures a JavaScript hook.
type Config struct {
	// Script is the script file; relative to Dir.
	Script string `yaml:"script"`
	// Timeout bounds every call into the script (default 10ms).
	Timeout time.Duration `yaml:"timeout"`
	// Wait bounds how long a call waits for a free runtime when all are
	// busy (default 1s): under a burst, calls queue for the pool rather
	// than fail; a call that still finds none fails like a timeout.
	Wait time.Duration `yaml:"wait"`
	// Pool is the number of runtimes, calls that can run at once (0:
	// GOMAXPROCS).
	Pool int `yaml:"pool"`
	// OnFailure is what a failed decision becomes: deny (default) or next.
	OnFailure core.FailurePolicy `yaml:"on_failure"`
	// CacheTTL, when above 0, caches each decision of authorizePublish
	// and authorizeSubscribe per client, action and topic for this long.
	CacheTTL time.Duration `yaml:"cache_ttl"`
	// CacheSize bounds the decision cache (default 100000 entries).
	CacheSize int `yaml:"cache_size"`
	// Vars are values of the operator's own for the script: config.vars.
	Vars map[string]any `yaml:"vars"`
	// Watch reloads the script when its file changes (default true);
	// SIGHUP always reloads it.
	Watch *bool `yaml:"watch"`

	// Name is the hook's ID: "js" (the default), or "js:NAME" to run
	// several scripts in one broker; not from YAML.
	Name string `yaml:"-"`
	// Dir is the directory relative paths are taken from (the config
	// file's); not from YAML.
	Dir string `yaml:"-"`
	// Logger receives the hook's log lines and the script's log calls.
	Logger *slog.Logger `yaml:"-"`
}

// maxTimeout bounds Config.Timeout: a call holds a client's reader.
const maxTimeout = 10 * time.Second

// fill checks the config and fills in defaults.
func (c *Config) fill() error {
	if c.Script == "" {
		return errors.New("script: required: the JavaScript file to run")
	}
	if c.Name == "" {
		c.Name = ID
	}
	if c.Dir != "" && !filepath.IsAbs(c.Script) {
		c.Script = filepath.Join(c.Dir, c.Script)
	}
	err := cmp.Or( // the first error
		core.DefaultWithin(&c.Timeout, 10*time.Millisecond, maxTimeout, "timeout"),
		core.DefaultWithin(&c.Wait, time.Second, maxTimeout, "wait"),
		core.DefaultWithin(&c.Pool, runtime.GOMAXPROCS(0), 1024, "pool"),
	)
	if err != nil {
		return err
	}
	if err := c.OnFailure.Fill(); err != nil {
		return err
	}
	if c.CacheTTL < 0 {
		return fmt.Errorf("cache_ttl: %s is negative", c.CacheTTL)
	}
	switch {
	case c.CacheSize < 0:
		return fmt.Errorf("cache_size: %d is negative", c.CacheSize)
	case c.CacheSize == 0:
		c.CacheSize = 100000
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// watch reports whether the file is watched.
func (c *Config) watch() bool { return c.Watch == nil || *c.Watch }
