package core_test

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/packets"
)

// When the broker ends a connection with a reason, a client that keeps
// writing still gets to read the reason: the broker writes the DISCONNECT,
// shuts its write side down and drains what the client sends for a while
// before it closes (a lingering close), instead of closing with the
// client's bytes unread, which sends a TCP reset: the client's next write
// then fails, and a client that gives up on a failed write never reads the
// DISCONNECT that was waiting [v5 §4.13.1: the Server "MAY send a
// DISCONNECT packet containing the Reason Code before closing"; 3.14.2.1].
//
// The client here is a device's event loop: it publishes QoS 2 messages it
// never releases, one every 2 ms, and reads what came in only every 100
// ms; the third unreleased flow exceeds the Receive Maximum of 2
// ([MQTT-3.3.4-9], 0x93).
func TestReasonReachesAClientStillWriting(t *testing.T) {
	b := startBroker(t, core.Options{ReceiveMaximum: 2})
	for round := range 3 {
		conn, err := net.DialTimeout("tcp", b.Addr, biIO)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		if _, err := conn.Write(biConnect(packets.Version5, "writer", 0)); err != nil {
			t.Fatal(err)
		}
		r := packets.NewReader(bufio.NewReader(conn), 0)
		r.SetVersion(packets.Version5)
		tick := time.NewTicker(2 * time.Millisecond)
		readAt := time.Now().Add(100 * time.Millisecond)
		var disconnect *packets.Packet
		for id := uint16(1); disconnect == nil && id < 2000; id++ {
			<-tick.C
			_ = conn.SetWriteDeadline(time.Now().Add(biIO))
			if _, err := conn.Write(biPublish(packets.Version5, 2, "events", id, strings.Repeat("e", 200))); err != nil {
				tick.Stop()
				t.Fatalf("round %d: publish %d failed (%v) before the client could read why the broker closed", round, id, err)
			}
			if time.Now().Before(readAt) {
				continue
			}
			readAt = time.Now().Add(100 * time.Millisecond)
			for disconnect == nil {
				_ = conn.SetReadDeadline(time.Now().Add(time.Millisecond))
				var p packets.Packet
				if err := r.ReadPacket(&p); err != nil {
					break // nothing more yet
				}
				if p.Type == packets.Disconnect {
					disconnect = &p
				}
			}
		}
		tick.Stop()
		if disconnect == nil {
			t.Fatalf("round %d: no DISCONNECT", round)
		}
		if disconnect.ReasonCode != packets.ReceiveMaximumExceeded {
			t.Fatalf("round %d: DISCONNECT 0x%02X, want 0x93", round, byte(disconnect.ReasonCode))
		}
		// After the DISCONNECT, the broker's FIN: the client reads the end.
		_ = conn.SetReadDeadline(time.Now().Add(biIO))
		var p packets.Packet
		if err := r.ReadPacket(&p); err == nil {
			t.Fatalf("round %d: %s after the DISCONNECT", round, biDescribe(&p))
		} else if !biIsClosed(err) {
			t.Fatalf("round %d: after the DISCONNECT: %v, want the end of the stream", round, err)
		}
		_ = conn.Close()
	}
}
