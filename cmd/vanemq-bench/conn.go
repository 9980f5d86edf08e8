package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/bytebufferpool"

	"github.com/vanemq/vanemq/core/packets"
)

// Bounds of a connection's life.
const (
	// handshakeTimeout bounds a connection's set-up: dial, TLS and
	// WebSocket handshakes, CONNECT/CONNACK and SUBSCRIBE/SUBACK.
	handshakeTimeout = 10 * time.Second
	// closeTimeout bounds the DISCONNECT write when a connection closes: a
	// QoS 0 publisher's socket may still be full of messages the broker
	// has yet to read, and the run is over.
	closeTimeout = 100 * time.Millisecond
)

// connSpec says how to open one connection.
type connSpec struct {
	role      string // "publisher", "subscriber" or "connection", for messages
	index     int
	clientID  string
	username  string // "" for none
	password  string // sent only with a username
	keepAlive uint16 // seconds
	readBuf   int    // size of the read buffer
	wsBuf     int    // size of the WebSocket buffers; 0 for wsBufferSize
	// sub makes it a message scenario's subscriber, which connects to
	// -sub-addr.
	sub bool
}

// mqttConn is one MQTT client connection. One goroutine, the reader, reads
// it; any goroutine may write, one write at a time.
type mqttConn struct {
	name    string // role, index and client identifier, for messages
	nc      net.Conn
	tr      timedReader   // nc, noting when each read returns
	br      *bufio.Reader // reads tr
	rd      *packets.Reader
	version byte
	clock   monoClock

	wmu       sync.Mutex   // serialises writes
	lastWrite atomic.Int64 // clock reading after the last write

	// What the broker announced in CONNACK.
	receiveMax uint16 // QoS 1/2 messages it accepts unacknowledged
	keepAlive  uint16 // seconds; the broker's Server Keep Alive if it set one
	maxPacket  uint32 // largest packet it accepts; 0: no limit
	maxQoS     byte

	// Set before the reader starts: a publisher's inflight window, a
	// subscriber's delivery counters.
	win  *idWindow
	sink *subStats

	// Owned by the reader.
	in    packets.Packet
	ack   packets.Packet            // scratch for encoding acknowledgements
	out   bytebufferpool.ByteBuffer // acknowledgements waiting to be written
	freed []uint16                  // completed identifiers waiting to be released
}

// openConn dials the broker and completes CONNECT/CONNACK within
// handshakeTimeout, or until ctx ends.
func openConn(ctx context.Context, env *benchEnv, spec connSpec) (*mqttConn, error) {
	name := fmt.Sprintf("%s %d (client %s)", spec.role, spec.index, spec.clientID)
	hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	d := env.dialer
	if spec.sub && env.subDialer != nil {
		d = env.subDialer
	}
	nc, err := d.dial(hctx, spec.wsBuf)
	if err != nil {
		return nil, fmt.Errorf("%s: connect to %s: %w", name, d.addr, err)
	}
	c := &mqttConn{
		name:    name,
		nc:      nc,
		tr:      timedReader{r: nc, clock: env.clock},
		version: env.cfg.MQTT,
		clock:   env.clock,
	}
	c.br = bufio.NewReaderSize(&c.tr, spec.readBuf)
	c.rd = packets.NewReader(c.br, 0)
	c.rd.SetVersion(c.version)
	c.ack.ProtocolVersion = c.version
	if err := c.bounded(hctx, func() error { return c.connect(spec) }); err != nil {
		_ = nc.Close()
		return nil, err
	}
	return c, nil
}

// timedReader notes the clock reading after each read from r: the arrival
// time of every packet that read brought in. Only the connection's reader
// uses it.
type timedReader struct {
	r     io.Reader
	clock monoClock
	last  int64
}

// Read reads from r and notes the time.
func (t *timedReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.last = t.clock.now()
	return n, err
}

// errorf returns an error naming the connection.
func (c *mqttConn) errorf(format string, args ...any) error {
	return fmt.Errorf("%s: %w", c.name, fmt.Errorf(format, args...))
}

// bounded runs a handshake step with the connection's deadlines taken from
// ctx, interrupting it as soon as ctx ends.
func (c *mqttConn) bounded(ctx context.Context, step func() error) error {
	if dl, ok := ctx.Deadline(); ok {
		_ = c.nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = c.nc.SetDeadline(time.Unix(1, 0)) })
	err := step()
	if !stop() {
		// ctx ended during the step: its deadline may be set at any time.
		if err == nil {
			err = c.errorf("handshake: %w", context.Cause(ctx))
		}
		return err
	}
	if err := c.nc.SetDeadline(time.Time{}); err != nil {
		return c.errorf("clear deadline: %w", err)
	}
	return err
}

