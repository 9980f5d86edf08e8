package auth_test

// End-to-end tests of the users file's client_ids: a real broker with
// auth.file, MQTT 5 clients (paho.golang), MQTT 3.1.1 clients
// (paho.mqtt.golang, and Debian's mosquitto_pub) over TCP. A user whose
// password is right but whose client ID no pattern allows is refused with
// CONNACK 0x85 Client Identifier not valid in MQTT 5 (section 3.2.2.2)
// and 0x02 Identifier rejected in 3.1.1 (section 3.2.2.3).

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"golang.org/x/crypto/bcrypt"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/logtest"
	"github.com/vanemq/vanemq/core/mqtttest"
	"github.com/vanemq/vanemq/hooks/auth"
	"github.com/vanemq/vanemq/listeners/tcp"
)

// idLists are the client_ids lists of a users file, as YAML flow lists;
// "" leaves a list out.
type idLists struct{ def, alice, bob, carol string }

// idUsersFile returns a users file with alice/secret, bob/builder and
// carol/c, in that order, two lines each plus a line for a list, after
// the top-level list (the default) on line 1 when there is one.
func idUsersFile(t *testing.T, l idLists) string {
	t.Helper()
	var b strings.Builder
	if l.def != "" {
		b.WriteString("client_ids: " + l.def + "\n")
	}
	b.WriteString("users:\n")
	for _, u := range []struct{ name, pw, ids string }{{"alice", "secret", l.alice}, {"bob", "builder", l.bob}, {"carol", "c", l.carol}} {
		h, err := bcrypt.GenerateFromPassword([]byte(u.pw), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "  - username: %s\n    password: '%s'\n", u.name, h)
		if u.ids != "" {
			fmt.Fprintf(&b, "    client_ids: %s\n", u.ids)
		}
	}
	return b.String()
}

// idBroker is a broker with anonymous clients refused and auth.file.
type idBroker struct {
	addr    string
	users   string // the users file
	hook    *auth.File
	reloads chan error // each reload's result
	logs    logtest.Buffer
}

// startIDBroker starts an idBroker on the users file data, watched for
// changes, without failure_delay.
func startIDBroker(t *testing.T, data string) *idBroker {
	t.Helper()
	b := &idBroker{users: filepath.Join(t.TempDir(), "users.yaml"), reloads: make(chan error, 16)}
	writeRenamed(t, b.users, data)
	h, err := auth.NewFile(auth.FileOptions{Users: b.users, Logger: b.logs.Logger(slog.LevelDebug), Watch: true,
		OnReload: func(err error) { b.reloads <- err }, Guard: auth.GuardOptions{FailureDelay: -1}})
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
	b.hook = h
	b.addr = mqtttest.Serve(t, srv, tcp.New("tcp", "127.0.0.1:0"))
	return b
}

// v5Connack connects an MQTT 5 client and returns its CONNACK; a client
// that got in is disconnected at the test's end.
func v5Connack(t *testing.T, addr, clientID, user, password string) *paho.Connack {
	t.Helper()
	_, ca, err := dialV5(t, addr, clientID, user, password)
	if ca == nil {
		t.Fatalf("connect %q as %s: no CONNACK: %v", clientID, user, err)
	}
	if (err == nil) != (ca.ReasonCode == 0) {
		t.Errorf("connect %q as %s: error %v with CONNACK 0x%02x", clientID, user, err, ca.ReasonCode)
	}
	return ca
}

