package vanemqcmd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/vanemq/vanemq/core"
	// The built-in hook modules: auth.allow, auth.file, bridge, cluster,
	// js and plugin. A custom binary adds its own the same way, with a blank
	// import of its hook package.
	_ "github.com/vanemq/vanemq/hooks/auth"
	_ "github.com/vanemq/vanemq/hooks/bridge"
	_ "github.com/vanemq/vanemq/hooks/cluster"
	_ "github.com/vanemq/vanemq/hooks/js"
	_ "github.com/vanemq/vanemq/plugins"
)

// The hooks list of the config file names hook modules registered with
// core.RegisterHookModule by the packages linked into the binary: the
// built-in ones imported here, or any a custom binary imports next to
// them. parseConfig checks the IDs; addHooks builds the hooks with their
// modules and adds them to the server before it starts.

// builtHook is a hook made from one entry of the hooks list.
type builtHook struct {
	hook core.Hook
	cfg  hookConfig
}

// addHooks builds every hook of the configuration and adds it to srv, in
// the order of their priorities. Nothing is added unless every hook builds;
// the error then joins one *configError per problem, naming the file, the
// line and the hook's key. The returned function closes the hooks that
// hold resources (io.Closer, such as auth.file's watcher), for when the
// server fails to start; once it has started, the server closes them
// after OnStopped.
func addHooks(srv *core.Server, cfg *config, logger *slog.Logger) (closeHooks func(), err error) {
	built, err := buildHooks(srv, cfg, logger)
	if err != nil {
		return nil, err
	}
	closeHooks = func() { closeBuilt(built, logger) }
	var errs []error
	for _, b := range built {
		if err := srv.AddHook(b.hook, b.cfg.Priority); err != nil {
			errs = append(errs, b.cfg.errorAt(b.cfg.Line, b.cfg.Key, err))
		}
	}
	if len(errs) > 0 {
		closeHooks()
		return nil, errors.Join(errs...)
	}
	for _, h := range srv.Hooks() {
		logger.Info("hook added", "id", h.ID, "priority", h.Priority, "events", eventNames(h.Events), "topics", h.Topics)
	}
	return closeHooks, nil
}

// buildHooks makes the hook of each entry of cfg.Hooks with its module, for
// srv (nil in tests that only build), and the cluster hook of the cluster
// section, after them.
// Every entry is tried, so that one start-up reports every problem; on
// error the hooks already made are closed.
func buildHooks(srv *core.Server, cfg *config, logger *slog.Logger) ([]builtHook, error) {
	var built []builtHook
	var errs []error
	for _, hc := range cfg.Hooks {
		h, err := buildHook(srv, hc, cfg.Dir, logger)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		built = append(built, builtHook{hook: h, cfg: hc})
	}
	if cc := cfg.Cluster; cc != nil {
		if h, err := cc.build(srv, cfg.Dir, cfg.Storage, logger); err != nil {
			errs = append(errs, err)
		} else {
			built = append(built, builtHook{hook: h, cfg: cc.hookConfig()})
		}
	}
	if len(errs) > 0 {
		closeBuilt(built, logger)
		return nil, errors.Join(errs...)
	}
	return built, nil
}

// closeBuilt closes the hooks that implement io.Closer.
func closeBuilt(built []builtHook, logger *slog.Logger) {
	for _, b := range built {
		if c, ok := b.hook.(io.Closer); ok {
			if err := c.Close(); err != nil {
				logger.Warn("close hook", "hook", b.cfg.ID, "err", err)
			}
		}
	}
}

