package js

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/mqtttest"
	"github.com/vanemq/vanemq/listeners/tcp"
)

// waitTimeout bounds the end-to-end tests' waits.
const waitTimeout = 10 * time.Second

// broker is a server with a js hook running script, on a loopback port.
type broker struct {
	srv  *core.Server
	hook *Hook
	addr string
	logs *logBuffer // the server's, the hook's and the script's lines
}

// newBroker makes the server and adds the hook, without starting them.
func newBroker(t *testing.T, script string, opts core.Options) *broker {
	t.Helper()
	return newBrokerWith(t, script, opts, Config{})
}

// newBrokerWith is newBroker with the hook's config cfg (its script,
// watch, timeout and logger are the test's).
func newBrokerWith(t *testing.T, script string, opts core.Options, cfg Config) *broker {
	t.Helper()
	b := &broker{logs: &logBuffer{}}
	opts.Logger = b.logs.Logger(slog.LevelDebug)
	if opts.SysInterval == 0 {
		opts.SysInterval = -1
	}
	srv, err := core.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "test.js")
	writeScript(t, path, script)
	no := false
	// A generous timeout: the tests are about what the script does, and a
	// shared machine under -race can stall a trivial call past 10ms.
	cfg.Script, cfg.Watch, cfg.Timeout, cfg.Logger = path, &no, 2*time.Second, opts.Logger
	h, err := New(cfg, srv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() }) // the server closes it too
	if err := srv.AddHook(h, 50); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("broker log:\n%s", b.logs)
		}
	})
	b.srv, b.hook = srv, h
	return b
}

// serve starts a broker running script, shut down when the test ends.
func serve(t *testing.T, script string, opts core.Options) *broker {
	t.Helper()
	return serveWith(t, script, opts, Config{})
}

// serveWith is serve with the hook's config cfg, as newBrokerWith.
func serveWith(t *testing.T, script string, opts core.Options, cfg Config) *broker {
	t.Helper()
	b := newBrokerWith(t, script, opts, cfg)
	b.addr = mqtttest.Serve(t, b.srv, tcp.New("tcp", "127.0.0.1:0"))
	return b
}

// client is a paho.golang (MQTT 5) client and the messages it received.
type client struct {
	*paho.Client
	conn net.Conn
	msgs chan *paho.Publish
}

// connect connects an MQTT 5 client as id and user; cp, when not nil,
// is the CONNECT to send, its client ID and username set from id and user.
func (b *broker) connect(t *testing.T, id, user string, cp *paho.Connect) (*client, *paho.Connack, error) {
	t.Helper()
	if cp == nil {
		cp = &paho.Connect{CleanStart: true, KeepAlive: 30}
	}
	cp.ClientID, cp.Username, cp.UsernameFlag = id, user, user != ""
	c := &client{msgs: make(chan *paho.Publish, 64)}
	pc, conn, ca, err := mqtttest.DialPaho(b.addr, cp, func(p *paho.Publish) { c.msgs <- p })
	if conn == nil {
		t.Fatalf("dial: %v", err)
	}
	if err != nil {
		return nil, ca, err
	}
	c.Client, c.conn = pc, conn
	t.Cleanup(func() { mqtttest.ClosePaho(pc, nil) })
	return c, ca, nil
}

// mustConnect is connect for a client that must be accepted.
func (b *broker) mustConnect(t *testing.T, id, user string, cp *paho.Connect) *client {
	t.Helper()
	c, ca, err := b.connect(t, id, user, cp)
	if err != nil {
		t.Fatalf("connect %s: %v (CONNACK %+v)", id, err, ca)
	}
	return c
}

// subscribe subscribes at QoS 1 and fails the test unless it is granted.
func (c *client) subscribe(t *testing.T, filter string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	sa, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}})
	if err != nil || len(sa.Reasons) != 1 || sa.Reasons[0] != 1 {
		t.Fatalf("subscribe %s: %v %+v", filter, err, sa)
	}
}

// publish publishes at QoS 1 and returns the PUBACK's reason code.
func (c *client) publish(t *testing.T, topic, payload string, retain bool) byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	pr, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte(payload), Retain: retain})
	if pr == nil {
		t.Fatalf("publish %s: no PUBACK: %v", topic, err)
	}
	return pr.ReasonCode
}

// next returns the next message c received.
func (c *client) next(t *testing.T) *paho.Publish {
	t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-time.After(waitTimeout):
		t.Fatalf("nothing received in %s", waitTimeout)
	}
	return nil
}

// expect fails the test unless the next message c receives is payload
// on topic.
func (c *client) expect(t *testing.T, topic, payload string) *paho.Publish {
	t.Helper()
	m := c.next(t)
	if m.Topic != topic || string(m.Payload) != payload {
		t.Fatalf("received %q on %s, want %q on %s", m.Payload, m.Topic, payload, topic)
	}
	return m
}

// waitLog waits until the log holds s (with quotes unescaped).
func (b *broker) waitLog(t *testing.T, s string) {
	t.Helper()
	mqtttest.Eventually(t, waitTimeout, fmt.Sprintf("the log to hold %s", s), func() bool { return logHas(b.logs, s) })
}

// tcpListener is a loopback listener on a free port.
func tcpListener() core.Listener { return tcp.New("tcp", "127.0.0.1:0") }
