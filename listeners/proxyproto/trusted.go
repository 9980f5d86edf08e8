package proxyproto

import (
	"fmt"
	"net/netip"
	"strings"
)

// ParseTrusted parses one entry of a trusted-proxy list: a network in CIDR
// form ("10.0.0.0/8", "2001:db8::/32") or a single address ("10.0.0.7",
// "::1"), which stands for itself alone (/32, /128). It refuses what would
// not mean what it seems to: an address with a zone ("fe80::1%eth0"), an
// IPv4-mapped IPv6 form ("::ffff:10.0.0.0/104"; write the IPv4 network,
// which also matches IPv4 peers of a dual-stack socket), and a network
// with host bits set ("10.0.0.7/8"), which is either a typo for the
// address or for the network.
func ParseTrusted(s string) (netip.Prefix, error) {
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a network in CIDR form (e.g. 10.0.0.0/8)", s)
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is neither an IP address nor a network in CIDR form (e.g. 10.0.0.0/8)", s)
		}
		if a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q has a zone; write the address without %%%s", s, a.Zone())
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	a := p.Addr()
	if a.Is4In6() {
		return netip.Prefix{}, fmt.Errorf("%q is an IPv4-mapped IPv6 address; write the IPv4 form (%s)", s, mappedHint(p))
	}
	if m := p.Masked(); m != p {
		return netip.Prefix{}, fmt.Errorf("%q has host bits set; write the network %s or the address %s", s, m, a)
	}
	return p, nil
}

// mappedHint returns the IPv4 form of an IPv4-mapped prefix, or the bare
// address when the prefix does not reach into the IPv4 part.
func mappedHint(p netip.Prefix) string {
	if bits := p.Bits() - 96; bits >= 0 && !p.IsSingleIP() {
		return netip.PrefixFrom(p.Addr().Unmap(), bits).Masked().String()
	}
	return p.Addr().Unmap().String()
}
