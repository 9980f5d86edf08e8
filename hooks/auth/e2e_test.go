package auth_test

// End-to-end tests: a real broker with the auth.file hook, MQTT 5 clients
// (paho.golang) and MQTT 3.1.1 clients (paho.mqtt.golang) over TCP. The
// reason codes are those of the MQTT 5.0 spec, sections 3.2.2.2 (CONNACK),
// 3.4.2.1 (PUBACK) and 3.9.3 (SUBACK), and of MQTT 3.1.1, sections 3.2.2.3
// (CONNACK return codes, table 3.1) and 3.9.3 (SUBACK return codes).

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/crypto/bcrypt"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/mqtttest"
	"github.com/vanemq/vanemq/hooks/auth"
	"github.com/vanemq/vanemq/listeners/tcp"
)

// waitTimeout bounds every wait for something that should happen.
const waitTimeout = 10 * time.Second

const e2eACL = `rules:
  - {allow: false, action: subscribe, filter: "test/nosubscribe"}
  - {allow: false, action: publish, filter: "test/nopublish"}
  - {allow: true, action: both, filter: "users/%u/#"}
  - {allow: true, action: both, filter: "test/#"}
`

// startBroker starts a broker on 127.0.0.1 with anonymous clients refused
// and the auth.file hook (users alice/secret and bob/builder, e2eACL), and
// returns its address.
func startBroker(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	var users string
	for _, u := range [][2]string{{"alice", "secret"}, {"bob", "builder"}} {
		h, err := bcrypt.GenerateFromPassword([]byte(u[1]), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		users += fmt.Sprintf("  - {username: %s, password: '%s'}\n", u[0], h)
	}
	usersPath := filepath.Join(dir, "users.yaml")
	aclPath := filepath.Join(dir, "acl.yaml")
	if err := os.WriteFile(usersPath, []byte("users:\n"+users), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(aclPath, []byte(e2eACL), 0o600); err != nil {
		t.Fatal(err)
	}
	h, err := auth.NewFile(auth.FileOptions{Users: usersPath, ACL: aclPath})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := core.New(core.Options{Logger: slog.New(slog.DiscardHandler), SysInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.AddHook(h, 100); err != nil {
		t.Fatal(err)
	}
	return mqtttest.Serve(t, srv, tcp.New("tcp", "127.0.0.1:0"))
}

// v5 is an MQTT 5 client; msgs receives what it is sent.
type v5 struct {
	cli  *paho.Client
	msgs chan *paho.Publish
}

// dialV5 connects with the given credentials (user "" sends none) and
// returns the client and the CONNACK, or the refusing CONNACK and an
// error.
func dialV5(t *testing.T, addr, clientID, user, password string) (*v5, *paho.Connack, error) {
	t.Helper()
	cp := &paho.Connect{ClientID: clientID, CleanStart: true, KeepAlive: 30,
		Properties: &paho.ConnectProperties{RequestProblemInfo: true}}
	if user != "" {
		cp.Username, cp.UsernameFlag = user, true
		cp.Password, cp.PasswordFlag = []byte(password), true
	}
	c := &v5{msgs: make(chan *paho.Publish, 64)}
	cli, ca, err := mqtttest.ConnectPaho(t, addr, cp, func(p *paho.Publish) { c.msgs <- p })
	if err != nil {
		return nil, ca, err
	}
	c.cli = cli
	return c, ca, nil
}

func connectV5(t *testing.T, addr, clientID, user, password string) *v5 {
	t.Helper()
	c, ca, err := dialV5(t, addr, clientID, user, password)
	if err != nil {
		t.Fatalf("connect %s as %q: %v (CONNACK %+v)", clientID, user, err, ca)
	}
	return c
}

// subscribe returns the SUBACK reason code for one filter.
func (c *v5) subscribe(t *testing.T, filter string) byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	sa, err := c.cli.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}})
	if sa == nil {
		t.Fatalf("subscribe %q: %v", filter, err)
	}
	if len(sa.Reasons) != 1 {
		t.Fatalf("SUBACK for one filter has %d reason codes", len(sa.Reasons))
	}
	return sa.Reasons[0]
}

// publish returns the PUBACK reason code of a QoS 1 publish, or 0 after a
// QoS 0 one.
func (c *v5) publish(t *testing.T, topic string, qos byte, payload string) byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	r, err := c.cli.Publish(ctx, &paho.Publish{Topic: topic, QoS: qos, Payload: []byte(payload)})
	if qos == 0 {
		if err != nil {
			t.Fatalf("publish %q: %v", topic, err)
		}
		return 0
	}
	if r == nil {
		t.Fatalf("publish %q: %v", topic, err)
	}
	return r.ReasonCode
}

