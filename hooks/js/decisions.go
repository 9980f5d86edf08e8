package js

import (
	"context"

	"github.com/vanemq/vanemq/core"
)

// The decisions: each returns what the script's return value means
// (verdict.go), or, when the call fails, what the failure policy makes of
// it.

// Authenticate implements core.AuthenticateHook: authenticate(client,
// credentials).
func (h *Hook) Authenticate(_ context.Context, cl *core.ClientInfo, cred *core.Credentials) core.Verdict {
	return h.decide(fnAuthenticate, cl.ID, "", func(v *vm) (core.Verdict, error) {
		res, err := v.call(fnAuthenticate, v.client(cl), v.rt.NewDynamicObject(&credentialsObject{rt: v.rt, c: cred}))
		if err != nil {
			return core.Verdict{}, err
		}
		vd, err := verdictOf(res, nil)
		if err != nil {
			return vd, callErr(fnAuthenticate, err)
		}
		return vd, nil
	})
}

// EnhancedAuth implements core.EnhancedAuthHook: enhancedAuth(client,
// {method, data, dataBytes, reauth}). Besides a verdict the script may ask
// for another round ({continue: true, response}), and give the
// Authentication Data of the server's answer ({allow: true, response}).
func (h *Hook) EnhancedAuth(_ context.Context, cl *core.ClientInfo, step *core.AuthStep) core.Verdict {
	var ans authAnswer
	vd := h.decide(fnEnhancedAuth, cl.ID, step.Method, func(v *vm) (core.Verdict, error) {
		res, err := v.call(fnEnhancedAuth, v.client(cl), v.rt.NewDynamicObject(&authStepObject{rt: v.rt, s: step}))
		if err != nil {
			return core.Verdict{}, err
		}
		vd, err := v.authVerdictOf(res, &ans)
		if err != nil {
			return vd, callErr(fnEnhancedAuth, err)
		}
		return vd, nil
	})
	if ans.set {
		step.Continue, step.Response = ans.cont, ans.response
	}
	return vd
}

// AuthorizePublish implements core.AuthorizePublishHook:
// authorizePublish(client, msg).
func (h *Hook) AuthorizePublish(_ context.Context, cl *core.ClientInfo, m *core.Message) core.Verdict {
	c := h.cache.Load()
	key := cacheKey{action: actionPublish, topic: m.Topic}
	if c != nil {
		if vd, _, ok := c.get(cl, key); ok {
			return vd
		}
	}
	vd, called, err := h.run(fnAuthorizePublish, func(v *vm) (core.Verdict, error) {
		mo, done := v.message(m)
		res, err := v.call(fnAuthorizePublish, v.client(cl), mo)
		done()
		if err != nil {
			return core.Verdict{}, err
		}
		vd, err := verdictOf(res, nil)
		if err != nil {
			return vd, callErr(fnAuthorizePublish, err)
		}
		return vd, nil
	})
	if err != nil {
		return h.failed(fnAuthorizePublish, cl.ID, m.Topic, err)
	}
	if c != nil && called {
		h.remember(c, cl, key, vd, 0)
	}
	return vd
}

// AuthorizeSubscribe implements core.AuthorizeSubscribeHook:
// authorizeSubscribe(client, {filter, qos}); the return value may lower
// the QoS.
func (h *Hook) AuthorizeSubscribe(_ context.Context, cl *core.ClientInfo, filter string, qos *byte) core.Verdict {
	c := h.cache.Load()
	key := cacheKey{action: actionSubscribe + *qos, topic: filter}
	if c != nil {
		if vd, q, ok := c.get(cl, key); ok {
			*qos = q
			return vd
		}
	}
	granted := *qos
	vd, called, err := h.run(fnAuthorizeSubscribe, func(v *vm) (core.Verdict, error) {
		sub := v.rt.NewDynamicObject(&subscriptionObject{rt: v.rt, filter: filter, qos: *qos})
		res, err := v.call(fnAuthorizeSubscribe, v.client(cl), sub)
		if err != nil {
			return core.Verdict{}, err
		}
		vd, err := verdictOf(res, &granted)
		if err != nil {
			return vd, callErr(fnAuthorizeSubscribe, err)
		}
		return vd, nil
	})
	if err != nil {
		return h.failed(fnAuthorizeSubscribe, cl.ID, filter, err)
	}
	*qos = granted
	if c != nil && called {
		h.remember(c, cl, key, vd, granted)
	}
	return vd
}

// AuthorizeRead implements core.AuthorizeReadHook: authorizeRead(client,
// topic), where client is the subscriber a message on topic is about to
// be delivered to. The server caches the verdict per subscriber and
// topic (reloading the script forgets it); a failed call's verdict is the
// failure policy's, Transient, so it is not cached.
func (h *Hook) AuthorizeRead(_ context.Context, cl *core.ClientInfo, topic string) core.Verdict {
	return h.decide(fnAuthorizeRead, cl.ID, topic, func(v *vm) (core.Verdict, error) {
		res, err := v.call(fnAuthorizeRead, v.client(cl), v.rt.ToValue(topic))
		if err != nil {
			return core.Verdict{}, err
		}
		vd, err := verdictOf(res, nil)
		if err != nil {
			return vd, callErr(fnAuthorizeRead, err)
		}
		return vd, nil
	})
}

// Connect implements core.ConnectHook: connect(client, policy), a
// decision that may set the client's policy by assigning to policy's
// fields (policy.go). The policy changes only when the call succeeds.
func (h *Hook) Connect(_ context.Context, cl *core.ClientInfo, policy *core.ClientPolicy) core.Verdict {
	var set core.ClientPolicy
	changed := false
	vd := h.decide(fnConnect, cl.ID, "", func(v *vm) (core.Verdict, error) {
		po := &policyObject{rt: v.rt}
		if policy != nil {
			po.p = *policy
		}
		res, err := v.call(fnConnect, v.client(cl), v.rt.NewDynamicObject(po))
		po.done = true
		if err != nil {
			return core.Verdict{}, err
		}
		vd, err := verdictOf(res, nil)
		if err != nil {
			return vd, callErr(fnConnect, err)
		}
		set, changed = po.p, po.changed
		return vd, nil
	})
	if changed && policy != nil {
		*policy = set
	}
	return vd
}
