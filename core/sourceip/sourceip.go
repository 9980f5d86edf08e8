// Package sourceip gives the key under which per-source limits (connection
// rates, failed logins) count a client's address. An IPv4 address is its
// own key. An IPv6 address counts by its /64 network: a single host is
// usually given a whole /64, and keying by the full address would let it
// take 2^64 fresh buckets. An IPv4-mapped IPv6 address (::ffff:a.b.c.d)
// counts as the IPv4 address it maps.
package sourceip

import (
	"net"
	"net/netip"
)

// IPv6Bits is the prefix length an IPv6 source is counted by.
const IPv6Bits = 64

// Key returns the limit key of ip: ip/32 for IPv4 (or IPv4-mapped IPv6),
// its /64 network for IPv6. The zone is dropped. The zero Addr gives the
// zero Prefix.
func Key(ip netip.Addr) netip.Prefix {
	if !ip.IsValid() {
		return netip.Prefix{}
	}
	ip = ip.Unmap().WithZone("")
	bits := 32
	if ip.Is6() {
		bits = IPv6Bits
	}
	p, _ := ip.Prefix(bits) // cannot fail: bits fits the address family
	return p
}

// OfAddr returns the limit key of a connection's remote address: Key of
// its IP for TCP and UDP addresses, and of host:port strings that hold an
// IP. ok is false when a carries no IP (a Unix socket, a pipe): the caller
// then keys by a.String() or not at all.
func OfAddr(a net.Addr) (key netip.Prefix, ok bool) {
	switch t := a.(type) {
	case nil:
		return netip.Prefix{}, false
	case *net.TCPAddr:
		return ofIP(t.IP)
	case *net.UDPAddr:
		return ofIP(t.IP)
	}
	return OfString(a.String())
}

// OfString returns the limit key of an address written as "ip:port",
// "[ipv6]:port" or a bare IP (as core.ClientInfo.Remote holds it); ok is
// false when s holds no IP.
func OfString(s string) (key netip.Prefix, ok bool) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return Key(ap.Addr()), true
	}
	if ip, err := netip.ParseAddr(s); err == nil {
		return Key(ip), true
	}
	if host, _, err := net.SplitHostPort(s); err == nil {
		if ip, err := netip.ParseAddr(host); err == nil {
			return Key(ip), true
		}
	}
	return netip.Prefix{}, false
}

func ofIP(ip net.IP) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Prefix{}, false
	}
	return Key(a), true
}
