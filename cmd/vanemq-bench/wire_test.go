package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/valyala/bytebufferpool"

	"github.com/vanemq/vanemq/core/packets"
)

// encodePacket encodes p with the codec.
func encodePacket(t *testing.T, p *packets.Packet) []byte {
	t.Helper()
	buf := bytebufferpool.Get()
	defer bytebufferpool.Put(buf)
	if err := p.Encode(buf); err != nil {
		t.Fatalf("encode %s: %v", p.Type, err)
	}
	return append([]byte(nil), buf.B...)
}

// TestPublishTemplate checks that patched copies of a template decode, with
// the codec, to PUBLISH packets with the given identifier and timestamp.
func TestPublishTemplate(t *testing.T) {
	cases := []struct {
		version byte
		qos     byte
		size    int
	}{
		{4, 0, 8}, {4, 1, 64}, {4, 2, 1024}, {5, 0, 64}, {5, 1, 8}, {5, 2, 300},
	}
	for _, tc := range cases {
		tmpl, err := newPublishTemplate("bench/t/1", tc.qos, tc.version, tc.size)
		if err != nil {
			t.Fatalf("v%d qos %d: %v", tc.version, tc.qos, err)
		}
		var batch []byte
		for i := range 3 {
			batch = tmpl.appendTo(batch, uint16(100+i), int64(1e9+i))
		}
		for i := range 3 {
			var p packets.Packet
			n, err := packets.DecodeBytes(batch, tc.version, 0, &p)
			if err != nil {
				t.Fatalf("v%d qos %d message %d: %v", tc.version, tc.qos, i, err)
			}
			batch = batch[n:]
			wantID := uint16(0)
			if tc.qos > 0 {
				wantID = uint16(100 + i)
			}
			if p.Type != packets.Publish || p.QoS != tc.qos || p.PacketID != wantID || p.Topic != "bench/t/1" || len(p.Payload) != tc.size {
				t.Errorf("v%d qos %d message %d: %s qos %d id %d topic %q payload %d bytes",
					tc.version, tc.qos, i, p.Type, p.QoS, p.PacketID, p.Topic, len(p.Payload))
				continue
			}
			if ts := int64(binary.BigEndian.Uint64(p.Payload)); ts != int64(1e9+i) {
				t.Errorf("v%d qos %d message %d: timestamp %d, want %d", tc.version, tc.qos, i, ts, int64(1e9+i))
			}
		}
	}
}

// TestPeekPublish checks the in-place PUBLISH reader against the codec, and
// that it leaves to the codec what it should.
func TestPeekPublish(t *testing.T) {
	withProps := packets.Packet{Type: packets.Publish, ProtocolVersion: 5, QoS: 1, PacketID: 7, Topic: "a/b", Payload: []byte("payload!")}
	withProps.Properties.TopicAlias = 3
	withProps.Properties.Set(packets.PropTopicAlias)
	withProps.Properties.UserProperties = []packets.UserProperty{{Key: "k", Value: "v"}}
	withProps.Properties.SubscriptionIDs = []uint32{300}
	cases := []struct {
		name   string
		p      packets.Packet
		bufLen int
		ok     bool
	}{
		{"v4 qos0", packets.Packet{Type: packets.Publish, Topic: "t", Payload: []byte("12345678")}, 64, true},
		{"v4 qos1", packets.Packet{Type: packets.Publish, QoS: 1, PacketID: 9, Topic: "t/x", Payload: []byte("12345678")}, 64, true},
		{"v4 qos2 empty payload", packets.Packet{Type: packets.Publish, QoS: 2, PacketID: 65535, Topic: "t"}, 64, true},
		{"v5 qos0", packets.Packet{Type: packets.Publish, ProtocolVersion: 5, Topic: "t", Payload: []byte("12345678")}, 64, true},
		{"v5 properties", withProps, 64, true},
		{"v4 large", packets.Packet{Type: packets.Publish, Topic: "t", Payload: make([]byte, 300)}, 512, true},
		{"larger than the buffer", packets.Packet{Type: packets.Publish, Topic: "t", Payload: make([]byte, 300)}, 64, false},
		{"puback", packets.Packet{Type: packets.Puback, PacketID: 1}, 64, false},
		{"pingresp", packets.Packet{Type: packets.Pingresp}, 64, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			enc := encodePacket(t, &tc.p)
			stream := append(append([]byte(nil), enc...), 0xC0, 0x00) // a PINGREQ after it
			br := bufio.NewReaderSize(bytes.NewReader(stream), tc.bufLen)
			v, ok := peekPublish(br, tc.p.ProtocolVersion == 5)
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v", ok, tc.ok)
			}
			if !ok {
				// Nothing was consumed: the codec reads the packet whole.
				rd := packets.NewReader(br, 0)
				rd.SetVersion(max(tc.p.ProtocolVersion, 4))
				var p packets.Packet
				if err := rd.ReadPacket(&p); err != nil || p.Type != tc.p.Type {
					t.Errorf("codec after peekPublish: %s, %v; want %s", p.Type, err, tc.p.Type)
				}
				return
			}
			var want packets.Packet
			if _, err := packets.DecodeBytes(enc, max(tc.p.ProtocolVersion, 4), 0, &want); err != nil {
				t.Fatalf("codec: %v", err)
			}
			if v.qos != want.QoS || v.id != want.PacketID || !bytes.Equal(v.payload, want.Payload) || v.size != len(enc) {
				t.Errorf("qos %d id %d payload %q size %d; codec: qos %d id %d payload %q size %d",
					v.qos, v.id, v.payload, v.size, want.QoS, want.PacketID, want.Payload, len(enc))
			}
			if _, err := br.Discard(v.size); err != nil {
				t.Fatalf("discard: %v", err)
			}
			if rest, _ := br.Peek(2); !bytes.Equal(rest, []byte{0xC0, 0x00}) {
				t.Errorf("after the packet: % x, want the PINGREQ", rest)
			}
		})
	}
}

