package mqttc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/bytebufferpool"

	"github.com/vanemq/vanemq/core/packets"
)

const (
	// writeTimeout bounds every write, so a peer that stopped reading
	// cannot block the client forever.
	writeTimeout = 30 * time.Second
	// abortWait bounds how long the reader waits for the DISCONNECT it
	// queued after a protocol error to be written.
	abortWait = 5 * time.Second
	// closeWait bounds how long Disconnect waits for what is queued and
	// its DISCONNECT to be written.
	closeWait = 10 * time.Second
	// readBufSize and writeBufSize size the connection's buffers.
	readBufSize  = 32 << 10
	writeBufSize = 32 << 10
	// publishQueue is how many publishes, subscribes and unsubscribes may
	// wait for the writer before the callers block.
	publishQueue = 64
	// maxBatch is how many of them the writer takes in one write.
	maxBatch = 64
)

// Client is a connected MQTT client. Its methods are safe for concurrent
// use.
type Client struct {
	conn      net.Conn
	log       *slog.Logger
	version   byte
	onMessage func(Message, func(packets.ReasonCode))

	// What CONNACK said; fixed after Connect.
	sessionPresent  bool
	connack         packets.Properties
	serverRecvMax   uint16
	serverMaxPacket uint32 // 0: no limit
	maxQoS          byte
	retainAvailable bool
	keepAlive       time.Duration
	recvMax         uint16 // the Receive Maximum the client announced

	// Keepalive bookkeeping, in nanoseconds since epoch (monotonic).
	epoch     time.Time
	lastRead  atomic.Int64
	lastWrite atomic.Int64
	pingSent  atomic.Int64 // 0: no PINGREQ outstanding, else sent at this value - 1

	// Caller-originated packets (PUBLISH, SUBSCRIBE, UNSUBSCRIBE) wait
	// for the writer in pubq. sendMu is held for reading around every
	// send on it, and for writing by finish, which then sets qclosed, so
	// that nothing is queued once finish has drained it.
	pubq    chan *outItem
	sendMu  sync.RWMutex
	qclosed bool

	// Control packets (acknowledgements, PINGREQ, the final DISCONNECT)
	// are encoded into ctrl, which never blocks; ctrlWake wakes the writer.
	ctrlMu     sync.Mutex
	ctrl       []byte
	final      []byte // the DISCONNECT to write last, once queued
	ctrlClosed bool   // the final DISCONNECT was taken, or the connection ended
	ctrlWake   chan struct{}
	// writerDone is closed when the writer has ended; finalWritten and
	// writeErr are then set.
	writerDone   chan struct{}
	finalWritten bool
	writeErr     error
	// inWritten is set while the writer calls QoS 0 done callbacks, which
	// Disconnect must then not wait for.
	inWritten atomic.Bool

	// Flows, under mu: out holds every packet identifier in use by the
	// client (publishes waiting for their acknowledgement, subscribes and
	// unsubscribes waiting for theirs), in the inbound QoS 1 and 2
	// messages not yet completed. Both are nil once the connection ended.
	mu     sync.Mutex
	nextID uint16
	out    map[uint16]*outFlight
	in     map[uint16]*inFlight
	// sem holds one token per unacknowledged QoS 1 or 2 publish; its
	// capacity is the server's Receive Maximum.
	sem chan struct{}
	// unreleased is what Unreleased returns, set by finish.
	unreleased []uint16

	// aliases maps the server's topic aliases to topics; reader only.
	aliases map[uint16]string

	errMu    sync.Mutex
	err      error         // why the connection ended, first cause wins
	quit     chan struct{} // closed when the connection starts ending
	quitOnce sync.Once
	done     chan struct{}  // closed when every goroutine has ended
	wg       sync.WaitGroup // the writer and keepalive loops; the reader waits
	closing  atomic.Bool
}

// outItem is an encoded packet waiting for the writer.
type outItem struct {
	buf *bytebufferpool.ByteBuffer
	// written, for QoS 0 publishes, is told when the packet is written or
	// cannot be.
	written func(error)
}

// outFlight is a packet identifier in use by the client.
type outFlight struct {
	kind     packets.Type // Publish, Subscribe or Unsubscribe
	qos      byte
	released bool // QoS 2: PUBREC received, PUBREL sent
	noSlot   bool // holds no token of sem (an Options.Unreleased beyond it)
	done     func(packets.ReasonCode, error)
	reply    chan ackResult // SUBSCRIBE and UNSUBSCRIBE, buffered
	filters  int            // SUBSCRIBE and UNSUBSCRIBE: how many filters
}

// ackResult is what a SUBACK or UNSUBACK returns to its caller.
type ackResult struct {
	codes []packets.ReasonCode
	err   error
}

