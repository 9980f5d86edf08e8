package storage

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// RedisConfig is how to reach a Redis server.
type RedisConfig struct {
	// Address is the server's host:port.
	Address string
	// Username and Password authenticate the connection: Username names
	// an ACL user (Redis 6 and later); without it Password is the
	// server's requirepass.
	Username string
	Password string
	// DB is the database selected after connecting (default 0).
	DB int
	// Prefix starts every key the store writes (default "vanemq"), so
	// stores with different prefixes share a server without meeting.
	Prefix string
	// TLS, when set, connects over TLS with this configuration; nil
	// connects over plain TCP.
	TLS *tls.Config
	// DialTimeout bounds connecting to the server, and the PING with which
	// Open checks it (default 5s).
	DialTimeout time.Duration
}

// The defaults of RedisConfig.
const (
	defaultRedisPrefix      = "vanemq"
	defaultRedisDialTimeout = 5 * time.Second
)

// redisScanChunk is how many client hashes one round trip of scan reads,
// and about how many fields one HSCAN call returns.
const redisScanChunk = 256

// redisEngine keeps records in a Redis server, under keys that start with
// the configured prefix P:
//
//	P:c:<client ID>  hash: one client's records (spaces s, b, q, i); the
//	                 field is the space byte then the record's key, so the
//	                 session record's field is "s"
//	P:clients        set: the IDs of the clients that have a hash
//	P:m              hash: message bodies; field: the 8-byte big-endian ID
//	P:r              hash: retained messages; field: the topic
//	P:schema         string: the schema record
//
// P:clients may still name a client whose hash its last deletion emptied
// (Redis then removes the hash); scan finds no records for it. The keys
// are for one server, not a cluster: a batch's transaction spans them.
//
// A batch is one MULTI/EXEC transaction, sent in one round trip: Redis
// applies it whole and in order, with no other client's commands between.
// Its commands only set and delete, so when go-redis sends it again after
// a broken connection, applying it twice leaves what applying it once does.
// Durability is the server's: a reply means the server holds the change
// in memory, and it survives a crash of the server only as its
// appendonly and appendfsync settings provide (appendfsync always for
// every write, everysec for all but the last second's).
type redisEngine struct {
	client *redis.Client
	addr   string
	db     int
	tls    bool
	keys   redisKeys
	pool   sync.Pool // of *redisBatch
}

// redisKeys are the keys of one prefix.
type redisKeys struct {
	prefix   string
	client   string // the prefix of client hashes: P:c:
	clients  string
	messages string
	retained string
	schema   string
}

func newRedisKeys(prefix string) redisKeys {
	return redisKeys{
		prefix:   prefix,
		client:   prefix + ":c:",
		clients:  prefix + ":clients",
		messages: prefix + ":m",
		retained: prefix + ":r",
		schema:   prefix + ":schema",
	}
}

func openRedis(ctx context.Context, cfg RedisConfig) (engine, error) {
	if cfg.Address == "" {
		return nil, errors.New("storage: redis: no address")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = defaultRedisPrefix
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = defaultRedisDialTimeout
	}
	client := redis.NewClient(&redis.Options{
		Addr:        cfg.Address,
		Username:    cfg.Username,
		Password:    cfg.Password,
		DB:          cfg.DB,
		TLSConfig:   cfg.TLS,
		DialTimeout: cfg.DialTimeout,
		// The store needs no notices of a managed service's maintenance.
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})
	pctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	if err := client.Ping(pctx).Err(); err != nil {
		_ = client.Close()
		if redis.IsAuthError(err) || redis.HasErrorPrefix(err, "ERR AUTH") {
			return nil, fmt.Errorf("storage: redis at %s: connecting: authentication refused (check the username and password): %w", cfg.Address, err)
		}
		return nil, fmt.Errorf("storage: redis at %s: connecting: %w", cfg.Address, err)
	}
	e := &redisEngine{client: client, addr: cfg.Address, db: cfg.DB, tls: cfg.TLS != nil, keys: newRedisKeys(cfg.Prefix)}
	e.pool.New = func() any { return &redisBatch{e: e, added: make(map[string]struct{})} }
	return e, nil
}

// fail names the server and what failed in err.
func (e *redisEngine) fail(what string, err error) error {
	return fmt.Errorf("redis at %s: %s: %w", e.addr, what, err)
}

