package core

import (
	"errors"
	"testing"
	"time"
)

// DefaultWithin fills in a zero value, keeps one in range, and refuses
// one outside 0..max, naming the key.
func TestDefaultWithin(t *testing.T) {
	tests := []struct {
		name    string
		in, out time.Duration
		err     string
	}{
		{"zero takes the default", 0, time.Second, ""},
		{"in range is kept", 3 * time.Second, 3 * time.Second, ""},
		{"max is in range", time.Minute, time.Minute, ""},
		{"above max", time.Hour, time.Hour, "timeout: 1h0m0s is outside 0s..1m0s"},
		{"negative", -time.Second, -time.Second, "timeout: -1s is outside 0s..1m0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := tt.in
			err := DefaultWithin(&v, time.Second, time.Minute, "timeout")
			if got := errString(err); got != tt.err || v != tt.out {
				t.Errorf("got %s, %q; want %s, %q", v, got, tt.out, tt.err)
			}
		})
	}
	n := 2000
	if err := DefaultWithin(&n, 4, 1024, "pool"); errString(err) != "pool: 2000 is outside 0..1024" {
		t.Errorf("int above max: %v", err)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// Module decodes a hook's block over its defaults, and names the module
// in a decode error.
func TestModule(t *testing.T) {
	type cfg struct{ A, B int }
	var got cfg
	m := Module("test.module", cfg{A: 1, B: 2}, func(_ HookConfig, c cfg) (Hook, error) {
		got = c
		return okHook{}, nil
	})
	tests := []struct {
		name   string
		decode func(v any) error
		want   cfg
		err    string
	}{
		{"no block keeps the defaults", nil, cfg{1, 2}, ""},
		{"a key overrides its default only", func(v any) error { v.(*cfg).B = 5; return nil }, cfg{1, 5}, ""},
		{"a decode error names the module", func(any) error { return errors.New("config (line 3): bad key") }, cfg{}, "test.module: config (line 3): bad key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got = cfg{}
			h, err := m.New(HookConfig{ID: "test.module", Decode: tc.decode})
			if tc.err != "" {
				if err == nil || err.Error() != tc.err || h != nil {
					t.Fatalf("New = %v, %v; want the error %q", h, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("New: %v; build got %+v, want %+v", err, got, tc.want)
			}
		})
	}
}
