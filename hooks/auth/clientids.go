package auth

import (
	"context"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/packets"
)

// clientIDsKey is the users file's key, at the top and in an entry, for
// the client IDs a user may connect with.
const clientIDsKey = "client_ids"

// idList is one client_ids list of a users file: the patterns a client ID
// must match one of. It is not changed after parsing.
type idList struct {
	key      string // "client_ids" or "users[2].client_ids", for logs
	line     int    // where the key is
	patterns []idPattern
}

// idPattern is one client ID pattern: literal text, where %u stands for
// the user name and '*' for any run of characters, the empty one too.
type idPattern struct {
	text string // as written
	// pieces is text cut at its '*'s: pieces[0] begins the client ID,
	// the last piece ends it (they are one when there is no '*'), and the
	// others appear in between, in order. A piece may hold %u.
	pieces []string
}

// compileIDPattern checks a client ID pattern and cuts it at its '*'s,
// or says why it is not one.
func compileIDPattern(s string) (idPattern, string) {
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && (i+1 == len(s) || s[i+1] != 'u') {
			return idPattern{}, "'%' must start %u (the user name)"
		}
	}
	if strings.IndexByte(s, 0) >= 0 {
		return idPattern{}, "contains U+0000, which no client ID can [MQTT-1.5.4-2]"
	}
	pieces := strings.Split(s, "*")
	if strings.HasPrefix(pieces[0], core.InternalIDPrefix) {
		return idPattern{}, "client IDs beginning with " + core.InternalIDPrefix + " are the broker's own (bridges): no client can connect with one"
	}
	return idPattern{text: s, pieces: pieces}, ""
}

// matches reports whether clientID matches the pattern for the user. The
// user name is taken literally: a '*' in it is no wildcard.
func (pt *idPattern) matches(username, clientID string) bool {
	expand := func(piece string) string {
		return strings.ReplaceAll(piece, "%u", username) // no allocation without %u
	}
	first := expand(pt.pieces[0])
	if len(pt.pieces) == 1 {
		return clientID == first
	}
	last := expand(pt.pieces[len(pt.pieces)-1])
	if len(clientID) < len(first)+len(last) || !strings.HasPrefix(clientID, first) || !strings.HasSuffix(clientID, last) {
		return false
	}
	// Taking each middle piece at its leftmost place leaves the most room
	// for the next: when that fails, every other place fails too.
	rest := clientID[len(first) : len(clientID)-len(last)]
	for _, piece := range pt.pieces[1 : len(pt.pieces)-1] {
		piece = expand(piece)
		i := strings.Index(rest, piece)
		if i < 0 {
			return false
		}
		rest = rest[i+len(piece):]
	}
	return true
}

// allows reports whether clientID matches one of the list's patterns.
func (l *idList) allows(username, clientID string) bool {
	for i := range l.patterns {
		if l.patterns[i].matches(username, clientID) {
			return true
		}
	}
	return false
}

// texts returns the patterns as written, for logs.
func (l *idList) texts() []string {
	out := make([]string, len(l.patterns))
	for i := range l.patterns {
		out[i] = l.patterns[i].text
	}
	return out
}

// parseIDList parses a client_ids value, recording its problems; nil when
// it has some.
func parseIDList(p *problems, f field) *idList {
	n := f.node
	if n.Kind != yaml.SequenceNode {
		p.add(n.Line, f.key, "want a list of client ID patterns, e.g. [\"%%u\", \"%%u-*\"], found %s", kindName(n))
		return nil
	}
	if len(n.Content) == 0 {
		p.add(n.Line, f.key, "an empty list allows no client ID, so no client could connect; "+
			"to allow any client ID, remove the key or write [\"*\"]")
		return nil
	}
	l := &idList{key: f.key, line: f.line}
	bad := false
	for i, item := range n.Content {
		item = deref(item)
		pf := field{key: fmt.Sprintf("%s[%d]", f.key, i), line: item.Line, node: item}
		s, ok := str(p, pf)
		if !ok {
			bad = true
			continue
		}
		pt, why := compileIDPattern(s)
		if why != "" {
			p.add(item.Line, pf.key, "%q: %s", s, why)
			bad = true
			continue
		}
		l.patterns = append(l.patterns, pt)
	}
	if bad {
		return nil
	}
	return l
}

// idList returns the client_ids list that applies to username: the
// user's own, else the file's default; nil when neither is set, and any
// client ID is allowed.
func (u *Users) idList(username string) *idList {
	if l, ok := u.clientIDs[username]; ok {
		return l
	}
	return u.defaultIDs
}

// AllowsClientID reports whether the users file lets username connect
// with clientID: the client ID matches one of the user's client_ids
// patterns, or of the top-level client_ids for a user without a list of
// its own (a user the file does not name included), or neither list is
// set.
func (u *Users) AllowsClientID(username, clientID string) bool {
	l := u.idList(username)
	return l == nil || l.allows(username, clientID)
}

// checkClientID is Authenticate's verdict for a user whose password is
// right: Allow when the users file lets the user connect with the
// client's ID (AllowsClientID); otherwise, after failure_delay, Client
// Identifier not valid (CONNACK 0x85; 3.1.1: 0x02 identifier rejected).
// The ID is the client's as the hook sees it, which for an empty one is
// the ID the server assigned.
//
// It is checked only after the password, so that the answer does not
// tell a client without the password whether the user exists or which
// IDs it may use; and such a refusal does not count towards
// max_failures, the password being right.
func (f *File) checkClientID(ctx context.Context, users *Users, cl *core.ClientInfo, username string) core.Verdict {
	l := users.idList(username)
	if l == nil || l.allows(username, cl.ID) {
		return core.Allow
	}
	f.log.Info("auth.file: refused: the user may not use this client ID", "client", cl.ID, "username", username,
		"rule", fmt.Sprintf("%s:%d (%s)", f.opts.Users, l.line, l.key), "client_ids", l.texts())
	f.refusalDelay(ctx, f.opts.Guard.FailureDelay)
	return core.Deny(packets.ClientIdentifierNotValid, "this user may not connect with this client identifier")
}
