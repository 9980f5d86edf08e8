package packets

import (
	"bufio"
	"fmt"
	"testing"

	"github.com/valyala/bytebufferpool"
)

// benchPublish returns a PUBLISH with a 64-byte payload.
func benchPublish(v, qos byte) Packet {
	p := Packet{Type: Publish, ProtocolVersion: v, QoS: qos, Topic: "sensors/building-1/floor-2/temperature",
		Payload: make([]byte, 64)}
	if qos > 0 {
		p.PacketID = 42
	}
	if v == Version5 {
		p.Properties.MessageExpiry = 3600
		p.Properties.Set(PropMessageExpiry)
		p.Properties.ContentType = "application/json"
		p.Properties.Set(PropContentType)
	}
	return p
}

// benchRead decodes data repeatedly from one Reader.
func benchRead(b *testing.B, data []byte, version byte) {
	r := NewReader(bufio.NewReaderSize(&loopReader{data: data}, 4096), 0)
	r.SetVersion(version)
	var p Packet
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := r.ReadPacket(&p); err != nil {
			b.Fatal(err)
		}
	}
}

var benchVersions = []struct {
	name string
	v    byte
}{{"v311", Version311}, {"v5", Version5}}

func BenchmarkDecodePublish(b *testing.B) {
	for _, bv := range benchVersions {
		for _, qos := range []byte{0, 1} {
			p := benchPublish(bv.v, qos)
			b.Run(bv.name+"/qos"+string('0'+qos), func(b *testing.B) {
				benchRead(b, encode(b, &p), bv.v)
			})
		}
	}
}

func BenchmarkEncodePublish(b *testing.B) {
	for _, bv := range benchVersions {
		for _, qos := range []byte{0, 1} {
			p := benchPublish(bv.v, qos)
			b.Run(bv.name+"/qos"+string('0'+qos), func(b *testing.B) {
				buf := &bytebufferpool.ByteBuffer{B: make([]byte, 0, 1024)}
				b.ReportAllocs()
				b.SetBytes(int64(p.Size()))
				for i := 0; i < b.N; i++ {
					buf.Reset()
					if err := p.Encode(buf); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkDecodePuback(b *testing.B) {
	for _, bv := range benchVersions {
		p := Packet{Type: Puback, ProtocolVersion: bv.v, PacketID: 42}
		b.Run(bv.name, func(b *testing.B) { benchRead(b, encode(b, &p), bv.v) })
	}
	p := Packet{Type: Puback, ProtocolVersion: Version5, PacketID: 42, ReasonCode: NoMatchingSubscribers}
	b.Run("v5/reason", func(b *testing.B) { benchRead(b, encode(b, &p), Version5) })
}

func BenchmarkEncodeConnack(b *testing.B) {
	v5 := Packet{Type: Connack, ProtocolVersion: Version5}
	v5.Properties.AssignedClientID = "auto-0123456789abcdef"
	v5.Properties.Set(PropAssignedClientID)
	v5.Properties.MaximumPacketSize = 1 << 20
	v5.Properties.Set(PropMaximumPacketSize)
	v5.Properties.TopicAliasMaximum = 16
	v5.Properties.Set(PropTopicAliasMaximum)
	v5.Properties.ReceiveMaximum = 1024
	v5.Properties.Set(PropReceiveMaximum)
	cases := []struct {
		name string
		p    Packet
	}{
		{"v311", Packet{Type: Connack, ProtocolVersion: Version311, SessionPresent: true}},
		{"v5", v5},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			buf := &bytebufferpool.ByteBuffer{B: make([]byte, 0, 256)}
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				buf.Reset()
				if err := c.p.Encode(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecodeLargePublish reads PUBLISH packets larger than 4 KiB,
// whose bodies are allocated as they arrive: "arrived" from a Source that
// tells that all of it is there (as the broker's connection reader does
// when the socket holds it), one allocation; "unknown" from one that does
// not tell (bufio), which grows the body, doubling.
//
//	go test -run '^$' -bench DecodeLargePublish -benchmem ./core/packets/
func BenchmarkDecodeLargePublish(b *testing.B) {
	for _, size := range []int{16 << 10, 256 << 10} {
		p := benchPublish(Version5, 1)
		p.Payload = make([]byte, size)
		data := encode(b, &p)
		b.Run(fmt.Sprintf("arrived/%dKiB", size>>10), func(b *testing.B) {
			r := NewReader(allArrived{bufio.NewReaderSize(&loopReader{data: data}, 4096)}, 0)
			benchReader(b, r, len(data))
		})
		b.Run(fmt.Sprintf("unknown/%dKiB", size>>10), func(b *testing.B) {
			benchRead(b, data, Version5)
		})
	}
}

// allArrived is a Source whose bytes have all arrived.
type allArrived struct{ *bufio.Reader }

func (allArrived) Arrived() int { return 1 << 30 }

// benchReader decodes from r repeatedly, packets of n bytes.
func benchReader(b *testing.B, r *Reader, n int) {
	r.SetVersion(Version5)
	var p Packet
	b.ReportAllocs()
	b.SetBytes(int64(n))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := r.ReadPacket(&p); err != nil {
			b.Fatal(err)
		}
	}
}
