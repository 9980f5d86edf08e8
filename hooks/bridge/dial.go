package bridge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"

	gws "github.com/gorilla/websocket"

	"github.com/vanemq/vanemq/listeners/websocket"
)

// tlsConfig builds the bridge's TLS client config from its files, or
// returns nil for a plain address.
func (b *BridgeConfig) tlsConfig() (*tls.Config, error) {
	scheme, target, err := b.dialTarget()
	if err != nil {
		return nil, err
	}
	if scheme != "tls" && scheme != "wss" {
		return nil, nil
	}
	host := target
	if scheme == "wss" {
		u, err := url.Parse(target)
		if err != nil {
			return nil, err
		}
		host = u.Host
	}
	name, _, err := net.SplitHostPort(host)
	if err != nil {
		return nil, err
	}
	conf := &tls.Config{ServerName: name, MinVersion: tls.VersionTLS12}
	tc := b.TLS
	if tc == nil {
		return conf, nil
	}
	if tc.ServerName != "" {
		conf.ServerName = tc.ServerName
	}
	conf.InsecureSkipVerify = tc.InsecureSkipVerify //nolint:gosec // a test-only setting, documented as such
	if tc.CA != "" {
		pem, err := os.ReadFile(tc.CA)
		if err != nil {
			return nil, fmt.Errorf("tls.ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.ca: %s holds no PEM certificate", tc.CA)
		}
		conf.RootCAs = pool
	}
	if tc.Cert != "" {
		cert, err := tls.LoadX509KeyPair(tc.Cert, tc.Key)
		if err != nil {
			return nil, fmt.Errorf("tls.cert, tls.key: %w", err)
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	return conf, nil
}

// dial opens the transport to the remote broker.
func (br *bridge) dial(ctx context.Context) (net.Conn, error) {
	scheme, target, err := br.cfg.dialTarget()
	if err != nil {
		return nil, err
	}
	switch scheme {
	case "tcp":
		var d net.Dialer
		return d.DialContext(ctx, "tcp", target)
	case "tls":
		d := tls.Dialer{Config: br.tls}
		return d.DialContext(ctx, "tcp", target)
	}
	d := gws.Dialer{Subprotocols: []string{"mqtt"}, TLSClientConfig: br.tls, NetDialContext: (&net.Dialer{}).DialContext}
	ws, resp, err := d.DialContext(ctx, target, nil)
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("websocket handshake with %s: HTTP %s: %w", target, resp.Status, err)
		}
		return nil, err
	}
	if ws.Subprotocol() != "mqtt" {
		_ = ws.Close()
		return nil, errors.New("the remote did not accept the WebSocket subprotocol mqtt")
	}
	return websocket.NewConn(ws), nil
}
