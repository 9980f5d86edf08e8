package core

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/vanemq/vanemq/core/packets"
)

// client is one network connection: its reader runs the protocol, its
// writer drains the outbound queue. Its fields are grouped by who owns
// them: the fields here are set by newClient, connState while connecting,
// readerState by the reader, outAliases by the running writer, outQueue
// and pacingState under outMu; the atomics at the end are shared.
type client struct {
	srv      *Server
	conn     net.Conn
	listener string
	remote   string
	// internal is set for the broker's own connections (InternalConn),
	// with the policy they carry.
	internal       bool
	internalPolicy ClientPolicy

	connState
	readerState
	outAliases

	// outQueue is the outbound queue and its writer's state, under outMu
	// (writer.go).
	outQueue

	pacingState

	// commits counts what the client's acknowledgements wait for: a
	// CONNACK's session change in a durable store, and the batches'
	// tickets (acks.go) not yet released.
	commits atomic.Int32
	ackQueue
	// closeReason is the v5 reason the broker closed the connection with,
	// or Success for a normal DISCONNECT from the client.
	closeReason atomic.Uint32
	// stopping is set when the connection is being closed from outside the
	// reader; the reader's deadlines then stay in the past.
	stopping atomic.Bool
	// ctx is the connection's context, which hooks get: it ends when the
	// connection is closed from outside (kick: a takeover, an operator,
	// Shutdown), cutting short a decision under way, and at finish.
	ctx    context.Context
	cancel context.CancelFunc
	// v5Connected is set once a v5 client's CONNACK with success is
	// queued: closeWith may then queue a DISCONNECT. It is what another
	// goroutine (a takeover, Shutdown) reads instead of version and
	// connected, which the reader writes while it connects.
	v5Connected atomic.Bool
}

// connState is what connecting settles (connect.go: Server.connect and
// attach, on the reader's goroutine, before anything else can reach the
// client): it is only read afterwards, but for will, which changes under
// the session's lock.
type connState struct {
	id         string
	version    byte
	sess       *session
	connected  bool // CONNACK with success sent
	cleanStart bool
	keepAlive  uint16
	// bridge is a 3.x client that set the bridge bit of its protocol
	// level (packets.ConnectFields.Bridge): its subscriptions are no-local
	// and retain-as-published.
	bridge bool

	sendMax        uint16 // outbound QoS 1/2 window: min(client Receive Maximum, MaxInflight)
	maxOutPacket   uint32 // client's Maximum Packet Size, 0 = protocol maximum
	aliasOutMax    uint16 // outbound topic aliases the client accepts
	reqProblemInfo bool
	will           *packets.Will
	willClaimed    bool   // the cluster keeps will (claimedWill): tell it when it is settled
	connectExpiry  uint32 // session expiry the CONNECT asked for (v5)
	// expiryMax caps the session expiry interval (the server's, or the
	// client's policy's).
	expiryMax  uint32
	info       ClientInfo
	maxQueued  int    // the session queue bound (Options or a Connect hook's policy)
	mount      string // topic prefix set by a Connect hook's policy
	authMethod string // v5 enhanced authentication method, "" if none
}

// readerState is owned by the connection's reader goroutine (run, then
// serve, then finish).
type readerState struct {
	cr *connReader
	r  *packets.Reader
	// batch is what the reader gathers while it handles a batch of
	// packets, and does at its end (batch.go).
	batch readBatch
	// pubID is the packet identifier of the PUBLISH being routed, while
	// it is (forward needs it for a QoS 2 hand-off that fails).
	pubID uint16

	aliasIn map[uint16]string // inbound topic aliases
	// aliasInBytes is the length of aliasIn's topics.
	aliasInBytes int
	// hookMsg is the message authorization hooks are shown when no hook
	// rewrites messages; valid during the hook call.
	hookMsg Message
	// reauth is the v5 re-authentication in progress, if any.
	reauth *AuthStep

	// disconnected is set when the client sent DISCONNECT, with its reason
	// code in clientReason; lostErr is why the connection was lost when
	// it ended without one.
	disconnected bool
	clientReason packets.ReasonCode
	lostErr      error
}

