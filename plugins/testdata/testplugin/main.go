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

	"github.com/vanemq/vanemq/core/packets"
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
	// Decide lists more decisions to describe: "authenticate" (blocks
	// until its context ends, and records it), "enhanced_auth" (method
	// CHALLENGE: "hello", then "proof"; re-authentication with "again"),
	// "deliver" (on deliver/# only: denies deliveries to "muted" and of
	// deliver/drop, adds " for SUBSCRIBER (USERNAME)" to the others'
	// payloads), "will" (suppresses will/quiet, moves the others to
	// wills/CLIENT), "authorize_read" (denies reading secret/#, or the
	// topics under the prefix DenyReadFrom holds, and private/USER/# to
	// other users than USER; panics while FailReadWhile exists).
	Decide []string `json:"decide"`
	// DenyReadFrom, when the file exists at Init, holds the topic prefix
	// AuthorizeRead denies instead of secret/: a restarted plugin can
	// decide anew.
	DenyReadFrom string `json:"deny_read_from"`
	// FailReadWhile, when the file exists, makes AuthorizeRead panic: a
	// plugin that fails its read decisions until the test removes it.
	FailReadWhile string `json:"fail_read_while"`
	// Mountpoint makes Connect record the policy it is given and set a
	// mountpoint of tenant-USERNAME/ (and a maximum packet size of 512
	// for the client "small").
	Mountpoint bool `json:"mountpoint"`
}

type testPlugin struct {
	sdk.Base
	cfg   config
	deny  string // the topic prefix AuthorizeRead denies
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
	p.deny = "secret/"
	if p.cfg.DenyReadFrom != "" {
		if b, err := os.ReadFile(p.cfg.DenyReadFrom); err == nil {
			p.deny = strings.TrimSpace(string(b))
		}
	}
	d := sdk.Description{Name: "testplugin"}
	if !p.cfg.ObserveOnly {
		d.Handlers = []sdk.Handler{
			{Event: sdk.EventAuthorizePublish, Mode: sdk.ModeDecision, Topics: p.cfg.Topics},
			{Event: sdk.EventConnect, Mode: sdk.ModeDecision},
		}
	}
	decisions := map[string]sdk.EventKind{"authenticate": sdk.EventAuthenticate, "enhanced_auth": sdk.EventEnhancedAuth,
		"deliver": sdk.EventDeliver, "will": sdk.EventWill, "authorize_read": sdk.EventAuthorizeRead}
	for _, name := range p.cfg.Decide {
		k, ok := decisions[name]
		if !ok {
			return d, fmt.Errorf("unknown decision %q", name)
		}
		h := sdk.Handler{Event: k, Mode: sdk.ModeDecision}
		if k == sdk.EventDeliver {
			h.Topics = []string{"deliver/#"}
		}
		d.Handlers = append(d.Handlers, h)
	}
	kinds := map[string]sdk.EventKind{"published": sdk.EventPublished, "session": sdk.EventSession,
		"subscribed": sdk.EventSubscribed, "disconnected": sdk.EventDisconnected,
		"started": sdk.EventStarted, "stopped": sdk.EventStopped, "sys_tick": sdk.EventSysTick}
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
		d.Handlers = append(d.Handlers, sdk.Handler{Event: k, Mode: sdk.ModeObserver})
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
		return sdk.Verdict{Decision: sdk.DecisionDeny, Code: 0x10}
	case "exit-after":
		if n >= p.cfg.ExitAfter {
			os.Exit(3)
		}
	}
	if strings.HasPrefix(m.Topic, "deny/") {
		return sdk.Deny(packets.NotAuthorized, "denied by the test plugin")
	}
	return sdk.Allow
}

// Authenticate blocks until its context ends, and records that it did:
// a decision for a connection that ends is cancelled in the plugin too.
func (p *testPlugin) Authenticate(ctx context.Context, c *sdk.Client, _ *sdk.Credentials) sdk.Verdict {
	p.record(map[string]any{"event": "authenticate", "client": c.ID, "reason": "blocking"})
	<-ctx.Done()
	p.record(map[string]any{"event": "authenticate", "client": c.ID, "reason": "cancelled: " + ctx.Err().Error()})
	return sdk.Deny(packets.NotAuthorized, "cancelled")
}

