// Package storage keeps the broker's state across restarts: the storage
// hook (ID "storage") implements core.Store over an embedded pebble
// database, a Redis server, or a JetStream KV bucket of NATS (which the
// nodes of a vanemq cluster share). See docs/persistence.md.
package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/vanemq/vanemq/core"
)

// ID is the storage hook's ID.
const ID = "storage"

// The engines.
const (
	TypePebble = "pebble"
	TypeRedis  = "redis"
	TypeNATS   = "nats"
	TypeMemory = "memory"
)

// The durability modes.
const (
	// DurabilitySync acknowledges a change only once it is on stable
	// storage (pebble: a synced WAL write; Redis: the server's reply;
	// NATS: JetStream's acknowledgement, once a majority of the
	// replicas hold it).
	DurabilitySync = "sync"
	// DurabilityNone acknowledges at once; a crash loses what was not yet
	// written.
	DurabilityNone = "none"
)

// Config configures a store.
type Config struct {
	// Type is pebble (the default), redis, nats or memory (no store: Open
	// refuses it; the caller keeps state in memory only).
	Type string
	// Durability is sync (the default) or none.
	Durability string
	// CommitInterval is how long, under load, a commit may wait for more
	// changes before writing (0, the default: never wait; the changes that
	// arrive while one commit is written form the next, which is the
	// group). CommitMaxOps ends the wait early when a batch holds that
	// many changes (default 512).
	CommitInterval time.Duration
	CommitMaxOps   int

	// Path is pebble's data directory (default "data").
	Path string
	// MinFreeBytes is the free disk space below which pebble writes are
	// refused (default 64 MiB; the clients they carried are disconnected
	// unacknowledged, and writing resumes when space is freed).
	MinFreeBytes uint64

	// Redis is the Redis server's connection settings.
	Redis RedisConfig
	// NATS is the NATS servers' connection settings and the bucket.
	NATS NATSConfig

	// Logger receives the store's log lines.
	Logger *slog.Logger
}

// Store is the storage hook. Its methods are safe for concurrent use.
type Store struct {
	cfg  Config
	eng  engine
	comm *committer
	log  *slog.Logger

	// refs counts the stored deliveries of each stored message, so a
	// message body is written with its first delivery and deleted with
	// its last. Guarded by the committer's lock (Apply fills batches
	// under it), so the counts follow the order the changes are written.
	refs map[uint64]int32
	// scratch is the encoding buffer, under the same lock.
	scratch []byte

	loadMu sync.Mutex
	loaded *snapshot // read by the first Load call, handed out once
}

// Open opens the store cfg describes: pebble in cfg.Path, a Redis
// server, or a KV bucket of NATS (made when missing). It checks the store's schema, refusing data written by an
// incompatible version.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	var (
		eng engine
		err error
	)
	switch cfg.Type {
	case TypePebble:
		eng, err = openPebble(cfg.Path, cfg.MinFreeBytes, cfg.Logger)
	case TypeRedis:
		eng, err = openRedis(ctx, cfg.Redis)
	case TypeNATS:
		eng, err = openNATS(ctx, cfg.NATS, true)
	}
	if err != nil {
		return nil, err
	}
	if err := checkSchema(ctx, eng); err != nil {
		_ = eng.close()
		return nil, err
	}
	st := &Store{cfg: cfg, eng: eng, log: cfg.Logger, refs: make(map[uint64]int32)}
	st.comm = newCommitter(eng, cfg.Durability == DurabilitySync, cfg.CommitInterval, cfg.CommitMaxOps, cfg.Logger)
	return st, nil
}

