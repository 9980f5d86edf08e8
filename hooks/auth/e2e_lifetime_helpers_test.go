package auth_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/crypto/bcrypt"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/mqtttest"
	"github.com/vanemq/vanemq/core/packets"
	"github.com/vanemq/vanemq/hooks/auth"
	"github.com/vanemq/vanemq/listeners/tcp"
)

// lifeBroker is a broker with auth.file whose files a test rewrites and
// reloads, to see what a reload does to the sessions already there.
type lifeBroker struct {
	t     *testing.T
	dir   string
	srv   *core.Server
	file  *auth.File
	addr  string
	users string // users file path
	acl   string // ACL file path
	// hashes are the users' bcrypt hashes, by "name=password".
	hashes map[string]string
}

// testUsers are the users of lifeBroker's users file, with passwords.
var testUsers = map[string]string{"alice": "secret", "bob": "builder", "carol": "chorus"}

// writeUsers writes the users file with the given users (names from
// testUsers, name=password to give one another password, and either
// followed by |more: keys to add to the entry). A user's
// hash is made once per password and kept in hashes, so that rewriting the
// file leaves the others' entries as they were (a new bcrypt hash of the
// same password is a changed entry, with a new salt).
func writeUsers(t *testing.T, path string, hashes map[string]string, names ...string) {
	t.Helper()
	var b strings.Builder
	b.WriteString("users:\n")
	for _, n := range names {
		n, extra, _ := strings.Cut(n, "|") // "alice|client_ids: [a]": more keys of the entry
		if extra != "" {
			extra = ", " + extra
		}
		pw := testUsers[n]
		if name, p, ok := strings.Cut(n, "="); ok {
			n, pw = name, p
		}
		h, ok := hashes[n+"="+pw]
		if !ok {
			hb, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
			if err != nil {
				t.Fatal(err)
			}
			h = string(hb)
			hashes[n+"="+pw] = h
		}
		fmt.Fprintf(&b, "  - {username: %s, password: '%s'%s}\n", n, h, extra)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

// writeUsers rewrites the broker's users file (Reload makes it take
// effect).
func (b *lifeBroker) writeUsers(names ...string) { writeUsers(b.t, b.users, b.hashes, names...) }

// newLifeBroker starts a broker with auth.file (every user of testUsers,
// the given ACL; reloads by Reload, not by watching), anonymous clients
// refused, and more hooks (a store, say). opts.Logger defaults to
// discarding.
func newLifeBroker(t *testing.T, dir, acl string, opts core.Options, more ...core.Hook) *lifeBroker {
	t.Helper()
	b := newLifeFiles(t, dir, acl)
	b.serve(opts, func(srv *core.Server) (core.Hook, error) {
		f, err := auth.NewFile(auth.FileOptions{Users: b.users, ACL: b.acl, Server: srv, Logger: srv.Options().Logger})
		b.file = f
		return f, err
	}, more...)
	return b
}

// newLifeFiles writes a lifeBroker's files in dir: the users of testUsers
// (unless a users file is there already) and acl, if not empty.
func newLifeFiles(t *testing.T, dir, acl string) *lifeBroker {
	t.Helper()
	b := &lifeBroker{t: t, dir: dir, users: filepath.Join(dir, "users.yaml"), acl: filepath.Join(dir, "acl.yaml"),
		hashes: make(map[string]string)}
	if _, err := os.Stat(b.users); err != nil {
		b.writeUsers("alice", "bob", "carol")
	}
	if acl != "" {
		b.writeACL(acl)
	}
	return b
}

// serve starts the broker with the auth hook build makes for it and more
// hooks after it.
func (b *lifeBroker) serve(opts core.Options, build func(*core.Server) (core.Hook, error), more ...core.Hook) {
	b.t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	opts.SysInterval = -1
	srv, err := core.New(opts)
	if err != nil {
		b.t.Fatal(err)
	}
	h, err := build(srv)
	if err != nil {
		b.t.Fatal(err)
	}
	if err := srv.AddHook(h, 100); err != nil {
		b.t.Fatal(err)
	}
	for _, h := range more {
		if err := srv.AddHook(h, 0); err != nil {
			b.t.Fatal(err)
		}
	}
	b.srv = srv
	b.addr = mqtttest.Serve(b.t, srv, tcp.New("tcp", "127.0.0.1:0"))
}

// writeACL replaces the ACL file (Reload makes it take effect).
func (b *lifeBroker) writeACL(acl string) {
	b.t.Helper()
	if err := os.WriteFile(b.acl, []byte(acl), 0o600); err != nil {
		b.t.Fatal(err)
	}
}

// reload reloads auth.file's files; the test fails when they are refused.
func (b *lifeBroker) reload() {
	b.t.Helper()
	if err := b.file.Reload(); err != nil {
		b.t.Fatalf("Reload: %v", err)
	}
}

// dialSession connects an MQTT 5 client as user with a session that
// outlives the connection (expiry 300 s) and returns it and the CONNACK.
func dialSession(t *testing.T, addr, clientID, user string, clean bool) (*v5, *paho.Connack, error) {
	t.Helper()
	expiry := uint32(300)
	cp := &paho.Connect{ClientID: clientID, CleanStart: clean, KeepAlive: 30,
		Username: user, UsernameFlag: true, Password: []byte(testUsers[user]), PasswordFlag: true,
		Properties: &paho.ConnectProperties{RequestProblemInfo: true, SessionExpiryInterval: &expiry}}
	c := &v5{msgs: make(chan *paho.Publish, 64)}
	cli, ca, err := mqtttest.ConnectPaho(t, addr, cp, func(p *paho.Publish) { c.msgs <- p })
	if err != nil {
		return nil, ca, err
	}
	c.cli = cli
	return c, ca, nil
}

// mustSession is dialSession for a connection the test needs.
func mustSession(t *testing.T, addr, clientID, user string, clean bool) (*v5, *paho.Connack) {
	t.Helper()
	c, ca, err := dialSession(t, addr, clientID, user, clean)
	if err != nil {
		t.Fatalf("connect %s as %s: %v (CONNACK %+v)", clientID, user, err, ca)
	}
	return c, ca
}

// leave disconnects the client normally and waits until the broker has
// let the connection go, so that what is published next is queued.
func (c *v5) leave(t *testing.T, srv *core.Server, clientID string) {
	t.Helper()
	_ = c.cli.Disconnect(&paho.Disconnect{ReasonCode: 0})
	mqtttest.Eventually(t, waitTimeout, clientID+" to be offline", func() bool {
		st, ok := srv.Client(clientID)
		return ok && !st.Connected
	})
}

// dialV3Session connects an MQTT 3.1.1 client with clean session off and
// returns its CONNACK token, the client and its messages.
func dialV3Session(t *testing.T, addr, clientID, user string) (*mqtt.ConnectToken, mqtt.Client, chan mqtt.Message) {
	t.Helper()
	msgs := make(chan mqtt.Message, 64)
	o := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(clientID).
		SetProtocolVersion(4).SetCleanSession(false).SetAutoReconnect(false).SetConnectRetry(false).
		SetConnectTimeout(waitTimeout).SetOrderMatters(true).
		SetUsername(user).SetPassword(testUsers[user]).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { msgs <- m })
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
	return tok.(*mqtt.ConnectToken), cli, msgs
}

// v3Before returns what a 3.1.1 client received before the marker topic.
func v3Before(t *testing.T, msgs chan mqtt.Message, marker string) []string {
	t.Helper()
	var got []string
	for {
		select {
		case m := <-msgs:
			if m.Topic() == marker {
				return got
			}
			got = append(got, fmt.Sprintf("%s %q", m.Topic(), m.Payload()))
		case <-time.After(waitTimeout):
			t.Fatalf("the marker on %s did not arrive (got %v)", marker, got)
		}
	}
}

// rawAs connects a raw MQTT 5 client as user (clean start), for reading
// the broker's DISCONNECT.
func rawAs(t *testing.T, addr, clientID, user string) *mqtttest.Conn {
	t.Helper()
	cp := &packets.Packet{}
	cp.Connect.ClientID, cp.Connect.CleanStart, cp.Connect.KeepAlive = clientID, true, 60
	cp.Connect.Username, cp.Connect.UsernameFlag = user, true
	cp.Connect.Password, cp.Connect.PasswordFlag = []byte(testUsers[user]), true
	return mqtttest.DialConnect(t, addr, cp)
}

// disconnectReason reads until the broker's DISCONNECT and returns its
// reason code; the test fails if the connection ends without one.
func disconnectReason(t *testing.T, c *mqtttest.Conn) packets.ReasonCode {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for time.Now().Before(deadline) {
		p := c.Read(time.Until(deadline))
		if p == nil {
			t.Fatal("the connection ended without a DISCONNECT")
		}
		if p.Type == packets.Disconnect {
			return p.ReasonCode
		}
	}
	t.Fatal("no DISCONNECT")
	return 0
}

// publishAs publishes one message at qos from a short-lived client of
// user and waits for its acknowledgement.
func publishAs(t *testing.T, addr, user, topic string, qos byte, retain bool, payload string) {
	t.Helper()
	c := connectV5(t, addr, fmt.Sprintf("pub-%s-%d", user, time.Now().UnixNano()), user, testUsers[user])
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	r, err := c.cli.Publish(ctx, &paho.Publish{Topic: topic, QoS: qos, Retain: retain, Payload: []byte(payload)})
	if err != nil || (qos > 0 && (r == nil || r.ReasonCode >= 0x80)) {
		t.Fatalf("%s: publish %s: %v %+v", user, topic, err, r)
	}
	if qos == 0 {
		// A QoS 0 PUBLISH has no acknowledgement: a QoS 1 one after it on
		// the same connection is acknowledged once the broker has routed
		// both, before the client goes.
		if r, err := c.cli.Publish(ctx, &paho.Publish{Topic: "sync/" + user, QoS: 1}); err != nil || r == nil {
			t.Fatalf("%s: publish sync/%s: %v", user, user, err)
		}
	}
	_ = c.cli.Disconnect(&paho.Disconnect{})
}
