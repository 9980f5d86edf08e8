package mqttc_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/mqtttest"
	"github.com/vanemq/vanemq/core/packets"
	"github.com/vanemq/vanemq/hooks/bridge/mqttc"
)

// TestGoroutineLeaks runs connections that end every way (Close, server
// DISCONNECT, refusal, protocol error, keepalive timeout, connect timeout,
// lost connection with publishes pending), each subtest with its own
// broker or scripted server, and checks that the goroutine count returns
// to what it was before: every goroutine of every client has ended.
func TestGoroutineLeaks(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Run("scenarios", func(t *testing.T) {
		for _, ver := range versions() {
			t.Run(ver.name+"/roundtrip-close", func(t *testing.T) {
				addr := startBroker(t, anonymous())
				msgs, onMsg := inbox()
				c := connect(t, addr, mqttc.Options{ClientID: "l1", Version: ver.v, CleanStart: true, KeepAlive: time.Minute, OnMessage: onMsg})
				subscribe(t, c, "l/#", 2)
				for qos := range byte(3) {
					publish(t, c, mqttc.Message{Topic: "l/x", QoS: qos})
					next(t, msgs).ack(packets.Success)
				}
				closeWait(t, c)
			})
			t.Run(ver.name+"/takeover", func(t *testing.T) {
				addr := startBroker(t, anonymous())
				// Keep alive 1 s: see TestTakeover.
				opts := mqttc.Options{ClientID: "l2", Version: ver.v, CleanStart: true, KeepAlive: time.Second}
				first := connect(t, addr, opts)
				subscribe(t, first, "l2", 1)
				connect(t, addr, opts)
				waitDone(t, first)
			})
			t.Run(ver.name+"/refused", func(t *testing.T) {
				addr := startBroker(t, core.Options{})
				if _, err := dial(t, addr, mqttc.Options{ClientID: "l3", Version: ver.v}); err == nil {
					t.Fatal("connected without authentication")
				}
			})
			t.Run(ver.name+"/pending-at-shutdown", func(t *testing.T) {
				gate := newGate()
				addr := startBroker(t, anonymous(), gate)
				t.Cleanup(gate.release)
				c := connect(t, addr, mqttc.Options{ClientID: "l4", Version: ver.v, CleanStart: true, KeepAlive: time.Minute})
				results, done := doneChan()
				for _, qos := range []byte{1, 2} {
					if err := c.Publish(context.Background(), mqttc.Message{Topic: "gate/l", QoS: qos}, done); err != nil {
						t.Fatal(err)
					}
				}
				gate.waitEntered(t)
				closeWait(t, c)
				for range 2 {
					if r := nextResult(t, results); r.err == nil {
						t.Error("pending done without error")
					}
				}
			})
			t.Run(ver.name+"/protocol-error", func(t *testing.T) {
				_, onMsg := inbox()
				c, fs := startFake(t, mqttc.Options{ClientID: "l5", Version: ver.v, KeepAlive: time.Minute, OnMessage: onMsg}, connack())
				fs.write(t, &packets.Packet{Type: packets.Connack})
				fs.expectClosed(t, packets.Disconnect)
				waitDone(t, c)
			})
			t.Run(ver.name+"/keepalive-timeout", func(t *testing.T) {
				c, fs := startFake(t, mqttc.Options{ClientID: "l6", Version: ver.v, KeepAlive: time.Second}, connack())
				fs.expectClosed(t, packets.Pingreq)
				waitDone(t, c)
			})
		}
	})
	mqtttest.CheckGoroutines(t, "after every scenario", before)
}
