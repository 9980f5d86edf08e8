package bridge

import (
	"context"
	"io"
	"log/slog"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/mqtttest"
	"github.com/vanemq/vanemq/hooks/storage"
	"github.com/vanemq/vanemq/listeners/admin"
)

// fastBackoff makes a bridge reconnect quickly in tests.
func fastBackoff(b BridgeConfig) BridgeConfig {
	b.BackoffMin, b.BackoffMax = 20*time.Millisecond, 200*time.Millisecond
	return b
}

// Two brokers, A bridged to B: messages under sensors/ go out with the
// prefix site1/, messages under commands/site1/ come in as cmd/; the
// QoS is capped by the rule; retained messages and MQTT 5 properties
// cross; topics no rule names stay; the bridge's state is on B, retained.
func TestBridgeForwardsBothWays(t *testing.T) {
	b := startBroker(t, "", core.Options{}, nil)
	a := startBroker(t, "", core.Options{}, withBridge(t, Config{Bridges: []BridgeConfig{fastBackoff(BridgeConfig{
		Name: "cloud", Address: "tcp://" + b.addr, ClientID: "edge-1",
		Topics: []TopicRule{
			{Direction: DirOut, Filter: "sensors/#", RemotePrefix: "site1/", QoS: 1},
			{Direction: DirIn, Filter: "#", RemotePrefix: "commands/site1/", LocalPrefix: "cmd/", QoS: 1},
		},
	})}}))
	eventually(t, "bridge connected", func() bool { return bridgeOf(a.Server, "cloud").Connected })

	subA, subB := dial(t, a.addr, "subA"), dial(t, b.addr, "subB")
	subA.sub("cmd/#")
	subB.sub("site1/#")
	subB.sub("other/#")
	pubA, pubB := dial(t, a.addr, "pubA"), dial(t, b.addr, "pubB")

	pubA.pub(&paho.Publish{Topic: "other/x", QoS: 1, Payload: []byte("stays here")})
	pubA.pub(&paho.Publish{Topic: "sensors/t1", QoS: 2, Payload: []byte("21.5"), Properties: &paho.PublishProperties{
		ContentType: "text/plain", ResponseTopic: "replies/1", CorrelationData: []byte{1, 2},
		User: paho.UserProperties{{Key: "unit", Value: "C"}}}})
	pubA.pub(&paho.Publish{Topic: "sensors/r", QoS: 1, Retain: true, Payload: []byte("kept")})
	got := subB.until("site1/sensors/r")
	if want := []string{"site1/sensors/t1=21.5", "site1/sensors/r=kept"}; !slices.Equal(topicsOf(got), want) {
		t.Fatalf("B received %q, want %q (other/x has no rule)", topicsOf(got), want)
	}
	m := got[0]
	if m.QoS != 1 {
		t.Errorf("QoS %d at B, want 1: the rule caps QoS 2", m.QoS)
	}
	if p := m.Properties; p == nil || p.ContentType != "text/plain" || p.ResponseTopic != "replies/1" ||
		string(p.CorrelationData) != "\x01\x02" || p.User.Get("unit") != "C" {
		t.Errorf("properties at B: %+v, want those published at A", m.Properties)
	}
	// A client subscribing at B later gets the retained message [MQTT-3.3.1-6].
	late := dial(t, b.addr, "late")
	late.sub("site1/sensors/r")
	if r := late.next(); !r.Retain || string(r.Payload) != "kept" {
		t.Errorf("late subscriber at B: retain %v payload %q, want the retained message", r.Retain, r.Payload)
	}

	pubB.pub(&paho.Publish{Topic: "commands/site1/reboot", QoS: 1, Payload: []byte("now")})
	if in := subA.next(); in.Topic != "cmd/reboot" || string(in.Payload) != "now" {
		t.Fatalf("A received %s=%s, want cmd/reboot=now", in.Topic, in.Payload)
	}

	state := dial(t, b.addr, "state")
	state.sub("bridges/edge-1/state")
	if s := state.next(); string(s.Payload) != "online" || !s.Retain {
		t.Errorf("bridge state on B: %q retain %v, want online, retained", s.Payload, s.Retain)
	}
	st := bridgeOf(a.Server, "cloud")
	if st.Sent < 2 || st.Received != 1 || st.Dropped != 0 {
		t.Errorf("status %+v: want 2+ sent, 1 received, none dropped", st)
	}
}

