package core_test

// Helpers of the hook pipeline's end-to-end tests (e2e_hooks_test.go): a
// broker whose hooks are added before Start and whose anonymous policy the
// test chooses (startBroker always allows anonymous clients), small hooks
// implementing the event interfaces they handle, a recorder of notifications that tests wait
// on, and a raw MQTT 5 client that speaks AUTH with core/packets.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/valyala/bytebufferpool"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/mqtttest"
	"github.com/vanemq/vanemq/core/packets"
	"github.com/vanemq/vanemq/listeners/tcp"
)

// hookPrio is a hook and the priority to add it with.
type hookPrio struct {
	h    core.Hook
	prio int
}

// hkOpts configures hookBroker.
type hkOpts struct {
	opts           core.Options
	allowAnonymous bool
	hooks          []hookPrio
	manualShutdown bool // the test calls Shutdown itself
}

// hookBroker starts a broker on 127.0.0.1:0 with the given hooks added
// before Start, so OnStarted reaches them, and with AllowAnonymous as the
// test says (startBroker forces it on).
func hookBroker(t testing.TB, cfg hkOpts) *testBroker {
	t.Helper()
	opts := cfg.opts
	if opts.Logger == nil {
		var w io.Writer = io.Discard
		if testing.Verbose() {
			w = testWriter{t}
		}
		opts.Logger = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	opts.AllowAnonymous = cfg.allowAnonymous
	if opts.SysInterval == 0 {
		opts.SysInterval = -1
	}
	srv, err := core.New(opts)
	if err != nil {
		t.Fatalf("core.New: %v", err)
	}
	for _, hp := range cfg.hooks {
		if err := srv.AddHook(hp.h, hp.prio); err != nil {
			t.Fatalf("AddHook(%s): %v", hp.h.ID(), err)
		}
	}
	l := tcp.New("tcp", "127.0.0.1:0")
	if !cfg.manualShutdown {
		return &testBroker{Server: srv, Addr: mqtttest.Serve(t, srv, l)}
	}
	if err := srv.AddListener(l); err != nil {
		t.Fatalf("AddListener: %v", err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return &testBroker{Server: srv, Addr: l.Address()}
}

// withHooks is shorthand for hkOpts with anonymous clients allowed and
// every hook at priority 0.
func withHooks(hs ...core.Hook) hkOpts {
	cfg := hkOpts{allowAnonymous: true}
	for _, h := range hs {
		cfg.hooks = append(cfg.hooks, hookPrio{h: h})
	}
	return cfg
}

// ---------------------------------------------------------------------------
// Small hooks
// ---------------------------------------------------------------------------

// credHook authenticates username/password pairs: a known user with the
// right password is allowed, a known user with a wrong one is refused with
// Bad User Name or Password, an unknown user gets Next.
type credHook struct {
	users map[string]string
}

func (*credHook) ID() string            { return "test.cred" }
func (*credHook) Events() core.EventSet { return core.Events(core.EventAuthenticate) }
func (h *credHook) Authenticate(_ context.Context, _ *core.ClientInfo, c *core.Credentials) core.Verdict {
	pw, ok := h.users[c.Username]
	switch {
	case !c.UsernameSet || !ok:
		return core.Next
	case c.PasswordSet && string(c.Password) == pw:
		return core.Allow
	}
	return core.Deny(packets.BadUsernameOrPassword, "bad password for "+c.Username)
}

// passHook handles the given events and always says Next.
type passHook struct {
	id     string
	events core.EventSet
}

func (h *passHook) ID() string            { return h.id }
func (h *passHook) Events() core.EventSet { return h.events }

func (h *passHook) Authenticate(context.Context, *core.ClientInfo, *core.Credentials) core.Verdict {
	return core.Next
}

func (h *passHook) AuthorizePublish(context.Context, *core.ClientInfo, *core.Message) core.Verdict {
	return core.Next
}

func (h *passHook) AuthorizeSubscribe(context.Context, *core.ClientInfo, string, *byte) core.Verdict {
	return core.Next
}

func (h *passHook) Connect(context.Context, *core.ClientInfo, *core.ClientPolicy) core.Verdict {
	return core.Next
}

func (h *passHook) Publish(context.Context, *core.ClientInfo, *core.Message) core.Verdict {
	return core.Next
}

func (h *passHook) Deliver(context.Context, *core.ClientInfo, *core.Message) core.Verdict {
	return core.Next
}

func (h *passHook) OnPublished(context.Context, *core.ClientInfo, *core.Message) {}

// policyHook sets a Connect policy per client: clients whose ID starts
// with a key of mounts get that mountpoint; maxPacket, when set, applies
// to every client.
type policyHook struct {
	mounts    map[string]string // client ID prefix -> mountpoint
	maxPacket uint32
	inflight  uint16
	queued    int
}

func (*policyHook) ID() string            { return "test.policy" }
func (*policyHook) Events() core.EventSet { return core.Events(core.EventConnect) }
func (h *policyHook) Connect(_ context.Context, cl *core.ClientInfo, p *core.ClientPolicy) core.Verdict {
	for prefix, m := range h.mounts {
		if strings.HasPrefix(cl.ID, prefix) {
			p.Mountpoint = m
		}
	}
	if h.maxPacket > 0 {
		p.MaxPacketSize = h.maxPacket
	}
	if h.inflight > 0 {
		p.MaxInflight = h.inflight
	}
	if h.queued > 0 {
		p.MaxQueuedMessages = h.queued
	}
	return core.Next
}

// aclHook refuses publishing under denyPub and subscribing to filters
// under denySub, and lowers the granted QoS of filters under lowSub to 0.
type aclHook struct {
	denyPub string // topic prefix
	denySub string // filter prefix
	lowSub  string // filter prefix
	raiseTo byte   // if non-zero, tries to raise every granted QoS to it
}

func (*aclHook) ID() string { return "test.acl" }
func (*aclHook) Events() core.EventSet {
	return core.Events(core.EventAuthorizePublish, core.EventAuthorizeSubscribe)
}

func (h *aclHook) AuthorizePublish(_ context.Context, _ *core.ClientInfo, m *core.Message) core.Verdict {
	if h.denyPub != "" && strings.HasPrefix(m.Topic, h.denyPub) {
		return core.Deny(packets.NotAuthorized, "may not publish to "+m.Topic)
	}
	return core.Next
}

func (h *aclHook) AuthorizeSubscribe(_ context.Context, _ *core.ClientInfo, filter string, qos *byte) core.Verdict {
	switch {
	case h.denySub != "" && strings.HasPrefix(filter, h.denySub):
		return core.Deny(packets.NotAuthorized, "may not subscribe to "+filter)
	case h.lowSub != "" && strings.HasPrefix(filter, h.lowSub):
		*qos = 0
	case h.raiseTo != 0:
		*qos = h.raiseTo
	}
	return core.Next
}

// rewriteHook is a Publish modifier: messages under from/ move to to/
// with their payload upper-cased and a user property added; messages
// under drop/ are refused with code.
type rewriteHook struct {
	code packets.ReasonCode
}

func (*rewriteHook) ID() string            { return "test.rewrite" }
func (*rewriteHook) Events() core.EventSet { return core.Events(core.EventPublish) }
func (h *rewriteHook) Publish(_ context.Context, _ *core.ClientInfo, m *core.Message) core.Verdict {
	switch {
	case strings.HasPrefix(m.Topic, "from/"):
		m.Topic = "to/" + strings.TrimPrefix(m.Topic, "from/")
		m.Payload = []byte(strings.ToUpper(string(m.Payload)))
		m.Properties.UserProperties = append(m.Properties.UserProperties, packets.UserProperty{Key: "rewritten", Value: "yes"})
	case strings.HasPrefix(m.Topic, "retain/"):
		m.Retain = true
	case strings.HasPrefix(m.Topic, "invalid/"):
		m.Topic = "bad/#"
	case strings.HasPrefix(m.Topic, "drop/"):
		return core.Deny(h.code, "dropped by test.rewrite")
	}
	return core.Next
}

// deliverHook is a Deliver modifier: it refuses every delivery under
// data/ to subscribers whose ID starts with blocked, and tags the payload of every delivery
// under tag/ with the subscriber's ID.
type deliverHook struct {
	blocked string
}

func (*deliverHook) ID() string            { return "test.deliver" }
func (*deliverHook) Events() core.EventSet { return core.Events(core.EventDeliver) }
func (h *deliverHook) Deliver(_ context.Context, cl *core.ClientInfo, m *core.Message) core.Verdict {
	switch {
	case strings.HasPrefix(cl.ID, h.blocked) && strings.HasPrefix(m.Topic, "data/"):
		return core.Deny(packets.NotAuthorized, "")
	case strings.HasPrefix(m.Topic, "tag/"):
		m.Payload = append([]byte(cl.ID+":"), m.Payload...)
	}
	return core.Next
}

// willHook is a Will modifier: wills on will/suppress are suppressed,
// wills on will/rewrite go to will/rewritten with a new payload.
type willHook struct {
	seen chan string // the will topics it was asked about, with the client ID
}

func (*willHook) ID() string            { return "test.will" }
func (*willHook) Events() core.EventSet { return core.Events(core.EventWill) }
func (*willHook) Topics() []string      { return []string{"will/#"} }
func (h *willHook) Will(_ context.Context, cl *core.ClientInfo, m *core.Message) core.Verdict {
	if h.seen != nil {
		h.seen <- cl.ID + " " + m.Topic
	}
	switch m.Topic {
	case "will/suppress":
		return core.Deny(0, "suppressed by test.will")
	case "will/rewrite":
		m.Topic = "will/rewritten"
		m.Payload = []byte("rewritten by hook: " + string(m.Payload))
	}
	return core.Next
}

// panicHook panics in the events it lists.
type panicHook struct {
	id     string
	events core.EventSet
}

func (h *panicHook) ID() string            { return h.id }
func (h *panicHook) Events() core.EventSet { return h.events }
func (h *panicHook) Authenticate(context.Context, *core.ClientInfo, *core.Credentials) core.Verdict {
	panic("panicHook: authenticate")
}
func (h *panicHook) OnPublished(context.Context, *core.ClientInfo, *core.Message) {
	panic("panicHook: published")
}

// ---------------------------------------------------------------------------
// Recorder of notifications
// ---------------------------------------------------------------------------

// hkEvent is one notification as the recorder saw it.
type hkEvent struct {
	Kind    string // session, disconnected, subscribed, ...
	Client  string
	Topic   string // topic or filter
	Payload string
	QoS     byte
	Retain  bool
	Change  core.SessionChange
	Reason  packets.ReasonCode
	Err     error
	Why     string
	// Received is the message's Received.
	Received time.Time
}

func (e hkEvent) String() string {
	return fmt.Sprintf("{%s client=%q topic=%q payload=%q qos=%d change=%d reason=0x%02X err=%v why=%q}",
		e.Kind, e.Client, e.Topic, e.Payload, e.QoS, e.Change, byte(e.Reason), e.Err, e.Why)
}

// recorder records every notification into a channel. Tests read it with
// expect, which skips unrelated events, so no test sleeps.
type recorder struct {
	id     string
	events core.EventSet
	topics []string
	ch     chan hkEvent
	// pending are events read from ch that no expect has matched yet.
	pending []hkEvent
}

func newRecorder(events ...core.Event) *recorder {
	return &recorder{id: "test.recorder", events: core.Events(events...), ch: make(chan hkEvent, 100000)}
}

func (r *recorder) ID() string            { return r.id }
func (r *recorder) Events() core.EventSet { return r.events }
func (r *recorder) Topics() []string      { return r.topics }

func (r *recorder) put(e hkEvent) {
	select {
	case r.ch <- e:
	default:
		panic("recorder: channel full")
	}
}

func msgEvent(kind, client string, m *core.Message) hkEvent {
	return hkEvent{Kind: kind, Client: client, Topic: m.Topic, Payload: string(m.Payload), QoS: m.QoS, Retain: m.Retain, Received: m.Received}
}

func (r *recorder) OnSession(_ context.Context, cl *core.ClientInfo, c core.SessionChange) {
	r.put(hkEvent{Kind: "session", Client: cl.ID, Change: c})
}
func (r *recorder) OnDisconnected(_ context.Context, cl *core.ClientInfo, reason packets.ReasonCode, err error) {
	r.put(hkEvent{Kind: "disconnected", Client: cl.ID, Reason: reason, Err: err})
}
func (r *recorder) OnSubscribed(_ context.Context, cl *core.ClientInfo, filter string, qos byte) {
	r.put(hkEvent{Kind: "subscribed", Client: cl.ID, Topic: filter, QoS: qos})
}
func (r *recorder) OnUnsubscribed(_ context.Context, cl *core.ClientInfo, filter string) {
	r.put(hkEvent{Kind: "unsubscribed", Client: cl.ID, Topic: filter})
}
func (r *recorder) OnPublished(_ context.Context, cl *core.ClientInfo, m *core.Message) {
	r.put(msgEvent("published", cl.ID, m))
}
func (r *recorder) OnDropped(_ context.Context, id string, m *core.Message, why string) {
	e := msgEvent("dropped", id, m)
	e.Why = why
	r.put(e)
}
func (r *recorder) OnAcked(_ context.Context, id string, m *core.Message) {
	r.put(msgEvent("acked", id, m))
}
func (r *recorder) OnRetained(_ context.Context, m *core.Message) {
	r.put(msgEvent("retained", "", m))
}
func (r *recorder) AuthorizePublish(_ context.Context, cl *core.ClientInfo, m *core.Message) core.Verdict {
	r.put(msgEvent("authorize_publish", cl.ID, m))
	return core.Next
}
func (r *recorder) AuthorizeSubscribe(_ context.Context, cl *core.ClientInfo, filter string, qos *byte) core.Verdict {
	r.put(hkEvent{Kind: "authorize_subscribe", Client: cl.ID, Topic: filter, QoS: *qos})
	return core.Next
}
func (r *recorder) OnStarted(context.Context) { r.put(hkEvent{Kind: "started"}) }
func (r *recorder) OnStopped(context.Context) { r.put(hkEvent{Kind: "stopped"}) }
func (r *recorder) OnSysTick(context.Context, core.Stats) {
	select {
	case r.ch <- hkEvent{Kind: "systick"}:
	default: // ticks may pile up; they are not all needed
	}
}

// expect returns the first recorded event for which match holds; events
// that do not match stay pending for later calls. It fails the test if
// none arrives within waitTimeout. Only the test goroutine calls it.
func (r *recorder) expect(t testing.TB, what string, match func(hkEvent) bool) hkEvent {
	t.Helper()
	for i, e := range r.pending {
		if match(e) {
			r.pending = append(r.pending[:i:i], r.pending[i+1:]...)
			return e
		}
	}
	deadline := time.After(waitTimeout)
	for {
		select {
		case e := <-r.ch:
			if match(e) {
				return e
			}
			r.pending = append(r.pending, e)
		case <-deadline:
			t.Fatalf("timed out after %v waiting for the hook to be told %s; it was told: %v", waitTimeout, what, r.pending)
			return hkEvent{}
		}
	}
}

// expectKind waits for an event of kind for client (any client if "").
func (r *recorder) expectKind(t testing.TB, kind, client string) hkEvent {
	t.Helper()
	return r.expect(t, kind+" for "+client, func(e hkEvent) bool {
		return e.Kind == kind && (client == "" || e.Client == client)
	})
}

// seen returns the events recorded so far (pending ones included) without
// waiting, and forgets them.
func (r *recorder) seen() []hkEvent {
	out := r.pending
	r.pending = nil
	for {
		select {
		case e := <-r.ch:
			out = append(out, e)
		default:
			return out
		}
	}
}

// ---------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------

// connectV3Code connects a 3.1.1 client with a username and password and
// returns the CONNACK return code (3.1.1 section 3.2.2.3).
func connectV3Code(t testing.TB, addr, clientID, user, pass string) byte {
	t.Helper()
	o := mqtt.NewClientOptions().
		AddBroker("tcp://" + addr).
		SetClientID(clientID).
		SetProtocolVersion(4).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(waitTimeout)
	if user != "" {
		o.SetUsername(user).SetPassword(pass)
	}
	cli := mqtt.NewClient(o)
	tok := cli.Connect()
	if !tok.WaitTimeout(waitTimeout) {
		t.Fatalf("3.1.1 %s: no CONNACK within %v", clientID, waitTimeout)
	}
	code := tok.(*mqtt.ConnectToken).ReturnCode()
	if code == 0 {
		t.Cleanup(func() { cli.Disconnect(100) })
	}
	return code
}

// v5Creds returns a CONNECT for clientID with a username and password.
func v5Creds(clientID, user, pass string) *paho.Connect {
	cp := v5Connect(clientID)
	if user != "" {
		cp.Username, cp.UsernameFlag = user, true
	}
	if pass != "" {
		cp.Password, cp.PasswordFlag = []byte(pass), true
	}
	return cp
}

// dialV5Code connects a v5 client and returns the CONNACK reason code;
// the client is nil when the broker refused it.
func dialV5Code(t testing.TB, addr string, cp *paho.Connect) (*v5Client, byte) {
	t.Helper()
	c, err := dialV5(t, addr, cp, nil)
	if c.Connack == nil {
		t.Fatalf("v5 %s: no CONNACK: %v", cp.ClientID, err)
	}
	if err != nil {
		return nil, c.Connack.ReasonCode
	}
	return c, c.Connack.ReasonCode
}

// v3Sub subscribes a 3.x client and returns the SUBACK return code.
func (c *v3Client) subCode(filter string, qos byte) byte {
	c.t.Helper()
	tok := c.Cli.Subscribe(filter, qos, nil)
	if !tok.WaitTimeout(waitTimeout) {
		c.t.Fatalf("%s: SUBACK for %q not received", c.ID, filter)
	}
	return tok.(*mqtt.SubscribeToken).Result()[filter]
}

// ---------------------------------------------------------------------------
// Raw MQTT 5 client over core/packets, for AUTH
// ---------------------------------------------------------------------------

// authClient is a raw MQTT 5 connection: packets are encoded and decoded
// with core/packets, so the AUTH exchange paho hides can be driven.
type authClient struct {
	t    testing.TB
	conn net.Conn
	r    *packets.Reader
}

func dialAuth(t testing.TB, addr string) *authClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	r := packets.NewReader(bufio.NewReader(conn), 0)
	r.SetVersion(packets.Version5)
	return &authClient{t: t, conn: conn, r: r}
}

func (c *authClient) send(p *packets.Packet) {
	c.t.Helper()
	p.ProtocolVersion = packets.Version5
	buf := bytebufferpool.Get()
	defer bytebufferpool.Put(buf)
	if err := p.Encode(buf); err != nil {
		c.t.Fatalf("encoding %s: %v", p.Type, err)
	}
	_ = c.conn.SetWriteDeadline(time.Now().Add(waitTimeout))
	if _, err := c.conn.Write(buf.B); err != nil {
		c.t.Fatalf("writing %s: %v", p.Type, err)
	}
}

// recv reads the next packet, failing unless it is of type typ.
func (c *authClient) recv(typ packets.Type) *packets.Packet {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(waitTimeout))
	p := new(packets.Packet)
	if err := c.r.ReadPacket(p); err != nil {
		c.t.Fatalf("waiting for %s: %v", typ, err)
	}
	if p.Type != typ {
		c.t.Fatalf("got %s, want %s", biDescribe(p), typ)
	}
	return p
}

// connect sends a CONNECT with an Authentication Method and Data.
func (c *authClient) connect(id, method string, data []byte) {
	c.t.Helper()
	p := &packets.Packet{Type: packets.Connect}
	p.Connect.ClientID = id
	p.Connect.CleanStart = true
	p.Connect.KeepAlive = 30
	if method != "" {
		p.Properties.AuthMethod = method
		p.Properties.Set(packets.PropAuthMethod)
	}
	if data != nil {
		p.Properties.AuthData = data
		p.Properties.Set(packets.PropAuthData)
	}
	c.send(p)
}

// auth sends an AUTH with a reason code, method and data.
func (c *authClient) auth(code packets.ReasonCode, method string, data []byte) {
	c.t.Helper()
	p := &packets.Packet{Type: packets.Auth, ReasonCode: code}
	p.Properties.AuthMethod = method
	p.Properties.Set(packets.PropAuthMethod)
	if data != nil {
		p.Properties.AuthData = data
		p.Properties.Set(packets.PropAuthData)
	}
	c.send(p)
}

// challengeHook implements a two-round challenge/response method
// "TEST-CHALLENGE": the client's first data is "hello"; the hook answers
// with the challenge "nonce-<n>", and accepts "response-<n>" with server
// data "welcome". Re-authentication runs the same two rounds, or one with
// the data "reauth-token" (server data "reauth-ok"). Other methods get
// Next.
type challengeHook struct {
	mu     sync.Mutex
	n      int
	steps  []string // "method reauth data" per call
	refuse bool     // refuse every response
}

const challengeMethod = "TEST-CHALLENGE"

func (*challengeHook) ID() string            { return "test.challenge" }
func (*challengeHook) Events() core.EventSet { return core.Events(core.EventEnhancedAuth) }
func (h *challengeHook) EnhancedAuth(_ context.Context, _ *core.ClientInfo, st *core.AuthStep) core.Verdict {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.steps = append(h.steps, fmt.Sprintf("%s reauth=%v %s", st.Method, st.Reauth, st.Data))
	if st.Method != challengeMethod {
		return core.Next
	}
	switch {
	case st.Reauth && !h.refuse && string(st.Data) == "reauth-token":
		st.Response = []byte("reauth-ok")
		return core.Allow
	case string(st.Data) == "hello":
		h.n++
		st.Continue = true
		st.Response = fmt.Appendf(nil, "nonce-%d", h.n)
		return core.Next
	case !h.refuse && string(st.Data) == fmt.Sprintf("response-%d", h.n):
		st.Response = []byte("welcome")
		return core.Allow
	}
	return core.Deny(packets.NotAuthorized, "wrong response")
}

func (h *challengeHook) calls() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.steps...)
}

