package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"

	"github.com/gorilla/websocket"

	mqttws "github.com/vanemq/vanemq/listeners/websocket"
)

// wsBufferSize is the default WebSocket read and write buffer size. A
// write of up to this many bytes (one publisher batch) goes out as a single
// frame.
const wsBufferSize = 64 << 10

// dialer opens the byte streams MQTT runs over, to one broker address:
// -addr, or -sub-addr for the subscribers.
type dialer struct {
	transport string
	addr      string
	net       net.Dialer
	tls       *tls.Config       // tls and wss
	ws        *websocket.Dialer // ws and wss
	wsURL     string
}

// newDialer returns the dialer to addr (-addr or -sub-addr) for cfg's
// -transport, -ws-path and -tls-insecure.
func newDialer(cfg *benchConfig, addr string) (*dialer, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("broker address %q: %w", addr, err)
	}
	d := &dialer{transport: cfg.Transport, addr: addr}
	if cfg.Transport == transportTLS || cfg.Transport == transportWSS {
		d.tls = &tls.Config{
			ServerName:         host,
			InsecureSkipVerify: cfg.TLSInsecure, // -tls-insecure
			MinVersion:         tls.VersionTLS12,
		}
	}
	if cfg.Transport == transportWS || cfg.Transport == transportWSS {
		u := url.URL{Scheme: cfg.Transport, Host: addr, Path: cfg.WSPath}
		d.wsURL = u.String()
		d.ws = &websocket.Dialer{
			NetDialContext:  d.net.DialContext,
			TLSClientConfig: d.tls,
			Subprotocols:    []string{"mqtt"},
			ReadBufferSize:  wsBufferSize,
			WriteBufferSize: wsBufferSize,
		}
	}
	return d, nil
}

// dial opens one connection; ctx bounds the whole set-up, TLS and
// WebSocket handshakes included. wsBuf is the size of a WebSocket
// connection's read and write buffers, 0 for wsBufferSize: idle
// connections get small ones.
func (d *dialer) dial(ctx context.Context, wsBuf int) (net.Conn, error) {
	switch d.transport {
	case transportTLS:
		td := tls.Dialer{NetDialer: &d.net, Config: d.tls}
		return td.DialContext(ctx, "tcp", d.addr)
	case transportWS, transportWSS:
		wd := *d.ws
		if wsBuf > 0 {
			wd.ReadBufferSize, wd.WriteBufferSize = wsBuf, wsBuf
		}
		ws, resp, err := wd.DialContext(ctx, d.wsURL, nil)
		if resp != nil && resp.Body != nil {
			resp.Body.Close()
		}
		if err != nil {
			if resp != nil {
				return nil, fmt.Errorf("websocket %s: HTTP %s: %w", d.wsURL, resp.Status, err)
			}
			return nil, fmt.Errorf("websocket %s: %w", d.wsURL, err)
		}
		if p := ws.Subprotocol(); p != "mqtt" {
			ws.Close()
			return nil, fmt.Errorf("websocket %s: the server chose subprotocol %q, not \"mqtt\"", d.wsURL, p)
		}
		// The broker's own adapter, which serves either side: reads
		// stream binary messages, each Write is one.
		return mqttws.NewConn(ws), nil
	default:
		return d.net.DialContext(ctx, "tcp", d.addr)
	}
}
