package storage

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/vanemq/vanemq/core"
)

// TestSessionRecord round-trips session records with their owner, reads
// the version 1 records written before sessions had one (owner unknown),
// and refuses records that do not decode.
func TestSessionRecord(t *testing.T) {
	at := time.Unix(1700000000, 123)
	v1 := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint32([]byte{recordVersion}, 60), uint64(at.UnixNano()))
	for _, tc := range []struct {
		name  string
		owner core.Identity
	}{
		{"anonymous", core.Identity{}},
		{"user", core.Identity{Username: "alice"}},
		{"certificate", core.Identity{CertSubject: "CN=dev-1,O=Acme"}},
		{"both", core.Identity{Username: "bob", CertSubject: "CN=bob"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := encodeSession(nil, 60, at, tc.owner)
			expiry, disc, owner, err := decodeSession(b)
			if err != nil || expiry != 60 || !disc.Equal(at) || owner == nil || *owner != tc.owner {
				t.Fatalf("decodeSession = %d, %v, %v, %v; want 60, %v, %+v", expiry, disc, owner, err, at, tc.owner)
			}
		})
	}
	t.Run("version 1", func(t *testing.T) {
		expiry, disc, owner, err := decodeSession(v1)
		if err != nil || expiry != 60 || !disc.Equal(at) || owner != nil {
			t.Fatalf("decodeSession(v1) = %d, %v, %v, %v; want 60, %v, nil owner", expiry, disc, owner, err, at)
		}
	})
	good := encodeSession(nil, 60, at, core.Identity{Username: "alice"})
	for _, tc := range []struct {
		name string
		rec  []byte
	}{
		{"empty", nil},
		{"short", good[:10]},
		{"unknown version", append([]byte{9}, good[1:]...)},
		{"version 1 with extra bytes", append(append([]byte(nil), v1...), 0)},
		{"owner cut short", good[:len(good)-2]},
		{"owner length past the end", append(append([]byte(nil), good[:13]...), 50, 'a')},
		{"trailing bytes", append(append([]byte(nil), good...), 'x')},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, _, err := decodeSession(tc.rec); !errors.Is(err, errCorrupt) {
				t.Fatalf("decodeSession(%x) = %v, want errCorrupt", tc.rec, err)
			}
		})
	}
}
