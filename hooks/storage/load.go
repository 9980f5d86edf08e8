package storage

import (
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/vanemq/vanemq/core"
)

// Counts is what a store holds, as Load and Check find it.
type Counts struct {
	Sessions      int // persistent sessions
	Subscriptions int
	Inflight      int // deliveries sent and not acknowledged
	Queued        int // deliveries waiting to be sent
	Inbound       int // inbound QoS 2 messages awaiting PUBREL
	Messages      int // distinct messages the deliveries refer to
	Retained      int
	// Dangling counts records nothing refers to, or that refer to
	// nothing (a message without deliveries, a delivery without its
	// message, records of a client without a session); they are removed
	// when the broker starts.
	Dangling int
}

// snapshot is a store's content, read once at start.
type snapshot struct {
	retained []core.StoredMessage
	sessions []core.StoredSession
	counts   Counts
	// cleanup removes the dangling records.
	cleanup []func(b batch)
	// refs are the message reference counts.
	refs map[uint64]int32
}

// clientState gathers one client's records during a scan.
type clientState struct {
	session    core.StoredSession
	hasSession bool
	deliveries []storedDelivery
}

// add decodes one of the client's records into c.
func (c *clientState) add(sp space, key, val []byte) error {
	switch sp {
	case spaceSession:
		expiry, disc, owner, err := decodeSession(val)
		if err != nil {
			return err
		}
		c.hasSession = true
		c.session.Expiry, c.session.Disconnected, c.session.Owner = expiry, disc, owner
	case spaceSubscription:
		sub, err := decodeSubscription(string(key), val)
		if err != nil {
			return err
		}
		c.session.Subscriptions = append(c.session.Subscriptions, sub)
	case spaceDelivery:
		if len(key) != 8 {
			return fmt.Errorf("delivery key %x: %w", key, errCorrupt)
		}
		d, err := decodeDelivery(binary.BigEndian.Uint64(key), val)
		if err != nil {
			return err
		}
		c.deliveries = append(c.deliveries, d)
	case spaceInbound:
		if len(key) != 2 {
			return fmt.Errorf("inbound key %x: %w", key, errCorrupt)
		}
		c.session.Inbound = append(c.session.Inbound, binary.BigEndian.Uint16(key))
	default:
		return fmt.Errorf("record of kind %q under a client: %w", byte(sp), errCorrupt)
	}
	return nil
}