// banHook is a Connect decision: client IDs starting with "banned" are
// refused with Banned; the others get Next.
type banHook struct{}

func (*banHook) ID() string            { return "test.ban" }
func (*banHook) Events() core.EventSet { return core.Events(core.EventConnect) }
func (*banHook) Connect(_ context.Context, cl *core.ClientInfo, _ *core.ClientPolicy) core.Verdict {
	if strings.HasPrefix(cl.ID, "banned") {
		return core.Deny(packets.Banned, "banned by test.ban")
	}
	return core.Next
}

// codeHook denies with a fixed reason code: Authenticate for client IDs
// starting with "deny", AuthorizePublish and AuthorizeSubscribe for topics
// and filters under deny/.
type codeHook struct {
	code packets.ReasonCode
}

func (*codeHook) ID() string { return "test.code" }
func (*codeHook) Events() core.EventSet {
	return core.Events(core.EventAuthenticate, core.EventAuthorizePublish, core.EventAuthorizeSubscribe)
}
func (h *codeHook) Authenticate(_ context.Context, cl *core.ClientInfo, _ *core.Credentials) core.Verdict {
	if strings.HasPrefix(cl.ID, "deny") {
		return core.Deny(h.code, "refused with a fixed code")
	}
	return core.Next
}
func (h *codeHook) AuthorizePublish(_ context.Context, _ *core.ClientInfo, m *core.Message) core.Verdict {
	if strings.HasPrefix(m.Topic, "deny/") {
		return core.Deny(h.code, "refused with a fixed code")
	}
	return core.Next
}
func (h *codeHook) AuthorizeSubscribe(_ context.Context, _ *core.ClientInfo, f string, _ *byte) core.Verdict {
	if strings.HasPrefix(f, "deny/") {
		return core.Deny(h.code, "refused with a fixed code")
	}
	return core.Next
}

