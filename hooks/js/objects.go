package js

import (
	"github.com/dop251/goja"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/packets"
)

// The objects handed to scripts are read-only views of the broker's
// values (goja dynamic objects): a property is converted only when the
// script reads it, and writes are refused (a TypeError in strict mode).

// maxClients bounds a runtime's cache of client objects.
const maxClients = 4096

// client returns the script object of a client, made on its first call
// on this runtime.
func (v *vm) client(cl *core.ClientInfo) goja.Value {
	if o, ok := v.clients[cl]; ok {
		return o
	}
	if v.clients == nil || len(v.clients) >= maxClients {
		v.clients = make(map[*core.ClientInfo]*goja.Object)
	}
	o := v.rt.NewDynamicObject(&clientObject{rt: v.rt, cl: cl})
	_ = o.SetPrototype(v.clientProto)
	v.clients[cl] = o
	return o
}

// message returns the script object of m and a function that detaches it
// from m once the call is over: m may be the reader's scratch message,
// and a script that kept the object must not see it change.
func (v *vm) message(m *core.Message) (goja.Value, func()) {
	o := &messageObject{rt: v.rt, m: m}
	return v.rt.NewDynamicObject(o), func() { o.m = nil }
}

// readOnly refuses writes and deletes.
type readOnly struct{}

func (readOnly) Set(string, goja.Value) bool { return false }
func (readOnly) Delete(string) bool          { return false }

// clientObject is the client argument:
//
//	clientId, username, listener, remoteAddr, protocolVersion (3, 4 or 5),
//	cleanStart, certificate ({commonName, subject, dnsNames, emailAddresses}
//	of a verified TLS client certificate; undefined without one)
//
// and, in a string context (String(client), "x" + client, client == "id"),
// its client ID.
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
//	username, password (string), passwordBytes (an ArrayBuffer copy),
//	hasUsername, hasPassword, authMethod, authData (string), authDataBytes,
//	userProperties ([{key, value}])
type credentialsObject struct {
	readOnly
	rt *goja.Runtime
	c  *core.Credentials
}

var credentialKeys = []string{"username", "password", "passwordBytes", "hasUsername", "hasPassword",
	"authMethod", "authData", "authDataBytes", "userProperties"}

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
	case "passwordBytes":
		return bytesValue(o.rt, o.c.Password)
	case "authMethod":
		return o.rt.ToValue(o.c.AuthMethod)
	case "authData":
		return o.rt.ToValue(string(o.c.AuthData))
	case "authDataBytes":
		return bytesValue(o.rt, o.c.AuthData)
	case "userProperties":
		return userPropertiesValue(o.rt, o.c.UserProperty)
	}
	return nil
}

// bytesValue is an ArrayBuffer holding a copy of b.
func bytesValue(rt *goja.Runtime, b []byte) goja.Value {
	return rt.ToValue(rt.NewArrayBuffer(append([]byte(nil), b...)))
}

// userPropertiesValue is a frozen array of {key, value}.
func userPropertiesValue(rt *goja.Runtime, ups []packets.UserProperty) goja.Value {
	return freezeValue(rt, userPropertiesList(ups))
}

func userPropertiesList(ups []packets.UserProperty) []any {
	out := make([]any, len(ups))
	for i, u := range ups {
		out[i] = map[string]any{"key": u.Key, "value": u.Value}
	}
	return out
}

// authStepObject is enhancedAuth's second argument, one step of an MQTT 5
// enhanced authentication:
//
//	method (the Authentication Method), data (this step's Authentication
//	Data as a UTF-8 string), dataBytes (an ArrayBuffer copy), reauth (a
//	connected client re-authenticating)
type authStepObject struct {
	readOnly
	rt *goja.Runtime
	s  *core.AuthStep
}

var authStepKeys = []string{"method", "data", "dataBytes", "reauth"}

func (o *authStepObject) Get(key string) goja.Value {
	switch key {
	case "method":
		return o.rt.ToValue(o.s.Method)
	case "data":
		return o.rt.ToValue(string(o.s.Data))
	case "dataBytes":
		return bytesValue(o.rt, o.s.Data)
	case "reauth":
		return o.rt.ToValue(o.s.Reauth)
	}
	return nil
}

func (o *authStepObject) Has(key string) bool { return o.Get(key) != nil }
func (o *authStepObject) Keys() []string      { return authStepKeys }

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
//	correlationData, userProperties: [{key, value}]}), received (when the
//	broker read it, in milliseconds since 1970, for the events of its
//	publication; undefined for the others)
type messageObject struct {
	readOnly
	rt      *goja.Runtime
	m       *core.Message
	payload goja.Value // the string, made on first read
}

var messageKeys = []string{"topic", "payload", "payloadBytes", "qos", "retain", "origin", "properties", "received"}

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
		return bytesValue(o.rt, m.Payload)
	case "qos":
		return o.rt.ToValue(m.QoS)
	case "retain":
		return o.rt.ToValue(m.Retain)
	case "origin":
		return o.rt.ToValue(m.Origin)
	case "properties":
		return propertiesValue(o.rt, &m.Properties)
	case "received":
		if m.Received.IsZero() {
			return goja.Undefined()
		}
		return o.rt.ToValue(m.Received.UnixMilli())
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
	out["userProperties"] = userPropertiesList(p.UserProperties)
	return freezeValue(rt, out)
}

// statsMap is onSysTick's argument: the broker's counters, named as
// core.Stats names them in camelCase; droppedBy and refusedBy are keyed
// by the reasons' and limits' names, as the metrics label them.
func statsMap(st *core.Stats) map[string]any {
	droppedBy := map[string]any{}
	for i, n := range st.DroppedBy {
		droppedBy[core.DropReason(i).String()] = n
	}
	refusedBy := map[string]any{}
	for i, n := range st.RefusedBy {
		refusedBy[core.Limit(i).String()] = n
	}
	byQoS := func(a [3]int64) []any { return []any{a[0], a[1], a[2]} }
	return map[string]any{
		"clientsConnected": st.ClientsConnected, "sessions": st.Sessions, "connections": st.Connections,
		"messagesIn": st.MessagesIn, "messagesOut": st.MessagesOut, "bytesIn": st.BytesIn, "bytesOut": st.BytesOut,
		"dropped": st.Dropped, "subscriptions": st.Subscriptions, "retained": st.Retained,
		"retainedBytes": st.RetainedBytes, "protocolErrors": st.ProtocolErrors,
		"hookEventsLost": st.HookEventsLost, "storeFailures": st.StoreFailures,
		"droppedBy": droppedBy, "refusedBy": refusedBy,
		"messagesInByQoS": byQoS(st.MessagesInByQoS), "messagesOutByQoS": byQoS(st.MessagesOutByQoS),
		"payloadBytesInByQoS": byQoS(st.PayloadBytesInByQoS), "payloadBytesOutByQoS": byQoS(st.PayloadBytesOutByQoS),
	}
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
