package core

import (
	"context"

	"github.com/vanemq/vanemq/core/packets"
)

// The decision points of the hook pipeline. Each returns Success, or the
// reason code to refuse with and a cause for the log and reason string.

// authenticate decides whether a CONNECT may proceed: the Authenticate
// hooks, then the server's default (allow only with AllowAnonymous), then
// the Connect hooks, which may also set the client's policy. enhanced is
// set when an EnhancedAuth exchange, or the listener's verified client
// certificate (CertIdentity), already authenticated the client.
func (s *Server) authenticate(ctx context.Context, c *client, p *packets.Packet, enhanced bool, policy *ClientPolicy) (packets.ReasonCode, string) {
	if c.internal {
		*policy = c.internalPolicy
		return packets.Success, ""
	}
	cl := &c.info
	v := Next
	if enhanced {
		v = Allow
	} else if s.hooks.has(EventAuthenticate) {
		cf := &p.Connect
		cred := Credentials{
			Username:     cf.Username,
			UsernameSet:  cf.UsernameFlag,
			Password:     cf.Password,
			PasswordSet:  cf.PasswordFlag,
			AuthMethod:   p.Properties.AuthMethod,
			AuthData:     p.Properties.AuthData,
			UserProperty: p.Properties.UserProperties,
		}
		v = s.hooks.decide(EventAuthenticate, "", func(h *handlers) Verdict { return h.authenticate.Authenticate(ctx, cl, &cred) })
	}
	switch v.Decision {
	case DecisionDeny:
		return v.Code, orReason(v.Reason, "authentication refused")
	case DecisionNext:
		if !s.opts.AllowAnonymous {
			return packets.NotAuthorized, "no hook authenticated the client and allow_anonymous is false"
		}
	}
	if s.hooks.has(EventConnect) {
		v = s.hooks.decide(EventConnect, "", func(h *handlers) Verdict { return h.connect.Connect(ctx, cl, policy) })
		if v.Decision == DecisionDeny {
			return v.Code, orReason(v.Reason, "connection refused by a hook")
		}
		if err := CheckMountpoint(policy.Mountpoint); err != nil {
			return packets.ImplementationSpecificError, "a connect hook set an invalid mountpoint: " + err.Error()
		}
	}
	return packets.Success, ""
}

// authorizePublish decides whether a client may publish m: the
// AuthorizePublish hooks decide, and a topic the broker owns (brokerTopic)
// takes an explicit Allow.
func (s *Server) authorizePublish(ctx context.Context, c *client, m *Message) (packets.ReasonCode, string) {
	if c.internal {
		return packets.Success, ""
	}
	v := Next
	if s.hooks.has(EventAuthorizePublish) {
		v = s.hooks.decide(EventAuthorizePublish, m.Topic, func(h *handlers) Verdict { return h.authorizePublish.AuthorizePublish(ctx, &c.info, m) })
	}
	switch {
	case v.Decision == DecisionDeny:
		return v.Code, orReason(v.Reason, "not authorized to publish to "+m.Topic)
	case v.Decision != DecisionAllow && brokerTopic(m.Topic):
		return packets.NotAuthorized, errBrokerTopic
	}
	return packets.Success, ""
}

// errBrokerTopic is why a client's publish to a topic the broker owns is
// refused.
const errBrokerTopic = "topics under $SYS belong to the broker [MQTT-4.7.2-1]; a hook may allow a client to publish there"

// brokerTopic reports whether topic is one the broker publishes itself:
// $SYS and the topics under it (its counters, and the bridges' state
// topics, $SYS/broker/connection/NAME/state). A client may publish there
// only when an AuthorizePublish hook explicitly allows it (Allow): the
// server SHOULD prevent clients from using $ topics to exchange messages
// with each other [MQTT-4.7.2-1], and one that could would forge the
// broker's state. Other $ topics are the clients' to use.
func brokerTopic(topic string) bool {
	return len(topic) >= 4 && topic[:4] == "$SYS" && (len(topic) == 4 || topic[4] == '/')
}

// authorizeSubscribe decides whether a client may subscribe to filter and
// with which QoS (a hook may lower the requested one).
func (s *Server) authorizeSubscribe(ctx context.Context, c *client, filter string, qos byte) (packets.ReasonCode, byte, string) {
	if !s.hooks.has(EventAuthorizeSubscribe) || c.internal {
		return packets.Success, qos, ""
	}
	granted := qos
	v := s.hooks.decide(EventAuthorizeSubscribe, "", func(h *handlers) Verdict {
		return h.authorizeSubscribe.AuthorizeSubscribe(ctx, &c.info, filter, &granted)
	})
	if v.Decision == DecisionDeny {
		return v.Code, 0, orReason(v.Reason, "not authorized to subscribe to "+filter)
	}
	return packets.Success, min(granted, qos), ""
}

func orReason(reason, fallback string) string {
	if reason != "" {
		return reason
	}
	return fallback
}
