package core

import (
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"
)

// HookModule is a kind of hook the config file can name: the built-in
// hooks, hooks compiled into a custom binary, and the adapters for plugin
// binaries and scripts all register one.
type HookModule struct {
	// ID is the name the config file uses, e.g. "auth.file".
	ID string
	// New makes a hook from its config block.
	New func(cfg HookConfig) (Hook, error)
}

// HookConfig is what a module gets to build a hook from.
type HookConfig struct {
	// ID is the ID the hook must report: the module's ID, or
	// "module:instance" when the config file names an instance, so that
	// one module can run more than once ("plugin:audit", "plugin:auth").
	ID string
	// Decode decodes the hook's `config:` block into v strictly: unknown
	// keys and wrong types are errors naming the file, line and key.
	Decode func(v any) error
	// Dir is the directory of the config file, for relative paths.
	Dir string
	// Logger is the server's logger, with the hook's ID attached.
	Logger *slog.Logger
	// Server is the server the hook is built for, for hooks that publish
	// or subscribe in process (Server.Publish, Server.Subscribe) or that
	// change their events (Server.RefreshHook). The hook is added to it
	// after New returns, and the server may not have started yet.
	Server *Server
}

// moduleRegistry holds the modules registered by the packages linked into
// the binary. It is written by init functions (RegisterHookModule) before
// main runs and only read afterwards, like database/sql's drivers: the one
// package-level table the framework keeps, because a blank import is how a
// custom binary adds a hook.
var moduleRegistry = struct {
	sync.RWMutex
	m map[string]HookModule
}{m: make(map[string]HookModule)}

// RegisterHookModule makes a hook module available to the config file
// under its ID. Call it from an init function; registering an ID twice
// panics, as it is a build mistake.
func RegisterHookModule(m HookModule) {
	if m.ID == "" || m.New == nil {
		panic("core: RegisterHookModule with an empty ID or nil New")
	}
	moduleRegistry.Lock()
	defer moduleRegistry.Unlock()
	if _, dup := moduleRegistry.m[m.ID]; dup {
		panic(fmt.Sprintf("core: hook module %q registered twice", m.ID))
	}
	moduleRegistry.m[m.ID] = m
}

// Module returns the hook module id whose New decodes the hook's config
// block into a C, starting from def (keys the block does not set keep
// def's values), and calls build with it: the one way the built-in modules
// (auth, js, plugin, bridge) are made, and the easiest for a custom one.
// A decode error, which names the file, line and key, is returned wrapped
// with the module's ID.
func Module[C any](id string, def C, build func(hc HookConfig, c C) (Hook, error)) HookModule {
	return HookModule{ID: id, New: func(hc HookConfig) (Hook, error) {
		c := def
		if hc.Decode != nil {
			if err := hc.Decode(&c); err != nil {
				return nil, fmt.Errorf("%s: %w", id, err)
			}
		}
		return build(hc, c)
	}}
}

// HookModuleOf is the module part of a hook ID: "plugin" for
// "plugin:audit", the ID itself when it names no instance.
func HookModuleOf(id string) string {
	if i := strings.IndexByte(id, ':'); i > 0 {
		return id[:i]
	}
	return id
}

// LookupHookModule returns the module registered under id.
func LookupHookModule(id string) (HookModule, bool) {
	moduleRegistry.RLock()
	defer moduleRegistry.RUnlock()
	m, ok := moduleRegistry.m[id]
	return m, ok
}

// HookModules returns the IDs of every registered module, sorted.
func HookModules() []string {
	moduleRegistry.RLock()
	defer moduleRegistry.RUnlock()
	ids := make([]string, 0, len(moduleRegistry.m))
	for id := range moduleRegistry.m {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// DefaultWithin checks one value of a hook's config and fills in its
// default: zero becomes def, and a value outside 0..max is an error
// naming key. With cmp.Or, a module checks several at once and reports
// the first that is wrong.
func DefaultWithin[T int | time.Duration](v *T, def, max T, key string) error {
	switch {
	case *v < 0 || *v > max:
		return fmt.Errorf("%s: %v is outside %v..%v", key, *v, T(0), max)
	case *v == 0:
		*v = def
	}
	return nil
}
