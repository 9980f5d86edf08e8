package packets

import (
	"bufio"
	"bytes"
	"reflect"
	"testing"
)

// specProps lists, from the table of MQTT 5.0 section 2.2.2.2, the
// properties each packet type (and, under Reserved, the will properties)
// may carry. It is written independently of propTable, which
// TestPropertyTableMatchesSpec checks against it.
var specProps = map[Type][]PropID{
	Connect: {PropSessionExpiry, PropAuthMethod, PropAuthData, PropRequestProblemInfo, PropRequestResponseInfo,
		PropReceiveMaximum, PropTopicAliasMaximum, PropUserProperty, PropMaximumPacketSize},
	Connack: {PropSessionExpiry, PropAssignedClientID, PropServerKeepAlive, PropAuthMethod, PropAuthData,
		PropResponseInfo, PropServerReference, PropReasonString, PropReceiveMaximum, PropTopicAliasMaximum,
		PropMaximumQoS, PropRetainAvailable, PropUserProperty, PropMaximumPacketSize, PropWildcardSubAvailable,
		PropSubscriptionIDAvailable, PropSharedSubAvailable},
	Publish: {PropPayloadFormat, PropMessageExpiry, PropContentType, PropResponseTopic, PropCorrelationData,
		PropSubscriptionID, PropTopicAlias, PropUserProperty},
	Reserved: {PropPayloadFormat, PropMessageExpiry, PropContentType, PropResponseTopic, PropCorrelationData,
		PropWillDelay, PropUserProperty}, // will properties
	Puback:      {PropReasonString, PropUserProperty},
	Pubrec:      {PropReasonString, PropUserProperty},
	Pubrel:      {PropReasonString, PropUserProperty},
	Pubcomp:     {PropReasonString, PropUserProperty},
	Subscribe:   {PropSubscriptionID, PropUserProperty},
	Suback:      {PropReasonString, PropUserProperty},
	Unsubscribe: {PropUserProperty},
	Unsuback:    {PropReasonString, PropUserProperty},
	Pingreq:     nil,
	Pingresp:    nil,
	Disconnect:  {PropSessionExpiry, PropServerReference, PropReasonString, PropUserProperty},
	Auth:        {PropAuthMethod, PropAuthData, PropReasonString, PropUserProperty},
}

func TestPropertyTableMatchesSpec(t *testing.T) {
	for ctx := Type(0); ctx < 16; ctx++ {
		var want uint64
		for _, id := range specProps[ctx] {
			want |= 1 << id
		}
		if got := allowedProps[ctx]; got != want {
			t.Errorf("%s: allowed properties %#x, spec says %#x", ctxName(ctx), got, want)
		}
	}
}

