package storage

import "context"

// engine is a storage engine (pebble, Redis, NATS) seen as spaces of records.
// Records of a client space are keyed by client and key; the others by key.
type engine interface {
	// newBatch starts a batch of writes, applied together by commit.
	newBatch() batch
	// scan visits every record; the slices are only valid during the call.
	scan(ctx context.Context, visit func(sp space, client string, key, val []byte) error) error
	// scanClient visits every record of one client, as scan would.
	scanClient(ctx context.Context, client string, visit func(sp space, client string, key, val []byte) error) error
	// get reads one record; ok is false when there is none. The slice is
	// the caller's.
	get(ctx context.Context, sp space, client string, key []byte) (val []byte, ok bool, err error)
	// schema returns the stored schema record ("" when the store is empty
	// and has none) and whether the store holds any other record.
	schema(ctx context.Context) (name string, empty bool, err error)
	// setSchema writes the schema record.
	setSchema(ctx context.Context, name string) error
	// where names the store in messages: its path or address.
	where() string
	close() error
}

// batch is a set of writes an engine applies at once and in order. Its
// methods copy what they are given.
type batch interface {
	set(sp space, client string, key, val []byte)
	del(sp space, client string, key []byte)
	// purge removes every record of a client.
	purge(client string)
	// count is the number of writes in the batch.
	count() int
	// commit applies the batch, on stable storage first when sync is set.
	commit(ctx context.Context, sync bool) error
	// release frees the batch after commit.
	release()
}
