package jsacl_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"go.yaml.in/yaml/v3"

	"github.com/vanemq/vanemq/core/logtest"
	"github.com/vanemq/vanemq/core/mqtttest"
	"github.com/vanemq/vanemq/hooks/js"
)

// waitTimeout bounds every wait, so that a broken example fails a test
// instead of hanging it.
const waitTimeout = 10 * time.Second

// exampleFiles are the files the example ships, copied into a test's
// directory so that a test may change them.
var exampleFiles = []string{"vanemq.yaml", "acl.js"}

// copyExample copies the example's files into a new temporary directory
// and returns it.
func copyExample(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range exampleFiles {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// shippedConfig is what the tests take from the example's vanemq.yaml:
// allow_anonymous, and the js hook's entry with its config block decoded
// as the vanemq binary decodes it (strictly: an unknown key is an error).
type shippedConfig struct {
	allowAnonymous bool
	priority       int
	hook           js.Config
}

// readConfig reads the vanemq.yaml in dir.
func readConfig(t *testing.T, dir string) shippedConfig {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "vanemq.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		AllowAnonymous bool `yaml:"allow_anonymous"`
		Hooks          []struct {
			ID       string    `yaml:"id"`
			Priority int       `yaml:"priority"`
			Config   yaml.Node `yaml:"config"`
		} `yaml:"hooks"`
	}
	if err := yaml.Unmarshal(b, &file); err != nil {
		t.Fatalf("vanemq.yaml: %v", err)
	}
	for _, h := range file.Hooks {
		if h.ID != js.ID {
			continue
		}
		block, err := yaml.Marshal(&h.Config)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(block))
		dec.KnownFields(true)
		sc := shippedConfig{allowAnonymous: file.AllowAnonymous, priority: h.Priority}
		if err := dec.Decode(&sc.hook); err != nil {
			t.Fatalf("vanemq.yaml: the js hook's config: %v", err)
		}
		return sc
	}
	t.Fatalf("vanemq.yaml has no hook with id %s", js.ID)
	return shippedConfig{}
}

type logBuffer = logtest.Buffer

// waitFor polls cond every few milliseconds until it holds, failing the
// test with what after waitTimeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	mqtttest.Eventually(t, waitTimeout, what, cond)
}

// v5 is an MQTT 5 client (paho.golang). msgs receives what it is sent, up to
// its buffer (the rest are counted, not kept); got counts them all.
type v5 struct {
	cli  *paho.Client
	name string
	msgs chan *paho.Publish
	got  atomic.Int64
}

// dialV5 connects an MQTT 5 client that asks for problem information
// (reason strings). user "" sends no username. It returns the client, or the
// CONNACK and the error of a refused connection.
func dialV5(t *testing.T, addr, clientID, user string) (*v5, *paho.Connack, error) {
	t.Helper()
	cp := &paho.Connect{ClientID: clientID, CleanStart: true, KeepAlive: 30,
		Properties: &paho.ConnectProperties{RequestProblemInfo: true}}
	if user != "" {
		cp.Username, cp.UsernameFlag = user, true
	}
	c := &v5{name: clientID, msgs: make(chan *paho.Publish, 256)}
	cli, ca, err := mqtttest.ConnectPaho(t, addr, cp, func(p *paho.Publish) {
		c.got.Add(1)
		select {
		case c.msgs <- p:
		default:
		}
	})
	if err != nil {
		return nil, ca, err
	}
	c.cli = cli
	return c, ca, nil
}

// connectV5 is dialV5 for a client that must be accepted.
func connectV5(t *testing.T, addr, clientID, user string) *v5 {
	t.Helper()
	c, ca, err := dialV5(t, addr, clientID, user)
	if err != nil {
		t.Fatalf("connect %s as %q: %v (CONNACK %+v)", clientID, user, err, ca)
	}
	return c
}

// publish publishes payload to topic at QoS 1 and returns the PUBACK's
// reason code and reason string, or fails the test when there is no PUBACK.
func (c *v5) publish(t *testing.T, topic, payload string) (byte, string) {
	t.Helper()
	code, reason, err := c.tryPublish(t.Context(), topic, payload)
	if err != nil {
		t.Fatalf("%s: publish to %s: %v", c.name, topic, err)
	}
	return code, reason
}

// tryPublish is publish for a goroutine other than the test's: it returns
// the error of a publish that got no PUBACK.
func (c *v5) tryPublish(ctx context.Context, topic, payload string) (byte, string, error) {
	ctx, cancel := context.WithTimeout(ctx, waitTimeout)
	defer cancel()
	pr, err := c.cli.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte(payload)})
	if pr == nil {
		if err == nil {
			err = fmt.Errorf("no PUBACK")
		}
		return 0, "", err
	}
	reason := ""
	if pr.Properties != nil {
		reason = pr.Properties.ReasonString
	}
	return pr.ReasonCode, reason, nil
}

// subscribe subscribes to filter at QoS 1 and returns the SUBACK's reason
// code: the QoS granted, or a refusal (0x80 and above).
func (c *v5) subscribe(t *testing.T, filter string) byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	sa, err := c.cli.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}})
	if sa == nil || len(sa.Reasons) != 1 {
		t.Fatalf("%s: subscribe to %s: %v (SUBACK %+v)", c.name, filter, err, sa)
	}
	return sa.Reasons[0]
}

// next returns the next message c received.
func (c *v5) next(t *testing.T) *paho.Publish {
	t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-time.After(waitTimeout):
		t.Fatalf("%s received nothing in %s", c.name, waitTimeout)
	}
	return nil
}

// v311 is an MQTT 3.1.1 client (paho.mqtt.golang).
type v311 struct {
	cli  mqtt.Client
	name string
}

// connectV311 connects an MQTT 3.1.1 client as user.
func connectV311(t *testing.T, addr, clientID, user string) *v311 {
	t.Helper()
	opts := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(clientID).SetUsername(user).
		SetProtocolVersion(4).SetCleanSession(true).SetAutoReconnect(false).SetConnectTimeout(waitTimeout)
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		t.Fatalf("connect %s as %s (MQTT 3.1.1): %v", clientID, user, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return &v311{cli: c, name: clientID}
}

// publish publishes payload to topic at QoS 1 and waits for the PUBACK,
// which MQTT 3.1.1 sends whether the message was accepted or not.
func (c *v311) publish(t *testing.T, topic, payload string) {
	t.Helper()
	if tok := c.cli.Publish(topic, 1, false, payload); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		t.Fatalf("%s: publish to %s: %v", c.name, topic, tok.Error())
	}
}

// subscribe subscribes to filter at QoS 1 and returns the SUBACK's return
// code: the QoS granted, or 0x80 (failure).
func (c *v311) subscribe(t *testing.T, filter string) byte {
	t.Helper()
	tok := c.cli.Subscribe(filter, 1, nil)
	if !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		t.Fatalf("%s: subscribe to %s: %v", c.name, filter, tok.Error())
	}
	code, ok := tok.(*mqtt.SubscribeToken).Result()[filter]
	if !ok {
		t.Fatalf("%s: no SUBACK code for %s", c.name, filter)
	}
	return code
}

// within reports whether s contains every one of want.
func within(s string, want ...string) bool {
	for _, w := range want {
		if !strings.Contains(s, w) {
			return false
		}
	}
	return true
}
