package packets

import (
	"bufio"
	"bytes"
	"testing"
	"unsafe"

	"github.com/valyala/bytebufferpool"
)

// allocsReading returns the allocations per ReadPacket of data, read over
// and over from one Reader.
func allocsReading(t *testing.T, data []byte, version byte) float64 {
	t.Helper()
	r := NewReader(bufio.NewReaderSize(&loopReader{data: data}, 4096), 0)
	r.SetVersion(version)
	var p Packet
	if err := r.ReadPacket(&p); err != nil {
		t.Fatal(err)
	}
	return testing.AllocsPerRun(200, func() {
		if err := r.ReadPacket(&p); err != nil {
			t.Fatal(err)
		}
	})
}

func TestDecodeAllocs(t *testing.T) {
	v5Pub := Packet{Type: Publish, ProtocolVersion: Version5, QoS: 1, PacketID: 3, Topic: "sensors/1/temp",
		Payload: make([]byte, 64), Properties: withProps(Publish, PropPayloadFormat, PropMessageExpiry, PropContentType,
			PropResponseTopic, PropCorrelationData, PropTopicAlias)}
	tests := []struct {
		name string
		p    Packet
		want float64
	}{
		{"PUBLISH v3.1.1 QoS 0", Packet{Type: Publish, ProtocolVersion: Version311, Topic: "a/b", Payload: make([]byte, 64)}, 1},
		{"PUBLISH v3.1.1 QoS 2", Packet{Type: Publish, ProtocolVersion: Version311, QoS: 2, PacketID: 1, Topic: "a/b", Payload: make([]byte, 64)}, 1},
		{"PUBLISH v5 with string and binary properties", v5Pub, 1},
		{"PUBACK v3.1.1", Packet{Type: Puback, ProtocolVersion: Version311, PacketID: 1}, 0},
		{"PUBACK v5 reason", Packet{Type: Puback, ProtocolVersion: Version5, PacketID: 1, ReasonCode: NoMatchingSubscribers}, 0},
		{"PUBREC v5", Packet{Type: Pubrec, ProtocolVersion: Version5, PacketID: 1}, 0},
		{"PUBREL v5", Packet{Type: Pubrel, ProtocolVersion: Version5, PacketID: 1, ReasonCode: PacketIdentifierNotFound}, 0},
		{"PUBCOMP v3.1.1", Packet{Type: Pubcomp, ProtocolVersion: Version311, PacketID: 1}, 0},
		{"PINGREQ", Packet{Type: Pingreq, ProtocolVersion: Version311}, 0},
		{"DISCONNECT v5", Packet{Type: Disconnect, ProtocolVersion: Version5, ReasonCode: DisconnectWithWill}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := encode(t, &tc.p)
			if got := allocsReading(t, data, tc.p.ProtocolVersion); got != tc.want {
				t.Fatalf("%v allocations per decode, want %v", got, tc.want)
			}
		})
	}
}

func TestEncodeAllocs(t *testing.T) {
	buf := &bytebufferpool.ByteBuffer{B: make([]byte, 0, 1<<16)}
	for _, tc := range roundTripCases() {
		p := tc.p
		got := testing.AllocsPerRun(50, func() {
			buf.Reset()
			if err := p.Encode(buf); err != nil {
				t.Fatal(err)
			}
			_ = p.Size()
		})
		if got != 0 {
			t.Errorf("%s: %v allocations per Encode+Size, want 0", tc.name, got)
		}
	}
}

// TestPublishSharesBody checks that a decoded PUBLISH points into its one
// body: topic, payload and string properties lie inside one allocation.
func TestPublishSharesBody(t *testing.T) {
	p := Packet{Type: Publish, ProtocolVersion: Version5, QoS: 1, PacketID: 1, Topic: "topic",
		Payload: []byte("payload"), Properties: withProps(Publish, PropContentType, PropCorrelationData)}
	data := encode(t, &p)
	var got Packet
	if err := readOne(data, Version5, 0, 4096, &got); err != nil {
		t.Fatal(err)
	}
	base := uintptr(unsafe.Pointer(unsafe.StringData(got.Topic))) - 2 // topic length before it
	end := uintptr(unsafe.Pointer(&got.Payload[len(got.Payload)-1])) + 1
	if int(end-base) != len(data)-2 { // fixed header is 2 bytes
		t.Fatalf("topic to payload end spans %d bytes, body is %d", end-base, len(data)-2)
	}
	for name, ptr := range map[string]uintptr{
		"content type":     uintptr(unsafe.Pointer(unsafe.StringData(got.Properties.ContentType))),
		"correlation data": uintptr(unsafe.Pointer(&got.Properties.CorrelationData[0])),
	} {
		if ptr < base || ptr >= end {
			t.Errorf("%s is not inside the PUBLISH body", name)
		}
	}
	if cap(got.Properties.CorrelationData) != len(got.Properties.CorrelationData) {
		t.Errorf("correlation data has spare capacity into the body: appending would overwrite it")
	}
}

