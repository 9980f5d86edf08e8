package auth_test

// Authorization for the life of a connection (issue 17): read permission
// checked at delivery against the subscriber, revocation on reload, and
// sessions that belong to the identity that created them.

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"go.yaml.in/yaml/v3"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/logtest"
	"github.com/vanemq/vanemq/core/mqtttest"
	"github.com/vanemq/vanemq/core/packets"
	"github.com/vanemq/vanemq/hooks/auth"
	"github.com/vanemq/vanemq/hooks/storage"
)

// secretACL denies reading secret/# and allows everything else.
const secretACL = `rules:
  - {allow: false, action: subscribe, filter: "secret/#"}
  - {allow: true, action: both, filter: "#"}
`

// TestE2EReadCheckedAtDelivery: with "deny subscribe secret/#, allow #" a
// subscription to # (or +/a) is granted, and what it receives is filtered
// per message: public/a arrives, secret/a never does, retained messages
// sent on subscribe included (retained: MQTT 5.0 section 3.3.1.3, 3.1.1
// [MQTT-3.3.1-6]). A subscription to secret/# itself is refused.
func TestE2EReadCheckedAtDelivery(t *testing.T) {
	b := newLifeBroker(t, t.TempDir(), secretACL, core.Options{})
	publishAs(t, b.addr, "bob", "secret/r", 1, true, "retained secret")
	publishAs(t, b.addr, "bob", "public/r", 1, true, "retained public")

	alice := connectV5(t, b.addr, "alice-5", "alice", "secret")
	for _, f := range []string{"#", "+/a"} {
		if got := alice.subscribe(t, f); got != 0x01 {
			t.Fatalf("SUBACK for %q: 0x%02x, want 0x01 granted (some topic it matches is readable)", f, got)
		}
	}
	if got := alice.subscribe(t, "secret/#"); got != 0x87 {
		t.Errorf("SUBACK for secret/#: 0x%02x, want 0x87 Not authorized (MQTT 5.0 section 3.9.3)", got)
	}
	_, alice3 := dialV3(t, b.addr, "alice-3", "alice", "secret")
	msgs3 := make(chan mqtt.Message, 64)
	if tok := alice3.Subscribe("#", 1, func(_ mqtt.Client, m mqtt.Message) { msgs3 <- m }); !tok.WaitTimeout(waitTimeout) {
		t.Fatal("3.1.1: no SUBACK")
	}
	for _, qos := range []byte{0, 1} {
		publishAs(t, b.addr, "bob", "secret/a", qos, false, "secret")
		publishAs(t, b.addr, "bob", "public/a", qos, false, "public")
	}
	publishAs(t, b.addr, "bob", "marker", 1, false, "end")

	// alice's # and +/a both match public/a: one copy per matching
	// subscription is not promised, so the test counts topics.
	got := alice.before(t, "marker")
	for _, m := range got {
		if strings.HasPrefix(m, "secret/") {
			t.Errorf("MQTT 5 subscriber received %s, which it may not read", m)
		}
	}
	if !slices.ContainsFunc(got, func(m string) bool { return strings.HasPrefix(m, `public/r "retained public"`) }) ||
		!slices.ContainsFunc(got, func(m string) bool { return strings.HasPrefix(m, `public/a "public"`) }) {
		t.Errorf("MQTT 5 subscriber got %v, want the retained public/r and public/a", got)
	}
	got3 := slices.DeleteFunc(v3Before(t, msgs3, "marker"), func(m string) bool { return strings.HasPrefix(m, "sync/") })
	want3 := []string{`public/r "retained public"`, `public/a "public"`, `public/a "public"`}
	if !slices.Equal(got3, want3) {
		t.Errorf("MQTT 3.1.1 subscriber got %q, want %q", got3, want3)
	}
	if n := b.srv.Stats().DroppedBy[core.DropNotAuthorized]; n == 0 {
		t.Error("no delivery was counted as dropped for not_authorized")
	}
}