// before returns the messages received before the one on marker.
func (c *v5) before(t *testing.T, marker string) []string {
	t.Helper()
	var got []string
	for {
		select {
		case m := <-c.msgs:
			if m.Topic == marker {
				return got
			}
			got = append(got, fmt.Sprintf("%s %q", m.Topic, m.Payload))
		case <-time.After(waitTimeout):
			t.Fatalf("the marker on %s did not arrive", marker)
		}
	}
}

func TestE2EConnectV5(t *testing.T) {
	addr := startBroker(t)
	tests := []struct {
		name, user, password string
		want                 byte
	}{
		{"right password", "alice", "secret", 0x00},
		{"wrong password: Bad User Name or Password", "alice", "builder", 0x86},
		{"unknown user: Bad User Name or Password", "mallory", "secret", 0x86},
		{"anonymous with allow_anonymous false: Not Authorized", "", "", 0x87},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, ca, err := dialV5(t, addr, fmt.Sprintf("v5-%d", i), tc.user, tc.password)
			if ca == nil {
				t.Fatalf("no CONNACK: %v", err)
			}
			if ca.ReasonCode != tc.want {
				t.Errorf("CONNACK reason 0x%02x, want 0x%02x (MQTT 5.0 section 3.2.2.2); err %v", ca.ReasonCode, tc.want, err)
			}
			if (err == nil) != (tc.want == 0) {
				t.Errorf("connect error %v with reason 0x%02x", err, ca.ReasonCode)
			}
		})
	}
}

func TestE2EConnectV311(t *testing.T) {
	addr := startBroker(t)
	tests := []struct {
		name, user, password string
		want                 byte
	}{
		{"right password", "bob", "builder", 0x00},
		{"wrong password: bad user name or password", "bob", "secret", 0x04},
		{"unknown user: bad user name or password", "mallory", "secret", 0x04},
		{"anonymous with allow_anonymous false: not authorized", "", "", 0x05},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok, cli := dialV3(t, addr, fmt.Sprintf("v3-%d", i), tc.user, tc.password)
			if got := tok.ReturnCode(); got != tc.want {
				t.Errorf("CONNACK return code 0x%02x, want 0x%02x (MQTT 3.1.1 section 3.2.2.3); err %v", got, tc.want, tok.Error())
			}
			if cli.IsConnectionOpen() != (tc.want == 0) {
				t.Errorf("connection open = %v after return code 0x%02x", cli.IsConnectionOpen(), tok.ReturnCode())
			}
		})
	}
}

// dialV3 connects an MQTT 3.1.1 client and waits for the CONNACK.
func dialV3(t *testing.T, addr, clientID, user, password string) (*mqtt.ConnectToken, mqtt.Client) {
	t.Helper()
	msgs := make(chan mqtt.Message, 64)
	o := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(clientID).
		SetProtocolVersion(4).SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).
		SetConnectTimeout(waitTimeout).SetOrderMatters(true).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { msgs <- m })
	if user != "" {
		o.SetUsername(user).SetPassword(password)
	}
	cli := mqtt.NewClient(o)
	tok := cli.Connect()
	if !tok.WaitTimeout(waitTimeout) {
		t.Fatalf("%s: no CONNACK", clientID)
	}
	t.Cleanup(func() {
		if cli.IsConnectionOpen() {
			cli.Disconnect(100)
		}
	})
	return tok.(*mqtt.ConnectToken), cli
}

