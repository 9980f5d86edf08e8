package plugins

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/plugins/proto/pluginv1"
	"github.com/vanemq/vanemq/plugins/wire"
)

// instance is one run of the plugin binary.
type instance struct {
	client *plugin.Client
	rpc    *wire.Client
	desc   *pluginv1.Description
	// stopping asks the sender to send what is queued and end the stream.
	stopping chan struct{}
	// sender ends when the observer stream does; failed reports why.
	senderDone chan struct{}
	failed     chan error
}

// checkBinary refuses a missing or non-executable binary, or one whose
// checksum does not match, with the path in the error.
func checkBinary(cfg *Config) ([]byte, error) {
	st, err := os.Stat(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("plugin binary %s: %w", cfg.Path, err)
	}
	if st.IsDir() || st.Mode().Perm()&0o111 == 0 {
		return nil, fmt.Errorf("plugin binary %s is not an executable file (mode %s)", cfg.Path, st.Mode())
	}
	if cfg.SHA256 == "" {
		return nil, nil
	}
	want, _ := hex.DecodeString(cfg.SHA256)
	f, err := os.Open(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("plugin binary %s: %w", cfg.Path, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, fmt.Errorf("plugin binary %s: %w", cfg.Path, err)
	}
	if got := h.Sum(nil); hex.EncodeToString(got) != cfg.SHA256 {
		return nil, fmt.Errorf("plugin binary %s has sha256 %x, the config says %s: not run", cfg.Path, got, cfg.SHA256)
	}
	return want, nil
}

// launch starts the binary, completes the handshake, serves the Host
// service for it and asks it to describe itself.
func (h *Hook) launch() (*instance, error) {
	sum, err := checkBinary(&h.cfg)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(h.cfg.Path, h.cfg.Args...)
	cmd.Env = append(h.cfg.environ(os.Environ()), wire.BrokerPIDEnv+"="+strconv.Itoa(os.Getpid()))
	cc := &plugin.ClientConfig{
		HandshakeConfig:  wire.Handshake,
		Plugins:          plugin.PluginSet{wire.Name: &wire.GRPCPlugin{}},
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		// Messages may be as large as an MQTT payload.
		GRPCDialOptions: []grpc.DialOption{grpc.WithInitialWindowSize(1 << 20), grpc.WithInitialConnWindowSize(1 << 20),
			grpc.WithWriteBufferSize(wire.IOBufferSize),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(wire.MaxMessageSize), grpc.MaxCallSendMsgSize(wire.MaxMessageSize))},
		StartTimeout: h.cfg.StartTimeout,
		Logger:       hclog.New(&hclog.LoggerOptions{Name: "go-plugin", Output: &logWriter{log: h.logger}, JSONFormat: true, Level: hclog.Debug}),
		// Once serving, a plugin's stdout and stderr come over go-plugin's
		// stdio stream: its log lines (sdk.Logger) and anything it prints.
		SyncStderr: &logWriter{log: h.logger},
		SyncStdout: &logWriter{log: func() *slog.Logger { return h.logger().With("stream", "stdout") }},
	}
	if sum != nil {
		cc.SecureConfig = &plugin.SecureConfig{Checksum: sum, Hash: sha256.New()}
	}
	client := plugin.NewClient(cc)
	fail := func(err error) (*instance, error) {
		client.Kill()
		return nil, err
	}
	proto, err := client.Client()
	if err != nil {
		return fail(fmt.Errorf("starting plugin %s: %w", h.cfg.Path, err))
	}
	raw, err := proto.Dispense(wire.Name)
	if err != nil {
		return fail(fmt.Errorf("plugin %s: %w", h.cfg.Path, err))
	}
	rpc, ok := raw.(*wire.Client)
	if !ok {
		return fail(fmt.Errorf("plugin %s: unexpected client %T", h.cfg.Path, raw))
	}
	hostID := rpc.Broker.NextId()
	go rpc.Broker.AcceptAndServe(hostID, func(opts []grpc.ServerOption) *grpc.Server {
		s := grpc.NewServer(append(opts, grpc.MaxRecvMsgSize(wire.MaxMessageSize))...)
		pluginv1.RegisterHostServer(s, &hostServer{h: h})
		return s
	})
	cfgJSON, err := json.Marshal(jsonable(h.cfg.Config))
	if err != nil {
		return fail(fmt.Errorf("plugin %s: config: %w", h.cfg.Path, err))
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.StartTimeout)
	desc, err := rpc.Plugin.Describe(ctx, &pluginv1.DescribeRequest{Protocol: wire.Protocol, ConfigJson: cfgJSON, HostBrokerId: hostID})
	cancel()
	if err != nil {
		return fail(fmt.Errorf("plugin %s: describing itself: %w", h.cfg.Path, err))
	}
	inst := &instance{client: client, rpc: rpc, desc: desc, stopping: make(chan struct{}), senderDone: make(chan struct{}), failed: make(chan error, 1)}
	go h.sendEvents(inst)
	return inst, nil
}

