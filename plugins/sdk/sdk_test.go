package sdk_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/vanemq/vanemq/core/packets"
	"github.com/vanemq/vanemq/plugins/sdk"
	"github.com/vanemq/vanemq/plugins/sdk/plugintest"
)

// acl is a small plugin: it refuses publishes outside users/{username}/,
// counts observed publishes, and publishes through its Host on Init.
type acl struct {
	sdk.Base
	prefix string
	mu     sync.Mutex
	seen   []string
}

func (a *acl) Init(ctx context.Context, req sdk.InitRequest) (sdk.Description, error) {
	var cfg struct {
		Prefix string `json:"prefix"`
	}
	if err := req.Decode(&cfg); err != nil {
		return sdk.Description{}, err
	}
	a.prefix = cfg.Prefix
	if err := req.Host.Publish(ctx, &sdk.Message{Topic: "plugins/acl/up", Payload: []byte("1")}); err != nil {
		return sdk.Description{}, err
	}
	return sdk.Description{Name: "acl", Handlers: []sdk.Handler{
		{Event: sdk.EventAuthorizePublish, Mode: sdk.ModeDecision},
		{Event: sdk.EventPublished, Mode: sdk.ModeObserver, Topics: []string{"users/#"}},
		{Event: sdk.EventSysTick, Mode: sdk.ModeObserver},
	}}, nil
}

func (a *acl) AuthorizePublish(_ context.Context, c *sdk.Client, m *sdk.Message) sdk.Verdict {
	if m.Topic == "panic" {
		panic("boom")
	}
	if strings.HasPrefix(m.Topic, a.prefix+c.Username+"/") {
		return sdk.Allow
	}
	return sdk.Deny(packets.NotAuthorized, "not your topic")
}

func (a *acl) AuthorizeSubscribe(_ context.Context, c *sdk.Client, filter string, qos *byte) sdk.Verdict {
	if filter == "#" {
		return sdk.Deny(packets.NotAuthorized, "too wide")
	}
	*qos = min(*qos, 1)
	return sdk.Allow
}

func (a *acl) EnhancedAuth(_ context.Context, c *sdk.Client, step *sdk.AuthStep) sdk.Verdict {
	switch {
	case step.Method != "CHALLENGE":
		return sdk.Next
	case string(step.Data) == "hello":
		step.Continue, step.Response = true, []byte("prove it")
		return sdk.Next
	case string(step.Data) == "proof" || step.Reauth:
		step.Response = []byte("welcome")
		return sdk.Allow
	}
	return sdk.Deny(packets.NotAuthorized, "bad proof")
}

func (a *acl) Connect(_ context.Context, c *sdk.Client, policy *sdk.ClientPolicy) sdk.Verdict {
	if c.Username == "" {
		return sdk.Deny(packets.BadUsernameOrPassword, "who are you?")
	}
	policy.Mountpoint = a.prefix + c.Username + "/"
	return sdk.Next
}

func (a *acl) AuthorizeRead(_ context.Context, c *sdk.Client, topic string) sdk.Verdict {
	if strings.HasPrefix(topic, a.prefix) && !strings.HasPrefix(topic, a.prefix+c.Username+"/") {
		return sdk.Deny(packets.NotAuthorized, "not your topic")
	}
	return sdk.Next
}

func (a *acl) Deliver(_ context.Context, c *sdk.Client, m *sdk.Message) sdk.Verdict {
	if c.ID == "muted" {
		return sdk.Deny(packets.NotAuthorized, "muted")
	}
	m.Payload = append(m.Payload, []byte(" for "+c.Username)...)
	return sdk.Next
}

func (a *acl) Will(_ context.Context, c *sdk.Client, m *sdk.Message) sdk.Verdict {
	if m.Topic == "quiet" {
		return sdk.Deny(packets.NotAuthorized, "no wills here")
	}
	m.Topic = "wills/" + c.ID
	return sdk.Next
}

func (a *acl) Publish(_ context.Context, c *sdk.Client, m *sdk.Message) sdk.Verdict {
	m.Topic = "stamped/" + m.Topic
	m.Payload = append([]byte(c.ID+":"), m.Payload...)
	return sdk.Next
}

func (a *acl) Observe(_ context.Context, e *sdk.Event) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if e.Kind == sdk.EventSysTick {
		a.seen = append(a.seen, fmt.Sprintf("%s %d %d", e.Kind, e.Stats.ClientsConnected, e.Stats.DroppedBy["expired"]))
		return
	}
	a.seen = append(a.seen, e.Kind.String()+" "+e.Msg.Topic)
}