// A two-way bridge on overlapping topics does not loop: what came in is
// not sent back out (no-local on the local session), and what went out is
// not sent back in (no-local on the remote subscription, MQTT 5).
// Over MQTT 3.1.1, which has no no-local, the bridge recognises its own
// messages coming back.
func TestBridgeTwoWayNoLoop(t *testing.T) {
	for _, proto := range []string{"5", "3.1.1"} {
		t.Run("protocol "+proto, func(t *testing.T) {
			b := startBroker(t, "", core.Options{}, nil)
			a := startBroker(t, "", core.Options{}, withBridge(t, Config{Bridges: []BridgeConfig{fastBackoff(BridgeConfig{
				Name: "peer", Address: "tcp://" + b.addr, Protocol: proto,
				Topics: []TopicRule{{Direction: DirBoth, Filter: "data/#", QoS: 1}},
			})}}))
			eventually(t, "bridge connected", func() bool { return bridgeOf(a.Server, "peer").Connected })
			noLoop(t, a, b)
		})
	}
}

// QoS 2 crosses as QoS 2 both ways: each hop is its own
// exactly-once exchange (MQTT 5 §4.3.3).
func TestBridgeQoS2(t *testing.T) {
	b := startBroker(t, "", core.Options{}, nil)
	a := startBroker(t, "", core.Options{}, withBridge(t, Config{Bridges: []BridgeConfig{fastBackoff(BridgeConfig{
		Name: "peer", Address: "tcp://" + b.addr,
		Topics: []TopicRule{{Direction: DirOut, Filter: "up/#", QoS: 2}, {Direction: DirIn, Filter: "down/#", QoS: 2}},
	})}}))
	eventually(t, "bridge connected", func() bool { return bridgeOf(a.Server, "peer").Connected })
	subA, subB := dial(t, a.addr, "subA"), dial(t, b.addr, "subB")
	subA.sub("down/#")
	subB.sub("up/#")
	dial(t, a.addr, "pubA").pub(&paho.Publish{Topic: "up/1", QoS: 2, Payload: []byte("x")})
	if m := subB.next(); m.Topic != "up/1" || m.QoS != 2 {
		t.Fatalf("B got %s at QoS %d, want up/1 at 2", m.Topic, m.QoS)
	}
	dial(t, b.addr, "pubB").pub(&paho.Publish{Topic: "down/1", QoS: 2, Payload: []byte("y")})
	if m := subA.next(); m.Topic != "down/1" || m.QoS != 2 {
		t.Fatalf("A got %s at QoS %d, want down/1 at 2", m.Topic, m.QoS)
	}
}

// noLoop checks a two-way bridge between a and b on data/#.
func noLoop(t *testing.T, a, b *broker) {
	t.Helper()
	subA, subB := dial(t, a.addr, "loop-subA"), dial(t, b.addr, "loop-subB")
	subA.sub("data/#")
	subB.sub("data/#")
	pubA, pubB := dial(t, a.addr, "loop-pubA"), dial(t, b.addr, "loop-pubB")

	pubA.pub(&paho.Publish{Topic: "data/a", QoS: 1, Payload: []byte("1")})
	if got := subB.until("data/a"); len(got) != 1 {
		t.Fatalf("B received %q", topicsOf(got))
	}
	// An echo of data/a from B would reach A before data/b, which B sends
	// after it.
	pubB.pub(&paho.Publish{Topic: "data/b", QoS: 1, Payload: []byte("2")})
	if got := subA.until("data/b"); !slices.Equal(topicsOf(got), []string{"data/a=1", "data/b=2"}) {
		t.Fatalf("A received %q, want data/a once then data/b", topicsOf(got))
	}
	// And an echo of data/b from A would reach B before data/c.
	pubA.pub(&paho.Publish{Topic: "data/c", QoS: 1, Payload: []byte("3")})
	if got := subB.until("data/c"); !slices.Equal(topicsOf(got), []string{"data/b=2", "data/c=3"}) {
		t.Fatalf("B received %q, want data/b once then data/c", topicsOf(got))
	}
	if got := subA.until("data/c"); !slices.Equal(topicsOf(got), []string{"data/c=3"}) {
		t.Fatalf("A received %q, want data/c only", topicsOf(got))
	}
}