// where names the server and database, never the credentials.
func (e *redisEngine) where() string {
	scheme := "redis"
	if e.tls {
		scheme = "rediss"
	}
	return scheme + "://" + e.addr + "/" + strconv.Itoa(e.db)
}

func (e *redisEngine) close() error { return e.client.Close() }

func (e *redisEngine) clientKey(id string) string { return e.keys.client + id }

// schema reads the schema record and, in the same round trip, whether
// any of the store's other keys exists.
func (e *redisEngine) schema(ctx context.Context) (string, bool, error) {
	pipe := e.client.Pipeline()
	get := pipe.Get(ctx, e.keys.schema)
	exists := pipe.Exists(ctx, e.keys.clients, e.keys.messages, e.keys.retained)
	_, _ = pipe.Exec(ctx) // the errors are the commands'
	if err := get.Err(); err != nil && !errors.Is(err, redis.Nil) {
		return "", false, e.fail("reading "+e.keys.schema, err)
	}
	if err := exists.Err(); err != nil {
		return "", false, e.fail("looking for the store's keys", err)
	}
	name := get.Val()
	if name != "" {
		return name, false, nil
	}
	return "", exists.Val() == 0, nil
}

func (e *redisEngine) setSchema(ctx context.Context, name string) error {
	if err := e.client.Set(ctx, e.keys.schema, name, 0).Err(); err != nil {
		return e.fail("writing "+e.keys.schema, err)
	}
	return nil
}

// scan reads the client hashes a chunk per round trip, then the message
// and retained hashes with HSCAN, so no single reply holds all of them.
func (e *redisEngine) scan(ctx context.Context, visit func(sp space, client string, key, val []byte) error) error {
	ids, err := e.client.SMembers(ctx, e.keys.clients).Result()
	if err != nil {
		return e.fail("reading "+e.keys.clients, err)
	}
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), redisScanChunk)]
		ids = ids[len(chunk):]
		pipe := e.client.Pipeline()
		cmds := make([]*redis.MapStringStringCmd, len(chunk))
		for i, id := range chunk {
			cmds[i] = pipe.HGetAll(ctx, e.clientKey(id))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return e.fail(fmt.Sprintf("reading %d client hashes", len(chunk)), err)
		}
		for i, id := range chunk {
			for field, val := range cmds[i].Val() {
				if field == "" || !isClientSpace(space(field[0])) {
					return fmt.Errorf("client %q: field %q of %s: %w", id, field, e.clientKey(id), errCorrupt)
				}
				if err := visit(space(field[0]), id, []byte(field[1:]), []byte(val)); err != nil {
					return err
				}
			}
		}
	}
	if err := e.hscan(ctx, e.keys.messages, spaceMessage, visit); err != nil {
		return err
	}
	return e.hscan(ctx, e.keys.retained, spaceRetained, visit)
}

// scanClient reads the client's hash.
func (e *redisEngine) scanClient(ctx context.Context, client string, visit func(sp space, client string, key, val []byte) error) error {
	fields, err := e.client.HGetAll(ctx, e.clientKey(client)).Result()
	if err != nil {
		return e.fail("reading "+e.clientKey(client), err)
	}
	for field, val := range fields {
		if field == "" || !isClientSpace(space(field[0])) {
			return fmt.Errorf("client %q: field %q of %s: %w", client, field, e.clientKey(client), errCorrupt)
		}
		if err := visit(space(field[0]), client, []byte(field[1:]), []byte(val)); err != nil {
			return err
		}
	}
	return nil
}

func (e *redisEngine) get(ctx context.Context, sp space, client string, key []byte) ([]byte, bool, error) {
	hash, field := (&redisBatch{e: e}).locate(sp, client, key)
	v, err := e.client.HGet(ctx, hash, field).Bytes()
	switch {
	case errors.Is(err, redis.Nil):
		return nil, false, nil
	case err != nil:
		return nil, false, e.fail("reading "+hash, err)
	}
	return v, true, nil
}

