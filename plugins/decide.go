package plugins

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/plugins/proto/pluginv1"
)

// The decisions and modifiers: one synchronous call each, with the context
// the broker passes (the connection's, or the server's for events of no
// connection) bounded by the timeout, so that a call for a connection that
// ends, or a broker that stops, is cancelled in the plugin too.

var errDown = errors.New("the plugin is not running")

// failed counts and logs (at most a line a second) a decision the plugin
// could not make, and returns the policy's verdict, Transient: it holds
// for this call only (the broker does not cache a read verdict so made,
// and asks the plugin again once it answers).
func (h *Hook) failed(ev core.Event, client string, err error) core.Verdict {
	h.failures.Add(1)
	now := time.Now().UnixNano()
	last := h.logged.Load()
	if now-last >= int64(time.Second) && h.logged.CompareAndSwap(last, now) {
		h.logger().Error("plugin call failed", "event", ev.String(), "client", client, "cause", err,
			"policy", h.cfg.OnFailure, "unlogged_failures", h.muted.Swap(0))
	} else {
		h.muted.Add(1)
	}
	v := h.cfg.policyVerdict()
	v.Transient = true
	return v
}

// decide makes one decision call, with ctx bounded by the timeout. A call
// cut short because ctx ended is no failure of the plugin: it is denied
// (the connection or the broker it was for has gone), Transient, and not
// counted.
func (h *Hook) decide(ctx context.Context, ev core.Event, client string, call func(ctx context.Context, c pluginv1.PluginClient) (core.Verdict, error)) core.Verdict {
	inst := h.cur.Load()
	if inst == nil {
		return h.failed(ev, client, errDown)
	}
	cctx, cancel := context.WithTimeout(ctx, h.cfg.Timeout)
	defer cancel()
	v, err := call(cctx, inst.rpc.Plugin)
	if err != nil {
		if ctx.Err() != nil {
			h.logger().Debug("plugin call cancelled", "event", ev.String(), "client", client, "cause", context.Cause(ctx))
			v := core.FailDeny.Verdict("cancelled: " + ctx.Err().Error())
			v.Transient = true
			return v
		}
		return h.failed(ev, client, err)
	}
	return v
}

// verdict checks a plugin's verdict.
func verdict(v *pluginv1.Verdict, err error) (core.Verdict, error) {
	if err != nil {
		return core.Verdict{}, err
	}
	cv, ok := verdictOf(v)
	if !ok {
		return core.Verdict{}, fmt.Errorf("invalid verdict: decision %d, code %#x", v.GetDecision(), v.GetCode())
	}
	return cv, nil
}

// Authenticate implements core.AuthenticateHook.
func (h *Hook) Authenticate(ctx context.Context, cl *core.ClientInfo, cred *core.Credentials) core.Verdict {
	return h.decide(ctx, core.EventAuthenticate, cl.ID, func(ctx context.Context, c pluginv1.PluginClient) (core.Verdict, error) {
		return verdict(c.Authenticate(ctx, &pluginv1.AuthenticateRequest{Client: clientProto(cl), Credentials: &pluginv1.Credentials{
			Username: cred.Username, UsernameSet: cred.UsernameSet, Password: cred.Password, PasswordSet: cred.PasswordSet,
			AuthMethod: cred.AuthMethod, AuthData: cred.AuthData, UserProperties: userPropertiesProto(cred.UserProperty)}}))
	})
}

// EnhancedAuth implements core.EnhancedAuthHook: the plugin gets the step's
// method, data and whether it re-authenticates, and may ask for another
// round (continue, with the response to send).
func (h *Hook) EnhancedAuth(ctx context.Context, cl *core.ClientInfo, step *core.AuthStep) core.Verdict {
	return h.decide(ctx, core.EventEnhancedAuth, cl.ID, func(ctx context.Context, c pluginv1.PluginClient) (core.Verdict, error) {
		r, err := c.EnhancedAuth(ctx, &pluginv1.AuthStepRequest{Client: clientProto(cl),
			Step: &pluginv1.AuthStep{Method: step.Method, Data: step.Data, Reauth: step.Reauth}})
		if err != nil {
			return core.Verdict{}, err
		}
		v, err := verdict(r.GetVerdict(), nil)
		if err != nil {
			return v, err
		}
		step.Continue, step.Response = r.GetContinue(), r.GetResponse()
		return v, nil
	})
}

// AuthorizePublish implements core.AuthorizePublishHook.
func (h *Hook) AuthorizePublish(ctx context.Context, cl *core.ClientInfo, m *core.Message) core.Verdict {
	if !h.wants(core.EventAuthorizePublish, m.Topic) {
		return core.Next
	}
	return h.decide(ctx, core.EventAuthorizePublish, cl.ID, func(ctx context.Context, c pluginv1.PluginClient) (core.Verdict, error) {
		return verdict(c.AuthorizePublish(ctx, &pluginv1.MessageRequest{Client: clientProto(cl), Message: messageProto(m)}))
	})
}

// AuthorizeSubscribe implements core.AuthorizeSubscribeHook: the plugin
// may lower the QoS granted.
func (h *Hook) AuthorizeSubscribe(ctx context.Context, cl *core.ClientInfo, filter string, qos *byte) core.Verdict {
	return h.decide(ctx, core.EventAuthorizeSubscribe, cl.ID, func(ctx context.Context, c pluginv1.PluginClient) (core.Verdict, error) {
		r, err := c.AuthorizeSubscribe(ctx, &pluginv1.SubscribeRequest{Client: clientProto(cl), Filter: filter, Qos: uint32(*qos)})
		if err != nil {
			return core.Verdict{}, err
		}
		v, err := verdict(r.GetVerdict(), nil)
		if err != nil {
			return v, err
		}
		if r.Qos != nil {
			if r.GetQos() > 2 {
				return core.Verdict{}, fmt.Errorf("invalid QoS %d", r.GetQos())
			}
			*qos = min(*qos, byte(r.GetQos()))
		}
		return v, nil
	})
}

