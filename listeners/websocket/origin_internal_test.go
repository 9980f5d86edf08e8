package websocket

import (
	"net/http"
	"testing"
)

// On a listener not bound to loopback the default stays the same-host
// rule: the Origin's host:port must be the request's Host (tests may bind
// loopback only, so the bound address is set by hand).
func TestSameHostOriginPolicy(t *testing.T) {
	l := New("ws", "", Options{})
	tests := []struct {
		host, origin string
		ok           bool
	}{
		{"broker.example:8083", "https://broker.example:8083", true},
		{"broker.example:8083", "https://BROKER.example:8083", true},
		{"broker.example:8083", "http://localhost:3000", false},
		{"evil.test:8083", "http://evil.test:8083", true}, // not loopback: rebinding reaches nothing local
		{"broker.example:8083", "", true},
	}
	for _, tc := range tests {
		r := &http.Request{Host: tc.host, Header: http.Header{}}
		if tc.origin != "" {
			r.Header.Set("Origin", tc.origin)
		}
		cause, _ := l.checkOrigin(r)
		if (cause == "") != tc.ok {
			t.Errorf("Host %s, Origin %q: cause %q, want allowed %v", tc.host, tc.origin, cause, tc.ok)
		}
	}
}
