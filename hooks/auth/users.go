package auth

import (
	"bytes"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/bcrypt"
)

// MaxPasswordLen is the longest password bcrypt hashes: it ignores the
// bytes after the 72nd, so longer passwords are refused rather than
// silently cut.
const MaxPasswordLen = 72

// Users is a parsed users file: user names, their bcrypt hashes and the
// client IDs they may use. It is not changed after parsing, so it is safe
// for concurrent use.
type Users struct {
	hashes map[string][]byte
	cost   int // the commonest bcrypt cost, for the unknown-user dummy
	// clientIDs holds the users' own client_ids lists, and defaultIDs
	// the top-level one (nil without): see AllowsClientID.
	clientIDs  map[string]*idList
	defaultIDs *idList
}

// Len returns the number of users.
func (u *Users) Len() int { return len(u.hashes) }

// Has reports whether the file names the user.
func (u *Users) Has(username string) bool {
	_, ok := u.hashes[username]
	return ok
}

// ParseUsers parses a users file; file names it in errors. The format:
//
//	client_ids: ["%u", "%u-*"]   # optional: the client IDs users may use
//	users:
//	  - username: alice
//	    password: "$2a$10$..."   # a bcrypt hash, e.g. from `vanemq passwd`
//	  - username: gateway
//	    password: "$2a$10$..."
//	    client_ids: ["gw-*"]     # optional: this user's own, instead
//
// In a client_ids pattern, %u stands for the user name and '*' for any
// run of characters; any other '%' is an error. Without any client_ids
// list a user may connect with any client ID (see AllowsClientID).
//
// Every problem is reported as a *FileError naming the file, line and key
// (use FileErrors to list them); passwords are never quoted.
func ParseUsers(file string, data []byte) (*Users, error) {
	p := &problems{file: file}
	u := &Users{hashes: make(map[string][]byte), clientIDs: make(map[string]*idList)}
	list, top, ok := parseYAMLKeys(p, data, "users", clientIDsKey)
	if !ok {
		return nil, p.err()
	}
	if f, ok := top[clientIDsKey]; ok {
		u.defaultIDs = parseIDList(p, f)
	}
	firstLine := make(map[string]int)
	costs := make(map[int]int)
	var entries []*yaml.Node
	if list != nil {
		entries = list.Content
	}
	for i, n := range entries {
		prefix := fmt.Sprintf("users[%d]", i)
		fields := entryFields(p, deref(n), prefix, "username", "password", clientIDsKey)
		if fields == nil {
			continue
		}
		uf, hasUser := fields["username"]
		pf, hasPass := fields["password"]
		if !hasUser {
			p.add(n.Line, prefix+".username", "missing key")
		}
		if !hasPass {
			p.add(n.Line, prefix+".password", "missing key")
		}
		var name string
		if hasUser {
			if name, ok = str(p, uf); ok {
				if first, dup := firstLine[name]; dup {
					p.add(uf.node.Line, uf.key, "duplicate user %q (first at line %d)", name, first)
				} else {
					firstLine[name] = uf.node.Line
				}
			}
		}
		if f, ok := fields[clientIDsKey]; ok {
			if l := parseIDList(p, f); l != nil && name != "" {
				u.clientIDs[name] = l
			}
		}
		if !hasPass {
			continue
		}
		// The value is never quoted in a problem: it may be a plaintext
		// password.
		pn := pf.node
		if pn.Kind != yaml.ScalarNode || pn.ShortTag() == "!!null" || pn.Value == "" {
			p.add(pn.Line, pf.key, "want a bcrypt hash, found %s", kindName(pn))
			continue
		}
		cost, why := checkBcryptHash(pn.Value)
		if why != "" {
			p.add(pn.Line, pf.key, "%s; make one with `vanemq passwd FILE USER`", why)
			continue
		}
		if name != "" {
			u.hashes[name] = []byte(pn.Value)
			costs[cost]++
		}
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	u.cost = bcrypt.DefaultCost
	for c, n := range costs {
		if n > costs[u.cost] || (n == costs[u.cost] && c < u.cost) {
			u.cost = c
		}
	}
	return u, nil
}

// bcryptAlphabet is bcrypt's base64 alphabet.
const bcryptAlphabet = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// checkBcryptHash checks that h is a bcrypt hash, "$2a$10$" (or $2b$,
// $2y$) and 53 characters of salt and hash, and returns its cost, or why
// it is not one. The reason never quotes h.
func checkBcryptHash(h string) (int, string) {
	if !strings.HasPrefix(h, "$2") {
		return 0, "not a bcrypt hash (a plaintext password?): a bcrypt hash starts with $2a$, $2b$ or $2y$"
	}
	if len(h) < 4 || !strings.Contains("aby", h[2:3]) || h[3] != '$' {
		return 0, "not a bcrypt hash: the version must be $2a$, $2b$ or $2y$"
	}
	if len(h) != 60 {
		return 0, fmt.Sprintf("not a bcrypt hash: %d characters long, want 60", len(h))
	}
	if h[6] != '$' {
		return 0, "not a bcrypt hash: want a two-digit cost after the version, as in $2a$10$"
	}
	for i := 7; i < len(h); i++ {
		if strings.IndexByte(bcryptAlphabet, h[i]) < 0 {
			return 0, fmt.Sprintf("not a bcrypt hash: character %d is not in bcrypt's base64 alphabet", i+1)
		}
	}
	cost, err := bcrypt.Cost([]byte(h))
	if err != nil {
		return 0, "not a bcrypt hash: " + strings.TrimPrefix(err.Error(), "crypto/bcrypt: ")
	}
	return cost, ""
}

// SetUser returns a users file with username's password hash set to hash:
// the user's entry is updated, or appended when there is none; other
// entries and comments are kept. data is the current file, empty when
// there is none; file names it in errors. added reports whether the user
// was new. A file with problems, or a hash that is not a bcrypt hash, is
// refused with the same errors as ParseUsers.
func SetUser(file string, data []byte, username string, hash []byte) (out []byte, added bool, err error) {
	if username == "" {
		return nil, false, &FileError{File: file, Key: "username", Problem: "empty user name"}
	}
	if _, why := checkBcryptHash(string(hash)); why != "" {
		return nil, false, &FileError{File: file, Key: "password", Problem: why}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil || (doc.Kind != 0 && len(doc.Content) > 0) {
		// A file with a document must be a good users file.
		if _, err := ParseUsers(file, data); err != nil {
			return nil, false, err
		}
	} else {
		// No file, or only comments: start one.
		doc = yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{Kind: yaml.MappingNode}}}
	}
	top := deref(doc.Content[0])
	var list *yaml.Node
	for i := 0; i+1 < len(top.Content); i += 2 {
		if top.Content[i].Value == "users" {
			list = deref(top.Content[i+1])
		}
	}
	if list == nil {
		top.Content = append(top.Content, strNode("users"), &yaml.Node{})
		list = top.Content[len(top.Content)-1]
	}
	if list.Kind != yaml.SequenceNode { // users: (null)
		*list = yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	}
	if len(list.Content) == 0 {
		list.Style &^= yaml.FlowStyle // "users: []" grows into a block list
	}
	hashNode := strNode(string(hash))
	hashNode.Style = yaml.SingleQuotedStyle
	added = true
	for _, e := range list.Content {
		e = deref(e)
		var user, pass *yaml.Node
		for i := 0; i+1 < len(e.Content); i += 2 {
			switch e.Content[i].Value {
			case "username":
				user = deref(e.Content[i+1])
			case "password":
				pass = e.Content[i+1]
			}
		}
		if user == nil || user.Value != username {
			continue
		}
		added = false
		if pass == nil { // not after ParseUsers; kept safe all the same
			e.Content = append(e.Content, strNode("password"), hashNode)
			break
		}
		hashNode.Style = pass.Style &^ (yaml.LiteralStyle | yaml.FoldedStyle)
		hashNode.LineComment = pass.LineComment
		*pass = *hashNode
		break
	}
	if added {
		entry := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map",
			Content: []*yaml.Node{strNode("username"), strNode(username), strNode("password"), hashNode}}
		if n := len(list.Content); n > 0 {
			entry.Style = deref(list.Content[n-1]).Style & yaml.FlowStyle
		}
		list.Content = append(list.Content, entry)
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, false, fmt.Errorf("%s: encoding YAML: %w", file, err)
	}
	if err := enc.Close(); err != nil {
		return nil, false, fmt.Errorf("%s: encoding YAML: %w", file, err)
	}
	if _, err := ParseUsers(file, buf.Bytes()); err != nil { // cannot happen; never write a file the broker refuses
		return nil, false, fmt.Errorf("the updated file would not load: %w", err)
	}
	return buf.Bytes(), added, nil
}

func strNode(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}
