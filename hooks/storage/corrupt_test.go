package storage

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/vanemq/vanemq/core"
)

// A data directory that is damaged, foreign or of another schema version
// is refused at Open (and by Check) with an error naming it; a record that
// does not decode fails the server's Start with an error naming the
// directory and the record. Nothing panics.
func TestBadDataDirectory(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, path string)
		want  string
	}{
		{"garbage files", func(t *testing.T, path string) {
			mustWrite(t, filepath.Join(path, "CURRENT"), "MANIFEST-000001\n")
			mustWrite(t, filepath.Join(path, "MANIFEST-000001"), "this is not a manifest")
		}, ""},
		{"not a directory", func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			mustWrite(t, path, "a file")
		}, ""},
		{"foreign pebble database", func(t *testing.T, path string) {
			db, err := pebble.Open(path, &pebble.Options{})
			if err != nil {
				t.Fatal(err)
			}
			_ = db.Set([]byte("hello"), []byte("world"), pebble.Sync)
			_ = db.Close()
		}, "no vanemq schema record"},
		{"other schema", func(t *testing.T, path string) {
			db, err := pebble.Open(path, &pebble.Options{})
			if err != nil {
				t.Fatal(err)
			}
			_ = db.Set(schemaKey, []byte("vanemq-store/99"), pebble.Sync)
			_ = db.Close()
		}, `schema "vanemq-store/99"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "data")
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
			tc.setup(t, path)
			st, err := Open(context.Background(), Config{Path: path})
			if err == nil {
				_ = st.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Open: %v, want it to name %s and say %q", err, path, tc.want)
			}
			if _, err := Check(context.Background(), Config{Path: path}); err == nil || !strings.Contains(err.Error(), path) {
				t.Errorf("Check: %v, want an error naming %s", err, path)
			}
		})
	}
}

func TestCorruptRecordFailsStart(t *testing.T) {
	tests := []struct {
		name string
		key  []byte
		val  string
		want string
	}{
		{"session", append([]byte("sclient"), 0), "\x01short", `client "client": session: corrupt record`},
		{"delivery", append(append([]byte("qclient"), 0), u64key(5)...), "\x01", "delivery 5: corrupt record"},
		{"message", append([]byte("m"), u64key(7)...), "\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x30\x02", "message 7: corrupt record"},
		{"retained", []byte("rtopic"), "\x09", `retained message on "topic"`},
		{"unknown kind", []byte("zzz"), "x", "unknown kind"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "data")
			st, err := Open(context.Background(), Config{Path: path})
			if err != nil {
				t.Fatal(err)
			}
			_ = st.Close()
			db, err := pebble.Open(path, &pebble.Options{})
			if err != nil {
				t.Fatal(err)
			}
			_ = db.Set(tc.key, []byte(tc.val), pebble.Sync)
			_ = db.Close()

			st, err = Open(context.Background(), Config{Path: path})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = st.Close() }()
			srv, err := core.New(core.Options{Logger: slog.New(slog.DiscardHandler), SysInterval: -1})
			if err != nil {
				t.Fatal(err)
			}
			if err := srv.AddHook(st, 0); err != nil {
				t.Fatal(err)
			}
			err = srv.Start(context.Background())
			if err == nil {
				_ = srv.Shutdown(context.Background())
				t.Fatal("Start succeeded on a corrupt record")
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Start: %v, want it to name %s and %q", err, path, tc.want)
			}
		})
	}
}

func mustWrite(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}
