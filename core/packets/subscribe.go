package packets

// Subscription option bits (MQTT 5.0 section 3.8.3.1).
const (
	optQoS               = 0x03
	optNoLocal           = 0x04
	optRetainAsPublished = 0x08
	optRetainHandling    = 0x30 // two bits, shifted by 4
	optReservedV5        = 0xC0
	optReservedV3        = 0xFC
)

// readID reads the packet identifier of p.
func readID(p *Packet, d *decoder) error {
	if d.left() < 2 {
		return Errorf(MalformedPacket, "%s packet identifier truncated", p.Type)
	}
	p.PacketID, _ = d.u16("")
	return nil
}

// packetID reads a packet identifier that must not be 0 [MQTT-2.2.1-3].
func packetID(p *Packet, d *decoder) error {
	if err := readID(p, d); err != nil {
		return err
	}
	if p.PacketID == 0 {
		return Errorf(MalformedPacket, "%s has packet identifier 0 [MQTT-2.2.1-3]", p.Type)
	}
	return nil
}

// noEntries is the error for a SUBSCRIBE or UNSUBSCRIBE without topic
// filters: a protocol error in v5, a malformed packet in 3.x.
func noEntries(p *Packet, v byte, v5Rule, v3Rule string) error {
	if v == Version5 {
		return Errorf(ProtocolError, "%s has no topic filters %s", p.Type, v5Rule)
	}
	return Errorf(MalformedPacket, "%s has no topic filters %s", p.Type, v3Rule)
}

// decodeSubscribe decodes a SUBSCRIBE. Only the UTF-8 validity of the
// filters is checked; their syntax is the broker's to judge per filter.
func decodeSubscribe(p *Packet, d *decoder, v byte) error {
	if err := packetID(p, d); err != nil {
		return err
	}
	if v == Version5 {
		if err := d.props(&p.Properties, Subscribe); err != nil {
			return err
		}
	}
	for d.left() > 0 {
		f, err := d.str("SUBSCRIBE topic filter")
		if err != nil {
			return err
		}
		o, err := d.u8("SUBSCRIBE subscription options")
		if err != nil {
			return err
		}
		s := Subscription{Filter: f, QoS: o & optQoS}
		if v == Version5 {
			s.NoLocal = o&optNoLocal != 0
			s.RetainAsPublished = o&optRetainAsPublished != 0
			s.RetainHandling = o & optRetainHandling >> 4
			switch {
			case o&optReservedV5 != 0:
				return Errorf(MalformedPacket, "SUBSCRIBE subscription options 0x%02X have reserved bits set [MQTT-3.8.3-5]", o)
			case s.QoS == 3:
				return Errorf(ProtocolError, "SUBSCRIBE maximum QoS is 3 (MQTT 5.0 section 3.8.3.1)")
			case s.RetainHandling == 3:
				return Errorf(ProtocolError, "SUBSCRIBE retain handling is 3 (MQTT 5.0 section 3.8.3.1)")
			}
		} else {
			switch {
			case o&optReservedV3 != 0:
				return Errorf(MalformedPacket, "SUBSCRIBE requested QoS byte 0x%02X has reserved bits set [MQTT-3.8.3-4]", o)
			case s.QoS == 3:
				return Errorf(MalformedPacket, "SUBSCRIBE requested QoS is 3 [MQTT-3.8.3-4]")
			}
		}
		p.Subscriptions = append(p.Subscriptions, s)
	}
	if len(p.Subscriptions) == 0 {
		return noEntries(p, v, "[MQTT-3.8.3-2]", "[MQTT-3.8.3-3]")
	}
	return nil
}

// measureSubscribe computes the layout of a SUBSCRIBE of version v.
func measureSubscribe(p *Packet, v byte, l *layout) error {
	n := 2
	if v == Version5 {
		pl, err := propsSize(&p.Properties, Subscribe)
		if err != nil {
			return err
		}
		l.props = pl
		n += varintLen(uint32(pl)) + pl
	}
	for i := range p.Subscriptions {
		s := &p.Subscriptions[i]
		if len(s.Filter) > maxStringLen {
			return tooLong("SUBSCRIBE topic filter", len(s.Filter))
		}
		if s.QoS > 2 || s.RetainHandling > 2 {
			return Errorf(MalformedPacket, "SUBSCRIBE options QoS %d, retain handling %d cannot be encoded", s.QoS, s.RetainHandling)
		}
		n += 3 + len(s.Filter)
	}
	l.rem = n
	return nil
}

// appendSubscribe appends the body of a SUBSCRIBE. In 3.x only the QoS of
// the subscription options is sent.
func appendSubscribe(b []byte, p *Packet, v byte, l *layout) []byte {
	b = appendUint16(b, p.PacketID)
	if v == Version5 {
		b = appendProps(b, &p.Properties, Subscribe, l.props)
	}
	for i := range p.Subscriptions {
		s := &p.Subscriptions[i]
		b = appendString(b, s.Filter)
		o := s.QoS
		if v == Version5 {
			o |= s.RetainHandling << 4
			if s.NoLocal {
				o |= optNoLocal
			}
			if s.RetainAsPublished {
				o |= optRetainAsPublished
			}
		}
		b = append(b, o)
	}
	return b
}

