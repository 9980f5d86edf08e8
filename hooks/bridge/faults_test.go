package bridge

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/eclipse/paho.golang/paho"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/mqtttest"
	"github.com/vanemq/vanemq/core/packets"
	"github.com/vanemq/vanemq/listeners/tcp"
	"github.com/vanemq/vanemq/listeners/tlsfiles"
	"github.com/vanemq/vanemq/listeners/tlsfiles/tlstest"
	"github.com/vanemq/vanemq/listeners/websocket"
)

// passwordHook lets in only user "edge" with password "right".
type passwordHook struct{}

func (passwordHook) ID() string            { return "test.password" }
func (passwordHook) Events() core.EventSet { return core.Events(core.EventAuthenticate) }
func (passwordHook) Authenticate(_ context.Context, _ *core.ClientInfo, c *core.Credentials) core.Verdict {
	if c.Username == "edge" && string(c.Password) == "right" {
		return core.Allow
	}
	return core.Deny(packets.BadUsernameOrPassword, "")
}

// tlsBroker starts a broker with a TLS listener of pki's server
// certificate.
func tlsBroker(t *testing.T, pki *tlstest.PKI) *broker {
	t.Helper()
	tc, err := tlsfiles.Load(tlsfiles.Files{Cert: pki.ServerCert, Key: pki.ServerKey})
	if err != nil {
		t.Fatal(err)
	}
	return startBrokerOn(t, func() core.Listener { return tcp.NewTLS("tls", "127.0.0.1:0", tc.TLSConfig()) }, core.Options{}, nil)
}

// A remote that cannot be reached, refuses the bridge's credentials or
// its TLS handshake: the bridge logs why, naming itself, keeps trying,
// and the local broker serves its clients as before.
func TestBridgeRemoteFaults(t *testing.T) {
	pki := tlstest.New(t)
	cases := []struct {
		name   string
		remote func(t *testing.T) BridgeConfig
		cause  string // in the log line
	}{
		{"unreachable", func(t *testing.T) BridgeConfig {
			return BridgeConfig{Address: "tcp://" + mqtttest.FreeAddr(t)}
		}, "connection refused"},
		{"bad credentials", func(t *testing.T) BridgeConfig {
			b := startBroker(t, "", core.Options{}, func(*core.Server, *slog.Logger) []core.Hook { return []core.Hook{passwordHook{}} })
			return BridgeConfig{Address: "tcp://" + b.addr, Username: "edge", Password: "wrong"}
		}, "bad user name or password"},
		{"certificate of an unknown authority", func(t *testing.T) BridgeConfig {
			b := tlsBroker(t, pki)
			return BridgeConfig{Address: "tls://" + b.addr}
		}, "certificate signed by unknown authority"},
		{"client certificate refused", func(t *testing.T) BridgeConfig {
			tc, err := tlsfiles.Load(tlsfiles.Files{Cert: pki.ServerCert, Key: pki.ServerKey, ClientCA: pki.CAFile, RequireClientCert: true})
			if err != nil {
				t.Fatal(err)
			}
			b := startBrokerOn(t, func() core.Listener { return tcp.NewTLS("tls", "127.0.0.1:0", tc.TLSConfig()) }, core.Options{}, nil)
			return BridgeConfig{Address: "tls://" + b.addr, TLS: &TLSConfig{CA: pki.CAFile}}
		}, "certificate"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bc := fastBackoff(tc.remote(t))
			bc.Name = "faulty"
			bc.Topics = []TopicRule{{Direction: DirBoth, Filter: "x/#", QoS: 1}}
			a := startBroker(t, "", core.Options{}, withBridge(t, Config{Bridges: []BridgeConfig{bc}}))
			eventuallyOr(t, "a log line naming the bridge and the cause", func() bool {
				for _, l := range strings.Split(a.log.String(), "\n") {
					if strings.Contains(l, "cannot connect to the remote broker") && strings.Contains(l, "bridge=faulty") &&
						strings.Contains(l, tc.cause) {
						return true
					}
				}
				return false
			}, func() { t.Logf("log:\n%s", a.log) })
			if bridgeOf(a.Server, "faulty").Connected {
				t.Error("status says connected")
			}
			// Local clients are served as before, on the bridged topics too.
			sub, pub := dial(t, a.addr, "sub"), dial(t, a.addr, "pub")
			sub.sub("x/#")
			pub.pub(&paho.Publish{Topic: "x/1", QoS: 1, Payload: []byte("local")})
			if m := sub.next(); m.Topic != "x/1" {
				t.Fatalf("local subscriber got %s", m.Topic)
			}
		})
	}
}

// The bridge speaks TLS (verifying the remote with the configured CA, and
// showing its client certificate) and WebSocket.
func TestBridgeTransports(t *testing.T) {
	pki := tlstest.New(t)
	cases := []struct {
		name   string
		remote func(t *testing.T) (BridgeConfig, *broker)
	}{
		{"tls with a client certificate", func(t *testing.T) (BridgeConfig, *broker) {
			tc, err := tlsfiles.Load(tlsfiles.Files{Cert: pki.ServerCert, Key: pki.ServerKey, ClientCA: pki.CAFile, RequireClientCert: true})
			if err != nil {
				t.Fatal(err)
			}
			b := startBrokerOn(t, func() core.Listener { return tcp.NewTLS("tls", "127.0.0.1:0", tc.TLSConfig()) }, core.Options{}, nil)
			return BridgeConfig{Address: "tls://" + b.addr, TLS: &TLSConfig{CA: pki.CAFile, Cert: pki.ClientCert, Key: pki.ClientKey}}, b
		}},
		{"websocket", func(t *testing.T) (BridgeConfig, *broker) {
			b := startBrokerOn(t, func() core.Listener { return websocket.New("ws", "127.0.0.1:0", websocket.Options{}) }, core.Options{}, nil)
			return BridgeConfig{Address: "ws://" + b.addr + websocket.DefaultPath}, b
		}},
		{"websocket over tls", func(t *testing.T) (BridgeConfig, *broker) {
			tc, err := tlsfiles.Load(tlsfiles.Files{Cert: pki.ServerCert, Key: pki.ServerKey})
			if err != nil {
				t.Fatal(err)
			}
			b := startBrokerOn(t, func() core.Listener {
				return websocket.New("wss", "127.0.0.1:0", websocket.Options{TLS: tc.TLSConfig()})
			}, core.Options{}, nil)
			return BridgeConfig{Address: "wss://" + b.addr + websocket.DefaultPath, TLS: &TLSConfig{CA: pki.CAFile}}, b
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var col collector
			bc, b := tc.remote(t)
			if _, err := b.Subscribe("x/#", col.add); err != nil {
				t.Fatal(err)
			}
			bc = fastBackoff(bc)
			bc.Name = "t"
			bc.Topics = []TopicRule{{Direction: DirOut, Filter: "x/#", QoS: 1}}
			a := startBroker(t, "", core.Options{}, withBridge(t, Config{Bridges: []BridgeConfig{bc}}))
			eventuallyOr(t, "bridge connected", func() bool { return bridgeOf(a.Server, "t").Connected },
				func() { t.Logf("log:\n%s", a.log) })
			dial(t, a.addr, "pub").pub(&paho.Publish{Topic: "x/1", QoS: 1, Payload: []byte("over " + tc.name)})
			eventually(t, "message forwarded", func() bool { return col.distinct() == 1 })
		})
	}
}