// TestPeekPublishMalformed checks that framing the in-place reader cannot
// trust is left to the codec.
func TestPeekPublishMalformed(t *testing.T) {
	cases := []struct {
		name string
		b    []byte
	}{
		{"qos 3", []byte{0x36, 0x05, 0x00, 0x01, 't', 0x00, 0x01}},
		{"dup with qos 0", []byte{0x38, 0x03, 0x00, 0x01, 't'}},
		{"topic longer than the packet", []byte{0x30, 0x03, 0x00, 0x09, 't'}},
		{"packet identifier 0", []byte{0x32, 0x05, 0x00, 0x01, 't', 0x00, 0x00}},
		{"truncated identifier", []byte{0x32, 0x04, 0x00, 0x01, 't', 0x00}},
		{"remaining length of 5 bytes", []byte{0x30, 0x80, 0x80, 0x80, 0x80, 0x01}},
		{"truncated stream", []byte{0x30, 0x09, 0x00, 0x01, 't'}},
	}
	for _, tc := range cases {
		br := bufio.NewReaderSize(bytes.NewReader(tc.b), 64)
		if _, ok := peekPublish(br, false); ok {
			t.Errorf("%s: read in place, want it left to the codec", tc.name)
		}
	}
	// MQTT 5: a property length running past the packet.
	br := bufio.NewReaderSize(bytes.NewReader([]byte{0x30, 0x04, 0x00, 0x01, 't', 0x09}), 64)
	if _, ok := peekPublish(br, true); ok {
		t.Error("v5 property length past the packet: read in place")
	}
}

// TestPeekAck checks the in-place reader of short acknowledgements.
func TestPeekAck(t *testing.T) {
	withReason := packets.Packet{Type: packets.Puback, ProtocolVersion: 5, PacketID: 5, ReasonCode: packets.NoMatchingSubscribers}
	cases := []struct {
		name string
		p    packets.Packet
		ok   bool
	}{
		{"puback", packets.Packet{Type: packets.Puback, PacketID: 1}, true},
		{"pubrec", packets.Packet{Type: packets.Pubrec, PacketID: 300}, true},
		{"pubrel", packets.Packet{Type: packets.Pubrel, PacketID: 65535}, true},
		{"pubcomp v5", packets.Packet{Type: packets.Pubcomp, ProtocolVersion: 5, PacketID: 2}, true},
		{"puback v5 with a reason code", withReason, false},
		{"suback", packets.Packet{Type: packets.Suback, PacketID: 1, ReasonCodes: []packets.ReasonCode{0}}, false},
		{"pingresp", packets.Packet{Type: packets.Pingresp}, false},
	}
	for _, tc := range cases {
		enc := encodePacket(t, &tc.p)
		br := bufio.NewReader(bytes.NewReader(enc))
		typ, id, ok := peekAck(br)
		if ok != tc.ok {
			t.Errorf("%s: ok = %v, want %v", tc.name, ok, tc.ok)
			continue
		}
		if ok && (typ != tc.p.Type || id != tc.p.PacketID) {
			t.Errorf("%s: %s %d, want %s %d", tc.name, typ, id, tc.p.Type, tc.p.PacketID)
		}
	}
	for _, b := range [][]byte{{0x40, 0x02, 0x00, 0x00}, {0x62, 0x03, 0x00, 0x01}, {0x60, 0x02, 0x00, 0x01}} {
		if _, _, ok := peekAck(bufio.NewReader(bytes.NewReader(b))); ok {
			t.Errorf("% x: read in place, want it left to the codec", b)
		}
	}
}
