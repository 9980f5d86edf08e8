// Package plugintest runs a plugin in process, over the same gRPC
// contract the broker uses, for the plugin's unit tests:
//
//	func TestDenies(t *testing.T) {
//		h := plugintest.Start(t, &myPlugin{}, map[string]any{"users": "users.json"})
//		v := h.AuthorizePublish(sdk.Client{ID: "c1", Username: "bob"}, sdk.Message{Topic: "x"})
//		if v.Result != sdk.ResultDeny { ... }
//	}
package plugintest

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/vanemq/vanemq/plugins/proto/pluginv1"
	"github.com/vanemq/vanemq/plugins/sdk"
	"github.com/vanemq/vanemq/plugins/wire"
)

// timeout bounds every call.
const timeout = 10 * time.Second

// Harness is a plugin running in process, with a recording Host.
type Harness struct {
	t    testing.TB
	c    pluginv1.PluginClient
	desc sdk.Description

	mu           sync.Mutex
	published    []sdk.Message
	disconnected []string
}

// Start runs p with the config block config (marshalled to JSON, as the
// broker passes it) and calls its Init. The test fails if Init fails.
func Start(t testing.TB, p sdk.Plugin, config any) *Harness {
	t.Helper()
	// The plugin is served as a plugin binary serves it (the SDK's own
	// server config), in this process.
	ctx, cancel := context.WithCancel(context.Background())
	reattach := make(chan *plugin.ReattachConfig, 1)
	closed := make(chan struct{})
	go sdk.ServeTest(ctx, p, reattach, closed)
	t.Cleanup(func() {
		cancel()
		<-closed
	})
	var rc *plugin.ReattachConfig
	select {
	case rc = <-reattach:
	case <-time.After(timeout):
		t.Fatal("plugintest: the plugin did not start serving")
	}
	pc := plugin.NewClient(&plugin.ClientConfig{HandshakeConfig: wire.Handshake, Reattach: rc,
		Plugins: plugin.PluginSet{wire.Name: &wire.GRPCPlugin{}}, AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger: hclog.NewNullLogger()})
	t.Cleanup(pc.Kill)
	client, err := pc.Client()
	if err != nil {
		t.Fatalf("plugintest: %v", err)
	}
	raw, err := client.Dispense(wire.Name)
	if err != nil {
		t.Fatalf("plugintest: %v", err)
	}
	wc := raw.(*wire.Client)
	h := &Harness{t: t, c: wc.Plugin}
	hostID := wc.Broker.NextId()
	go wc.Broker.AcceptAndServe(hostID, func(opts []grpc.ServerOption) *grpc.Server {
		s := grpc.NewServer(opts...)
		pluginv1.RegisterHostServer(s, &recordingHost{h: h})
		return s
	})
	cfg, err := json.Marshal(config)
	if err != nil {
		t.Fatalf("plugintest: config: %v", err)
	}
	dctx, dcancel := context.WithTimeout(context.Background(), timeout)
	defer dcancel()
	d, err := h.c.Describe(dctx, &pluginv1.DescribeRequest{Protocol: wire.Protocol, ConfigJson: cfg, HostBrokerId: hostID})
	if err != nil {
		t.Fatalf("plugintest: Init: %v", err)
	}
	h.desc.Name = d.GetName()
	for _, hd := range d.GetHandlers() {
		mode := sdk.Observer
		if hd.GetMode() == pluginv1.Mode_MODE_DECISION {
			mode = sdk.Decision
		}
		h.desc.Handlers = append(h.desc.Handlers, sdk.Handler{Event: sdk.EventKind(hd.GetEvent()), Mode: mode, Topics: hd.GetTopics()})
	}
	return h
}

// Description is what the plugin's Init returned.
func (h *Harness) Description() sdk.Description { return h.desc }

func (h *Harness) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), timeout)
}

func verdictOf(v *pluginv1.Verdict) sdk.Verdict {
	return sdk.Verdict{Result: sdk.Result(v.GetDecision()), Code: byte(v.GetCode()), Reason: v.GetReason()}
}

func clientProto(c sdk.Client) *pluginv1.Client {
	return &pluginv1.Client{Id: c.ID, Username: c.Username, Remote: c.Remote, Listener: c.Listener,
		ProtocolVersion: uint32(c.ProtocolVersion), CleanStart: c.CleanStart, CertCommonName: c.CertCommonName, CertDnsNames: c.CertDNSNames}
}

// Authenticate calls the plugin's Authenticate.
func (h *Harness) Authenticate(c sdk.Client, cred sdk.Credentials) sdk.Verdict {
	h.t.Helper()
	ctx, cancel := h.ctx()
	defer cancel()
	v, err := h.c.Authenticate(ctx, &pluginv1.AuthenticateRequest{Client: clientProto(c), Credentials: &pluginv1.Credentials{
		Username: cred.Username, UsernameSet: cred.UsernameSet, Password: cred.Password, PasswordSet: cred.PasswordSet,
		AuthMethod: cred.AuthMethod, AuthData: cred.AuthData}})
	if err != nil {
		h.t.Fatalf("plugintest: Authenticate: %v", err)
	}
	return verdictOf(v)
}

