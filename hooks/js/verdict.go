package js

import (
	"fmt"
	"path/filepath"
	"slices"

	"github.com/dop251/goja"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/packets"
)

// A decision function returns
//
//	undefined or null   no opinion: the next hook decides
//	true                allowed
//	false               refused with 0x87 (Not authorized)
//	{allow: false, reason: "...", code: 0x97}   refused with a reason code
//	                    (0x80 or above) and a reason string
//	{allow: true, qos: 0}   allowed; authorizeSubscribe may lower the QoS
//
// Anything else is a bad return value: a failure of the hook.

// verdictOf reads a decision's return value. qos, when not nil, may be
// lowered by the return value's qos.
func verdictOf(res goja.Value, qos *byte) (core.Verdict, error) {
	if res == nil || goja.IsUndefined(res) || goja.IsNull(res) {
		return core.Next, nil
	}
	o, isObj := res.(*goja.Object)
	if !isObj {
		if b, ok := res.Export().(bool); ok {
			if b {
				return core.Allow, nil
			}
			return core.Deny(packets.NotAuthorized, ""), nil
		}
		return core.Verdict{}, fmt.Errorf("returned %s %s; want true, false, undefined or {allow, reason, code}", typeName(res), res.String())
	}
	if o.ClassName() == "Array" {
		return core.Verdict{}, fmt.Errorf("returned an array; want true, false, undefined or {allow, reason, code}")
	}
	allowed := o.Get("allow")
	b, ok := valueBool(allowed)
	if !ok {
		return core.Verdict{}, fmt.Errorf("returned an object whose allow is %s; want true or false", typeName(allowed))
	}
	if err := onlyKeys(o, "allow", "reason", "code", "qos"); err != nil {
		return core.Verdict{}, err
	}
	reason := ""
	if r := o.Get("reason"); r != nil && !goja.IsUndefined(r) {
		reason = r.String()
	}
	if b {
		if q := o.Get("qos"); q != nil && !goja.IsUndefined(q) {
			if qos == nil {
				return core.Verdict{}, fmt.Errorf("returned a qos, which only authorizeSubscribe may")
			}
			n, ok := q.Export().(int64)
			if !ok || n < 0 || n > 2 {
				return core.Verdict{}, fmt.Errorf("returned qos %s; want 0, 1 or 2", q.String())
			}
			*qos = min(*qos, byte(n))
		}
		return core.Allow, nil
	}
	code := packets.NotAuthorized
	if c := o.Get("code"); c != nil && !goja.IsUndefined(c) {
		n, ok := c.Export().(int64)
		if !ok || n < 0x80 || n > 0xFF {
			return core.Verdict{}, fmt.Errorf("returned code %s; a refusal's reason code is 0x80 to 0xFF", c.String())
		}
		code = packets.ReasonCode(n)
	}
	return core.Deny(code, reason), nil
}

// valueBool reads a boolean.
func valueBool(v goja.Value) (bool, bool) {
	if v == nil {
		return false, false
	}
	b, ok := v.Export().(bool)
	return b, ok
}

// onlyKeys refuses an object with keys other than the allowed ones, so a
// misspelt field is an error instead of being ignored.
func onlyKeys(o *goja.Object, allowed ...string) error {
	for _, k := range o.Keys() {
		if !slices.Contains(allowed, k) {
			return fmt.Errorf("returned an object with an unknown field %q (known: %v)", k, allowed)
		}
	}
	return nil
}

// applyPublish reads onPublish's return value:
//
//	undefined or true     the message goes on unchanged
//	false                 dropped (a QoS 1/2 publisher gets 0x83)
//	{allow: false, reason, code}   dropped with that reason code
//	{topic, payload, qos, retain}  the message, changed in those fields
func (v *vm) applyPublish(res goja.Value, m *core.Message) (core.Verdict, error) {
	if res == nil || goja.IsUndefined(res) || goja.IsNull(res) {
		return core.Next, nil
	}
	o, isObj := res.(*goja.Object)
	if !isObj {
		if b, ok := res.Export().(bool); ok {
			if b {
				return core.Next, nil
			}
			return core.Deny(packets.ImplementationSpecificError, "dropped by "+filepath.Base(v.prog.path)), nil
		}
		return core.Verdict{}, fmt.Errorf("returned %s %s; want undefined, true, false or a message", typeName(res), res.String())
	}
	if a := o.Get("allow"); a != nil {
		vd, err := verdictOf(res, nil)
		if err != nil {
			return core.Verdict{}, err
		}
		if vd.Decision == core.DecisionAllow {
			vd = core.Next // allow: true changes nothing here
		}
		return vd, nil
	}
	if err := onlyKeys(o, "topic", "payload", "qos", "retain"); err != nil {
		return core.Verdict{}, err
	}
	if t := o.Get("topic"); t != nil && !goja.IsUndefined(t) {
		m.Topic = t.String()
	}
	if p := o.Get("payload"); p != nil && !goja.IsUndefined(p) {
		b, err := v.payloadOf(p)
		if err != nil {
			return core.Verdict{}, fmt.Errorf("returned payload: %w", err)
		}
		m.Payload = b
	}
	if q := o.Get("qos"); q != nil && !goja.IsUndefined(q) {
		n, ok := q.Export().(int64)
		if !ok || n < 0 || n > 2 {
			return core.Verdict{}, fmt.Errorf("returned qos %s; want 0, 1 or 2", q.String())
		}
		m.QoS = byte(n)
	}
	if r := o.Get("retain"); r != nil && !goja.IsUndefined(r) {
		b, ok := valueBool(r)
		if !ok {
			return core.Verdict{}, fmt.Errorf("returned retain %s; want true or false", r.String())
		}
		m.Retain = b
	}
	return core.Next, nil
}
