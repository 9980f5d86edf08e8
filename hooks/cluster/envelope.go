package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// A message between nodes is an envelope around the MQTT 5 PUBLISH packet
// core.Forwarded.Encode makes:
//
//	byte     format version (envelopeV1)
//	8 bytes  the sending process's instance, big-endian
//	uvarint  the message's sequence number from that instance
//	uvarint  length of the origin (the publisher's client ID), then it
//	...      the PUBLISH packet
//
// The instance and sequence let a node that receives one message through
// several of its subscriptions deliver it once (window).
const envelopeV1 = 1

// errEnvelope is returned for data that is not an envelope.
var errEnvelope = errors.New("cluster: not a vanemq message envelope")

// appendEnvelopeHeader appends the header of an envelope; the PUBLISH
// packet follows it.
func appendEnvelopeHeader(b []byte, instance, seq uint64, origin string) []byte {
	b = append(b, envelopeV1)
	b = binary.BigEndian.AppendUint64(b, instance)
	b = binary.AppendUvarint(b, seq)
	b = binary.AppendUvarint(b, uint64(len(origin)))
	return append(b, origin...)
}

// envelope is a decoded envelope; publish and origin point into the data.
type envelope struct {
	instance, seq uint64
	origin        string
	publish       []byte
}

// decodeEnvelope decodes data.
func decodeEnvelope(data []byte) (envelope, error) {
	var e envelope
	if len(data) < 9 || data[0] != envelopeV1 {
		return e, errEnvelope
	}
	e.instance = binary.BigEndian.Uint64(data[1:9])
	rest := data[9:]
	seq, n := binary.Uvarint(rest)
	if n <= 0 {
		return e, fmt.Errorf("%w: bad sequence number", errEnvelope)
	}
	e.seq, rest = seq, rest[n:]
	ol, n := binary.Uvarint(rest)
	if n <= 0 || ol > uint64(len(rest)-n) {
		return e, fmt.Errorf("%w: bad origin", errEnvelope)
	}
	rest = rest[n:]
	e.origin, e.publish = string(rest[:ol]), rest[ol:]
	return e, nil
}

// windowSize is how many of the latest sequence numbers from one instance
// a window remembers.
const windowSize = 1024

// window remembers which of the latest sequence numbers of one sending
// instance were seen. NATS delivers one message to a node once for each of
// the node's subscriptions it matches, close together; the window lets
// the node route it once.
type window struct {
	high uint64 // the highest sequence number seen
	bits [windowSize / 64]uint64
}

// seen records seq and reports whether it was seen before. A number older
// than the window is taken as new: delivering it twice is better than
// never.
func (w *window) seen(seq uint64) bool {
	switch {
	case seq > w.high:
		if seq-w.high >= windowSize {
			clear(w.bits[:])
		} else {
			for s := w.high + 1; s <= seq; s++ {
				w.bits[(s/64)%uint64(len(w.bits))] &^= 1 << (s % 64)
			}
		}
		w.high = seq
	case w.high-seq >= windowSize:
		return false
	}
	i, bit := (seq/64)%uint64(len(w.bits)), uint64(1)<<(seq%64)
	if w.bits[i]&bit != 0 {
		return true
	}
	w.bits[i] |= bit
	return false
}
