package js

import (
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/dop251/goja"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/topics"
)

// fn is one of the functions a script may define: one per core event, in
// the order of core's events.
type fn uint8

// The script functions, each handling the core event of its name.
const (
	fnAuthenticate fn = iota
	fnEnhancedAuth
	fnAuthorizePublish
	fnAuthorizeSubscribe
	fnAuthorizeRead
	fnConnect
	fnPublish
	fnDeliver
	fnWill
	fnSession
	fnDisconnected
	fnSubscribed
	fnUnsubscribed
	fnPublished
	fnDropped
	fnAcked
	fnRetained
	fnStarted
	fnStopped
	fnSysTick
	numFns
)

// fnSpec is a script function: its name, the core event it handles, and
// the old name a script may still use for it (deprecated).
type fnSpec struct {
	name  string
	event core.Event
	old   string
}

// fnSpecs are the script functions. A function is named as its event
// is, in camelCase; notifications, and only they, begin with "on", as
// the Go methods do.
var fnSpecs = [numFns]fnSpec{
	fnAuthenticate:       {"authenticate", core.EventAuthenticate, ""},
	fnEnhancedAuth:       {"enhancedAuth", core.EventEnhancedAuth, ""},
	fnAuthorizePublish:   {"authorizePublish", core.EventAuthorizePublish, ""},
	fnAuthorizeSubscribe: {"authorizeSubscribe", core.EventAuthorizeSubscribe, ""},
	fnAuthorizeRead:      {"authorizeRead", core.EventAuthorizeRead, ""},
	fnConnect:            {"connect", core.EventConnect, "onConnect"},
	fnPublish:            {"publish", core.EventPublish, "onPublish"},
	fnDeliver:            {"deliver", core.EventDeliver, ""},
	fnWill:               {"will", core.EventWill, ""},
	fnSession:            {"onSession", core.EventSession, ""},
	fnDisconnected:       {"onDisconnected", core.EventDisconnected, "onDisconnect"},
	fnSubscribed:         {"onSubscribed", core.EventSubscribed, ""},
	fnUnsubscribed:       {"onUnsubscribed", core.EventUnsubscribed, ""},
	fnPublished:          {"onPublished", core.EventPublished, ""},
	fnDropped:            {"onDropped", core.EventDropped, "onMessageDropped"},
	fnAcked:              {"onAcked", core.EventAcked, ""},
	fnRetained:           {"onRetained", core.EventRetained, ""},
	fnStarted:            {"onStarted", core.EventStarted, ""},
	fnStopped:            {"onStopped", core.EventStopped, ""},
	fnSysTick:            {"onSysTick", core.EventSysTick, ""},
}

// Function returns the name of the script function that handles e, such
// as "authorizePublish" for core.EventAuthorizePublish or "onSysTick" for
// core.EventSysTick, or "" for an unknown event. Every core event has
// one; docs/javascript.md lists them with their arguments.
func Function(e core.Event) string {
	for _, s := range fnSpecs {
		if s.event == e {
			return s.name
		}
	}
	return ""
}

// fnNames lists the functions' names, for messages.
func fnNames() []string {
	out := make([]string, numFns)
	for f, s := range fnSpecs {
		out[f] = s.name
	}
	return out
}

// program is a compiled script and what it declares: the functions it
// defines and the topic filters its message events are for.
type program struct {
	path string
	prog *goja.Program
	has  [numFns]bool
	// names are the names the script defines its functions under: the
	// function's, or its old one.
	names  [numFns]string
	events core.EventSet
	topics []string // nil: every topic
}

// compile reads and compiles the script, runs it once in a runtime to find
// its functions and its topics, and returns the program and that runtime.
// Errors name the file, and for syntax errors the line and column.
func compile(path string, limits vmLimits) (*program, *vm, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", path, err)
	}
	prog, err := goja.Compile(path, string(src), false)
	if err != nil {
		var se *goja.CompilerSyntaxError
		if errors.As(err, &se) {
			return nil, nil, fmt.Errorf("syntax error in %s: %s", path, se.Error())
		}
		return nil, nil, fmt.Errorf("compiling %s: %w", path, err)
	}
	p := &program{path: path, prog: prog}
	probe, err := newVM(p, limits)
	if err != nil {
		return nil, nil, err
	}
	if err := p.findFunctions(probe, limits.log); err != nil {
		return nil, nil, err
	}
	probe.bind()
	if p.events == 0 {
		return nil, nil, fmt.Errorf("%s defines none of the hook functions (%v)", path, fnNames())
	}
	ts, err := probe.declaredTopics()
	if err != nil {
		return nil, nil, err
	}
	for _, f := range ts {
		if err := topics.ValidateFilter(f); err != nil {
			return nil, nil, fmt.Errorf("%s: topics: %q: %w", path, f, err)
		}
	}
	p.topics = ts
	return p, probe, nil
}

// findFunctions records the functions the script defines, as the probe
// runtime found them. An old name works as the new one, with a warning
// naming the new; defining both is an error.
func (p *program) findFunctions(probe *vm, log *slog.Logger) error {
	for f, s := range fnSpecs {
		now := probe.defines(s.name)
		old := s.old != "" && probe.defines(s.old)
		switch {
		case now && old:
			return fmt.Errorf("%s defines both %s and %s, the old name of %s: keep %s only", p.path, s.name, s.old, s.name, s.name)
		case old:
			log.Warn("script function under its old name; rename it", "script", p.path, "function", s.old, "new_name", s.name)
			p.names[f] = s.old
		case now:
			p.names[f] = s.name
		default:
			continue
		}
		p.has[f] = true
		p.events |= core.Events(s.event)
	}
	if p.has[fnDeliver] {
		probe.warnOldDeliver(p.names[fnDeliver], log)
	}
	return nil
}

// declaredTopics reads the script's global topics: an array of topic
// filters its message events are limited to; none means every topic.
func (v *vm) declaredTopics() ([]string, error) {
	val := v.rt.Get("topics")
	if val == nil || goja.IsUndefined(val) || goja.IsNull(val) {
		return nil, nil
	}
	var out []string
	if err := v.rt.ExportTo(val, &out); err != nil {
		return nil, fmt.Errorf("%s: topics must be an array of topic filters: %w", v.prog.path, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: topics is empty: leave it out for every topic", v.prog.path)
	}
	return out, nil
}