func TestE2EACLV5(t *testing.T) {
	addr := startBroker(t)
	alice := connectV5(t, addr, "alice-1", "alice", "secret")
	bob := connectV5(t, addr, "bob-1", "bob", "builder")

	t.Run("subscribe", func(t *testing.T) {
		tests := []struct {
			filter string
			want   byte
		}{
			{"test/nosubscribe", 0x87},           // denied by rule 0
			{"test/#", 0x01},                     // granted: test/nosubscribe is filtered at delivery
			{"users/bob/#", 0x87},                // %u is alice
			{"users/+/x", 0x01},                  // granted: only users/alice/x is read
			{"$share/g/users/bob/x", 0x87},       // shared: the inner filter is checked
			{"elsewhere", 0x87},                  // no rule: default deny
			{"users/alice/#", 0x01},              // granted QoS 1
			{"$share/g/users/alice/inbox", 0x01}, // shared, own subtree
			{"test/other", 0x01},
		}
		for _, tc := range tests {
			if got := alice.subscribe(t, tc.filter); got != tc.want {
				t.Errorf("SUBACK for %q: 0x%02x, want 0x%02x (MQTT 5.0 section 3.9.3)", tc.filter, got, tc.want)
			}
		}
	})

	t.Run("publish", func(t *testing.T) {
		// bob may read test/nopublish (rule 3), so a denied message would
		// reach him if the broker routed it; the marker ends the wait.
		for _, f := range []string{"test/nopublish", "test/marker", "users/bob/#"} {
			if got := bob.subscribe(t, f); got != 0x01 {
				t.Fatalf("bob: SUBACK for %q: 0x%02x", f, got)
			}
		}
		tests := []struct {
			topic string
			qos   byte
			want  byte // PUBACK reason
		}{
			{"test/nopublish", 1, 0x87}, // denied by rule 1
			{"test/nopublish", 0, 0},    // dropped silently
			{"users/bob/x", 1, 0x87},    // %u is alice
			{"users/bob/x", 0, 0},
			{"nowhere", 1, 0x87},       // default deny
			{"users/alice/x", 1, 0x00}, // alice herself subscribes to it
		}
		for _, tc := range tests {
			if got := alice.publish(t, tc.topic, tc.qos, "from alice"); got != tc.want {
				t.Errorf("PUBACK for QoS %d to %q: 0x%02x, want 0x%02x (MQTT 5.0 section 3.4.2.1)", tc.qos, tc.topic, got, tc.want)
			}
		}
		if got := alice.publish(t, "test/marker", 1, "marker"); got != 0x00 {
			t.Fatalf("marker PUBACK 0x%02x", got)
		}
		if got := bob.before(t, "test/marker"); len(got) != 0 {
			t.Errorf("bob received denied messages: %v", got)
		}
		// bob's own subtree works for him.
		if got := bob.publish(t, "users/bob/x", 1, "from bob"); got != 0x00 {
			t.Errorf("bob: PUBACK for users/bob/x: 0x%02x, want 0x00", got)
		}
		if got := bob.before(t, "users/bob/x"); len(got) != 0 {
			t.Errorf("unexpected messages: %v", got)
		}
	})
}

func TestE2EACLV311(t *testing.T) {
	addr := startBroker(t)
	_, alice := dialV3(t, addr, "alice-3", "alice", "secret")
	msgs := make(chan mqtt.Message, 64)
	_, bob := dialV3(t, addr, "bob-3", "bob", "builder")
	if !alice.IsConnectionOpen() || !bob.IsConnectionOpen() {
		t.Fatal("not connected")
	}
	sub := func(c mqtt.Client, filter string) byte {
		t.Helper()
		tok := c.Subscribe(filter, 1, func(_ mqtt.Client, m mqtt.Message) { msgs <- m })
		if !tok.WaitTimeout(waitTimeout) {
			t.Fatalf("no SUBACK for %q", filter)
		}
		return tok.(*mqtt.SubscribeToken).Result()[filter]
	}
	tests := []struct {
		filter string
		want   byte
	}{
		{"test/nosubscribe", 0x80},
		{"users/bob/#", 0x80},
		{"users/alice/#", 0x01},
	}
	for _, tc := range tests {
		if got := sub(alice, tc.filter); got != tc.want {
			t.Errorf("SUBACK for %q: 0x%02x, want 0x%02x (MQTT 3.1.1 section 3.9.3)", tc.filter, got, tc.want)
		}
	}
	if got := sub(bob, "test/nopublish"); got != 0x01 {
		t.Fatalf("bob: SUBACK 0x%02x", got)
	}
	if got := sub(bob, "test/marker"); got != 0x01 {
		t.Fatalf("bob: SUBACK 0x%02x", got)
	}
	// 3.1.1 has no negative PUBACK: the denied QoS 1 message is
	// acknowledged and dropped.
	for _, qos := range []byte{0, 1} {
		tok := alice.Publish("test/nopublish", qos, false, "denied")
		if !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
			t.Fatalf("publish QoS %d: %v", qos, tok.Error())
		}
	}
	if tok := alice.Publish("test/marker", 1, false, "marker"); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		t.Fatalf("marker: %v", tok.Error())
	}
	select {
	case m := <-msgs:
		if m.Topic() != "test/marker" {
			t.Errorf("bob received %s %q before the marker", m.Topic(), m.Payload())
		}
	case <-time.After(waitTimeout):
		t.Fatal("the marker did not arrive")
	}
	if !alice.IsConnectionOpen() {
		t.Error("alice was disconnected for a denied publish")
	}
}
