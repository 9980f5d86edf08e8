package packets

// checkFirstByte validates the packet type and the fixed-header flags of the
// first byte of a packet, for a connection of protocol version v.
func checkFirstByte(first, v byte) error {
	t := Type(first >> 4)
	flags := first & 0x0F
	switch t {
	case Reserved:
		return Errorf(MalformedPacket, "packet type 0 is reserved")
	case Auth:
		if v != Version5 {
			return Errorf(MalformedPacket, "packet type 15 (AUTH) does not exist before MQTT 5")
		}
	case Publish:
		qos := flags >> 1 & 0x03
		if qos == 3 {
			return Errorf(MalformedPacket, "PUBLISH has QoS 3 [MQTT-3.3.1-4]")
		}
		if qos == 0 && flags&0x08 != 0 {
			return Errorf(MalformedPacket, "PUBLISH has DUP set with QoS 0 [MQTT-3.3.1-2]")
		}
		return nil
	}
	want := byte(0)
	if t == Pubrel || t == Subscribe || t == Unsubscribe {
		want = 0x02
	}
	if flags != want {
		return Errorf(MalformedPacket, "%s fixed-header flags are 0x%X, must be 0x%X [MQTT-2.2.2-1] [MQTT-2.2.2-2]", t, flags, want)
	}
	return nil
}

// decodePacket decodes the body of a packet whose first byte (already
// checked) is first, for a connection of protocol version version. With
// alias set, the decoded packet may point into body.
func decodePacket(p *Packet, first byte, body []byte, version byte, alias bool) error {
	p.Type = Type(first >> 4)
	p.ProtocolVersion = version
	v := version
	if v == 0 {
		v = Version311
	}
	d := decoder{b: body, alias: alias}
	var err error
	switch p.Type {
	case Connect:
		err = decodeConnect(p, &d)
	case Connack:
		err = decodeConnack(p, &d, v)
	case Publish:
		err = decodePublish(p, first, &d, v)
	case Puback, Pubrec, Pubrel, Pubcomp:
		err = decodeAck(p, &d, v)
	case Subscribe:
		err = decodeSubscribe(p, &d, v)
	case Suback:
		err = decodeSuback(p, &d, v)
	case Unsubscribe:
		err = decodeUnsubscribe(p, &d, v)
	case Unsuback:
		err = decodeUnsuback(p, &d, v)
	case Pingreq, Pingresp:
		if len(body) != 0 {
			return Errorf(MalformedPacket, "%s has remaining length %d, must be 0", p.Type, len(body))
		}
	case Disconnect, Auth:
		err = decodeDisconnectAuth(p, &d, v)
	}
	if err != nil {
		return err
	}
	if d.left() != 0 {
		return Errorf(MalformedPacket, "%s has %d unexpected bytes after its content", p.Type, d.left())
	}
	return nil
}
