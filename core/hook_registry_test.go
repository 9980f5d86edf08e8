package core

import (
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
