package bridge

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/logtest"
	"github.com/vanemq/vanemq/core/mqtttest"
	"github.com/vanemq/vanemq/listeners/tcp"
)

// waitTimeout bounds every wait of these tests.
const waitTimeout = 15 * time.Second

type logBuffer = logtest.Buffer

// broker is a running vanemq core on 127.0.0.1.
type broker struct {
	*core.Server
	addr string
	log  *logBuffer
	stop func()
}

// startBroker starts a broker on addr ("" for any port) with the hooks
// setup adds (it may be nil); it stops when the test ends, or at stop().
func startBroker(t testing.TB, addr string, opts core.Options, setup func(*core.Server, *slog.Logger) []core.Hook) *broker {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	return startBrokerOn(t, func() core.Listener { return tcp.New("tcp", addr) }, opts, setup)
}

// startBrokerOn is startBroker with the listener newListener makes.
func startBrokerOn(t testing.TB, newListener func() core.Listener, opts core.Options, setup func(*core.Server, *slog.Logger) []core.Hook) *broker {
	t.Helper()
	lb := &logBuffer{}
	log := slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts.Logger, opts.AllowAnonymous = log, true
	if opts.SysInterval == 0 {
		opts.SysInterval = -1
	}
	srv, err := core.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		for i, h := range setup(srv, log) {
			if err := srv.AddHook(h, 100-i); err != nil {
				t.Fatal(err)
			}
		}
	}
	l := newListener()
	// The port of a broker just stopped may take a moment to be free.
	for deadline := time.Now().Add(waitTimeout); ; {
		err = srv.AddListener(l)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
		l = newListener()
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil {
				t.Errorf("shutdown: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return &broker{Server: srv, addr: l.Address(), log: lb, stop: stop}
}

// withBridge is a setup adding one bridge hook of cfg.
func withBridge(t testing.TB, cfg Config) func(*core.Server, *slog.Logger) []core.Hook {
	return func(srv *core.Server, log *slog.Logger) []core.Hook {
		h, err := New(ID, cfg, srv, log)
		if err != nil {
			t.Fatal(err)
		}
		return []core.Hook{h}
	}
}

// eventually waits until cond holds (polling it).
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	mqtttest.Eventually(t, waitTimeout, what, cond)
}

// eventuallyOr is eventually, calling onFail (when not nil) before
// failing, to log what helps understand why.
func eventuallyOr(t testing.TB, what string, cond func() bool, onFail func()) {
	t.Helper()
	if !mqtttest.Until(waitTimeout, cond) {
		onFail()
		t.Fatalf("timed out waiting: %s", what)
	}
}

// bridgeOf returns the status of the named bridge of srv.
func bridgeOf(srv *core.Server, name string) core.BridgeStatus {
	for _, b := range srv.Bridges() {
		if b.Name == name {
			return b
		}
	}
	return core.BridgeStatus{}
}

// client is a paho MQTT 5 client.
type client struct {
	*paho.Client
	t    testing.TB
	msgs chan *paho.Publish
}

// dial connects an MQTT 5 client to addr with a clean start.
func dial(t testing.TB, addr, id string) *client {
	t.Helper()
	return connect(t, addr, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30})
}

// dialSession connects an MQTT 5 client with a session kept for an hour.
func dialSession(t testing.TB, addr, id string) *client {
	t.Helper()
	expiry := uint32(3600)
	return connect(t, addr, &paho.Connect{ClientID: id, KeepAlive: 30,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry}})
}

// connect connects an MQTT 5 client to addr with cp; it disconnects when
// the test ends.
func connect(t testing.TB, addr string, cp *paho.Connect) *client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	c := &client{t: t, msgs: make(chan *paho.Publish, 4096)}
	c.Client = paho.NewClient(paho.ClientConfig{Conn: conn,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			c.msgs <- pr.Packet
			return true, nil
		}}})
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := c.Connect(ctx, cp); err != nil {
		t.Fatalf("connect %s to %s: %v", cp.ClientID, addr, err)
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	return c
}

// sub subscribes to filter at QoS 2.
func (c *client) sub(filter string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 2}}}); err != nil {
		c.t.Fatalf("subscribe %s: %v", filter, err)
	}
}

// pub publishes and waits for the acknowledgement of a QoS 1 or 2
// message.
func (c *client) pub(p *paho.Publish) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	r, err := c.Publish(ctx, p)
	if err != nil {
		c.t.Fatalf("publish %s: %v", p.Topic, err)
	}
	if r != nil && r.ReasonCode >= 0x80 {
		c.t.Fatalf("publish %s: reason code %#x", p.Topic, r.ReasonCode)
	}
}

// next returns the next message received.
func (c *client) next() *paho.Publish {
	c.t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-time.After(waitTimeout):
		c.t.Fatal("no message received")
		return nil
	}
}

// until returns the messages received up to and including one on topic
// marker.
func (c *client) until(marker string) []*paho.Publish {
	c.t.Helper()
	var got []*paho.Publish
	for {
		m := c.next()
		got = append(got, m)
		if m.Topic == marker {
			return got
		}
	}
}

// topicsOf lists the topics and payloads of msgs.
func topicsOf(msgs []*paho.Publish) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.Topic + "=" + string(m.Payload)
	}
	return out
}

// itoa is strconv.Itoa.
func itoa(i int) string { return strconv.Itoa(i) }
