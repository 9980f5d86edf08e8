package mqtttest

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// pahoTimeout bounds DialPaho's dial and CONNECT, and ClosePaho's wait.
const pahoTimeout = 10 * time.Second

// DialPaho dials addr and connects a paho.golang (MQTT 5) client with cp;
// onMsg, when not nil, is called with each PUBLISH the client receives,
// which is acknowledged once onMsg returns. It returns the client and its
// connection (to drop it without a DISCONNECT), or the error: a refused
// CONNECT closes the connection and returns the CONNACK too; a failed
// dial returns no connection. Ending the client is the caller's.
func DialPaho(addr string, cp *paho.Connect, onMsg func(*paho.Publish)) (*paho.Client, net.Conn, *paho.Connack, error) {
	conn, err := net.DialTimeout("tcp", addr, pahoTimeout)
	if err != nil {
		return nil, nil, nil, err
	}
	cfg := paho.ClientConfig{Conn: conn}
	if onMsg != nil {
		cfg.OnPublishReceived = []func(paho.PublishReceived) (bool, error){
			func(pr paho.PublishReceived) (bool, error) { onMsg(pr.Packet); return true, nil },
		}
	}
	c := paho.NewClient(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), pahoTimeout)
	defer cancel()
	ca, err := c.Connect(ctx, cp)
	if err != nil {
		_ = conn.Close()
		return nil, conn, ca, fmt.Errorf("connect %s: %w", cp.ClientID, err)
	}
	return c, conn, ca, nil
}

// ConnectPaho is DialPaho for a test: a failed dial fails tb, and a
// connected client sends DISCONNECT when the test ends, its goroutines
// waited for. A refused CONNECT returns the CONNACK with the error.
func ConnectPaho(tb testing.TB, addr string, cp *paho.Connect, onMsg func(*paho.Publish)) (*paho.Client, *paho.Connack, error) {
	tb.Helper()
	c, conn, ca, err := DialPaho(addr, cp, onMsg)
	switch {
	case conn == nil:
		tb.Fatalf("dial %s: %v", addr, err)
	case err != nil:
		return nil, ca, err
	}
	tb.Cleanup(func() { ClosePaho(c, nil) })
	return c, ca, nil
}

// ClosePaho ends c: with DISCONNECT, or by closing conn when it is not
// nil (no DISCONNECT: the broker sees the connection drop). It returns
// once the client has stopped, or after a while.
func ClosePaho(c *paho.Client, conn net.Conn) {
	if conn != nil {
		_ = conn.Close()
	} else {
		_ = c.Disconnect(&paho.Disconnect{})
	}
	select {
	case <-c.Done():
	case <-time.After(pahoTimeout):
	}
}