// collector gathers what an inline subscription of a broker receives,
// from before it starts: nothing the bridge sends can come too early.
type collector struct {
	mu   sync.Mutex
	msgs []core.InlineMessage
}

func (c *collector) add(m core.InlineMessage) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = append(c.msgs, m)
}

// distinct counts the different payloads received.
func (c *collector) distinct() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := map[string]bool{}
	for _, m := range c.msgs {
		seen[string(m.Payload)] = true
	}
	return len(seen)
}

// payloads returns the payloads received, in order.
func (c *collector) payloads() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, len(c.msgs))
	for i, m := range c.msgs {
		out[i] = string(m.Payload)
	}
	return out
}

// collecting is a setup that subscribes col to filter before the broker
// starts.
func collecting(t *testing.T, filter string, col *collector) func(*core.Server, *slog.Logger) []core.Hook {
	return func(srv *core.Server, _ *slog.Logger) []core.Hook {
		if _, err := srv.Subscribe(filter, col.add); err != nil {
			t.Fatal(err)
		}
		return nil
	}
}

// checkAll checks that payloads holds 0..n-1, each at least once
// (at-least-once: a message in flight when a connection broke may come
// twice), first seen in order.
func checkAll(t *testing.T, payloads []string, n int) {
	t.Helper()
	next := 0
	seen := map[string]bool{}
	for _, p := range payloads {
		if p == itoa(next) {
			next++
		}
		seen[p] = true
	}
	for i := range n {
		if !seen[itoa(i)] {
			t.Fatalf("message %d of %d lost (%d received)", i, n, len(payloads))
		}
	}
	if next != n {
		t.Errorf("messages out of order: the first occurrences are in sequence up to %d of %d", next, n)
	}
}

// QoS 1 messages published while the remote is down wait in the bridge's
// session and all go out, in order, when it is back.
func TestBridgeQueuesWhileRemoteDown(t *testing.T) {
	addrB := mqtttest.FreeAddr(t)
	b := startBroker(t, addrB, core.Options{}, nil)
	a := startBroker(t, "", core.Options{}, withBridge(t, Config{Bridges: []BridgeConfig{fastBackoff(BridgeConfig{
		Name: "cloud", Address: "tcp://" + addrB,
		Topics: []TopicRule{{Direction: DirOut, Filter: "q/#", QoS: 1}},
	})}}))
	eventually(t, "bridge connected", func() bool { return bridgeOf(a.Server, "cloud").Connected })
	b.stop()
	eventually(t, "bridge disconnected", func() bool { return !bridgeOf(a.Server, "cloud").Connected })

	const n = 300
	pub := dial(t, a.addr, "pub")
	for i := range n {
		pub.pub(&paho.Publish{Topic: "q/" + itoa(i%7), QoS: 1, Payload: []byte(itoa(i))})
	}
	if st := bridgeOf(a.Server, "cloud"); st.Queued != n {
		t.Errorf("status while the remote is down: %d queued, want %d", st.Queued, n)
	}
	var col collector
	startBroker(t, addrB, core.Options{}, collecting(t, "q/#", &col))
	eventually(t, "all messages delivered", func() bool { return col.distinct() >= n })
	checkAll(t, col.payloads(), n)
	eventually(t, "queue empty", func() bool { return bridgeOf(a.Server, "cloud").Queued == 0 })
}