// read scans the whole store into a snapshot. A record that does not
// decode fails it with an error naming the store and the record.
func read(ctx context.Context, eng engine) (*snapshot, error) {
	clients := make(map[string]*clientState)
	messages := make(map[uint64]*core.StoredMessage)
	snap := &snapshot{refs: make(map[uint64]int32)}
	get := func(id string) *clientState {
		c := clients[id]
		if c == nil {
			c = &clientState{session: core.StoredSession{ClientID: id}}
			clients[id] = c
		}
		return c
	}
	err := eng.scan(ctx, func(sp space, client string, key, val []byte) error {
		switch sp {
		case spaceMeta:
			return nil
		case spaceSession, spaceSubscription, spaceDelivery, spaceInbound:
			if err := get(client).add(sp, key, val); err != nil {
				return fmt.Errorf("client %q: %w", client, err)
			}
		case spaceMessage:
			if len(key) != 8 {
				return fmt.Errorf("message key %x: %w", key, errCorrupt)
			}
			id := binary.BigEndian.Uint64(key)
			m, err := decodeMessage(id, val)
			if err != nil {
				return err
			}
			messages[id] = &m
		case spaceRetained:
			m, err := decodeMessage(0, val)
			if err != nil {
				return fmt.Errorf("retained message on %q: %w", key, err)
			}
			if m.Topic != string(key) {
				return fmt.Errorf("retained message on %q has topic %q: %w", key, m.Topic, errCorrupt)
			}
			m.Retain = true
			snap.retained = append(snap.retained, m)
		default:
			return fmt.Errorf("record of unknown kind %q: %w", byte(sp), errCorrupt)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: reading %s: %w", eng.where(), err)
	}
	snap.counts.Retained = len(snap.retained)

	for _, id := range slices.Sorted(maps.Keys(clients)) {
		c := clients[id]
		if !c.hasSession {
			snap.counts.Dangling++
			snap.cleanup = append(snap.cleanup, func(b batch) { b.purge(id) })
			continue
		}
		slices.SortFunc(c.deliveries, func(a, b storedDelivery) int { return cmpU64(a.Seq, b.Seq) })
		for _, d := range c.deliveries {
			m := messages[d.messageID]
			if m == nil {
				snap.counts.Dangling++
				seq := d.Seq
				snap.cleanup = append(snap.cleanup, func(b batch) { b.del(spaceDelivery, id, u64key(seq)) })
				continue
			}
			d.Message = m
			snap.refs[d.messageID]++
			c.session.Deliveries = append(c.session.Deliveries, d.StoredDelivery)
			if d.PacketID != 0 {
				snap.counts.Inflight++
			} else {
				snap.counts.Queued++
			}
		}
		snap.counts.Sessions++
		snap.counts.Subscriptions += len(c.session.Subscriptions)
		snap.counts.Inbound += len(c.session.Inbound)
		snap.sessions = append(snap.sessions, c.session)
	}
	for id := range messages {
		if snap.refs[id] == 0 {
			snap.counts.Dangling++
			snap.cleanup = append(snap.cleanup, func(b batch) { b.del(spaceMessage, "", u64key(id)) })
		}
	}
	snap.counts.Messages = len(snap.refs)
	slices.SortFunc(snap.retained, func(a, b core.StoredMessage) int { return strings.Compare(a.Topic, b.Topic) })
	return snap, nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// snapshot reads the store once, removing dangling records, and adopts
// its message reference counts.
func (st *Store) snapshot(ctx context.Context) (*snapshot, error) {
	st.loadMu.Lock()
	defer st.loadMu.Unlock()
	if st.loaded != nil {
		return st.loaded, nil
	}
	snap, err := read(ctx, st.eng)
	if err != nil {
		return nil, err
	}
	if len(snap.cleanup) > 0 {
		st.log.Warn("removing dangling records", "store", st.eng.where(), "records", len(snap.cleanup))
		done := make(chan error, 1)
		st.comm.add(func(b batch) {
			for _, f := range snap.cleanup {
				f(b)
			}
		}, func(err error) { done <- err })
		if err := <-done; err != nil {
			return nil, err
		}
	}
	st.comm.mu.Lock()
	for id, n := range snap.refs {
		st.refs[id] += n
	}
	st.comm.mu.Unlock()
	st.loaded = snap
	return snap, nil
}

// LoadRetained implements core.Loader.
func (st *Store) LoadRetained(ctx context.Context) ([]core.StoredMessage, error) {
	snap, err := st.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	return snap.retained, nil
}

// LoadSessions implements core.Loader. The snapshot is let go afterwards.
func (st *Store) LoadSessions(ctx context.Context) ([]core.StoredSession, error) {
	snap, err := st.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	st.loadMu.Lock()
	st.loaded = &snapshot{counts: snap.counts, refs: map[uint64]int32{}}
	st.loadMu.Unlock()
	return snap.sessions, nil
}

// LoadSession reads the stored session of one client, with its
// subscriptions, deliveries (each with its message) and inbound QoS 2
// packet IDs, straight from the engine: it is how a node of a cluster
// sharing one NATS store picks up a session another node wrote (for
// pebble and Redis it reads what this store wrote). ok is false when the
// client has no stored session. It reads only that client's records and
// the messages its deliveries refer to; a delivery whose message is
// missing is left out, as Load leaves it out. It changes nothing, and
// the store's message reference counts do not count what it returns.
func (st *Store) LoadSession(ctx context.Context, clientID string) (core.StoredSession, bool, error) {
	c := &clientState{session: core.StoredSession{ClientID: clientID}}
	err := st.eng.scanClient(ctx, clientID, func(sp space, _ string, key, val []byte) error {
		return c.add(sp, key, val)
	})
	if err != nil {
		return core.StoredSession{}, false, fmt.Errorf("storage: reading the session of %q from %s: %w", clientID, st.eng.where(), err)
	}
	if !c.hasSession {
		return core.StoredSession{}, false, nil
	}
	slices.SortFunc(c.deliveries, func(a, b storedDelivery) int { return cmpU64(a.Seq, b.Seq) })
	slices.Sort(c.session.Inbound)
	slices.SortFunc(c.session.Subscriptions, func(a, b core.StoredSubscription) int { return strings.Compare(a.Filter, b.Filter) })
	messages := make(map[uint64]*core.StoredMessage)
	for _, d := range c.deliveries {
		m, seen := messages[d.messageID]
		if !seen {
			val, ok, err := st.eng.get(ctx, spaceMessage, "", u64key(d.messageID))
			if err != nil {
				return core.StoredSession{}, false, fmt.Errorf("storage: reading message %d of %q from %s: %w", d.messageID, clientID, st.eng.where(), err)
			}
			if ok {
				dm, err := decodeMessage(d.messageID, val)
				if err != nil {
					return core.StoredSession{}, false, fmt.Errorf("storage: client %q in %s: %w", clientID, st.eng.where(), err)
				}
				m = &dm
			}
			messages[d.messageID] = m
		}
		if m == nil {
			continue
		}
		d.Message = m
		c.session.Deliveries = append(c.session.Deliveries, d.StoredDelivery)
	}
	return c.session, true, nil
}

// Check reads a store and reports what it holds; it changes nothing.
func Check(ctx context.Context, cfg Config) (Counts, error) {
	if err := cfg.fill(); err != nil {
		return Counts{}, err
	}
	var (
		eng engine
		err error
	)
	switch cfg.Type {
	case TypePebble:
		var pe *pebbleEngine
		if pe, err = openPebbleReadOnly(cfg.Path, cfg.Logger); err == nil {
			eng = pe
		}
	case TypeRedis:
		eng, err = openRedis(ctx, cfg.Redis)
	case TypeNATS:
		eng, err = openNATS(ctx, cfg.NATS, false)
	}
	if err != nil {
		return Counts{}, err
	}
	defer func() { _ = eng.close() }()
	name, empty, err := eng.schema(ctx)
	if err != nil {
		return Counts{}, fmt.Errorf("storage: reading the schema of %s: %w", eng.where(), err)
	}
	if name != schema && !(name == "" && empty) {
		if name == "" {
			return Counts{}, fmt.Errorf("storage: %s holds data but no vanemq schema record", eng.where())
		}
		return Counts{}, fmt.Errorf("storage: %s was written with schema %q; this vanemq reads %q", eng.where(), name, schema)
	}
	snap, err := read(ctx, eng)
	if err != nil {
		return Counts{}, err
	}
	return snap.counts, nil
}
