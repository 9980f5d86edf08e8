package core_test

// Helpers shared by the end-to-end tests: bounded waits, an MQTT 5 client
// (paho.golang, low-level paho package) and an MQTT 3.1/3.1.1 client
// (paho.mqtt.golang), each on a real TCP connection to a broker started with
// startBroker.

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vanemq/vanemq/core/mqtttest"
)

// waitTimeout bounds every wait for something that should happen.
const waitTimeout = 5 * time.Second

// waitFor returns the next value from ch, failing the test if none arrives
// within timeout.
func waitFor[T any](t testing.TB, ch <-chan T, timeout time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(timeout):
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
	var zero T
	return zero
}

// waitConnected waits until the broker counts n connected clients.
func waitConnected(t testing.TB, tb *testBroker, n int64) {
	t.Helper()
	mqtttest.Eventually(t, waitTimeout, fmt.Sprintf("the broker has %d connected clients", n), func() bool {
		return tb.Stats().ClientsConnected == n
	})
}

// ---------------------------------------------------------------------------
// MQTT 5 client
// ---------------------------------------------------------------------------

// v5Msg is an application message as a v5 test client received it.
type v5Msg struct {
	Topic     string // resolved through inbound topic aliases
	Alias     uint16 // Topic Alias property, 0 when absent
	AliasOnly bool   // the PUBLISH had an empty topic and used an alias
	QoS       byte
	Retain    bool
	Dup       bool
	Payload   []byte
	Props     *paho.PublishProperties
}

func (m v5Msg) String() string {
	return fmt.Sprintf("%s %q qos=%d retain=%v dup=%v", m.Topic, m.Payload, m.QoS, m.Retain, m.Dup)
}

// v5Client is a paho.golang client on its own TCP connection.
type v5Client struct {
	t       testing.TB
	Cli     *paho.Client
	Conn    net.Conn
	Connack *paho.Connack
	ID      string // the client ID in use (assigned by the broker if it was empty)

	msgs chan v5Msg
	disc chan *paho.Disconnect
	errs chan error

	aliases map[uint16]string // inbound aliases; touched only by paho's router goroutine
}

// v5Connect returns a CONNECT for clientID with clean start, a 30 s keep
// alive and Request Problem Information left at its default (1). paho sends
// Request Problem Information 0 whenever Properties is set and the field is
// false, so it is set explicitly here.
func v5Connect(clientID string) *paho.Connect {
	return &paho.Connect{
		ClientID:   clientID,
		CleanStart: true,
		KeepAlive:  30,
		Properties: &paho.ConnectProperties{RequestProblemInfo: true},
	}
}

// connectV5 connects a v5 client with cp and fails the test if the broker
// refuses it. The client is disconnected normally when the test ends.
func connectV5(t testing.TB, addr string, cp *paho.Connect) *v5Client {
	t.Helper()
	c, err := dialV5(t, addr, cp, nil)
	if err != nil {
		t.Fatalf("connect %q: %v", cp.ClientID, err)
	}
	return c
}

// dialV5 connects a v5 client; conf, if not nil, adjusts the paho config. On
// a refused CONNECT it returns the client (with its Connack) and the error.
func dialV5(t testing.TB, addr string, cp *paho.Connect, conf func(*paho.ClientConfig)) (*v5Client, error) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	c := &v5Client{
		t:       t,
		Conn:    conn,
		msgs:    make(chan v5Msg, 4096),
		disc:    make(chan *paho.Disconnect, 4),
		errs:    make(chan error, 16),
		aliases: make(map[uint16]string),
	}
	cfg := paho.ClientConfig{
		ClientID:          cp.ClientID,
		Conn:              conn,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){c.onPublish},
		OnServerDisconnect: func(d *paho.Disconnect) {
			select {
			case c.disc <- d:
			default:
			}
		},
		OnClientError: func(err error) {
			select {
			case c.errs <- err:
			default:
			}
		},
	}
	if conf != nil {
		conf(&cfg)
	}
	c.Cli = paho.NewClient(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	ca, err := c.Cli.Connect(ctx, cp)
	c.Connack = ca
	if err != nil {
		_ = conn.Close()
		return c, err
	}
	c.ID = cp.ClientID
	if ca.Properties != nil && ca.Properties.AssignedClientID != "" {
		c.ID = ca.Properties.AssignedClientID
	}
	t.Cleanup(func() {
		_ = c.Cli.Disconnect(&paho.Disconnect{ReasonCode: 0})
		select {
		case <-c.Cli.Done():
		case <-time.After(waitTimeout):
		}
	})
	return c, nil
}

