package storage

import (
	"context"
	"errors"
)

// RedisConfig is how to reach a Redis server.
type RedisConfig struct {
	Address  string
	Username string
	Password string
	DB       int
	// Prefix starts every key the store writes (default "vanemq").
	Prefix string
}

func openRedis(ctx context.Context, cfg RedisConfig) (engine, error) {
	return nil, errors.New("storage: redis: not implemented yet")
}
