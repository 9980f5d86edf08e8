package cluster

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/mqtttest"
	"github.com/vanemq/vanemq/listeners/tcp"
)

// failingStore is a durable core.Store that refuses its first fail
// commits holding a queued delivery, as a full disk would, and records
// the topics of the queued deliveries it stored.
type failingStore struct {
	mu     sync.Mutex
	fail   int
	stored map[string]int // topic -> OpQueueAdd ops stored
}

func (*failingStore) ID() string    { return "test.failing-store" }
func (*failingStore) Durable() bool { return true }
func (*failingStore) LoadRetained(context.Context) ([]core.StoredMessage, error) {
	return nil, nil
}
func (*failingStore) LoadSessions(context.Context) ([]core.StoredSession, error) {
	return nil, nil
}

func (s *failingStore) Apply(ops []core.StoreOp, done func(error)) {
	var topics []string
	for i := range ops {
		if ops[i].Kind == core.OpQueueAdd {
			topics = append(topics, ops[i].Message().Topic)
		}
	}
	s.mu.Lock()
	var err error
	if len(topics) > 0 && s.fail > 0 {
		s.fail--
		err = errors.New("no space left on device")
	} else {
		for _, t := range topics {
			s.stored[t]++
		}
	}
	s.mu.Unlock()
	if done != nil {
		go done(err)
	}
}

// TestE2EInboxStoreFailure: a message from another node that this node
// fails to store is not acknowledged to JetStream, and when JetStream
// sends it again it is routed (and stored) again, not dropped as a copy
// already routed: otherwise a crash would lose it.
func TestE2EInboxStoreFailure(t *testing.T) {
	nats := startNATS(t, 1)
	n1 := startNode(t, "n1", nats.URL(0))
	fs := &failingStore{stored: make(map[string]int)}
	log := testLogger(t).With("test_node", "n2")
	srv, err := core.New(core.Options{AllowAnonymous: true, SysInterval: -1, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.AddHook(fs, 0); err != nil {
		t.Fatal(err)
	}
	h, err := New(ID, Config{URLs: []string{nats.URL(0)}, Node: "n2"}, srv, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.AddHook(h, 0); err != nil {
		t.Fatal(err)
	}
	n2 := &testNode{name: "n2", srv: srv, hook: h, addr: mqtttest.Serve(t, srv, tcp.New("tcp", "127.0.0.1:0"))}
	mqtttest.Eventually(t, waitTimeout, "n2 ready", func() bool { return h.Health() == nil })
	s, _ := durableSub(t, n2, "stored", true)
	s.subscribe(t, 1, "sf/#")
	waitRoutes(t, n1, "sf/x", 1)
	fs.mu.Lock()
	fs.fail = 1
	fs.mu.Unlock()
	pub := connectV5(t, n1, "pub")
	pub.publish(t, "sf/x", 1, "0")
	mqtttest.Eventually(t, waitTimeout, "the message stored after its store failed once", func() bool {
		fs.mu.Lock()
		defer fs.mu.Unlock()
		return fs.stored["sf/x"] > 0
	})
}