// ctxHook keeps the context of every AuthorizePublish call, by client.
type ctxHook struct {
	mu   sync.Mutex
	ctxs map[string]context.Context
}

func (*ctxHook) ID() string            { return "test.ctx" }
func (*ctxHook) Events() core.EventSet { return core.Events(core.EventAuthorizePublish) }
func (h *ctxHook) AuthorizePublish(ctx context.Context, cl *core.ClientInfo, _ *core.Message) core.Verdict {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ctxs == nil {
		h.ctxs = make(map[string]context.Context)
	}
	h.ctxs[cl.ID] = ctx
	return core.Next
}

func (h *ctxHook) ctx(id string) context.Context {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ctxs[id]
}

// slowExpiryHook takes its time over OnSession(expired), as a hook
// persisting the change remotely might, and records when it starts and
// ends, and when OnStopped comes.
type slowExpiryHook struct {
	ch chan string
}

func (*slowExpiryHook) ID() string { return "test.slow-expiry" }
func (*slowExpiryHook) Events() core.EventSet {
	return core.Events(core.EventSession, core.EventStopped)
}
func (h *slowExpiryHook) OnSession(_ context.Context, _ *core.ClientInfo, c core.SessionChange) {
	if c != core.SessionExpired {
		return
	}
	h.ch <- "expired: begin"
	<-time.After(500 * time.Millisecond) // the slow work
	h.ch <- "expired: end"
}
func (h *slowExpiryHook) OnStopped(context.Context) { h.ch <- "stopped" }