// outAliases are the outbound topic aliases, owned by whichever writer
// goroutine runs, and the length of their topics.
type outAliases struct {
	aliasOut      map[string]uint16
	aliasOutBytes int
	nextAlias     uint16
}

// outItem is a packet waiting for the writer: a PUBLISH delivery or a
// control packet.
type outItem struct {
	d       delivery
	id      uint16
	dup     bool
	publish bool
	ctl     outControl
}

// outControl is a control packet to write: the simple acknowledgements by
// kind, identifier and reason code; anything richer as a full packet.
type outControl struct {
	kind  packets.Type
	id    uint16
	code  packets.ReasonCode
	pkt   *packets.Packet
	final bool // close the connection once written
}

// errClientDisconnect ends the read loop when the client sent DISCONNECT.
var errClientDisconnect = errors.New("client sent DISCONNECT")

func newClient(ctx context.Context, s *Server, nc net.Conn, listener string) *client {
	c := &client{
		srv:      s,
		conn:     nc,
		listener: listener,
		remote:   nc.RemoteAddr().String(),
	}
	c.ctx, c.cancel = context.WithCancel(ctx)
	if ic, ok := nc.(InternalConn); ok {
		c.internal = true
		c.internalPolicy = ic.InternalPolicy()
	}
	c.cr = newConnReader(nc, &s.readBufs)
	// Until CONNECT is answered, at most a CONNECT's size (connect.go
	// raises it to the maximum packet size).
	c.r = packets.NewReader(c.cr, min(s.opts.MaxConnectSize, s.opts.MaxPacketSize))
	return c
}

// run handles CONNECT, then hands the connection to serve on a fresh
// goroutine: the deep call chains of connecting (authentication, logging)
// grow this goroutine's stack, and an idle connection should not keep it.
func (c *client) run() {
	ctx := c.ctx
	if !c.connectPhase(ctx) {
		c.finish()
		return
	}
	c.srv.wg.Add(1)
	go func() {
		defer c.srv.wg.Done()
		c.serve(ctx)
	}()
}

// connectPhase reads and answers CONNECT; it reports whether the client is
// connected.
func (c *client) connectPhase(ctx context.Context) bool {
	var pkt packets.Packet
	_ = c.conn.SetReadDeadline(time.Now().Add(c.srv.opts.ConnectTimeout))
	if c.stopping.Load() {
		return false
	}
	if err := c.r.ReadPacket(&pkt); err != nil {
		c.connectReadFailed(&pkt, err)
		return false
	}
	if pkt.Type != packets.Connect {
		c.logger().Warn("closing connection: first packet is not CONNECT [MQTT-3.1.0-1]", "packet", pkt.Type.String())
		return false
	}
	if !c.srv.connect(ctx, c, &pkt) {
		return false
	}
	if c.srv.store != nil {
		c.flushConnect()
	}
	c.batch.startWriters()
	return true
}

// serve is the connection's reader after CONNECT. It waits for data in a
// shallow frame, so a goroutine parked on an idle connection needs little
// stack, then handles everything that has arrived.
func (c *client) serve(ctx context.Context) {
	defer c.finish()
	for {
		c.setReadDeadline()
		if err := c.cr.wait(); err != nil {
			c.readFailed(err)
			return
		}
		ok := c.readArrived(ctx)
		c.countReceived()
		c.flushStore()
		c.batch.startWriters()
		if !ok {
			return
		}
		c.batch.pace()
		// Let the writers this batch fed run before reading more: a reader
		// with a full socket never blocks, and would otherwise hold the
		// CPU for a whole scheduler slice while subscriber queues overflow.
		runtime.Gosched()
	}
}

