package vanemqcmd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// waitTimeout bounds every wait in these tests, so that a broken broker
// fails a test instead of hanging it.
const waitTimeout = 20 * time.Second

// logLines is an io.Writer that collects log output line by line and
// announces each address the broker logs as listening on. It is safe for
// concurrent use.
type logLines struct {
	mu    sync.Mutex
	buf   bytes.Buffer // the incomplete last line
	lines []string
	addrs chan string
}

func newLogLines() *logLines { return &logLines{addrs: make(chan string, 16)} }

// listeningRE picks the address out of the text handler's "listening" line.
var listeningRE = regexp.MustCompile(`\bmsg=listening\b.*\baddress=(\S+)`)

// Write collects p, line by line.
func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	for {
		line, err := l.buf.ReadString('\n')
		if err != nil { // no newline yet: keep the fragment
			l.buf.Reset()
			l.buf.WriteString(line)
			return len(p), nil
		}
		line = strings.TrimSuffix(line, "\n")
		l.lines = append(l.lines, line)
		if m := listeningRE.FindStringSubmatch(line); m != nil {
			select {
			case l.addrs <- m[1]:
			default:
			}
		}
	}
}

// String returns everything written so far.
func (l *logLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n") + "\n" + l.buf.String()
}

// writeConfig writes a config file into a temporary directory and returns
// its path.
func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "vanemq.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// loopbackConfig is a configuration with one TCP listener on a free
// loopback port that lets anonymous clients connect.
const loopbackConfig = `allow_anonymous: true
listeners:
  - {id: tcp, type: tcp, address: "127.0.0.1:0"}
log:
  level: info
  format: text
`

// connectV5 is an MQTT 5 CONNECT: clean start, keep alive 60 s, no
// properties, client id "e2e".
var connectV5 = []byte{
	0x10, 16, // CONNECT, remaining length
	0, 4, 'M', 'Q', 'T', 'T', 5, // protocol name and level
	0x02,  // connect flags: clean start
	0, 60, // keep alive
	0,                   // properties length
	0, 3, 'e', '2', 'e', // client id
}

// readPacket reads one MQTT control packet: the first byte of the fixed
// header and the body.
func readPacket(r *bufio.Reader) (byte, []byte, error) {
	first, err := r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	var length, shift int
	for i := 0; ; i++ {
		b, err := r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		length |= int(b&0x7F) << shift
		if b&0x80 == 0 {
			break
		}
		if shift += 7; i == 3 {
			return 0, nil, errors.New("malformed remaining length")
		}
	}
	body := make([]byte, length)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, err
	}
	return first, body, nil
}

// connectClient opens a TCP connection to addr, sends an MQTT 5 CONNECT and
// checks that the broker accepts it.
func connectClient(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(waitTimeout))
	if _, err := conn.Write(connectV5); err != nil {
		t.Fatalf("write CONNECT: %v", err)
	}
	r := bufio.NewReader(conn)
	first, body, err := readPacket(r)
	if err != nil {
		t.Fatalf("read CONNACK: %v", err)
	}
	if first != 0x20 || len(body) < 2 || body[1] != 0x00 {
		t.Fatalf("got packet %#x %x, want CONNACK with reason 0 (success)", first, body)
	}
	return conn, r
}

// expectShutdownDisconnect reads the next packet and checks that it is a
// DISCONNECT with reason 0x8B (server shutting down), followed by the end
// of the connection.
func expectShutdownDisconnect(t *testing.T, conn net.Conn, r *bufio.Reader) {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(waitTimeout))
	first, body, err := readPacket(r)
	if err != nil {
		t.Fatalf("read DISCONNECT: %v", err)
	}
	if first != 0xE0 || len(body) < 1 || body[0] != 0x8B {
		t.Fatalf("got packet %#x %x, want DISCONNECT with reason 0x8B (server shutting down)", first, body)
	}
	if _, _, err := readPacket(r); !errors.Is(err, io.EOF) {
		t.Errorf("after DISCONNECT: %v, want the connection closed", err)
	}
}

func TestRunUsage(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
	}{
		{"help", []string{"--help"}, 0, "Usage: vanemq [--config FILE]"},
		{"unknown flag", []string{"--verbose"}, 2, "flag provided but not defined: -verbose"},
		{"extra argument", []string{"vanemq.yaml"}, 2, `vanemq: unexpected argument "vanemq.yaml"`},
		{"missing config file", []string{"--config", "/nonexistent/vanemq.yaml"}, 1,
			"vanemq: read config: open /nonexistent/vanemq.yaml: no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			code := run(t.Context(), tt.args, &out)
			if code != tt.wantCode || !strings.Contains(out.String(), tt.wantOut) {
				t.Errorf("run(%q) = %d, output:\n%s\nwant %d and output containing %q", tt.args, code, out.String(), tt.wantCode, tt.wantOut)
			}
		})
	}
}

