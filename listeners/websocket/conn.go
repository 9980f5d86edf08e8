package websocket

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	gws "github.com/gorilla/websocket"
)

// ErrTextFrame is the read error of a connection whose peer sent a text
// frame: MQTT over WebSocket uses binary frames only, so the connection is
// closed with status 1003 (unsupported data).
var ErrTextFrame = errors.New("websocket: text frame received, MQTT needs binary frames")

// conn adapts an upgraded WebSocket connection to net.Conn. Reads stream
// the payloads of consecutive binary messages (an MQTT packet may span
// messages and frames, one message may hold several packets); each Write
// sends one binary message.
type conn struct {
	ws *gws.Conn
	nc net.Conn // ws.NetConn(), for deadlines

	rmu sync.Mutex // serialises Read
	r   io.Reader  // the current message, nil between messages
	err error      // sticky read error

	// wsem admits one writer at a time (data messages and close frames);
	// a buffered channel so that Close can give up waiting.
	wsem chan struct{}

	dmu       sync.Mutex
	wdeadline time.Time // the write deadline, applied to gorilla under wsem

	closeSent atomic.Bool // a close frame was sent (by us or by gorilla)
	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

// tlsConn is a conn over TLS: it also reports the TLS state, which the
// server passes to hooks.
type tlsConn struct {
	*conn
	tc *tls.Conn
}

// ConnectionState returns the state of the TLS connection under the
// WebSocket.
func (c *tlsConn) ConnectionState() tls.ConnectionState { return c.tc.ConnectionState() }

// NewConn adapts a WebSocket connection, either side's (a listener's
// upgraded one, or one a client such as a bridge dialled), to the byte
// stream MQTT runs on: reads stream the payloads of binary messages, each
// Write is one binary message. Over TLS the result also implements
// ConnectionState() tls.ConnectionState.
func NewConn(ws *gws.Conn) net.Conn { return newConn(ws) }

// newConn wraps ws; over TLS the result implements
// ConnectionState() tls.ConnectionState.
func newConn(ws *gws.Conn) net.Conn {
	c := &conn{ws: ws, nc: ws.NetConn(), wsem: make(chan struct{}, 1)}
	if tc, ok := c.nc.(*tls.Conn); ok {
		return &tlsConn{conn: c, tc: tc}
	}
	return c
}

// Read reads the payload of binary messages as one stream. A text message
// sends a 1003 close frame and fails the read with ErrTextFrame; a normal
// close by the peer reads as io.EOF. Read errors are sticky.
func (c *conn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if c.r == nil {
			typ, r, err := c.ws.NextReader()
			if err != nil {
				c.err = c.readError(err)
				return 0, c.err
			}
			if typ != gws.BinaryMessage {
				c.sendClose(gws.CloseUnsupportedData, "binary frames only")
				c.err = ErrTextFrame
				return 0, c.err
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if err == io.EOF {
			c.r = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		if err != nil {
			c.err = c.readError(err)
			return n, c.err
		}
		if n > 0 {
			return n, nil
		}
	}
}

// readError maps a gorilla read error: a normal close is io.EOF, anything
// else is wrapped.
func (c *conn) readError(err error) error {
	var ce *gws.CloseError
	if errors.As(err, &ce) {
		// gorilla's close handler has answered with a close frame.
		c.closeSent.Store(true)
		switch ce.Code {
		case gws.CloseNormalClosure, gws.CloseGoingAway, gws.CloseNoStatusReceived:
			return io.EOF
		}
	}
	if errors.Is(err, gws.ErrReadLimit) {
		c.closeSent.Store(true) // gorilla sent 1009
	}
	return fmt.Errorf("websocket: read: %w", err)
}

// Write sends p as one binary message.
func (c *conn) Write(p []byte) (int, error) {
	if c.closed.Load() {
		return 0, fmt.Errorf("websocket: write: %w", net.ErrClosed)
	}
	c.wsem <- struct{}{}
	defer func() { <-c.wsem }()
	c.dmu.Lock()
	d := c.wdeadline
	c.dmu.Unlock()
	if err := c.ws.SetWriteDeadline(d); err != nil {
		return 0, fmt.Errorf("websocket: write: %w", err)
	}
	if err := c.ws.WriteMessage(gws.BinaryMessage, p); err != nil {
		return 0, fmt.Errorf("websocket: write: %w", err)
	}
	return len(p), nil
}

// sendClose sends one close frame with code and reason, unless one was sent
// already. It waits at most closeFrameTimeout for a running Write.
func (c *conn) sendClose(code int, reason string) {
	t := time.NewTimer(closeFrameTimeout)
	defer t.Stop()
	select {
	case c.wsem <- struct{}{}:
	case <-t.C:
		return // a write is stuck; closing the socket will end it
	}
	defer func() { <-c.wsem }()
	if c.closeSent.Swap(true) {
		return
	}
	_ = c.ws.WriteControl(gws.CloseMessage, gws.FormatCloseMessage(code, reason), time.Now().Add(closeFrameTimeout))
}

// Close sends a normal close frame (1000), unless a close frame was sent
// already, and closes the underlying connection.
func (c *conn) Close() error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		c.sendClose(gws.CloseNormalClosure, "")
		if err := c.ws.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			c.closeErr = fmt.Errorf("websocket: close: %w", err)
		}
	})
	return c.closeErr
}

// LocalAddr returns the local address of the underlying connection.
func (c *conn) LocalAddr() net.Addr { return c.nc.LocalAddr() }

// RemoteAddr returns the remote address of the underlying connection.
func (c *conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// SetDeadline sets the read and write deadlines.
func (c *conn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// SetReadDeadline sets the read deadline of the underlying connection. Once
// a read has failed, on a deadline or otherwise, the connection is unusable
// for reading.
func (c *conn) SetReadDeadline(t time.Time) error {
	if err := c.nc.SetReadDeadline(t); err != nil {
		return fmt.Errorf("websocket: set read deadline: %w", err)
	}
	return nil
}

// SetWriteDeadline sets the write deadline. It applies at once to a write
// in progress, and to every later write.
func (c *conn) SetWriteDeadline(t time.Time) error {
	c.dmu.Lock()
	c.wdeadline = t
	c.dmu.Unlock()
	if err := c.nc.SetWriteDeadline(t); err != nil {
		return fmt.Errorf("websocket: set write deadline: %w", err)
	}
	return nil
}
