package js

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/mqtttest"
	"github.com/vanemq/vanemq/listeners/tcp"
)

// BenchmarkBrokerQoS0 is the broker's QoS 0 throughput with no hook, with
// aclScript's authorizePublish, and with it behind the decision cache: 4
// publishers each send b.N/4 messages, which aclScript allows, to one
// subscriber. Compare the msg/s of the rows of one run:
//
//	go test -run '^$' -bench BrokerQoS0 -benchtime 400000x -count 3 ./hooks/js/
func BenchmarkBrokerQoS0(b *testing.B) {
	for _, mode := range []string{"none", "js", "js-cached"} {
		b.Run(mode, func(b *testing.B) { benchBroker(b, mode) })
	}
}

func benchBroker(b *testing.B, mode string) {
	srv, err := core.New(core.Options{Logger: slog.New(slog.DiscardHandler), SysInterval: -1, AllowAnonymous: true})
	if err != nil {
		b.Fatal(err)
	}
	if mode != "none" {
		path := filepath.Join(b.TempDir(), "acl.js")
		if err := os.WriteFile(path, []byte(aclScript), 0o600); err != nil {
			b.Fatal(err)
		}
		no := false
		cfg := Config{Script: path, Watch: &no, Timeout: time.Second}
		if mode == "js-cached" {
			cfg.CacheTTL = time.Minute
		}
		h, err := New(cfg, srv)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = h.Close() }) // after the server's shutdown
		if err := srv.AddHook(h, 50); err != nil {
			b.Fatal(err)
		}
	}
	addr := mqtttest.Serve(b, srv, tcp.New("tcp", "127.0.0.1:0"))

	// aclScript allows alice's publishes under users/alice/.
	mqtttest.FanInQoS0(b, addr, "alice", "users/alice/temp", "users/#", 4)
}