func TestRunBadConfig(t *testing.T) {
	path := writeConfig(t, "mqtt:\n  max_pakcet_size: 10\n  receive_maximum: lots\n")
	for _, flag := range []string{"--config", "-config", "--config=", "-config="} {
		t.Run(flag, func(t *testing.T) {
			args := []string{flag, path}
			if strings.HasSuffix(flag, "=") {
				args = []string{flag + path}
			}
			var out bytes.Buffer
			if code := run(t.Context(), args, &out); code != 1 {
				t.Errorf("exit status %d, want 1", code)
			}
			want := path + ":2: mqtt.max_pakcet_size: unknown key (did you mean max_packet_size?)\n" +
				path + `:3: mqtt.receive_maximum: cannot use "lots" as an integer` + "\n"
			if out.String() != want {
				t.Errorf("output:\n%s\nwant:\n%s", out.String(), want)
			}
		})
	}
}

// TestRunAddressInUse needs the core engine: AddListener must bind.
func TestRunAddressInUse(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	path := writeConfig(t, fmt.Sprintf("listeners:\n  - {id: mine, type: tcp, address: %q}\n", taken.Addr()))
	var out bytes.Buffer
	if code := run(t.Context(), []string{"--config", path}, &out); code != 1 {
		t.Errorf("exit status %d, want 1", code)
	}
	// The error names the listener and the address, and says why.
	want := regexp.MustCompile(`(?m)^vanemq: .*\bmine\b.*` + regexp.QuoteMeta(taken.Addr().String()) + `.*address already in use$`)
	if !want.MatchString(out.String()) {
		t.Errorf("output:\n%s\nwant a line matching %s", out.String(), want)
	}
}

// TestRunShutdown runs the broker in this process, connects an MQTT 5
// client and cancels the context as a signal would. It needs the core
// engine.
func TestRunShutdown(t *testing.T) {
	path := writeConfig(t, loopbackConfig)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	logs := newLogLines()
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"--config", path}, logs) }()

	var addr string
	select {
	case addr = <-logs.addrs:
	case code := <-done:
		t.Fatalf("run returned %d before listening; log:\n%s", code, logs)
	case <-time.After(waitTimeout):
		t.Fatalf("no listening address logged; log:\n%s", logs)
	}
	conn, r := connectClient(t, addr)

	cancel()
	expectShutdownDisconnect(t, conn, r)
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("run = %d after shutdown, want 0; log:\n%s", code, logs)
		}
	case <-time.After(waitTimeout):
		t.Fatalf("run did not return after shutdown; log:\n%s", logs)
	}
	for _, want := range []string{"msg=\"starting vanemq\"", "msg=" + fmt.Sprintf("%q", loopbackHint), "msg=\"shutting down\"", "msg=stopped"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, logs)
		}
	}
}

func TestLoopbackOnly(t *testing.T) {
	tests := []struct {
		addrs []string
		want  bool
	}{
		{[]string{"127.0.0.1:1883"}, true},
		{[]string{"127.0.0.1:1883", "[::1]:1884", "localhost:1885"}, true},
		{[]string{"127.1.2.3:1883"}, true},
		{[]string{"0.0.0.0:1883"}, false},
		{[]string{"[::]:1883"}, false},
		{[]string{":1883"}, false},
		{[]string{"127.0.0.1:1883", "192.168.1.10:1883"}, false},
		{[]string{"broker.example:1883"}, false},
		{nil, false},
	}
	for _, tt := range tests {
		if got := loopbackOnly(tt.addrs); got != tt.want {
			t.Errorf("loopbackOnly(%q) = %v, want %v", tt.addrs, got, tt.want)
		}
	}
}

func TestNewLogger(t *testing.T) {
	var buf bytes.Buffer
	newLogger(&buf, logConfig{Level: defaultLog.Level, Format: "json"}).Debug("hidden")
	newLogger(&buf, logConfig{Level: defaultLog.Level, Format: "json"}).Info("shown", "k", 1)
	if got := buf.String(); !strings.HasPrefix(got, `{"time":`) || !strings.Contains(got, `"msg":"shown","k":1}`) || strings.Contains(got, "hidden") {
		t.Errorf("json logger wrote %q", got)
	}
	buf.Reset()
	newLogger(&buf, logConfig{Level: defaultLog.Level, Format: "text"}).Info("shown", "address", "127.0.0.1:1883")
	if got := buf.String(); !strings.Contains(got, "level=INFO msg=shown address=127.0.0.1:1883") {
		t.Errorf("text logger wrote %q", got)
	}
}
