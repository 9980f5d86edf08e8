package topics

import (
	"sync"
	"sync/atomic"
)

// Trie indexes subscriptions by topic filter, one node per filter level, and
// finds the subscriptions matching a published topic. It is safe for
// concurrent use: Subscribe and Unsubscribe are serialised by a writer lock,
// Match takes no lock (see the package documentation). Create one with
// NewTrie (the zero value is an empty trie too); a Trie must not be copied.
type Trie struct {
	mu    sync.Mutex // serialises writers
	root  node
	count atomic.Int64
}

// node is one filter level. Its subscribers are the subscriptions whose
// filter ends at this node.
type node struct {
	lits   children[node]                   // literal next levels
	plus   atomic.Pointer[node]             // '+' next level
	hash   atomic.Pointer[node]             // '#' next level
	subs   set[Subscription]                // non-shared subscriptions, by client ID
	groups atomic.Pointer[set[SharedGroup]] // share groups, by name; nil when none
}

// NewTrie returns an empty subscription trie.
func NewTrie() *Trie {
	return new(Trie)
}

// Count returns the number of subscriptions, shared-group members included.
func (t *Trie) Count() int {
	return int(t.count.Load())
}

// Subscribe adds s, or replaces the subscription with the same ClientID,
// Group and Filter, and reports whether it replaced one. s.Filter must be a
// valid filter (ValidateFilter) without any $share/ prefix; s.Group is the
// share name, "" for an ordinary subscription. The trie keeps its own copy.
func (t *Trie) Subscribe(s Subscription) (replaced bool) {
	sub := new(Subscription)
	*sub = s

	t.mu.Lock()
	defer t.mu.Unlock()

	n := &t.root
	for start := 0; ; {
		end := levelEnd(s.Filter, start)
		n = n.childOrCreate(s.Filter[start:end])
		if end == len(s.Filter) {
			break
		}
		start = end + 1
	}

	if s.Group == "" {
		replaced = n.subs.put(s.ClientID, sub)
	} else {
		groups := n.groups.Load()
		if groups == nil {
			groups = new(set[SharedGroup])
			n.groups.Store(groups)
		}
		g := groups.get(s.Group)
		if g == nil {
			g = &SharedGroup{name: s.Group, filter: s.Filter}
			groups.put(s.Group, g)
		}
		replaced = g.members.put(s.ClientID, sub)
	}
	if !replaced {
		t.count.Add(1)
	}
	return replaced
}

// Unsubscribe removes the subscription of clientID to filter within share
// group group ("" for an ordinary subscription), reporting whether it
// existed. Nodes left empty are detached from the trie.
func (t *Trie) Unsubscribe(clientID, group, filter string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()

	// The path from the root, so that emptied nodes can be pruned bottom-up.
	type step struct {
		parent *node
		level  string
	}
	var buf [8]step
	path := buf[:0]

	n := &t.root
	for start := 0; ; {
		end := levelEnd(filter, start)
		level := filter[start:end]
		child := n.child(level)
		if child == nil {
			return false
		}
		path = append(path, step{n, level})
		n = child
		if end == len(filter) {
			break
		}
		start = end + 1
	}

	if group == "" {
		if n.subs.remove(clientID) == nil {
			return false
		}
	} else {
		groups := n.groups.Load()
		if groups == nil {
			return false
		}
		g := groups.get(group)
		if g == nil || g.members.remove(clientID) == nil {
			return false
		}
		if g.members.len() == 0 {
			groups.remove(group)
			if groups.len() == 0 {
				n.groups.Store(nil)
			}
		}
	}
	t.count.Add(-1)

	for i := len(path) - 1; i >= 0 && n.empty(); i-- {
		path[i].parent.removeChild(path[i].level)
		n = path[i].parent
	}
	return true
}

// Match appends to res every subscription whose filter matches topic:
// non-shared ones to res.Subs, share groups to res.Shared (once each). It
// does not reset res. topic should be a valid topic name.
//
// Match takes no lock and, once res has enough capacity, does not allocate.
// A subscription present for the whole call is always reported, and no
// subscription or group is reported twice by one call, even when it is
// removed and re-added while the call runs.
func (t *Trie) Match(topic string, res *Matches) {
	t.root.match(topic, 0, IsSysTopic(topic), res)
}

// match matches the topic level starting at topic[start] against n's
// children. noWild hides the wildcard children, for the first level of a
// '$' topic [MQTT-4.7.2-1].
func (n *node) match(topic string, start int, noWild bool, res *Matches) {
	end := levelEnd(topic, start)
	last := end == len(topic)
	if !noWild {
		if h := n.hash.Load(); h != nil {
			h.collect(res)
		}
		if p := n.plus.Load(); p != nil {
			p.matchRest(topic, end, last, res)
		}
	}
	if c := n.lits.get(topic[start:end]); c != nil {
		c.matchRest(topic, end, last, res)
	}
}

// matchRest continues a match at n, which matched the level ending at
// topic[end].
func (n *node) matchRest(topic string, end int, last bool, res *Matches) {
	if !last {
		n.match(topic, end+1, false, res)
		return
	}
	n.collect(res)
	// "a/#" also matches "a" [MQTT-4.7.1-2].
	if h := n.hash.Load(); h != nil {
		h.collect(res)
	}
}

// collect appends n's subscribers to res.
func (n *node) collect(res *Matches) {
	res.Subs = n.subs.appendTo(res.Subs)
	if g := n.groups.Load(); g != nil {
		res.Shared = g.appendTo(res.Shared)
	}
}

// child returns the child for a filter level, or nil. Writer only.
func (n *node) child(level string) *node {
	switch level {
	case singleLevel:
		return n.plus.Load()
	case multiLevel:
		return n.hash.Load()
	}
	return n.lits.get(level)
}

// childOrCreate returns the child for a filter level, adding it if needed.
// Writer only.
func (n *node) childOrCreate(level string) *node {
	if c := n.child(level); c != nil {
		return c
	}
	c := new(node)
	switch level {
	case singleLevel:
		n.plus.Store(c)
	case multiLevel:
		n.hash.Store(c)
	default:
		n.lits.add(level, c)
	}
	return c
}

// removeChild detaches the child for a filter level. Writer only.
func (n *node) removeChild(level string) {
	switch level {
	case singleLevel:
		n.plus.Store(nil)
	case multiLevel:
		n.hash.Store(nil)
	default:
		n.lits.remove(level)
	}
}

// empty reports whether n has neither subscribers nor children. Writer only.
func (n *node) empty() bool {
	return n.subs.len() == 0 && n.groups.Load() == nil &&
		n.lits.empty() && n.plus.Load() == nil && n.hash.Load() == nil
}