// onPublish resolves inbound topic aliases (paho does not) and queues the
// message for the test.
func (c *v5Client) onPublish(pr paho.PublishReceived) (bool, error) {
	p := pr.Packet
	m := v5Msg{
		Topic:   p.Topic,
		QoS:     p.QoS,
		Retain:  p.Retain,
		Dup:     p.Duplicate(),
		Payload: p.Payload,
		Props:   p.Properties,
	}
	if p.Properties != nil && p.Properties.TopicAlias != nil {
		m.Alias = *p.Properties.TopicAlias
		if p.Topic != "" {
			c.aliases[m.Alias] = p.Topic
		} else {
			m.AliasOnly = true
			t, ok := c.aliases[m.Alias]
			if !ok {
				t = fmt.Sprintf("<unknown topic alias %d>", m.Alias)
			}
			m.Topic = t
		}
	}
	c.msgs <- m
	return true, nil
}

// sub subscribes to one filter with default options and fails the test on
// an error or a refusing reason code.
func (c *v5Client) sub(filter string, qos byte) {
	c.t.Helper()
	c.subscribe(paho.SubscribeOptions{Topic: filter, QoS: qos}, 0)
}

// subscribe sends one SUBSCRIBE with opts and, when subID > 0, a
// Subscription Identifier. It returns the SUBACK reason codes.
func (c *v5Client) subscribe(opts paho.SubscribeOptions, subID int) []byte {
	c.t.Helper()
	s := &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{opts}}
	if subID > 0 {
		s.Properties = &paho.SubscribeProperties{SubscriptionIdentifier: &subID}
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	sa, err := c.Cli.Subscribe(ctx, s)
	if err != nil {
		c.t.Fatalf("%s: subscribe %q: %v", c.ID, opts.Topic, err)
	}
	if len(sa.Reasons) != 1 {
		c.t.Fatalf("%s: SUBACK for 1 filter has %d reason codes [MQTT-3.8.4-6]", c.ID, len(sa.Reasons))
	}
	if want := opts.QoS; sa.Reasons[0] != want {
		c.t.Fatalf("%s: SUBACK reason 0x%02x for %q, want granted QoS %d [MQTT-3.8.4-7]", c.ID, sa.Reasons[0], opts.Topic, want)
	}
	return sa.Reasons
}

// pub publishes a message and, for QoS 1 and 2, waits for its
// acknowledgement, failing on an error reason code.
func (c *v5Client) pub(topic string, qos byte, payload string) {
	c.t.Helper()
	c.publish(&paho.Publish{Topic: topic, QoS: qos, Payload: []byte(payload)})
}

// pubRetained publishes a retained message at QoS 1.
func (c *v5Client) pubRetained(topic, payload string) {
	c.t.Helper()
	c.publish(&paho.Publish{Topic: topic, QoS: 1, Retain: true, Payload: []byte(payload)})
}

func (c *v5Client) publish(p *paho.Publish) *paho.PublishResponse {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	r, err := c.Cli.Publish(ctx, p)
	if err != nil {
		c.t.Fatalf("%s: publish to %q at QoS %d: %v", c.ID, p.Topic, p.QoS, err)
	}
	if p.QoS > 0 && r.ReasonCode >= 0x80 {
		c.t.Fatalf("%s: publish to %q acknowledged with reason 0x%02x", c.ID, p.Topic, r.ReasonCode)
	}
	return r
}

