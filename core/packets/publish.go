package packets

// decodePublish decodes a PUBLISH. Its body is owned by the packet (d.alias
// is set), so Topic, Payload and the string and binary properties are views
// into it and decoding allocates nothing more (user properties and
// subscription identifiers aside).
func decodePublish(p *Packet, first byte, d *decoder, v byte) error {
	p.Retain = first&0x01 != 0
	p.QoS = first >> 1 & 0x03
	p.Dup = first&0x08 != 0
	topic, err := d.field("PUBLISH topic")
	if err != nil {
		return err
	}
	if pr := utf8Problem(topic); pr != "" {
		return Errorf(MalformedPacket, "PUBLISH topic %s", pr)
	}
	if w := wildcardIn(topic); w != 0 {
		return Errorf(TopicNameInvalid, "PUBLISH topic contains wildcard '%c' [MQTT-3.3.2-2]", w)
	}
	if p.QoS > 0 {
		if p.PacketID, err = d.u16("PUBLISH packet identifier"); err != nil {
			return err
		}
		if p.PacketID == 0 {
			return Errorf(MalformedPacket, "PUBLISH with QoS %d has packet identifier 0 [MQTT-2.2.1-3]", p.QoS)
		}
	}
	if v == Version5 {
		if err := d.props(&p.Properties, Publish); err != nil {
			return err
		}
	}
	if len(topic) == 0 {
		if v != Version5 {
			return Errorf(MalformedPacket, "PUBLISH topic is empty [MQTT-4.7.3-1]")
		}
		if !p.Properties.Has(PropTopicAlias) {
			return Errorf(ProtocolError, "PUBLISH topic is empty and there is no Topic Alias (MQTT 5.0 section 3.3.2.1)")
		}
	}
	p.Topic = d.toString(topic)
	p.Payload = d.toBytes(d.rest())
	return nil
}

// measurePublish computes the layout of a PUBLISH of version v.
func measurePublish(p *Packet, v byte, l *layout) error {
	if p.QoS > 2 {
		return Errorf(MalformedPacket, "PUBLISH QoS %d cannot be encoded", p.QoS)
	}
	if len(p.Topic) > maxStringLen {
		return tooLong("PUBLISH topic", len(p.Topic))
	}
	n := 2 + len(p.Topic) + len(p.Payload)
	if p.QoS > 0 {
		n += 2
	}
	if v == Version5 {
		pl, err := propsSize(&p.Properties, Publish)
		if err != nil {
			return err
		}
		l.props = pl
		n += varintLen(uint32(pl)) + pl
	}
	l.rem = n
	return nil
}

// publishFlags returns the fixed-header flags of a PUBLISH. DUP is only sent
// with QoS 1 and 2 [MQTT-3.3.1-2].
func publishFlags(p *Packet) byte {
	f := p.QoS << 1
	if p.Dup && p.QoS > 0 {
		f |= 0x08
	}
	if p.Retain {
		f |= 0x01
	}
	return f
}

// appendPublish appends the body of a PUBLISH measured into l.
func appendPublish(b []byte, p *Packet, v byte, l *layout) []byte {
	b = appendString(b, p.Topic)
	if p.QoS > 0 {
		b = appendUint16(b, p.PacketID)
	}
	if v == Version5 {
		b = appendProps(b, &p.Properties, Publish, l.props)
	}
	return append(b, p.Payload...)
}

// PublishIDOffset returns the offset of the two-byte packet identifier in an
// encoded PUBLISH with QoS 1 or 2, so that a PUBLISH encoded once can be
// sent to several subscribers with the identifier patched in place. It
// returns -1 when encoded is not such a packet or is too short to hold the
// identifier.
func PublishIDOffset(encoded []byte) int {
	if len(encoded) < 2 || Type(encoded[0]>>4) != Publish || encoded[0]>>1&0x03 == 0 {
		return -1
	}
	_, n, err := decodeVarint(encoded[1:], "remaining length")
	if err != nil {
		return -1
	}
	off := 1 + n
	if len(encoded) < off+2 {
		return -1
	}
	off += 2 + (int(encoded[off])<<8 | int(encoded[off+1]))
	if len(encoded) < off+2 {
		return -1
	}
	return off
}
