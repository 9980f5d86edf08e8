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
//	byte     flags: flagOrdinary, for the node's ordinary subscriptions;
//	         flagTargeted, for some of them only
//	uvarint  number of share groups it is for, then each as
//	         uvarint length, group name, uvarint length, filter
//	         (with flagTargeted: uvarint number of clients, then each as
//	         uvarint length, client ID)
//	uvarint  length of the origin (the publisher's client ID), then it
//	...      the PUBLISH packet
//
// The instance and sequence let a node that receives one message through
// several of its subscriptions deliver it once (window); a QoS 1/2
// message's copies for several nodes share them, so that a node can tell
// one it routed from a copy another node passes on (moves.go).
const envelopeV1 = 1

// The flags.
const (
	// flagOrdinary marks a message for the receiving node's ordinary
	// (non-shared) subscriptions.
	flagOrdinary = 1
	// flagTargeted limits those to the sessions of the clients the
	// envelope names: a message a node passes on to the node a session
	// moved to (moves.go).
	flagTargeted = 2
)

// errEnvelope is returned for data that is not an envelope.
var errEnvelope = errors.New("cluster: not a vanemq message envelope")

// appendEnvelopeHeader appends the header of an envelope; the PUBLISH
// packet follows it.
func appendEnvelopeHeader(b []byte, instance, seq uint64, ordinary bool, groups []interestKey, origin string) []byte {
	return appendTargetedHeader(b, instance, seq, ordinary, groups, nil, origin)
}

// appendTargetedHeader is appendEnvelopeHeader for a message to the
// ordinary subscriptions of the clients targets only (none: all).
func appendTargetedHeader(b []byte, instance, seq uint64, ordinary bool, groups []interestKey, targets []string, origin string) []byte {
	b = append(b, envelopeV1)
	b = binary.BigEndian.AppendUint64(b, instance)
	b = binary.AppendUvarint(b, seq)
	flags := byte(0)
	if ordinary {
		flags |= flagOrdinary
	}
	if len(targets) > 0 {
		flags |= flagTargeted
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, uint64(len(groups)))
	for _, g := range groups {
		b = appendString(b, g.group)
		b = appendString(b, g.filter)
	}
	if len(targets) > 0 {
		b = binary.AppendUvarint(b, uint64(len(targets)))
		for _, id := range targets {
			b = appendString(b, id)
		}
	}
	return appendString(b, origin)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// envelope is a decoded envelope; publish points into the data.
type envelope struct {
	instance, seq uint64
	ordinary      bool
	groups        []interestKey
	targets       []string // with flagTargeted: the only clients it is for
	origin        string
	publish       []byte
}

// maxGroups bounds the share groups one envelope names.
const maxGroups = 1 << 16

// decodeEnvelope decodes data.
func decodeEnvelope(data []byte) (envelope, error) {
	var e envelope
	if len(data) < 9 || data[0] != envelopeV1 {
		return e, errEnvelope
	}
	e.instance = binary.BigEndian.Uint64(data[1:9])
	rest := data[9:]
	seq, n := binary.Uvarint(rest)
	if n <= 0 || len(rest) == n {
		return e, fmt.Errorf("%w: bad sequence number", errEnvelope)
	}
	e.seq, rest = seq, rest[n:]
	flags := rest[0]
	e.ordinary, rest = flags&flagOrdinary != 0, rest[1:]
	ng, n := binary.Uvarint(rest)
	if n <= 0 || ng > maxGroups {
		return e, fmt.Errorf("%w: bad share group count", errEnvelope)
	}
	rest = rest[n:]
	var ok bool
	for range ng {
		var g interestKey
		if g.group, rest, ok = cutString(rest); !ok {
			return e, fmt.Errorf("%w: bad share group", errEnvelope)
		}
		if g.filter, rest, ok = cutString(rest); !ok {
			return e, fmt.Errorf("%w: bad share group filter", errEnvelope)
		}
		e.groups = append(e.groups, g)
	}
	if flags&flagTargeted != 0 {
		nt, n := binary.Uvarint(rest)
		if n <= 0 || nt == 0 || nt > maxGroups {
			return e, fmt.Errorf("%w: bad client count", errEnvelope)
		}
		rest = rest[n:]
		for range nt {
			var id string
			if id, rest, ok = cutString(rest); !ok {
				return e, fmt.Errorf("%w: bad client", errEnvelope)
			}
			e.targets = append(e.targets, id)
		}
	}
	if e.origin, rest, ok = cutString(rest); !ok {
		return e, fmt.Errorf("%w: bad origin", errEnvelope)
	}
	e.publish = rest
	return e, nil
}

// cutString cuts a length-prefixed string (appendString) off b.
func cutString(b []byte) (string, []byte, bool) {
	l, n := binary.Uvarint(b)
	if n <= 0 || l > uint64(len(b)-n) {
		return "", b, false
	}
	b = b[n:]
	return string(b[:l]), b[l:], true
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
