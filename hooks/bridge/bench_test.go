package bridge

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/vanemq/vanemq/core"
)

// BenchmarkBridgeQoS1 is the rate of QoS 1 messages through a bridge,
// from a publisher on broker A to an inline subscriber on broker B,
// against the same publisher publishing straight to B, in the same run:
// up to 64 publishes in flight, 64-byte payloads, timed until B has them
// all.
//
//	go test -run '^$' -bench BridgeQoS1 -benchtime 20000x -count 3 ./hooks/bridge/
func BenchmarkBridgeQoS1(b *testing.B) {
	for _, via := range []string{"direct", "bridge"} {
		b.Run(via, func(b *testing.B) { benchBridge(b, via == "bridge") })
	}
}

func benchBridge(b *testing.B, bridged bool) {
	var got atomic.Int64
	remote := startBroker(b, "", core.Options{}, func(srv *core.Server, _ *slog.Logger) []core.Hook {
		if _, err := srv.Subscribe("bench/#", func(core.InlineMessage) { got.Add(1) }); err != nil {
			b.Fatal(err)
		}
		return nil
	})
	target := remote
	if bridged {
		target = startBroker(b, "", core.Options{}, withBridge(b, Config{Bridges: []BridgeConfig{{
			Name: "bench", Address: "tcp://" + remote.addr, BackoffMin: 10 * time.Millisecond,
			Topics: []TopicRule{{Direction: DirOut, Filter: "bench/#", QoS: 1}},
		}}}))
		eventually(b, "bridge connected", func() bool { return bridgeOf(target.Server, "bench").Connected })
	}
	pub := dial(b, target.addr, "pub")
	payload := make([]byte, 64)
	sem := make(chan struct{}, 64)
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			if _, err := pub.Publish(ctx, &paho.Publish{Topic: "bench/x", QoS: 1, Payload: payload}); err != nil {
				b.Error(err)
			}
		}()
	}
	eventually(b, "all messages at B", func() bool { return got.Load() >= int64(b.N) })
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msg/s")
}