// decodeCodes decodes the reason codes that end a SUBACK or UNSUBACK.
func decodeCodes(p *Packet, d *decoder, v byte) error {
	rest := d.rest()
	if len(rest) == 0 {
		return Errorf(ProtocolError, "%s has no reason codes", p.Type)
	}
	p.ReasonCodes = make([]ReasonCode, len(rest))
	for i, c := range rest {
		rc := ReasonCode(c)
		if v == Version5 {
			if err := checkReason(p.Type, rc); err != nil {
				return err
			}
		} else if !v3SubackCodes.has(rc) {
			return Errorf(ProtocolError, "SUBACK return code 0x%02X is not valid in MQTT 3 [MQTT-3.9.3-2]", c)
		}
		p.ReasonCodes[i] = rc
	}
	return nil
}

// decodeSuback decodes a SUBACK.
func decodeSuback(p *Packet, d *decoder, v byte) error {
	if err := readID(p, d); err != nil {
		return err
	}
	if v == Version5 {
		if err := d.props(&p.Properties, Suback); err != nil {
			return err
		}
	}
	return decodeCodes(p, d, v)
}

// v3SubackCode maps a SUBACK code to the 3.x return codes: granted QoS 0, 1
// and 2 as they are, any failure as 0x80.
func v3SubackCode(c ReasonCode) (byte, error) {
	switch {
	case c <= GrantedQoS2:
		return byte(c), nil
	case c.IsError():
		return byte(V3SubackFailure), nil
	default:
		return 0, Errorf(ProtocolError, "SUBACK code 0x%02X has no MQTT 3 equivalent", byte(c))
	}
}

// measureSuback computes the layout of a SUBACK of version v.
func measureSuback(p *Packet, v byte, l *layout) error {
	n := 2 + len(p.ReasonCodes)
	if v == Version5 {
		pl, err := propsSize(&p.Properties, Suback)
		if err != nil {
			return err
		}
		l.props = pl
		n += varintLen(uint32(pl)) + pl
	} else {
		for _, c := range p.ReasonCodes {
			if _, err := v3SubackCode(c); err != nil {
				return err
			}
		}
	}
	l.rem = n
	return nil
}

// appendSuback appends the body of a SUBACK; 3.x return codes are 0x00,
// 0x01, 0x02 and 0x80.
func appendSuback(b []byte, p *Packet, v byte, l *layout) []byte {
	b = appendUint16(b, p.PacketID)
	if v == Version5 {
		b = appendProps(b, &p.Properties, Suback, l.props)
		for _, c := range p.ReasonCodes {
			b = append(b, byte(c))
		}
		return b
	}
	for _, c := range p.ReasonCodes {
		rc, _ := v3SubackCode(c)
		b = append(b, rc)
	}
	return b
}

// decodeUnsubscribe decodes an UNSUBSCRIBE.
func decodeUnsubscribe(p *Packet, d *decoder, v byte) error {
	if err := packetID(p, d); err != nil {
		return err
	}
	if v == Version5 {
		if err := d.props(&p.Properties, Unsubscribe); err != nil {
			return err
		}
	}
	for d.left() > 0 {
		f, err := d.str("UNSUBSCRIBE topic filter")
		if err != nil {
			return err
		}
		p.Filters = append(p.Filters, f)
	}
	if len(p.Filters) == 0 {
		return noEntries(p, v, "[MQTT-3.10.3-2]", "[MQTT-3.10.3-2]")
	}
	return nil
}

// measureUnsubscribe computes the layout of an UNSUBSCRIBE of version v.
func measureUnsubscribe(p *Packet, v byte, l *layout) error {
	n := 2
	if v == Version5 {
		pl, err := propsSize(&p.Properties, Unsubscribe)
		if err != nil {
			return err
		}
		l.props = pl
		n += varintLen(uint32(pl)) + pl
	}
	for _, f := range p.Filters {
		if len(f) > maxStringLen {
			return tooLong("UNSUBSCRIBE topic filter", len(f))
		}
		n += 2 + len(f)
	}
	l.rem = n
	return nil
}

// appendUnsubscribe appends the body of an UNSUBSCRIBE.
func appendUnsubscribe(b []byte, p *Packet, v byte, l *layout) []byte {
	b = appendUint16(b, p.PacketID)
	if v == Version5 {
		b = appendProps(b, &p.Properties, Unsubscribe, l.props)
	}
	for _, f := range p.Filters {
		b = appendString(b, f)
	}
	return b
}

// decodeUnsuback decodes an UNSUBACK: in 3.x a packet identifier alone, in
// v5 followed by properties and one reason code per filter.
func decodeUnsuback(p *Packet, d *decoder, v byte) error {
	if err := readID(p, d); err != nil {
		return err
	}
	if v != Version5 {
		return nil
	}
	if err := d.props(&p.Properties, Unsuback); err != nil {
		return err
	}
	return decodeCodes(p, d, v)
}

// measureUnsuback computes the layout of an UNSUBACK of version v; 3.x
// UNSUBACK carries no reason codes.
func measureUnsuback(p *Packet, v byte, l *layout) error {
	l.rem = 2
	if v == Version5 {
		pl, err := propsSize(&p.Properties, Unsuback)
		if err != nil {
			return err
		}
		l.props = pl
		l.rem += varintLen(uint32(pl)) + pl + len(p.ReasonCodes)
	}
	return nil
}

// appendUnsuback appends the body of an UNSUBACK.
func appendUnsuback(b []byte, p *Packet, v byte, l *layout) []byte {
	b = appendUint16(b, p.PacketID)
	if v == Version5 {
		b = appendProps(b, &p.Properties, Unsuback, l.props)
		for _, c := range p.ReasonCodes {
			b = append(b, byte(c))
		}
	}
	return b
}
