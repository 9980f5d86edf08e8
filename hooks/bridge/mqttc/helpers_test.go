package mqttc_test

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/mqtttest"
	"github.com/vanemq/vanemq/core/packets"
	"github.com/vanemq/vanemq/hooks/bridge/mqttc"
	"github.com/vanemq/vanemq/listeners/tcp"

	"github.com/valyala/bytebufferpool"
)

// wait bounds every wait of the tests.
const wait = 5 * time.Second

// version is one protocol version the tests run with.
type version struct {
	name string
	v    byte
}

// versions returns the protocol versions every behaviour is tested with.
func versions() []version {
	return []version{{"v311", packets.Version311}, {"v5", packets.Version5}}
}

// startBroker starts a broker of this repository on a loopback port, with
// opts (AllowAnonymous is the test's to set) and hooks, shut down when the
// test ends. It returns the listener's address.
func startBroker(t *testing.T, opts core.Options, hooks ...core.Hook) string {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.SysInterval == 0 {
		opts.SysInterval = -1
	}
	srv, err := core.New(opts)
	if err != nil {
		t.Fatalf("core.New: %v", err)
	}
	for _, h := range hooks {
		if err := srv.AddHook(h, 0); err != nil {
			t.Fatalf("AddHook: %v", err)
		}
	}
	return mqtttest.Serve(t, srv, tcp.New("tcp", "127.0.0.1:0"))
}

// anonymous returns broker options that let anyone connect.
func anonymous() core.Options { return core.Options{AllowAnonymous: true} }

// dial connects to addr and runs Connect with opts.
func dial(t *testing.T, addr string, opts mqttc.Options) (*mqttc.Client, error) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	return mqttc.Connect(ctx, conn, opts)
}

// connect is dial that must succeed; the client is closed when the test
// ends, and its goroutines waited for.
func connect(t *testing.T, addr string, opts mqttc.Options) *mqttc.Client {
	t.Helper()
	c, err := dial(t, addr, opts)
	if err != nil {
		t.Fatalf("Connect %q: %v", opts.ClientID, err)
	}
	t.Cleanup(func() { closeWait(t, c) })
	return c
}

// closeWait closes c and waits for Done.
func closeWait(t *testing.T, c *mqttc.Client) {
	t.Helper()
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	waitDone(t, c)
}

// waitDone waits for c's connection to end.
func waitDone(t *testing.T, c *mqttc.Client) {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(wait):
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Fatalf("the connection did not end\n\n%s", buf)
	}
}

// received is a message given to OnMessage, with its ack.
type received struct {
	m   mqttc.Message
	ack func(packets.ReasonCode)
}

// inbox returns a channel of received messages and the OnMessage that
// fills it.
func inbox() (chan received, func(mqttc.Message, func(packets.ReasonCode))) {
	ch := make(chan received, 1024)
	return ch, func(m mqttc.Message, ack func(packets.ReasonCode)) {
		ch <- received{m, ack}
	}
}

// next returns the next received message.
func next(t *testing.T, ch <-chan received) received {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(wait):
		t.Fatal("no message received")
		return received{}
	}
}

// result is what a done callback was called with.
type result struct {
	code packets.ReasonCode
	err  error
}

// doneChan returns a channel of done results and the done callback.
func doneChan() (chan result, func(packets.ReasonCode, error)) {
	ch := make(chan result, 64)
	return ch, func(code packets.ReasonCode, err error) { ch <- result{code, err} }
}

// nextResult returns the next done result.
func nextResult(t *testing.T, ch <-chan result) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(wait):
		t.Fatal("done was not called")
		return result{}
	}
}

// subscribe subscribes c to filter at qos and checks the grant.
func subscribe(t *testing.T, c *mqttc.Client, filter string, qos byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	codes, err := c.Subscribe(ctx, []packets.Subscription{{Filter: filter, QoS: qos}})
	if err != nil {
		t.Fatalf("Subscribe %s: %v", filter, err)
	}
	if len(codes) != 1 || codes[0] != packets.ReasonCode(qos) {
		t.Fatalf("Subscribe %s: codes %v, want [%d]", filter, codes, qos)
	}
}

// publish publishes m on c and, for QoS 1 and 2, waits for done.
func publish(t *testing.T, c *mqttc.Client, m mqttc.Message) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ch, done := doneChan()
	if err := c.Publish(ctx, m, done); err != nil {
		t.Fatalf("Publish %s: %v", m.Topic, err)
	}
	return nextResult(t, ch)
}

// gateHook holds every PUBLISH to gate/# in the broker's Publish hook
// until open is closed, so the broker's acknowledgements wait too.
type gateHook struct {
	open    chan struct{}
	once    sync.Once
	entered chan struct{}
}

func newGate() *gateHook {
	return &gateHook{open: make(chan struct{}), entered: make(chan struct{}, 64)}
}

func (h *gateHook) ID() string            { return "test.gate" }
func (h *gateHook) Events() core.EventSet { return core.Events(core.EventPublish) }
func (h *gateHook) Topics() []string      { return []string{"gate/#"} }
func (h *gateHook) release()              { h.once.Do(func() { close(h.open) }) }
func (h *gateHook) waitEntered(t *testing.T) {
	t.Helper()
	select {
	case <-h.entered:
	case <-time.After(wait):
		t.Fatal("no PUBLISH reached the gate")
	}
}

func (h *gateHook) Publish(ctx context.Context, _ *core.ClientInfo, _ *core.Message) core.Verdict {
	select {
	case h.entered <- struct{}{}:
	default:
	}
	select {
	case <-h.open:
	case <-ctx.Done():
	}
	return core.Next
}

