package storage

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/vanemq/vanemq/hooks/cluster/natsdev"
)

// natsStartTimeout bounds starting and restarting embedded NATS servers.
const natsStartTimeout = 45 * time.Second

// startNATS starts n embedded nats-servers with JetStream (a cluster
// when n > 1), closed when the test ends.
func startNATS(t testing.TB, n int) *natsdev.Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), natsStartTimeout)
	defer cancel()
	c, err := natsdev.Start(ctx, natsdev.Options{Nodes: n, Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("natsdev.Start(%d nodes): %v", n, err)
	}
	t.Cleanup(c.Close)
	return c
}

// natsOpener gives each test its own prefix (so its own bucket) on the
// servers at urls; the same test gets the same prefix again.
func natsOpener(urls []string) opener {
	var (
		mu       sync.Mutex
		prefixes = map[*testing.T]string{}
	)
	return func(t *testing.T) Config {
		mu.Lock()
		defer mu.Unlock()
		p, ok := prefixes[t]
		if !ok {
			p = fmt.Sprintf("contract%d", len(prefixes))
			prefixes[t] = p
		}
		return Config{Type: TypeNATS, NATS: NATSConfig{URLs: urls, Prefix: p}}
	}
}

// TestNATSContract runs the engine contract against one embedded NATS
// server, each subtest in its own bucket.
func TestNATSContract(t *testing.T) {
	c := startNATS(t, 1)
	runContract(t, natsOpener(c.URLs()))
}
