package js

import (
	"context"

	"github.com/dop251/goja"

	"github.com/vanemq/vanemq/core"
)

// The modifiers: publish, deliver and will may change the message they
// are given, or drop it (verdict.go's applyMessage). A failed call drops
// it (on_failure deny) or leaves it unchanged (next).

// Publish implements core.PublishHook: publish(client, msg), for a
// message a client published.
func (h *Hook) Publish(_ context.Context, cl *core.ClientInfo, m *core.Message) core.Verdict {
	return h.modify(fnPublish, cl.ID, m, func(v *vm) goja.Value { return v.client(cl) })
}

// Deliver implements core.DeliverHook: deliver(client, msg), for one
// delivery to the subscriber client (a client object, as publish's; in a
// string context it is its client ID, as the ID string deliver got before).
func (h *Hook) Deliver(_ context.Context, cl *core.ClientInfo, m *core.Message) core.Verdict {
	return h.modify(fnDeliver, cl.ID, m, func(v *vm) goja.Value { return v.client(cl) })
}

// Will implements core.WillHook: will(client, msg), for the will message
// of a client about to be published.
func (h *Hook) Will(_ context.Context, cl *core.ClientInfo, m *core.Message) core.Verdict {
	return h.modify(fnWill, cl.ID, m, func(v *vm) goja.Value { return v.client(cl) })
}

// modify calls a modifier with first (made on the runtime) and m, and
// applies what it returns to m.
func (h *Hook) modify(f fn, client string, m *core.Message, first func(v *vm) goja.Value) core.Verdict {
	changed := *m
	vd, _, err := h.run(f, func(v *vm) (core.Verdict, error) {
		mo, done := v.message(m)
		res, err := v.call(f, first(v), mo)
		done()
		if err != nil {
			return core.Verdict{}, err
		}
		vd, err := v.applyMessage(res, &changed)
		if err != nil {
			return vd, callErr(f, err)
		}
		return vd, nil
	})
	if err != nil {
		return h.failed(f, client, m.Topic, err)
	}
	if vd.Decision == core.DecisionNext {
		*m = changed
	}
	return vd
}
