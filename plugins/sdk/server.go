package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vanemq/vanemq/plugins/proto/pluginv1"
	"github.com/vanemq/vanemq/plugins/wire"
)

// Serve runs the plugin until the broker stops it. Call it from main; it
// does not return. Run by hand (not by the broker), the binary prints a
// notice and exits.
func Serve(p Plugin) {
	go watchBroker(brokerPID(os.Getenv(wire.BrokerPIDEnv), os.Getppid()), os.Getppid, time.Second, func() {
		Logger().Warn("the broker that started this plugin is gone; exiting")
		os.Exit(0)
	})
	plugin.Serve(serveConfig(p))
}

// brokerPID is the process ID of the broker that started the plugin: the
// one it passed in its environment (wire.BrokerPIDEnv), or, from a broker
// that passes none, the parent's at the time of the call (ppid). It is 0
// when there is no broker to watch.
func brokerPID(env string, ppid int) int {
	if pid, err := strconv.Atoi(env); err == nil && pid > 1 {
		return pid
	}
	if ppid > 1 {
		return ppid
	}
	return 0 // started by init or by hand: nothing to watch
}

// watchBroker calls gone once the plugin's parent (as getppid reads it)
// is no longer the broker pid: a broker killed with SIGKILL cannot stop
// its plugins, which would otherwise run on, re-parented. It checks at
// once, so a plugin whose broker died before it started goes too, then
// every period. With pid 0 it returns at once.
func watchBroker(pid int, getppid func() int, every time.Duration, gone func()) {
	if pid == 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for getppid() == pid {
		<-t.C
	}
	gone()
}

// serveConfig is go-plugin's configuration for p.
func serveConfig(p Plugin) *plugin.ServeConfig {
	s := newServer(p, Logger())
	return &plugin.ServeConfig{
		HandshakeConfig: wire.Handshake,
		Plugins:         plugin.PluginSet{wire.Name: s.grpcPlugin()},
		GRPCServer:      grpcServer,
		Logger:          hclog.New(&hclog.LoggerOptions{Output: os.Stderr, JSONFormat: true, Level: hclog.Warn}),
	}
}

// grpcServer is the plugin's gRPC server. Fixed flow-control windows turn
// off gRPC's bandwidth probing, which sends a PING for every message
// received (a wake-up on both sides of each call); a few stream workers
// save a goroutine start per call; the codec hands the observer stream's
// batches over undecoded (wire.Codec); messages may be as large as an
// MQTT payload.
func grpcServer(opts []grpc.ServerOption) *grpc.Server {
	return grpc.NewServer(append(opts, grpc.InitialWindowSize(1<<20), grpc.InitialConnWindowSize(1<<20),
		grpc.NumStreamWorkers(4), grpc.ForceServerCodecV2(wire.NewCodec()), grpc.ReadBufferSize(wire.IOBufferSize),
		grpc.MaxRecvMsgSize(wire.MaxMessageSize), grpc.MaxSendMsgSize(wire.MaxMessageSize))...)
}

// Logger returns a logger whose lines reach the broker's log, with the
// plugin's name and their level: go-plugin passes the plugin's stderr to
// the broker, which reads these JSON lines (hclog's format).
func Logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) > 0 {
				return a
			}
			switch a.Key {
			case slog.TimeKey:
				return slog.String("@timestamp", a.Value.Time().Format("2006-01-02T15:04:05.000000Z07:00"))
			case slog.LevelKey:
				return slog.String("@level", strings.ToLower(a.Value.String()))
			case slog.MessageKey:
				return slog.String("@message", a.Value.String())
			}
			return a
		},
	}))
}

// server serves the gRPC contract with a Plugin.
type server struct {
	pluginv1.UnimplementedPluginServer
	p   Plugin
	log *slog.Logger

	mu     sync.Mutex
	broker *plugin.GRPCBroker
}

func newServer(p Plugin, log *slog.Logger) *server { return &server{p: p, log: log} }

// grpcPlugin is the go-plugin adapter serving s.
func (s *server) grpcPlugin() *wire.GRPCPlugin {
	return &wire.GRPCPlugin{Impl: s, Setup: func(b *plugin.GRPCBroker) {
		s.mu.Lock()
		s.broker = b
		s.mu.Unlock()
	}}
}

