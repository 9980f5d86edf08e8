package packets

// decodeDisconnectAuth decodes DISCONNECT and AUTH. In 3.x DISCONNECT has no
// body. In v5 a remaining length of 0 means reason code 0 and no properties,
// and 1 means no properties (MQTT 5.0 sections 3.14.2.1 and 3.15.2.1).
func decodeDisconnectAuth(p *Packet, d *decoder, v byte) error {
	if v != Version5 {
		if d.left() != 0 {
			return Errorf(MalformedPacket, "DISCONNECT has remaining length %d, must be 0 in MQTT 3", d.left())
		}
		return nil
	}
	if d.left() == 0 {
		return nil
	}
	return decodeReasonProps(p, d)
}

// measureDisconnectAuth computes the layout of DISCONNECT or AUTH.
func measureDisconnectAuth(p *Packet, v byte, l *layout) error {
	if v != Version5 {
		if p.Type == Auth {
			return Errorf(ProtocolError, "AUTH does not exist in MQTT version %d", v)
		}
		l.rem = 0
		return nil
	}
	n, err := measureReasonProps(p, l)
	if err != nil {
		return err
	}
	l.rem = n
	return nil
}

// appendDisconnectAuth appends the body of DISCONNECT or AUTH.
func appendDisconnectAuth(b []byte, p *Packet, v byte, l *layout) []byte {
	if v != Version5 {
		return b
	}
	return appendReasonProps(b, p, l)
}
