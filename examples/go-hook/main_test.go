package main

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/logtest"
	"github.com/vanemq/vanemq/core/packets"
)

// waitTimeout bounds every wait, so that a broken example fails instead of
// hanging.
const waitTimeout = 10 * time.Second

// client is an MQTT 5 paho client with the messages it received.
type client struct {
	*paho.Client
	msgs chan *paho.Publish
}

// dial connects an MQTT 5 client as username with password and returns it
// with the CONNACK, or the CONNACK and the error when refused.
func dial(t *testing.T, addr, username, password string) (*client, *paho.Connack, error) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	c := &client{msgs: make(chan *paho.Publish, 16)}
	c.Client = paho.NewClient(paho.ClientConfig{
		Conn: conn,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			c.msgs <- pr.Packet
			return true, nil
		}},
	})
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	cp := &paho.Connect{ClientID: "c-" + username, CleanStart: true, KeepAlive: 30,
		Properties: &paho.ConnectProperties{RequestProblemInfo: true}}
	if username != "" {
		cp.Username, cp.UsernameFlag = username, true
	}
	if password != "" {
		cp.Password, cp.PasswordFlag = []byte(password), true
	}
	ca, err := c.Connect(ctx, cp)
	if err != nil {
		_ = conn.Close()
		return nil, ca, err
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{ReasonCode: 0}) })
	return c, ca, nil
}

// connect is dial for a client that must be accepted.
func connect(t *testing.T, addr, username, password string) *client {
	t.Helper()
	c, _, err := dial(t, addr, username, password)
	if err != nil {
		t.Fatalf("connect %s: %v", username, err)
	}
	return c
}

// subscribe subscribes c to filter at QoS 1 and checks it is granted.
func (c *client) subscribe(t *testing.T, filter string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	sa, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}})
	if err != nil || len(sa.Reasons) != 1 || sa.Reasons[0] != 1 {
		t.Fatalf("subscribe %s: %v, SUBACK %+v", filter, err, sa)
	}
}

// publish publishes payload to topic at QoS 1 and returns the PUBACK's
// reason code and reason string.
func (c *client) publish(t *testing.T, topic string, payload []byte) (byte, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	pr, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: payload})
	if pr == nil {
		t.Fatalf("publish to %s: %v", topic, err)
	}
	reason := ""
	if pr.Properties != nil {
		reason = pr.Properties.ReasonString
	}
	return pr.ReasonCode, reason
}

// next returns the next message c received.
func (c *client) next(t *testing.T, who string) *paho.Publish {
	t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-time.After(waitTimeout):
		t.Fatalf("%s received nothing", who)
	}
	return nil
}

// expect checks that the next message c received is payload on topic.
func (c *client) expect(t *testing.T, who, topic, payload string) {
	t.Helper()
	if m := c.next(t, who); m.Topic != topic || string(m.Payload) != payload {
		t.Fatalf("%s received %q on %q, want %q on %q", who, m.Payload, m.Topic, payload, topic)
	}
}

// startExample starts the example broker from the shipped vanemq.yaml on
// a free loopback port and returns it with its address.
func startExample(t *testing.T) (*core.Server, string) {
	t.Helper()
	logs := &logBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	srv, addr, err := start(t.Context(), "vanemq.yaml", "127.0.0.1:0", logger)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if t.Failed() {
			t.Logf("broker log:\n%s", logs)
		}
	})
	return srv, addr
}

