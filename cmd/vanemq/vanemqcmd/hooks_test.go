package vanemqcmd

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// connectPacket is an MQTT 5 CONNECT with clean start, keep alive 60 s, no
// properties, the client id and, when not empty, a username and password.
func connectPacket(clientID, username, password string) []byte {
	flags := byte(0x02) // clean start
	body := []byte{0, 4, 'M', 'Q', 'T', 'T', 5, 0, 0, 60, 0}
	body = append(body, 0, byte(len(clientID)))
	body = append(body, clientID...)
	if username != "" {
		flags |= 0x80
		body = append(body, 0, byte(len(username)))
		body = append(body, username...)
	}
	if password != "" {
		flags |= 0x40
		body = append(body, 0, byte(len(password)))
		body = append(body, password...)
	}
	body[7] = flags
	return append([]byte{0x10, byte(len(body))}, body...)
}

// connackCode connects to addr with a CONNECT for username and returns the
// CONNACK's reason code.
func connackCode(t *testing.T, addr, username string) byte {
	t.Helper()
	return connackCodePassword(t, addr, username, "")
}

// connackCodePassword is connackCode with a password.
func connackCodePassword(t *testing.T, addr, username, password string) byte {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(waitTimeout))
	if _, err := conn.Write(connectPacket("c-"+username, username, password)); err != nil {
		t.Fatalf("write CONNECT: %v", err)
	}
	first, body, err := readPacket(bufio.NewReader(conn))
	if err != nil {
		t.Fatalf("read CONNACK: %v", err)
	}
	if first != 0x20 || len(body) < 2 {
		t.Fatalf("got packet %#x %x, want CONNACK", first, body)
	}
	return body[1]
}

// runBroker runs the broker in this process with the config, waits until
// it listens and returns its address and logs. It is shut down when the
// test ends.
func runBroker(t *testing.T, config string) (string, *logLines) {
	t.Helper()
	path := writeConfig(t, config)
	ctx, cancel := context.WithCancel(t.Context())
	logs := newLogLines()
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"--config", path}, logs) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(waitTimeout):
			t.Errorf("run did not return after shutdown; log:\n%s", logs)
		}
	})
	select {
	case addr := <-logs.addrs:
		return addr, logs
	case code := <-done:
		t.Fatalf("run returned %d before listening; log:\n%s", code, logs)
	case <-time.After(waitTimeout):
		t.Fatalf("no listening address logged; log:\n%s", logs)
	}
	return "", nil
}

// waitLog reports whether the log comes to contain s within waitTimeout.
func waitLog(logs *logLines, s string) bool {
	deadline := time.Now().Add(waitTimeout)
	for !strings.Contains(logs.String(), s) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// TestRunAllowAnonymous runs the broker with and without allow_anonymous
// and an authenticating hook, and checks who may connect.
func TestRunAllowAnonymous(t *testing.T) {
	const listener = "listeners:\n  - {id: tcp, type: tcp, address: \"127.0.0.1:0\"}\n"
	const hook = "hooks:\n  - {id: test.hook, config: {users: [alice]}}\n"
	tests := []struct {
		name       string
		config     string
		anonymous  byte // CONNACK code for a client without a username
		alice, bob byte // and for the usernames alice and bob
		warning    string
	}{
		{"no key, no hooks", listener, 0x87, 0x87, 0x87, "allow_anonymous is false and no hook authenticates clients"},
		{"allowed, no hooks", "allow_anonymous: true\n" + listener, 0, 0, 0, ""},
		{"denied, a hook", listener + hook, 0x87, 0, 0x87, ""},
		{"allowed, a hook", "allow_anonymous: true\n" + listener + hook, 0, 0, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, logs := runBroker(t, tt.config)
			for _, c := range []struct {
				user string
				want byte
			}{{"", tt.anonymous}, {"alice", tt.alice}, {"bob", tt.bob}} {
				if got := connackCode(t, addr, c.user); got != c.want {
					t.Errorf("user %q: CONNACK %#x, want %#x", c.user, got, c.want)
				}
			}
			// The warning follows the "listening" line.
			if tt.warning != "" && !waitLog(logs, tt.warning) {
				t.Errorf("log lacks %q:\n%s", tt.warning, logs)
			}
			if strings.Contains(tt.config, "test.hook") && !strings.Contains(logs.String(), "msg=\"hook added\" id=test.hook priority=0 events=authenticate") {
				t.Errorf("log lacks the added hook:\n%s", logs)
			}
		})
	}
}

