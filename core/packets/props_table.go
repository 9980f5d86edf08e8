package packets

// propKind is the wire type of a property value (MQTT 5.0 section 2.2.2.2).
type propKind uint8

const (
	kindNone   propKind = iota // not a property identifier
	kindByte                   // Byte; every byte property is 0 or 1
	kindUint16                 // Two Byte Integer
	kindUint32                 // Four Byte Integer
	kindVarint                 // Variable Byte Integer
	kindString                 // UTF-8 Encoded String
	kindBinary                 // Binary Data
	kindPair                   // UTF-8 String Pair
)

// willCtx is the property context of the will properties in CONNECT. It
// uses the slot of the reserved packet type 0, which carries no properties.
const willCtx = Reserved

// propInfo describes one property identifier.
type propInfo struct {
	label   string   // "Content Type (0x03)", for messages
	kind    propKind // wire type
	allowed uint16   // bit t set: allowed in packet type t; bit 0: will properties
}

func in(ts ...Type) uint16 {
	var m uint16
	for _, t := range ts {
		m |= 1 << t
	}
	return m
}

// propTable is the property table of MQTT 5.0 section 2.2.2.2: identifier,
// type, and the packets (and will properties) it may appear in.
var propTable = [...]propInfo{
	PropPayloadFormat:           {"Payload Format Indicator (0x01)", kindByte, in(Publish, willCtx)},
	PropMessageExpiry:           {"Message Expiry Interval (0x02)", kindUint32, in(Publish, willCtx)},
	PropContentType:             {"Content Type (0x03)", kindString, in(Publish, willCtx)},
	PropResponseTopic:           {"Response Topic (0x08)", kindString, in(Publish, willCtx)},
	PropCorrelationData:         {"Correlation Data (0x09)", kindBinary, in(Publish, willCtx)},
	PropSubscriptionID:          {"Subscription Identifier (0x0B)", kindVarint, in(Publish, Subscribe)},
	PropSessionExpiry:           {"Session Expiry Interval (0x11)", kindUint32, in(Connect, Connack, Disconnect)},
	PropAssignedClientID:        {"Assigned Client Identifier (0x12)", kindString, in(Connack)},
	PropServerKeepAlive:         {"Server Keep Alive (0x13)", kindUint16, in(Connack)},
	PropAuthMethod:              {"Authentication Method (0x15)", kindString, in(Connect, Connack, Auth)},
	PropAuthData:                {"Authentication Data (0x16)", kindBinary, in(Connect, Connack, Auth)},
	PropRequestProblemInfo:      {"Request Problem Information (0x17)", kindByte, in(Connect)},
	PropWillDelay:               {"Will Delay Interval (0x18)", kindUint32, in(willCtx)},
	PropRequestResponseInfo:     {"Request Response Information (0x19)", kindByte, in(Connect)},
	PropResponseInfo:            {"Response Information (0x1A)", kindString, in(Connack)},
	PropServerReference:         {"Server Reference (0x1C)", kindString, in(Connack, Disconnect)},
	PropReasonString:            {"Reason String (0x1F)", kindString, in(Connack, Puback, Pubrec, Pubrel, Pubcomp, Suback, Unsuback, Disconnect, Auth)},
	PropReceiveMaximum:          {"Receive Maximum (0x21)", kindUint16, in(Connect, Connack)},
	PropTopicAliasMaximum:       {"Topic Alias Maximum (0x22)", kindUint16, in(Connect, Connack)},
	PropTopicAlias:              {"Topic Alias (0x23)", kindUint16, in(Publish)},
	PropMaximumQoS:              {"Maximum QoS (0x24)", kindByte, in(Connack)},
	PropRetainAvailable:         {"Retain Available (0x25)", kindByte, in(Connack)},
	PropUserProperty:            {"User Property (0x26)", kindPair, in(Connect, Connack, Publish, willCtx, Puback, Pubrec, Pubrel, Pubcomp, Subscribe, Suback, Unsubscribe, Unsuback, Disconnect, Auth)},
	PropMaximumPacketSize:       {"Maximum Packet Size (0x27)", kindUint32, in(Connect, Connack)},
	PropWildcardSubAvailable:    {"Wildcard Subscription Available (0x28)", kindByte, in(Connack)},
	PropSubscriptionIDAvailable: {"Subscription Identifier Available (0x29)", kindByte, in(Connack)},
	PropSharedSubAvailable:      {"Shared Subscription Available (0x2A)", kindByte, in(Connack)},
}

// propWhat[id] is "property " + the label of id, naming the property in
// messages about its value.
var propWhat = func() (w [len(propTable)]string) {
	for id, info := range propTable {
		w[id] = "property " + info.label
	}
	return w
}()

// propLengthWhat[ctx] names the property length of context ctx.
var propLengthWhat = func() (w [16]string) {
	for t := range w {
		w[t] = ctxName(Type(t)) + " property length"
	}
	w[willCtx] = "will property length"
	return w
}()

// listProps are the properties kept in slices rather than in the presence
// bit set.
const listProps = 1<<PropUserProperty | 1<<PropSubscriptionID

