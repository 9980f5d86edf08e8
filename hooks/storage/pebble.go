package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/cockroachdb/pebble/v2"
)

// pebbleEngine keeps records in an embedded pebble database. Keys are the
// space byte, then for client records the client ID, a 0x00 separator
// (client IDs never contain U+0000 [MQTT-1.5.4-2]) and the record's key;
// for the others the record's key.
type pebbleEngine struct {
	db   *pebble.DB
	path string
	// space refuses writes when the disk is nearly full.
	space *spaceGuard
}

var schemaKey = []byte{byte(spaceMeta), 's', 'c', 'h', 'e', 'm', 'a'}

func openPebble(path string, minFree uint64, log *slog.Logger) (engine, error) {
	e, err := openPebbleWith(path, log, false)
	if err != nil {
		return nil, err
	}
	e.space = newSpaceGuard(e.path, minFree)
	return e, nil
}

func openPebbleReadOnly(path string, log *slog.Logger) (*pebbleEngine, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("storage: no data directory at %s: %w", path, err)
	}
	return openPebbleWith(path, log, true)
}

func openPebbleWith(path string, log *slog.Logger, readOnly bool) (*pebbleEngine, error) {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	db, err := pebble.Open(path, &pebble.Options{Logger: pebbleLogger{log}, ReadOnly: readOnly})
	if err != nil {
		switch {
		case pebble.IsCorruptionError(err):
			return nil, fmt.Errorf("storage: the data directory %s is corrupt: %w", path, err)
		case errors.Is(err, os.ErrPermission):
			return nil, fmt.Errorf("storage: no permission to use the data directory %s: %w", path, err)
		default:
			return nil, fmt.Errorf("storage: opening the data directory %s (is another vanemq using it?): %w", path, err)
		}
	}
	return &pebbleEngine{db: db, path: path}, nil
}

func (e *pebbleEngine) where() string { return e.path }

func (e *pebbleEngine) close() error { return e.db.Close() }

func (e *pebbleEngine) schema(context.Context) (string, bool, error) {
	v, closer, err := e.db.Get(schemaKey)
	switch {
	case err == nil:
		name := string(v)
		_ = closer.Close()
		return name, false, nil
	case !errors.Is(err, pebble.ErrNotFound):
		return "", false, err
	}
	it, err := e.db.NewIter(nil)
	if err != nil {
		return "", false, err
	}
	empty := !it.First()
	if err := it.Close(); err != nil {
		return "", false, err
	}
	return "", empty, nil
}

func (e *pebbleEngine) setSchema(_ context.Context, name string) error {
	return e.db.Set(schemaKey, []byte(name), pebble.Sync)
}

func (e *pebbleEngine) scan(ctx context.Context, visit func(sp space, client string, key, val []byte) error) error {
	it, err := e.db.NewIterWithContext(ctx, nil)
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		if len(k) == 0 {
			continue
		}
		val, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return err
		}
		sp := space(k[0])
		rest := k[1:]
		client := ""
		if isClientSpace(sp) {
			i := bytes.IndexByte(rest, 0)
			if i < 0 {
				_ = it.Close()
				return fmt.Errorf("key %q: %w", k, errCorrupt)
			}
			client, rest = string(rest[:i]), rest[i+1:]
		}
		if err := visit(sp, client, rest, val); err != nil {
			_ = it.Close()
			return err
		}
	}
	return it.Close()
}

// scanClient iterates the client's range of each client space.
func (e *pebbleEngine) scanClient(ctx context.Context, client string, visit func(sp space, client string, key, val []byte) error) error {
	for _, sp := range clientSpaces {
		start := append([]byte{byte(sp)}, client...)
		start = append(start, 0)
		end := append([]byte{byte(sp)}, client...)
		end = append(end, 1)
		it, err := e.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: start, UpperBound: end})
		if err != nil {
			return err
		}
		for it.First(); it.Valid(); it.Next() {
			val, err := it.ValueAndErr()
			if err != nil {
				_ = it.Close()
				return err
			}
			if err := visit(sp, client, it.Key()[len(start):], val); err != nil {
				_ = it.Close()
				return err
			}
		}
		if err := it.Close(); err != nil {
			return err
		}
	}
	return nil
}

func (e *pebbleEngine) get(_ context.Context, sp space, client string, key []byte) ([]byte, bool, error) {
	k := (&pebbleBatch{}).keyOf(sp, client, key)
	v, closer, err := e.db.Get(k)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		return nil, false, nil
	case err != nil:
		return nil, false, err
	}
	val := append([]byte(nil), v...)
	_ = closer.Close()
	return val, true, nil
}

func (e *pebbleEngine) newBatch() batch { return &pebbleBatch{e: e, b: e.db.NewBatch()} }

// pebbleBatch is a pebble batch with a key buffer.
type pebbleBatch struct {
	e   *pebbleEngine
	b   *pebble.Batch
	key []byte
}

// keyOf builds a record's key in the batch's buffer (pebble copies it).
func (b *pebbleBatch) keyOf(sp space, client string, key []byte) []byte {
	b.key = append(b.key[:0], byte(sp))
	if isClientSpace(sp) {
		b.key = append(b.key, client...)
		b.key = append(b.key, 0)
	}
	b.key = append(b.key, key...)
	return b.key
}

func (b *pebbleBatch) set(sp space, client string, key, val []byte) {
	_ = b.b.Set(b.keyOf(sp, client, key), val, nil) // a batch Set fails only once committed
}

func (b *pebbleBatch) del(sp space, client string, key []byte) {
	_ = b.b.Delete(b.keyOf(sp, client, key), nil)
}

func (b *pebbleBatch) purge(client string) {
	for _, sp := range clientSpaces {
		start := append([]byte{byte(sp)}, client...)
		start = append(start, 0)
		end := append([]byte{byte(sp)}, client...)
		end = append(end, 1)
		_ = b.b.DeleteRange(start, end, nil)
	}
}

func (b *pebbleBatch) count() int { return int(b.b.Count()) }

// commit writes the batch, unless the disk is nearly full: pebble cannot
// go on after a failed log write (it stops the process), so a write that
// might not fit is refused before it is tried, and the clients it carried
// are not acknowledged.
func (b *pebbleBatch) commit(_ context.Context, sync bool) error {
	if b.e.space != nil {
		if err := b.e.space.check(b.b.Len()); err != nil {
			return err
		}
	}
	opts := pebble.NoSync
	if sync {
		opts = pebble.Sync
	}
	return b.b.Commit(opts)
}

func (b *pebbleBatch) release() { _ = b.b.Close() }

// pebbleLogger sends pebble's log lines to slog.
type pebbleLogger struct{ log *slog.Logger }

func (l pebbleLogger) Infof(format string, args ...any) {
	l.log.Debug("pebble: " + fmt.Sprintf(format, args...))
}

func (l pebbleLogger) Errorf(format string, args ...any) {
	l.log.Error("pebble: " + fmt.Sprintf(format, args...))
}

// Fatalf is pebble's report of an error it cannot go on from (a failed
// background write to the data directory): it is logged and the process
// exits, as pebble's own logger would, rather than panicking.
func (l pebbleLogger) Fatalf(format string, args ...any) {
	l.log.Error("pebble: fatal: " + fmt.Sprintf(format, args...))
	os.Exit(70)
}
