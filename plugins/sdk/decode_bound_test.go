package sdk

import (
	"bytes"
	"runtime"
	"testing"
)

// hostileBatches are batches shaped to make a decoder work or allocate far
// more than their size: deeply nested groups (skipped, never sent by the
// broker), many empty events, many events with a client each, one client
// with thousands of DNS names, many user properties. The fuzz corpus holds
// them too (testdata/fuzz/FuzzBatchDecoder).
func hostileBatches(scale int) map[string][]byte {
	ev := func(inner []byte) []byte { return append([]byte{0x0a, byte(len(inner))}, inner...) }
	nested := append(bytes.Repeat([]byte{0x0b}, 5000), bytes.Repeat([]byte{0x0c}, 5000)...)
	long := func(field byte, body []byte) []byte { // a length-delimited field with a two-byte length
		return append([]byte{field, byte(len(body)) | 0x80, byte(len(body) >> 7)}, body...)
	}
	return map[string][]byte{
		"nested groups": bytes.Repeat(nested, scale),
		"empty events":  bytes.Repeat([]byte{0x0a, 0x00}, 5000*scale),
		"clients":       bytes.Repeat(ev([]byte{0x12, 0x02, 0x0a, 0x00}), 2000*scale),
		"dns names": bytes.Repeat(long(0x0a, long(0x12, bytes.Repeat([]byte{0x42, 0x00}, 4000))), scale),
		"user properties": bytes.Repeat(long(0x0a, long(0x1a, long(0x32, bytes.Repeat([]byte{0x32, 0x00}, 3000)))), scale),
	}
}

// The decoder's work is bounded by its input's size: what it allocates
// grows in proportion to the bytes it is given (never by what they
// declare, and not faster than they grow), for every hostile shape.
func TestBatchDecoderBoundedByInput(t *testing.T) {
	perByte := func(b []byte) float64 {
		var d batchDecoder
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		n := 0
		if _, err := d.decode(b, func(*Event) { n++ }); err != nil {
			t.Fatalf("decode: %v", err)
		}
		runtime.ReadMemStats(&after)
		return float64(after.TotalAlloc-before.TotalAlloc) / float64(len(b))
	}
	small, large := hostileBatches(1), hostileBatches(4)
	for name, b := range small {
		one, four := perByte(b), perByte(large[name])
		t.Logf("%-16s %7d bytes: %.1f allocated bytes per input byte; ×4: %.1f", name, len(b), one, four)
		// An event is a few hundred bytes of structs; its smallest encoding
		// is two bytes.
		if one > 300 || four > 300 {
			t.Errorf("%s: %.0f and %.0f bytes allocated per input byte", name, one, four)
		}
		if four > 1.5*one+8 {
			t.Errorf("%s: allocation per input byte grows with the input (%.1f, then %.1f at 4×)", name, one, four)
		}
	}
}