// next returns the next message the client received.
func (c *v5Client) next() v5Msg {
	c.t.Helper()
	return waitFor(c.t, c.msgs, waitTimeout, c.ID+": a PUBLISH")
}

// until collects received messages up to and including one on markerTopic
// and returns those that came before it.
func (c *v5Client) until(markerTopic string) []v5Msg {
	c.t.Helper()
	var before []v5Msg
	for {
		m := waitFor(c.t, c.msgs, waitTimeout, c.ID+": the marker on "+markerTopic)
		if m.Topic == markerTopic {
			return before
		}
		before = append(before, m)
	}
}

// expectNone fails the test if any message arrived before the marker.
func (c *v5Client) expectNone(markerTopic, why string) {
	c.t.Helper()
	if got := c.until(markerTopic); len(got) > 0 {
		c.t.Errorf("%s: %s: got %d unexpected message(s) before the marker: %v", c.ID, why, len(got), got)
	}
}

// nextDisconnect waits for a DISCONNECT from the server.
func (c *v5Client) nextDisconnect() *paho.Disconnect {
	c.t.Helper()
	return waitFor(c.t, c.disc, waitTimeout, c.ID+": a DISCONNECT from the server")
}

// kill closes the TCP connection without sending DISCONNECT (an abnormal
// disconnection from the broker's point of view) and waits for paho to stop.
func (c *v5Client) kill() {
	c.t.Helper()
	_ = c.Conn.Close()
	select {
	case <-c.Cli.Done():
	case <-time.After(waitTimeout):
		c.t.Fatalf("%s: paho did not stop after the connection closed", c.ID)
	}
}

// disconnect sends DISCONNECT with reason and closes the connection.
func (c *v5Client) disconnect(reason byte) {
	c.t.Helper()
	if err := c.Cli.Disconnect(&paho.Disconnect{ReasonCode: reason}); err != nil {
		c.t.Fatalf("%s: DISCONNECT: %v", c.ID, err)
	}
}

// sessionPresent reports the CONNACK's Session Present flag.
func (c *v5Client) sessionPresent() bool { return c.Connack.SessionPresent }

// on returns a view of c that reports failures to t, for use inside a
// subtest (FailNow must run on the failing test's own goroutine).
func (c *v5Client) on(t testing.TB) *v5Client {
	cc := *c
	cc.t = t
	return &cc
}

func u16(v uint16) *uint16 { return &v }
func u32(v uint32) *uint32 { return &v }

// optU16 and optU32 format an optional property for a failure message.
func optU16(p *uint16) string {
	if p == nil {
		return "absent"
	}
	return fmt.Sprint(*p)
}

func optU32(p *uint32) string {
	if p == nil {
		return "absent"
	}
	return fmt.Sprint(*p)
}

// ---------------------------------------------------------------------------
// MQTT 3.1 / 3.1.1 client
// ---------------------------------------------------------------------------

// v3Client is a paho.mqtt.golang client. Every message it receives, through
// any subscription or none (a resumed session), goes to msgs.
type v3Client struct {
	t              testing.TB
	Cli            mqtt.Client
	ID             string
	SessionPresent bool

	conn *connBox // the TCP connection paho opened, for kill

	msgs chan mqtt.Message
}

// connBox holds a connection set from paho's dialer goroutine.
type connBox struct {
	mu sync.Mutex
	c  net.Conn
}

// connectV3 connects a 3.x client: protocol version 4 (3.1.1) and clean
// session unless configure changes them. Auto-reconnect is off.
func connectV3(t testing.TB, addr, clientID string, configure func(*mqtt.ClientOptions)) *v3Client {
	t.Helper()
	c, err := dialV3(t, addr, clientID, configure)
	if err != nil {
		t.Fatalf("3.x connect %q: %v", clientID, err)
	}
	return c
}