// denyHook refuses every PUBLISH to deny/# with Not authorized.
type denyHook struct{}

func (denyHook) ID() string            { return "test.deny" }
func (denyHook) Events() core.EventSet { return core.Events(core.EventAuthorizePublish) }
func (denyHook) Topics() []string      { return []string{"deny/#"} }
func (denyHook) AuthorizePublish(context.Context, *core.ClientInfo, *core.Message) core.Verdict {
	return core.Deny(packets.NotAuthorized, "denied by test")
}

// fakeServer is the server side of one connection, scripted by a test: for
// what the broker does not do (re-send on a live connection, topic
// aliases, protocol errors, silence).
type fakeServer struct {
	conn net.Conn
	r    *packets.Reader
	v    byte
}

// startFake connects a client with opts to a scripted server that answers
// CONNECT with connack (ProtocolVersion is set), and returns both ends.
func startFake(t *testing.T, opts mqttc.Options, connack *packets.Packet) (*mqttc.Client, *fakeServer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type accepted struct {
		fs  *fakeServer
		err error
	}
	ch := make(chan accepted, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			ch <- accepted{err: err}
			return
		}
		fs := &fakeServer{conn: nc, r: packets.NewReader(bufio.NewReader(nc), 0), v: opts.Version}
		p, err := fs.readErr()
		if err == nil && p.Type != packets.Connect {
			err = errors.New("first packet is " + p.Type.String())
		}
		if err == nil {
			fs.r.SetVersion(p.ProtocolVersion)
			err = fs.writeErr(connack)
		}
		ch <- accepted{fs, err}
	}()
	c, err := dial(t, ln.Addr().String(), opts)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(func() { closeWait(t, c) })
	var a accepted
	select {
	case a = <-ch:
	case <-time.After(wait):
		t.Fatal("fake server: no connection")
	}
	if a.err != nil {
		t.Fatalf("fake server: %v", a.err)
	}
	t.Cleanup(func() { a.fs.conn.Close() })
	return c, a.fs
}

func (fs *fakeServer) readErr() (*packets.Packet, error) {
	_ = fs.conn.SetReadDeadline(time.Now().Add(wait))
	var p packets.Packet
	err := fs.r.ReadPacket(&p)
	return &p, err
}

func (fs *fakeServer) writeErr(p *packets.Packet) error {
	p.ProtocolVersion = fs.v
	buf := bytebufferpool.Get()
	defer bytebufferpool.Put(buf)
	if err := p.Encode(buf); err != nil {
		return err
	}
	_ = fs.conn.SetWriteDeadline(time.Now().Add(wait))
	_, err := fs.conn.Write(buf.B)
	return err
}

// read returns the next packet the client sent.
func (fs *fakeServer) read(t *testing.T) *packets.Packet {
	t.Helper()
	p, err := fs.readErr()
	if err != nil {
		t.Fatalf("fake server: read: %v", err)
	}
	return p
}

// expect reads the next packet and checks its type.
func (fs *fakeServer) expect(t *testing.T, typ packets.Type) *packets.Packet {
	t.Helper()
	p := fs.read(t)
	if p.Type != typ {
		t.Fatalf("fake server: got %s (id %d, code %s), want %s", p.Type, p.PacketID, p.ReasonCode, typ)
	}
	return p
}

// write sends p to the client.
func (fs *fakeServer) write(t *testing.T, p *packets.Packet) {
	t.Helper()
	if err := fs.writeErr(p); err != nil {
		t.Fatalf("fake server: write %s: %v", p.Type, err)
	}
}

// writeRaw sends raw bytes to the client.
func (fs *fakeServer) writeRaw(t *testing.T, b []byte) {
	t.Helper()
	if _, err := fs.conn.Write(b); err != nil {
		t.Fatalf("fake server: write: %v", err)
	}
}

// expectClosed reads until the client closes the connection, and fails on
// any packet but those of the allowed types.
func (fs *fakeServer) expectClosed(t *testing.T, allowed ...packets.Type) []*packets.Packet {
	t.Helper()
	var got []*packets.Packet
	for range 100 {
		p, err := fs.readErr()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("fake server: the client did not close the connection")
			}
			return got
		}
		ok := false
		for _, a := range allowed {
			ok = ok || p.Type == a
		}
		if !ok {
			t.Fatalf("fake server: unexpected %s while waiting for the close", p.Type)
		}
		got = append(got, p)
	}
	t.Fatal("fake server: too many packets")
	return nil
}

// disconnection is a connection end the broker told its hooks about.
type disconnection struct {
	id     string
	reason packets.ReasonCode
}

// eventsHook tells the test when the broker is done with a connection:
// everything the client sent before its DISCONNECT has been handled.
type eventsHook struct {
	ch chan disconnection
}

func newEvents() *eventsHook { return &eventsHook{ch: make(chan disconnection, 256)} }

func (h *eventsHook) ID() string            { return "test.events" }
func (h *eventsHook) Events() core.EventSet { return core.Events(core.EventDisconnected) }

func (h *eventsHook) OnDisconnected(_ context.Context, cl *core.ClientInfo, reason packets.ReasonCode, _ error) {
	h.ch <- disconnection{cl.ID, reason}
}

// waitDisconnected waits until the broker has ended a connection of client
// id, and returns the reason (the client's DISCONNECT reason code).
func (h *eventsHook) waitDisconnected(t *testing.T, id string) packets.ReasonCode {
	t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case d := <-h.ch:
			if d.id == id {
				return d.reason
			}
		case <-timeout:
			t.Fatalf("the broker did not end the connection of %s", id)
			return 0
		}
	}
}
