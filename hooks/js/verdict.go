package js

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/dop251/goja"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/packets"
	"github.com/vanemq/vanemq/core/topics"
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
	if err := onlyKeys(o, "allow", "reason", "code", "qos"); err != nil {
		return core.Verdict{}, err
	}
	return verdictFields(o, qos)
}

// verdictFields reads a verdict object's allow, reason, code and qos.
func verdictFields(o *goja.Object, qos *byte) (core.Verdict, error) {
	allowed := o.Get("allow")
	b, ok := valueBool(allowed)
	if !ok {
		return core.Verdict{}, fmt.Errorf("returned an object whose allow is %s; want true or false", typeName(allowed))
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
	if k, ok := unknownKey(o, allowed); ok {
		return fmt.Errorf("returned an object with an unknown field %q (known: %v)", k, allowed)
	}
	return nil
}

// unknownKey returns a key of o that is not among the allowed ones.
func unknownKey(o *goja.Object, allowed []string) (string, bool) {
	for _, k := range o.Keys() {
		if !slices.Contains(allowed, k) {
			return k, true
		}
	}
	return "", false
}

// applyMessage reads a modifier's return value (publish, deliver, will):
//
//	undefined or true     the message goes on unchanged
//	false                 dropped (a QoS 1/2 publisher gets 0x83)
//	{allow: false, reason, code}   dropped with that reason code
//	{topic, payload, qos, retain, properties}  the message, changed in
//	                      those fields
func (v *vm) applyMessage(res goja.Value, m *core.Message) (core.Verdict, error) {
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
	if err := onlyKeys(o, "topic", "payload", "qos", "retain", "properties"); err != nil {
		return core.Verdict{}, err
	}
	if t := o.Get("topic"); t != nil && !goja.IsUndefined(t) {
		topic, ok := t.Export().(string)
		if !ok {
			return core.Verdict{}, fmt.Errorf("returned topic %s %s; want a string", typeName(t), t.String())
		}
		if err := topics.ValidateTopicName(topic); err != nil {
			return core.Verdict{}, fmt.Errorf("returned topic %q: %w", topic, err)
		}
		m.Topic = topic
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
	if p := o.Get("properties"); p != nil && !goja.IsUndefined(p) {
		if err := v.applyProperties(p, &m.Properties); err != nil {
			return core.Verdict{}, fmt.Errorf("returned properties: %w", err)
		}
	}
	return core.Next, nil
}

// authAnswer is what enhancedAuth asks of the server besides its verdict:
// another round (cont), and the Authentication Data to send with the
// next AUTH or the CONNACK (response).
type authAnswer struct {
	set      bool
	cont     bool
	response []byte
}

// authVerdictOf reads enhancedAuth's return value: a decision's (see
// verdictOf), where an allowance may carry a response, or
//
//	{continue: true, response: ...}   another round: the server sends AUTH
//	                                  0x18 with the response as its data
//
// A response is a string (UTF-8), an ArrayBuffer or a typed array, as a
// payload is. ans is filled only when the value is good.
func (v *vm) authVerdictOf(res goja.Value, ans *authAnswer) (core.Verdict, error) {
	o, isObj := res.(*goja.Object)
	if !isObj || o.ClassName() == "Array" {
		return verdictOf(res, nil)
	}
	if err := onlyKeys(o, "allow", "reason", "code", "continue", "response"); err != nil {
		return core.Verdict{}, err
	}
	var response []byte
	hasResponse := false
	if r := o.Get("response"); r != nil && !goja.IsUndefined(r) {
		b, err := v.payloadOf(r)
		if err != nil {
			return core.Verdict{}, fmt.Errorf("returned response: %w", err)
		}
		response, hasResponse = b, true
	}
	if c := o.Get("continue"); c != nil && !goja.IsUndefined(c) {
		cont, ok := valueBool(c)
		switch {
		case !ok:
			return core.Verdict{}, fmt.Errorf("returned continue %s; want true", c.String())
		case !cont:
			return core.Verdict{}, fmt.Errorf("returned continue: false; leave it out, and return allow, or undefined for no opinion")
		case o.Get("allow") != nil || o.Get("code") != nil || o.Get("reason") != nil:
			return core.Verdict{}, fmt.Errorf("returned continue with allow, code or reason; another round has no verdict yet")
		}
		*ans = authAnswer{set: true, cont: true, response: response}
		return core.Next, nil
	}
	vd, err := verdictFields(o, nil)
	if err != nil {
		return vd, err
	}
	if hasResponse {
		if vd.Decision != core.DecisionAllow {
			return core.Verdict{}, fmt.Errorf("returned a response with allow: false; only an allowance or another round has one")
		}
		*ans = authAnswer{set: true, response: response}
	}
	return vd, nil
}

// applyProperties changes the properties a modifier returned: a field
// given sets that property, null removes it, and a field left out keeps
// it; userProperties replaces the list.
func (v *vm) applyProperties(val goja.Value, p *packets.Properties) error {
	o, ok := val.(*goja.Object)
	if !ok || o.ClassName() == "Array" {
		return fmt.Errorf("a %s, want an object", typeName(val))
	}
	known := []string{"payloadFormat", "messageExpiry", "contentType", "responseTopic", "correlationData", "userProperties"}
	if k, ok := unknownKey(o, known); ok {
		return fmt.Errorf("an unknown field %q (known: %v)", k, known)
	}
	field := func(key string) (goja.Value, bool, bool) { // value, given, null
		f := o.Get(key)
		if f == nil || goja.IsUndefined(f) {
			return nil, false, false
		}
		return f, true, goja.IsNull(f)
	}
	if f, given, null := field("payloadFormat"); given {
		if null {
			p.Clear(packets.PropPayloadFormat)
		} else {
			n, ok := f.Export().(int64)
			if !ok || (n != 0 && n != 1) {
				return fmt.Errorf("payloadFormat %s; want 0 (bytes) or 1 (UTF-8)", f.String())
			}
			p.PayloadFormat = byte(n)
			p.Set(packets.PropPayloadFormat)
		}
	}
	if f, given, null := field("messageExpiry"); given {
		if null {
			p.Clear(packets.PropMessageExpiry)
		} else {
			n, ok := f.Export().(int64)
			if !ok || n < 0 || n > 0xFFFFFFFF {
				return fmt.Errorf("messageExpiry %s; want seconds, an integer from 0 to 4294967295", f.String())
			}
			p.MessageExpiry = uint32(n)
			p.Set(packets.PropMessageExpiry)
		}
	}
	for _, sp := range []struct {
		key string
		id  packets.PropID
		dst *string
	}{{"contentType", packets.PropContentType, &p.ContentType}, {"responseTopic", packets.PropResponseTopic, &p.ResponseTopic}} {
		f, given, null := field(sp.key)
		switch {
		case !given:
			continue
		case null:
			p.Clear(sp.id)
			*sp.dst = ""
			continue
		}
		s, ok := f.Export().(string)
		if !ok {
			return fmt.Errorf("%s: a %s, want a string", sp.key, typeName(f))
		}
		if sp.id == packets.PropResponseTopic {
			if err := topics.ValidateTopicName(s); err != nil {
				return fmt.Errorf("responseTopic %q: %w", s, err)
			}
		}
		*sp.dst = s
		p.Set(sp.id)
	}
	if f, given, null := field("correlationData"); given {
		if null {
			p.Clear(packets.PropCorrelationData)
			p.CorrelationData = nil
		} else {
			b, err := v.payloadOf(f)
			if err != nil {
				return fmt.Errorf("correlationData: %w", err)
			}
			p.CorrelationData = b
			p.Set(packets.PropCorrelationData)
		}
	}
	if f, given, null := field("userProperties"); given {
		if null {
			p.UserProperties = nil
		} else {
			ups, err := userPropertiesOf(f)
			if err != nil {
				return fmt.Errorf("userProperties: %w", err)
			}
			p.UserProperties = ups
		}
	}
	return nil
}

// userPropertiesOf reads an array of {key, value} strings.
func userPropertiesOf(val goja.Value) ([]packets.UserProperty, error) {
	a, ok := val.(*goja.Object)
	if !ok || a.ClassName() != "Array" {
		return nil, fmt.Errorf("a %s, want an array of {key, value} strings", typeName(val))
	}
	n := a.Get("length").ToInteger()
	if n > maxLen {
		return nil, fmt.Errorf("%d of them, more than %d", n, maxLen)
	}
	ups := make([]packets.UserProperty, n)
	for i := range ups {
		e, ok := a.Get(strconv.Itoa(i)).(*goja.Object)
		if !ok {
			return nil, fmt.Errorf("[%d] is not an object, want {key, value} strings", i)
		}
		k, kok := e.Get("key").Export().(string)
		v, vok := e.Get("value").Export().(string)
		if !kok || !vok {
			return nil, fmt.Errorf("[%d]: want {key, value} strings", i)
		}
		ups[i] = packets.UserProperty{Key: k, Value: v}
	}
	return ups, nil
}
