// Package plugintest runs a plugin in process, over the same gRPC
// contract the broker uses, for the plugin's unit tests:
//
//	func TestDenies(t *testing.T) {
//		h := plugintest.Start(t, &myPlugin{}, map[string]any{"users": "users.json"})
//		v := h.AuthorizePublish(sdk.Client{ID: "c1", Username: "bob"}, sdk.Message{Topic: "x"})
//		if v.Decision != sdk.DecisionDeny { ... }
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
		mode := sdk.ModeObserver
		if hd.GetMode() == pluginv1.Mode_MODE_DECISION {
			mode = sdk.ModeDecision
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
	return sdk.Verdict{Decision: sdk.Decision(v.GetDecision()), Code: sdk.ReasonCode(v.GetCode()), Reason: v.GetReason()}
}

// messageOf is a message as the plugin returned it.
func messageOf(pm *pluginv1.Message) sdk.Message {
	m := sdk.Message{Topic: pm.GetTopic(), Payload: pm.GetPayload(), QoS: byte(pm.GetQos()), Retain: pm.GetRetain(), Origin: pm.GetOrigin()}
	if p := pm.GetProperties(); p != nil {
		if p.PayloadFormat != nil {
			f := byte(p.GetPayloadFormat())
			m.Properties.PayloadFormat = &f
		}
		if p.MessageExpiry != nil {
			e := p.GetMessageExpiry()
			m.Properties.MessageExpiry = &e
		}
		m.Properties.ContentType, m.Properties.ResponseTopic = p.GetContentType(), p.GetResponseTopic()
		m.Properties.CorrelationData = p.GetCorrelationData()
		for _, u := range p.GetUserProperties() {
			m.Properties.UserProperties = append(m.Properties.UserProperties, sdk.UserProperty{Key: u.GetKey(), Value: u.GetValue()})
		}
	}
	return m
}

// modified is a modifier's result: the verdict, and the message as the
// plugin left it (m when it sent none).
func modified(m sdk.Message, r *pluginv1.PublishResult) (sdk.Verdict, sdk.Message) {
	if pm := r.GetMessage(); pm != nil {
		m = messageOf(pm)
	}
	return verdictOf(r.GetVerdict()), m
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
		AuthMethod: cred.AuthMethod, AuthData: cred.AuthData, UserProperties: userPropertiesProto(cred.UserProperty)}})
	if err != nil {
		h.t.Fatalf("plugintest: Authenticate: %v", err)
	}
	return verdictOf(v)
}

func userPropertiesProto(us []sdk.UserProperty) []*pluginv1.UserProperty {
	var out []*pluginv1.UserProperty
	for _, u := range us {
		out = append(out, &pluginv1.UserProperty{Key: u.Key, Value: u.Value})
	}
	return out
}

