package core

import (
	"context"
	"time"

	"github.com/vanemq/vanemq/core/packets"
)

// maxAuthRounds bounds an enhanced authentication exchange.
const maxAuthRounds = 16

// enhancedAuth runs the EnhancedAuth hooks for an MQTT 5 AUTH exchange
// begun by CONNECT (v5 section 4.12): while a hook asks to
// continue, the server sends AUTH 0x18 and reads the client's AUTH. It
// returns the final Authentication Data for CONNACK, or the reason code to
// refuse with.
func (c *client) enhancedAuth(ctx context.Context, method string, data []byte) ([]byte, packets.ReasonCode, string) {
	step := AuthStep{Method: method, Data: data}
	for range maxAuthRounds {
		v := c.authStep(ctx, &step)
		switch {
		case v.Decision == DecisionAllow:
			return step.Response, packets.Success, ""
		case v.Decision == DecisionDeny:
			return nil, v.Code, orReason(v.Reason, "authentication refused")
		case !step.Continue:
			return nil, packets.BadAuthenticationMethod, "no hook accepts authentication method " + method
		}
		c.sendAuth(packets.ContinueAuthentication, method, step.Response)
		var p packets.Packet
		_ = c.conn.SetReadDeadline(time.Now().Add(c.srv.opts.ConnectTimeout))
		if err := c.r.ReadPacket(&p); err != nil {
			return nil, packets.CodeOf(err), "reading AUTH: " + err.Error()
		}
		if p.Type != packets.Auth || p.ReasonCode != packets.ContinueAuthentication || p.Properties.AuthMethod != method {
			return nil, packets.ProtocolError, "expected AUTH 0x18 with method " + method + " (v5 section 4.12)"
		}
		step.Data = p.Properties.AuthData
	}
	return nil, packets.NotAuthorized, "too many authentication rounds"
}

// authStep runs one round of the EnhancedAuth hooks.
func (c *client) authStep(ctx context.Context, step *AuthStep) Verdict {
	step.Continue, step.Response = false, nil
	return c.srv.hooks.decide(EventEnhancedAuth, "", func(h *handlers) Verdict { return h.enhancedAuth.EnhancedAuth(ctx, &c.info, step) })
}

// sendAuth queues an AUTH packet.
func (c *client) sendAuth(code packets.ReasonCode, method string, data []byte) {
	p := &packets.Packet{Type: packets.Auth, ProtocolVersion: packets.Version5, ReasonCode: code}
	p.Properties.AuthMethod = method
	p.Properties.Set(packets.PropAuthMethod)
	if data != nil {
		p.Properties.AuthData = data
		p.Properties.Set(packets.PropAuthData)
	}
	c.enqueueControl(outControl{pkt: p}, nil)
}

// handleAuth takes an AUTH packet after CONNECT: re-authentication
// (0x19) or its continuation (0x18) [v5 section 4.12.1]. Success ends with
// AUTH 0x00, refusal with DISCONNECT.
func (c *client) handleAuth(ctx context.Context, p *packets.Packet) error {
	if c.authMethod == "" {
		return packets.Errorf(packets.ProtocolError, "AUTH without an authentication method in CONNECT [MQTT-4.12.0-7]")
	}
	if p.Properties.AuthMethod != c.authMethod {
		return packets.Errorf(packets.ProtocolError, "AUTH with method %q, CONNECT used %q [MQTT-4.12.1-1]", p.Properties.AuthMethod, c.authMethod)
	}
	switch {
	case p.ReasonCode == packets.ReAuthenticate && c.reauth == nil:
		c.reauth = &AuthStep{Method: c.authMethod, Reauth: true}
	case p.ReasonCode == packets.ContinueAuthentication && c.reauth != nil:
	default:
		return packets.Errorf(packets.ProtocolError, "unexpected AUTH reason %s", p.ReasonCode)
	}
	step := c.reauth
	step.Data = p.Properties.AuthData
	v := c.authStep(ctx, step)
	switch {
	case v.Decision == DecisionAllow:
		c.reauth = nil
		c.sendAuth(packets.Success, c.authMethod, step.Response)
		return nil
	case v.Decision == DecisionDeny:
		return packets.Errorf(v.Code, "%s", orReason(v.Reason, "re-authentication refused"))
	case !step.Continue:
		return packets.Errorf(packets.NotAuthorized, "re-authentication: no hook accepted method %s", c.authMethod)
	}
	c.sendAuth(packets.ContinueAuthentication, c.authMethod, step.Response)
	return nil
}
