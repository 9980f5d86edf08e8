package vanemqcmd

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/vanemq/vanemq/hooks/storage"
	"github.com/vanemq/vanemq/listeners/tlsfiles"
)

// The broker keeps its state in the store the storage section describes
// (storage_config.go). start opens it before the server starts and adds
// it as a hook: core.Server.Start restores the stored sessions and
// retained messages from it before any listener serves, and tells it of
// every change from then on. run closes it once the server has shut down,
// when everything handed to it has been written.

// resolvePath resolves a file path of the config against dir, the config
// file's directory.
func resolvePath(dir, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

// storeConfig returns the store's settings: the data directory and the
// NATS credentials file resolved against dir, the TLS files loaded. It is
// not for type memory, which keeps no store.
func (sc storageConfig) storeConfig(dir string, logger *slog.Logger) (storage.Config, error) {
	c := storage.Config{
		Type:           sc.Type,
		Durability:     sc.Durability,
		CommitInterval: sc.CommitInterval,
		CommitMaxOps:   sc.CommitMaxOps,
		Logger:         logger,
	}
	switch sc.Type {
	case storage.TypePebble:
		c.Path = resolvePath(dir, sc.Path)
		c.MinFreeBytes = sc.MinFreeSpace
	case storage.TypeRedis:
		r := sc.Redis
		c.Redis = storage.RedisConfig{
			Address:     r.Address,
			Username:    r.Username,
			Password:    r.Password,
			DB:          r.DB,
			Prefix:      r.Prefix,
			DialTimeout: r.DialTimeout,
		}
		tc, err := r.TLS.load(dir)
		if err != nil {
			return storage.Config{}, fmt.Errorf("storage: redis tls: %w", err)
		}
		c.Redis.TLS = tc
	case storage.TypeNATS:
		n := sc.NATS
		c.NATS = storage.NATSConfig{
			URLs:        n.URLs,
			Prefix:      n.Prefix,
			Username:    n.Username,
			Password:    n.Password,
			Token:       n.Token,
			Credentials: resolvePath(dir, n.Credentials),
			Replicas:    n.Replicas,
			Timeout:     n.Timeout,
		}
		tc, err := n.TLS.load(dir)
		if err != nil {
			return storage.Config{}, fmt.Errorf("storage: nats tls: %w", err)
		}
		c.NATS.TLS = tc
	}
	return c, nil
}

// load loads the TLS files of t, resolved against dir; a nil t is no
// TLS.
func (t *clientTLSConfig) load(dir string) (*tls.Config, error) {
	if t == nil {
		return nil, nil
	}
	return tlsfiles.LoadClient(tlsfiles.ClientFiles{
		CA:         resolvePath(dir, t.CA),
		Cert:       resolvePath(dir, t.Cert),
		Key:        resolvePath(dir, t.Key),
		ServerName: t.ServerName,
	})
}

// openStore opens the store of cfg's storage section and logs which it
// is; for type memory it returns nil and logs that state is not kept. The
// error names the data directory or the server.
func openStore(ctx context.Context, cfg *config, logger *slog.Logger) (*storage.Store, error) {
	sc := cfg.Storage
	if sc.Type == storage.TypeMemory {
		logger.Info("storage", "engine", sc.Type,
			"note", "sessions and retained messages are kept in memory only and lost when the broker stops")
		return nil, nil
	}
	c, err := sc.storeConfig(cfg.Dir, logger)
	if err != nil {
		return nil, err
	}
	st, err := storage.Open(ctx, c)
	if err != nil {
		return nil, err
	}
	logger.Info("storage", "engine", sc.Type, "where", st.Where(), "durability", sc.Durability)
	return st, nil
}

// closeStore closes st, if any, and reports a failure.
func closeStore(st *storage.Store, logger *slog.Logger) error {
	if st == nil {
		return nil
	}
	if err := st.Close(); err != nil {
		return err
	}
	logger.Info("storage closed", "where", st.Where())
	return nil
}
