package sdk_test

import (
	"context"
	"strings"
	"sync"
	"testing"

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
		{Event: sdk.EventAuthorizePublish, Mode: sdk.Decision},
		{Event: sdk.EventPublished, Mode: sdk.Observer, Topics: []string{"users/#"}},
	}}, nil
}

func (a *acl) AuthorizePublish(_ context.Context, c *sdk.Client, m *sdk.Message) sdk.Verdict {
	if m.Topic == "panic" {
		panic("boom")
	}
	if strings.HasPrefix(m.Topic, a.prefix+c.Username+"/") {
		return sdk.Allow
	}
	return sdk.Deny(0x87, "not your topic")
}

func (a *acl) AuthorizeSubscribe(_ context.Context, c *sdk.Client, filter string, qos *byte) sdk.Verdict {
	if filter == "#" {
		return sdk.Deny(0x87, "too wide")
	}
	*qos = min(*qos, 1)
	return sdk.Allow
}

func (a *acl) Connect(_ context.Context, c *sdk.Client) sdk.Verdict {
	if c.Username == "" {
		return sdk.Deny(0x86, "who are you?")
	}
	return sdk.Next
}

func (a *acl) Publish(_ context.Context, c *sdk.Client, m *sdk.Message) sdk.Verdict {
	m.Topic = "stamped/" + m.Topic
	m.Payload = append([]byte(c.ID+":"), m.Payload...)
	return sdk.Next
}

func (a *acl) Observe(_ context.Context, e *sdk.Event) {
	a.mu.Lock()
	a.seen = append(a.seen, e.Kind.String()+" "+e.Msg.Topic)
	a.mu.Unlock()
}

// The harness runs a plugin over the real contract: Init with its config
// and Host, decisions, observed events; a panic in the plugin is an error
// of that call (the broker's failure policy), not a crash.
func TestPluginThroughHarness(t *testing.T) {
	p := &acl{}
	h := plugintest.Start(t, p, map[string]any{"prefix": "users/"})
	d := h.Description()
	if d.Name != "acl" || len(d.Handlers) != 2 || d.Handlers[1].Mode != sdk.Observer || d.Handlers[1].Topics[0] != "users/#" {
		t.Fatalf("description %+v", d)
	}
	if got := h.Published(); len(got) != 1 || got[0].Topic != "plugins/acl/up" {
		t.Errorf("Host.Publish from Init: %+v", got)
	}
	alice := sdk.Client{ID: "c1", Username: "alice"}
	if v := h.AuthorizePublish(alice, sdk.Message{Topic: "users/alice/t"}); v.Result != sdk.ResultAllow {
		t.Errorf("own topic: %+v", v)
	}
	if v := h.AuthorizePublish(alice, sdk.Message{Topic: "users/bob/t"}); v.Result != sdk.ResultDeny || v.Code != 0x87 || v.Reason != "not your topic" {
		t.Errorf("other's topic: %+v", v)
	}
	if v, q := h.AuthorizeSubscribe(alice, "users/alice/#", 2); v.Result != sdk.ResultAllow || q != 1 {
		t.Errorf("subscribe: %+v QoS %d, want allowed at 1", v, q)
	}
	if v, _ := h.AuthorizeSubscribe(alice, "#", 0); v.Result != sdk.ResultDeny {
		t.Errorf("subscribe #: %+v", v)
	}
	if v := h.Connect(sdk.Client{ID: "anon"}); v.Result != sdk.ResultDeny || v.Code != 0x86 {
		t.Errorf("connect without a user: %+v", v)
	}
	if v, m := h.Publish(alice, sdk.Message{Topic: "t", Payload: []byte("x")}); v.Result != sdk.ResultNext || m.Topic != "stamped/t" || string(m.Payload) != "c1:x" {
		t.Errorf("publish: %+v %+v", v, m)
	}
	h.Observe(sdk.Event{Kind: sdk.EventPublished, Client: &alice, Msg: &sdk.Message{Topic: "users/alice/t"}},
		sdk.Event{Kind: sdk.EventPublished, Client: &alice, Msg: &sdk.Message{Topic: "users/alice/u"}})
	p.mu.Lock()
	seen := strings.Join(p.seen, ",")
	p.mu.Unlock()
	if seen != "published users/alice/t,published users/alice/u" {
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