// allowedProps[t] is the set of property identifiers (bit per PropID)
// allowed in packet type t; allowedProps[willCtx] is the will properties.
var allowedProps = func() (m [16]uint64) {
	for id, info := range propTable {
		for t := range m {
			if info.allowed&(1<<t) != 0 {
				m[t] |= 1 << id
			}
		}
	}
	return m
}()

// ctxName names a property context in messages.
func ctxName(ctx Type) string {
	if ctx == willCtx {
		return "will properties"
	}
	return ctx.String()
}

// codeSet is a set of reason codes.
type codeSet [4]uint64

func codes(cs ...ReasonCode) (s codeSet) {
	for _, c := range cs {
		s[c>>6] |= 1 << (c & 63)
	}
	return s
}

func (s *codeSet) has(c ReasonCode) bool { return s[c>>6]&(1<<(c&63)) != 0 }

// v5Codes[t] holds the reason codes packet type t may carry in MQTT 5.0
// (sections 3.2.2.2, 3.4.2.1, 3.5.2.1, 3.6.2.1, 3.7.2.1, 3.9.3, 3.11.3,
// 3.14.2.1 and 3.15.2.1).
var v5Codes = [16]codeSet{
	Connack: codes(Success, UnspecifiedError, MalformedPacket, ProtocolError, ImplementationSpecificError,
		UnsupportedProtocolVersion, ClientIdentifierNotValid, BadUsernameOrPassword, NotAuthorized,
		ServerUnavailable, ServerBusy, Banned, BadAuthenticationMethod, TopicNameInvalid, PacketTooLarge,
		QuotaExceeded, PayloadFormatInvalid, RetainNotSupported, QoSNotSupported, UseAnotherServer,
		ServerMoved, ConnectionRateExceeded),
	Puback: codes(Success, NoMatchingSubscribers, UnspecifiedError, ImplementationSpecificError, NotAuthorized,
		TopicNameInvalid, PacketIdentifierInUse, QuotaExceeded, PayloadFormatInvalid),
	Pubrec: codes(Success, NoMatchingSubscribers, UnspecifiedError, ImplementationSpecificError, NotAuthorized,
		TopicNameInvalid, PacketIdentifierInUse, QuotaExceeded, PayloadFormatInvalid),
	Pubrel:  codes(Success, PacketIdentifierNotFound),
	Pubcomp: codes(Success, PacketIdentifierNotFound),
	Suback: codes(Success, GrantedQoS1, GrantedQoS2, UnspecifiedError, ImplementationSpecificError,
		NotAuthorized, TopicFilterInvalid, PacketIdentifierInUse, QuotaExceeded,
		SharedSubscriptionsNotSupported, SubscriptionIdentifiersNotSupported, WildcardSubscriptionsNotSupported),
	Unsuback: codes(Success, NoSubscriptionExisted, UnspecifiedError, ImplementationSpecificError, NotAuthorized,
		TopicFilterInvalid, PacketIdentifierInUse),
	// Section 2.4 also lists Bad authentication method for DISCONNECT.
	Disconnect: codes(Success, DisconnectWithWill, UnspecifiedError, MalformedPacket, ProtocolError,
		ImplementationSpecificError, NotAuthorized, ServerBusy, ServerShuttingDown, BadAuthenticationMethod,
		KeepAliveTimeout, SessionTakenOver, TopicFilterInvalid, TopicNameInvalid, ReceiveMaximumExceeded,
		TopicAliasInvalid, PacketTooLarge, MessageRateTooHigh, QuotaExceeded, AdministrativeAction,
		PayloadFormatInvalid, RetainNotSupported, QoSNotSupported, UseAnotherServer, ServerMoved,
		SharedSubscriptionsNotSupported, ConnectionRateExceeded, MaximumConnectTime,
		SubscriptionIdentifiersNotSupported, WildcardSubscriptionsNotSupported),
	Auth: codes(Success, ContinueAuthentication, ReAuthenticate),
}

// v3SubackCodes are the SUBACK return codes of 3.1.1 (3.1 has no failure
// code, but accepting it costs nothing).
var v3SubackCodes = codes(V3Accepted, GrantedQoS1, GrantedQoS2, V3SubackFailure)

// reasonRule cites the statement requiring a packet's reason codes to come
// from its table.
var reasonRule = [16]string{
	Connack: "[MQTT-3.2.2-8]", Puback: "[MQTT-3.4.2-1]", Pubrec: "[MQTT-3.5.2-1]", Pubrel: "[MQTT-3.6.2-1]",
	Pubcomp: "[MQTT-3.7.2-1]", Suback: "[MQTT-3.9.3-2]", Unsuback: "[MQTT-3.11.3-2]",
	Disconnect: "[MQTT-3.14.2-1]", Auth: "[MQTT-3.15.2-1]",
}

// checkReason validates a v5 reason code for packet type t.
func checkReason(t Type, c ReasonCode) error {
	if !v5Codes[t].has(c) {
		return Errorf(ProtocolError, "reason code 0x%02X is not valid in %s %s", byte(c), t, reasonRule[t])
	}
	return nil
}

// ValidReasonCode reports whether MQTT 5.0 allows reason code c in a
// packet of type t (for SUBACK and UNSUBACK: in each of its codes).
func ValidReasonCode(t Type, c ReasonCode) bool {
	return v5Codes[t&0x0F].has(c)
}