// withProps returns properties holding every id in ids, with non-default
// values (binary, non-ASCII strings, zero values that are present).
func withProps(ctx Type, ids ...PropID) Properties {
	var p Properties
	for _, id := range ids {
		switch id {
		case PropPayloadFormat:
			p.PayloadFormat = 1
		case PropMessageExpiry:
			p.MessageExpiry = 3600
		case PropContentType:
			p.ContentType = "text/plain; charset=utf-8"
		case PropResponseTopic:
			p.ResponseTopic = "replies/ü"
		case PropCorrelationData:
			p.CorrelationData = []byte{0, 1, 2, 0xFF}
		case PropSubscriptionID:
			p.SubscriptionIDs = []uint32{MaxRemainingLength}
			if ctx == Publish {
				p.SubscriptionIDs = []uint32{1, 300, MaxRemainingLength}
			}
			continue
		case PropSessionExpiry:
			p.SessionExpiry = 0xFFFFFFFF
		case PropAssignedClientID:
			p.AssignedClientID = "auto-7f3a"
		case PropServerKeepAlive:
			p.ServerKeepAlive = 0 // present with a zero value
		case PropAuthMethod:
			p.AuthMethod = "SCRAM-SHA-256"
		case PropAuthData:
			p.AuthData = []byte("n,,n=user,r=nonce")
		case PropRequestProblemInfo:
			p.RequestProblemInfo = 0
		case PropWillDelay:
			p.WillDelay = 10
		case PropRequestResponseInfo:
			p.RequestResponseInfo = 1
		case PropResponseInfo:
			p.ResponseInfo = "responses/"
		case PropServerReference:
			p.ServerReference = "other.example:1883"
		case PropReasonString:
			p.ReasonString = "reason ✓"
		case PropReceiveMaximum:
			p.ReceiveMaximum = 65535
		case PropTopicAliasMaximum:
			p.TopicAliasMaximum = 10
		case PropTopicAlias:
			p.TopicAlias = 5
		case PropMaximumQoS:
			p.MaximumQoS = 1
		case PropRetainAvailable:
			p.RetainAvailable = 0
		case PropUserProperty:
			p.UserProperties = []UserProperty{{"k", "v"}, {"k", "v2"}, {"", ""}, {"日本", "語"}}
			continue
		case PropMaximumPacketSize:
			p.MaximumPacketSize = 1 << 20
		case PropWildcardSubAvailable:
			p.WildcardSubAvailable = 1
		case PropSubscriptionIDAvailable:
			p.SubscriptionIDAvailable = 0
		case PropSharedSubAvailable:
			p.SharedSubAvailable = 1
		}
		p.Set(id)
	}
	return p
}

// allPropsFor returns every property ctx may carry.
func allPropsFor(ctx Type) Properties { return withProps(ctx, specProps[ctx]...) }

type rtCase struct {
	name string
	p    Packet
}

var allVersions = []byte{Version31, Version311, Version5}