// TestE2EReadCheckedAtDeliveryMosquitto is the same check with Debian's
// mosquitto_sub and mosquitto_pub, in MQTT 5 and 3.1.1.
func TestE2EReadCheckedAtDeliveryMosquitto(t *testing.T) {
	for _, tool := range []string{"mosquitto_sub", "mosquitto_pub"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing (Debian package mosquitto-clients; `make test` installs it): %v", tool, err)
		}
	}
	b := newLifeBroker(t, t.TempDir(), secretACL, core.Options{})
	host, port := "127.0.0.1", b.addr[strings.LastIndexByte(b.addr, ':')+1:]
	for _, v := range []string{"mqttv5", "mqttv311"} {
		t.Run(v, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			id := "mosq-sub-" + v
			sub := exec.CommandContext(ctx, "mosquitto_sub", "-h", host, "-p", port, "-V", v, "-i", id,
				"-u", "alice", "-P", testUsers["alice"], "-t", "#", "-q", "1", "-C", "2", "-W", "15", "-F", "%t %p")
			var out strings.Builder
			sub.Stdout, sub.Stderr = &out, &out
			if err := sub.Start(); err != nil {
				t.Fatal(err)
			}
			mqtttest.Eventually(t, waitTimeout, "mosquitto_sub's subscription", func() bool {
				st, ok := b.srv.Client(id)
				return ok && st.Subscriptions == 1
			})
			for _, m := range [][2]string{{"secret/" + v, "no"}, {"public/" + v, "yes"}, {"secret/" + v + "/x", "no"}, {"public/" + v + "/end", "yes"}} {
				pub := exec.CommandContext(ctx, "mosquitto_pub", "-h", host, "-p", port, "-V", v, "-i", "mosq-pub-"+v,
					"-u", "bob", "-P", testUsers["bob"], "-t", m[0], "-q", "1", "-m", m[1])
				if o, err := pub.CombinedOutput(); err != nil {
					t.Fatalf("mosquitto_pub %s: %v\n%s", m[0], err, o)
				}
			}
			if err := sub.Wait(); err != nil {
				t.Fatalf("mosquitto_sub: %v\n%s", err, out.String())
			}
			want := "public/" + v + " yes\npublic/" + v + "/end yes\n"
			if out.String() != want {
				t.Errorf("mosquitto_sub printed %q, want %q", out.String(), want)
			}
		})
	}
}

// openACL lets everyone read and write everything.
const openACL = `rules:
  - {allow: true, action: both, filter: "#"}
`

// aliceLosesDataACL denies alice reading data/#; the rest stays open.
const aliceLosesDataACL = `rules:
  - {user: alice, allow: false, action: subscribe, filter: "data/#"}
  - {allow: true, action: both, filter: "#"}
`

// TestE2EReloadRevokesRead: after a reload that removes alice's right to
// read data/#, her live subscription delivers nothing more at QoS 0 or 1,
// the messages queued for her offline session are dropped, and bob, whose
// rights did not change, still receives.
func TestE2EReloadRevokesRead(t *testing.T) {
	b := newLifeBroker(t, t.TempDir(), openACL, core.Options{})
	live := connectV5(t, b.addr, "alice-live", "alice", "secret")
	bob := connectV5(t, b.addr, "bob-live", "bob", "builder")
	for _, c := range []*v5{live, bob} {
		for _, f := range []string{"data/#", "marker"} {
			if got := c.subscribe(t, f); got != 0x01 {
				t.Fatalf("SUBACK for %q: 0x%02x", f, got)
			}
		}
	}
	off, _ := mustSession(t, b.addr, "alice-off", "alice", true)
	for _, f := range []string{"data/#", "marker"} {
		if got := off.subscribe(t, f); got != 0x01 {
			t.Fatalf("SUBACK for %q: 0x%02x", f, got)
		}
	}
	off.leave(t, b.srv, "alice-off")
	// Queued for the offline session, and seen by the live ones, before
	// the reload.
	publishAs(t, b.addr, "carol", "data/x", 1, false, "before")
	publishAs(t, b.addr, "carol", "marker", 1, false, "m1")
	if got := live.before(t, "marker"); len(got) != 1 {
		t.Fatalf("before the reload alice received %v, want data/x", got)
	}
	if got := bob.before(t, "marker"); len(got) != 1 {
		t.Fatalf("before the reload bob received %v, want data/x", got)
	}
	if st, _ := b.srv.Client("alice-off"); st.Queued != 2 {
		t.Fatalf("alice-off has %d messages queued, want 2", st.Queued)
	}

	b.writeACL(aliceLosesDataACL)
	b.reload()

	for _, qos := range []byte{0, 1} {
		publishAs(t, b.addr, "carol", "data/x", qos, false, "after")
	}
	publishAs(t, b.addr, "carol", "marker", 1, false, "m2")
	if got := live.before(t, "marker"); len(got) != 0 {
		t.Errorf("after the reload alice's live subscription still delivered %v", got)
	}
	if got := bob.before(t, "marker"); len(got) != 2 {
		t.Errorf("after the reload bob received %v, want data/x at QoS 0 and 1", got)
	}
	off, ca := mustSession(t, b.addr, "alice-off", "alice", false)
	if !ca.SessionPresent {
		t.Fatal("alice-off's session is gone")
	}
	got := off.before(t, "marker")
	if slices.ContainsFunc(got, func(m string) bool { return strings.HasPrefix(m, "data/") }) {
		t.Errorf("alice's stored session delivered %v after the reload", got)
	}
}