func TestE2EClientIDsV5(t *testing.T) {
	b := startIDBroker(t, idUsersFile(t, idLists{def: `["%u", "%u-*"]`, bob: `["sensor-*"]`, carol: `["%u", "vanemq-*"]`}))
	tests := []struct {
		name, id, user, password string
		want                     byte
	}{
		{"alice as bob: Client Identifier not valid", "bob", "alice", "secret", 0x85},
		{"alice as bob again, her password now cached", "bob", "alice", "secret", 0x85},
		{"alice as alice", "alice", "alice", "secret", 0x00},
		{"alice as alice-phone", "alice-phone", "alice", "secret", 0x00},
		{"alice as someone else's alice-x prefix", "xalice", "alice", "secret", 0x85},
		{"bob as bob: his own list replaces the default", "bob", "bob", "builder", 0x85},
		{"bob as sensor-7", "sensor-7", "bob", "builder", 0x00},
		// The password decides first: a wrong one is Bad User Name or
		// Password whatever the client ID, so a client without the
		// password learns nothing of the patterns.
		{"wrong password, bad client ID", "bob", "alice", "builder", 0x86},
		{"unknown user", "mallory", "mallory", "x", 0x86},
		// An empty client ID gets one from the broker before
		// authentication (vanemq-<24 hex digits>), and the patterns apply
		// to that one: only carol accepts it.
		{"alice with an empty client ID", "", "alice", "secret", 0x85},
		{"carol with an empty client ID", "", "carol", "c", 0x00},
		{"carol as carol", "carol", "carol", "c", 0x00},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ca := v5Connack(t, b.addr, tc.id, tc.user, tc.password)
			if ca.ReasonCode != tc.want {
				t.Errorf("CONNACK 0x%02x (%q), want 0x%02x (MQTT 5.0 section 3.2.2.2)", ca.ReasonCode, ca.Properties.ReasonString, tc.want)
			}
			if tc.id == "" && tc.want == 0 && !strings.HasPrefix(ca.Properties.AssignedClientID, "vanemq-") {
				t.Errorf("assigned client ID %q, want vanemq-...", ca.Properties.AssignedClientID)
			}
		})
	}
	log := b.logs.String()
	for _, want := range []string{
		`msg="auth.file: refused: the user may not use this client ID" client=bob username=alice rule="` + b.users + `:1 (client_ids)" client_ids="[%u %u-*]"`,
		`client=bob username=bob rule="` + b.users + `:7 (users[1].client_ids)" client_ids=[sensor-*]`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("the log lacks %q:\n%s", want, log)
		}
	}
	for _, pw := range []string{"secret", "builder"} {
		if strings.Contains(log, pw) {
			t.Errorf("the log holds the password %q:\n%s", pw, log)
		}
	}
}

func TestE2EClientIDsV311(t *testing.T) {
	addr := startIDBroker(t, idUsersFile(t, idLists{alice: `["%u-*"]`})).addr
	tests := []struct {
		name, id, user, password string
		want                     byte
	}{
		{"alice as alice-1", "alice-1", "alice", "secret", 0x00},
		{"alice as bob: identifier rejected", "bob", "alice", "secret", 0x02},
		{"alice with an empty client ID, assigned by the broker", "", "alice", "secret", 0x02},
		{"bob without a list: any client ID", "anything", "bob", "builder", 0x00},
		{"wrong password", "bob", "alice", "x", 0x04},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok, cli := dialV3(t, addr, tc.id, tc.user, tc.password)
			if got := tok.ReturnCode(); got != tc.want {
				t.Errorf("CONNACK return code 0x%02x, want 0x%02x (MQTT 3.1.1 section 3.2.2.3); err %v", got, tc.want, tok.Error())
			}
			if cli.IsConnectionOpen() != (tc.want == 0) {
				t.Errorf("connection open = %v after return code 0x%02x", cli.IsConnectionOpen(), tok.ReturnCode())
			}
		})
	}
}

// mosquitto_pub, a client other users have, reads the refusal as its own.
func TestE2EClientIDsMosquittoPub(t *testing.T) {
	if _, err := exec.LookPath("mosquitto_pub"); err != nil {
		t.Fatalf("mosquitto_pub not found in PATH (%v): run `make test`, which installs Debian's mosquitto-clients "+
			"(`make deps`), or `apt-get install -y mosquitto-clients`", err)
	}
	addr := startIDBroker(t, idUsersFile(t, idLists{def: `["%u"]`})).addr
	host, port, _ := strings.Cut(addr, ":")
	tests := []struct {
		version, id string
		want        string // in the output of a refusal; "" to succeed
	}{
		{"mqttv311", "alice", ""},
		{"mqttv311", "alice-2", "identifier rejected"},
		{"mqttv5", "alice", ""},
		{"mqttv5", "alice-2", "Client identifier not valid"},
	}
	for _, tc := range tests {
		t.Run(tc.version+" "+tc.id, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			out, err := exec.CommandContext(ctx, "mosquitto_pub", "-h", host, "-p", port, "-V", tc.version,
				"-i", tc.id, "-u", "alice", "-P", "secret", "-t", "t", "-m", "x").CombinedOutput()
			var exit *exec.ExitError
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("mosquitto_pub: %v\n%s", err, out)
			case tc.want != "" && !errors.As(err, &exit):
				t.Errorf("mosquitto_pub: %v, want it refused\n%s", err, out)
			case tc.want != "" && !strings.Contains(strings.ToLower(string(out)), strings.ToLower(tc.want)):
				t.Errorf("mosquitto_pub says %q, want %q", out, tc.want)
			}
		})
	}
}