// inFlight is an inbound QoS 1 or 2 message not yet completed.
type inFlight struct {
	qos   byte
	acked bool // QoS 2: PUBREC sent, waiting for PUBREL
	code  packets.ReasonCode
}

// Connect sends CONNECT on conn and waits for CONNACK until ctx is done. On
// success the client owns conn and runs its reader (and keepalive)
// goroutines; on failure conn is closed. A CONNACK refusing the connection
// is a *ConnectError.
func Connect(ctx context.Context, conn net.Conn, opts Options) (c *Client, err error) {
	defer func() {
		if err != nil {
			_ = conn.Close()
		}
	}()
	v := opts.Version
	if v == 0 {
		v = packets.Version311
	}
	if v != packets.Version31 && v != packets.Version311 && v != packets.Version5 {
		return nil, fmt.Errorf("mqttc: unsupported protocol version %d", v)
	}
	if v != packets.Version5 && opts.PasswordSet && !opts.UsernameSet {
		return nil, errors.New("mqttc: a password needs a user name before MQTT 5 [MQTT-3.1.2-22]")
	}
	if opts.KeepAlive < 0 {
		return nil, fmt.Errorf("mqttc: negative keep alive %v", opts.KeepAlive)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("mqttc: connect: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}

	p := connectPacket(&opts, v)
	buf := bytebufferpool.Get()
	defer bytebufferpool.Put(buf)
	if err := p.Encode(buf); err != nil {
		return nil, fmt.Errorf("mqttc: encoding CONNECT: %w", err)
	}

	// The context bounds the handshake through the connection's deadline.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	ctxErr := func(err error) error {
		if e := ctx.Err(); e != nil {
			return fmt.Errorf("%w (%w)", e, err)
		}
		return err
	}
	if _, err := conn.Write(buf.B); err != nil {
		stop()
		return nil, fmt.Errorf("mqttc: writing CONNECT: %w", ctxErr(err))
	}
	br := bufio.NewReaderSize(conn, readBufSize)
	r := packets.NewReader(br, opts.MaxPacketSize)
	r.SetVersion(v)
	var ack packets.Packet
	err = r.ReadPacket(&ack)
	if !stop() {
		return nil, fmt.Errorf("mqttc: waiting for CONNACK: %w", ctx.Err())
	}
	if err != nil {
		return nil, fmt.Errorf("mqttc: reading CONNACK: %w", ctxErr(err))
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		return nil, fmt.Errorf("mqttc: clearing the connect deadline: %w", err)
	}
	if ack.Type != packets.Connack {
		// AUTH is not expected either: the client sends no
		// Authentication Method (MQTT 5.0 section 4.12).
		return nil, fmt.Errorf("mqttc: expected CONNACK, got %s [MQTT-3.2.0-1]", ack.Type)
	}
	if ack.ReasonCode != packets.Success {
		return nil, &ConnectError{Code: ack.ReasonCode, Reason: ack.Properties.ReasonString, version: v}
	}

	c = newClient(conn, log, v, &opts, &ack, p.Connect.KeepAlive)
	if c.sessionPresent {
		c.release(opts.Unreleased)
	}
	c.wg.Add(1)
	go c.writeLoop(conn)
	go c.readLoop(r)
	if c.keepAlive > 0 {
		c.wg.Add(1)
		go c.keepAliveLoop()
	}
	log.Debug("mqttc: connected", "client_id", opts.ClientID, "version", v,
		"session_present", c.sessionPresent, "keepalive", c.keepAlive, "server_receive_maximum", c.serverRecvMax)
	return c, nil
}

// connectPacket builds the CONNECT of opts, for version v.
func connectPacket(opts *Options, v byte) *packets.Packet {
	p := &packets.Packet{Type: packets.Connect, ProtocolVersion: v}
	cf := &p.Connect
	cf.ClientID = opts.ClientID
	cf.CleanStart = opts.CleanStart
	cf.Bridge = opts.Bridge && v != packets.Version5
	if opts.KeepAlive > 0 {
		secs := (opts.KeepAlive + time.Second/2) / time.Second
		cf.KeepAlive = uint16(min(max(secs, 1), 65535))
	}
	cf.UsernameFlag, cf.Username = opts.UsernameSet, opts.Username
	cf.PasswordFlag, cf.Password = opts.PasswordSet, opts.Password
	if opts.Will != nil {
		cf.WillFlag, cf.Will = true, *opts.Will
	}
	if v == packets.Version5 {
		pr := &p.Properties
		if opts.SessionExpiry > 0 {
			pr.SessionExpiry = opts.SessionExpiry
			pr.Set(packets.PropSessionExpiry)
		}
		if opts.ReceiveMaximum > 0 {
			pr.ReceiveMaximum = opts.ReceiveMaximum
			pr.Set(packets.PropReceiveMaximum)
		}
		if opts.MaxPacketSize > 0 {
			pr.MaximumPacketSize = opts.MaxPacketSize
			pr.Set(packets.PropMaximumPacketSize)
		}
		// Topic Alias Maximum is not sent: 0, the server may not use
		// topic aliases towards the client [MQTT-3.1.2-27].
	}
	return p
}

// newClient returns the client of a connection whose CONNACK is ack;
// kaSecs is the keep alive the CONNECT asked for.
func newClient(conn net.Conn, log *slog.Logger, v byte, opts *Options, ack *packets.Packet, kaSecs uint16) *Client {
	c := &Client{
		conn:            conn,
		log:             log,
		version:         v,
		onMessage:       opts.OnMessage,
		sessionPresent:  ack.SessionPresent,
		connack:         ack.Properties,
		serverRecvMax:   65535,
		maxQoS:          2,
		retainAvailable: true,
		recvMax:         65535,
		keepAlive:       time.Duration(kaSecs) * time.Second,
		epoch:           time.Now(),
		pubq:            make(chan *outItem, publishQueue),
		ctrlWake:        make(chan struct{}, 1),
		writerDone:      make(chan struct{}),
		nextID:          1,
		out:             make(map[uint16]*outFlight),
		in:              make(map[uint16]*inFlight),
		aliases:         make(map[uint16]string),
		quit:            make(chan struct{}),
		done:            make(chan struct{}),
	}
	if opts.ReceiveMaximum > 0 && v == packets.Version5 {
		c.recvMax = opts.ReceiveMaximum
	}
	if v == packets.Version5 {
		pr := &ack.Properties
		if pr.Has(packets.PropReceiveMaximum) && pr.ReceiveMaximum > 0 {
			c.serverRecvMax = pr.ReceiveMaximum
		}
		if pr.Has(packets.PropMaximumPacketSize) {
			c.serverMaxPacket = pr.MaximumPacketSize
		}
		if pr.Has(packets.PropMaximumQoS) {
			c.maxQoS = pr.MaximumQoS
		}
		if pr.Has(packets.PropRetainAvailable) {
			c.retainAvailable = pr.RetainAvailable != 0
		}
		if pr.Has(packets.PropServerKeepAlive) {
			c.keepAlive = time.Duration(pr.ServerKeepAlive) * time.Second
		}
	}
	c.sem = make(chan struct{}, c.serverRecvMax)
	return c
}

// release sends PUBREL for the QoS 2 flows of a previous connection to
// the session, before anything else is written, and reserves their packet
// identifiers until PUBCOMP.
func (c *Client) release(ids []uint16) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		if _, dup := c.out[id]; dup || id == 0 {
			continue
		}
		f := &outFlight{kind: packets.Publish, qos: 2, released: true}
		select {
		case c.sem <- struct{}{}:
		default:
			f.noSlot = true
		}
		c.out[id] = f
		c.sendCtrl(&packets.Packet{Type: packets.Pubrel, PacketID: id})
	}
	if len(c.out) > 0 {
		c.log.Debug("mqttc: releasing the QoS 2 flows of the previous connection", "count", len(c.out))
	}
}