// buildHook calls the module's New. A panic in New is an error, not a
// crash. When New fails with an error from Decode, that error, which names
// the line and key, is reported as it is.
func buildHook(srv *core.Server, hc hookConfig, dir string, logger *slog.Logger) (h core.Hook, err error) {
	m, ok := core.LookupHookModule(core.HookModuleOf(hc.ID))
	if !ok { // parseConfig has checked; this guards a programming error
		return nil, hc.errorAt(hc.Line, hc.Key, fmt.Errorf("unknown hook %q", hc.ID))
	}
	dec := &hookDecoder{hc: hc}
	defer func() {
		if r := recover(); r != nil {
			h, err = nil, hc.errorAt(hc.Line, hc.Key, fmt.Errorf("hook %q panicked while starting: %v", hc.ID, r))
		}
	}()
	h, err = m.New(core.HookConfig{ID: hc.ID, Decode: dec.decode, Dir: dir, Logger: logger.With("hook", hc.ID), Server: srv})
	switch {
	case err != nil:
		for _, de := range dec.errs {
			if errors.Is(err, de) {
				return nil, de
			}
		}
		return nil, hc.errorLines(hc.Line, hc.Key, err)
	case h == nil || reflect.ValueOf(h).Kind() == reflect.Pointer && reflect.ValueOf(h).IsNil():
		return nil, hc.errorAt(hc.Line, hc.Key, fmt.Errorf("hook module %q returned no hook", hc.ID))
	}
	var bad *configError
	switch {
	case h.ID() != hc.ID:
		bad = hc.errorAt(hc.Line, hc.Key, fmt.Errorf("hook module %q made a hook with ID %q; a hook's ID must be the id that names it", hc.ID, h.ID()))
	case hc.Config != nil && !dec.called:
		bad = hc.errorAt(hc.Config.Line, hc.Key+".config", fmt.Errorf("hook %q takes no config", hc.ID))
	}
	if bad != nil {
		closeBuilt([]builtHook{{hook: h, cfg: hc}}, logger)
		return nil, bad
	}
	return h, nil
}

// errorAt returns err as a *configError at line and key of hc's file.
func (hc hookConfig) errorAt(line int, key string, err error) *configError {
	return &configError{File: hc.File, Line: line, Key: key, Msg: err.Error(), Err: err}
}

// errorLines is errorAt with one *configError per line of err's message, so
// that each problem of a module's joined error (a users file's, an ACL
// file's) is a line of its own that names the hook.
func (hc hookConfig) errorLines(line int, key string, err error) error {
	lines := strings.Split(err.Error(), "\n")
	if len(lines) == 1 {
		return hc.errorAt(line, key, err)
	}
	errs := make([]error, len(lines))
	for i, l := range lines {
		errs[i] = &configError{File: hc.File, Line: line, Key: key, Msg: l, Err: err}
	}
	return errors.Join(errs...)
}

// eventNames lists the events of s by name, comma-separated.
func eventNames(s core.EventSet) string {
	var names []string
	for e := range core.Event(64) {
		if s.Has(e) && e.String() != "unknown" {
			names = append(names, e.String())
		}
	}
	return strings.Join(names, ",")
}

// logAuthPolicy warns about an authentication policy that is probably a
// mistake: anonymous clients allowed on a listener other machines can
// reach, or denied with no hook to authenticate anyone.
func logAuthPolicy(logger *slog.Logger, srv *core.Server, addrs []string) {
	authenticates := false
	for _, h := range srv.Hooks() {
		if h.Events.Has(core.EventAuthenticate) || h.Events.Has(core.EventEnhancedAuth) {
			authenticates = true
		}
	}
	switch anon := srv.Options().AllowAnonymous; {
	case anon && !loopbackOnly(addrs):
		logger.Warn("allow_anonymous is true and a listener is reachable from other machines: " +
			"clients that no hook authenticates can connect")
	case !anon && !authenticates:
		logger.Warn("allow_anonymous is false and no hook authenticates clients: every client will be refused; " +
			"add an authentication hook (e.g. auth.file) or set allow_anonymous: true")
	}
}

// maxConfigNodes bounds the nodes of one hook config once YAML aliases are
// expanded, against alias bombs.
const maxConfigNodes = 100000

// hookDecoder is the Decode function a hook module gets: it decodes the
// entry's config block strictly (unknown keys and wrong types are errors)
// and reports each problem as FILE:LINE: hooks[N].config.KEY: MESSAGE.
type hookDecoder struct {
	hc     hookConfig
	called bool
	errs   []error // every error Decode returned
}

// decode decodes the config block into v, a non-nil pointer. An absent or
// empty block leaves v as it is, so a module sets its defaults first.
func (hd *hookDecoder) decode(v any) error {
	hd.called = true
	if rv := reflect.ValueOf(v); rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("hook %q: HookConfig.Decode needs a non-nil pointer, got %T", hd.hc.ID, v)
	}
	if hd.hc.Config == nil {
		return nil
	}
	err := strictDecode(hd.hc, v)
	if err != nil {
		hd.errs = append(hd.errs, err)
	}
	return err
}

