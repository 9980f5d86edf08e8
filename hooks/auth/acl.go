package auth

import (
	"fmt"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/vanemq/vanemq/core/topics"
)

// Actions a rule applies to.
const (
	actPublish   = 1 << iota
	actSubscribe // subscribing, including shared subscriptions
)

// ACL is a parsed ACL file: rules matched top to bottom, the first match
// deciding, and everything no rule matches denied. It is not changed
// after parsing, so it is safe for concurrent use.
type ACL struct {
	file  string
	rules []rule
}

// rule is one ACL rule.
type rule struct {
	line    int // where the rule starts, for logs
	allow   bool
	actions int
	user    string // "" matches every user
	client  string // "" matches every client ID
	filter  string // as written
	// segs is the filter cut at its %u and %c placeholders; nil when it
	// has none.
	segs []segment
	// wild is the filter with each level holding a placeholder made '+':
	// every topic the rule can match for some client, it matches. It is
	// the filter itself without placeholders.
	wild string
}

// forAnyClient reports whether the rule applies alike to every client: no
// user or client narrows it and its filter has no placeholder.
func (r *rule) forAnyClient() bool { return r.user == "" && r.client == "" && r.segs == nil }

// segment is literal text followed by a placeholder ('u', 'c' or 0 at
// the end).
type segment struct {
	text string
	ph   byte
}

// Len returns the number of rules.
func (a *ACL) Len() int { return len(a.rules) }