func dialV3(t testing.TB, addr, clientID string, configure func(*mqtt.ClientOptions)) (*v3Client, error) {
	t.Helper()
	c := &v3Client{t: t, ID: clientID, conn: &connBox{}, msgs: make(chan mqtt.Message, 4096)}
	o := mqtt.NewClientOptions().
		AddBroker("tcp://" + addr).
		SetClientID(clientID).
		SetProtocolVersion(4).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetKeepAlive(30 * time.Second).
		SetConnectTimeout(waitTimeout).
		SetOrderMatters(true).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { c.msgs <- m }).
		SetCustomOpenConnectionFn(func(u *url.URL, _ mqtt.ClientOptions) (net.Conn, error) {
			conn, err := net.DialTimeout("tcp", u.Host, waitTimeout)
			if err == nil {
				c.conn.mu.Lock()
				c.conn.c = conn
				c.conn.mu.Unlock()
			}
			return conn, err
		})
	if configure != nil {
		configure(o)
	}
	c.Cli = mqtt.NewClient(o)
	tok := c.Cli.Connect()
	if !tok.WaitTimeout(waitTimeout) {
		return c, fmt.Errorf("CONNECT not acknowledged within %v", waitTimeout)
	}
	if err := tok.Error(); err != nil {
		return c, err
	}
	c.SessionPresent = tok.(*mqtt.ConnectToken).SessionPresent()
	t.Cleanup(func() {
		if c.Cli.IsConnectionOpen() {
			c.Cli.Disconnect(100)
		}
	})
	return c, nil
}

// sub subscribes; messages go to msgs through the default handler.
func (c *v3Client) sub(filter string, qos byte) {
	c.t.Helper()
	tok := c.Cli.Subscribe(filter, qos, nil)
	if !tok.WaitTimeout(waitTimeout) {
		c.t.Fatalf("%s: SUBACK for %q not received", c.ID, filter)
	}
	if err := tok.Error(); err != nil {
		c.t.Fatalf("%s: subscribe %q: %v", c.ID, filter, err)
	}
	if got := tok.(*mqtt.SubscribeToken).Result()[filter]; got != qos {
		c.t.Fatalf("%s: SUBACK return code 0x%02x for %q, want granted QoS %d", c.ID, got, filter, qos)
	}
}

// pub publishes and waits for the flow to complete (PUBACK / PUBCOMP).
func (c *v3Client) pub(topic string, qos byte, retained bool, payload string) {
	c.t.Helper()
	tok := c.Cli.Publish(topic, qos, retained, []byte(payload))
	if !tok.WaitTimeout(waitTimeout) {
		c.t.Fatalf("%s: publish to %q at QoS %d not acknowledged", c.ID, topic, qos)
	}
	if err := tok.Error(); err != nil {
		c.t.Fatalf("%s: publish to %q: %v", c.ID, topic, err)
	}
}

// on returns a view of c that reports failures to t (see v5Client.on).
func (c *v3Client) on(t testing.TB) *v3Client {
	cc := *c
	cc.t = t
	return &cc
}

func (c *v3Client) next() mqtt.Message {
	c.t.Helper()
	return waitFor(c.t, c.msgs, waitTimeout, c.ID+": a PUBLISH")
}

// until collects received messages up to the one on markerTopic and
// returns those that came before it.
func (c *v3Client) until(markerTopic string) []mqtt.Message {
	c.t.Helper()
	var before []mqtt.Message
	for {
		m := waitFor(c.t, c.msgs, waitTimeout, c.ID+": the marker on "+markerTopic)
		if m.Topic() == markerTopic {
			return before
		}
		before = append(before, m)
	}
}

// kill closes the TCP connection without DISCONNECT.
func (c *v3Client) kill() {
	c.t.Helper()
	c.conn.mu.Lock()
	conn := c.conn.c
	c.conn.mu.Unlock()
	if conn == nil {
		c.t.Fatalf("%s: no connection to close", c.ID)
	}
	_ = conn.Close()
}

func v3Topics(ms []mqtt.Message) []string {
	var s []string
	for _, m := range ms {
		s = append(s, fmt.Sprintf("%s %q", m.Topic(), m.Payload()))
	}
	return s
}
