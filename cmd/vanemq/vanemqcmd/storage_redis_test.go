package vanemqcmd

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vanemq/vanemq/hooks/storage/redistest"
)

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
	addr := redistest.Start(t, "--requirepass", password).Addr
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
