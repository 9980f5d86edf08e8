// Package js runs hook scripts written in JavaScript with goja: ACL rules
// and message logic an operator edits without rebuilding or restarting the
// broker. See docs/javascript.md.
package js

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/hooks/filewatch"
)

// Hook is the js hook: it calls the functions a script defines, from a
// pool of runtimes, and reloads the script on SIGHUP and when it changes.
type Hook struct {
	cfg   Config
	lim   vmLimits
	log   *slog.Logger
	srv   *core.Server
	cur   atomic.Pointer[pool]
	cache atomic.Pointer[decisionCache] // nil when off

	reloadMu sync.Mutex
	watch    *filewatch.Watcher
	closed   atomic.Bool

	clock    atomic.Int64 // coarse unix nanos, kept by the watchdog
	failures atomic.Int64
	logged   atomic.Int64 // unix nanos of the last failure logged
	muted    atomic.Int64 // failures not logged since
}

// The hook handles every event a script can define a function for, and
// says which it handles now (Events, Topics); the server closes it after
// OnStopped.
var (
	_ core.DynamicHook    = (*Hook)(nil)
	_ core.FailureCounter = (*Hook)(nil)
	_ io.Closer           = (*Hook)(nil)
)

// The runtime limits.
const (
	maxLen   = 1 << 20 // characters or elements the capped built-ins may build
	maxStack = 256     // nested calls
)

// New compiles the script and starts its runtimes. srv, when not nil, is
// the server the hook publishes into (publish()) and whose pipeline it
// refreshes when a reload changes the script's functions.
func New(cfg Config, srv *core.Server) (*Hook, error) {
	if err := cfg.fill(); err != nil {
		return nil, fmt.Errorf("%s: %w", ID, err)
	}
	h := &Hook{cfg: cfg, log: cfg.Logger, srv: srv}
	h.clock.Store(time.Now().UnixNano())
	h.lim = vmLimits{timeout: cfg.Timeout, wait: cfg.Wait, maxLen: maxLen, stack: maxStack,
		log: cfg.Logger, config: cfg.scriptConfig(), clock: &h.clock}
	if srv != nil {
		h.lim.publish = srv.Publish
	}
	p, err := h.load()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ID, err)
	}
	h.cur.Store(p)
	h.resetCache()
	// SIGHUP always reloads; the file is watched unless watch is false.
	var files []string
	if cfg.watch() {
		files = []string{cfg.Script}
	}
	w, err := filewatch.Start(files, cfg.Logger, func(trigger string) { _ = h.reload(trigger) })
	if err != nil {
		p.retire()
		return nil, fmt.Errorf("%s: %w", ID, err)
	}
	h.watch = w
	h.log.Info("script loaded", "script", cfg.Script, "functions", p.prog.functions(), "topics", p.prog.topics, "pool", cfg.Pool)
	return h, nil
}

// scriptConfig is the config block as the script's config global.
func (c *Config) scriptConfig() map[string]any {
	vars := c.Vars
	if vars == nil {
		vars = map[string]any{}
	}
	return map[string]any{
		"script": filepath.Base(c.Script), "timeout": c.Timeout.String(), "wait": c.Wait.String(), "pool": c.Pool,
		"on_failure": string(c.OnFailure), "cache_ttl": c.CacheTTL.String(), "vars": vars,
	}
}

// functions lists the functions the script defines.
func (p *program) functions() []string {
	var out []string
	for f := range numFns {
		if p.has[f] {
			out = append(out, fnSpecs[f].name)
		}
	}
	return out
}

// load compiles the script and makes a pool for it.
func (h *Hook) load() (*pool, error) {
	prog, first, err := compile(h.cfg.Script, h.lim)
	if err != nil {
		return nil, err
	}
	return newPool(prog, first, h.cfg.Pool, h.lim)
}

// Reload compiles the script again and swaps the new runtimes in at once;
// calls under way finish on the old ones. When the script does not
// compile or run, the old one stays in force and the error, with the
// file, line and column, is logged and returned.
func (h *Hook) Reload() error { return h.reload("Reload") }

func (h *Hook) reload(trigger string) error {
	h.reloadMu.Lock()
	defer h.reloadMu.Unlock()
	if h.closed.Load() {
		return errors.New("js: hook is closed")
	}
	p, err := h.load()
	if err != nil {
		h.log.Error("script reload failed; the previous script stays in force", "script", h.cfg.Script, "trigger", trigger, "cause", err)
		return err
	}
	old := h.cur.Swap(p)
	h.resetCache()
	if h.srv != nil && (old.prog.events != p.prog.events || !slices.Equal(old.prog.topics, p.prog.topics)) {
		if err := h.srv.RefreshHook(h.cfg.Name); err != nil {
			h.log.Warn("script reloaded, but its new events could not be registered", "cause", err)
		}
	}
	old.retire()
	h.log.Info("script reloaded", "script", h.cfg.Script, "trigger", trigger, "functions", p.prog.functions(), "topics", p.prog.topics)
	if h.srv != nil && (old.prog.has[fnAuthorizeRead] || p.prog.has[fnAuthorizeRead]) {
		// The server cached the old script's read verdicts: it forgets
		// them, and checks what the sessions hold against the new one.
		h.srv.InvalidateAuthorization()
	}
	return nil
}

