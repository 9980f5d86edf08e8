package js

// End-to-end tests of the script functions with real MQTT 5 clients
// (paho.golang) over loopback TCP.

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/mqtttest"
	"github.com/vanemq/vanemq/core/packets"
)

// challengeMethod is the test's enhanced authentication method.
const challengeMethod = "TEST-CHALLENGE"

// challengeScript runs a challenge/response exchange: the client's first
// data is "hello", the script's challenge "nonce-ID" (with "-again" when
// re-authenticating), and the right answer "response-ID" (idem), which
// the script accepts with the data "ok" as bytes.
const challengeScript = `
"use strict";
function enhancedAuth(client, step) {
	if (step.method !== "` + challengeMethod + `") return; // no opinion: not ours
	var id = client.clientId + (step.reauth ? "-again" : "");
	if (step.data === "hello") return {continue: true, response: "nonce-" + id};
	if (step.data === "response-" + id) return {allow: true, response: new Uint8Array([0x6f, 0x6b])};
	return {allow: false, code: 0x87, reason: "wrong response"};
}`

// challenger answers the script's challenges: right unless wrong is set.
type challenger struct {
	wrong      bool
	mu         sync.Mutex
	challenges []string
}

func (a *challenger) Authenticate(in *paho.Auth) *paho.Auth {
	nonce := string(in.Properties.AuthData)
	a.mu.Lock()
	a.challenges = append(a.challenges, nonce)
	a.mu.Unlock()
	answer := "response-" + strings.TrimPrefix(nonce, "nonce-")
	if a.wrong {
		answer = "response-wrong"
	}
	return &paho.Auth{ReasonCode: byte(packets.ContinueAuthentication), Properties: &paho.AuthProperties{AuthMethod: challengeMethod, AuthData: []byte(answer)}}
}

func (*challenger) Authenticated() {}

// seen returns the challenges received so far.
func (a *challenger) seen() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.challenges...)
}

// dialAuth connects a paho.golang client that authenticates with method,
// starting with the data "hello".
func dialAuth(t *testing.T, addr, id, method string, a *challenger) (*paho.Client, *paho.Connack, error) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{Conn: conn, AuthHandler: a})
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	ca, err := c.Connect(ctx, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30,
		Properties: &paho.ConnectProperties{AuthMethod: method, AuthData: []byte("hello")}})
	if err != nil {
		_ = conn.Close()
		return nil, ca, err
	}
	t.Cleanup(func() { mqtttest.ClosePaho(c, nil) })
	return c, ca, nil
}

// enhancedAuth runs AUTH exchanges (MQTT 5 section 4.12): the server's
// challenge in AUTH 0x18 [MQTT-4.12.0-2], the client's answer in AUTH
// 0x18 [MQTT-4.12.0-3], CONNACK 0x00 with the method and the script's
// final data [MQTT-4.12.0-5], or a CONNACK refusal for a wrong answer
// [MQTT-4.12.0-4]; a method the script has no opinion on is 0x8C
// [MQTT-4.12.0-1]; re-authentication (AUTH 0x19) ends with AUTH 0x00 and
// the script's data (section 4.12.1) in a second round marked reauth. allow_anonymous is off and there
// is no authenticate: the exchange alone lets the client in.
func TestE2EEnhancedAuth(t *testing.T) {
	b := serve(t, challengeScript, core.Options{})

	a := &challenger{}
	c, ca, err := dialAuth(t, b.addr, "ea-1", challengeMethod, a)
	if err != nil {
		t.Fatalf("connect: %v (CONNACK %+v)", err, ca)
	}
	if ca.ReasonCode != 0 || ca.Properties == nil || ca.Properties.AuthMethod != challengeMethod || string(ca.Properties.AuthData) != "ok" {
		t.Errorf("CONNACK %#x %+v, want 0x00 with %s and the data \"ok\" [MQTT-4.12.0-5]", ca.ReasonCode, ca.Properties, challengeMethod)
	}
	if got := a.seen(); len(got) != 1 || got[0] != "nonce-ea-1" {
		t.Errorf("challenges %q, want [nonce-ea-1]", got)
	}

	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	ar, err := c.Authenticate(ctx, &paho.Auth{ReasonCode: byte(packets.ReAuthenticate),
		Properties: &paho.AuthProperties{AuthMethod: challengeMethod, AuthData: []byte("hello")}})
	// (paho's AuthResponse leaves out the AUTH's data.)
	if err != nil || !ar.Success || ar.ReasonCode != 0 {
		t.Errorf("re-authentication: %v %+v, want AUTH 0x00", err, ar)
	}
	if got := a.seen(); len(got) != 2 || got[1] != "nonce-ea-1-again" {
		t.Errorf("challenges %q, want the re-authentication's nonce-ea-1-again second", got)
	}

	_, ca, err = dialAuth(t, b.addr, "ea-2", challengeMethod, &challenger{wrong: true})
	if err == nil || ca == nil || ca.ReasonCode != byte(packets.NotAuthorized) {
		t.Errorf("a wrong answer: %v CONNACK %+v, want 0x87 [MQTT-4.12.0-4]", err, ca)
	}
	_, ca, err = dialAuth(t, b.addr, "ea-3", "OTHER", &challenger{})
	if err == nil || ca == nil || ca.ReasonCode != byte(packets.BadAuthenticationMethod) {
		t.Errorf("another method: %v CONNACK %+v, want 0x8C [MQTT-4.12.0-1]", err, ca)
	}
}

