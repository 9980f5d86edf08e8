package vanemqcmd

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// startRedis runs a redis-server without persistence on a free loopback
// port, with args, and returns its address; it is killed, by its PID, when
// the test ends. The test is skipped when redis-server is not installed
// (`make deps` installs it).
func startRedis(t *testing.T, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("redis-server is not installed; `make test` installs it (make deps)")
	}
	for range 3 { // another process may take the free port first
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		var out bytes.Buffer
		cmd := exec.Command(bin, append([]string{"--bind", "127.0.0.1", "--port", strconv.Itoa(port),
			"--save", "", "--appendonly", "no", "--dir", t.TempDir(), "--daemonize", "no"}, args...)...)
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatalf("start redis-server: %v", err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		t.Cleanup(func() {
			select {
			case <-exited:
			default:
				_ = cmd.Process.Kill()
				<-exited
			}
		})
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			select {
			case <-exited:
				deadline = time.Time{} // it could not bind: try another port
				continue
			default:
			}
			if redisAnswers(addr) {
				return addr
			}
		}
	}
	t.Fatal("redis-server did not start")
	return ""
}

// redisAnswers reports whether a Redis server answers PING at addr (an
// error reply such as NOAUTH counts).
func redisAnswers(addr string) bool {
	conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	return err == nil && (strings.HasPrefix(line, "+") || strings.HasPrefix(line, "-"))
}

// redisBroker is a config with a TCP listener on a free loopback port and
// the Redis store at addr.
func redisBroker(addr, password string) string {
	return fmt.Sprintf(`allow_anonymous: true
listeners:
  - {id: tcp, type: tcp, address: "127.0.0.1:0"}
mqtt: {sys_interval: 0}
storage:
  type: redis
  redis:
    address: %q
    password: %q
    db: 2
    prefix: cmdtest
    dial_timeout: 2s
`, addr, password)
}

// TestRunRedis runs the broker on a real redis-server: a retained message
// survives a restart of the broker, data check counts it, the start-up
// line names the server but never the password, and a wrong password
// stops start-up with an error naming the server.
func TestRunRedis(t *testing.T) {
	const password = "s3cret-redis-pass"
	addr := startRedis(t, "--requirepass", password)
	config := writeConfig(t, redisBroker(addr, password))

	runOnce := func(f func(addr string)) string {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		logs := newLogLines()
		done := make(chan int, 1)
		go func() { done <- run(ctx, []string{"--config", config}, logs) }()
		select {
		case a := <-logs.addrs:
			f(a)
		case code := <-done:
			t.Fatalf("run returned %d before listening; log:\n%s", code, logs)
		case <-time.After(waitTimeout):
			t.Fatalf("no listening address logged; log:\n%s", logs)
		}
		cancel()
		if code := <-done; code != 0 {
			t.Fatalf("run = %d; log:\n%s", code, logs)
		}
		return logs.String()
	}
	client := func(addr, id string) mqtt.Client {
		c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id))
		if tok := c.Connect(); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
			t.Fatalf("connect %s: %v", id, tok.Error())
		}
		return c
	}

	logs := runOnce(func(a string) {
		pub := client(a, "redis-pub")
		defer pub.Disconnect(100)
		if tok := pub.Publish("redis/kept", 1, true, "in redis"); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	})
	if want := "msg=storage engine=redis where=redis://" + addr + "/2 durability=sync"; !strings.Contains(logs, want) {
		t.Errorf("log lacks %q:\n%s", want, logs)
	}
	if strings.Contains(logs, password) {
		t.Errorf("the log shows the Redis password:\n%s", logs)
	}

	code, out, errOut := dataCheck(t, "--config", config)
	if code != 0 || !strings.Contains(out, "\nretained: 1\n") {
		t.Errorf("data check: exit %d, stdout:\n%s\nstderr:\n%s\nwant one retained message", code, out, errOut)
	}

	runOnce(func(a string) {
		got := make(chan mqtt.Message, 1)
		sub := client(a, "redis-sub")
		defer sub.Disconnect(100)
		if tok := sub.Subscribe("redis/#", 1, func(_ mqtt.Client, m mqtt.Message) { got <- m }); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
			t.Fatalf("subscribe: %v", tok.Error())
		}
		select {
		case m := <-got:
			if string(m.Payload()) != "in redis" || !m.Retained() {
				t.Errorf("got %q (retained %v), want the retained message", m.Payload(), m.Retained())
			}
		case <-time.After(waitTimeout):
			t.Fatal("the retained message did not survive the restart")
		}
	})

	var stderr bytes.Buffer
	if code := run(t.Context(), []string{"--config", writeConfig(t, redisBroker(addr, "wrong"))}, &stderr); code != 1 ||
		!strings.Contains(stderr.String(), "vanemq: storage: redis at "+addr) || strings.Contains(stderr.String(), "msg=listening") {
		t.Errorf("wrong password: exit %d, output:\n%s\nwant 1 and an error naming %s", code, stderr.String(), addr)
	}
}
