package packets

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"

	"github.com/valyala/bytebufferpool"
)

// Raw packet builders for hand-written wire bytes.

// raw builds a packet from its first byte and body parts, computing the
// remaining length.
func raw(first byte, body ...[]byte) []byte {
	b := []byte{first}
	var n int
	for _, p := range body {
		n += len(p)
	}
	b = appendVarint(b, uint32(n))
	for _, p := range body {
		b = append(b, p...)
	}
	return b
}

// bs returns its arguments as a byte slice.
func bs(b ...byte) []byte { return b }

// str returns s as a length-prefixed field.
func str(s string) []byte { return appendString(nil, s) }

// u16 returns v big-endian.
func u16(v uint16) []byte { return appendUint16(nil, v) }

// u32 returns v big-endian.
func u32(v uint32) []byte { return appendUint32(nil, v) }

// props returns a property length followed by the concatenated properties.
func props(ps ...[]byte) []byte {
	var body []byte
	for _, p := range ps {
		body = append(body, p...)
	}
	return append(appendVarint(nil, uint32(len(body))), body...)
}

// prop returns one property: identifier and value bytes.
func prop(id PropID, value ...[]byte) []byte {
	b := []byte{byte(id)}
	for _, v := range value {
		b = append(b, v...)
	}
	return b
}

// cat concatenates byte slices.
func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// encode encodes p, failing the test on error or on a Size mismatch.
func encode(t testing.TB, p *Packet) []byte {
	t.Helper()
	var buf bytebufferpool.ByteBuffer
	if err := p.Encode(&buf); err != nil {
		t.Fatalf("Encode(%s v%d): %v", p.Type, p.ProtocolVersion, err)
	}
	if got := p.Size(); got != len(buf.B) {
		t.Fatalf("Size() = %d, Encode appended %d bytes", got, len(buf.B))
	}
	return buf.B
}

// readOne decodes data with a Reader over a bufio.Reader of the given size.
func readOne(data []byte, version byte, maxSize uint32, bufSize int, p *Packet) error {
	r := NewReader(bufio.NewReaderSize(bytes.NewReader(data), bufSize), maxSize)
	r.SetVersion(version)
	return r.ReadPacket(p)
}

// loopReader serves data over and over, for benchmarks and allocation
// tests that read the same packet repeatedly.
type loopReader struct {
	data []byte
	off  int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], l.data[l.off:])
		n += c
		l.off = (l.off + c) % len(l.data)
	}
	return n, nil
}

// headerOnlyReader serves hdr, then fails the test on any further read:
// it proves a packet is rejected before its body is read.
type headerOnlyReader struct {
	t    testing.TB
	hdr  []byte
	done bool
}

func (h *headerOnlyReader) Read(p []byte) (int, error) {
	if h.done {
		h.t.Errorf("read past the fixed header")
		return 0, io.ErrUnexpectedEOF
	}
	h.done = true
	return copy(p, h.hdr), nil
}

// codeOf returns the reason code of an *Error, or fails the test.
func wantCode(t testing.TB, err error, code ReasonCode) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *Error, want code %s", err, err, code)
	}
	if e.Code != code {
		t.Fatalf("error %q has code %s, want %s", e.Error(), e.Code, code)
	}
	if e.Msg == "" {
		t.Fatalf("error with code %s has no message", e.Code)
	}
}

// bytebufferpoolWith returns a buffer already holding n bytes, to check
// that Encode appends.
func bytebufferpoolWith(n int) *bytebufferpool.ByteBuffer {
	return &bytebufferpool.ByteBuffer{B: make([]byte, n, n+64)}
}

// equalPackets reports whether two packets are deeply equal.
func equalPackets(a, b *Packet) bool { return reflect.DeepEqual(a, b) }