// AuthorizePublish calls the plugin's AuthorizePublish.
func (h *Harness) AuthorizePublish(c sdk.Client, m sdk.Message) sdk.Verdict {
	h.t.Helper()
	ctx, cancel := h.ctx()
	defer cancel()
	v, err := h.c.AuthorizePublish(ctx, &pluginv1.MessageRequest{Client: clientProto(c), Message: sdk.MessageProto(&m)})
	if err != nil {
		h.t.Fatalf("plugintest: AuthorizePublish: %v", err)
	}
	return verdictOf(v)
}

// AuthorizeSubscribe calls the plugin's AuthorizeSubscribe; it returns the
// verdict and the QoS granted (qos, or lower when the plugin lowered it).
func (h *Harness) AuthorizeSubscribe(c sdk.Client, filter string, qos byte) (sdk.Verdict, byte) {
	h.t.Helper()
	ctx, cancel := h.ctx()
	defer cancel()
	r, err := h.c.AuthorizeSubscribe(ctx, &pluginv1.SubscribeRequest{Client: clientProto(c), Filter: filter, Qos: uint32(qos)})
	if err != nil {
		h.t.Fatalf("plugintest: AuthorizeSubscribe: %v", err)
	}
	if r.Qos != nil {
		qos = byte(r.GetQos())
	}
	return verdictOf(r.GetVerdict()), qos
}

// Connect calls the plugin's Connect.
func (h *Harness) Connect(c sdk.Client) sdk.Verdict {
	h.t.Helper()
	ctx, cancel := h.ctx()
	defer cancel()
	v, err := h.c.Connect(ctx, &pluginv1.ClientRequest{Client: clientProto(c)})
	if err != nil {
		h.t.Fatalf("plugintest: Connect: %v", err)
	}
	return verdictOf(v)
}

// Publish calls the plugin's Publish; it returns the verdict and the
// message as the plugin left it.
func (h *Harness) Publish(c sdk.Client, m sdk.Message) (sdk.Verdict, sdk.Message) {
	h.t.Helper()
	ctx, cancel := h.ctx()
	defer cancel()
	r, err := h.c.Publish(ctx, &pluginv1.MessageRequest{Client: clientProto(c), Message: sdk.MessageProto(&m)})
	if err != nil {
		h.t.Fatalf("plugintest: Publish: %v", err)
	}
	out := m
	if pm := r.GetMessage(); pm != nil {
		out = sdk.Message{Topic: pm.GetTopic(), Payload: pm.GetPayload(), QoS: byte(pm.GetQos()), Retain: pm.GetRetain(), Origin: pm.GetOrigin()}
	}
	return verdictOf(r.GetVerdict()), out
}

// Observe sends events to the plugin's Observe on one stream and returns
// once the plugin has taken them all.
func (h *Harness) Observe(events ...sdk.Event) {
	h.t.Helper()
	ctx, cancel := h.ctx()
	defer cancel()
	stream, err := h.c.Observe(ctx)
	if err != nil {
		h.t.Fatalf("plugintest: Observe: %v", err)
	}
	b := &pluginv1.EventBatch{}
	for _, e := range events {
		pe := &pluginv1.ObservedEvent{Event: pluginv1.Event(e.Kind), Filter: e.Filter, Qos: uint32(e.QoS), Reason: e.Reason,
			Code: uint32(e.Code), ClientId: e.ClientID, UnixNanos: e.Time.UnixNano()}
		if e.Client != nil {
			pe.Client = clientProto(*e.Client)
		}
		if e.Msg != nil {
			pe.Message = sdk.MessageProto(e.Msg)
		}
		b.Events = append(b.Events, pe)
	}
	if err := stream.Send(b); err != nil {
		h.t.Fatalf("plugintest: Observe: %v", err)
	}
	if _, err := stream.CloseAndRecv(); err != nil {
		h.t.Fatalf("plugintest: Observe: %v", err)
	}
}

// Published returns what the plugin published through its Host.
func (h *Harness) Published() []sdk.Message {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]sdk.Message(nil), h.published...)
}

// Disconnected returns the client IDs the plugin disconnected.
func (h *Harness) Disconnected() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.disconnected...)
}

// recordingHost records a plugin's Host calls.
type recordingHost struct {
	pluginv1.UnimplementedHostServer
	h *Harness
}

func (r *recordingHost) Publish(_ context.Context, req *pluginv1.HostPublishRequest) (*pluginv1.HostReply, error) {
	m := req.GetMessage()
	r.h.mu.Lock()
	r.h.published = append(r.h.published, sdk.Message{Topic: m.GetTopic(), Payload: m.GetPayload(), QoS: byte(m.GetQos()), Retain: m.GetRetain()})
	r.h.mu.Unlock()
	return &pluginv1.HostReply{}, nil
}

func (r *recordingHost) Disconnect(_ context.Context, req *pluginv1.HostDisconnectRequest) (*pluginv1.HostReply, error) {
	r.h.mu.Lock()
	r.h.disconnected = append(r.h.disconnected, req.GetClientId())
	r.h.mu.Unlock()
	return &pluginv1.HostReply{}, nil
}