// readArrived decodes and handles packets while bytes are buffered. It
// reports false when the connection must end.
func (c *client) readArrived(ctx context.Context) bool {
	var pkt packets.Packet
	for n := 1; ; n++ {
		if err := c.r.ReadPacket(&pkt); err != nil {
			c.readFailed(err)
			return false
		}
		c.batch.packets++
		if err := c.handle(ctx, &pkt); err != nil {
			if !errors.Is(err, errClientDisconnect) {
				c.protocolError(err)
			}
			return false
		}
		if c.cr.buffered() == 0 || n == 64 {
			return true
		}
	}
}

// setReadDeadline arms the keep alive: 1.5 times the interval [MQTT-3.1.2-22].
func (c *client) setReadDeadline() {
	if c.stopping.Load() {
		_ = c.conn.SetReadDeadline(time.Unix(1, 0))
		return
	}
	var deadline time.Time
	if c.keepAlive != 0 {
		deadline = time.Now().Add(time.Duration(c.keepAlive) * 1500 * time.Millisecond)
	}
	_ = c.conn.SetReadDeadline(deadline)
	// A wakeReader between the check above and this deadline would be
	// overwritten, and a kicked connection left reading until its keep
	// alive (or forever): check again.
	if c.stopping.Load() {
		_ = c.conn.SetReadDeadline(time.Unix(1, 0))
	}
}

// handle dispatches one packet received after CONNECT.
func (c *client) handle(ctx context.Context, p *packets.Packet) error {
	switch p.Type {
	case packets.Publish:
		return c.srv.handlePublish(ctx, c, p)
	case packets.Puback:
		c.handleAck(p.PacketID, 1)
	case packets.Pubrec:
		c.handlePubrec(p)
	case packets.Pubrel:
		c.handlePubrel(p.PacketID)
	case packets.Pubcomp:
		c.handleAck(p.PacketID, 2)
	case packets.Subscribe:
		return c.srv.handleSubscribe(ctx, c, p)
	case packets.Unsubscribe:
		return c.srv.handleUnsubscribe(ctx, c, p)
	case packets.Pingreq:
		c.enqueueControl(outControl{kind: packets.Pingresp}, &c.batch)
	case packets.Disconnect:
		return c.handleDisconnect(p)
	case packets.Connect:
		return packets.Errorf(packets.ProtocolError, "second CONNECT on one connection [MQTT-3.1.0-2]")
	case packets.Auth:
		return c.handleAuth(ctx, p)
	default:
		return packets.Errorf(packets.ProtocolError, "a client may not send %s", p.Type)
	}
	return nil
}

// handleAck completes an outbound QoS 1 (PUBACK) or QoS 2 (PUBCOMP) flow.
func (c *client) handleAck(id uint16, qos byte) {
	s := c.sess
	s.mu.Lock()
	m, ok := s.inflight.get(id)
	if ok && (m.qos != qos || (qos == 2 && !m.pubrec)) {
		ok = false
	}
	if ok {
		s.ackLocked(id, &c.batch)
	}
	s.mu.Unlock()
	if !ok {
		if c.logs(slog.LevelDebug) {
			c.logger().Debug("acknowledgement for unknown packet identifier", "id", id, "qos", qos)
		}
	}
}

// handlePubrec answers PUBREC with PUBREL [MQTT-4.3.3-4]; a PUBREC with an
// error reason ends the flow there [MQTT-4.3.3-? v5 4.3.3].
func (c *client) handlePubrec(p *packets.Packet) {
	s := c.sess
	s.mu.Lock()
	m, ok := s.inflight.get(p.PacketID)
	if ok && p.ReasonCode.IsError() {
		s.ackLocked(p.PacketID, &c.batch)
		s.mu.Unlock()
		return
	}
	if ok {
		m.pubrec = true
		if m.stored {
			c.srv.persist(&c.batch, s.deliveryOp(OpQueueUpdate, &m.delivery, m.id, true))
		}
	}
	s.mu.Unlock()
	code := packets.Success
	if !ok {
		code = packets.PacketIdentifierNotFound
	}
	c.enqueueControl(outControl{kind: packets.Pubrel, id: p.PacketID, code: code}, &c.batch)
}

