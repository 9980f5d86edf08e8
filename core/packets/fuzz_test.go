package packets

import (
	"bufio"
	"bytes"
	"testing"

	"github.com/valyala/bytebufferpool"
)

// FuzzDecode decodes arbitrary bytes for each protocol version. Decoding
// must never panic; DecodeBytes and Reader must agree; and a packet that
// decodes must encode (Size matching) to bytes that decode to an equal
// packet.
func FuzzDecode(f *testing.F) {
	for _, tc := range roundTripCases() {
		p := tc.p
		f.Add(encode(f, &p))
	}
	for _, tc := range decodeErrCases() {
		f.Add(tc.data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, v := range []byte{0, Version31, Version311, Version5} {
			var p Packet
			n, err := DecodeBytes(data, v, 0, &p)

			var rp Packet
			r := NewReader(bufio.NewReaderSize(bytes.NewReader(data), 64), 0)
			r.SetVersion(v)
			rerr := r.ReadPacket(&rp)
			if (err == nil) != (rerr == nil) || CodeOf(err) != CodeOf(rerr) {
				t.Fatalf("v%d: DecodeBytes: %v; ReadPacket: %v", v, err, rerr)
			}
			if err != nil {
				continue
			}
			if n <= 0 || n > len(data) {
				t.Fatalf("v%d: DecodeBytes took %d of %d bytes", v, n, len(data))
			}
			if !equalPackets(&p, &rp) {
				t.Fatalf("v%d: DecodeBytes and ReadPacket differ\n%+v\n%+v", v, p, rp)
			}

			var buf bytebufferpool.ByteBuffer
			if err := p.Encode(&buf); err != nil {
				t.Fatalf("v%d: decoded %+v but cannot encode it: %v", v, p, err)
			}
			if p.Size() != len(buf.B) {
				t.Fatalf("v%d: Size() = %d, encoded %d bytes", v, p.Size(), len(buf.B))
			}
			var q Packet
			n2, err := DecodeBytes(buf.B, v, 0, &q)
			if err != nil {
				t.Fatalf("v%d: re-decoding % x: %v\npacket %+v", v, buf.B, err, p)
			}
			if n2 != len(buf.B) {
				t.Fatalf("v%d: re-decoding took %d of %d bytes", v, n2, len(buf.B))
			}
			if !equalPackets(&p, &q) {
				t.Fatalf("v%d: round trip changed the packet\nfirst:  %+v\nsecond: %+v", v, p, q)
			}
		}
	})
}