// The outgoing queue survives a restart of the local broker when it keeps
// its sessions in a store.
func TestBridgeQueuePersisted(t *testing.T) {
	addrB := mqtttest.FreeAddr(t) // nothing listens there yet
	dir := t.TempDir()
	cfg := Config{Bridges: []BridgeConfig{fastBackoff(BridgeConfig{
		Name: "cloud", Address: "tcp://" + addrB,
		Topics: []TopicRule{{Direction: DirOut, Filter: "q/#", RemotePrefix: "edge/", QoS: 1}},
	})}}
	var stores []*storage.Store
	withStore := func(srv *core.Server, log *slog.Logger) []core.Hook {
		st, err := storage.Open(context.Background(), storage.Config{Path: dir, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		stores = append(stores, st)
		h, err := New(ID, cfg, srv, log)
		if err != nil {
			t.Fatal(err)
		}
		return []core.Hook{h, st}
	}
	t.Cleanup(func() {
		for _, st := range stores {
			_ = st.Close()
		}
	})
	a := startBroker(t, "", core.Options{}, withStore)
	const n = 100
	pub := dial(t, a.addr, "pub")
	for i := range n {
		pub.pub(&paho.Publish{Topic: "q/x", QoS: 1, Payload: []byte(itoa(i))})
	}
	eventuallyOr(t, "queued", func() bool { return bridgeOf(a.Server, "cloud").Queued == n }, func() {
		t.Logf("status %+v; clients %+v\nlog:\n%s", bridgeOf(a.Server, "cloud"), a.Clients(), a.log)
	})
	_ = pub.Disconnect(&paho.Disconnect{})
	a.stop()
	if err := stores[0].Close(); err != nil {
		t.Fatal(err)
	}

	a2 := startBroker(t, "", core.Options{}, withStore)
	if st := bridgeOf(a2.Server, "cloud"); st.Queued != n {
		t.Errorf("after the restart: %d queued, want %d", st.Queued, n)
	}
	var col collector
	startBroker(t, addrB, core.Options{}, collecting(t, "edge/q/#", &col))
	eventually(t, "all messages delivered after the restart", func() bool { return col.distinct() >= n })
	checkAll(t, col.payloads(), n)
}

// The remote broker kicks the bridge out in the middle of a stream: it
// reconnects, and no QoS 1 message is lost.
func TestBridgeRemoteDisconnectsMidStream(t *testing.T) {
	var col collector
	b := startBroker(t, "", core.Options{}, collecting(t, "s/#", &col))
	a := startBroker(t, "", core.Options{}, withBridge(t, Config{Bridges: []BridgeConfig{fastBackoff(BridgeConfig{
		Name: "cloud", Address: "tcp://" + b.addr, ClientID: "edge-kick",
		Topics: []TopicRule{{Direction: DirOut, Filter: "s/#", QoS: 1}},
	})}}))
	eventually(t, "bridge connected", func() bool { return bridgeOf(a.Server, "cloud").Connected })
	const n = 3000
	pub := dial(t, a.addr, "pub")
	done := make(chan struct{})
	go func() {
		defer close(done)
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		for i := range n {
			if _, err := pub.Publish(ctx, &paho.Publish{Topic: "s/1", QoS: 1, Payload: []byte(itoa(i))}); err != nil {
				t.Errorf("publish %d: %v", i, err)
				return
			}
		}
	}()
	// Kick the bridge out at a quarter, half and three quarters of the
	// stream (polling what B has received).
	for k := 1; k <= 3; k++ {
		eventually(t, "the bridge is back and the stream goes on", func() bool {
			return len(col.payloads()) >= k*n/4 && b.Disconnect("edge-kick", 0, "test kick") == nil
		})
	}
	<-done
	eventuallyOr(t, "all messages delivered", func() bool { return col.distinct() >= n }, func() {
		t.Logf("status %+v; log:\n%s", bridgeOf(a.Server, "cloud"), a.log.String())
	})
	checkAll(t, col.payloads(), n)
	if !strings.Contains(a.log.String(), "connection to the remote broker lost") {
		t.Error("no log line for the lost connection")
	}
}

// A bridge stopped with its broker leaves no goroutine behind, whether
// its remote was up or unreachable.
func TestBridgeStopsCleanly(t *testing.T) {
	before := runtime.NumGoroutine()
	b := startBroker(t, "", core.Options{}, nil)
	a := startBroker(t, "", core.Options{}, withBridge(t, Config{Bridges: []BridgeConfig{
		fastBackoff(BridgeConfig{Name: "up", Address: "tcp://" + b.addr, Topics: []TopicRule{{Direction: DirBoth, Filter: "x/#", QoS: 1}}}),
		fastBackoff(BridgeConfig{Name: "down", Address: "tcp://" + mqtttest.FreeAddr(t), Topics: []TopicRule{{Direction: DirOut, Filter: "x/#", QoS: 1}}}),
	}}))
	eventually(t, "bridge connected", func() bool { return bridgeOf(a.Server, "up").Connected })
	a.stop()
	b.stop()
	eventuallyOr(t, "goroutines back to where they were", func() bool { return runtime.NumGoroutine() <= before+2 }, func() {
		buf := make([]byte, 1<<20)
		t.Logf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
	})
	for _, l := range strings.Split(a.log.String(), "\n") {
		if strings.Contains(l, "level=ERROR") && !strings.Contains(l, "bridge=down") {
			t.Errorf("error logged: %s", l)
		}
	}
}

// The bridge's state and counts are in $SYS (Mosquitto's state topic
// too) and in the metrics.
func TestBridgeSysAndMetrics(t *testing.T) {
	b := startBroker(t, "", core.Options{}, nil)
	a := startBroker(t, "", core.Options{SysInterval: 50 * time.Millisecond}, withBridge(t, Config{Bridges: []BridgeConfig{
		fastBackoff(BridgeConfig{Name: "cloud", Address: "tcp://" + b.addr, Topics: []TopicRule{{Direction: DirOut, Filter: "x/#", QoS: 1}}}),
	}}))
	eventually(t, "bridge connected", func() bool { return bridgeOf(a.Server, "cloud").Connected })
	dial(t, a.addr, "pub").pub(&paho.Publish{Topic: "x/1", QoS: 1, Payload: []byte("1")})
	eventually(t, "sent", func() bool { return bridgeOf(a.Server, "cloud").Sent == 1 })

	sys := dial(t, a.addr, "sys")
	sys.sub("$SYS/broker/connection/cloud/state")
	sys.sub("$SYS/broker/bridges/cloud/sent")
	// The retained values may be from a tick before the message went out:
	// read the ticks until they say connected and 1 sent.
	got := map[string]string{}
	for got["$SYS/broker/connection/cloud/state"] != "1" || got["$SYS/broker/bridges/cloud/sent"] != "1" {
		m := sys.next()
		got[m.Topic] = string(m.Payload)
	}

	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(admin.NewCollector(a.Server))
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	values := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			key := f.GetName()
			for _, l := range m.GetLabel() {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			switch {
			case m.GetGauge() != nil:
				values[key] = m.GetGauge().GetValue()
			case m.GetCounter() != nil:
				values[key] = m.GetCounter().GetValue()
			}
		}
	}
	for key, want := range map[string]float64{
		"vanemq_bridge_connected,bridge=cloud":                    1,
		"vanemq_bridge_messages_total,bridge=cloud,direction=out": 1,
		"vanemq_bridge_messages_total,bridge=cloud,direction=in":  0,
		"vanemq_bridge_queued_messages,bridge=cloud":              0,
		"vanemq_bridge_dropped_total,bridge=cloud":                0,
	} {
		if got, ok := values[key]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", key, got, ok, want)
		}
	}
}