// EnhancedAuth calls the plugin's EnhancedAuth with step's Method, Data
// and Reauth; it returns the verdict and the step with the Continue and
// Response the plugin set.
func (h *Harness) EnhancedAuth(c sdk.Client, step sdk.AuthStep) (sdk.Verdict, sdk.AuthStep) {
	h.t.Helper()
	ctx, cancel := h.ctx()
	defer cancel()
	r, err := h.c.EnhancedAuth(ctx, &pluginv1.AuthStepRequest{Client: clientProto(c),
		Step: &pluginv1.AuthStep{Method: step.Method, Data: step.Data, Reauth: step.Reauth}})
	if err != nil {
		h.t.Fatalf("plugintest: EnhancedAuth: %v", err)
	}
	step.Continue, step.Response = r.GetContinue(), r.GetResponse()
	return verdictOf(r.GetVerdict()), step
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

// AuthorizeRead calls the plugin's AuthorizeRead: may the subscriber c
// receive a message on topic?
func (h *Harness) AuthorizeRead(c sdk.Client, topic string) sdk.Verdict {
	h.t.Helper()
	ctx, cancel := h.ctx()
	defer cancel()
	v, err := h.c.AuthorizeRead(ctx, &pluginv1.ReadRequest{Client: clientProto(c), Topic: topic})
	if err != nil {
		h.t.Fatalf("plugintest: AuthorizeRead: %v", err)
	}
	return verdictOf(v)
}

// Connect calls the plugin's Connect with policy as the hooks before it
// left it; it returns the verdict and the policy as the plugin changed it
// (the broker applies only the fields changed).
func (h *Harness) Connect(c sdk.Client, policy sdk.ClientPolicy) (sdk.Verdict, sdk.ClientPolicy) {
	h.t.Helper()
	ctx, cancel := h.ctx()
	defer cancel()
	r, err := h.c.Connect(ctx, &pluginv1.ConnectRequest{Client: clientProto(c), Policy: sdk.PolicyChanges(sdk.ClientPolicy{}, policy)})
	if err != nil {
		h.t.Fatalf("plugintest: Connect: %v", err)
	}
	if p := r.GetPolicy(); p != nil {
		changed := sdk.PolicyOf(p)
		if p.MaxQueuedMessages != nil {
			policy.MaxQueuedMessages = changed.MaxQueuedMessages
		}
		if p.MaxInflight != nil {
			policy.MaxInflight = changed.MaxInflight
		}
		if p.MaxPacketSize != nil {
			policy.MaxPacketSize = changed.MaxPacketSize
		}
		if p.Mountpoint != nil {
			policy.Mountpoint = changed.Mountpoint
		}
		if p.SessionExpiryMax != nil {
			policy.SessionExpiryMax = changed.SessionExpiryMax
		}
	}
	return verdictOf(&pluginv1.Verdict{Decision: r.GetDecision(), Code: r.GetCode(), Reason: r.GetReason()}), policy
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
	return modified(m, r)
}

// Deliver calls the plugin's Deliver for a delivery of m to the
// subscriber c, as the broker does (with the subscriber's ID too, for
// plugins built before the client was sent); it returns the verdict and
// the message as the plugin left it.
func (h *Harness) Deliver(c sdk.Client, m sdk.Message) (sdk.Verdict, sdk.Message) {
	h.t.Helper()
	ctx, cancel := h.ctx()
	defer cancel()
	r, err := h.c.Deliver(ctx, &pluginv1.DeliverRequest{Subscriber: c.ID, Client: clientProto(c), Message: sdk.MessageProto(&m)})
	if err != nil {
		h.t.Fatalf("plugintest: Deliver: %v", err)
	}
	return modified(m, r)
}

// Will calls the plugin's Will for c's will message m; it returns the
// verdict and the message as the plugin left it.
func (h *Harness) Will(c sdk.Client, m sdk.Message) (sdk.Verdict, sdk.Message) {
	h.t.Helper()
	ctx, cancel := h.ctx()
	defer cancel()
	r, err := h.c.Will(ctx, &pluginv1.MessageRequest{Client: clientProto(c), Message: sdk.MessageProto(&m)})
	if err != nil {
		h.t.Fatalf("plugintest: Will: %v", err)
	}
	return modified(m, r)
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
		if e.Stats != nil {
			pe.Stats = statsProto(e.Stats)
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

func statsProto(st *sdk.Stats) *pluginv1.Stats {
	return &pluginv1.Stats{ClientsConnected: st.ClientsConnected, Sessions: st.Sessions, Connections: st.Connections,
		MessagesIn: st.MessagesIn, MessagesOut: st.MessagesOut, BytesIn: st.BytesIn, BytesOut: st.BytesOut, Dropped: st.Dropped,
		Subscriptions: st.Subscriptions, Retained: st.Retained, RetainedBytes: st.RetainedBytes, ProtocolErrors: st.ProtocolErrors,
		HookEventsLost: st.HookEventsLost, StoreFailures: st.StoreFailures, DroppedBy: st.DroppedBy, RefusedBy: st.RefusedBy,
		MessagesInByQos: st.MessagesInByQoS[:], MessagesOutByQos: st.MessagesOutByQoS[:],
		PayloadBytesInByQos: st.PayloadBytesInByQoS[:], PayloadBytesOutByQos: st.PayloadBytesOutByQoS[:]}
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