// guard turns a panic in the plugin's code into an error for this call:
// the broker applies its failure policy, and the plugin goes on serving.
func (s *server) guard(what string, err *error) {
	if r := recover(); r != nil {
		s.log.Error("plugin panicked", "method", what, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		*err = status.Errorf(codes.Internal, "plugin panicked in %s: %v", what, r)
	}
}

// Describe implements the contract: Init, with the Host reached over the
// go-plugin broker.
func (s *server) Describe(ctx context.Context, req *pluginv1.DescribeRequest) (d *pluginv1.Description, err error) {
	defer s.guard("Init", &err)
	if req.GetProtocol() != wire.Protocol {
		return nil, status.Errorf(codes.FailedPrecondition, "the broker speaks plugin protocol %d, this plugin %d", req.GetProtocol(), wire.Protocol)
	}
	ir := InitRequest{Config: req.GetConfigJson()}
	s.mu.Lock()
	b := s.broker
	s.mu.Unlock()
	if b != nil && req.GetHostBrokerId() != 0 {
		conn, err := b.Dial(req.GetHostBrokerId())
		if err != nil {
			return nil, status.Errorf(codes.Unavailable, "reaching the broker's host service: %v", err)
		}
		ir.Host = &hostClient{c: pluginv1.NewHostClient(conn)}
	}
	desc, err := s.p.Init(ctx, ir)
	if err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "Init: %v", err)
	}
	out := &pluginv1.Description{Name: desc.Name}
	for _, h := range desc.Handlers {
		mode := pluginv1.Mode_MODE_UNSPECIFIED // refused by the broker, naming the event
		switch h.Mode {
		case ModeDecision:
			mode = pluginv1.Mode_MODE_DECISION
		case ModeObserver:
			mode = pluginv1.Mode_MODE_OBSERVER
		}
		out.Handlers = append(out.Handlers, &pluginv1.Handler{Event: pluginv1.Event(h.Event), Mode: mode, Topics: h.Topics})
	}
	return out, nil
}

func (s *server) Authenticate(ctx context.Context, req *pluginv1.AuthenticateRequest) (v *pluginv1.Verdict, err error) {
	defer s.guard("Authenticate", &err)
	c := req.GetCredentials()
	cred := &Credentials{Username: c.GetUsername(), UsernameSet: c.GetUsernameSet(), Password: c.GetPassword(),
		PasswordSet: c.GetPasswordSet(), AuthMethod: c.GetAuthMethod(), AuthData: c.GetAuthData(),
		UserProperty: userPropertiesOf(c.GetUserProperties())}
	return toVerdict(s.p.Authenticate(ctx, clientOf(req.GetClient()), cred)), nil
}

func (s *server) EnhancedAuth(ctx context.Context, req *pluginv1.AuthStepRequest) (r *pluginv1.AuthStepResult, err error) {
	defer s.guard("EnhancedAuth", &err)
	st := req.GetStep()
	step := &AuthStep{Method: st.GetMethod(), Data: st.GetData(), Reauth: st.GetReauth()}
	vd := s.p.EnhancedAuth(ctx, clientOf(req.GetClient()), step)
	return &pluginv1.AuthStepResult{Verdict: toVerdict(vd), Continue: step.Continue, Response: step.Response}, nil
}

func (s *server) AuthorizePublish(ctx context.Context, req *pluginv1.MessageRequest) (v *pluginv1.Verdict, err error) {
	defer s.guard("AuthorizePublish", &err)
	return toVerdict(s.p.AuthorizePublish(ctx, clientOf(req.GetClient()), messageOf(req.GetMessage()))), nil
}

func (s *server) AuthorizeSubscribe(ctx context.Context, req *pluginv1.SubscribeRequest) (v *pluginv1.SubscribeVerdict, err error) {
	defer s.guard("AuthorizeSubscribe", &err)
	qos := byte(min(req.GetQos(), 2))
	asked := qos
	vd := s.p.AuthorizeSubscribe(ctx, clientOf(req.GetClient()), req.GetFilter(), &qos)
	out := &pluginv1.SubscribeVerdict{Verdict: toVerdict(vd)}
	if qos != asked {
		q := uint32(qos)
		out.Qos = &q
	}
	return out, nil
}