// The bridge's state on the remote: online once connected (birth), offline
// from its will when the connection is lost without a DISCONNECT (here
// the remote kicks it), online again once back, and offline, published by
// the bridge, when its broker stops. The local broker has the same.
func TestBridgeStateNotifications(t *testing.T) {
	b := startBroker(t, "", core.Options{}, nil)
	a := startBroker(t, "", core.Options{}, withBridge(t, Config{Bridges: []BridgeConfig{fastBackoff(BridgeConfig{
		Name: "cloud", Address: "tcp://" + b.addr, ClientID: "edge-9",
		Topics: []TopicRule{{Direction: DirOut, Filter: "x/#", QoS: 1}},
	})}}))
	eventually(t, "bridge connected", func() bool { return bridgeOf(a.Server, "cloud").Connected })
	remote, local := dial(t, b.addr, "watch"), dial(t, a.addr, "watch")
	remote.sub("bridges/edge-9/state")
	local.sub("bridges/edge-9/state")
	// A watcher that subscribes while the birth is being published may get
	// it twice, live and retained: next returns the next change of state.
	last := map[*client]string{}
	next := func(c *client) string {
		for {
			m := c.next()
			if m.Topic != "bridges/edge-9/state" {
				t.Fatalf("unexpected %s", m.Topic)
			}
			if s := string(m.Payload); s != last[c] {
				last[c] = s
				return s
			}
		}
	}
	if s := next(remote); s != "online" {
		t.Fatalf("remote state %q, want online", s)
	}
	if s := next(local); s != "online" {
		t.Fatalf("local state %q, want online", s)
	}
	if err := b.Disconnect("edge-9", 0, "test"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"offline", "online"} {
		if s := next(remote); s != want {
			t.Fatalf("remote state %q, want %q (will, then birth)", s, want)
		}
	}
	a.stop()
	if s := next(remote); s != "offline" {
		t.Fatalf("remote state after the local broker stopped: %q, want offline", s)
	}
}

