package packets

// CONNECT flag bits (MQTT 5.0 section 3.1.2.3).
const (
	connectReserved   = 0x01
	connectCleanStart = 0x02
	connectWill       = 0x04
	connectWillQoS    = 0x18 // two bits, shifted by 3
	connectWillRetain = 0x20
	connectPassword   = 0x40
	connectUsername   = 0x80
)

// bridgeBit is the top bit of a 3.x CONNECT's protocol level, set by
// Mosquitto's bridges (ConnectFields.Bridge).
const bridgeBit = 0x80

// protocolName returns the CONNECT protocol name of version v.
func protocolName(v byte) string {
	if v == Version31 {
		return "MQIsdp"
	}
	return "MQTT"
}

// decodeConnect decodes a CONNECT body. The protocol version comes from the
// packet, and p.ProtocolVersion is set to it as soon as it is read.
func decodeConnect(p *Packet, d *decoder) error {
	name, err := d.field("CONNECT protocol name")
	if err != nil {
		return err
	}
	v, err := d.u8("CONNECT protocol level")
	if err != nil {
		return err
	}
	c := &p.Connect
	if v == Version31|bridgeBit || v == Version311|bridgeBit {
		v &^= bridgeBit
		c.Bridge = true
	}
	p.ProtocolVersion = v
	switch {
	case string(name) == "MQTT" && (v == Version311 || v == Version5):
		c.ProtocolName = "MQTT"
	case string(name) == "MQIsdp" && v == Version31:
		c.ProtocolName = "MQIsdp"
	default:
		return Errorf(UnsupportedProtocolVersion, "unsupported protocol name %q with level %d", name, v)
	}

	flags, err := d.u8("CONNECT flags")
	if err != nil {
		return err
	}
	if flags&connectReserved != 0 {
		return Errorf(MalformedPacket, "CONNECT reserved flag is set [MQTT-3.1.2-3]")
	}
	c.CleanStart = flags&connectCleanStart != 0
	c.WillFlag = flags&connectWill != 0
	willQoS := flags & connectWillQoS >> 3
	willRetain := flags&connectWillRetain != 0
	c.UsernameFlag = flags&connectUsername != 0
	c.PasswordFlag = flags&connectPassword != 0
	switch {
	case willQoS == 3:
		return Errorf(MalformedPacket, "CONNECT will QoS is 3 (3.1.1 [MQTT-3.1.2-14], 5.0 [MQTT-3.1.2-12])")
	case !c.WillFlag && willQoS != 0:
		return Errorf(MalformedPacket, "CONNECT will QoS is %d without the will flag (3.1.1 [MQTT-3.1.2-13], 5.0 [MQTT-3.1.2-11])", willQoS)
	case !c.WillFlag && willRetain:
		return Errorf(MalformedPacket, "CONNECT will retain is set without the will flag (3.1.1 [MQTT-3.1.2-15], 5.0 [MQTT-3.1.2-13])")
	case v != Version5 && c.PasswordFlag && !c.UsernameFlag:
		return Errorf(MalformedPacket, "CONNECT password flag is set without the user name flag [MQTT-3.1.2-22]")
	}
	if c.KeepAlive, err = d.u16("CONNECT keep alive"); err != nil {
		return err
	}
	if v == Version5 {
		if err := d.props(&p.Properties, Connect); err != nil {
			return err
		}
	}

	// Payload [MQTT-3.1.3-1]: client identifier, will properties, will
	// topic, will payload, user name, password.
	if c.ClientID, err = d.str("CONNECT client identifier"); err != nil {
		return err
	}
	if c.WillFlag {
		w := &c.Will
		w.QoS = willQoS
		w.Retain = willRetain
		if v == Version5 {
			if err := d.props(&w.Properties, willCtx); err != nil {
				return err
			}
		}
		if w.Topic, err = d.str("CONNECT will topic"); err != nil {
			return err
		}
		if w.Payload, err = d.bin("CONNECT will payload"); err != nil {
			return err
		}
	}
	if c.UsernameFlag {
		if c.Username, err = d.str("CONNECT user name"); err != nil {
			return err
		}
	}
	if c.PasswordFlag {
		if c.Password, err = d.bin("CONNECT password"); err != nil {
			return err
		}
	}
	return nil
}

// measureConnect computes the layout of a CONNECT of version v.
func measureConnect(p *Packet, v byte, l *layout) error {
	c := &p.Connect
	n := 2 + len(protocolName(v)) + 1 + 1 + 2
	if v == Version5 {
		pl, err := propsSize(&p.Properties, Connect)
		if err != nil {
			return err
		}
		l.props = pl
		n += varintLen(uint32(pl)) + pl
	}
	if len(c.ClientID) > maxStringLen {
		return tooLong("CONNECT client identifier", len(c.ClientID))
	}
	n += 2 + len(c.ClientID)
	if c.WillFlag {
		w := &c.Will
		if w.QoS > 2 {
			return Errorf(MalformedPacket, "CONNECT will QoS %d cannot be encoded", w.QoS)
		}
		if v == Version5 {
			pl, err := propsSize(&w.Properties, willCtx)
			if err != nil {
				return err
			}
			l.willProps = pl
			n += varintLen(uint32(pl)) + pl
		}
		if len(w.Topic) > maxStringLen {
			return tooLong("CONNECT will topic", len(w.Topic))
		}
		if len(w.Payload) > maxStringLen {
			return tooLong("CONNECT will payload", len(w.Payload))
		}
		n += 4 + len(w.Topic) + len(w.Payload)
	}
	if c.UsernameFlag {
		if len(c.Username) > maxStringLen {
			return tooLong("CONNECT user name", len(c.Username))
		}
		n += 2 + len(c.Username)
	}
	if c.PasswordFlag {
		if len(c.Password) > maxStringLen {
			return tooLong("CONNECT password", len(c.Password))
		}
		n += 2 + len(c.Password)
	}
	l.rem = n
	return nil
}