func (s *server) AuthorizeRead(ctx context.Context, req *pluginv1.ReadRequest) (v *pluginv1.Verdict, err error) {
	defer s.guard("AuthorizeRead", &err)
	return toVerdict(s.p.AuthorizeRead(ctx, clientOf(req.GetClient()), req.GetTopic())), nil
}

func (s *server) Connect(ctx context.Context, req *pluginv1.ConnectRequest) (r *pluginv1.ConnectResult, err error) {
	defer s.guard("Connect", &err)
	given := PolicyOf(req.GetPolicy())
	policy := given
	vd := s.p.Connect(ctx, clientOf(req.GetClient()), &policy)
	return &pluginv1.ConnectResult{Decision: pluginv1.Decision(vd.Decision), Code: uint32(vd.Code), Reason: vd.Reason,
		Policy: PolicyChanges(given, policy)}, nil
}

func (s *server) Publish(ctx context.Context, req *pluginv1.MessageRequest) (r *pluginv1.PublishResult, err error) {
	defer s.guard("Publish", &err)
	m := messageOf(req.GetMessage())
	vd := s.p.Publish(ctx, clientOf(req.GetClient()), m)
	return &pluginv1.PublishResult{Verdict: toVerdict(vd), Message: MessageProto(m)}, nil
}

func (s *server) Deliver(ctx context.Context, req *pluginv1.DeliverRequest) (r *pluginv1.PublishResult, err error) {
	defer s.guard("Deliver", &err)
	m := messageOf(req.GetMessage())
	vd := s.p.Deliver(ctx, subscriberOf(req), m)
	return &pluginv1.PublishResult{Verdict: toVerdict(vd), Message: MessageProto(m)}, nil
}

func (s *server) Will(ctx context.Context, req *pluginv1.MessageRequest) (r *pluginv1.PublishResult, err error) {
	defer s.guard("Will", &err)
	m := messageOf(req.GetMessage())
	vd := s.p.Will(ctx, clientOf(req.GetClient()), m)
	return &pluginv1.PublishResult{Verdict: toVerdict(vd), Message: MessageProto(m)}, nil
}

// Observe reads batches of events until the broker closes the stream.
// A batch is decoded by batchDecoder as it is received (wire.Codec).
func (s *server) Observe(stream pluginv1.Plugin_ObserveServer) error {
	var n, dropped uint64
	var dec batchDecoder
	ctx := stream.Context()
	deliver := func(e *Event) {
		n++
		s.observe(ctx, e)
	}
	raw := wire.Raw{}
	raw.Decode = func(b []byte) error {
		d, err := dec.decode(b, deliver)
		if d > 0 {
			dropped += d
			s.log.Warn("the broker dropped events this plugin did not take in time", "dropped", d, "total", dropped)
		}
		return err
	}
	for {
		err := stream.RecvMsg(&raw)
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&pluginv1.ObserveSummary{Received: n})
		}
		if err != nil {
			return err
		}
		if raw.Err != nil {
			return status.Errorf(codes.InvalidArgument, "event batch: %v", raw.Err)
		}
	}
}

// observe hands one event to the plugin; a panic is logged and the
// stream goes on.
func (s *server) observe(ctx context.Context, ev *Event) {
	var err error
	defer func() {
		if err != nil {
			s.log.Error("plugin Observe failed", "event", ev.Kind.String(), "cause", err)
		}
	}()
	defer s.guard("Observe", &err)
	s.p.Observe(ctx, ev)
}

func (s *server) Health(context.Context, *pluginv1.HealthRequest) (*pluginv1.HealthReply, error) {
	return &pluginv1.HealthReply{}, nil
}

// hostClient is the Host over gRPC.
type hostClient struct{ c pluginv1.HostClient }

func (h *hostClient) Publish(ctx context.Context, m *Message) error {
	r, err := h.c.Publish(ctx, &pluginv1.HostPublishRequest{Message: MessageProto(m)})
	if err != nil {
		return err
	}
	if r.GetError() != "" {
		return errors.New(r.GetError())
	}
	return nil
}

