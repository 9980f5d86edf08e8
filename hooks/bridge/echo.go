package bridge

import (
	"hash/maphash"
	"sync"
	"time"
)

// echoFilter recognises the bridge's own messages coming back from an
// MQTT 3.1.1 remote, which has no no-local: a remote subscription that
// matches what the bridge publishes there sends it back. Each message sent
// out is remembered (its topic and payload, hashed) for a window; a
// message coming in that matches one is taken as its echo, once.
type echoFilter struct {
	seed   maphash.Seed
	window time.Duration
	max    int

	mu      sync.Mutex
	pending map[uint64]*echoEntry
}

type echoEntry struct {
	count int
	until time.Time
}

func newEchoFilter(window time.Duration, max int) *echoFilter {
	return &echoFilter{seed: maphash.MakeSeed(), window: window, max: max, pending: make(map[uint64]*echoEntry)}
}

func (f *echoFilter) key(topic string, payload []byte) uint64 {
	var h maphash.Hash
	h.SetSeed(f.seed)
	h.WriteString(topic)
	h.WriteByte(0)
	h.Write(payload)
	return h.Sum64()
}

// add remembers a message sent out.
func (f *echoFilter) add(topic string, payload []byte) {
	k, now := f.key(topic, payload), time.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.pending) >= f.max {
		for k, e := range f.pending {
			if now.After(e.until) {
				delete(f.pending, k)
			}
		}
		if len(f.pending) >= f.max {
			clear(f.pending) // too many unanswered: start again
		}
	}
	e := f.pending[k]
	if e == nil {
		e = &echoEntry{}
		f.pending[k] = e
	}
	e.count++
	e.until = now.Add(f.window)
}

// take reports whether a message coming in is the echo of one sent out,
// and forgets that one.
func (f *echoFilter) take(topic string, payload []byte) bool {
	k := f.key(topic, payload)
	f.mu.Lock()
	defer f.mu.Unlock()
	e := f.pending[k]
	if e == nil {
		return false
	}
	if time.Now().After(e.until) {
		delete(f.pending, k)
		return false
	}
	if e.count--; e.count == 0 {
		delete(f.pending, k)
	}
	return true
}