// appendConnect appends the body of a CONNECT measured into l.
func appendConnect(b []byte, p *Packet, v byte, l *layout) []byte {
	c := &p.Connect
	b = appendString(b, protocolName(v))
	if c.Bridge && v != Version5 {
		b = append(b, v|bridgeBit)
	} else {
		b = append(b, v)
	}
	var flags byte
	if c.CleanStart {
		flags |= connectCleanStart
	}
	if c.WillFlag {
		flags |= connectWill | c.Will.QoS<<3
		if c.Will.Retain {
			flags |= connectWillRetain
		}
	}
	if c.UsernameFlag {
		flags |= connectUsername
	}
	if c.PasswordFlag {
		flags |= connectPassword
	}
	b = append(b, flags)
	b = appendUint16(b, c.KeepAlive)
	if v == Version5 {
		b = appendProps(b, &p.Properties, Connect, l.props)
	}
	b = appendString(b, c.ClientID)
	if c.WillFlag {
		if v == Version5 {
			b = appendProps(b, &c.Will.Properties, willCtx, l.willProps)
		}
		b = appendString(b, c.Will.Topic)
		b = appendBinary(b, c.Will.Payload)
	}
	if c.UsernameFlag {
		b = appendString(b, c.Username)
	}
	if c.PasswordFlag {
		b = appendBinary(b, c.Password)
	}
	return b
}

// decodeConnack decodes a CONNACK body.
func decodeConnack(p *Packet, d *decoder, v byte) error {
	flags, err := d.u8("CONNACK acknowledge flags")
	if err != nil {
		return err
	}
	// In 3.1 the byte is reserved and unused; from 3.1.1 on, bit 0 is
	// session present and the others must be 0 [MQTT-3.2.2-1].
	if v != Version31 {
		if flags&0xFE != 0 {
			return Errorf(MalformedPacket, "CONNACK acknowledge flags 0x%02X have reserved bits set [MQTT-3.2.2-1]", flags)
		}
		p.SessionPresent = flags&0x01 != 0
	}
	code, err := d.u8("CONNACK reason code")
	if err != nil {
		return err
	}
	p.ReasonCode = ReasonCode(code)
	if v == Version5 {
		if err := checkReason(Connack, p.ReasonCode); err != nil {
			return err
		}
	} else if p.ReasonCode > V3NotAuthorized {
		return Errorf(ProtocolError, "CONNACK return code %d is reserved", code)
	}
	if p.SessionPresent && code != 0 {
		return Errorf(ProtocolError, "CONNACK has session present with non-zero code 0x%02X [MQTT-3.2.2-4] [MQTT-3.2.2-6]", code)
	}
	if v == Version5 {
		return d.props(&p.Properties, Connack)
	}
	return nil
}

// connackCode returns the code a CONNACK of version v carries: v5 codes as
// they are; for 3.x, return codes 0 to 5 as they are and v5 error codes
// mapped with V3ConnackCode.
func connackCode(c ReasonCode, v byte) (ReasonCode, error) {
	switch {
	case v == Version5 || c <= V3NotAuthorized:
		return c, nil
	case c.IsError():
		return V3ConnackCode(c), nil
	default:
		return 0, Errorf(ProtocolError, "CONNACK code 0x%02X has no MQTT 3 equivalent", byte(c))
	}
}

// measureConnack computes the layout of a CONNACK of version v.
func measureConnack(p *Packet, v byte, l *layout) error {
	if _, err := connackCode(p.ReasonCode, v); err != nil {
		return err
	}
	l.rem = 2
	if v == Version5 {
		pl, err := propsSize(&p.Properties, Connack)
		if err != nil {
			return err
		}
		l.props = pl
		l.rem += varintLen(uint32(pl)) + pl
	}
	return nil
}

// appendConnack appends the body of a CONNACK measured into l. Session
// present is only sent with code 0 [MQTT-3.2.2-4] [MQTT-3.2.2-6], and not at
// all in 3.1.
func appendConnack(b []byte, p *Packet, v byte, l *layout) []byte {
	code, _ := connackCode(p.ReasonCode, v)
	var flags byte
	if p.SessionPresent && code == 0 && v != Version31 {
		flags = 0x01
	}
	b = append(b, flags, byte(code))
	if v == Version5 {
		b = appendProps(b, &p.Properties, Connack, l.props)
	}
	return b
}
