package packets

import "io"

// MaxRemainingLength is the largest value a variable byte integer can carry
// (four bytes), and so the largest remaining length of a packet.
const MaxRemainingLength = 268435455

// varintLen returns the number of bytes v takes as a variable byte integer.
// v must not exceed MaxRemainingLength.
func varintLen(v uint32) int {
	switch {
	case v < 1<<7:
		return 1
	case v < 1<<14:
		return 2
	case v < 1<<21:
		return 3
	default:
		return 4
	}
}

// appendVarint appends v as a variable byte integer (MQTT 5.0 section
// 1.5.5). v must not exceed MaxRemainingLength.
func appendVarint(b []byte, v uint32) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// decodeVarint decodes a variable byte integer at the start of b. It returns
// the value and the number of bytes it took; io.ErrUnexpectedEOF when b ends
// inside the integer, and a malformed-packet *Error when the integer runs
// past four bytes. what names the field for the error message.
func decodeVarint(b []byte, what string) (uint32, int, error) {
	var v uint32
	for i := 0; i < 4; i++ {
		if i >= len(b) {
			return 0, 0, io.ErrUnexpectedEOF
		}
		c := b[i]
		v |= uint32(c&0x7F) << (7 * i)
		if c < 0x80 {
			return v, i + 1, nil
		}
	}
	return 0, 0, errVarintTooLong(what)
}

func errVarintTooLong(what string) error {
	return Errorf(MalformedPacket, "%s is a variable byte integer longer than 4 bytes", what)
}