func (h *hostClient) Disconnect(ctx context.Context, clientID string, code ReasonCode, reason string) error {
	r, err := h.c.Disconnect(ctx, &pluginv1.HostDisconnectRequest{ClientId: clientID, Code: uint32(code), Reason: reason})
	if err != nil {
		return err
	}
	if r.GetError() != "" {
		return errors.New(r.GetError())
	}
	return nil
}

func toVerdict(v Verdict) *pluginv1.Verdict {
	return &pluginv1.Verdict{Decision: pluginv1.Decision(v.Decision), Code: uint32(v.Code), Reason: v.Reason}
}

func clientOf(c *pluginv1.Client) *Client {
	return &Client{ID: c.GetId(), Username: c.GetUsername(), Remote: c.GetRemote(), Listener: c.GetListener(),
		ProtocolVersion: byte(c.GetProtocolVersion()), CleanStart: c.GetCleanStart(),
		CertCommonName: c.GetCertCommonName(), CertDNSNames: c.GetCertDnsNames()}
}

// subscriberOf is a delivery's subscriber: the client the broker sent, or,
// from a broker older than DeliverRequest's client, one with the ID only.
func subscriberOf(req *pluginv1.DeliverRequest) *Client {
	if c := req.GetClient(); c != nil {
		return clientOf(c)
	}
	return &Client{ID: req.GetSubscriber()}
}

func messageOf(m *pluginv1.Message) *Message {
	out := &Message{Topic: m.GetTopic(), Payload: m.GetPayload(), QoS: byte(m.GetQos()), Retain: m.GetRetain(), Origin: m.GetOrigin()}
	if p := m.GetProperties(); p != nil {
		if p.PayloadFormat != nil {
			f := byte(p.GetPayloadFormat())
			out.Properties.PayloadFormat = &f
		}
		if p.MessageExpiry != nil {
			e := p.GetMessageExpiry()
			out.Properties.MessageExpiry = &e
		}
		out.Properties.ContentType = p.GetContentType()
		out.Properties.ResponseTopic = p.GetResponseTopic()
		out.Properties.CorrelationData = p.GetCorrelationData()
		out.Properties.UserProperties = userPropertiesOf(p.GetUserProperties())
	}
	return out
}

func userPropertiesOf(us []*pluginv1.UserProperty) []UserProperty {
	if len(us) == 0 {
		return nil
	}
	out := make([]UserProperty, len(us))
	for i, u := range us {
		out[i] = UserProperty{Key: u.GetKey(), Value: u.GetValue()}
	}
	return out
}

// MessageProto converts a message to the wire form (for the broker's
// side and tests; plugin code does not need it).
func MessageProto(m *Message) *pluginv1.Message {
	if m == nil {
		return nil
	}
	p := &pluginv1.Properties{ContentType: m.Properties.ContentType, ResponseTopic: m.Properties.ResponseTopic,
		CorrelationData: m.Properties.CorrelationData}
	if m.Properties.PayloadFormat != nil {
		f := uint32(*m.Properties.PayloadFormat)
		p.PayloadFormat = &f
	}
	if m.Properties.MessageExpiry != nil {
		e := *m.Properties.MessageExpiry
		p.MessageExpiry = &e
	}
	for _, u := range m.Properties.UserProperties {
		p.UserProperties = append(p.UserProperties, &pluginv1.UserProperty{Key: u.Key, Value: u.Value})
	}
	return &pluginv1.Message{Topic: m.Topic, Payload: m.Payload, Qos: uint32(m.QoS), Retain: m.Retain, Origin: m.Origin, Properties: p}
}

// ServeTest serves p in this process, configured as Serve configures a
// plugin binary, until ctx ends. The config to reach it comes on
// reattach, and closed is closed when serving has ended. It is what
// plugintest runs; plugins call Serve.
func ServeTest(ctx context.Context, p Plugin, reattach chan<- *plugin.ReattachConfig, closed chan<- struct{}) {
	cfg := serveConfig(p)
	cfg.Test = &plugin.ServeTestConfig{Context: ctx, ReattachConfigCh: reattach, CloseCh: closed}
	plugin.Serve(cfg)
}