// Unreleased returns, once Done is closed, the packet identifiers of the
// outbound QoS 2 flows the connection left incomplete (no PUBCOMP, nor a
// PUBREC refusing the message), for the next connection to the session:
// see Options.Unreleased. It returns nil while the connection is up.
func (c *Client) Unreleased() []uint16 {
	select {
	case <-c.done:
		return slices.Clone(c.unreleased)
	default:
		return nil
	}
}

// SessionPresent reports the CONNACK's session present flag: the server
// resumed a session it kept.
func (c *Client) SessionPresent() bool { return c.sessionPresent }

// ConnAck returns the CONNACK's properties (v5; zero for 3.x): Assigned
// Client Identifier, Maximum QoS, Topic Alias Maximum and so on.
func (c *Client) ConnAck() packets.Properties { return c.connack }

// ServerReceiveMaximum is the server's Receive Maximum from CONNACK (v5),
// 65535 when absent and for 3.x: Publish keeps at most this many QoS 1 and
// 2 publishes unacknowledged.
func (c *Client) ServerReceiveMaximum() uint16 { return c.serverRecvMax }

// Version returns the connection's protocol version.
func (c *Client) Version() byte { return c.version }

// KeepAlive returns the keep alive in force: the one asked for, rounded to
// seconds, or the server's Server Keep Alive (v5). 0 means none.
func (c *Client) KeepAlive() time.Duration { return c.keepAlive }