// TestE2EReloadDisconnectsRemovedUsers: a user removed from the users
// file, whose password changed, or connected with a client ID its new
// client_ids list does not allow, is disconnected with Not authorized
// (MQTT 5.0 section 3.14.2.1, 0x87) when the file is reloaded; the others
// stay connected.
func TestE2EReloadDisconnectsRemovedUsers(t *testing.T) {
	b := newLifeBroker(t, t.TempDir(), openACL, core.Options{})
	alice := rawAs(t, b.addr, "alice-raw", "alice")
	bob := rawAs(t, b.addr, "bob-raw", "bob")
	carol := rawAs(t, b.addr, "carol-raw", "carol")
	alice2 := rawAs(t, b.addr, "alice-2", "alice")

	b.writeUsers("alice|client_ids: [alice-raw]", "carol=changed")
	b.reload()
	if got := disconnectReason(t, alice2); got != packets.NotAuthorized {
		t.Errorf("a client ID the user's client_ids no longer allow: DISCONNECT %s, want Not authorized", got)
	}
	if got := disconnectReason(t, bob); got != packets.NotAuthorized {
		t.Errorf("removed user: DISCONNECT %s, want Not authorized", got)
	}
	if got := disconnectReason(t, carol); got != packets.NotAuthorized {
		t.Errorf("changed password: DISCONNECT %s, want Not authorized", got)
	}
	alice.Send(&packets.Packet{Type: packets.Pingreq})
	alice.Flush()
	if p := alice.Read(waitTimeout); p == nil || p.Type != packets.Pingresp {
		t.Errorf("alice, unchanged, got %v to a PINGREQ, want PINGRESP", p)
	}
	if _, ca, err := dialV5(t, b.addr, "bob-again", "bob", "builder"); err == nil || ca == nil || ca.ReasonCode != 0x86 {
		t.Errorf("the removed user connecting again: %v %+v, want CONNACK 0x86", err, ca)
	}
}