// A changed client_ids list takes effect for the next CONNECT, without a
// restart.
func TestE2EClientIDsReload(t *testing.T) {
	b := startIDBroker(t, idUsersFile(t, idLists{alice: `["%u"]`}))
	if ca := v5Connack(t, b.addr, "alice-tablet", "alice", "secret"); ca.ReasonCode != 0x85 {
		t.Fatalf("before the reload: CONNACK 0x%02x, want 0x85", ca.ReasonCode)
	}
	steps := []struct {
		name          string
		lists         idLists
		allow, refuse []string // alice's client IDs
	}{
		{"alice's list widened", idLists{alice: `["%u", "%u-*"]`}, []string{"alice", "alice-tablet"}, nil},
		{"a default replaces no list", idLists{def: `["%u-*"]`}, []string{"alice-tablet"}, []string{"alice"}},
		{"no list at all", idLists{}, []string{"alice", "anything"}, nil},
		{"alice's own list again", idLists{alice: `["kiosk-*"]`}, []string{"kiosk-1"}, []string{"alice", "alice-tablet"}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			writeRenamed(t, b.users, idUsersFile(t, s.lists))
			// A reload may be reported more than once for one write, so
			// wait for the contents rather than for a report.
			mqtttest.Eventually(t, waitTimeout, "the users file reloaded", func() bool {
				u := b.hook.Users()
				for _, id := range s.allow {
					if !u.AllowsClientID("alice", id) {
						return false
					}
				}
				for _, id := range s.refuse {
					if u.AllowsClientID("alice", id) {
						return false
					}
				}
				return true
			})
			for _, id := range s.allow {
				if ca := v5Connack(t, b.addr, id, "alice", "secret"); ca.ReasonCode != 0 {
					t.Errorf("alice as %q: CONNACK 0x%02x, want 0x00", id, ca.ReasonCode)
				}
			}
			for _, id := range s.refuse {
				if ca := v5Connack(t, b.addr, id, "alice", "secret"); ca.ReasonCode != 0x85 {
					t.Errorf("alice as %q: CONNACK 0x%02x, want 0x85", id, ca.ReasonCode)
				}
			}
		})
	}
	t.Run("a bad pattern keeps the list in force", func(t *testing.T) {
		writeRenamed(t, b.users, idUsersFile(t, idLists{alice: `["%c"]`}))
		err := waitReloadFailed(t, b.reloads)
		if want := `users[0].client_ids[0]: "%c": '%' must start %u`; !strings.Contains(err.Error(), want) {
			t.Errorf("reload error %q, want it to contain %q", err, want)
		}
		if ca := v5Connack(t, b.addr, "kiosk-2", "alice", "secret"); ca.ReasonCode != 0 {
			t.Errorf("alice as kiosk-2: CONNACK 0x%02x, want 0x00 (the previous list)", ca.ReasonCode)
		}
	})
}

// writeRenamed writes data to path as editors and `vanemq passwd` do: a
// new file renamed over the old.
func writeRenamed(t *testing.T, path, data string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// waitReloadFailed waits for a failed reload and returns its error.
func waitReloadFailed(t *testing.T, ch <-chan error) error {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		select {
		case err := <-ch:
			if err != nil {
				return err
			}
		case <-deadline:
			t.Fatalf("no failed reload within %v", waitTimeout)
		}
	}
}
