package core_test

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/vanemq/vanemq/core"
)

// A subscriber that stops reading never blocks publishers or the other
// subscribers: its socket fills, its bounded queue overflows and the
// overflow is dropped and counted, while a healthy subscriber of the same
// topic gets every message (publishers are paced to it, not to the
// stalled one). Issue: "a slow subscriber never blocks a publisher or other
// subscribers; what is dropped is counted".
func TestE2ESlowSubscriberDoesNotBlock(t *testing.T) {
	tb := startBroker(t, core.Options{OutboundQueue: 32, MaxQueuedMessages: 32})

	// The stalled subscriber: subscribes, then never reads again.
	stalled, err := net.Dial("tcp", tb.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stalled.Close() })
	if tcp, ok := stalled.(*net.TCPConn); ok {
		_ = tcp.SetReadBuffer(4096) // fill sooner
	}
	con := []byte{0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 60, 0, 1, 's'}
	sub := []byte{0x82, 8, 0, 1, 0, 3, 's', '/', 't', 0}
	if _, err := stalled.Write(append(con, sub...)); err != nil {
		t.Fatal(err)
	}
	ack := make([]byte, 4+5) // CONNACK, SUBACK
	_ = stalled.SetReadDeadline(time.Now().Add(waitTimeout))
	if _, err := readFull(stalled, ack); err != nil || ack[0] != 0x20 || ack[4] != 0x90 {
		t.Fatalf("stalled subscriber: CONNACK/SUBACK % x, %v", ack, err)
	}

	healthy := connectV3(t, tb.Addr, "healthy", nil)
	healthy.sub("s/t", 0)
	pub := connectV3(t, tb.Addr, "pub", nil)

	const n = 300
	payload := bytes.Repeat([]byte("x"), 32<<10) // 300 × 32 KiB: far more than a socket holds
	start := time.Now()
	for range n {
		pub.pub("s/t", 0, false, string(payload))
	}
	healthy.sub("s/marker", 0)
	pub.pub("s/marker", 0, false, "end")
	got := healthy.until("s/marker")
	if len(got) != n {
		t.Fatalf("healthy subscriber got %d of %d messages while another subscriber stalled", len(got), n)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("publishing took %v: the stalled subscriber slowed everyone", d)
	}
	if dropped := tb.Stats().Dropped; dropped == 0 {
		t.Errorf("no message counted as dropped, though one subscriber read none of %d × %d bytes", n, len(payload))
	}
}

func readFull(c net.Conn, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		k, err := c.Read(b[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
