package packets

// decodeAck decodes PUBACK, PUBREC, PUBREL and PUBCOMP: a packet identifier,
// then in v5 an optional reason code and optional properties. A v5 remaining
// length of 2 means reason code 0 and no properties, 3 means no properties
// (MQTT 5.0 section 3.4.2.1).
func decodeAck(p *Packet, d *decoder, v byte) error {
	if err := readID(p, d); err != nil {
		return err
	}
	if v != Version5 || d.left() == 0 {
		return nil
	}
	return decodeReasonProps(p, d)
}

// decodeReasonProps decodes a v5 reason code, checked for the packet type,
// and the properties that may follow it.
func decodeReasonProps(p *Packet, d *decoder) error {
	if d.left() == 0 {
		return Errorf(MalformedPacket, "%s reason code truncated", p.Type)
	}
	c, err := d.u8("")
	if err != nil {
		return err
	}
	p.ReasonCode = ReasonCode(c)
	if err := checkReason(p.Type, p.ReasonCode); err != nil {
		return err
	}
	if d.left() == 0 {
		return nil
	}
	return d.props(&p.Properties, p.Type)
}

// measureReasonProps computes the size of the optional reason code and
// properties of a v5 ack, DISCONNECT or AUTH: nothing when the code is 0 and
// there are no properties, the code alone when there are no properties.
func measureReasonProps(p *Packet, l *layout) (int, error) {
	pl, err := propsSize(&p.Properties, p.Type)
	if err != nil {
		return 0, err
	}
	l.props = pl
	switch {
	case pl > 0:
		return 1 + varintLen(uint32(pl)) + pl, nil
	case p.ReasonCode != Success:
		return 1, nil
	default:
		return 0, nil
	}
}

// appendReasonProps appends what measureReasonProps measured.
func appendReasonProps(b []byte, p *Packet, l *layout) []byte {
	switch {
	case l.props > 0:
		b = append(b, byte(p.ReasonCode))
		return appendProps(b, &p.Properties, p.Type, l.props)
	case p.ReasonCode != Success:
		return append(b, byte(p.ReasonCode))
	default:
		return b
	}
}

// measureAck computes the layout of PUBACK, PUBREC, PUBREL or PUBCOMP.
func measureAck(p *Packet, v byte, l *layout) error {
	l.rem = 2
	if v == Version5 {
		n, err := measureReasonProps(p, l)
		if err != nil {
			return err
		}
		l.rem += n
	}
	return nil
}

// appendAck appends the body of PUBACK, PUBREC, PUBREL or PUBCOMP.
func appendAck(b []byte, p *Packet, v byte, l *layout) []byte {
	b = appendUint16(b, p.PacketID)
	if v == Version5 {
		b = appendReasonProps(b, p, l)
	}
	return b
}