// configLine is one node of a re-encoded config block: where it came
// from and what it is.
type configLine struct {
	node *yaml.Node // the node in the re-encoded tree
	orig *yaml.Node // the node in the config file
	path string     // the key it stands for: hooks[0].config.users
	key  bool       // a mapping key rather than a value
}

// strictDecode decodes hc.Config into v with unknown keys refused.
//
// yaml.v3 checks unknown keys only when decoding text (Decoder.KnownFields),
// not a Node, so the block is encoded again, in block style so that each
// line holds at most one key, and decoded from that text; the lines in the
// decoder's errors are then mapped back to the config file's lines and keys
// by walking the two trees side by side.
func strictDecode(hc hookConfig, v any) (err error) {
	root := hc.Key + ".config"
	budget := maxConfigNodes
	cp, ok := copyNode(hc.Config, &budget)
	if !ok {
		return hc.errorAt(hc.Config.Line, root, errors.New("too large once YAML aliases are expanded"))
	}
	text, err := yaml.Marshal(cp.node)
	if err != nil {
		return hc.errorAt(hc.Config.Line, root, fmt.Errorf("re-encode: %w", err))
	}
	var tree yaml.Node
	if err := yaml.Unmarshal(text, &tree); err != nil {
		return hc.errorAt(hc.Config.Line, root, fmt.Errorf("re-encode: %w", err))
	}
	if tree.Kind != yaml.DocumentNode || len(tree.Content) != 1 {
		return hc.errorAt(hc.Config.Line, root, errors.New("re-encode: not one YAML document"))
	}
	lines := make(map[int][]configLine)
	indexLines(tree.Content[0], cp, root, false, lines)

	defer func() {
		// yaml.v3 re-panics what is not a YAML error, such as a v that
		// reflect cannot set; a module's mistake must not crash start-up.
		if r := recover(); r != nil {
			err = hc.errorAt(hc.Config.Line, root, fmt.Errorf("decoding into %T: %v", v, r))
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(text))
	dec.KnownFields(true)
	err = dec.Decode(v)
	var te *yaml.TypeError
	switch {
	case err == nil || errors.Is(err, io.EOF):
		return nil
	case errors.As(err, &te):
		kinds := typeKinds(reflect.TypeOf(v))
		errs := make([]error, 0, len(te.Errors))
		for _, msg := range te.Errors {
			errs = append(errs, hc.typeError(msg, root, lines, kinds))
		}
		return errors.Join(errs...)
	default:
		return hc.errorAt(hc.Config.Line, root, err)
	}
}

// copied is a copy of a config node, with its origin.
type copied struct {
	node    *yaml.Node
	orig    *yaml.Node
	content []copied
}

// copyNode copies n for re-encoding: aliases expanded (an anchor may lie
// outside the block), containers in block style, no comments. It fails
// when the copy would exceed *budget nodes.
func copyNode(n *yaml.Node, budget *int) (copied, bool) {
	n = deref(n)
	if *budget--; *budget < 0 {
		return copied{}, false
	}
	c := copied{node: &yaml.Node{Kind: n.Kind, Tag: n.Tag, Value: n.Value}, orig: n}
	if n.Kind == yaml.ScalarNode {
		c.node.Style = n.Style &^ yaml.FlowStyle
	}
	for _, child := range n.Content {
		cc, ok := copyNode(child, budget)
		if !ok {
			return copied{}, false
		}
		c.content = append(c.content, cc)
		c.node.Content = append(c.node.Content, cc.node)
	}
	return c, true
}

// indexLines records, by line, the nodes of the re-encoded tree n (the
// parse of the copy c) with their origins and key paths, in document order.
func indexLines(n *yaml.Node, c copied, path string, key bool, lines map[int][]configLine) {
	lines[n.Line] = append(lines[n.Line], configLine{node: n, orig: c.orig, path: path, key: key})
	if len(n.Content) != len(c.content) {
		return // cannot happen: n is the parse of c's encoding
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := path + "." + n.Content[i].Value
			indexLines(n.Content[i], c.content[i], p, true, lines)
			indexLines(n.Content[i+1], c.content[i+1], p, false, lines)
		}
	case yaml.SequenceNode:
		for i := range n.Content {
			indexLines(n.Content[i], c.content[i], fmt.Sprintf("%s[%d]", path, i), false, lines)
		}
	}
}