// handlePubrel releases an inbound QoS 2 message: the message was
// delivered on PUBLISH, so only the identifier is freed [MQTT-4.3.3-9].
func (c *client) handlePubrel(id uint16) {
	s := c.sess
	s.mu.Lock()
	_, ok := s.inQoS2[id]
	delete(s.inQoS2, id)
	delete(s.unforwarded, id)
	if ok && s.stored {
		c.srv.persist(&c.batch, StoreOp{Kind: OpInboundDelete, ClientID: s.id, PacketID: id})
	}
	s.mu.Unlock()
	code := packets.Success
	if !ok {
		code = packets.PacketIdentifierNotFound
	}
	c.ack(outControl{kind: packets.Pubcomp, id: id, code: code})
}

// handleDisconnect takes a client's DISCONNECT: a normal disconnection
// discards the will [MQTT-3.14.4-3], 0x04 keeps it; v5 may update the
// session expiry, but not from zero (v5 section 3.14.2.2.2).
func (c *client) handleDisconnect(p *packets.Packet) error {
	s := c.sess
	if c.version == packets.Version5 && p.Properties.Has(packets.PropSessionExpiry) {
		if c.connectExpiry == 0 && p.Properties.SessionExpiry != 0 {
			return packets.Errorf(packets.ProtocolError, "DISCONNECT sets a session expiry after CONNECT set 0 (v5 section 3.14.2.2.2)")
		}
		s.mu.Lock()
		s.expiry = min(p.Properties.SessionExpiry, c.expiryMax)
		s.mu.Unlock()
	}
	c.disconnected = true
	c.clientReason = p.ReasonCode
	if p.ReasonCode != packets.DisconnectWithWill {
		s.mu.Lock()
		c.will = nil
		s.mu.Unlock()
	}
	if c.logs(slog.LevelDebug) {
		c.logger().Debug("client disconnected", "reason", p.ReasonCode.String())
	}
	return errClientDisconnect
}

// connectReadFailed handles a failure to read the first packet.
func (c *client) connectReadFailed(p *packets.Packet, err error) {
	var perr *packets.Error
	switch {
	case errors.As(err, &perr) && perr.Code == packets.PacketTooLarge:
		c.logger().Warn("bad CONNECT: larger than the broker reads before CONNECT is answered",
			"cause", err, "limit", "max_connect_size", "max_connect_size", min(c.srv.opts.MaxConnectSize, c.srv.opts.MaxPacketSize))
		if p.Type == packets.Connect && p.ProtocolVersion == packets.Version5 {
			c.version = packets.Version5
			c.sendConnack(perr.Code, false, nil, true)
		}
	case errors.As(err, &perr):
		c.logger().Warn("bad CONNECT", "cause", err)
		if p.Type == packets.Connect && perr.Code == packets.UnsupportedProtocolVersion {
			c.version = p.ProtocolVersion
			if c.version != packets.Version5 {
				c.version = packets.Version311
			}
			c.sendConnack(perr.Code, false, nil, true)
		} else if p.Type == packets.Connect && p.ProtocolVersion == packets.Version5 {
			c.version = packets.Version5
			c.sendConnack(perr.Code, false, nil, true)
		}
	case isTimeout(err):
		c.logger().Warn("closing connection: no CONNECT within the connect timeout", "timeout", c.srv.opts.ConnectTimeout)
	case errors.Is(err, io.EOF):
		if c.logs(slog.LevelDebug) {
			c.logger().Debug("connection closed before CONNECT")
		}
	default:
		c.logger().Warn("reading CONNECT failed", "cause", err)
	}
}

// readFailed classifies a read error after CONNECT and answers it.
func (c *client) readFailed(err error) {
	var perr *packets.Error
	switch {
	case errors.As(err, &perr):
		c.protocolError(err)
	case isTimeout(err):
		if c.stopping.Load() {
			return
		}
		c.logger().Warn("keep alive timeout: closing connection", "keepalive", c.keepAlive)
		c.closeWith(packets.KeepAliveTimeout, "keep alive timeout")
	case errors.Is(err, io.EOF):
		c.lostErr = err
		if c.logs(slog.LevelDebug) {
			c.logger().Debug("connection closed by client without DISCONNECT")
		}
	default:
		if c.stopping.Load() {
			return
		}
		c.lostErr = err
		if c.logs(slog.LevelDebug) {
			c.logger().Debug("connection read failed", "cause", err)
		}
	}
}