// connect sends CONNECT and reads the broker's CONNACK.
func (c *mqttConn) connect(spec connSpec) error {
	p := packets.Packet{
		Type:            packets.Connect,
		ProtocolVersion: c.version,
		Connect: packets.ConnectFields{
			ProtocolName: "MQTT",
			CleanStart:   true,
			KeepAlive:    spec.keepAlive,
			ClientID:     spec.clientID,
		},
	}
	if spec.username != "" {
		p.Connect.UsernameFlag, p.Connect.Username = true, spec.username
		if pw := spec.password; pw != "" {
			p.Connect.PasswordFlag, p.Connect.Password = true, []byte(pw)
		}
	}
	if err := c.writePacket(&p); err != nil {
		return c.errorf("send CONNECT: %w", err)
	}
	ack := &c.in
	if err := c.rd.ReadPacket(ack); err != nil {
		return c.errorf("waiting for CONNACK: %w", readError(err))
	}
	if ack.Type != packets.Connack {
		return c.errorf("expected CONNACK, received %s", ack.Type)
	}
	if ack.ReasonCode != packets.Success {
		return c.errorf("CONNACK refused the connection: %s", connackReason(ack))
	}
	c.receiveMax, c.keepAlive, c.maxQoS = 65535, spec.keepAlive, 2
	if pr := &ack.Properties; c.version == packets.Version5 {
		if pr.Has(packets.PropReceiveMaximum) {
			c.receiveMax = pr.ReceiveMaximum
		}
		if pr.Has(packets.PropServerKeepAlive) {
			c.keepAlive = pr.ServerKeepAlive
		}
		if pr.Has(packets.PropMaximumPacketSize) {
			c.maxPacket = pr.MaximumPacketSize
		}
		if pr.Has(packets.PropMaximumQoS) {
			c.maxQoS = pr.MaximumQoS
		}
	}
	return nil
}

// subscribe subscribes to filter at qos and waits for the SUBACK, within
// handshakeTimeout or until ctx ends. A grant below qos is an error: the
// run would not measure what was asked. Retained messages that arrive
// before the SUBACK are acknowledged and not counted.
func (c *mqttConn) subscribe(ctx context.Context, filter string, qos byte) error {
	hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	return c.bounded(hctx, func() error {
		const id = 1
		p := packets.Packet{
			Type:            packets.Subscribe,
			ProtocolVersion: c.version,
			PacketID:        id,
			Subscriptions:   []packets.Subscription{{Filter: filter, QoS: qos, RetainHandling: 2}},
		}
		if err := c.writePacket(&p); err != nil {
			return c.errorf("send SUBSCRIBE %q: %w", filter, err)
		}
		for {
			if err := c.rd.ReadPacket(&c.in); err != nil {
				return c.errorf("waiting for SUBACK to %q: %w", filter, readError(err))
			}
			if c.in.Type != packets.Suback {
				if err := c.handle(&c.in); err != nil {
					return c.errorf("waiting for SUBACK to %q: %w", filter, err)
				}
				if err := c.flushInbound(); err != nil {
					return c.errorf("waiting for SUBACK to %q: %w", filter, err)
				}
				continue
			}
			switch codes := c.in.ReasonCodes; {
			case c.in.PacketID != id || len(codes) != 1:
				return c.errorf("SUBACK to %q has packet identifier %d and %d codes, want %d and 1", filter, c.in.PacketID, len(codes), id)
			case codes[0].IsError():
				return c.errorf("subscription to %q refused: %s", filter, codes[0])
			case byte(codes[0]) < qos:
				return c.errorf("subscription to %q granted QoS %d, asked for %d", filter, codes[0], qos)
			}
			return nil
		}
	})
}

// write writes b whole, after any write in progress.
func (c *mqttConn) write(b []byte) error {
	c.wmu.Lock()
	_, err := c.nc.Write(b)
	c.wmu.Unlock()
	c.lastWrite.Store(c.clock.now())
	return err
}

// writePacket encodes p and writes it.
func (c *mqttConn) writePacket(p *packets.Packet) error {
	buf := bytebufferpool.Get()
	defer bytebufferpool.Put(buf)
	if err := p.Encode(buf); err != nil {
		return err
	}
	return c.write(buf.B)
}

// pingIfIdle sends PINGREQ when nothing was written for half the keep
// alive, so the broker does not time an idle connection out.
func (c *mqttConn) pingIfIdle(now int64) error {
	if c.keepAlive == 0 || now-c.lastWrite.Load() < int64(c.keepAlive)*int64(time.Second)/2 {
		return nil
	}
	p := packets.Packet{Type: packets.Pingreq, ProtocolVersion: c.version}
	if err := c.writePacket(&p); err != nil {
		return c.errorf("send PINGREQ: %w", err)
	}
	return nil
}

// close sends DISCONNECT, giving up after closeTimeout, and closes the
// connection. The reader then ends with an error the caller ignores.
func (c *mqttConn) close() {
	// The deadline also frees a writer blocked on a broker that stopped
	// reading, so that the DISCONNECT gets its turn.
	_ = c.nc.SetWriteDeadline(time.Now().Add(closeTimeout))
	p := packets.Packet{Type: packets.Disconnect, ProtocolVersion: c.version}
	_ = c.writePacket(&p)
	_ = c.nc.Close()
}

// readError makes a read error readable: an end of stream is the broker
// closing the connection.
func readError(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("the broker closed the connection (%w)", err)
	}
	return err
}

// connackReason describes a refusing CONNACK's code, with its reason
// string when the broker sent one.
func connackReason(p *packets.Packet) string {
	code := p.ReasonCode
	if p.ProtocolVersion != packets.Version5 {
		if name := packets.V3ConnackName(code); name != "" {
			return fmt.Sprintf("%s (return code %d)", name, code)
		}
		return fmt.Sprintf("return code %d", code)
	}
	if s := p.Properties.ReasonString; s != "" {
		return fmt.Sprintf("%s: %q", code, s)
	}
	return code.String()
}
