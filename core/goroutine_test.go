package core_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/mqtttest"
	"github.com/vanemq/vanemq/core/packets"
)

// TestGoroutineLeaks runs 50 mixed connections against one broker (good
// sessions of every QoS, bad input, abrupt closes, takeovers, wills,
// connect timeouts) and checks that every goroutine they caused ends: the
// count returns to the idle broker's baseline, and after Shutdown to the
// count before the broker started.
func TestGoroutineLeaks(t *testing.T) {
	before := runtime.NumGoroutine()
	b := startBroker(t, core.Options{ConnectTimeout: 300 * time.Millisecond, SessionExpiryMax: 60})
	idle := runtime.NumGoroutine()

	scenarios := []struct {
		name string
		run  func(t *testing.T, addr string, i int)
	}{
		{"v5-qos2-roundtrip", glQoS2RoundTrip},
		{"v311-qos1-abrupt-close", glQoS1AbruptClose},
		{"garbage", glGarbage},
		{"truncated-publish-abrupt-close", glTruncated},
		{"takeover", glTakeover},
		{"no-connect-timeout", glNoConnect},
		{"persistent-session-with-will", glPersistentWill},
		{"protocol-error", glProtocolError},
	}
	t.Run("connections", func(t *testing.T) {
		for i := range 50 {
			sc := scenarios[i%len(scenarios)]
			t.Run(fmt.Sprintf("%02d-%s", i, sc.name), func(t *testing.T) {
				t.Parallel()
				sc.run(t, b.Addr, i)
			})
		}
	})

	mqtttest.CheckGoroutines(t, "after the 50 connections ended (idle broker baseline)", idle)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	mqtttest.CheckGoroutines(t, "after Shutdown (baseline before the broker started)", before)
}

// glQoS2RoundTrip: a v5 client subscribes at QoS 2, publishes QoS 2 to
// itself, completes both QoS 2 flows, and disconnects normally.
func glQoS2RoundTrip(t *testing.T, addr string, i int) {
	topic := fmt.Sprintf("gl/%d", i)
	c := biConnectOK(t, addr, packets.Version5, fmt.Sprintf("gl-qos2-%d", i))
	c.mustWrite(biSubscribe(packets.Version5, 1, topic, 2))
	c.expect(biIO, packets.Suback)
	c.mustWrite(biPublish(packets.Version5, 2, topic, 10, "qos2"))
	outDone, inDone := false, false
	deadline := time.Now().Add(biIO)
	for !outDone || !inDone {
		p, err := c.read(time.Until(deadline))
		if err != nil {
			t.Fatalf("QoS 2 flows (outbound done %v, inbound done %v): %s", outDone, inDone, biErrString(err, biIO))
		}
		switch p.Type {
		case packets.Pubrec:
			c.mustWrite(biAck(0x62, p.PacketID))
		case packets.Pubcomp:
			outDone = true
		case packets.Publish:
			c.mustWrite(biAck(0x50, p.PacketID))
		case packets.Pubrel:
			c.mustWrite(biAck(0x70, p.PacketID))
			inDone = true
		default:
			t.Fatalf("unexpected %s", biDescribe(p))
		}
	}
	c.disconnect()
}

// glQoS1AbruptClose: a 3.1.1 client with a persistent session subscribes,
// gets a QoS 1 message it never acknowledges, and drops the connection.
func glQoS1AbruptClose(t *testing.T, addr string, i int) {
	topic := fmt.Sprintf("gl/abrupt/%d", i)
	c := biDial(t, addr, "abrupt")
	c.mustWrite(biConnectRaw("MQTT", 4, 0x00, 0, nil, biStr(fmt.Sprintf("gl-abrupt-%d", i))))
	c.setVersion(packets.Version311)
	if p := c.expect(biIO, packets.Connack); p.ReasonCode != 0 {
		t.Fatalf("CONNECT refused: %s", biDescribe(p))
	}
	c.mustWrite(biSubscribe(packets.Version311, 1, topic, 1))
	c.expect(biIO, packets.Suback)
	c.mustWrite(biPublish(packets.Version311, 1, topic, 5, "unacked"))
	for got := 0; got < 2; got++ {
		c.read(biIO) // PUBACK and the delivery, in either order
	}
	_ = c.conn.Close()
}

// glGarbage: bytes that are not MQTT.
func glGarbage(t *testing.T, addr string, _ int) {
	c := biDial(t, addr, "garbage")
	_ = c.write([]byte("\x00\x01\x02 definitely not MQTT"))
	c.drainUntilClosed(biIO)
}

// glTruncated: half a PUBLISH, then the connection is dropped.
func glTruncated(t *testing.T, addr string, i int) {
	c := biConnectOK(t, addr, packets.Version5, fmt.Sprintf("gl-trunc-%d", i))
	c.mustWrite(biPublish(packets.Version5, 1, "gl/trunc", 1, "cut short")[:9])
	_ = c.conn.Close()
}

// glTakeover: a second connection with the same client identifier takes
// the session over; the first is closed by the broker.
func glTakeover(t *testing.T, addr string, i int) {
	id := fmt.Sprintf("gl-takeover-%d", i)
	first := biConnectOK(t, addr, packets.Version5, id, biPropU32(0x11, 30))
	first.mustWrite(biSubscribe(packets.Version5, 1, "gl/takeover", 1))
	first.expect(biIO, packets.Suback)
	second := biDial(t, addr, "takeover")
	second.mustWrite(biConnectRaw("MQTT", 5, 0x00, 0, biProps(biPropU32(0x11, 30)), biStr(id)))
	second.setVersion(packets.Version5)
	if p := second.expect(biIO, packets.Connack); p.ReasonCode != 0 {
		t.Fatalf("takeover CONNECT refused: %s", biDescribe(p))
	}
	first.drainUntilClosed(biIO)
	second.mustWrite(biDisconnect(packets.Version5, 0, biPropU32(0x11, 0)))
	second.expectClosed(biIO)
}

// glNoConnect: a connection that never sends CONNECT (closed by the
// connect timeout).
func glNoConnect(t *testing.T, addr string, _ int) {
	c := biDial(t, addr, "silent")
	c.drainUntilClosed(biIO)
}

// glPersistentWill: a v5 client with a session that outlives the
// connection and a will, dropped without DISCONNECT.
func glPersistentWill(t *testing.T, addr string, i int) {
	c := biDial(t, addr, "will")
	c.mustWrite(biConnectRaw("MQTT", 5, 0x02|0x04|0x08, 0, biProps(biPropU32(0x11, 60)),
		biStr(fmt.Sprintf("gl-will-%d", i)), biProps(), biStr("gl/will"), biStr("gone")))
	c.setVersion(packets.Version5)
	if p := c.expect(biIO, packets.Connack); p.ReasonCode != 0 {
		t.Fatalf("CONNECT refused: %s", biDescribe(p))
	}
	_ = c.conn.Close()
}

// glProtocolError: a v5 client sends a second CONNECT and is disconnected.
func glProtocolError(t *testing.T, addr string, i int) {
	c := biConnectOK(t, addr, packets.Version5, fmt.Sprintf("gl-proto-%d", i))
	c.mustWrite(biConnect(packets.Version5, "again", 0))
	c.drainUntilClosed(biIO)
}
