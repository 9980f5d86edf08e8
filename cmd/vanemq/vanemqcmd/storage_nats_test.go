package vanemqcmd

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vanemq/vanemq/hooks/cluster/natsdev"
)

// natsBroker is a config with a TCP listener on a free loopback port and
// the NATS store on the servers at urls.
func natsBroker(urls []string, token string) string {
	return fmt.Sprintf(`allow_anonymous: true
listeners:
  - {id: tcp, type: tcp, address: "127.0.0.1:0"}
mqtt: {sys_interval: 0}
storage:
  type: nats
  nats:
    urls: [%q]
    token: %q
    prefix: cmdtest
    timeout: 2s
`, urls[0], token)
}

// TestRunNATS runs the broker on an embedded NATS server: a retained
// message survives a restart of the broker, data check counts it, the
// start-up line names the server and the bucket, and a server that
// cannot be reached stops start-up with an error naming it.
func TestRunNATS(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 45*time.Second)
	defer cancel()
	nc, err := natsdev.Start(ctx, natsdev.Options{Nodes: 1, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	config := writeConfig(t, natsBroker(nc.URLs(), ""))

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
		pub := client(a, "nats-pub")
		defer pub.Disconnect(100)
		if tok := pub.Publish("nats/kept", 1, true, "in nats"); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	})
	if want := `msg=storage engine=nats where="nats ` + nc.URL(0) + ` bucket cmdtest_state" durability=sync`; !strings.Contains(logs, want) {
		t.Errorf("log lacks %q:\n%s", want, logs)
	}

	code, out, errOut := dataCheck(t, "--config", config)
	if code != 0 || !strings.Contains(out, "\nretained: 1\n") {
		t.Errorf("data check: exit %d, stdout:\n%s\nstderr:\n%s\nwant one retained message", code, out, errOut)
	}

	runOnce(func(a string) {
		got := make(chan mqtt.Message, 1)
		sub := client(a, "nats-sub")
		defer sub.Disconnect(100)
		if tok := sub.Subscribe("nats/#", 1, func(_ mqtt.Client, m mqtt.Message) { got <- m }); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
			t.Fatalf("subscribe: %v", tok.Error())
		}
		select {
		case m := <-got:
			if string(m.Payload()) != "in nats" || !m.Retained() {
				t.Errorf("got %q (retained %v), want the retained message", m.Payload(), m.Retained())
			}
		case <-time.After(waitTimeout):
			t.Fatal("the retained message did not survive the restart")
		}
	})

	nc.Stop(0)
	var stderr bytes.Buffer
	if code := run(t.Context(), []string{"--config", config}, &stderr); code != 1 ||
		!strings.Contains(stderr.String(), "vanemq: storage: nats "+nc.URL(0)) || strings.Contains(stderr.String(), "msg=listening") {
		t.Errorf("server stopped: exit %d, output:\n%s\nwant 1 and an error naming %s", code, stderr.String(), nc.URL(0))
	}
}
