package auth

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// FileError is one problem found in a users or ACL file. It prints as
// "FILE:LINE: KEY: PROBLEM", as compilers do, so editors can jump to it;
// LINE is left out when the problem has no line (the file cannot be read)
// and KEY when it concerns the whole file. A FileError never quotes a
// password.
type FileError struct {
	File    string // the file's path
	Line    int    // 1-based line, 0 when unknown
	Key     string // e.g. "users[2].password"; "" for the whole file
	Problem string // what is wrong, and how to fix it when that is not obvious
	Err     error  // the underlying error, if any
}

// Error implements error.
func (e *FileError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.problem())
	return b.String()
}

// problem returns the problem with the underlying error, without the
// file, line and key.
func (e *FileError) problem() string {
	switch {
	case e.Err == nil:
		return e.Problem
	case e.Problem == "":
		return e.Err.Error()
	}
	return e.Problem + ": " + e.Err.Error()
}

// Unwrap returns the underlying error.
func (e *FileError) Unwrap() error { return e.Err }

// FileErrors returns the problems err holds: the FileErrors joined into it
// by the parsers, or one FileError for an error of another kind.
func FileErrors(err error) []*FileError {
	if err == nil {
		return nil
	}
	var fe *FileError
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []*FileError
		for _, e := range j.Unwrap() {
			out = append(out, FileErrors(e)...)
		}
		return out
	}
	if errors.As(err, &fe) {
		return []*FileError{fe}
	}
	return []*FileError{{Problem: err.Error()}}
}

// maxProblems bounds the problems reported for one file: past that, the
// file is probably not of the expected kind at all.
const maxProblems = 20

// problems collects the FileErrors of one file.
type problems struct {
	file string
	list []*FileError
}

func (p *problems) add(line int, key, format string, args ...any) {
	if len(p.list) == maxProblems {
		p.list = append(p.list, &FileError{File: p.file, Line: line, Problem: "too many problems; stopping here"})
	}
	if len(p.list) > maxProblems {
		return
	}
	p.list = append(p.list, &FileError{File: p.file, Line: line, Key: key, Problem: fmt.Sprintf(format, args...)})
}

// err returns the collected problems joined, or nil.
func (p *problems) err() error {
	if len(p.list) == 0 {
		return nil
	}
	errs := make([]error, len(p.list))
	for i, e := range p.list {
		errs[i] = e
	}
	return errors.Join(errs...)
}

// parseYAML parses data into its document's top-level mapping, whose only
// key must be want. It returns the node under want (nil when the file
// has no document or want is null), or false after recording a problem.
func parseYAML(p *problems, data []byte, want string) (*yaml.Node, bool) {
	val, _, ok := parseYAMLKeys(p, data, want)
	return val, ok
}

// parseYAMLKeys is parseYAML for a file whose top-level mapping may also
// hold the optional keys, each at most once; it returns those found as
// fields by name.
func parseYAMLKeys(p *problems, data []byte, want string, optional ...string) (*yaml.Node, map[string]field, bool) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		line, msg := yamlErrorLine(err)
		p.add(line, "", "not valid YAML: %s", msg)
		return nil, nil, false
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		p.add(0, "", "the file is empty; want a mapping with the key %q", want)
		return nil, nil, false
	}
	top := deref(doc.Content[0])
	if top.Kind != yaml.MappingNode {
		p.add(top.Line, "", "want a mapping with the key %q, found %s", want, kindName(top))
		return nil, nil, false
	}
	var val *yaml.Node
	found := false
	opt := make(map[string]field, len(optional))
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], top.Content[i+1]
		switch {
		case k.Value != want && contains(optional, k.Value):
			if first, dup := opt[k.Value]; dup {
				p.add(k.Line, k.Value, "duplicate key (first at line %d)", first.line)
			} else {
				opt[k.Value] = field{key: k.Value, line: k.Line, node: deref(v)}
			}
		case k.Value != want && len(optional) > 0:
			p.add(k.Line, k.Value, "unknown key (known keys: %s)", strings.Join(append([]string{want}, optional...), ", "))
		case k.Value != want:
			p.add(k.Line, k.Value, "unknown key (the only key is %q)", want)
		case found:
			p.add(k.Line, k.Value, "duplicate key")
		default:
			found, val = true, deref(v)
		}
	}
	if !found {
		p.add(top.Line, want, "missing key")
		return nil, nil, false
	}
	if val.Kind == yaml.ScalarNode && val.ShortTag() == "!!null" {
		return nil, opt, len(p.list) == 0
	}
	if val.Kind != yaml.SequenceNode {
		p.add(val.Line, want, "want a list, found %s", kindName(val))
		return nil, nil, false
	}
	return val, opt, len(p.list) == 0
}

// field is one key of an entry of a users or ACL list.
type field struct {
	key  string
	line int
	node *yaml.Node
}

// entryFields checks that n is a mapping with only the known keys, each at
// most once, and returns the known keys' fields by name; nil when n is not
// a mapping.
func entryFields(p *problems, n *yaml.Node, prefix string, known ...string) map[string]field {
	if n.Kind != yaml.MappingNode {
		p.add(n.Line, prefix, "want a mapping with the keys %s, found %s", strings.Join(known, ", "), kindName(n))
		return nil
	}
	fields := make(map[string]field, len(known))
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], deref(n.Content[i+1])
		key := prefix + "." + k.Value
		switch {
		case !contains(known, k.Value):
			p.add(k.Line, key, "unknown key (known keys: %s)", strings.Join(known, ", "))
		case fields[k.Value].node != nil:
			p.add(k.Line, key, "duplicate key (first at line %d)", fields[k.Value].line)
		default:
			fields[k.Value] = field{key: key, line: k.Line, node: v}
		}
	}
	return fields
}

// str returns a field's string value: a non-empty scalar that is not null.
func str(p *problems, f field) (string, bool) {
	n := f.node
	switch {
	case n.Kind != yaml.ScalarNode:
		p.add(n.Line, f.key, "want a string, found %s", kindName(n))
		return "", false
	case n.ShortTag() == "!!null" || n.Value == "":
		p.add(n.Line, f.key, "empty")
		return "", false
	}
	return n.Value, true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// deref follows a YAML alias to its anchor's node.
func deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.ShortTag() == "!!null" {
			return "nothing"
		}
		return "a " + strings.TrimPrefix(n.ShortTag(), "!!") + " value"
	}
	return "something else"
}

// yamlErrorLine takes the line number out of a yaml error message,
// "yaml: line 3: did not find expected key".
func yamlErrorLine(err error) (int, string) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	rest, ok := strings.CutPrefix(msg, "line ")
	if !ok {
		return 0, msg
	}
	num, text, ok := strings.Cut(rest, ": ")
	if n, err := strconv.Atoi(num); ok && err == nil {
		return n, text
	}
	return 0, msg
}
