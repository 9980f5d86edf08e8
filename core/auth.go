package core

import (
	"context"

	"github.com/vanemq/vanemq/core/packets"
)

// The decision seams the hook pipeline plugs into. Until it lands every
// client is allowed; the signatures already carry what a decision needs.

// authenticate decides whether a CONNECT may proceed. It returns Success or
// the CONNACK reason code and a cause for the log.
func (s *Server) authenticate(_ context.Context, _ *client, _ *packets.Packet) (packets.ReasonCode, string) {
	return packets.Success, ""
}

// authorizePublish decides whether a client may publish to p.Topic.
func (s *Server) authorizePublish(_ context.Context, _ *client, _ *packets.Packet) (packets.ReasonCode, string) {
	return packets.Success, ""
}

// authorizeSubscribe decides whether a client may subscribe to filter and
// with which QoS (it may downgrade the requested QoS).
func (s *Server) authorizeSubscribe(_ context.Context, _ *client, _ string, qos byte) (packets.ReasonCode, byte, string) {
	return packets.Success, qos, ""
}