// TestNoAliasing reads packets decoded in place from the bufio buffer, then
// overwrites that buffer with more packets: the first packets must not
// change.
func TestNoAliasing(t *testing.T) {
	first := []Packet{
		{Type: Connect, ProtocolVersion: Version5, Connect: ConnectFields{ProtocolName: "MQTT", ClientID: "client-1",
			WillFlag: true, Will: Will{Topic: "will/topic", Payload: []byte("will payload"), Properties: allPropsFor(Reserved)},
			UsernameFlag: true, Username: "user", PasswordFlag: true, Password: []byte("password")},
			Properties: allPropsFor(Connect)},
		{Type: Subscribe, ProtocolVersion: Version5, PacketID: 1, Subscriptions: []Subscription{{Filter: "filter/a"}},
			Properties: allPropsFor(Subscribe)},
		{Type: Unsubscribe, ProtocolVersion: Version5, PacketID: 2, Filters: []string{"filter/b"}},
		{Type: Puback, ProtocolVersion: Version5, PacketID: 3, Properties: allPropsFor(Puback)},
		{Type: Auth, ProtocolVersion: Version5, ReasonCode: ContinueAuthentication, Properties: allPropsFor(Auth)},
	}
	var stream []byte
	for i := range first {
		stream = append(stream, encode(t, &first[i])...)
	}
	// Filler with different bytes, enough to cycle the bufio buffer.
	filler := Packet{Type: Subscribe, ProtocolVersion: Version5, PacketID: 9,
		Subscriptions: []Subscription{{Filter: string(bytes.Repeat([]byte{'z'}, 200))}}}
	fb := encode(t, &filler)
	for i := 0; i < 20; i++ {
		stream = append(stream, fb...)
	}
	r := NewReader(bufio.NewReaderSize(bytes.NewReader(stream), 512), 0)
	r.SetVersion(Version5)
	got := make([]Packet, len(first))
	for i := range got {
		if err := r.ReadPacket(&got[i]); err != nil {
			t.Fatal(err)
		}
	}
	var p Packet
	for i := 0; i < 20; i++ {
		if err := r.ReadPacket(&p); err != nil {
			t.Fatal(err)
		}
	}
	for i := range got {
		if !equalPackets(&got[i], &first[i]) {
			t.Errorf("%s changed after later reads\n got: %+v\nwant: %+v", first[i].Type, got[i], first[i])
		}
	}
}

func TestPublishIDOffset(t *testing.T) {
	for _, tc := range roundTripCases() {
		p := tc.p
		data := encode(t, &p)
		off := PublishIDOffset(data)
		if p.Type != Publish || p.QoS == 0 {
			if off != -1 {
				t.Errorf("%s: PublishIDOffset = %d, want -1", tc.name, off)
			}
			continue
		}
		data[off], data[off+1] = 0xBE, 0xEF
		var q Packet
		if _, err := DecodeBytes(data, p.ProtocolVersion, 0, &q); err != nil {
			t.Fatalf("%s: decoding the patched packet: %v", tc.name, err)
		}
		if q.PacketID != 0xBEEF {
			t.Errorf("%s: patched packet identifier is %#x, want 0xBEEF", tc.name, q.PacketID)
		}
		q.PacketID = p.PacketID
		if !equalPackets(&q, &p) {
			t.Errorf("%s: patching changed more than the packet identifier", tc.name)
		}
	}
	// Large packets (multi-byte remaining length) and invalid input.
	big := Packet{Type: Publish, QoS: 1, PacketID: 1, Topic: "abc", Payload: make([]byte, 20000)}
	if off := PublishIDOffset(encode(t, &big)); off != 1+3+2+3 {
		t.Errorf("PublishIDOffset of a 20 kB PUBLISH = %d, want %d", off, 1+3+2+3)
	}
	for _, b := range [][]byte{nil, {0x32}, {0x32, 5, 0}, {0x32, 5, 0, 3, 'a', 'b', 'c', 0}, {0x32, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}, {0x40, 2, 0, 1}} {
		if off := PublishIDOffset(b); off != -1 {
			t.Errorf("PublishIDOffset(% x) = %d, want -1", b, off)
		}
	}
}
