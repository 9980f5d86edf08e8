package main

import (
	"bufio"
	"bytes"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/bytebufferpool"

	"github.com/vanemq/vanemq/core/packets"
)

// fakeBroker accepts connections on 127.0.0.1:0 and answers each with
// script, given the connection's CONNECT; it stops when the test ends.
func fakeBroker(t *testing.T, script func(c *fakeConn, connect *packets.Packet)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, nc)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := &fakeConn{t: t, nc: nc, rd: packets.NewReader(bufio.NewReader(nc), 0)}
				var connect packets.Packet
				if c.rd.ReadPacket(&connect) != nil {
					return
				}
				c.rd.SetVersion(connect.ProtocolVersion)
				c.version = connect.ProtocolVersion
				script(c, &connect)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// fakeConn is one connection to the fake broker.
type fakeConn struct {
	t       *testing.T
	nc      net.Conn
	rd      *packets.Reader
	version byte
}

// send encodes p in the connection's version and writes it.
func (c *fakeConn) send(p packets.Packet) {
	p.ProtocolVersion = c.version
	buf := bytebufferpool.Get()
	defer bytebufferpool.Put(buf)
	if err := p.Encode(buf); err != nil {
		c.t.Errorf("fake broker: encode %s: %v", p.Type, err)
		return
	}
	_, _ = c.nc.Write(buf.B)
}

// next reads the next packet, or returns false when the connection ends.
func (c *fakeConn) next(p *packets.Packet) bool { return c.rd.ReadPacket(p) == nil }

// TestBenchFailures checks that a refused connection, a refused
// subscription, a dropped connection and a DISCONNECT from the broker fail
// the run with exit status 1 and a message naming the connection and cause.
func TestBenchFailures(t *testing.T) {
	accept := func(c *fakeConn) { c.send(packets.Packet{Type: packets.Connack}) }
	cases := []struct {
		name   string
		args   []string
		script func(c *fakeConn, connect *packets.Packet)
		want   []string
	}{{
		name: "connack refused v3",
		args: []string{"-scenario", "conns", "-conns", "3"},
		script: func(c *fakeConn, _ *packets.Packet) {
			c.send(packets.Packet{Type: packets.Connack, ReasonCode: packets.V3NotAuthorized})
		},
		want: []string{"connection ", "CONNACK refused the connection: not authorized (return code 5)"},
	}, {
		name: "connack refused v5",
		args: []string{"-scenario", "latency", "-mqtt", "5"},
		script: func(c *fakeConn, _ *packets.Packet) {
			p := packets.Packet{Type: packets.Connack, ReasonCode: packets.Banned}
			p.Properties.ReasonString = "go away"
			p.Properties.Set(packets.PropReasonString)
			c.send(p)
		},
		want: []string{"subscriber 0 (client vb", `banned (0x8A): "go away"`},
	}, {
		name: "suback refused",
		args: []string{"-scenario", "fanin", "-qos", "1"},
		script: func(c *fakeConn, _ *packets.Packet) {
			accept(c)
			var p packets.Packet
			if c.next(&p) && p.Type == packets.Subscribe {
				c.send(packets.Packet{Type: packets.Suback, PacketID: p.PacketID, ReasonCodes: []packets.ReasonCode{packets.V3SubackFailure}})
			}
		},
		want: []string{"subscriber 0", `subscription to "bench/fanin/+" refused`},
	}, {
		name: "qos downgraded",
		args: []string{"-scenario", "fanout", "-subscribers", "2", "-qos", "2"},
		script: func(c *fakeConn, _ *packets.Packet) {
			accept(c)
			var p packets.Packet
			if c.next(&p) && p.Type == packets.Subscribe {
				c.send(packets.Packet{Type: packets.Suback, PacketID: p.PacketID, ReasonCodes: []packets.ReasonCode{packets.GrantedQoS1}})
			}
		},
		want: []string{`subscription to "bench/fanout" granted QoS 1, asked for 2`},
	}, {
		name: "dropped",
		args: []string{"-scenario", "conns", "-conns", "2", "-hold", "1m"},
		script: func(c *fakeConn, _ *packets.Packet) {
			accept(c)
			c.nc.Close()
		},
		want: []string{"connection ", "the broker closed the connection"},
	}, {
		name: "disconnect",
		args: []string{"-scenario", "conns", "-conns", "1", "-hold", "1m", "-mqtt", "5"},
		script: func(c *fakeConn, _ *packets.Packet) {
			accept(c)
			c.send(packets.Packet{Type: packets.Disconnect, ReasonCode: packets.ServerShuttingDown})
		},
		want: []string{"connection 0", "the broker sent DISCONNECT: server shutting down (0x8B)"},
	}, {
		name: "broker pid gone",
		args: []string{"-scenario", "conns", "-conns", "1", "-broker-pid", "2147483647"},
		script: func(c *fakeConn, _ *packets.Packet) {
			accept(c)
		},
		want: []string{"-broker-pid 2147483647", "/proc/2147483647/stat"},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			addr := fakeBroker(t, tc.script)
			var stdout, stderr bytes.Buffer
			start := time.Now()
			code := runCLI(t.Context(), append(tc.args, "-addr", addr, "-duration", "1m"), &stdout, &stderr)
			if code != 1 {
				t.Fatalf("exit status %d, want 1; stderr:\n%s", code, stderr.String())
			}
			if d := time.Since(start); d > 30*time.Second {
				t.Errorf("the run took %v to fail", d)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr %q does not mention %q", stderr.String(), w)
				}
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q, want nothing", stdout.String())
			}
		})
	}
}