// TestRunAuthFile runs the broker with the built-in auth.file hook, its
// users file named relative to the config file, which lives elsewhere
// than the working directory.
func TestRunAuthFile(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	config := writeConfig(t, `listeners:
  - {id: tcp, type: tcp, address: "127.0.0.1:0"}
hooks:
  - {id: auth.file, priority: 100, config: {users: users.yaml}}
`)
	users := fmt.Sprintf("users:\n  - {username: alice, password: %q}\n", hash)
	if err := os.WriteFile(filepath.Join(filepath.Dir(config), "users.yaml"), []byte(users), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	logs := newLogLines()
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"--config", config}, logs) }()
	var addr string
	select {
	case addr = <-logs.addrs:
	case code := <-done:
		t.Fatalf("run returned %d before listening; log:\n%s", code, logs)
	case <-time.After(waitTimeout):
		t.Fatalf("no listening address logged; log:\n%s", logs)
	}
	for _, c := range []struct {
		user, password string
		want           byte
	}{{"alice", "s3cret", 0}, {"alice", "wrong", 0x86}, {"bob", "s3cret", 0x86}, {"", "", 0x87}} {
		if got := connackCodePassword(t, addr, c.user, c.password); got != c.want {
			t.Errorf("%q/%q: CONNACK %#x, want %#x", c.user, c.password, got, c.want)
		}
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("run = %d, want 0; log:\n%s", code, logs)
		}
	case <-time.After(waitTimeout):
		t.Fatalf("run did not return; log:\n%s", logs)
	}
	if strings.Contains(logs.String(), "s3cret") {
		t.Errorf("the log shows a password:\n%s", logs)
	}
}

// TestRunAuthFileMissing checks that auth.file's start-up error names
// the config entry and the users file.
func TestRunAuthFileMissing(t *testing.T) {
	config := writeConfig(t, "hooks:\n  - {id: auth.file, config: {users: nowhere.yaml}}\n")
	var out bytes.Buffer
	if code := run(t.Context(), []string{"--config", config}, &out); code != 1 {
		t.Errorf("exit status %d, want 1", code)
	}
	want := config + ":2: hooks[0]: " + filepath.Join(filepath.Dir(config), "nowhere.yaml")
	if !strings.Contains("\n"+out.String(), "\n"+want) {
		t.Errorf("output:\n%s\nwant a line starting %s", out.String(), want)
	}
}

// TestRunHookOrder checks that the hooks are added with their priorities,
// higher first and ties in ID order.
func TestRunHookOrder(t *testing.T) {
	_, logs := runBroker(t, `allow_anonymous: true
listeners:
  - {id: tcp, type: tcp, address: "127.0.0.1:0"}
hooks:
  - {id: test.other}
  - {id: test.noconfig, priority: -1}
  - {id: test.hook}
`)
	var order []string
	for _, line := range strings.Split(logs.String(), "\n") {
		if _, rest, ok := strings.Cut(line, `msg="hook added" id=`); ok {
			id, _, _ := strings.Cut(rest, " ")
			order = append(order, id)
		}
	}
	if got, want := strings.Join(order, ","), "test.hook,test.other,test.noconfig"; got != want {
		t.Errorf("hooks added in order %s, want %s", got, want)
	}
}

// TestRunHookErrors checks that a hook that cannot be built stops
// start-up with exit status 1 and one FILE:LINE: KEY: MESSAGE line per
// problem.
func TestRunHookErrors(t *testing.T) {
	tests := []struct {
		name   string
		config string
		want   []string // lines after the file name
	}{
		{"bad config key", "hooks:\n  - id: test.hook\n    config:\n      userz: [alice]\n",
			[]string{":4: hooks[0].config.userz: unknown key"}},
		{"New fails and a bad type", "hooks:\n  - {id: test.hook, config: {fail: no users file}}\n  - {id: test.other, config: {max: many}}\n",
			[]string{":2: hooks[0]: no users file", `:3: hooks[1].config.max: cannot use "many" as an integer`}},
		{"invalid topic filter", "hooks:\n  - {id: test.badtopic}\n",
			[]string{`:2: hooks[0]: core: hook test.badtopic: topic filter "a/#/b": `}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeConfig(t, "listeners:\n  - {id: tcp, type: tcp, address: \"127.0.0.1:0\"}\n"+tt.config)
			var out bytes.Buffer
			if code := run(t.Context(), []string{"--config", path}, &out); code != 1 {
				t.Errorf("exit status %d, want 1; output:\n%s", code, out.String())
			}
			var lines []string
			for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
				if !strings.Contains(l, "level=") { // skip the logs
					lines = append(lines, l)
				}
			}
			if len(lines) != len(tt.want) {
				t.Fatalf("output:\n%s\nwant %d error lines", out.String(), len(tt.want))
			}
			for i, want := range tt.want {
				// The file's first two lines are the listener.
				want = path + shiftLine(want, 2)
				if !strings.HasPrefix(lines[i], want) {
					t.Errorf("line %d: %s\nwant it to start %s", i, lines[i], want)
				}
			}
			if strings.Contains(out.String(), "msg=listening") {
				t.Errorf("the broker listened despite the error:\n%s", out.String())
			}
		})
	}
}

// shiftLine adds n to the line number that starts s (":LINE: …").
func shiftLine(s string, n int) string {
	var line int
	var rest string
	if _, err := fmt.Sscanf(s, ":%d:", &line); err != nil {
		return s
	}
	_, rest, _ = strings.Cut(s[1:], ":")
	return fmt.Sprintf(":%d:%s", line+n, rest)
}