// ParseACL parses an ACL file; file names it in errors. The format:
//
//	rules:
//	  - {allow: false, action: subscribe, filter: "test/nosubscribe"}
//	  - {user: admin, allow: true, action: both, filter: "#"}
//	  - {allow: true, action: both, filter: "users/%u/#"}
//
// allow (true or false), action (publish, subscribe or both) and filter
// are required; user and client narrow a rule to one user name or client
// ID. In filter, %u stands for the client's user name and %c for its
// client ID; any other '%' is an error. Every problem is reported as a
// *FileError naming the file, line and key (see FileErrors).
func ParseACL(file string, data []byte) (*ACL, error) {
	p := &problems{file: file}
	list, ok := parseYAML(p, data, "rules")
	if !ok {
		return nil, p.err()
	}
	a := &ACL{file: file}
	var entries []*yaml.Node
	if list != nil {
		entries = list.Content
	}
	for i, n := range entries {
		n = deref(n)
		prefix := fmt.Sprintf("rules[%d]", i)
		fields := entryFields(p, n, prefix, "allow", "action", "filter", "user", "client")
		if fields == nil {
			continue
		}
		r := rule{line: n.Line}
		for _, k := range []string{"allow", "action", "filter"} {
			if _, ok := fields[k]; !ok {
				p.add(n.Line, prefix+"."+k, "missing key")
			}
		}
		if f, ok := fields["allow"]; ok {
			if f.node.Kind != yaml.ScalarNode || f.node.ShortTag() != "!!bool" {
				p.add(f.node.Line, f.key, "want true or false, found %s", kindName(f.node))
			} else if f.node.Decode(&r.allow) != nil {
				p.add(f.node.Line, f.key, "want true or false")
			}
		}
		if f, ok := fields["action"]; ok {
			if s, ok := str(p, f); ok {
				switch s {
				case "publish":
					r.actions = actPublish
				case "subscribe":
					r.actions = actSubscribe
				case "both":
					r.actions = actPublish | actSubscribe
				default:
					p.add(f.node.Line, f.key, "%q: want publish, subscribe or both", s)
				}
			}
		}
		if f, ok := fields["user"]; ok {
			r.user, _ = str(p, f)
		}
		if f, ok := fields["client"]; ok {
			r.client, _ = str(p, f)
		}
		if f, ok := fields["filter"]; ok {
			if s, ok := str(p, f); ok {
				r.filter = s
				segs, why := compileFilter(s)
				if why != "" {
					p.add(f.node.Line, f.key, "%q: %s", s, why)
				}
				r.segs, r.wild = segs, wildFilter(s, segs)
			}
		}
		a.rules = append(a.rules, r)
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	return a, nil
}

// compileFilter checks a rule's filter and cuts it at its placeholders.
func compileFilter(f string) ([]segment, string) {
	if strings.HasPrefix(f, topics.SharePrefix) {
		return nil, "a rule's filter cannot be a shared subscription: rules apply to the filter after $share/{group}/"
	}
	var segs []segment
	var check strings.Builder // f with each placeholder replaced by a plain level
	rest := f
	for {
		i := strings.IndexByte(rest, '%')
		if i < 0 {
			break
		}
		if i+1 == len(rest) || (rest[i+1] != 'u' && rest[i+1] != 'c') {
			return nil, "'%' must start %u (user name) or %c (client ID)"
		}
		segs = append(segs, segment{text: rest[:i], ph: rest[i+1]})
		check.WriteString(rest[:i])
		check.WriteString("x")
		rest = rest[i+2:]
	}
	check.WriteString(rest)
	if err := topics.ValidateFilter(check.String()); err != nil {
		return nil, err.Error()
	}
	if segs == nil {
		return nil, ""
	}
	return append(segs, segment{text: rest}), ""
}

// wildFilter is f with each level that holds a placeholder made '+'.
func wildFilter(f string, segs []segment) string {
	if segs == nil {
		return f
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		if strings.Contains(l, "%u") || strings.Contains(l, "%c") {
			levels[i] = "+"
		}
	}
	return strings.Join(levels, "/")
}

// expand returns the rule's filter for a client: its placeholders
// replaced by the client's user name and client ID. ok is false when the
// rule cannot apply to the client:
//
//   - a placeholder's value is empty (an anonymous client has no user name
//     to put in "users/%u/#");
//   - a value contains '/', '+' or '#': put into a filter, it would add
//     levels or wildcards, so that a user named "+" given "users/%u/#"
//     would reach every user's topics. MQTT allows these characters in
//     user names and client IDs, so such a client just gets no access
//     through placeholder rules;
//   - a value starting with '$' would start the filter: "%u/#" must not
//     turn into "$SYS/#" for a user named "$SYS".
func (r *rule) expand(username, clientID string) (string, bool) {
	if r.segs == nil {
		return r.filter, true
	}
	var b strings.Builder
	b.Grow(len(r.filter) + len(username) + len(clientID))
	for _, s := range r.segs {
		b.WriteString(s.text)
		var v string
		switch s.ph {
		case 0:
			continue
		case 'u':
			v = username
		case 'c':
			v = clientID
		}
		if v == "" || strings.ContainsAny(v, "/+#") || (b.Len() == 0 && v[0] == '$') {
			return "", false
		}
		b.WriteString(v)
	}
	return b.String(), true
}

// applies reports whether the rule's user, client and action fit.
func (r *rule) applies(action int, username, clientID string) bool {
	return r.actions&action != 0 &&
		(r.user == "" || r.user == username) &&
		(r.client == "" || r.client == clientID)
}

// CanPublish reports whether a client may publish to topic. rule is the
// index of the deciding rule, -1 when none matched (denied by default).
func (a *ACL) CanPublish(username, clientID, topic string) (allow bool, rule int) {
	allow, rule, _ = a.firstMatch(actPublish, username, clientID, topic)
	return allow, rule
}

// CanRead reports whether a client may receive a message on topic: the
// first rule for subscribing (reading) whose filter matches the topic
// decides, as for CanPublish. rule is the index of the deciding rule, -1
// when none matched (denied by default).
func (a *ACL) CanRead(username, clientID, topic string) (allow bool, rule int) {
	allow, rule, _ = a.firstMatch(actSubscribe, username, clientID, topic)
	return allow, rule
}

// firstMatch finds the first rule for action whose filter matches topic.
// same reports whether every client would get the same answer: no rule
// up to the deciding one that could match topic for some client depends
// on the client (a user or client narrowing it, or a placeholder).
// A rule that cannot match the topic for any client (its wild filter
// does not) is skipped before its placeholders are filled in.
func (a *ACL) firstMatch(action int, username, clientID, topic string) (allow bool, rule int, same bool) {
	same = true
	for i := range a.rules {
		r := &a.rules[i]
		if r.actions&action == 0 || !topics.MatchFilter(r.wild, topic) {
			continue
		}
		if r.forAnyClient() {
			return r.allow, i, same
		}
		same = false
		if !r.applies(action, username, clientID) {
			continue
		}
		if f, ok := r.expand(username, clientID); ok && topics.MatchFilter(f, topic) {
			return r.allow, i, false
		}
	}
	return false, -1, same
}

// CanSubscribe reports whether a client may subscribe to filter; for a
// shared subscription, $share/{group}/{f}, the rules see f. rule is the
// index of the deciding rule, -1 when none did (denied by default).
//
// A subscription is granted when some topic it can match may be read
// (CanRead), as Mosquitto does: what it then receives is filtered at
// delivery, so "#" is granted beside a deny rule for "secret/#" and
// receives "public/a" but never "secret/a". Rules are taken in order: a
// deny rule covering the whole filter (every topic it matches) refuses
// it; an allow rule grants it when the two overlap in topics that no
// earlier deny rule covers. Where earlier deny rules only cover those
// topics together, a filter may be granted that in fact receives nothing;
// delivery still filters every message.
func (a *ACL) CanSubscribe(username, clientID, filter string) (allow bool, rule int) {
	_, inner, _, err := topics.ParseShared(filter)
	if err != nil {
		return false, -1
	}
	var denies []string // the deny rules so far, expanded
	for i := range a.rules {
		r := &a.rules[i]
		if !r.applies(actSubscribe, username, clientID) {
			continue
		}
		f, ok := r.expand(username, clientID)
		if !ok {
			continue
		}
		if !r.allow {
			if covers(f, inner) {
				return false, i
			}
			denies = append(denies, f)
			continue
		}
		both, ok := intersect(f, inner)
		if !ok || slices.ContainsFunc(denies, func(d string) bool { return covers(d, both) }) {
			continue
		}
		return true, i
	}
	return false, -1
}

// describe names rule i for logs: "acl.yaml:3 (rules[1])".
func (a *ACL) describe(i int) string {
	if i < 0 || i >= len(a.rules) {
		return "no rule matched (default deny)"
	}
	return fmt.Sprintf("%s:%d (rules[%d])", a.file, a.rules[i].line, i)
}

// cutLevel splits a topic or filter at its first '/'.
func cutLevel(s string) (level, rest string, more bool) {
	if i := strings.IndexByte(s, '/'); i >= 0 {
		return s[:i], s[i+1:], true
	}
	return s, "", false
}

func isWild(level string) bool { return level == "+" || level == "#" }

// covers reports whether every topic that filter req matches is also
// matched by filter rule: "users/alice/#" covers "users/alice/x/+" and
// "users/alice" but not "users/#". Both must be valid filters. As in
// matching, a first level that is a wildcard does not cover a first level
// starting with '$' [MQTT-4.7.2-1].
func covers(rule, req string) bool {
	first := true
	for {
		rl, rrest, rmore := cutLevel(rule)
		ql, qrest, qmore := cutLevel(req)
		if first && isWild(rl) && strings.HasPrefix(ql, "$") {
			return false
		}
		first = false
		switch {
		case rl == "#":
			return true // covers this level and everything below
		case ql == "#":
			return false // req reaches deeper levels the rule does not
		case rl == "+":
			// covers any one level, literal or '+'
		case ql == "+" || rl != ql:
			return false
		}
		switch {
		case !rmore && !qmore:
			return true
		case !qmore:
			// req has ended: its topic also ends here, which the rule
			// matches only through a trailing "/#" ("a/#" matches "a").
			return rrest == "#"
		case !rmore:
			return false
		}
		rule, req = rrest, qrest
	}
}

// intersect returns the filter matching exactly the topics both filters
// match, and false when they share none: "a/#" and "+/b" give "a/b",
// "#" and "x/+" give "x/+". Both must be valid filters. As in matching, a
// wildcard first level shares nothing with one starting with '$'.
func intersect(a, b string) (string, bool) {
	var out strings.Builder
	first := true
	for {
		al, arest, amore := cutLevel(a)
		bl, brest, bmore := cutLevel(b)
		if first && ((isWild(al) && strings.HasPrefix(bl, "$")) || (isWild(bl) && strings.HasPrefix(al, "$"))) {
			return "", false
		}
		if !first {
			out.WriteByte('/')
		}
		first = false
		switch {
		case al == "#":
			out.WriteString(b) // b's levels from here on, and its parent through a/#
			return out.String(), true
		case bl == "#":
			out.WriteString(a)
			return out.String(), true
		case al == "+":
			out.WriteString(bl)
		case bl == "+" || al == bl:
			out.WriteString(al)
		default:
			return "", false
		}
		switch {
		case !amore && !bmore:
			return out.String(), true
		case !amore:
			// a ends here: its topic also matches b only through a
			// trailing "/#" ("x/#" matches "x").
			return out.String(), brest == "#"
		case !bmore:
			return out.String(), arest == "#"
		}
		a, b = arest, brest
	}
}
