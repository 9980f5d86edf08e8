package main

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/vanemq/vanemq/core/packets"
)

// TestOpenConnInterrupted checks that ending the context interrupts a
// handshake waiting for the broker.
func TestOpenConnInterrupted(t *testing.T) {
	connected := make(chan struct{})
	release := make(chan struct{})
	defer close(release)
	addr := fakeBroker(t, func(c *fakeConn, _ *packets.Packet) {
		close(connected)
		<-release // never answer CONNECT
	})
	cfg := benchConfig{Scenario: scenarioConns, Addr: addr, Transport: transportTCP, MQTT: 4}
	d, err := newDialer(&cfg, cfg.Addr)
	if err != nil {
		t.Fatal(err)
	}
	env := &benchEnv{cfg: &cfg, clock: newMonoClock(), dialer: d}
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-connected
		cancel()
	}()
	start := time.Now()
	c, err := openConn(ctx, env, connSpec{role: "connection", clientID: "x", readBuf: 64})
	if err == nil {
		c.close()
		t.Fatal("openConn succeeded without a CONNACK")
	}
	if d := time.Since(start); d >= handshakeTimeout {
		t.Errorf("openConn took %v: the cancel did not interrupt it", d)
	}
}

// TestPingIfIdle checks that only a connection idle for half its keep
// alive sends PINGREQ.
func TestPingIfIdle(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	c := &mqttConn{name: "test", nc: client, version: packets.Version311, clock: newMonoClock(), keepAlive: 10}
	c.lastWrite.Store(0)
	// Nothing reads the pipe yet: an early PINGREQ fails rather than hangs.
	_ = client.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := c.pingIfIdle(4 * int64(time.Second)); err != nil {
		t.Fatalf("4 s idle: %v", err)
	}
	got := make(chan []byte, 1)
	go func() {
		b := make([]byte, 2)
		_, _ = io.ReadFull(server, b)
		got <- b
	}()
	if err := c.pingIfIdle(5 * int64(time.Second)); err != nil {
		t.Fatalf("5 s idle: %v", err)
	}
	if b := <-got; b[0] != 0xC0 || b[1] != 0 {
		t.Errorf("sent % x, want PINGREQ c0 00", b)
	}
	c.keepAlive = 0
	if err := c.pingIfIdle(1 << 62); err != nil {
		t.Errorf("keep alive 0: %v", err)
	}
}