// TestE2ESessionBelongsToItsIdentity: bob connecting with alice's client
// ID and clean start off gets neither her queued messages nor her
// subscriptions (foreign_session: discard), in MQTT 5 and 3.1.1; with
// foreign_session: refuse he is refused with Not authorized (0x87; 3.1.1
// 0x05) and her session is untouched.
func TestE2ESessionBelongsToItsIdentity(t *testing.T) {
	t.Run("v5 discard", func(t *testing.T) {
		b := newLifeBroker(t, t.TempDir(), openACL, core.Options{})
		alice, _ := mustSession(t, b.addr, "shared-id", "alice", true)
		if got := alice.subscribe(t, "inbox/#"); got != 0x01 {
			t.Fatalf("SUBACK 0x%02x", got)
		}
		alice.leave(t, b.srv, "shared-id")
		publishAs(t, b.addr, "carol", "inbox/for-alice", 1, false, "private")

		bob, ca := mustSession(t, b.addr, "shared-id", "bob", false)
		if ca.SessionPresent {
			t.Error("bob was told alice's session is present [MQTT-3.2.2-2 applies to the client's own session only]")
		}
		if got := bob.subscribe(t, "marker"); got != 0x01 {
			t.Fatalf("SUBACK 0x%02x", got)
		}
		publishAs(t, b.addr, "carol", "inbox/later", 1, false, "also private")
		publishAs(t, b.addr, "carol", "marker", 1, false, "end")
		if got := bob.before(t, "marker"); len(got) != 0 {
			t.Errorf("bob received alice's messages or kept her subscription: %v", got)
		}
	})
	t.Run("v311 discard", func(t *testing.T) {
		b := newLifeBroker(t, t.TempDir(), openACL, core.Options{})
		_, alice, _ := dialV3Session(t, b.addr, "shared-3", "alice")
		if tok := alice.Subscribe("inbox/#", 1, nil); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
			t.Fatal("subscribe")
		}
		alice.Disconnect(100)
		mqtttest.Eventually(t, waitTimeout, "alice to be offline", func() bool {
			st, ok := b.srv.Client("shared-3")
			return ok && !st.Connected
		})
		publishAs(t, b.addr, "carol", "inbox/for-alice", 1, false, "private")
		tok, bob, msgs := dialV3Session(t, b.addr, "shared-3", "bob")
		if tok.ReturnCode() != 0 || tok.SessionPresent() {
			t.Errorf("bob: CONNACK %d, session present %v; want 0, false", tok.ReturnCode(), tok.SessionPresent())
		}
		if st := bob.Subscribe("marker", 1, nil); !st.WaitTimeout(waitTimeout) {
			t.Fatal("subscribe")
		}
		publishAs(t, b.addr, "carol", "inbox/later", 1, false, "also private")
		publishAs(t, b.addr, "carol", "marker", 1, false, "end")
		if got := v3Before(t, msgs, "marker"); len(got) != 0 {
			t.Errorf("bob received alice's messages or kept her subscription: %v", got)
		}
	})
	t.Run("refuse", func(t *testing.T) {
		b := newLifeBroker(t, t.TempDir(), openACL, core.Options{ForeignSession: core.ForeignSessionRefuse})
		alice, _ := mustSession(t, b.addr, "owned-id", "alice", true)
		if got := alice.subscribe(t, "inbox/#"); got != 0x01 {
			t.Fatalf("SUBACK 0x%02x", got)
		}
		// While alice is connected: bob cannot take her connection over.
		if _, ca, err := dialSession(t, b.addr, "owned-id", "bob", true); err == nil || ca == nil || ca.ReasonCode != 0x87 {
			t.Errorf("bob, alice online: %v %+v, want CONNACK 0x87", err, ca)
		}
		if st, _ := b.srv.Client("owned-id"); !st.Connected {
			t.Fatal("alice was disconnected by bob's refused CONNECT")
		}
		alice.leave(t, b.srv, "owned-id")
		publishAs(t, b.addr, "carol", "inbox/for-alice", 1, false, "private")
		if _, ca, err := dialSession(t, b.addr, "owned-id", "bob", false); err == nil || ca == nil || ca.ReasonCode != 0x87 {
			t.Errorf("bob, alice offline: %v %+v, want CONNACK 0x87", err, ca)
		}
		tok, _, _ := dialV3Session(t, b.addr, "owned-id", "bob")
		if tok.ReturnCode() != 0x05 {
			t.Errorf("bob over 3.1.1: CONNACK return code 0x%02x, want 0x05 not authorized (MQTT 3.1.1 table 3.1)", tok.ReturnCode())
		}
		alice, ca := mustSession(t, b.addr, "owned-id", "alice", false)
		if !ca.SessionPresent {
			t.Fatal("alice's session did not survive bob's attempts")
		}
		publishAs(t, b.addr, "carol", "inbox/marker", 1, false, "end")
		if got := alice.before(t, "inbox/marker"); len(got) != 1 || !strings.HasPrefix(got[0], "inbox/for-alice") {
			t.Errorf("alice got %v, want her queued inbox/for-alice", got)
		}
	})
}