// TestExample runs the example broker and shows what its hooks do: auth.file
// lets only alice and bob in, tenant.prefix keeps their topics apart and
// refuses payloads over 1024 bytes.
func TestExample(t *testing.T) {
	srv, addr := startExample(t)
	if got := hookIDs(srv); got != "auth.file,tenant.prefix" {
		t.Errorf("hooks in call order: %s, want auth.file,tenant.prefix", got)
	}
	// The broker-side topics, seen by an inline subscriber.
	routed := make(chan string, 16)
	unsub, err := srv.Subscribe("tenants/#", func(m core.InlineMessage) { routed <- m.Topic })
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()

	alice := connect(t, addr, "alice", "alice-secret")
	bob := connect(t, addr, "bob", "bob-secret")
	alice.subscribe(t, "x")
	bob.subscribe(t, "x")

	// alice's "x" is tenants/alice/x: alice sees it under the name she
	// used, bob does not see it at all.
	if code, reason := alice.publish(t, "x", []byte("from alice")); code != 0 {
		t.Fatalf("alice's publish: PUBACK %#x %q, want success", code, reason)
	}
	alice.expect(t, "alice", "x", "from alice")
	if got := <-routed; got != "tenants/alice/x" {
		t.Errorf("the broker routed %q, want tenants/alice/x", got)
	}
	// alice's message was queued for every subscriber before her PUBACK, so
	// had bob been one, it would come before his own.
	if code, _ := bob.publish(t, "x", []byte("from bob")); code != 0 {
		t.Fatalf("bob's publish: PUBACK %#x, want success", code)
	}
	bob.expect(t, "bob", "x", "from bob")
	if got := <-routed; got != "tenants/bob/x" {
		t.Errorf("the broker routed %q, want tenants/bob/x", got)
	}

	// A payload over max_payload is refused with Quota Exceeded and a
	// reason string, and delivered to nobody.
	code, reason := alice.publish(t, "x", bytes.Repeat([]byte("a"), 1025))
	if code != byte(packets.QuotaExceeded) || !strings.Contains(reason, "1025 bytes is over the limit of 1024") {
		t.Errorf("oversized publish: PUBACK %#x %q, want 0x97 (quota exceeded) with the sizes", code, reason)
	}
	if code, _ := alice.publish(t, "x", bytes.Repeat([]byte("a"), 1024)); code != 0 {
		t.Errorf("publish of 1024 bytes: PUBACK %#x, want success", code)
	}
	// The next message alice gets is the 1024-byte one: neither the
	// oversized one nor bob's reached her.
	if m := alice.next(t, "alice"); len(m.Payload) != 1024 {
		t.Errorf("alice received %d bytes on %q, want the 1024-byte message", len(m.Payload), m.Topic)
	}
	if got := <-routed; got != "tenants/alice/x" {
		t.Errorf("the broker routed %q, want tenants/alice/x", got)
	}
	select {
	case m := <-bob.msgs:
		t.Errorf("bob received %q on %q from another tenant", m.Payload, m.Topic)
	default:
	}
}

// TestExampleRefusals checks the clients auth.file and tenant.prefix keep
// out.
func TestExampleRefusals(t *testing.T) {
	_, addr := startExample(t)
	tests := []struct {
		name, user, password string
		want                 packets.ReasonCode
	}{
		{"wrong password", "alice", "bob-secret", packets.BadUsernameOrPassword},
		{"unknown user", "mallory", "secret", packets.BadUsernameOrPassword},
		{"anonymous", "", "", packets.NotAuthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ca, err := dial(t, addr, tt.user, tt.password)
			if err == nil || ca == nil || ca.ReasonCode != byte(tt.want) {
				t.Errorf("CONNACK %+v, error %v; want reason %#x", ca, err, byte(tt.want))
			}
		})
	}
}

// TestExampleConfigErrors checks that a bad hook config stops start-up with
// a message naming the file, the hook and the problem.
func TestExampleConfigErrors(t *testing.T) {
	tests := []struct{ name, config, want string }{
		{"unknown hook", "hooks:\n  - {id: tenant.prefx}\n", `hooks[0].id: unknown hook "tenant.prefx" (known: auth.allow, auth.file, tenant.prefix)`},
		{"unknown config key", "hooks:\n  - {id: tenant.prefix, config: {max_paylod: 1}}\n", "hooks[0]: tenant.prefix: config (line 2): yaml: unmarshal errors:\n  line 1: field max_paylod not found"},
		{"bad prefix", "hooks:\n  - {id: tenant.prefix, config: {prefix: \"a/#/\"}}\n", `hooks[0]: tenant.prefix: prefix "a/#/" is not the start of a topic name`},
		{"negative size", "hooks:\n  - {id: tenant.prefix, config: {max_payload: -1}}\n", "hooks[0]: tenant.prefix: max_payload must not be negative"},
		{"unknown top-level key", "adress: x\n", "field adress not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "vanemq.yaml")
			if err := os.WriteFile(path, []byte(tt.config), 0o600); err != nil {
				t.Fatal(err)
			}
			srv, _, err := start(t.Context(), path, "127.0.0.1:0", slog.New(slog.DiscardHandler))
			if err == nil {
				_ = srv.Shutdown(context.Background())
				t.Fatal("start succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), path) {
				t.Errorf("error:\n%v\nwant it to start with the file and contain:\n%s", err, tt.want)
			}
		})
	}
}

// hookIDs lists the server's hooks in call order.
func hookIDs(srv *core.Server) string {
	var ids []string
	for _, h := range srv.Hooks() {
		ids = append(ids, h.ID)
	}
	return strings.Join(ids, ",")
}

type logBuffer = logtest.Buffer
