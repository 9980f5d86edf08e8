package packets

import (
	"io"
)

// Source is the buffered byte stream a Reader decodes from. *bufio.Reader
// is one; the broker supplies its own, which holds no buffer while the
// connection is idle.
type Source interface {
	io.Reader
	io.ByteReader
	// Peek returns the next n bytes without consuming them; n is at most
	// Size().
	Peek(n int) ([]byte, error)
	// Discard skips the next n bytes.
	Discard(n int) (int, error)
	// Size is the largest n Peek accepts.
	Size() int
}

// Reader decodes packets from a stream. It is not safe for concurrent use.
//
// A decoded PUBLISH owns exactly one allocation, a copy of the packet body:
// its Topic, Payload and string and binary properties point into it. Other
// packets are decoded from the Source's buffer (or, when they do not fit in
// it, from a body read for that packet alone) and copy each string and
// byte field they keep, so that a long-lived field (a client identifier, a
// topic filter) does not keep a large body alive. No decoded packet shares
// memory with the Reader, so every one outlives the next call to
// ReadPacket.
type Reader struct {
	br      Source
	version byte
	maxSize uint32
}

// NewReader returns a Reader decoding from r, rejecting packets whose total
// size (fixed header and remaining length) exceeds maxSize; 0 means the
// protocol maximum.
func NewReader(r Source, maxSize uint32) *Reader {
	return &Reader{br: r, maxSize: maxSize}
}

// SetVersion sets the protocol version of the connection, once its CONNECT
// is decoded. Until then it is 0, and packets other than CONNECT are decoded
// with the rules of 3.1.1.
func (r *Reader) SetVersion(v byte) { r.version = v }

// Version returns the protocol version set with SetVersion.
func (r *Reader) Version() byte { return r.version }

// SetMaxSize sets the maximum total packet size (fixed header plus remaining
// length); 0 means the protocol maximum.
func (r *Reader) SetMaxSize(n uint32) { r.maxSize = n }

// ReadPacket resets p and decodes the next packet into it.
//
// p.ProtocolVersion is set to the Reader's version, except for CONNECT where
// it is the protocol level read from the packet, set even when the level is
// unsupported (the error is then an *Error with code
// UnsupportedProtocolVersion) or a later part of the CONNECT is invalid, so
// the caller can answer with a CONNACK of the right version. p.Type is set
// as soon as the first byte is read.
//
// Errors of the underlying reader are returned as they are, except that an
// io.EOF after the first byte of a packet becomes io.ErrUnexpectedEOF. Any
// violation of the protocol is an *Error carrying the reason code to answer
// with; a packet larger than the maximum size is rejected with code
// PacketTooLarge before its body is read (a CONNECT's p.ProtocolVersion is
// then the level it announces, if the bytes after its fixed header show it).
//
// A body is read as it arrives: one larger than a few KiB grows as its
// bytes come in, so a client that declares a large packet and sends little
// of it makes the Reader hold about what it sent.
func (r *Reader) ReadPacket(p *Packet) error {
	p.Reset()
	first, err := r.br.ReadByte()
	if err != nil {
		return err
	}
	p.Type = Type(first >> 4)
	if err := checkFirstByte(first, r.version); err != nil {
		return err
	}
	rem, n, err := r.readRemaining()
	if err != nil {
		return err
	}
	if err := checkSize(n, rem, r.maxSize); err != nil {
		if p.Type == Connect {
			p.ProtocolVersion = r.peekConnectVersion()
		}
		return err
	}
	size := int(rem)
	switch {
	case p.Type == Publish || size > r.br.Size():
		// The packet gets a body of its own. A decoded PUBLISH points into
		// it; any other packet copies what it keeps, so that a filter or a
		// client identifier does not keep a large body alive.
		body, err := readBody(r.br, size)
		if err != nil {
			return err
		}
		return decodePacket(p, first, body, r.version, p.Type == Publish)
	case size == 0:
		return decodePacket(p, first, nil, r.version, false)
	default:
		// Decode in place from the Source's buffer, copying what is kept.
		body, err := r.br.Peek(size)
		if err != nil {
			return unexpected(err)
		}
		err = decodePacket(p, first, body, r.version, false)
		_, _ = r.br.Discard(size) // cannot fail: Peek returned size bytes
		return err
	}
}

// bodyChunk is how much of a body is allocated before its bytes arrive. A
// larger body grows, doubling, as its bytes come in: a client that
// declares a large packet and sends nothing more makes the broker hold
// bodyChunk bytes, not the size it declared. It is the connection
// reader's buffer size: each read of a growing body asks for at least that
// much, which the reader serves straight from the connection, without
// reading ahead into the next packet.
const bodyChunk = 4096

// growFactor is how much a growing body grows at each step.
const growFactor = 2

// bodySource is what readBody reads from: a Source's Read and Peek.
type bodySource interface {
	io.Reader
	Peek(n int) ([]byte, error)
}

// arrivedSource is a Source that tells how many bytes have arrived and can
// be read without waiting: what it has buffered and what waits in the
// socket (the broker's connection reader asks the kernel).
type arrivedSource interface {
	Arrived() int
}

