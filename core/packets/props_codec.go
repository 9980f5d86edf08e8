package packets

import "math/bits"

// num returns the value of a byte, two-byte or four-byte property.
func (p *Properties) num(id PropID) uint32 {
	switch id {
	case PropPayloadFormat:
		return uint32(p.PayloadFormat)
	case PropMessageExpiry:
		return p.MessageExpiry
	case PropSessionExpiry:
		return p.SessionExpiry
	case PropServerKeepAlive:
		return uint32(p.ServerKeepAlive)
	case PropRequestProblemInfo:
		return uint32(p.RequestProblemInfo)
	case PropWillDelay:
		return p.WillDelay
	case PropRequestResponseInfo:
		return uint32(p.RequestResponseInfo)
	case PropReceiveMaximum:
		return uint32(p.ReceiveMaximum)
	case PropTopicAliasMaximum:
		return uint32(p.TopicAliasMaximum)
	case PropTopicAlias:
		return uint32(p.TopicAlias)
	case PropMaximumQoS:
		return uint32(p.MaximumQoS)
	case PropRetainAvailable:
		return uint32(p.RetainAvailable)
	case PropMaximumPacketSize:
		return p.MaximumPacketSize
	case PropWildcardSubAvailable:
		return uint32(p.WildcardSubAvailable)
	case PropSubscriptionIDAvailable:
		return uint32(p.SubscriptionIDAvailable)
	case PropSharedSubAvailable:
		return uint32(p.SharedSubAvailable)
	}
	return 0
}

// setNum stores the value of a byte, two-byte or four-byte property; v has
// already been read with the property's width.
func (p *Properties) setNum(id PropID, v uint32) {
	switch id {
	case PropPayloadFormat:
		p.PayloadFormat = byte(v)
	case PropMessageExpiry:
		p.MessageExpiry = v
	case PropSessionExpiry:
		p.SessionExpiry = v
	case PropServerKeepAlive:
		p.ServerKeepAlive = uint16(v)
	case PropRequestProblemInfo:
		p.RequestProblemInfo = byte(v)
	case PropWillDelay:
		p.WillDelay = v
	case PropRequestResponseInfo:
		p.RequestResponseInfo = byte(v)
	case PropReceiveMaximum:
		p.ReceiveMaximum = uint16(v)
	case PropTopicAliasMaximum:
		p.TopicAliasMaximum = uint16(v)
	case PropTopicAlias:
		p.TopicAlias = uint16(v)
	case PropMaximumQoS:
		p.MaximumQoS = byte(v)
	case PropRetainAvailable:
		p.RetainAvailable = byte(v)
	case PropMaximumPacketSize:
		p.MaximumPacketSize = v
	case PropWildcardSubAvailable:
		p.WildcardSubAvailable = byte(v)
	case PropSubscriptionIDAvailable:
		p.SubscriptionIDAvailable = byte(v)
	case PropSharedSubAvailable:
		p.SharedSubAvailable = byte(v)
	}
}

// strRef returns a pointer to the field of a string property.
func (p *Properties) strRef(id PropID) *string {
	switch id {
	case PropContentType:
		return &p.ContentType
	case PropResponseTopic:
		return &p.ResponseTopic
	case PropAssignedClientID:
		return &p.AssignedClientID
	case PropAuthMethod:
		return &p.AuthMethod
	case PropResponseInfo:
		return &p.ResponseInfo
	case PropServerReference:
		return &p.ServerReference
	case PropReasonString:
		return &p.ReasonString
	}
	return nil
}

// binRef returns a pointer to the field of a binary property.
func (p *Properties) binRef(id PropID) *[]byte {
	switch id {
	case PropCorrelationData:
		return &p.CorrelationData
	case PropAuthData:
		return &p.AuthData
	}
	return nil
}

// decodeProps reads a property length and the properties after it into dst,
// validating them for context ctx (a packet type, or willCtx) as MQTT 5.0
// section 2.2.2 and the per-property rules of chapter 3 require.
func (d *decoder) props(dst *Properties, ctx Type) error {
	n, err := d.varint(propLengthWhat[ctx])
	if err != nil {
		return err
	}
	if int(n) > d.left() {
		return Errorf(MalformedPacket, "%s property length %d overruns the packet (%d bytes left)", ctxName(ctx), n, d.left())
	}
	end := d.i + int(n)
	s := decoder{b: d.b[:end], i: d.i, alias: d.alias}
	d.i = end
	allowed := allowedProps[ctx]
	for s.i < end {
		id := PropID(s.b[s.i])
		s.i++
		if int(id) >= len(propTable) || propTable[id].kind == kindNone {
			return Errorf(MalformedPacket, "unknown property identifier 0x%02X in %s", byte(id), ctxName(ctx))
		}
		info := &propTable[id]
		if allowed&(1<<id) == 0 {
			return Errorf(MalformedPacket, "property %s not allowed in %s", info.label, ctxName(ctx))
		}
		repeatable := id == PropUserProperty || (id == PropSubscriptionID && ctx == Publish)
		if !repeatable && dst.Has(id) {
			return Errorf(ProtocolError, "duplicate property %s", info.label)
		}
		if err := s.prop(dst, id, info); err != nil {
			return err
		}
	}
	if dst.Has(PropAuthData) && !dst.Has(PropAuthMethod) {
		return Errorf(ProtocolError, "Authentication Data without Authentication Method in %s", ctxName(ctx))
	}
	return nil
}