// fill checks the config and fills in defaults.
func (c *Config) fill() error {
	if c.Type == "" {
		c.Type = TypePebble
	}
	switch c.Type {
	case TypePebble, TypeRedis, TypeNATS:
	case TypeMemory:
		return errors.New("storage: type memory keeps no store; do not open one")
	default:
		return fmt.Errorf("storage: unknown type %q (want pebble, redis, nats or memory)", c.Type)
	}
	switch c.Durability {
	case "":
		c.Durability = DurabilitySync
	case DurabilitySync, DurabilityNone:
	default:
		return fmt.Errorf("storage: unknown durability %q (want sync or none)", c.Durability)
	}
	if c.CommitInterval < 0 || c.CommitInterval > time.Second {
		return fmt.Errorf("storage: commit_interval %s is outside 0..1s", c.CommitInterval)
	}
	if c.CommitMaxOps < 0 {
		return fmt.Errorf("storage: commit_max_ops %d is negative", c.CommitMaxOps)
	}
	if c.CommitMaxOps == 0 {
		c.CommitMaxOps = 512
	}
	if c.Path == "" {
		c.Path = "data"
	}
	if c.MinFreeBytes == 0 {
		c.MinFreeBytes = 64 << 20
	}
	if c.Type == TypeRedis && c.Redis.Address == "" {
		return errors.New("storage: type redis needs an address")
	}
	if c.Type == TypeNATS {
		if err := c.NATS.check(); err != nil {
			return err
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Logger = c.Logger.With("hook", ID)
	return nil
}

// checkSchema writes the schema record into an empty store and refuses a
// store written with another schema, or one that is not a vanemq store.
func checkSchema(ctx context.Context, eng engine) error {
	name, empty, err := eng.schema(ctx)
	if err != nil {
		return fmt.Errorf("storage: reading the schema of %s: %w", eng.where(), err)
	}
	switch {
	case name == schema:
		return nil
	case name == "" && empty:
		if err := eng.setSchema(ctx, schema); err != nil {
			return fmt.Errorf("storage: writing the schema of %s: %w", eng.where(), err)
		}
		return nil
	case name == "":
		return fmt.Errorf("storage: %s holds data but no vanemq schema record; it is not a vanemq store, or is damaged", eng.where())
	default:
		return fmt.Errorf("storage: %s was written with schema %q; this vanemq reads %q", eng.where(), name, schema)
	}
}

// ID implements core.Hook.
func (*Store) ID() string { return ID }

// What the store implements: it handles no pipeline event; the server
// tells it of changes through Apply, and closes it after OnStopped.
var (
	_ core.Hook  = (*Store)(nil)
	_ core.Store = (*Store)(nil)
	_ io.Closer  = (*Store)(nil)
)

// Where names the store: pebble's directory, the Redis address, or the
// NATS servers and bucket.
func (st *Store) Where() string { return st.eng.where() }

// Durable implements core.Store.
func (st *Store) Durable() bool { return st.cfg.Durability == DurabilitySync }

// Close writes what is pending and closes the store.
func (st *Store) Close() error {
	if err := st.comm.close(); err != nil {
		return fmt.Errorf("storage: closing %s: %w", st.eng.where(), err)
	}
	return nil
}

// Apply implements core.Store: it encodes ops into the open batch, which
// the group committer writes within the commit interval.
func (st *Store) Apply(ops []core.StoreOp, done func(error)) {
	if len(ops) == 0 {
		st.comm.add(nil, done)
		return
	}
	var encErr error
	st.comm.add(func(b batch) {
		for i := range ops {
			if err := st.write(b, &ops[i]); err != nil && encErr == nil {
				encErr = err
			}
		}
	}, done)
	if encErr != nil {
		st.log.Error("a change could not be encoded and was not stored", "cause", encErr)
	}
}

// write adds one change to b. Called under the committer's lock.
func (st *Store) write(b batch, op *core.StoreOp) error {
	switch op.Kind {
	case core.OpSessionPut:
		st.scratch = encodeSession(st.scratch[:0], op.Expiry, op.Disconnected, op.Owner)
		b.set(spaceSession, op.ClientID, nil, st.scratch)
	case core.OpSessionDelete:
		b.purge(op.ClientID)
	case core.OpSubscriptionPut:
		st.scratch = encodeSubscription(st.scratch[:0], &op.Subscription)
		b.set(spaceSubscription, op.ClientID, []byte(op.Subscription.Filter), st.scratch)
	case core.OpSubscriptionDelete:
		b.del(spaceSubscription, op.ClientID, []byte(op.Subscription.Filter))
	case core.OpQueueAdd, core.OpQueueUpdate:
		// The first delivery of a message writes its body. An update of
		// a delivery whose message is not counted (its deletion got
		// ahead of it) writes the body again, so no record ever points
		// at a missing message.
		n := st.refs[op.MessageID]
		if n == 0 {
			m := op.Message()
			enc, err := encodeMessage(st.scratch[:0], &m)
			st.scratch = enc
			if err != nil {
				return err
			}
			b.set(spaceMessage, "", u64key(op.MessageID), st.scratch)
		}
		if op.Kind == core.OpQueueAdd || n == 0 {
			st.refs[op.MessageID] = n + 1
		}
		st.scratch = encodeDelivery(st.scratch[:0], op)
		b.set(spaceDelivery, op.ClientID, u64key(op.Seq), st.scratch)
	case core.OpQueueDelete:
		b.del(spaceDelivery, op.ClientID, u64key(op.Seq))
		if n, ok := st.refs[op.MessageID]; ok {
			if n <= 1 {
				delete(st.refs, op.MessageID)
				b.del(spaceMessage, "", u64key(op.MessageID))
			} else {
				st.refs[op.MessageID] = n - 1
			}
		}
	case core.OpInboundPut:
		b.set(spaceInbound, op.ClientID, u16key(op.PacketID), []byte{recordVersion})
	case core.OpInboundDelete:
		b.del(spaceInbound, op.ClientID, u16key(op.PacketID))
	case core.OpRetainedPut:
		m := op.Message()
		m.ID = 0
		enc, err := encodeMessage(st.scratch[:0], &m)
		st.scratch = enc
		if err != nil {
			return err
		}
		b.set(spaceRetained, "", []byte(m.Topic), st.scratch)
	case core.OpRetainedDelete:
		b.del(spaceRetained, "", []byte(op.Topic))
	default:
		return fmt.Errorf("storage: unknown change %d", op.Kind)
	}
	if cap(st.scratch) > 1<<20 {
		st.scratch = nil
	}
	return nil
}
