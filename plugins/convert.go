package plugins

import (
	"fmt"
	"math"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/packets"
	"github.com/vanemq/vanemq/plugins/proto/pluginv1"
)

// The conversions between the broker's values and the wire's.

func clientProto(cl *core.ClientInfo) *pluginv1.Client {
	if cl == nil {
		return nil
	}
	c := &pluginv1.Client{Id: cl.ID, Username: cl.Username, Remote: cl.Remote, Listener: cl.Listener,
		ProtocolVersion: uint32(cl.ProtocolVersion), CleanStart: cl.CleanStart}
	if cl.TLS != nil && len(cl.TLS.PeerCertificates) > 0 {
		cert := cl.TLS.PeerCertificates[0]
		c.CertCommonName = cert.Subject.CommonName
		c.CertDnsNames = cert.DNSNames
	}
	return c
}

func messageProto(m *core.Message) *pluginv1.Message {
	p := &m.Properties
	out := &pluginv1.Message{Topic: m.Topic, Payload: m.Payload, Qos: uint32(m.QoS), Retain: m.Retain, Origin: m.Origin}
	if p.Empty() {
		return out // most messages carry no properties: send none
	}
	out.Properties = &pluginv1.Properties{ContentType: p.ContentType, ResponseTopic: p.ResponseTopic, CorrelationData: p.CorrelationData}
	if p.Has(packets.PropPayloadFormat) {
		f := uint32(p.PayloadFormat)
		out.Properties.PayloadFormat = &f
	}
	if p.Has(packets.PropMessageExpiry) {
		e := p.MessageExpiry
		out.Properties.MessageExpiry = &e
	}
	out.Properties.UserProperties = userPropertiesProto(p.UserProperties)
	return out
}

func userPropertiesProto(us []packets.UserProperty) []*pluginv1.UserProperty {
	if len(us) == 0 {
		return nil
	}
	out := make([]*pluginv1.UserProperty, len(us))
	for i, u := range us {
		out[i] = &pluginv1.UserProperty{Key: u.Key, Value: u.Value}
	}
	return out
}

// propertiesOf converts the wire's properties, marking those present.
func propertiesOf(p *pluginv1.Properties) packets.Properties {
	var out packets.Properties
	if p == nil {
		return out
	}
	if p.PayloadFormat != nil {
		out.PayloadFormat = byte(p.GetPayloadFormat())
		out.Set(packets.PropPayloadFormat)
	}
	if p.MessageExpiry != nil {
		out.MessageExpiry = p.GetMessageExpiry()
		out.Set(packets.PropMessageExpiry)
	}
	if p.GetContentType() != "" {
		out.ContentType = p.GetContentType()
		out.Set(packets.PropContentType)
	}
	if p.GetResponseTopic() != "" {
		out.ResponseTopic = p.GetResponseTopic()
		out.Set(packets.PropResponseTopic)
	}
	if len(p.GetCorrelationData()) > 0 {
		out.CorrelationData = p.GetCorrelationData()
		out.Set(packets.PropCorrelationData)
	}
	for _, u := range p.GetUserProperties() {
		out.UserProperties = append(out.UserProperties, packets.UserProperty{Key: u.GetKey(), Value: u.GetValue()})
	}
	return out
}

// codeOf is a wire reason code (0: none).
func codeOf(c uint32) packets.ReasonCode {
	if c > 0xFF {
		return packets.UnspecifiedError
	}
	return packets.ReasonCode(c)
}

// verdictOf checks and converts a plugin's verdict: an unknown decision or
// a refusal with a code below 0x80 is a failure of the plugin.
func verdictOf(v *pluginv1.Verdict) (core.Verdict, bool) {
	switch v.GetDecision() {
	case pluginv1.Decision_DECISION_NEXT:
		return core.Next, true
	case pluginv1.Decision_DECISION_ALLOW:
		return core.Allow, true
	case pluginv1.Decision_DECISION_DENY:
		code := v.GetCode()
		if code == 0 {
			code = uint32(packets.NotAuthorized)
		}
		if code < 0x80 || code > 0xFF {
			return core.Verdict{}, false
		}
		return core.Deny(packets.ReasonCode(code), v.GetReason()), true
	}
	return core.Verdict{}, false
}

// policyProto is the policy as the wire carries it: the fields set (not
// zero, which keeps the broker's option).
func policyProto(p *core.ClientPolicy) *pluginv1.ClientPolicy {
	out := &pluginv1.ClientPolicy{}
	set := func(v uint32) *uint32 {
		if v == 0 {
			return nil
		}
		return &v
	}
	out.MaxQueuedMessages = set(uint32(min(p.MaxQueuedMessages, math.MaxUint32)))
	out.MaxInflight = set(uint32(p.MaxInflight))
	out.MaxPacketSize = set(p.MaxPacketSize)
	out.SessionExpiryMax = set(p.SessionExpiryMax)
	if p.Mountpoint != "" {
		out.Mountpoint = &p.Mountpoint
	}
	return out
}

// applyPolicy sets the fields of p that the plugin's policy sets, once it
// has checked them all: an invalid one changes nothing and is the plugin's
// failure.
func applyPolicy(p *core.ClientPolicy, w *pluginv1.ClientPolicy) error {
	if w.MaxInflight != nil && w.GetMaxInflight() > math.MaxUint16 {
		return fmt.Errorf("invalid policy: max_inflight %d is more than 65535", w.GetMaxInflight())
	}
	if w.Mountpoint != nil {
		if err := core.CheckMountpoint(w.GetMountpoint()); err != nil {
			return fmt.Errorf("invalid policy: mountpoint %w", err)
		}
	}
	if w.MaxQueuedMessages != nil {
		p.MaxQueuedMessages = int(w.GetMaxQueuedMessages())
	}
	if w.MaxInflight != nil {
		p.MaxInflight = uint16(w.GetMaxInflight())
	}
	if w.MaxPacketSize != nil {
		p.MaxPacketSize = w.GetMaxPacketSize()
	}
	if w.Mountpoint != nil {
		p.Mountpoint = w.GetMountpoint()
	}
	if w.SessionExpiryMax != nil {
		p.SessionExpiryMax = w.GetSessionExpiryMax()
	}
	return nil
}