// resetCache starts an empty decision cache, when caching is on.
func (h *Hook) resetCache() {
	if h.cfg.CacheTTL > 0 {
		h.cache.Store(newDecisionCache(h.cfg.CacheTTL, h.cfg.CacheSize, &h.clock))
	}
}

// remember caches a decision, starting a new cache when c is full.
func (h *Hook) remember(c *decisionCache, cl *core.ClientInfo, k cacheKey, vd core.Verdict, qos byte) {
	if !c.put(cl, k, vd, qos) {
		h.cache.CompareAndSwap(c, newDecisionCache(h.cfg.CacheTTL, h.cfg.CacheSize, &h.clock))
	}
}

// Close stops watching and the runtimes' watchdog; the server calls it
// after OnStopped. It may be called more than once.
func (h *Hook) Close() error {
	if h.closed.Swap(true) {
		return nil
	}
	var err error
	if h.watch != nil {
		err = h.watch.Stop()
	}
	h.reloadMu.Lock()
	h.cur.Load().retire()
	h.reloadMu.Unlock()
	return err
}

// ID implements core.Hook: "js", or "js:NAME".
func (h *Hook) ID() string { return h.cfg.Name }

// Events implements core.EventLister: the events of the functions the
// script defines, and, with the decision cache on, disconnected, at which
// the cache forgets the connection's decisions (without an onDisconnected
// function in the script, that call runs no script).
func (h *Hook) Events() core.EventSet {
	ev := h.cur.Load().prog.events
	if h.cfg.CacheTTL > 0 {
		ev |= core.Events(core.EventDisconnected) // to forget the connection's decisions
	}
	return ev
}

// Topics implements core.TopicFilter: the script's topics, or every topic.
func (h *Hook) Topics() []string { return h.cur.Load().prog.topics }

// Failures counts failed script calls since the hook started.
func (h *Hook) Failures() int64 { return h.failures.Load() }

// errHookClosed is what calls fail with after Close.
var errHookClosed = errors.New("the js hook is closed")

// run calls a script function on a runtime of the current pool: do builds
// the arguments, makes the call and reads its result.
func (h *Hook) run(f fn, do func(v *vm) (core.Verdict, error)) (core.Verdict, bool, error) {
	for {
		p := h.cur.Load()
		if !p.prog.has[f] {
			return core.Next, false, nil // a reload removed the function
		}
		if !p.enter() {
			if h.closed.Load() {
				return core.Verdict{}, true, errHookClosed
			}
			continue // retired under us: take the new pool
		}
		v, err := p.get()
		if err != nil {
			p.leave()
			return core.Verdict{}, true, err
		}
		vd, err := do(v)
		p.put(v)
		p.leave()
		return vd, true, err
	}
}

// failed records and logs a failed call (at most one line a second, with
// how many were not logged) and returns what the decision becomes,
// Transient: it holds for this call only (the server does not cache a
// read verdict so made, and asks the script again).
func (h *Hook) failed(f fn, client, detail string, err error) core.Verdict {
	h.failures.Add(1)
	now := time.Now().UnixNano()
	last := h.logged.Load()
	if now-last >= int64(time.Second) && h.logged.CompareAndSwap(last, now) {
		h.log.Error("script call failed", "script", h.cfg.Script, "function", fnSpecs[f].name, "client", client,
			"detail", detail, "cause", describe(err), "policy", h.cfg.OnFailure, "unlogged_failures", h.muted.Swap(0))
	} else {
		h.muted.Add(1)
	}
	vd := h.cfg.OnFailure.Verdict("js hook failed")
	vd.Transient = true
	return vd
}

// decide runs a decision function and applies the failure policy.
func (h *Hook) decide(f fn, client, detail string, do func(v *vm) (core.Verdict, error)) core.Verdict {
	vd, _, err := h.run(f, do)
	if err != nil {
		return h.failed(f, client, detail, err)
	}
	return vd
}

// notify runs a notification function; a failure is only logged.
func (h *Hook) notify(f fn, client, detail string, do func(v *vm) error) {
	_, _, err := h.run(f, func(v *vm) (core.Verdict, error) { return core.Next, do(v) })
	if err != nil {
		_ = h.failed(f, client, detail, err)
	}
}

// callErr wraps a bad return value with the function's name.
func callErr(f fn, err error) error {
	return fmt.Errorf("%s %w", fnSpecs[f].name, err)
}
