package storage

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strings"
)

// natsInline is the longest client ID, filter or topic (in bytes) a KV
// key holds in full; a longer one is hashed, so that a key stays far
// below the 4096 bytes of a NATS control line (a client ID, like a
// filter, may have 65535).
const natsInline = 192

var natsB64 = base64.RawURLEncoding

// appendNATSToken appends s as a key token: 'k' and s in base64url, or
// 'h' and its SHA-256 in base64url when s is longer than natsInline. It
// reports whether it hashed. The token is never empty and holds only
// characters a KV key allows, none of them '.'.
func appendNATSToken(b []byte, s []byte) ([]byte, bool) {
	if len(s) <= natsInline {
		return natsB64.AppendEncode(append(b, 'k'), s), false
	}
	sum := sha256.Sum256(s)
	return natsB64.AppendEncode(append(b, 'h'), sum[:]), true
}

// natsKey appends the KV key of a record to b.
func natsKey(b []byte, sp space, client string, key []byte) []byte {
	b, _ = natsKeyHashed(b, sp, client, key)
	return b
}

// natsKeyHashed is natsKey, also reporting whether a token is hashed (the
// value must then be wrapped in natsEnvelope).
func natsKeyHashed(b []byte, sp space, client string, key []byte) ([]byte, bool) {
	var hc bool
	if isClientSpace(sp) {
		b = append(b, "c."...)
		b, hc = appendNATSToken(b, []byte(client))
		b = append(b, '.')
	}
	b = append(b, byte(sp), '.')
	b, hk := appendNATSToken(b, key)
	return b, hc || hk
}

// natsClientFilter is the key filter of every record of client.
func natsClientFilter(client string) string {
	b := append([]byte("c."), nil...)
	b, _ = appendNATSToken(b, []byte(client))
	return string(append(b, ".>"...))
}

// natsEnvelope appends the value of a record with a hashed token: the
// client and key in full, each length-prefixed, then the record.
func natsEnvelope(b []byte, client string, key, val []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(client)))
	b = append(b, client...)
	b = binary.AppendUvarint(b, uint64(len(key)))
	b = append(b, key...)
	return append(b, val...)
}

// parseNATSRecord splits a KV key and value into a record.
func parseNATSRecord(k string, v []byte) (sp space, client string, key, val []byte, err error) {
	bad := fmt.Errorf("key %q: %w", k, errCorrupt)
	parts := strings.Split(k, ".")
	var ctok, ktok string
	switch {
	case len(parts) == 4 && parts[0] == "c" && len(parts[2]) == 1:
		ctok, sp, ktok = parts[1], space(parts[2][0]), parts[3]
		if !isClientSpace(sp) {
			return 0, "", nil, nil, bad
		}
	case len(parts) == 2 && len(parts[0]) == 1:
		sp, ktok = space(parts[0][0]), parts[1]
		if isClientSpace(sp) {
			return 0, "", nil, nil, bad
		}
	default:
		return 0, "", nil, nil, bad
	}
	hashed := false
	var cb []byte
	if ctok != "" {
		if cb, err = decodeNATSToken(ctok); err != nil {
			return 0, "", nil, nil, bad
		}
		hashed = ctok[0] == 'h'
	}
	if key, err = decodeNATSToken(ktok); err != nil {
		return 0, "", nil, nil, bad
	}
	hashed = hashed || ktok[0] == 'h'
	if !hashed {
		return sp, string(cb), key, v, nil
	}
	// The value starts with the client and key in full; they must hash to
	// the tokens.
	var parts2 [2][]byte
	rest := v
	for i := range parts2 {
		n, w := binary.Uvarint(rest)
		if w <= 0 || n > uint64(len(rest)-w) {
			return 0, "", nil, nil, bad
		}
		parts2[i], rest = rest[w:w+int(n)], rest[w+int(n):]
	}
	fullClient, fullKey := parts2[0], parts2[1]
	if ctok != "" && !tokenMatches(ctok, cb, fullClient) || !tokenMatches(ktok, key, fullKey) {
		return 0, "", nil, nil, bad
	}
	return sp, string(fullClient), fullKey, rest, nil
}

// decodeNATSToken returns a token's bytes: the value itself ('k') or its
// hash ('h').
func decodeNATSToken(tok string) ([]byte, error) {
	if tok == "" || (tok[0] != 'k' && tok[0] != 'h') {
		return nil, errCorrupt
	}
	b, err := natsB64.DecodeString(tok[1:])
	if err != nil || (tok[0] == 'h' && len(b) != sha256.Size) {
		return nil, errCorrupt
	}
	return b, nil
}

// tokenMatches reports whether full is what the token tok (decoded: dec)
// stands for.
func tokenMatches(tok string, dec, full []byte) bool {
	if tok[0] == 'k' {
		return bytes.Equal(dec, full)
	}
	sum := sha256.Sum256(full)
	return len(full) > natsInline && bytes.Equal(dec, sum[:])
}
