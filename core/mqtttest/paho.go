package mqtttest

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// pahoTimeout bounds ConnectPaho's dial, CONNECT and end.
const pahoTimeout = 10 * time.Second

// ConnectPaho dials addr and connects a paho.golang (MQTT 5) client with
// cp; onMsg, when not nil, is called with each PUBLISH the client
// receives, which is acknowledged once onMsg returns. A connected client
// sends DISCONNECT when the test ends, and its goroutines are waited for;
// a refused one is closed, and the CONNACK is returned with the error.
func ConnectPaho(tb testing.TB, addr string, cp *paho.Connect, onMsg func(*paho.Publish)) (*paho.Client, *paho.Connack, error) {
	tb.Helper()
	conn, err := net.DialTimeout("tcp", addr, pahoTimeout)
	if err != nil {
		tb.Fatalf("dial %s: %v", addr, err)
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
		return nil, ca, err
	}
	tb.Cleanup(func() {
		_ = c.Disconnect(&paho.Disconnect{})
		select {
		case <-c.Done():
		case <-time.After(pahoTimeout):
		}
	})
	return c, ca, nil
}