func (p *testPlugin) EnhancedAuth(_ context.Context, c *sdk.Client, step *sdk.AuthStep) sdk.Verdict {
	p.record(map[string]any{"event": "enhanced_auth", "client": c.ID, "reason": fmt.Sprintf("%s %q reauth=%v", step.Method, step.Data, step.Reauth)})
	switch {
	case step.Method != "CHALLENGE":
		return sdk.Next // no hook takes it: 0x8C Bad authentication method
	case !step.Reauth && string(step.Data) == "hello":
		step.Continue, step.Response = true, []byte("prove it")
		return sdk.Next
	case !step.Reauth && string(step.Data) == "proof", step.Reauth && string(step.Data) == "again":
		step.Response = []byte("welcome " + c.ID)
		return sdk.Allow
	}
	return sdk.Deny(packets.NotAuthorized, "wrong proof")
}

func (p *testPlugin) Deliver(_ context.Context, c *sdk.Client, m *sdk.Message) sdk.Verdict {
	if c.ID == "muted" || m.Topic == "deliver/drop" {
		return sdk.Deny(packets.NotAuthorized, "not delivered")
	}
	m.Payload = append(m.Payload, " for "+c.ID+" ("+c.Username+")"...)
	return sdk.Next
}

// AuthorizeRead denies secret/# (or DenyReadFrom's prefix) to everyone
// and private/USER/# to other users than USER; it panics while the
// FailReadWhile file exists.
func (p *testPlugin) AuthorizeRead(_ context.Context, c *sdk.Client, topic string) sdk.Verdict {
	if p.cfg.FailReadWhile != "" {
		if _, err := os.Stat(p.cfg.FailReadWhile); err == nil {
			panic("the test plugin cannot read its rules")
		}
	}
	if strings.HasPrefix(topic, p.deny) {
		return sdk.Deny(packets.NotAuthorized, "denied by the test plugin's rule "+p.deny)
	}
	if user, ok := strings.CutPrefix(topic, "private/"); ok && !strings.HasPrefix(user, c.Username+"/") {
		return sdk.Deny(packets.NotAuthorized, "private")
	}
	return sdk.Next
}

func (p *testPlugin) Will(_ context.Context, c *sdk.Client, m *sdk.Message) sdk.Verdict {
	if m.Topic == "will/quiet" {
		return sdk.Deny(packets.NotAuthorized, "suppressed")
	}
	m.Topic = "wills/" + c.ID
	m.Payload = append([]byte("last words: "), m.Payload...)
	return sdk.Next
}

func (p *testPlugin) Connect(ctx context.Context, c *sdk.Client, policy *sdk.ClientPolicy) sdk.Verdict {
	if p.cfg.Mountpoint {
		p.record(map[string]any{"event": "connect", "client": c.ID, "policy": *policy})
		policy.Mountpoint = "tenant-" + c.Username + "/"
		if c.ID == "small" {
			policy.MaxPacketSize = 512
		}
	}
	if c.ID == "kickme" {
		go func() {
			time.Sleep(200 * time.Millisecond)
			_ = p.host.Disconnect(context.Background(), c.ID, packets.AdministrativeAction, "kicked by the test plugin")
		}()
	}
	if c.ID == "greet" && p.host != nil {
		_ = p.host.Publish(ctx, &sdk.Message{Topic: "greetings/" + c.ID, Payload: []byte("hello " + c.Username), QoS: 1})
	}
	return sdk.Next
}

func (p *testPlugin) Observe(_ context.Context, e *sdk.Event) {
	if p.out == nil {
		return // the benchmarks' observer: as cheap as an observer can be
	}
	rec := map[string]any{"event": e.Kind.String(), "reason": e.Reason, "filter": e.Filter}
	if e.Client != nil {
		rec["client"] = e.Client.ID
	}
	if e.Msg != nil {
		rec["topic"] = e.Msg.Topic
		rec["payload"] = string(e.Msg.Payload)
	}
	if e.Stats != nil {
		rec["stats"] = e.Stats
	}
	p.record(rec)
}

// record appends rec to the events file, as a JSON line.
func (p *testPlugin) record(rec map[string]any) {
	if p.out == nil {
		return
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
