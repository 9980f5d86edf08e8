// Package wire is what the broker and a plugin binary agree on besides
// the gRPC contract (plugins/proto/pluginv1): the go-plugin handshake and
// the plugin's name in the plugin set. Both the host (package plugins) and
// the SDK (plugins/sdk) import it; plugin authors do not.
package wire

import (
	"context"
	"errors"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/vanemq/vanemq/plugins/proto/pluginv1"
)

// Protocol is the version of the contract; a plugin built for another one
// is refused at the handshake.
const Protocol = 1

// Handshake is the go-plugin handshake. The magic cookie keeps a plugin
// binary from being run by hand by mistake: it refuses to start without it.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  Protocol,
	MagicCookieKey:   "VANEMQ_PLUGIN",
	MagicCookieValue: "hook-v1-6f1d2c8e",
}

// MaxMessageSize bounds one gRPC message either way, above gRPC's 4 MiB
// default: an MQTT payload may be 256 MB, and a decision or an observed
// event carries it.
const MaxMessageSize = 512 << 20

// IOBufferSize is the broker's write buffer and the plugin's read buffer
// on their gRPC connection: a batch of observed events (64 KiB and more)
// then goes in one write and one read, and wakes the plugin once, not
// once for each of gRPC's default 32 KiB.
const IOBufferSize = 512 << 10

// BrokerPIDEnv names the environment variable in which the broker passes
// its process ID to a plugin it starts. The plugin compares it with its
// parent's: when they differ, even before the plugin's runtime has
// started, the broker is gone and the plugin exits.
const BrokerPIDEnv = "VANEMQ_BROKER_PID"

// Name is the plugin's name in go-plugin's plugin set.
const Name = "hook"

// GRPCPlugin adapts the contract to go-plugin: in the plugin binary it
// serves Impl; in the broker it returns a Client.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	// Impl is the plugin's implementation (plugin side only).
	Impl pluginv1.PluginServer
	// Setup, when set, runs in the plugin with the go-plugin broker, to
	// reach the Host service (plugin side only).
	Setup func(b *plugin.GRPCBroker)
}

// GRPCServer registers the implementation (plugin side).
func (p *GRPCPlugin) GRPCServer(b *plugin.GRPCBroker, s *grpc.Server) error {
	if p.Impl == nil {
		return errors.New("wire: no plugin implementation")
	}
	if p.Setup != nil {
		p.Setup(b)
	}
	pluginv1.RegisterPluginServer(s, p.Impl)
	return nil
}

// GRPCClient returns the broker's side: a Client.
func (p *GRPCPlugin) GRPCClient(_ context.Context, b *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &Client{Plugin: pluginv1.NewPluginClient(c), Broker: b}, nil
}

// Client is the broker's handle on a running plugin.
type Client struct {
	Plugin pluginv1.PluginClient
	Broker *plugin.GRPCBroker
}
