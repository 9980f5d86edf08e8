package storage

import (
	"testing"

	"github.com/vanemq/vanemq/hooks/storage/redistest"
)

// startRedis starts a redis-server for the test (see redistest.Start) and
// returns its address and a function that kills it earlier.
func startRedis(t *testing.T, args ...string) (addr string, stop func()) {
	t.Helper()
	s := redistest.Start(t, args...)
	return s.Addr, s.Stop
}

// startRedisOn starts a redis-server on port.
func startRedisOn(t *testing.T, port int, args ...string) (addr string, stop func()) {
	t.Helper()
	s := redistest.StartOn(t, port, args...)
	return s.Addr, s.Stop
}

func freePort(t *testing.T) int { return redistest.FreePort(t) }