// connect sets a mountpoint: the tenant's topics live under it, unseen by
// the tenant; a bad policy value refuses the client (0x83) and logs why.
func TestE2EConnectPolicy(t *testing.T) {
	b := serve(t, `
"use strict";
function connect(client, policy) {
	if (client.username === "tenant") policy.mountpoint = "tenant-a/";
	if (client.username === "greedy") policy.maxInflight = 100000;
}`, core.Options{AllowAnonymous: true})
	watcher := b.mustConnect(t, "watcher", "ops", nil)
	watcher.subscribe(t, "tenant-a/#")
	tenant := b.mustConnect(t, "t-1", "tenant", nil)
	tenant.subscribe(t, "in/#")

	if code := tenant.publish(t, "out/1", "from the tenant", false); code != 0 {
		t.Fatalf("PUBACK %#x", code)
	}
	watcher.expect(t, "tenant-a/out/1", "from the tenant")
	if code := watcher.publish(t, "tenant-a/in/2", "to the tenant", false); code != 0 {
		t.Fatalf("PUBACK %#x", code)
	}
	tenant.expect(t, "in/2", "to the tenant")

	_, ca, err := b.connect(t, "g-1", "greedy", nil)
	if err == nil || ca == nil || ca.ReasonCode != byte(packets.ImplementationSpecificError) {
		t.Errorf("a bad policy value: %v CONNACK %+v, want 0x83", err, ca)
	}
	b.waitLog(t, `function=connect client=g-1 detail="" cause="TypeError: policy.maxInflight: 100000 is not an integer from 0 to 65535`)
}

// deliver rewrites one subscriber's copy, and drops another's: it gets
// the subscriber's client (its username here).
func TestE2EDeliver(t *testing.T) {
	b := serve(t, `
"use strict";
function deliver(client, msg) {
	if (client.clientId === "muted" && msg.topic.indexOf("secret/") === 0) return false;
	if (client.username === "shouter") return {payload: msg.payload.toUpperCase(), topic: "loud/" + msg.topic};
}`, core.Options{AllowAnonymous: true})
	loud := b.mustConnect(t, "loud", "shouter", nil)
	muted := b.mustConnect(t, "muted", "", nil)
	plain := b.mustConnect(t, "plain", "", nil)
	for _, c := range []*client{loud, muted, plain} {
		c.subscribe(t, "#")
	}
	pub := b.mustConnect(t, "pub", "", nil)
	pub.publish(t, "secret/1", "psst", false)
	pub.publish(t, "open/2", "hello", false)

	loud.expect(t, "loud/secret/1", "PSST")
	loud.expect(t, "loud/open/2", "HELLO")
	plain.expect(t, "secret/1", "psst")
	plain.expect(t, "open/2", "hello")
	muted.expect(t, "open/2", "hello") // secret/1 was dropped for it
}

