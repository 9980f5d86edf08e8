package plugins

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/mqtttest"
	"github.com/vanemq/vanemq/core/packets"
	"github.com/vanemq/vanemq/listeners/tcp"
)

// The events a plugin gained with the Go contract's (issue 16), each end
// to end: a real broker, the test plugin's binary, real MQTT clients.

// record is a line of the test plugin's events file.
type record struct {
	Event   string          `json:"event"`
	Client  string          `json:"client"`
	Reason  string          `json:"reason"`
	Topic   string          `json:"topic"`
	Payload string          `json:"payload"`
	Policy  json.RawMessage `json:"policy"`
	Stats   *struct {
		ClientsConnected int64
		MessagesIn       int64
		DroppedBy        map[string]int64
		MessagesInByQoS  [3]int64
	} `json:"stats"`
}

// records reads the events file.
func records(t *testing.T, file string) []record {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var out []record
	for l := range strings.SplitSeq(strings.TrimSpace(string(data)), "\n") {
		if l == "" {
			continue
		}
		var r record
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("events file line %q: %v", l, err)
		}
		out = append(out, r)
	}
	return out
}

// has reports whether a record matches.
func has(rs []record, match func(record) bool) bool {
	for _, r := range rs {
		if match(r) {
			return true
		}
	}
	return false
}

// challenge answers the test plugin's AUTH challenge: "prove it" gets
// "proof" (or answer, when set).
type challenge struct {
	answer string
	asked  chan string
}

func (c *challenge) Authenticate(a *paho.Auth) *paho.Auth {
	if a.Properties != nil {
		c.asked <- string(a.Properties.AuthData)
	}
	return &paho.Auth{ReasonCode: byte(packets.ContinueAuthentication),
		Properties: &paho.AuthProperties{AuthMethod: "CHALLENGE", AuthData: []byte(c.answer)}}
}

func (c *challenge) Authenticated() {}

// connectAuth connects with enhanced authentication, method CHALLENGE.
func connectAuth(t *testing.T, addr, id, first string, h *challenge) (*paho.Client, *paho.Connack, error) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{Conn: conn, AuthHandler: h})
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	ca, err := c.Connect(ctx, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30,
		Properties: &paho.ConnectProperties{AuthMethod: "CHALLENGE", AuthData: []byte(first)}})
	if err != nil {
		_ = conn.Close()
		return nil, ca, err
	}
	t.Cleanup(func() { mqtttest.ClosePaho(c, conn) })
	return c, ca, nil
}

// An AUTH exchange decided by the plugin [MQTT-4.12.0-1]: CONNECT's data,
// the plugin's challenge in AUTH 0x18, the client's answer, then CONNACK
// with the plugin's final data; a wrong answer is refused with the
// plugin's code; a re-authentication (AUTH 0x19) reaches the plugin as
// one, and its success is AUTH 0x00 [MQTT-4.12.1-1].
func TestPluginEnhancedAuth(t *testing.T) {
	events := filepath.Join(t.TempDir(), "events.jsonl")
	b := startBroker(t, Config{Config: map[string]any{"decide": []any{"enhanced_auth"}, "events": events}})

	h := &challenge{answer: "proof", asked: make(chan string, 4)}
	c, ca, err := connectAuth(t, b.addr, "alice", "hello", h)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	if got := <-h.asked; got != "prove it" {
		t.Errorf("the plugin's challenge: %q", got)
	}
	if ca.ReasonCode != 0 || ca.Properties == nil || string(ca.Properties.AuthData) != "welcome alice" {
		t.Errorf("CONNACK %#x %+v, want success with the plugin's data", ca.ReasonCode, ca.Properties)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	r, err := c.Authenticate(ctx, &paho.Auth{ReasonCode: byte(packets.ReAuthenticate),
		Properties: &paho.AuthProperties{AuthMethod: "CHALLENGE", AuthData: []byte("again")}})
	if err != nil || !r.Success {
		t.Errorf("re-authentication: %+v %v, want AUTH 0x00", r, err)
	}
	if rs := records(t, events); !has(rs, func(r record) bool { return r.Reason == `CHALLENGE "again" reauth=true` }) {
		t.Errorf("the plugin did not see the re-authentication as one: %+v", rs)
	}

	wrong := &challenge{answer: "guess", asked: make(chan string, 4)}
	_, ca, err = connectAuth(t, b.addr, "mallory", "hello", wrong)
	if err == nil || ca == nil || ca.ReasonCode != byte(packets.NotAuthorized) {
		t.Errorf("wrong answer: CONNACK %+v, %v; want 0x87", ca, err)
	}
}

// Deliver, per subscriber: the plugin rewrites a delivery (the payload
// names its subscriber), denies some (to "muted", of deliver/drop), and
// sees only its topics (deliver/#): the end marker reaches everyone
// unchanged.
func TestPluginDeliver(t *testing.T) {
	b := startBroker(t, Config{Config: map[string]any{"decide": []any{"deliver"}}})
	subs := map[string]*client{"alice": dial(t, b.addr, "alice"), "muted": dial(t, b.addr, "muted")}
	for _, c := range subs {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "deliver/#", QoS: 1}, {Topic: "end", QoS: 1}}}); err != nil {
			t.Fatal(err)
		}
		cancel()
	}
	pub := dial(t, b.addr, "pub")
	for _, topic := range []string{"deliver/x", "deliver/drop", "end"} {
		pub.publish(t, topic, "hi")
	}
	want := map[string][]string{"alice": {"deliver/x hi for alice (u-alice)", "end hi"}, "muted": {"end hi"}}
	for id, c := range subs {
		for _, w := range want[id] {
			select {
			case m := <-c.msgs:
				if got := m.Topic + " " + string(m.Payload); got != w {
					t.Errorf("%s got %q, want %q", id, got, w)
				}
			case <-time.After(waitTimeout):
				t.Fatalf("%s: %q not delivered", id, w)
			}
		}
	}
}