// refusingBridgeBit stands for a broker that does not know Mosquitto's
// bridge protocol level (try_private), as EMQX or HiveMQ: a CONNECT with
// the bit gets CONNACK 0x01 (unacceptable protocol version); any other
// connection is passed through to the real broker at target.
func refusingBridgeBit(t *testing.T, target string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				// CONNECT: fixed header (2 bytes for a short packet), then
				// the protocol name "MQTT" (6 bytes) and the level.
				head := make([]byte, 9)
				if _, err := io.ReadFull(c, head); err != nil {
					return
				}
				if head[8]&0x80 != 0 {
					_, _ = c.Write([]byte{0x20, 0x02, 0x00, 0x01})
					return
				}
				up, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer up.Close()
				if _, err := up.Write(head); err != nil {
					return
				}
				go func() { _, _ = io.Copy(up, c) }()
				_, _ = io.Copy(c, up)
			}()
		}
	}()
	return l.Addr().String()
}

// Over MQTT 3.1.1 the bridge first asks for Mosquitto's bridge protocol
// level; a remote that refuses it gets a plain connection, and the echo
// filter keeps the two-way bridge from looping.
func TestBridgeTryPrivateRefused(t *testing.T) {
	b := startBroker(t, "", core.Options{}, nil)
	proxy := refusingBridgeBit(t, b.addr)
	a := startBroker(t, "", core.Options{}, withBridge(t, Config{Bridges: []BridgeConfig{fastBackoff(BridgeConfig{
		Name: "old", Address: "tcp://" + proxy, Protocol: "3.1.1",
		Topics: []TopicRule{{Direction: DirBoth, Filter: "data/#", QoS: 1}},
	})}}))
	eventually(t, "bridge connected", func() bool { return bridgeOf(a.Server, "old").Connected })
	if !strings.Contains(a.log.String(), "refuses the bridge protocol level") {
		t.Error("no log line about the refused bridge protocol level")
	}
	if strings.Contains(b.log.String(), "bridge=true") {
		t.Error("the remote saw a bridge connection through a proxy that refuses it")
	}
	noLoop(t, a, b)
}
