package packets

// PropID is an MQTT 5 property identifier.
type PropID byte

// The MQTT 5 property identifiers (MQTT 5.0 section 2.2.2.2).
const (
	PropPayloadFormat           PropID = 0x01
	PropMessageExpiry           PropID = 0x02
	PropContentType             PropID = 0x03
	PropResponseTopic           PropID = 0x08
	PropCorrelationData         PropID = 0x09
	PropSubscriptionID          PropID = 0x0B
	PropSessionExpiry           PropID = 0x11
	PropAssignedClientID        PropID = 0x12
	PropServerKeepAlive         PropID = 0x13
	PropAuthMethod              PropID = 0x15
	PropAuthData                PropID = 0x16
	PropRequestProblemInfo      PropID = 0x17
	PropWillDelay               PropID = 0x18
	PropRequestResponseInfo     PropID = 0x19
	PropResponseInfo            PropID = 0x1A
	PropServerReference         PropID = 0x1C
	PropReasonString            PropID = 0x1F
	PropReceiveMaximum          PropID = 0x21
	PropTopicAliasMaximum       PropID = 0x22
	PropTopicAlias              PropID = 0x23
	PropMaximumQoS              PropID = 0x24
	PropRetainAvailable         PropID = 0x25
	PropUserProperty            PropID = 0x26
	PropMaximumPacketSize       PropID = 0x27
	PropWildcardSubAvailable    PropID = 0x28
	PropSubscriptionIDAvailable PropID = 0x29
	PropSharedSubAvailable      PropID = 0x2A
)

// UserProperty is one MQTT 5 user property, a UTF-8 string pair. Names may
// repeat and order is significant.
type UserProperty struct {
	Key   string
	Value string
}

// Properties holds the MQTT 5 properties of a packet. Which scalar and string
// properties are present is recorded in a bit set indexed by PropID, so that a
// zero value can be told from an absent one without pointers; use Has and Set.
// UserProperties and SubscriptionIDs are present when non-empty.
type Properties struct {
	present uint64

	PayloadFormat           byte
	MessageExpiry           uint32
	ContentType             string
	ResponseTopic           string
	CorrelationData         []byte
	SubscriptionIDs         []uint32 // one in SUBSCRIBE, any number in PUBLISH
	SessionExpiry           uint32
	AssignedClientID        string
	ServerKeepAlive         uint16
	AuthMethod              string
	AuthData                []byte
	RequestProblemInfo      byte
	WillDelay               uint32
	RequestResponseInfo     byte
	ResponseInfo            string
	ServerReference         string
	ReasonString            string
	ReceiveMaximum          uint16
	TopicAliasMaximum       uint16
	TopicAlias              uint16
	MaximumQoS              byte
	RetainAvailable         byte
	UserProperties          []UserProperty
	MaximumPacketSize       uint32
	WildcardSubAvailable    byte
	SubscriptionIDAvailable byte
	SharedSubAvailable      byte
}

// Has reports whether property id is present. For user properties and
// subscription identifiers it reports whether the list is non-empty.
func (p *Properties) Has(id PropID) bool {
	switch id {
	case PropUserProperty:
		return len(p.UserProperties) > 0
	case PropSubscriptionID:
		return len(p.SubscriptionIDs) > 0
	}
	return p.present&(1<<uint(id&63)) != 0
}

// Set marks property id as present; its value is the matching field.
func (p *Properties) Set(id PropID) {
	p.present |= 1 << uint(id&63)
}

// Clear marks property id as absent and zeroes nothing else.
func (p *Properties) Clear(id PropID) {
	p.present &^= 1 << uint(id&63)
}

// Empty reports whether no property is present.
func (p *Properties) Empty() bool {
	return p.present == 0 && len(p.UserProperties) == 0 && len(p.SubscriptionIDs) == 0
}
