package packets

import (
	"errors"
	"io"
	"unsafe"
)

// decoder walks the body of one packet. With alias set, strings and byte
// slices it returns point into b (the PUBLISH body, or a body allocated for
// this packet alone); otherwise they are copies, because b is the Reader's
// buffer and is reused by the next packet.
type decoder struct {
	b     []byte
	i     int
	alias bool
}

// left returns the number of unread bytes.
func (d *decoder) left() int { return len(d.b) - d.i }

// rest returns the unread bytes and consumes them.
func (d *decoder) rest() []byte {
	r := d.b[d.i:len(d.b):len(d.b)]
	d.i = len(d.b)
	return r
}

func truncated(what string) error {
	return Errorf(MalformedPacket, "%s truncated", what)
}

// u8 reads one byte.
func (d *decoder) u8(what string) (byte, error) {
	if d.i >= len(d.b) {
		return 0, truncated(what)
	}
	c := d.b[d.i]
	d.i++
	return c, nil
}

// u16 reads a big-endian two-byte integer.
func (d *decoder) u16(what string) (uint16, error) {
	if d.left() < 2 {
		return 0, truncated(what)
	}
	v := uint16(d.b[d.i])<<8 | uint16(d.b[d.i+1])
	d.i += 2
	return v, nil
}

// u32 reads a big-endian four-byte integer.
func (d *decoder) u32(what string) (uint32, error) {
	if d.left() < 4 {
		return 0, truncated(what)
	}
	b := d.b[d.i : d.i+4]
	d.i += 4
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]), nil
}

// varint reads a variable byte integer.
func (d *decoder) varint(what string) (uint32, error) {
	v, n, err := decodeVarint(d.b[d.i:], what)
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, truncated(what)
		}
		return 0, err
	}
	d.i += n
	return v, nil
}

// field reads a two-byte length and returns a view of that many bytes.
func (d *decoder) field(what string) ([]byte, error) {
	n, err := d.u16(what)
	if err != nil {
		return nil, err
	}
	if d.left() < int(n) {
		return nil, truncated(what)
	}
	f := d.b[d.i : d.i+int(n) : d.i+int(n)]
	d.i += int(n)
	return f, nil
}

// str reads a UTF-8 encoded string and checks it [MQTT-1.5.4-1/2].
func (d *decoder) str(what string) (string, error) {
	f, err := d.field(what)
	if err != nil {
		return "", err
	}
	if err := checkUTF8(f, what); err != nil {
		return "", err
	}
	return d.toString(f), nil
}

// bin reads binary data; empty data is returned as nil.
func (d *decoder) bin(what string) ([]byte, error) {
	f, err := d.field(what)
	if err != nil {
		return nil, err
	}
	return d.toBytes(f), nil
}

// toString returns f as a string: a view when aliasing, else a copy.
func (d *decoder) toString(f []byte) string {
	if len(f) == 0 {
		return ""
	}
	if d.alias {
		return unsafe.String(unsafe.SliceData(f), len(f))
	}
	return string(f)
}

// toBytes returns f, or a copy of it when not aliasing; nil when empty.
func (d *decoder) toBytes(f []byte) []byte {
	if len(f) == 0 {
		return nil
	}
	if d.alias {
		return f[:len(f):len(f)]
	}
	return append([]byte(nil), f...)
}
