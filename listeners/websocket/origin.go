package websocket

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// checkOrigin applies the origin policy (Options.AllowedOrigins and
// AllowedHosts) to a handshake: "" when it may go on, else why not and the
// config key that would change it.
//
// A request without an Origin header is not a browser's and goes on. With
// AllowedOrigins, the Origin must be one of them. Without, on a listener
// bound to loopback, the Host must be a loopback name, an IP address or one
// of AllowedHosts, which a DNS-rebinding page (Host and Origin both
// evil.test, resolving to 127.0.0.1) is not, and the Origin's host a
// loopback name or address, any port, which a page of a local dev server
// (http://localhost:3000) is; on other listeners, the Origin's host:port
// must be the Host.
func (l *Listener) checkOrigin(r *http.Request) (cause, key string) {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return "", ""
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return fmt.Sprintf("Origin %q is not an origin", origin), "allowed_origins"
	}
	if len(l.opts.AllowedOrigins) > 0 {
		for _, a := range l.opts.AllowedOrigins {
			if a == "*" || strings.EqualFold(a, origin) || strings.EqualFold(a, u.Host) {
				return "", ""
			}
		}
		return fmt.Sprintf("Origin %q is not in allowed_origins", origin), "allowed_origins"
	}
	if !l.loopback.Load() {
		if strings.EqualFold(u.Host, r.Host) {
			return "", ""
		}
		return fmt.Sprintf("Origin %q is not this listener's host %q; list the page's origin in allowed_origins", origin, r.Host), "allowed_origins"
	}
	if !l.hostAllowed(r.Host) {
		return fmt.Sprintf("Host %q is not a loopback name, an IP address or in allowed_hosts (a page of another site reaching this loopback listener through DNS rebinding)", r.Host), "allowed_hosts"
	}
	if !loopbackHost(u.Hostname()) {
		return fmt.Sprintf("Origin %q is not a loopback origin, which is all a loopback listener allows by default; list it in allowed_origins", origin), "allowed_origins"
	}
	return "", ""
}

// hostAllowed reports whether a request's Host (host[:port]) is a loopback
// name, an IP address or one of AllowedHosts.
func (l *Listener) hostAllowed(hostport string) bool {
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	if loopbackHost(h) || net.ParseIP(h) != nil {
		return true
	}
	for _, a := range l.opts.AllowedHosts {
		if strings.EqualFold(a, h) {
			return true
		}
	}
	return false
}

// loopbackHost reports whether h (no port, no brackets) names this
// machine's loopback: "localhost" and the names under it (RFC 6761 §6.3),
// or a loopback address (127.0.0.0/8, ::1).
func loopbackHost(h string) bool {
	h = strings.TrimSuffix(strings.ToLower(h), ".")
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	ip := net.ParseIP(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"))
	return ip != nil && ip.IsLoopback()
}