// roundTripCases returns packets of every type in every version, with all
// the v5 properties each type allows. They double as fuzz seeds.
func roundTripCases() []rtCase {
	var cs []rtCase
	add := func(name string, p Packet) {
		cs = append(cs, rtCase{name: name + "/v" + string('0'+p.ProtocolVersion), p: p})
	}
	for _, v := range allVersions {
		v5 := v == Version5
		name := "MQTT"
		if v == Version31 {
			name = "MQIsdp"
		}
		// CONNECT: minimal, and with everything.
		add("CONNECT/minimal", Packet{Type: Connect, ProtocolVersion: v,
			Connect: ConnectFields{ProtocolName: name, CleanStart: true, ClientID: "c"}})
		full := Packet{Type: Connect, ProtocolVersion: v, Connect: ConnectFields{
			ProtocolName: name, KeepAlive: 65535, ClientID: "client-ü",
			WillFlag: true, Will: Will{Topic: "last/will", Payload: []byte{0, 0xFF, 'x'}, QoS: 2, Retain: true},
			UsernameFlag: true, Username: "user", PasswordFlag: true, Password: []byte{0, 1, 2},
		}}
		if v5 {
			full.Properties = allPropsFor(Connect)
			full.Connect.Will.Properties = allPropsFor(Reserved)
		}
		add("CONNECT/full", full)
		if !v5 {
			add("CONNECT/bridge", Packet{Type: Connect, ProtocolVersion: v,
				Connect: ConnectFields{ProtocolName: name, ClientID: "bridge-1", Bridge: true}})
		}
		add("CONNECT/will-qos1-empty-payload", Packet{Type: Connect, ProtocolVersion: v, Connect: ConnectFields{
			ProtocolName: name, ClientID: "id", WillFlag: true, Will: Will{Topic: "w", QoS: 1},
			UsernameFlag: true, PasswordFlag: true}})
		if v5 {
			add("CONNECT/password-without-username", Packet{Type: Connect, ProtocolVersion: v,
				Connect: ConnectFields{ProtocolName: name, PasswordFlag: true, Password: []byte("secret")}})
		}

		// CONNACK.
		add("CONNACK/accepted", Packet{Type: Connack, ProtocolVersion: v})
		if v != Version31 {
			add("CONNACK/session-present", Packet{Type: Connack, ProtocolVersion: v, SessionPresent: true})
		}
		refused := Packet{Type: Connack, ProtocolVersion: v, ReasonCode: V3NotAuthorized}
		if v5 {
			refused.ReasonCode = NotAuthorized
			refused.Properties = withProps(Connack, PropReasonString, PropServerReference, PropUserProperty)
		}
		add("CONNACK/refused", refused)
		if v5 {
			add("CONNACK/all-properties", Packet{Type: Connack, ProtocolVersion: v, SessionPresent: true,
				Properties: allPropsFor(Connack)})
		}

		// PUBLISH at each QoS.
		for qos := byte(0); qos <= 2; qos++ {
			p := Packet{Type: Publish, ProtocolVersion: v, QoS: qos, Retain: qos == 1,
				Topic: "a/b/ü", Payload: []byte("hello")}
			if qos > 0 {
				p.PacketID = 0xFFFF
				p.Dup = qos == 2
			}
			add("PUBLISH/qos"+string('0'+qos), p)
		}
		add("PUBLISH/empty-payload", Packet{Type: Publish, ProtocolVersion: v, Topic: "t"})
		if v5 {
			add("PUBLISH/all-properties", Packet{Type: Publish, ProtocolVersion: v, QoS: 1, PacketID: 1,
				Topic: "x", Payload: bytes.Repeat([]byte{0xAB}, 300), Properties: allPropsFor(Publish)})
			add("PUBLISH/topic-alias-only", Packet{Type: Publish, ProtocolVersion: v, Payload: []byte{1},
				Properties: withProps(Publish, PropTopicAlias)})
		}

		// PUBACK, PUBREC, PUBREL, PUBCOMP.
		for _, typ := range []Type{Puback, Pubrec, Pubrel, Pubcomp} {
			add(typ.String()+"/plain", Packet{Type: typ, ProtocolVersion: v, PacketID: 7})
			if v5 {
				code := NoMatchingSubscribers
				if typ == Pubrel || typ == Pubcomp {
					code = PacketIdentifierNotFound
				}
				add(typ.String()+"/reason", Packet{Type: typ, ProtocolVersion: v, PacketID: 8, ReasonCode: code})
				add(typ.String()+"/properties", Packet{Type: typ, ProtocolVersion: v, PacketID: 9,
					Properties: allPropsFor(typ)})
				add(typ.String()+"/reason-properties", Packet{Type: typ, ProtocolVersion: v, PacketID: 10,
					ReasonCode: code, Properties: allPropsFor(typ)})
			}
		}

		// SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK.
		sub := Packet{Type: Subscribe, ProtocolVersion: v, PacketID: 1, Subscriptions: []Subscription{
			{Filter: "a/+/c", QoS: 0}, {Filter: "#", QoS: 1}, {Filter: "$share/g/x", QoS: 2}}}
		if v5 {
			sub.Subscriptions = append(sub.Subscriptions,
				Subscription{Filter: "nl", QoS: 1, NoLocal: true},
				Subscription{Filter: "rap", RetainAsPublished: true, RetainHandling: 1},
				Subscription{Filter: "all", QoS: 2, NoLocal: true, RetainAsPublished: true, RetainHandling: 2})
			sub.Properties = allPropsFor(Subscribe)
		}
		add("SUBSCRIBE", sub)
		suback := Packet{Type: Suback, ProtocolVersion: v, PacketID: 1,
			ReasonCodes: []ReasonCode{GrantedQoS2, GrantedQoS1, Success, V3SubackFailure}}
		if v5 {
			suback.ReasonCodes = append(suback.ReasonCodes, NotAuthorized, TopicFilterInvalid,
				SharedSubscriptionsNotSupported, SubscriptionIdentifiersNotSupported, WildcardSubscriptionsNotSupported)
			suback.Properties = allPropsFor(Suback)
		}
		add("SUBACK", suback)
		unsub := Packet{Type: Unsubscribe, ProtocolVersion: v, PacketID: 2, Filters: []string{"a/b", "c/#", "ü"}}
		unsuback := Packet{Type: Unsuback, ProtocolVersion: v, PacketID: 2}
		if v5 {
			unsub.Properties = allPropsFor(Unsubscribe)
			unsuback.ReasonCodes = []ReasonCode{Success, NoSubscriptionExisted, NotAuthorized}
			unsuback.Properties = allPropsFor(Unsuback)
		}
		add("UNSUBSCRIBE", unsub)
		add("UNSUBACK", unsuback)

		// PINGREQ, PINGRESP, DISCONNECT, AUTH.
		add("PINGREQ", Packet{Type: Pingreq, ProtocolVersion: v})
		add("PINGRESP", Packet{Type: Pingresp, ProtocolVersion: v})
		add("DISCONNECT/plain", Packet{Type: Disconnect, ProtocolVersion: v})
		if v5 {
			add("DISCONNECT/with-will", Packet{Type: Disconnect, ProtocolVersion: v, ReasonCode: DisconnectWithWill})
			add("DISCONNECT/properties", Packet{Type: Disconnect, ProtocolVersion: v, Properties: allPropsFor(Disconnect)})
			add("DISCONNECT/reason-properties", Packet{Type: Disconnect, ProtocolVersion: v,
				ReasonCode: ServerMoved, Properties: allPropsFor(Disconnect)})
			add("AUTH/plain", Packet{Type: Auth, ProtocolVersion: v})
			add("AUTH/continue", Packet{Type: Auth, ProtocolVersion: v, ReasonCode: ContinueAuthentication,
				Properties: allPropsFor(Auth)})
			add("AUTH/reauth", Packet{Type: Auth, ProtocolVersion: v, ReasonCode: ReAuthenticate})
		}
	}
	return cs
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range roundTripCases() {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.p
			data := encode(t, &want)

			var got Packet
			n, err := DecodeBytes(data, want.ProtocolVersion, 0, &got)
			if err != nil {
				t.Fatalf("DecodeBytes(% x): %v", data, err)
			}
			if n != len(data) {
				t.Fatalf("DecodeBytes took %d bytes of %d", n, len(data))
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("DecodeBytes mismatch\n got: %+v\nwant: %+v", got, want)
			}

			// The stream path, both decoding in place from the bufio buffer
			// and with a buffer too small for the packet.
			for _, size := range []int{4096, 16} {
				var rp Packet
				if err := readOne(data, want.ProtocolVersion, 0, size, &rp); err != nil {
					t.Fatalf("ReadPacket (bufio size %d): %v", size, err)
				}
				if !reflect.DeepEqual(rp, want) {
					t.Fatalf("ReadPacket (bufio size %d) mismatch\n got: %+v\nwant: %+v", size, rp, want)
				}
			}
		})
	}
}

