package sourceip

import (
	"net"
	"net/netip"
	"testing"
)

func TestOfString(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // "" when ok is false
	}{
		{"192.0.2.7:1883", "192.0.2.7/32"},
		{"192.0.2.7", "192.0.2.7/32"},
		{"[2001:db8:1:2:3:4:5:6]:1883", "2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"},
		{"[::ffff:192.0.2.7]:1883", "192.0.2.7/32"},
		{"[fe80::1%eth0]:1883", "fe80::/64"},
		{"[::1]:1883", "::/64"},
		{"/run/vanemq.sock", ""},
		{"@", ""},
		{"", ""},
	} {
		got, ok := OfString(tc.in)
		if (tc.want == "") == ok {
			t.Errorf("OfString(%q) ok = %v, want %v", tc.in, ok, tc.want != "")
			continue
		}
		if ok && got.String() != tc.want {
			t.Errorf("OfString(%q) = %v, want %s", tc.in, got, tc.want)
		}
	}
}

// Two addresses of one /64 share a key; addresses of two /64s do not.
func TestKeySharesIPv6Slash64(t *testing.T) {
	a := Key(netip.MustParseAddr("2001:db8:0:1::1"))
	b := Key(netip.MustParseAddr("2001:db8:0:1:dead:beef:0:2"))
	c := Key(netip.MustParseAddr("2001:db8:0:2::1"))
	if a != b {
		t.Errorf("%v and %v: one /64, want one key", a, b)
	}
	if a == c {
		t.Errorf("%v: two /64s share a key", a)
	}
	if Key(netip.Addr{}).IsValid() {
		t.Error("the zero address has a valid key")
	}
}

func TestOfAddr(t *testing.T) {
	for _, tc := range []struct {
		in   net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 5}, "192.0.2.1/32"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8::9"), Port: 5}, "2001:db8::/64"},
		{&net.UDPAddr{IP: net.ParseIP("::ffff:10.0.0.1"), Port: 5}, "10.0.0.1/32"},
		{&net.UnixAddr{Name: "/tmp/s", Net: "unix"}, ""},
		{nil, ""},
	} {
		got, ok := OfAddr(tc.in)
		if (tc.want == "") == ok || (ok && got.String() != tc.want) {
			t.Errorf("OfAddr(%v) = %v, %v; want %q", tc.in, got, ok, tc.want)
		}
	}
}