// close stops the instance: the events queued are sent and the observer
// stream ends (bounded by drainTimeout), then the process is killed
// (go-plugin asks it to exit first).
func (inst *instance) close() {
	close(inst.stopping)
	<-inst.senderDone
	inst.client.Kill()
}

// drainTimeout bounds sending the queued events when a plugin stops.
const drainTimeout = 5 * time.Second

// jsonable converts YAML-decoded values (maps with any keys) into values
// encoding/json accepts.
func jsonable(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = jsonable(e)
		}
		return out
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[fmt.Sprint(k)] = jsonable(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonable(e)
		}
		return out
	}
	return v
}

// sendEvents sends the observer queue's chunks on one stream, until the
// instance stops (then what is queued is sent, and the stream closed once
// the plugin has taken it) or the stream fails (then the supervisor
// restarts the plugin).
func (h *Hook) sendEvents(inst *instance) {
	defer close(inst.senderDone)
	if !inst.observes() {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := inst.rpc.Plugin.Observe(ctx, grpc.ForceCodecV2(wire.NewCodec()))
	if err != nil {
		inst.failed <- fmt.Errorf("opening the observer stream: %w", err)
		return
	}
	q := h.queue
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	defer linger.Stop()
	send := func(c chunk) error {
		if d := h.dropped.Swap(0); d > 0 {
			*c.buf = appendDropped(*c.buf, d)
			h.lost.Add(d)
		}
		if err := stream.SendMsg(&wire.Encoded{Buf: c.buf, Pool: q}); err != nil {
			return err
		}
		h.sent.Add(uint64(c.n))
		return nil
	}
	for {
		select {
		case <-inst.stopping:
			// Send what is queued now, then close the stream and wait
			// until the plugin has it all, within drainTimeout.
			timer := time.AfterFunc(drainTimeout, cancel)
			defer timer.Stop()
			for c, ok := q.take(); ok && ctx.Err() == nil; c, ok = q.take() {
				if send(c) != nil {
					return
				}
			}
			if _, err := stream.CloseAndRecv(); err != nil && ctx.Err() == nil {
				h.logger().Warn("closing the observer stream", "cause", err)
			}
			return
		default:
		}
		if q.len() == 0 {
			select {
			case <-q.ready:
			case <-inst.stopping:
				continue
			}
		}
		if q.len() < h.cfg.BatchSize {
			// Let the batch fill a little.
			linger.Reset(h.cfg.BatchDelay)
			select {
			case <-linger.C:
			case <-inst.stopping:
				continue
			}
		}
		c, ok := q.take()
		if !ok {
			continue
		}
		if err := send(c); err != nil {
			inst.failed <- fmt.Errorf("sending events: %w", err)
			return
		}
	}
}

// observes reports whether the plugin observes any event.
func (inst *instance) observes() bool {
	for _, hd := range inst.desc.GetHandlers() {
		if hd.GetMode() == pluginv1.Mode_MODE_OBSERVER {
			return true
		}
	}
	return false
}

// hostServer is the Host service a plugin calls.
type hostServer struct {
	pluginv1.UnimplementedHostServer
	h *Hook
}

func (s *hostServer) Publish(_ context.Context, req *pluginv1.HostPublishRequest) (*pluginv1.HostReply, error) {
	if s.h.srv == nil {
		return &pluginv1.HostReply{Error: "the plugin hook runs without a broker"}, nil
	}
	m := req.GetMessage()
	err := s.h.srv.Publish(core.InlineMessage{Topic: m.GetTopic(), Payload: m.GetPayload(), QoS: byte(min(m.GetQos(), 3)),
		Retain: m.GetRetain(), Properties: propertiesOf(m.GetProperties())})
	if err != nil {
		return &pluginv1.HostReply{Error: err.Error()}, nil
	}
	return &pluginv1.HostReply{}, nil
}

func (s *hostServer) Disconnect(_ context.Context, req *pluginv1.HostDisconnectRequest) (*pluginv1.HostReply, error) {
	if s.h.srv == nil {
		return &pluginv1.HostReply{Error: "the plugin hook runs without a broker"}, nil
	}
	s.h.logger().Info("plugin disconnects a client", "client", req.GetClientId(), "code", req.GetCode(), "reason", req.GetReason())
	if err := s.h.srv.Disconnect(req.GetClientId(), codeOf(req.GetCode()), req.GetReason()); err != nil {
		return &pluginv1.HostReply{Error: err.Error()}, nil
	}
	return &pluginv1.HostReply{}, nil
}