// The forms of the messages in a yaml.TypeError.
var (
	yamlErrLine    = regexp.MustCompile(`^line (\d+): (.*)$`)
	yamlErrUnknown = regexp.MustCompile(`^field (\S+) not found in type .+$`)
	yamlErrSet     = regexp.MustCompile(`^field (\S+) already set in type .+$`)
	yamlErrDupKey  = regexp.MustCompile(`^mapping key "(.*)" already defined at line (\d+)$`)
	yamlErrConvert = regexp.MustCompile("^cannot unmarshal (\\S+)(?: `.*`)? into (.+)$")
)

// typeError turns one message of a yaml.TypeError about the re-encoded
// text into a *configError at the config file's line and key.
func (hc hookConfig) typeError(msg, root string, lines map[int][]configLine, kinds map[string]reflect.Kind) *configError {
	m := yamlErrLine.FindStringSubmatch(msg)
	if m == nil {
		return hc.errorAt(hc.Config.Line, root, errors.New(msg))
	}
	n, _ := strconv.Atoi(m[1])
	msg = m[2]
	find := func(match func(configLine) bool) (configLine, bool) {
		for _, cl := range lines[n] {
			if match(cl) {
				return cl, true
			}
		}
		return configLine{}, false
	}
	at := func(cl configLine, text string) *configError {
		return &configError{File: hc.File, Line: cl.orig.Line, Key: cl.path, Msg: text}
	}
	if m := yamlErrUnknown.FindStringSubmatch(msg); m != nil {
		if cl, ok := find(func(cl configLine) bool { return cl.key && cl.node.Value == m[1] }); ok {
			return at(cl, "unknown key")
		}
	}
	if m := yamlErrSet.FindStringSubmatch(msg); m != nil {
		if cl, ok := find(func(cl configLine) bool { return cl.key && cl.node.Value == m[1] }); ok {
			return at(cl, "duplicate key")
		}
	}
	if m := yamlErrDupKey.FindStringSubmatch(msg); m != nil {
		if cl, ok := find(func(cl configLine) bool { return cl.key && cl.node.Value == m[1] }); ok {
			first := 0
			if l, _ := strconv.Atoi(m[2]); l > 0 {
				for _, f := range lines[l] {
					if f.key && f.node.Value == m[1] {
						first = f.orig.Line
						break
					}
				}
			}
			return at(cl, fmt.Sprintf("duplicate key (first set at line %d)", first))
		}
	}
	if m := yamlErrConvert.FindStringSubmatch(msg); m != nil {
		tag, typ := m[1], m[2]
		cl, ok := find(func(cl configLine) bool { return !cl.key && cl.node.ShortTag() == tag })
		if !ok {
			cl, ok = find(func(cl configLine) bool { return !cl.key })
		}
		if ok {
			return at(cl, fmt.Sprintf("cannot use %s as %s", describe(cl.orig), friendlyType(typ, kinds)))
		}
	}
	if cl, ok := find(func(configLine) bool { return true }); ok {
		return at(cl, msg)
	}
	return hc.errorAt(hc.Config.Line, root, errors.New(msg))
}

// typeKinds maps the name of every type reachable from t (through
// pointers, fields, elements) to its kind, to name types in messages.
func typeKinds(t reflect.Type) map[string]reflect.Kind {
	kinds := make(map[string]reflect.Kind)
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		if _, seen := kinds[t.String()]; seen {
			return
		}
		kinds[t.String()] = t.Kind()
		switch t.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Array:
			walk(t.Elem())
		case reflect.Map:
			walk(t.Key())
			walk(t.Elem())
		case reflect.Struct:
			for i := range t.NumField() {
				walk(t.Field(i).Type)
			}
		}
	}
	walk(t)
	return kinds
}

// durationType is named apart from the integers it is made of.
var durationType = reflect.TypeFor[time.Duration]()

// friendlyType names a Go type for a config file's author.
func friendlyType(name string, kinds map[string]reflect.Kind) string {
	if name == durationType.String() {
		return "a duration (e.g. 10s, 1m30s)"
	}
	k, ok := kinds[name]
	if !ok {
		return name
	}
	switch k {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean (want true or false)"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "a mapping"
	}
	return name
}