// readBody reads a body of size bytes from src. Up to bodyChunk bytes it
// is allocated at once. A larger one grows as its bytes arrive, to hold
// at once what has arrived (when src tells, see arrivedSource), else
// doubling: it never holds more than growFactor times what has arrived,
// and 2*bodyChunk, and ends with a capacity of exactly size. When no byte
// is waiting it waits for one before it allocates (Peek(1), which a Source
// serves without a buffer of its own while it is idle), so that a client
// that declared a large packet and went silent makes the broker hold
// nothing for it yet.
func readBody(src bodySource, size int) ([]byte, error) {
	if size <= bodyChunk {
		body := make([]byte, size)
		if _, err := io.ReadFull(src, body); err != nil {
			return nil, unexpected(err)
		}
		return body, nil
	}
	as, tells := src.(arrivedSource)
	drained := true // for a Source that does not tell: the last read came up short
	if bs, ok := src.(interface{ Buffered() int }); ok && bs.Buffered() > 0 {
		drained = false
	}
	var body []byte
	for len(body) < size {
		if room := cap(body) - len(body); room < bodyChunk && cap(body) < size {
			ready := 0
			if tells {
				ready = as.Arrived()
			}
			if (tells && ready == 0) || (!tells && drained) {
				if _, err := src.Peek(1); err != nil {
					return nil, unexpected(err)
				}
				if tells {
					ready = as.Arrived()
				}
			}
			n := min(size, max(growFactor*cap(body), len(body)+bodyChunk, len(body)+ready))
			if size-n < bodyChunk {
				n = size // no short read at the end, which the Source would serve through its buffer, reading ahead
			}
			grown := make([]byte, len(body), n)
			copy(grown, body)
			body = grown
		}
		room := cap(body) - len(body)
		n, err := src.Read(body[len(body):cap(body)])
		body = body[:len(body)+n]
		if err != nil && len(body) < size {
			return nil, unexpected(err)
		}
		drained = n < room
	}
	return body, nil
}

// peekConnectVersion returns the protocol level of a CONNECT refused for
// its size, so that an MQTT 5 client can be told why (CONNACK 0x95): it
// peeks at the protocol name and level, which follow the fixed header,
// when they have arrived with it (a Source with a Buffered method, as
// *bufio.Reader, tells). It returns 0 when they have not, or are not
// MQTT's.
func (r *Reader) peekConnectVersion() byte {
	const n = 7 // 00 04 'M' 'Q' 'T' 'T' level
	if bs, ok := r.br.(interface{ Buffered() int }); !ok || bs.Buffered() < n {
		return 0 // not arrived: do not wait for a body that is refused
	}
	b, err := r.br.Peek(n)
	if err != nil || string(b[:6]) != "\x00\x04MQTT" {
		return 0
	}
	return b[6] &^ bridgeBit
}

// readRemaining reads the remaining length, a variable byte integer of at
// most four bytes, and returns it with its length in bytes.
func (r *Reader) readRemaining() (uint32, int, error) {
	var v uint32
	for i := 0; i < 4; i++ {
		c, err := r.br.ReadByte()
		if err != nil {
			return 0, 0, unexpected(err)
		}
		v |= uint32(c&0x7F) << (7 * i)
		if c < 0x80 {
			return v, i + 1, nil
		}
	}
	return 0, 0, errVarintTooLong("remaining length")
}

// unexpected turns an io.EOF inside a packet into io.ErrUnexpectedEOF.
func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// checkSize rejects a packet of remaining length rem, whose length takes n
// bytes, when its total size exceeds maxSize (0: no limit).
func checkSize(n int, rem uint32, maxSize uint32) error {
	if maxSize == 0 {
		return nil
	}
	if total := uint64(1+n) + uint64(rem); total > uint64(maxSize) {
		return Errorf(PacketTooLarge, "packet of %d bytes exceeds the maximum packet size %d", total, maxSize)
	}
	return nil
}

// DecodeBytes decodes one packet from the start of b, for a connection of
// protocol version version (see Reader.SetVersion) and maximum packet size
// maxSize (0: no limit). It returns the number of bytes the packet took, or
// 0 with an error. A truncated b (including an empty one) gives
// io.ErrUnexpectedEOF. The packet does not share memory with b: a PUBLISH
// body is copied, as ReadPacket does.
func DecodeBytes(b []byte, version byte, maxSize uint32, p *Packet) (n int, err error) {
	p.Reset()
	if len(b) == 0 {
		return 0, io.ErrUnexpectedEOF
	}
	first := b[0]
	p.Type = Type(first >> 4)
	if err := checkFirstByte(first, version); err != nil {
		return 0, err
	}
	rem, vn, err := decodeVarint(b[1:], "remaining length")
	if err != nil {
		return 0, err
	}
	if err := checkSize(vn, rem, maxSize); err != nil {
		return 0, err
	}
	hdr := 1 + vn
	if uint64(len(b)-hdr) < uint64(rem) {
		return 0, io.ErrUnexpectedEOF
	}
	end := hdr + int(rem)
	body := b[hdr:end:end]
	alias := false
	if p.Type == Publish {
		body = append(make([]byte, 0, len(body)), body...)
		alias = true
	}
	if err := decodePacket(p, first, body, version, alias); err != nil {
		return 0, err
	}
	return end, nil
}