// protocolError logs a protocol violation and closes the connection with the
// error's reason code (v5 DISCONNECT; 3.x clients are just disconnected).
func (c *client) protocolError(err error) {
	code := packets.CodeOf(err)
	c.logger().Warn("protocol violation: closing connection", "reason", code.String(), "cause", err)
	c.srv.stats.protocolErrors.Add(1)
	c.closeWith(code, err.Error())
}

// closeWith queues a v5 DISCONNECT with code and reason (none for 3.x) as
// the connection's last packet and waits, bounded, for it to be written.
func (c *client) closeWith(code packets.ReasonCode, reason string) {
	c.closeReason.Store(uint32(code))
	if !c.v5Connected.Load() {
		return
	}
	d := &packets.Packet{Type: packets.Disconnect, ProtocolVersion: packets.Version5, ReasonCode: code}
	if reason != "" {
		d.Properties.ReasonString = reason
		d.Properties.Set(packets.PropReasonString)
	}
	c.enqueueControl(outControl{pkt: d, final: true}, nil)
}

// kick closes the connection from another goroutine (takeover, shutdown):
// the DISCONNECT is queued, then the reader is woken by a read deadline,
// and the connection's context ends, so a hook's decision under way for it
// is cut short.
func (c *client) kick(code packets.ReasonCode, reason string) {
	c.closeWith(code, reason)
	c.wakeReader()
	c.cancel()
}

// wakeReader makes the reader's blocked read return so the connection ends.
func (c *client) wakeReader() {
	c.stopping.Store(true)
	_ = c.conn.SetReadDeadline(time.Unix(1, 0))
}

// finish ends the connection: a running writer drains what is queued
// (bounded by a write deadline), the socket closes, and the session is
// detached. When the broker's last packet said why it closes, the socket
// is half-closed instead, and closed after a lingering close (linger),
// once the session is detached: the session moves on at once.
func (c *client) finish() {
	_ = c.conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
	c.outMu.Lock()
	c.closing = true
	switch {
	case c.writing:
		ch := make(chan struct{})
		c.writerExit = ch
		c.outMu.Unlock()
		<-ch
		c.outMu.Lock()
	case len(c.out) > 0 && !c.writerDone && !c.outHeld:
		c.writing = true
		c.outMu.Unlock()
		c.writeLoop() // drain what is queued, on this goroutine
		c.outMu.Lock()
	}
	c.outFinal = true
	c.writerDone = true
	unsent := c.out
	c.out = nil
	// After the broker's own last packet, the client gets a FIN now, and
	// its socket is drained once the session is detached (linger).
	lingers := c.finalWritten && !c.srv.closing.Load() && closeWrite(c.conn)
	c.outMu.Unlock()
	// What was never written lets go of its messages, outside outMu, which
	// is a leaf (release takes the message's viewMu).
	for _, it := range unsent {
		if it.publish {
			it.d.msg.release()
		}
	}
	if unsent != nil {
		c.putBatch(unsent)
	}
	if !lingers {
		_ = c.conn.Close()
	}
	c.cancel()
	c.cr.release()
	c.srv.detach(c)
	c.flushStore()
	c.srv.disconnectedEvent(c)
	if lingers {
		c.linger()
		_ = c.conn.Close()
	}
}

// logger returns a logger naming the connection: remote address, listener
// and client ID. It is built per call, so an idle connection keeps none;
// per-connection Info and Debug lines check logs first, so a quiet broker
// does not build it at all.
func (c *client) logger() *slog.Logger {
	return c.srv.log.With("remote", c.remote, "listener", c.listener, "client", c.id)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// logs reports whether the server logs at level.
func (c *client) logs(level slog.Level) bool {
	return c.srv.log.Enabled(context.Background(), level)
}