// Will: the plugin rewrites one will (topic and payload) and suppresses
// another; the broker publishes what the plugin returned, or nothing
// [MQTT-3.1.2-8].
func TestPluginWill(t *testing.T) {
	b := startBroker(t, Config{Config: map[string]any{"decide": []any{"will"}}})
	sub := dial(t, b.addr, "sub")
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := sub.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	drop := func(id, topic string) {
		t.Helper()
		c, conn, _, err := mqtttest.DialPaho(b.addr, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30,
			WillMessage: &paho.WillMessage{Topic: topic, Payload: []byte("bye"), QoS: 1}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.Close() // no DISCONNECT: the will is due
		<-c.Done()
	}
	drop("w1", "will/a")
	select {
	case m := <-sub.msgs:
		if m.Topic != "wills/w1" || string(m.Payload) != "last words: bye" {
			t.Errorf("will published as %s %q, want the plugin's rewrite", m.Topic, m.Payload)
		}
	case <-time.After(waitTimeout):
		t.Fatal("the rewritten will was not published")
	}
	drop("w2", "will/quiet")
	mqtttest.Eventually(t, waitTimeout, "the broker logs the will suppressed", func() bool {
		return strings.Contains(b.logs.String(), "will suppressed by a hook") && strings.Contains(b.logs.String(), "client=w2")
	})
	sub.publish(t, "end", "")
	select {
	case m := <-sub.msgs:
		if m.Topic != "end" {
			t.Errorf("got %s %q, want nothing before the end marker: the will was suppressed", m.Topic, m.Payload)
		}
	case <-time.After(waitTimeout):
		t.Fatal("end marker not delivered")
	}
}

// policySetter is a Go hook before the plugin: it sets a maximum packet
// size and a mountpoint, which the plugin is given.
type policySetter struct{}

func (policySetter) ID() string { return "policy-setter" }

func (policySetter) Connect(_ context.Context, _ *core.ClientInfo, p *core.ClientPolicy) core.Verdict {
	p.MaxPacketSize, p.Mountpoint = 2000, "go/"
	return core.Next
}

var _ core.ConnectHook = policySetter{}

// Connect's policy: the plugin is given the policy the hooks before it
// set, and changes the fields it sets, only those: its mountpoint
// (tenant-USER/) replaces the Go hook's, the maximum packet size stays the
// Go hook's (CONNACK's Maximum Packet Size [MQTT-3.2.2-15]) unless the
// plugin sets it too (512, for "small").
func TestPluginConnectPolicy(t *testing.T) {
	events := filepath.Join(t.TempDir(), "events.jsonl")
	logs := &logBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := core.New(core.Options{Logger: log, SysInterval: -1, AllowAnonymous: true})
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(Config{Path: testPlugin(t), Timeout: 5 * time.Second, Logger: log,
		Config: map[string]any{"mountpoint": true, "events": events}}, srv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	if err := srv.AddHook(policySetter{}, 90); err != nil {
		t.Fatal(err)
	}
	if err := srv.AddHook(h, 80); err != nil {
		t.Fatal(err)
	}
	addr := mqtttest.Serve(t, srv, tcp.New("tcp", "127.0.0.1:0"))
	got := make(chan string, 8)
	unsub, err := srv.Subscribe("#", func(m core.InlineMessage) { got <- m.Topic }) // no mountpoint
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()

	connect := func(id string) (*paho.Client, *paho.Connack) {
		t.Helper()
		c, ca, err := mqtttest.ConnectPaho(t, addr, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30,
			Username: "u", UsernameFlag: true}, nil)
		if err != nil {
			t.Fatalf("connect %s: %v", id, err)
		}
		return c, ca
	}
	pub, ca := connect("pub")
	if ca.Properties == nil || ca.Properties.MaximumPacketSize == nil || *ca.Properties.MaximumPacketSize != 2000 {
		t.Errorf("pub's CONNACK Maximum Packet Size %v, want the Go hook's 2000", ca.Properties)
	}
	_, ca = connect("small")
	if ca.Properties == nil || ca.Properties.MaximumPacketSize == nil || *ca.Properties.MaximumPacketSize != 512 {
		t.Errorf("small's CONNACK Maximum Packet Size %v, want the plugin's 512", ca.Properties)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := pub.Publish(ctx, &paho.Publish{Topic: "a/b", QoS: 1, Payload: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	select {
	case topic := <-got:
		if topic != "tenant-u/a/b" {
			t.Errorf("published as %q, want under the plugin's mountpoint tenant-u/", topic)
		}
	case <-time.After(waitTimeout):
		t.Fatal("the publish did not arrive")
	}
	rs := records(t, events)
	var given struct{ MaxPacketSize uint32 }
	if len(rs) == 0 || json.Unmarshal(rs[0].Policy, &given) != nil || given.MaxPacketSize != 2000 || !strings.Contains(string(rs[0].Policy), `"Mountpoint":"go/"`) {
		t.Errorf("the policy the plugin was given: %+v, want the Go hook's", rs)
	}
}

// Started, sys_tick (with the broker's counters) and stopped reach an
// observing plugin: started first, stopped last, and every event before
// the server has closed the hook.
func TestPluginLifecycleEvents(t *testing.T) {
	events := filepath.Join(t.TempDir(), "events.jsonl")
	srv, err := core.New(core.Options{Logger: slog.New(slog.DiscardHandler), SysInterval: 20 * time.Millisecond, AllowAnonymous: true})
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(Config{Path: testPlugin(t), Config: map[string]any{"observe_only": true,
		"observe": []any{"started", "sys_tick", "stopped"}, "events": events}}, srv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	if err := srv.AddHook(h, 10); err != nil {
		t.Fatal(err)
	}
	l := tcp.New("tcp", "127.0.0.1:0")
	if err := srv.AddListener(l); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	c := mqtttest.Dial(t, l.Address(), "c1", "")
	c.Send(&packets.Packet{Type: packets.Publish, Topic: "t", QoS: 1, PacketID: 1, Payload: []byte("x")})
	c.Flush()
	if p := c.Read(waitTimeout); p == nil || p.Type != packets.Puback {
		t.Fatal("no PUBACK")
	}
	mqtttest.Eventually(t, waitTimeout, "a sys_tick with the connected client and its publish", func() bool {
		return has(records(t, events), func(r record) bool {
			return r.Event == "sys_tick" && r.Stats != nil && r.Stats.ClientsConnected == 1 && r.Stats.MessagesIn >= 1 &&
				r.Stats.MessagesInByQoS[1] >= 1 && len(r.Stats.DroppedBy) == len(core.DropReasons())
		})
	})
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil { // OnStopped, then the hook is closed
		t.Fatal(err)
	}
	rs := records(t, events)
	if len(rs) < 3 || rs[0].Event != "started" || rs[len(rs)-1].Event != "stopped" {
		t.Fatalf("events %+v: want started first and stopped last", rs)
	}
	if st := h.Stats(); st.Lost != 0 || st.Up {
		t.Errorf("stats %+v: want no event lost and the plugin stopped", st)
	}
}

// A decision gets the connection's context: when it ends (here because
// the broker stops while the plugin is deciding a CONNECT), the plugin's
// call is cancelled, and the broker does not wait out the decision
// timeout (a minute) to stop.
func TestPluginDecisionCancelledWithConnection(t *testing.T) {
	events := filepath.Join(t.TempDir(), "events.jsonl")
	srv, err := core.New(core.Options{Logger: slog.New(slog.DiscardHandler), SysInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(Config{Path: testPlugin(t), Timeout: time.Minute, Config: map[string]any{"observe_only": true,
		"decide": []any{"authenticate"}, "events": events}}, srv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	if err := srv.AddHook(h, 10); err != nil {
		t.Fatal(err)
	}
	l := tcp.New("tcp", "127.0.0.1:0")
	if err := srv.AddListener(l); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	connected := make(chan error, 1)
	go func() {
		c, conn, _, err := mqtttest.DialPaho(l.Address(), &paho.Connect{ClientID: "waiting", CleanStart: true, KeepAlive: 30}, nil)
		if conn != nil {
			_ = conn.Close()
		}
		if c != nil {
			<-c.Done()
		}
		connected <- err
	}()
	mqtttest.Eventually(t, waitTimeout, "the plugin is deciding the CONNECT", func() bool {
		return has(records(t, events), func(r record) bool { return r.Client == "waiting" && r.Reason == "blocking" })
	})
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v: the broker waited for the plugin's decision", err)
	}
	if rs := records(t, events); !has(rs, func(r record) bool { return r.Client == "waiting" && r.Reason == "cancelled: context canceled" }) {
		t.Errorf("the plugin's call was not cancelled: %+v", rs)
	}
	if err := <-connected; err == nil {
		t.Error("the client connected, though its CONNECT was being decided when the broker stopped")
	}
	if st := h.Stats(); st.Failures != 0 {
		t.Errorf("%d failures: a cancelled decision is no failure of the plugin", st.Failures)
	}
}
