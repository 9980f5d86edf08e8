package main

import (
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// wsConn adapts a WebSocket connection to the byte stream MQTT expects:
// reads run across binary messages, and each Write is one binary message.
// It is safe for one reader and any number of writers.
type wsConn struct {
	ws *websocket.Conn
	rd io.Reader // the message being read; nil between messages

	wmu sync.Mutex // serialises writers, as gorilla/websocket requires

	dlMu sync.Mutex
	wdl  time.Time // write deadline, applied under wmu before each write
}

// newWSConn wraps ws.
func newWSConn(ws *websocket.Conn) *wsConn { return &wsConn{ws: ws} }

// Read reads from the current binary message, moving to the next one at
// its end. A text message is an error: MQTT travels in binary messages.
func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.rd == nil {
			kind, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if kind != websocket.BinaryMessage {
				return 0, fmt.Errorf("websocket: received a text message; MQTT needs binary messages")
			}
			c.rd = r
		}
		n, err := c.rd.Read(p)
		if err == io.EOF {
			c.rd = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

// Write sends p as one binary message.
func (c *wsConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.dlMu.Lock()
	dl := c.wdl
	c.dlMu.Unlock()
	if err := c.ws.SetWriteDeadline(dl); err != nil {
		return 0, err
	}
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close closes the underlying connection without a close handshake.
func (c *wsConn) Close() error { return c.ws.Close() }

// LocalAddr returns the local network address.
func (c *wsConn) LocalAddr() net.Addr { return c.ws.LocalAddr() }

// RemoteAddr returns the broker's network address.
func (c *wsConn) RemoteAddr() net.Addr { return c.ws.RemoteAddr() }

// SetDeadline sets the read and write deadlines.
func (c *wsConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// SetReadDeadline sets the read deadline.
func (c *wsConn) SetReadDeadline(t time.Time) error { return c.ws.SetReadDeadline(t) }

// SetWriteDeadline sets the write deadline. It may be called while a write
// is blocked, and unblocks it when t has passed.
func (c *wsConn) SetWriteDeadline(t time.Time) error {
	c.dlMu.Lock()
	c.wdl = t
	c.dlMu.Unlock()
	return c.ws.NetConn().SetWriteDeadline(t)
}