// TestRoundTripStream reads every round-trip packet of a version from one
// stream, keeping all of them: none may be clobbered by a later read.
func TestRoundTripStream(t *testing.T) {
	for _, v := range allVersions {
		var stream []byte
		var want []Packet
		for _, tc := range roundTripCases() {
			if tc.p.ProtocolVersion != v {
				continue
			}
			p := tc.p
			stream = append(stream, encode(t, &p)...)
			want = append(want, tc.p)
		}
		r := NewReader(bufio.NewReaderSize(bytes.NewReader(stream), 64), 0)
		r.SetVersion(v)
		got := make([]Packet, len(want))
		for i := range got {
			if err := r.ReadPacket(&got[i]); err != nil {
				t.Fatalf("v%d packet %d (%s): %v", v, i, want[i].Type, err)
			}
		}
		for i := range got {
			if !reflect.DeepEqual(got[i], want[i]) {
				t.Errorf("v%d packet %d (%s) changed after later reads\n got: %+v\nwant: %+v", v, i, want[i].Type, got[i], want[i])
			}
		}
	}
}

// TestEncodeBytes pins the wire format of a few packets byte for byte.
func TestEncodeBytes(t *testing.T) {
	tests := []struct {
		name string
		p    Packet
		want []byte
	}{
		{"v3.1 CONNECT uses MQIsdp", Packet{Type: Connect, ProtocolVersion: Version31, Connect: ConnectFields{ClientID: "c", CleanStart: true, KeepAlive: 60}},
			raw(0x10, str("MQIsdp"), bs(3, 0x02), u16(60), str("c"))},
		{"v3.1.1 CONNECT", Packet{Type: Connect, ProtocolVersion: Version311, Connect: ConnectFields{ProtocolName: "ignored", ClientID: "c"}},
			raw(0x10, str("MQTT"), bs(4, 0), u16(0), str("c"))},
		{"v3.1.1 CONNECT of a Mosquitto bridge: level 0x84", Packet{Type: Connect, ProtocolVersion: Version311, Connect: ConnectFields{ClientID: "c", Bridge: true}},
			raw(0x10, str("MQTT"), bs(0x84, 0), u16(0), str("c"))},
		{"v3.1 CONNECT of a Mosquitto bridge: level 0x83", Packet{Type: Connect, ProtocolVersion: Version31, Connect: ConnectFields{ClientID: "c", Bridge: true}},
			raw(0x10, str("MQIsdp"), bs(0x83, 0), u16(0), str("c"))},
		{"version 0 is 3.1.1", Packet{Type: Connect, Connect: ConnectFields{ClientID: "c"}},
			raw(0x10, str("MQTT"), bs(4, 0), u16(0), str("c"))},
		{"v5 CONNECT will flags and properties", Packet{Type: Connect, ProtocolVersion: Version5, Connect: ConnectFields{
			ClientID: "c", WillFlag: true, Will: Will{Topic: "w", QoS: 1, Retain: true, Properties: withProps(Reserved, PropWillDelay)},
			UsernameFlag: true, Username: "u"}, Properties: withProps(Connect, PropReceiveMaximum)},
			raw(0x10, str("MQTT"), bs(5, 0x80|0x20|0x08|0x04), u16(0), props(prop(PropReceiveMaximum, u16(65535))),
				str("c"), props(prop(PropWillDelay, u32(10))), str("w"), u16(0), str("u"))},
		{"v3 drops properties", Packet{Type: Puback, ProtocolVersion: Version311, PacketID: 5, ReasonCode: NotAuthorized, Properties: withProps(Puback, PropReasonString)},
			bs(0x40, 2, 0, 5)},
		{"v5 PUBACK success without properties is 2 bytes", Packet{Type: Puback, ProtocolVersion: Version5, PacketID: 5},
			bs(0x40, 2, 0, 5)},
		{"v5 PUBACK reason without properties is 3 bytes", Packet{Type: Puback, ProtocolVersion: Version5, PacketID: 5, ReasonCode: NotAuthorized},
			bs(0x40, 3, 0, 5, 0x87)},
		{"PUBREL flags", Packet{Type: Pubrel, ProtocolVersion: Version311, PacketID: 1}, bs(0x62, 2, 0, 1)},
		{"v5 DISCONNECT normal is empty", Packet{Type: Disconnect, ProtocolVersion: Version5}, bs(0xE0, 0)},
		{"v5 DISCONNECT reason only", Packet{Type: Disconnect, ProtocolVersion: Version5, ReasonCode: SessionTakenOver}, bs(0xE0, 1, 0x8E)},
		{"v5 AUTH success is empty", Packet{Type: Auth, ProtocolVersion: Version5}, bs(0xF0, 0)},
		{"PUBLISH flags", Packet{Type: Publish, QoS: 2, Dup: true, Retain: true, PacketID: 0x0102, Topic: "t", Payload: []byte("p")},
			raw(0x3D, str("t"), u16(0x0102), bs('p'))},
		{"PUBLISH QoS 0 drops DUP", Packet{Type: Publish, Dup: true, Topic: "t"}, raw(0x30, str("t"))},
		{"v5 PUBLISH property order", Packet{Type: Publish, ProtocolVersion: Version5, Topic: "t",
			Properties: withProps(Publish, PropUserProperty, PropTopicAlias, PropPayloadFormat)},
			raw(0x30, str("t"), props(prop(PropPayloadFormat, bs(1)), prop(PropTopicAlias, u16(5)),
				prop(PropUserProperty, str("k"), str("v")), prop(PropUserProperty, str("k"), str("v2")),
				prop(PropUserProperty, str(""), str("")), prop(PropUserProperty, str("日本"), str("語"))))},
		{"properties not allowed in the packet are not written", Packet{Type: Puback, ProtocolVersion: Version5, PacketID: 1,
			Properties: withProps(Publish, PropTopicAlias, PropSubscriptionID)}, bs(0x40, 2, 0, 1)},
		{"v3 SUBSCRIBE sends only QoS", Packet{Type: Subscribe, ProtocolVersion: Version311, PacketID: 1,
			Subscriptions: []Subscription{{Filter: "a", QoS: 1, NoLocal: true, RetainAsPublished: true, RetainHandling: 2}}},
			raw(0x82, u16(1), str("a"), bs(1))},
		{"v5 SUBSCRIBE options", Packet{Type: Subscribe, ProtocolVersion: Version5, PacketID: 1,
			Subscriptions: []Subscription{{Filter: "a", QoS: 1, NoLocal: true, RetainAsPublished: true, RetainHandling: 2}}},
			raw(0x82, u16(1), props(), str("a"), bs(0x2D))},
		{"v3 SUBACK maps failures to 0x80", Packet{Type: Suback, ProtocolVersion: Version311, PacketID: 1,
			ReasonCodes: []ReasonCode{GrantedQoS1, NotAuthorized, TopicFilterInvalid}}, raw(0x90, u16(1), bs(1, 0x80, 0x80))},
		{"v3 UNSUBACK has no reason codes", Packet{Type: Unsuback, ProtocolVersion: Version311, PacketID: 3,
			ReasonCodes: []ReasonCode{NoSubscriptionExisted}}, bs(0xB0, 2, 0, 3)},
		{"v3 CONNACK maps v5 codes", Packet{Type: Connack, ProtocolVersion: Version311, ReasonCode: BadAuthenticationMethod}, bs(0x20, 2, 0, 4)},
		{"CONNACK clears session present on refusal", Packet{Type: Connack, ProtocolVersion: Version311, SessionPresent: true, ReasonCode: V3IdentifierRejected},
			bs(0x20, 2, 0, 2)},
		{"v3.1 CONNACK has no session present", Packet{Type: Connack, ProtocolVersion: Version31, SessionPresent: true}, bs(0x20, 2, 0, 0)},
		{"v5 CONNACK", Packet{Type: Connack, ProtocolVersion: Version5, SessionPresent: true}, bs(0x20, 3, 1, 0, 0)},
		{"PINGREQ", Packet{Type: Pingreq}, bs(0xC0, 0)},
		{"two-byte remaining length", Packet{Type: Publish, Topic: "t", Payload: make([]byte, 200)},
			append(bs(0x30, 0xCB, 0x01), append(str("t"), make([]byte, 200)...)...)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := encode(t, &tc.p)
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("Encode\n got: % x\nwant: % x", got, tc.want)
			}
		})
	}
}

