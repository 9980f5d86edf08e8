package packets

import (
	"bytes"
	"unicode/utf8"
)

// maxStringLen is the longest UTF-8 string or binary field: its length is a
// two-byte integer (MQTT 5.0 sections 1.5.4 and 1.5.6).
const maxStringLen = 65535

// utf8Problem says why b is not an MQTT UTF-8 encoded string, or returns
// "". The bytes must be well-formed UTF-8 without surrogates [MQTT-1.5.4-1]
// and must not contain U+0000 [MQTT-1.5.4-2]; both make a packet malformed.
func utf8Problem(b []byte) string {
	if bytes.IndexByte(b, 0) >= 0 {
		return "contains U+0000 [MQTT-1.5.4-2]"
	}
	// utf8.Valid rejects encoded surrogates (U+D800..U+DFFF) and overlong
	// forms, as the specification requires.
	if !utf8.Valid(b) {
		return "is not valid UTF-8 [MQTT-1.5.4-1]"
	}
	return ""
}

// checkUTF8 returns a malformed-packet error naming what when b is not an
// MQTT UTF-8 encoded string.
func checkUTF8(b []byte, what string) error {
	if pr := utf8Problem(b); pr != "" {
		return Errorf(MalformedPacket, "%s %s", what, pr)
	}
	return nil
}

// wildcardIn returns the first wildcard character ('+' or '#') in a topic
// name, or 0. Topic names must not contain wildcards [MQTT-4.7.1-1].
func wildcardIn(b []byte) byte {
	plus := bytes.IndexByte(b, '+')
	hash := bytes.IndexByte(b, '#')
	switch {
	case plus < 0 && hash < 0:
		return 0
	case hash < 0 || (plus >= 0 && plus < hash):
		return '+'
	default:
		return '#'
	}
}

// tooLong is the error for a string or binary field of n bytes that does not
// fit its two-byte length.
func tooLong(what string, n int) error {
	return Errorf(MalformedPacket, "%s is %d bytes, longer than %d", what, n, maxStringLen)
}

// appendString appends a two-byte length and s. The length must have been
// checked against maxStringLen.
func appendString(b []byte, s string) []byte {
	b = append(b, byte(len(s)>>8), byte(len(s)))
	return append(b, s...)
}

// appendBinary appends a two-byte length and d. The length must have been
// checked against maxStringLen.
func appendBinary(b []byte, d []byte) []byte {
	b = append(b, byte(len(d)>>8), byte(len(d)))
	return append(b, d...)
}

// appendUint16 appends v big-endian.
func appendUint16(b []byte, v uint16) []byte {
	return append(b, byte(v>>8), byte(v))
}

// appendUint32 appends v big-endian.
func appendUint32(b []byte, v uint32) []byte {
	return append(b, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}