// TestE2ERestoredSessionsChecked: a session restored from storage keeps
// its owner (another identity cannot resume it) and is checked with the
// rules in force at start, not trusted as stored: a message queued for
// alice before a restart, on a topic the new ACL denies her, is dropped.
func TestE2ERestoredSessionsChecked(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	run := func(acl string) (*lifeBroker, func()) {
		st, err := storage.Open(context.Background(), storage.Config{Path: data})
		if err != nil {
			t.Fatal(err)
		}
		b := newLifeBroker(t, dir, acl, core.Options{}, st)
		return b, func() {
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			if err := b.srv.Shutdown(ctx); err != nil {
				t.Errorf("Shutdown: %v", err)
			}
			if err := st.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		}
	}
	b, stop := run(openACL)
	for _, id := range []string{"alice-stored", "alice-owned"} {
		c, _ := mustSession(t, b.addr, id, "alice", true)
		for _, f := range []string{"data/#", "marker"} {
			if got := c.subscribe(t, f); got != 0x01 {
				t.Fatalf("SUBACK 0x%02x", got)
			}
		}
		c.leave(t, b.srv, id)
	}
	publishAs(t, b.addr, "carol", "data/queued", 1, false, "before the restart")
	stop()

	b, stop = run(aliceLosesDataACL)
	defer stop()
	if _, ca, err := dialSession(t, b.addr, "alice-owned", "bob", false); err != nil || ca.SessionPresent {
		t.Errorf("bob resuming alice's restored session: %v, session present %v; want a clean session", err, ca != nil && ca.SessionPresent)
	}
	alice, ca := mustSession(t, b.addr, "alice-stored", "alice", false)
	if !ca.SessionPresent {
		t.Fatal("alice's stored session was not restored")
	}
	publishAs(t, b.addr, "carol", "marker", 1, false, "end")
	if got := alice.before(t, "marker"); len(got) != 0 {
		t.Errorf("alice's restored session delivered %v, which the ACL in force denies her", got)
	}
}

// TestE2EFileChangeRevokesThroughModule: auth.file made from its config
// block, as the vanemq binary makes it, watches its files and has the
// server: rewriting the ACL on disk is reloaded (logged) and revokes a
// live subscription's reads without any call from the test.
func TestE2EFileChangeRevokesThroughModule(t *testing.T) {
	dir := t.TempDir()
	b := newLifeFiles(t, dir, openACL)
	var logs logtest.Buffer
	b.serve(core.Options{Logger: logs.Logger(slog.LevelInfo)}, func(srv *core.Server) (core.Hook, error) {
		m, ok := core.LookupHookModule(auth.FileID)
		if !ok {
			t.Fatal("auth.file is not registered")
		}
		return m.New(core.HookConfig{ID: auth.FileID, Dir: dir, Logger: logs.Logger(slog.LevelInfo), Server: srv,
			Decode: func(v any) error { return yaml.Unmarshal([]byte("{users: users.yaml, acl: acl.yaml}"), v) }})
	})

	alice := connectV5(t, b.addr, "alice-w", "alice", "secret")
	for _, f := range []string{"data/#", "marker"} {
		if got := alice.subscribe(t, f); got != 0x01 {
			t.Fatalf("SUBACK 0x%02x", got)
		}
	}
	publishAs(t, b.addr, "carol", "data/x", 1, false, "before")
	publishAs(t, b.addr, "carol", "marker", 1, false, "m1")
	if got := alice.before(t, "marker"); len(got) != 1 {
		t.Fatalf("before the change alice got %v", got)
	}
	start := time.Now()
	tmp := filepath.Join(dir, ".acl.yaml.tmp")
	if err := os.WriteFile(tmp, []byte(aliceLosesDataACL), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, b.acl); err != nil {
		t.Fatal(err)
	}
	mqtttest.Eventually(t, waitTimeout, "the reload to be logged", func() bool {
		return strings.Contains(logs.String(), `msg="auth.file: reloaded" trigger="file change"`)
	})
	t.Logf("the change was reloaded %s after the rename", time.Since(start).Round(time.Millisecond))
	publishAs(t, b.addr, "carol", "data/x", 1, false, "after")
	publishAs(t, b.addr, "carol", "marker", 1, false, "m2")
	if got := alice.before(t, "marker"); len(got) != 0 {
		t.Errorf("after the file changed alice still received %v", got)
	}
}