// Done is closed when the connection has ended (read error, keepalive
// timeout, DISCONNECT from the server, Close) and every goroutine of the
// client has finished: every pending done callback has been called by
// then.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns nil while the connection is up (Done not closed), then why
// it ended: ErrClosed after Close or Disconnect, a *DisconnectError for a
// DISCONNECT from the server, an error wrapping ErrKeepAliveTimeout, a
// read or write error, or a protocol error (wrapping a *packets.Error).
func (c *Client) Err() error {
	select {
	case <-c.done:
	default:
		return nil
	}
	return c.cause()
}

// cause returns the first recorded reason for the end of the connection.
func (c *Client) cause() error {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	return c.err
}

// Close sends DISCONNECT (Normal disconnection) and closes the connection;
// the will message is discarded [MQTT-3.1.2-10]. See Disconnect.
func (c *Client) Close() error { return c.Disconnect(packets.Success) }

// Disconnect sends DISCONNECT with reason code code (v5; 0x04, Disconnect
// with Will Message, has the server publish the will; 3.x sends no code)
// and closes the connection. Publishes queued before it are written first;
// publishes and subscribes still waiting for their acknowledgement then get
// an error wrapping ErrClosed. It returns once the DISCONNECT is written (or
// could not be within 10 s, or failed, which it returns) and the connection
// closed (called from
// the done of a QoS 0 publish, once the DISCONNECT is queued); Done closes
// just after, once the reader has called the pending callbacks. It is
// idempotent, and safe to call from OnMessage and the done callbacks.
func (c *Client) Disconnect(code packets.ReasonCode) error {
	if !c.closing.CompareAndSwap(false, true) {
		return nil
	}
	select {
	case <-c.quit: // ended already; Err says why
		return nil
	default:
	}
	c.setErr(ErrClosed)
	if !c.queueFinal(code) {
		c.fail(ErrClosed)
		return nil
	}
	if c.inWritten.Load() {
		// Called from a QoS 0 done, on the writer, which writes the
		// DISCONNECT and closes the connection once the callback returns.
		return nil
	}
	timedOut := false
	t := time.NewTimer(closeWait)
	select {
	case <-c.writerDone:
	case <-t.C: // the server does not read: give up on the DISCONNECT
		timedOut = true
	}
	t.Stop()
	c.fail(ErrClosed)
	<-c.writerDone // at once: the connection is closed
	switch {
	case c.finalWritten:
		return nil
	case timedOut:
		return fmt.Errorf("mqttc: DISCONNECT not written within %v", closeWait)
	case c.writeErr != nil && !errors.Is(c.writeErr, net.ErrClosed):
		return fmt.Errorf("mqttc: DISCONNECT not written: %w", c.writeErr)
	default:
		return nil // the connection ended meanwhile, for another cause
	}
}

// setErr records err as why the connection ends, unless a cause is
// recorded already.
func (c *Client) setErr(err error) {
	c.errMu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.errMu.Unlock()
}

// fail ends the connection for err (unless a cause is recorded already):
// the goroutines are told to stop and the connection is closed, which
// unblocks the reader.
func (c *Client) fail(err error) {
	c.setErr(err)
	c.quitOnce.Do(func() {
		close(c.quit)
		_ = c.conn.Close()
	})
}

// endErr is the error of operations the end of the connection interrupted.
func (c *Client) endErr() error {
	return fmt.Errorf("mqttc: connection ended: %w", c.cause())
}

// finish runs on the reader once the connection has ended and the writer
// and keepalive loops have returned: it fails whatever still waits, then
// closes done.
func (c *Client) finish() {
	defer close(c.done)
	err := c.endErr()
	c.ctrlMu.Lock()
	c.ctrlClosed = true
	c.ctrl = nil
	c.ctrlMu.Unlock()

	c.sendMu.Lock() // waits for every send on pubq in progress
	c.qclosed = true
	c.sendMu.Unlock()
	for drained := false; !drained; {
		select {
		case it := <-c.pubq:
			if it.written != nil {
				it.written(err)
			}
			bytebufferpool.Put(it.buf)
		default:
			drained = true
		}
	}

	c.mu.Lock()
	out := c.out
	c.out, c.in = nil, nil
	c.mu.Unlock()
	for _, id := range slices.Sorted(maps.Keys(out)) {
		f := out[id]
		if f.kind == packets.Publish && f.qos == 2 {
			c.unreleased = append(c.unreleased, id)
		}
		switch {
		case f.reply != nil:
			f.reply <- ackResult{err: err}
		case f.done != nil:
			f.done(0, err)
		}
	}
	c.log.Debug("mqttc: connection ended", "cause", c.cause(), "interrupted", len(out))
}