// prop reads the value of property id into dst and checks its range.
func (d *decoder) prop(dst *Properties, id PropID, info *propInfo) error {
	what := propWhat[id]
	switch info.kind {
	case kindByte:
		v, err := d.u8(what)
		if err != nil {
			return err
		}
		// Every byte property is a 0/1 flag: Payload Format Indicator,
		// Request Problem/Response Information, Maximum QoS and the four
		// *Available properties.
		if v > 1 {
			return Errorf(ProtocolError, "%s has value %d, not 0 or 1", what, v)
		}
		dst.setNum(id, uint32(v))
	case kindUint16:
		v, err := d.u16(what)
		if err != nil {
			return err
		}
		if v == 0 && id == PropReceiveMaximum {
			return Errorf(ProtocolError, "%s is 0", what)
		}
		if v == 0 && id == PropTopicAlias {
			// A Topic Alias of 0 is answered with Topic Alias invalid
			// [MQTT-3.3.2-8], v5 section 3.3.4.
			return Errorf(TopicAliasInvalid, "%s is 0 [MQTT-3.3.2-8]", what)
		}
		dst.setNum(id, uint32(v))
	case kindUint32:
		v, err := d.u32(what)
		if err != nil {
			return err
		}
		if v == 0 && id == PropMaximumPacketSize {
			return Errorf(ProtocolError, "%s is 0", what)
		}
		dst.setNum(id, v)
	case kindVarint: // Subscription Identifier
		v, err := d.varint(what)
		if err != nil {
			return err
		}
		if v == 0 {
			return Errorf(ProtocolError, "%s is 0", what)
		}
		dst.SubscriptionIDs = append(dst.SubscriptionIDs, v)
		return nil
	case kindString:
		f, err := d.field(what)
		if err != nil {
			return err
		}
		if pr := utf8Problem(f); pr != "" {
			return Errorf(MalformedPacket, "%s %s", what, pr)
		}
		if id == PropResponseTopic {
			if w := wildcardIn(f); w != 0 {
				return Errorf(ProtocolError, "%s contains wildcard '%c' [MQTT-3.3.2-14]", what, w)
			}
		}
		*dst.strRef(id) = d.toString(f)
	case kindBinary:
		f, err := d.field(what)
		if err != nil {
			return err
		}
		*dst.binRef(id) = d.toBytes(f)
	case kindPair:
		k, err := d.str("property User Property (0x26) name")
		if err != nil {
			return err
		}
		v, err := d.str("property User Property (0x26) value")
		if err != nil {
			return err
		}
		dst.UserProperties = append(dst.UserProperties, UserProperty{Key: k, Value: v})
		return nil
	}
	dst.Set(id)
	return nil
}

// propsSize returns the encoded size of the properties of p allowed in
// context ctx, without the property length itself. Properties not allowed in
// ctx are not encoded.
func propsSize(p *Properties, ctx Type) (int, error) {
	allowed := allowedProps[ctx]
	n := 0
	for set := p.present & allowed &^ listProps; set != 0; set &= set - 1 {
		id := PropID(bits.TrailingZeros64(set))
		info := &propTable[id]
		switch info.kind {
		case kindByte:
			n += 2
		case kindUint16:
			n += 3
		case kindUint32:
			n += 5
		case kindString:
			m := len(*p.strRef(id))
			if m > maxStringLen {
				return 0, tooLong(propWhat[id], m)
			}
			n += 3 + m
		case kindBinary:
			m := len(*p.binRef(id))
			if m > maxStringLen {
				return 0, tooLong(propWhat[id], m)
			}
			n += 3 + m
		}
	}
	if allowed&(1<<PropSubscriptionID) != 0 {
		for _, v := range p.SubscriptionIDs {
			if v > MaxRemainingLength {
				return 0, Errorf(MalformedPacket, "Subscription Identifier %d exceeds %d", v, MaxRemainingLength)
			}
			n += 1 + varintLen(v)
		}
	}
	if allowed&(1<<PropUserProperty) != 0 {
		for _, u := range p.UserProperties {
			if len(u.Key) > maxStringLen {
				return 0, tooLong("User Property name", len(u.Key))
			}
			if len(u.Value) > maxStringLen {
				return 0, tooLong("User Property value", len(u.Value))
			}
			n += 5 + len(u.Key) + len(u.Value)
		}
	}
	if n > MaxRemainingLength {
		return 0, Errorf(PacketTooLarge, "%s properties are %d bytes", ctxName(ctx), n)
	}
	return n, nil
}

// appendProps appends the property length n (from propsSize) and the
// properties of p allowed in ctx, in identifier order, subscription
// identifiers and user properties last, each list in its own order.
func appendProps(b []byte, p *Properties, ctx Type, n int) []byte {
	b = appendVarint(b, uint32(n))
	allowed := allowedProps[ctx]
	for set := p.present & allowed &^ listProps; set != 0; set &= set - 1 {
		id := PropID(bits.TrailingZeros64(set))
		b = append(b, byte(id))
		switch propTable[id].kind {
		case kindByte:
			b = append(b, byte(p.num(id)))
		case kindUint16:
			b = appendUint16(b, uint16(p.num(id)))
		case kindUint32:
			b = appendUint32(b, p.num(id))
		case kindString:
			b = appendString(b, *p.strRef(id))
		case kindBinary:
			b = appendBinary(b, *p.binRef(id))
		}
	}
	if allowed&(1<<PropSubscriptionID) != 0 {
		for _, v := range p.SubscriptionIDs {
			b = append(b, byte(PropSubscriptionID))
			b = appendVarint(b, v)
		}
	}
	if allowed&(1<<PropUserProperty) != 0 {
		for _, u := range p.UserProperties {
			b = append(b, byte(PropUserProperty))
			b = appendString(b, u.Key)
			b = appendString(b, u.Value)
		}
	}
	return b
}
