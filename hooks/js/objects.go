package js

import (
	"github.com/dop251/goja"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/packets"
)

// The objects handed to scripts are read-only views of the broker's
// values (goja dynamic objects): a property is converted only when the
// script reads it, and writes are refused (a TypeError in strict mode).

// readOnly refuses writes and deletes.
type readOnly struct{}

func (readOnly) Set(string, goja.Value) bool { return false }
func (readOnly) Delete(string) bool          { return false }

// clientObject is the client argument:
//
//	clientId, username, listener, remoteAddr, protocolVersion (3, 4 or 5),
//	cleanStart, certificate ({commonName, subject, dnsNames, emailAddresses}
//	of a verified TLS client certificate; undefined without one)
type clientObject struct {
	readOnly
	rt *goja.Runtime
	cl *core.ClientInfo
	// id and username are converted once: the object is kept for the
	// client's next calls (vm.client).
	id, username goja.Value
}

var clientKeys = []string{"clientId", "username", "listener", "remoteAddr", "protocolVersion", "cleanStart", "certificate"}

func (o *clientObject) Get(key string) goja.Value {
	cl := o.cl
	switch key {
	case "clientId":
		if o.id == nil {
			o.id = o.rt.ToValue(cl.ID)
		}
		return o.id
	case "username":
		if o.username == nil {
			o.username = o.rt.ToValue(cl.Username)
		}
		return o.username
	case "listener":
		return o.rt.ToValue(cl.Listener)
	case "remoteAddr":
		return o.rt.ToValue(cl.Remote)
	case "protocolVersion":
		return o.rt.ToValue(cl.ProtocolVersion)
	case "cleanStart":
		return o.rt.ToValue(cl.CleanStart)
	case "certificate":
		if cl.TLS == nil || len(cl.TLS.PeerCertificates) == 0 {
			return goja.Undefined()
		}
		c := cl.TLS.PeerCertificates[0]
		return freezeValue(o.rt, map[string]any{
			"commonName": c.Subject.CommonName, "subject": c.Subject.String(),
			"dnsNames": c.DNSNames, "emailAddresses": c.EmailAddresses,
		})
	}
	return nil
}

func (o *clientObject) Has(key string) bool { return o.Get(key) != nil }
func (o *clientObject) Keys() []string      { return clientKeys }

// credentialsObject is authenticate's second argument:
//
//	username, password (string), hasUsername, hasPassword, authMethod
type credentialsObject struct {
	readOnly
	rt *goja.Runtime
	c  *core.Credentials
}

var credentialKeys = []string{"username", "password", "hasUsername", "hasPassword", "authMethod"}

func (o *credentialsObject) Get(key string) goja.Value {
	switch key {
	case "username":
		return o.rt.ToValue(o.c.Username)
	case "password":
		return o.rt.ToValue(string(o.c.Password))
	case "hasUsername":
		return o.rt.ToValue(o.c.UsernameSet)
	case "hasPassword":
		return o.rt.ToValue(o.c.PasswordSet)
	case "authMethod":
		return o.rt.ToValue(o.c.AuthMethod)
	}
	return nil
}

func (o *credentialsObject) Has(key string) bool { return o.Get(key) != nil }
func (o *credentialsObject) Keys() []string      { return credentialKeys }

// subscriptionObject is authorizeSubscribe's second argument: filter (with
// any $share/{group}/ prefix and mountpoint) and qos, the QoS asked for.
type subscriptionObject struct {
	readOnly
	rt     *goja.Runtime
	filter string
	qos    byte
}

var subscriptionKeys = []string{"filter", "qos"}

func (o *subscriptionObject) Get(key string) goja.Value {
	switch key {
	case "filter":
		return o.rt.ToValue(o.filter)
	case "qos":
		return o.rt.ToValue(o.qos)
	}
	return nil
}

func (o *subscriptionObject) Has(key string) bool { return o.Get(key) != nil }
func (o *subscriptionObject) Keys() []string      { return subscriptionKeys }

// messageObject is a message:
//
//	topic, payload (the payload as a UTF-8 string), payloadBytes (an
//	ArrayBuffer copy), qos, retain, origin (the publisher's client ID),
//	properties ({payloadFormat, messageExpiry, contentType, responseTopic,
//	correlationData, userProperties: [{key, value}]})
type messageObject struct {
	readOnly
	rt      *goja.Runtime
	m       *core.Message
	payload goja.Value // the string, made on first read
}

var messageKeys = []string{"topic", "payload", "payloadBytes", "qos", "retain", "origin", "properties"}

func (o *messageObject) Get(key string) goja.Value {
	m := o.m
	if m == nil {
		return goja.Undefined() // kept past its call: detached
	}
	switch key {
	case "topic":
		return o.rt.ToValue(m.Topic)
	case "payload":
		if o.payload == nil {
			o.payload = o.rt.ToValue(string(m.Payload))
		}
		return o.payload
	case "payloadBytes":
		return o.rt.ToValue(o.rt.NewArrayBuffer(append([]byte(nil), m.Payload...)))
	case "qos":
		return o.rt.ToValue(m.QoS)
	case "retain":
		return o.rt.ToValue(m.Retain)
	case "origin":
		return o.rt.ToValue(m.Origin)
	case "properties":
		return propertiesValue(o.rt, &m.Properties)
	}
	return nil
}

func (o *messageObject) Has(key string) bool { return o.Get(key) != nil }
func (o *messageObject) Keys() []string      { return messageKeys }

// propertiesValue is a frozen object of the MQTT 5 properties that travel
// with a message; absent ones are left out.
func propertiesValue(rt *goja.Runtime, p *packets.Properties) goja.Value {
	out := map[string]any{}
	if p.Has(packets.PropPayloadFormat) {
		out["payloadFormat"] = p.PayloadFormat
	}
	if p.Has(packets.PropMessageExpiry) {
		out["messageExpiry"] = p.MessageExpiry
	}
	if p.Has(packets.PropContentType) {
		out["contentType"] = p.ContentType
	}
	if p.Has(packets.PropResponseTopic) {
		out["responseTopic"] = p.ResponseTopic
	}
	if p.Has(packets.PropCorrelationData) {
		out["correlationData"] = string(p.CorrelationData)
	}
	ups := make([]any, len(p.UserProperties))
	for i, u := range p.UserProperties {
		ups[i] = map[string]any{"key": u.Key, "value": u.Value}
	}
	out["userProperties"] = ups
	return freezeValue(rt, out)
}

// freezeValue converts v (maps, slices, strings, numbers, booleans) into
// plain script objects and arrays, frozen all the way down.
func freezeValue(rt *goja.Runtime, v any) goja.Value {
	freeze, _ := goja.AssertFunction(rt.Get("Object").ToObject(rt).Get("freeze"))
	return plainValue(rt, v, freeze)
}

func plainValue(rt *goja.Runtime, v any, freeze goja.Callable) goja.Value {
	var o *goja.Object
	switch x := v.(type) {
	case map[string]any:
		o = rt.NewObject()
		for k, e := range x {
			_ = o.Set(k, plainValue(rt, e, freeze))
		}
	case []any:
		items := make([]any, len(x))
		for i, e := range x {
			items[i] = plainValue(rt, e, freeze)
		}
		o = rt.NewArray(items...)
	case []string:
		items := make([]any, len(x))
		for i, e := range x {
			items[i] = e
		}
		o = rt.NewArray(items...)
	default:
		return rt.ToValue(v)
	}
	_, _ = freeze(goja.Undefined(), o)
	return o
}
