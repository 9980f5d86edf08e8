package core

import (
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/vanemq/vanemq/core/packets"
)

// BenchmarkRouteRetained routes one retained PUBLISH per op (64-byte
// payload, no subscribers) over 1000 topics, each replacing the topic's
// previous message: the cost the retained store and its bounds add to a
// retained publish.
func BenchmarkRouteRetained(b *testing.B) {
	srv, err := New(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), SysInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	pkts := make([]packets.Packet, 1000)
	for i := range pkts {
		pkts[i] = packets.Packet{Type: packets.Publish, ProtocolVersion: packets.Version5, Retain: true,
			Topic: fmt.Sprintf("bench/%d/state", i), Payload: make([]byte, 64)}
	}
	now := time.Now()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		srv.route(newMessage(&pkts[i%len(pkts)], "pub", now), nil)
		i++
	}
}