// The harness runs a plugin over the real contract: Init with its config
// and Host, decisions, observed events; a panic in the plugin is an error
// of that call (the broker's failure policy), not a crash.
func TestPluginThroughHarness(t *testing.T) {
	p := &acl{}
	h := plugintest.Start(t, p, map[string]any{"prefix": "users/"})
	d := h.Description()
	if d.Name != "acl" || len(d.Handlers) != 3 || d.Handlers[1].Mode != sdk.ModeObserver || d.Handlers[1].Topics[0] != "users/#" {
		t.Fatalf("description %+v", d)
	}
	if got := h.Published(); len(got) != 1 || got[0].Topic != "plugins/acl/up" {
		t.Errorf("Host.Publish from Init: %+v", got)
	}
	alice := sdk.Client{ID: "c1", Username: "alice"}
	if v := h.AuthorizePublish(alice, sdk.Message{Topic: "users/alice/t"}); v != sdk.Allow {
		t.Errorf("own topic: %+v", v)
	}
	if v := h.AuthorizePublish(alice, sdk.Message{Topic: "users/bob/t"}); v != sdk.Deny(packets.NotAuthorized, "not your topic") {
		t.Errorf("other's topic: %+v", v)
	}
	if v, q := h.AuthorizeSubscribe(alice, "users/alice/#", 2); v != sdk.Allow || q != 1 {
		t.Errorf("subscribe: %+v QoS %d, want allowed at 1", v, q)
	}
	if v, _ := h.AuthorizeSubscribe(alice, "#", 0); v.Decision != sdk.DecisionDeny {
		t.Errorf("subscribe #: %+v", v)
	}
	if v, _ := h.Connect(sdk.Client{ID: "anon"}, sdk.ClientPolicy{}); v.Decision != sdk.DecisionDeny || v.Code != packets.BadUsernameOrPassword {
		t.Errorf("connect without a user: %+v", v)
	}
	// The policy the plugin is given is the one it changes; the fields it
	// does not change stay.
	v, pol := h.Connect(alice, sdk.ClientPolicy{MaxInflight: 7, Mountpoint: "old/"})
	if v != sdk.Next || pol != (sdk.ClientPolicy{MaxInflight: 7, Mountpoint: "users/alice/"}) {
		t.Errorf("connect: %+v, policy %+v", v, pol)
	}
	if v, st := h.EnhancedAuth(alice, sdk.AuthStep{Method: "CHALLENGE", Data: []byte("hello")}); v != sdk.Next || !st.Continue || string(st.Response) != "prove it" {
		t.Errorf("enhanced auth, first step: %+v %+v", v, st)
	}
	if v, st := h.EnhancedAuth(alice, sdk.AuthStep{Method: "CHALLENGE", Data: []byte("proof")}); v != sdk.Allow || st.Continue || string(st.Response) != "welcome" {
		t.Errorf("enhanced auth, second step: %+v %+v", v, st)
	}
	if v, _ := h.EnhancedAuth(alice, sdk.AuthStep{Method: "CHALLENGE", Data: []byte("lies")}); v.Decision != sdk.DecisionDeny {
		t.Errorf("enhanced auth, bad proof: %+v", v)
	}
	if v, m := h.Publish(alice, sdk.Message{Topic: "t", Payload: []byte("x")}); v != sdk.Next || m.Topic != "stamped/t" || string(m.Payload) != "c1:x" {
		t.Errorf("publish: %+v %+v", v, m)
	}
	if v := h.AuthorizeRead(alice, "users/alice/t"); v != sdk.Next {
		t.Errorf("read own topic: %+v", v)
	}
	if v := h.AuthorizeRead(alice, "users/bob/t"); v != sdk.Deny(packets.NotAuthorized, "not your topic") {
		t.Errorf("read other's topic: %+v", v)
	}
	if v, m := h.Deliver(sdk.Client{ID: "c2", Username: "bob"}, sdk.Message{Topic: "t", Payload: []byte("x")}); v != sdk.Next || string(m.Payload) != "x for bob" {
		t.Errorf("deliver: %+v %+v", v, m)
	}
	if v, _ := h.Deliver(sdk.Client{ID: "muted"}, sdk.Message{Topic: "t"}); v.Decision != sdk.DecisionDeny {
		t.Errorf("deliver to muted: %+v", v)
	}
	if v, m := h.Will(alice, sdk.Message{Topic: "gone"}); v != sdk.Next || m.Topic != "wills/c1" {
		t.Errorf("will: %+v %+v", v, m)
	}
	if v, _ := h.Will(alice, sdk.Message{Topic: "quiet"}); v.Decision != sdk.DecisionDeny {
		t.Errorf("quiet will: %+v", v)
	}
	h.Observe(sdk.Event{Kind: sdk.EventPublished, Client: &alice, Msg: &sdk.Message{Topic: "users/alice/t"}},
		sdk.Event{Kind: sdk.EventPublished, Client: &alice, Msg: &sdk.Message{Topic: "users/alice/u"}},
		sdk.Event{Kind: sdk.EventSysTick, Stats: &sdk.Stats{ClientsConnected: 3, DroppedBy: map[string]int64{"expired": 2}}})
	p.mu.Lock()
	seen := strings.Join(p.seen, ",")
	p.mu.Unlock()
	if seen != "published users/alice/t,published users/alice/u,sys_tick 3 2" {
		t.Errorf("observed: %s", seen)
	}
}

// An unknown config key fails Init, and the harness reports it.
func TestConfigDecodeStrict(t *testing.T) {
	req := sdk.InitRequest{Config: []byte(`{"prefx": "users/"}`)}
	var cfg struct {
		Prefix string `json:"prefix"`
	}
	if err := req.Decode(&cfg); err == nil || !strings.Contains(err.Error(), "prefx") {
		t.Fatalf("Decode: %v, want the unknown key named", err)
	}
}