// Connect implements core.ConnectHook: the plugin gets the client's policy
// as the hooks before it left it, and the fields it sets change it.
func (h *Hook) Connect(ctx context.Context, cl *core.ClientInfo, policy *core.ClientPolicy) core.Verdict {
	return h.decide(ctx, core.EventConnect, cl.ID, func(ctx context.Context, c pluginv1.PluginClient) (core.Verdict, error) {
		r, err := c.Connect(ctx, &pluginv1.ConnectRequest{Client: clientProto(cl), Policy: policyProto(policy)})
		if err != nil {
			return core.Verdict{}, err
		}
		v, err := verdict(&pluginv1.Verdict{Decision: r.GetDecision(), Code: r.GetCode(), Reason: r.GetReason()}, nil)
		if err != nil {
			return v, err
		}
		if p := r.GetPolicy(); p != nil {
			if err := applyPolicy(policy, p); err != nil {
				return core.Verdict{}, err
			}
		}
		return v, nil
	})
}

// Publish implements core.PublishHook: the plugin may change or drop the
// message.
func (h *Hook) Publish(ctx context.Context, cl *core.ClientInfo, m *core.Message) core.Verdict {
	if !h.wants(core.EventPublish, m.Topic) {
		return core.Next
	}
	return h.decide(ctx, core.EventPublish, cl.ID, func(ctx context.Context, c pluginv1.PluginClient) (core.Verdict, error) {
		return modified(m)(c.Publish(ctx, &pluginv1.MessageRequest{Client: clientProto(cl), Message: messageProto(m)}))
	})
}

// AuthorizeRead implements core.AuthorizeReadHook: may the subscriber cl
// receive a message on topic? A verdict the plugin could not give (it is
// down, timed out, answered wrongly) is the failure policy's, Transient,
// so that the server does not cache it.
func (h *Hook) AuthorizeRead(ctx context.Context, cl *core.ClientInfo, topic string) core.Verdict {
	if !h.wants(core.EventAuthorizeRead, topic) {
		return core.Next
	}
	return h.decide(ctx, core.EventAuthorizeRead, cl.ID, func(ctx context.Context, c pluginv1.PluginClient) (core.Verdict, error) {
		return verdict(c.AuthorizeRead(ctx, &pluginv1.ReadRequest{Client: clientProto(cl), Topic: topic}))
	})
}

// Deliver implements core.DeliverHook: the plugin may change or drop one
// delivery to one subscriber. The request names the subscriber twice: its
// client, and its ID alone for plugins built before the client was sent.
func (h *Hook) Deliver(ctx context.Context, cl *core.ClientInfo, m *core.Message) core.Verdict {
	if !h.wants(core.EventDeliver, m.Topic) {
		return core.Next
	}
	return h.decide(ctx, core.EventDeliver, cl.ID, func(ctx context.Context, c pluginv1.PluginClient) (core.Verdict, error) {
		return modified(m)(c.Deliver(ctx, deliverRequest(cl, m)))
	})
}

// deliverRequest is Deliver's request for a delivery of m to cl.
func deliverRequest(cl *core.ClientInfo, m *core.Message) *pluginv1.DeliverRequest {
	return &pluginv1.DeliverRequest{Subscriber: cl.ID, Client: clientProto(cl), Message: messageProto(m)}
}

// Will implements core.WillHook: the plugin may change a will message
// before it is published, or suppress it.
func (h *Hook) Will(ctx context.Context, cl *core.ClientInfo, m *core.Message) core.Verdict {
	if !h.wants(core.EventWill, m.Topic) {
		return core.Next
	}
	return h.decide(ctx, core.EventWill, cl.ID, func(ctx context.Context, c pluginv1.PluginClient) (core.Verdict, error) {
		return modified(m)(c.Will(ctx, &pluginv1.MessageRequest{Client: clientProto(cl), Message: messageProto(m)}))
	})
}

// modified applies a modifier's result to m: the replacement message, when
// the plugin sent one and did not deny, and the verdict, as a Go hook's
// (Allow ends the chain of modifiers, Next passes m on).
func modified(m *core.Message) func(r *pluginv1.PublishResult, err error) (core.Verdict, error) {
	return func(r *pluginv1.PublishResult, err error) (core.Verdict, error) {
		if err != nil {
			return core.Verdict{}, err
		}
		v, err := verdict(r.GetVerdict(), nil)
		if err != nil || v.Decision == core.DecisionDeny {
			return v, err
		}
		if nm := r.GetMessage(); nm != nil {
			if nm.GetQos() > 2 {
				return core.Verdict{}, fmt.Errorf("invalid QoS %d", nm.GetQos())
			}
			if nm.GetTopic() == "" {
				return core.Verdict{}, errors.New("the replacement message has no topic")
			}
			m.Topic, m.Payload, m.QoS, m.Retain = nm.GetTopic(), nm.GetPayload(), byte(nm.GetQos()), nm.GetRetain()
			m.Properties = propertiesOf(nm.GetProperties())
		}
		return v, nil
	}
}