// will rewrites a will before it is published, or suppresses it.
func TestE2EWill(t *testing.T) {
	b := serve(t, `
"use strict";
function will(client, msg) {
	if (msg.payload === "suppress") return false;
	return {topic: "wills/" + client.clientId, payload: msg.payload.toUpperCase(), properties: {contentType: "text/plain"}};
}`, core.Options{AllowAnonymous: true})
	watcher := b.mustConnect(t, "watcher", "", nil)
	watcher.subscribe(t, "#")
	withWill := func(payload string) *paho.Connect {
		return &paho.Connect{CleanStart: true, KeepAlive: 30, WillMessage: &paho.WillMessage{Topic: "will/x", Payload: []byte(payload), QoS: 1}}
	}
	quiet := b.mustConnect(t, "quiet", "", withWill("suppress"))
	loud := b.mustConnect(t, "loud", "", withWill("bye"))

	mqtttest.ClosePaho(quiet.Client, quiet.conn) // no DISCONNECT: the will is due
	b.waitLog(t, `msg="will suppressed by a hook" client=quiet topic=will/x`)
	mqtttest.ClosePaho(loud.Client, loud.conn)
	// Had quiet's will been published, it would have come first.
	m := watcher.expect(t, "wills/loud", "BYE")
	if m.Properties == nil || m.Properties.ContentType != "text/plain" {
		t.Errorf("the will's properties %+v, want the script's content type", m.Properties)
	}
}

// onStarted, onSysTick and onStopped run with the server, and the other
// notifications with a real client's session; the server closes the hook
// after onStopped.
func TestE2ENotifications(t *testing.T) {
	b := newBroker(t, `
"use strict";
function onStarted() { log.info("started"); }
function onStopped() { log.info("stopped"); }
function onSysTick(st) { if (st.clientsConnected > 0) log.info("tick", st.clientsConnected, st.subscriptions); }
function onSession(c, change) { log.info("session", c.clientId, change); }
function onSubscribed(c, s) { log.info("subscribed", c.clientId, s.filter, s.qos); }
function onUnsubscribed(c, s) { log.info("unsubscribed", c.clientId, s.filter); }
function onPublished(c, m) { log.info("published", c.clientId, m.topic, m.payload); }
function onAcked(id, m) { log.info("acked", id, m.topic); }
function onRetained(m) { log.info("retained", m.topic, m.payload); }
function onDisconnected(c, r) { log.info("disconnected", c.clientId, r.code); }
`, core.Options{AllowAnonymous: true, SysInterval: 20 * time.Millisecond})
	l := tcpListener()
	if err := b.srv.AddListener(l); err != nil {
		t.Fatal(err)
	}
	if err := b.srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	b.addr = l.Address()
	b.waitLog(t, `msg=started`)

	c := b.mustConnect(t, "n-1", "", nil)
	c.subscribe(t, "n/#")
	c.publish(t, "n/1", "kept", true)
	c.expect(t, "n/1", "kept")
	b.waitLog(t, `msg="tick 1 1"`)
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	if _, err := c.Unsubscribe(ctx, &paho.Unsubscribe{Topics: []string{"n/#"}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Disconnect(&paho.Disconnect{}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`msg="session n-1 created"`, `msg="subscribed n-1 n/# 1"`, `msg="published n-1 n/1 kept"`, `msg="retained n/1 kept"`,
		`msg="acked n-1 n/1"`, `msg="unsubscribed n-1 n/#"`, `msg="disconnected n-1 0"`,
	} {
		b.waitLog(t, want)
	}

	sctx, scancel := context.WithTimeout(context.Background(), waitTimeout)
	defer scancel()
	if err := b.srv.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	b.waitLog(t, `msg=stopped`)
	if !b.hook.closed.Load() {
		t.Error("the server did not close the hook after OnStopped")
	}
	if n := b.hook.Failures(); n != 0 {
		t.Errorf("%d failed calls", n)
	}
}