// hscan visits the fields of a hash once each: HSCAN may return a field
// twice when the server resizes the hash during the scan.
func (e *redisEngine) hscan(ctx context.Context, key string, sp space, visit func(sp space, client string, key, val []byte) error) error {
	seen := make(map[string]struct{})
	var cursor uint64
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		kv, next, err := e.client.HScan(ctx, key, cursor, "", redisScanChunk).Result()
		if err != nil {
			return e.fail("reading "+key, err)
		}
		for i := 0; i+1 < len(kv); i += 2 {
			field := kv[i]
			if _, dup := seen[field]; dup {
				continue
			}
			seen[field] = struct{}{}
			if err := visit(sp, "", []byte(field), []byte(kv[i+1])); err != nil {
				return err
			}
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}

func (e *redisEngine) newBatch() batch { return e.pool.Get().(*redisBatch) }

// redisBatch gathers commands for one MULTI/EXEC.
type redisBatch struct {
	e   *redisEngine
	ops []redisOp
	n   int // set, del and purge calls
	// added are the clients whose ID this batch adds to P:clients since
	// their last purge in it, so a batch adds each ID once.
	added map[string]struct{}
}

type redisOpKind uint8

const (
	redisHSet redisOpKind = iota
	redisHDel
	redisDel
	redisSAdd
	redisSRem
)

// redisOp is one command: a key, a field or member, a value.
type redisOp struct {
	kind       redisOpKind
	key, field string
	val        string
}

// locate is the hash and field of a record: its client's hash, or P:m
// and P:r (the hash of the other spaces is the prefix, ':' and the space).
func (b *redisBatch) locate(sp space, client string, key []byte) (string, string) {
	switch sp {
	case spaceMessage:
		return b.e.keys.messages, string(key)
	case spaceRetained:
		return b.e.keys.retained, string(key)
	}
	if isClientSpace(sp) {
		return b.e.clientKey(client), string(byte(sp)) + string(key)
	}
	return b.e.keys.prefix + ":" + string(byte(sp)), string(key)
}

func (b *redisBatch) set(sp space, client string, key, val []byte) {
	b.n++
	hash, field := b.locate(sp, client, key)
	b.ops = append(b.ops, redisOp{kind: redisHSet, key: hash, field: field, val: string(val)})
	if isClientSpace(sp) {
		if _, ok := b.added[client]; !ok {
			b.added[client] = struct{}{}
			b.ops = append(b.ops, redisOp{kind: redisSAdd, key: b.e.keys.clients, field: client})
		}
	}
}

func (b *redisBatch) del(sp space, client string, key []byte) {
	b.n++
	hash, field := b.locate(sp, client, key)
	b.ops = append(b.ops, redisOp{kind: redisHDel, key: hash, field: field})
}

func (b *redisBatch) purge(client string) {
	b.n++
	delete(b.added, client)
	b.ops = append(b.ops,
		redisOp{kind: redisDel, key: b.e.clientKey(client)},
		redisOp{kind: redisSRem, key: b.e.keys.clients, field: client})
}

func (b *redisBatch) count() int { return b.n }

// commit sends the batch as one MULTI/EXEC and waits for its reply. sync
// adds nothing: the reply is all Redis reports, and how durable the change
// then is depends on the server's appendonly and appendfsync settings.
// Redis does not roll a transaction back: if a command fails (a key of
// the prefix holds another type), the others still apply.
func (b *redisBatch) commit(ctx context.Context, _ bool) error {
	if len(b.ops) == 0 {
		return nil
	}
	pipe := b.e.client.TxPipeline()
	for i := range b.ops {
		op := &b.ops[i]
		switch op.kind {
		case redisHSet:
			pipe.HSet(ctx, op.key, op.field, op.val)
		case redisHDel:
			pipe.HDel(ctx, op.key, op.field)
		case redisDel:
			pipe.Del(ctx, op.key)
		case redisSAdd:
			pipe.SAdd(ctx, op.key, op.field)
		case redisSRem:
			pipe.SRem(ctx, op.key, op.field)
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return b.e.fail(fmt.Sprintf("MULTI/EXEC of %d commands", len(b.ops)), err)
	}
	return nil
}

// release drops the commands and keeps the batch for reuse, unless it
// grew large.
func (b *redisBatch) release() {
	if cap(b.ops) > 4096 || len(b.added) > 1024 {
		return
	}
	clear(b.ops)
	b.ops, b.n = b.ops[:0], 0
	clear(b.added)
	b.e.pool.Put(b)
}
