// Package topics holds MQTT topic handling for the broker: validation of
// topic names, topic filters and shared-subscription filters, the
// subscription trie that maps a published topic to its subscribers, and the
// retained-message index that maps a subscription filter to retained topics.
//
// # Matching rules
//
// Topics are split into levels at '/'; empty levels are real levels ("a//b"
// has three levels, "/a" has two) and levels compare byte for byte, without
// normalisation [MQTT-4.7.3-4]. In a filter, '+' matches exactly one level,
// including an empty one, and '#' matches the level it stands in, every level
// below it, and also its parent level ("sport/#" matches "sport").
// Topic names beginning with '$' are not matched by filters whose first level
// is a wildcard [MQTT-4.7.2-1]; "$SYS/#" does match them.
//
// # Concurrency
//
// Trie and Retained follow the same design: writers are serialised and
// readers take no lock at all.
//
//   - Every mutation (Subscribe, Unsubscribe, Set, Delete) holds one mutex
//     owned by the Trie or Retained value. Writers are short (a walk down
//     one path plus a few pointer stores) so a single writer lock is cheap, and
//     serialising them makes pruning of empty nodes trivially correct: no
//     writer can be adding below a node while another detaches it.
//   - Readers (Match, Get, SharedGroup.Next …) only perform atomic loads. A
//     node's literal children live in a sync.Map, which the standard library
//     implements as a lock-free hash-trie for readers and whose Load does not
//     allocate for a string key; the '+' and '#' children of a subscription
//     node sit in dedicated atomic pointers, so wildcards cost no hashing.
//   - A node's subscribers are stored in a slot array ([]atomic.Pointer) that
//     is published through an atomic.Pointer. Adding a subscriber fills an
//     unused slot with one atomic store, removing one clears its slot, and
//     replacing one swaps the pointer in place; the array is rebuilt only
//     when it runs out of unused slots, or to compact it once three quarters
//     of it are empty. Readers walk the slots of whichever array they loaded
//     and append the non-nil pointers to the caller's Matches, so Match
//     allocates nothing once the caller's slices have capacity. Within one
//     array a client keeps its slot across unsubscribe and resubscribe, so a
//     walk never meets the same subscription twice.
//   - Subscriptions and retained entries are immutable once published; a
//     replacement is a new value swapped in atomically.
//
// A reader therefore sees, for every node it visits, the state of that node
// at some instant during its walk. A subscription that exists for the whole
// duration of a Match is always reported, exactly once; one added or removed
// concurrently may or may not be. Nodes emptied by Unsubscribe or Delete are
// detached from their parent at once (readers already inside them simply
// see them empty), so the structure does not grow under subscribe and
// unsubscribe churn.
package topics
