// testplugin is the plugin binary the host's tests build and run. Its
// behaviour comes from its config block; some faults from the environment
// (they must happen before the handshake).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vanemq/vanemq/plugins/sdk"
	"github.com/vanemq/vanemq/plugins/wire"
)

type config struct {
	// Mode: "acl" (deny topics under deny/), "panic", "hang", "bad-verdict",
	// "exit-after" (exit after ExitAfter decisions).
	Mode      string `json:"mode"`
	ExitAfter int64  `json:"exit_after"`
	// Events is a file the observed events are appended to (JSON lines).
	Events string `json:"events"`
	// Observe lists the events to observe.
	Observe []string `json:"observe"`
	Topics  []string `json:"topics"`
	// ObserveOnly describes no decision, only the observed events.
	ObserveOnly bool `json:"observe_only"`
	// ObserveFrom, when the file exists, adds the events it lists (one
	// name, e.g. "subscribed") to Observe: a restarted plugin can describe
	// itself anew.
	ObserveFrom string `json:"observe_from"`
	// FailWhile, when the file exists, makes Init fail: a plugin that
	// cannot start until the test removes it.
	FailWhile string `json:"fail_while"`
}

type testPlugin struct {
	sdk.Base
	cfg   config
	host  sdk.Host
	calls atomic.Int64
	mu    sync.Mutex
	out   *os.File
}

func (p *testPlugin) Init(_ context.Context, req sdk.InitRequest) (sdk.Description, error) {
	if err := req.Decode(&p.cfg); err != nil {
		return sdk.Description{}, err
	}
	p.host = req.Host
	if p.cfg.FailWhile != "" {
		if _, err := os.Stat(p.cfg.FailWhile); err == nil {
			return sdk.Description{}, fmt.Errorf("%s exists: the test plugin cannot start", p.cfg.FailWhile)
		}
	}
	d := sdk.Description{Name: "testplugin"}
	if !p.cfg.ObserveOnly {
		d.Handlers = []sdk.Handler{
			{Event: sdk.EventAuthorizePublish, Mode: sdk.Decision, Topics: p.cfg.Topics},
			{Event: sdk.EventConnect, Mode: sdk.Decision},
		}
	}
	kinds := map[string]sdk.EventKind{"published": sdk.EventPublished, "session": sdk.EventSession,
		"subscribed": sdk.EventSubscribed, "disconnected": sdk.EventDisconnected}
	if p.cfg.ObserveFrom != "" {
		if b, err := os.ReadFile(p.cfg.ObserveFrom); err == nil {
			p.cfg.Observe = append(p.cfg.Observe, strings.TrimSpace(string(b)))
		}
	}
	for _, name := range p.cfg.Observe {
		k, ok := kinds[name]
		if !ok {
			return d, fmt.Errorf("unknown event %q", name)
		}
		d.Handlers = append(d.Handlers, sdk.Handler{Event: k, Mode: sdk.Observer})
	}
	if p.cfg.Events != "" {
		f, err := os.OpenFile(p.cfg.Events, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return d, err
		}
		p.out = f
	}
	sdk.Logger().Info("test plugin ready", "mode", p.cfg.Mode)
	return d, nil
}

func (p *testPlugin) AuthorizePublish(ctx context.Context, c *sdk.Client, m *sdk.Message) sdk.Verdict {
	n := p.calls.Add(1)
	switch p.cfg.Mode {
	case "panic":
		panic("the test plugin panics")
	case "hang":
		<-ctx.Done()
		time.Sleep(time.Hour)
	case "bad-verdict":
		return sdk.Verdict{Result: sdk.ResultDeny, Code: 0x10}
	case "exit-after":
		if n >= p.cfg.ExitAfter {
			os.Exit(3)
		}
	}
	if strings.HasPrefix(m.Topic, "deny/") {
		return sdk.Deny(0x87, "denied by the test plugin")
	}
	return sdk.Allow
}

func (p *testPlugin) Connect(ctx context.Context, c *sdk.Client) sdk.Verdict {
	if c.ID == "kickme" {
		go func() {
			time.Sleep(200 * time.Millisecond)
			_ = p.host.Disconnect(context.Background(), c.ID, 0x98, "kicked by the test plugin")
		}()
	}
	if c.ID == "greet" && p.host != nil {
		_ = p.host.Publish(ctx, &sdk.Message{Topic: "greetings/" + c.ID, Payload: []byte("hello " + c.Username), QoS: 1})
	}
	return sdk.Next
}

func (p *testPlugin) Observe(_ context.Context, e *sdk.Event) {
	if p.out == nil {
		return
	}
	rec := map[string]any{"event": e.Kind.String(), "reason": e.Reason, "filter": e.Filter}
	if e.Client != nil {
		rec["client"] = e.Client.ID
	}
	if e.Msg != nil {
		rec["topic"] = e.Msg.Topic
		rec["payload"] = string(e.Msg.Payload)
	}
	b, _ := json.Marshal(rec)
	p.mu.Lock()
	_, _ = p.out.Write(append(b, '\n'))
	p.mu.Unlock()
}

// echo serves 1-byte ping-pongs on a unix socket: the floor of a round
// trip between two processes on this machine, for the latency benchmark.
func echo(path string) {
	l, err := net.Listen("unix", path)
	if err != nil {
		os.Exit(2)
	}
	c, err := l.Accept()
	if err != nil {
		os.Exit(2)
	}
	b := make([]byte, 1)
	for {
		if _, err := c.Read(b); err != nil {
			return
		}
		if _, err := c.Write(b); err != nil {
			return
		}
	}
}

func main() {
	if p := os.Getenv("TESTPLUGIN_ECHO"); p != "" {
		echo(p)
		return
	}
	if os.Getenv("TESTPLUGIN_GARBAGE") != "" {
		fmt.Println("this is not a handshake")
	}
	if os.Getenv("TESTPLUGIN_WRONG_PROTOCOL") != "" {
		wire.Handshake.ProtocolVersion = 99
	}
	sdk.Serve(&testPlugin{})
}