func TestEncodeErrors(t *testing.T) {
	long := string(make([]byte, maxStringLen+1))
	tests := []struct {
		name string
		p    Packet
		code ReasonCode
	}{
		{"AUTH in 3.1.1", Packet{Type: Auth, ProtocolVersion: Version311}, ProtocolError},
		{"AUTH in 3.1", Packet{Type: Auth, ProtocolVersion: Version31}, ProtocolError},
		{"unknown version", Packet{Type: Pingreq, ProtocolVersion: 6}, UnsupportedProtocolVersion},
		{"reserved type", Packet{Type: Reserved}, MalformedPacket},
		{"type out of range", Packet{Type: 16}, MalformedPacket},
		{"PUBLISH QoS 3", Packet{Type: Publish, QoS: 3, Topic: "t"}, MalformedPacket},
		{"will QoS 3", Packet{Type: Connect, Connect: ConnectFields{WillFlag: true, Will: Will{Topic: "t", QoS: 3}}}, MalformedPacket},
		{"topic too long", Packet{Type: Publish, Topic: long}, MalformedPacket},
		{"client id too long", Packet{Type: Connect, Connect: ConnectFields{ClientID: long}}, MalformedPacket},
		{"password too long", Packet{Type: Connect, Connect: ConnectFields{PasswordFlag: true, UsernameFlag: true, Password: []byte(long)}}, MalformedPacket},
		{"property too long", Packet{Type: Puback, ProtocolVersion: Version5, Properties: func() Properties {
			p := withProps(Puback, PropReasonString)
			p.ReasonString = long
			return p
		}()}, MalformedPacket},
		{"user property too long", Packet{Type: Puback, ProtocolVersion: Version5, Properties: Properties{
			UserProperties: []UserProperty{{Key: "k", Value: long}}}}, MalformedPacket},
		{"subscription identifier too large", Packet{Type: Subscribe, ProtocolVersion: Version5, PacketID: 1,
			Subscriptions: []Subscription{{Filter: "a"}}, Properties: Properties{SubscriptionIDs: []uint32{MaxRemainingLength + 1}}}, MalformedPacket},
		{"subscription QoS 3", Packet{Type: Subscribe, PacketID: 1, Subscriptions: []Subscription{{Filter: "a", QoS: 3}}}, MalformedPacket},
		{"retain handling 3", Packet{Type: Subscribe, ProtocolVersion: Version5, PacketID: 1, Subscriptions: []Subscription{{Filter: "a", RetainHandling: 3}}}, MalformedPacket},
		{"v3 SUBACK code without equivalent", Packet{Type: Suback, PacketID: 1, ReasonCodes: []ReasonCode{NoMatchingSubscribers}}, ProtocolError},
		{"v3 CONNACK code without equivalent", Packet{Type: Connack, ReasonCode: GrantedQoS1 + 5}, ProtocolError},
		{"remaining length too large", Packet{Type: Subscribe, PacketID: 1, Subscriptions: func() []Subscription {
			// 4100 filters of 65535 bytes sharing one string: over 268435455.
			max := string(make([]byte, maxStringLen))
			s := make([]Subscription, 4100)
			for i := range s {
				s[i].Filter = max
			}
			return s
		}()}, PacketTooLarge},
		{"properties too large", Packet{Type: Puback, ProtocolVersion: Version5, Properties: Properties{UserProperties: func() []UserProperty {
			max := string(make([]byte, maxStringLen))
			u := make([]UserProperty, 4100)
			for i := range u {
				u[i].Key = max
			}
			return u
		}()}}, PacketTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			buf := bytebufferpoolWith(8)
			err := tc.p.Encode(buf)
			wantCode(t, err, tc.code)
			if len(buf.B) != 8 {
				t.Fatalf("Encode appended %d bytes on error", len(buf.B)-8)
			}
			if n := tc.p.Size(); n != 0 {
				t.Fatalf("Size() = %d for a packet Encode refuses", n)
			}
		})
	}
}
