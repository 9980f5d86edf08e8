package js

import (
	"errors"
	"fmt"
	"os"

	"github.com/dop251/goja"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/topics"
)

// fn is one of the functions a script may define.
type fn uint8

// The script functions, each handling one pipeline event.
const (
	fnAuthenticate fn = iota
	fnAuthorizePublish
	fnAuthorizeSubscribe
	fnOnConnect
	fnOnPublish
	fnOnDisconnect
	fnOnSubscribed
	fnOnMessageDropped
	numFns
)

// fnNames are the functions' names in a script, and fnEvents the events
// they handle.
var (
	fnNames = [numFns]string{
		"authenticate", "authorizePublish", "authorizeSubscribe", "onConnect",
		"onPublish", "onDisconnect", "onSubscribed", "onMessageDropped",
	}
	fnEvents = [numFns]core.Event{
		core.EventAuthenticate, core.EventAuthorizePublish, core.EventAuthorizeSubscribe, core.EventConnect,
		core.EventPublish, core.EventDisconnected, core.EventSubscribed, core.EventDropped,
	}
)

// program is a compiled script and what it declares: the functions it
// defines and the topic filters its message events are for.
type program struct {
	path   string
	prog   *goja.Program
	has    [numFns]bool
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
	for f := range numFns {
		if probe.fns[f] != nil {
			p.has[f] = true
			p.events |= core.Events(fnEvents[f])
		}
	}
	if p.events == 0 {
		return nil, nil, fmt.Errorf("%s defines none of the hook functions (%v)", path, fnNames)
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
