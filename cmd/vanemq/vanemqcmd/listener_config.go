package vanemqcmd

import (
	"math"
	"os"
	"slices"
	"strconv"

	"go.yaml.in/yaml/v3"

	"github.com/vanemq/vanemq/listeners/proxyproto"
)

// tlsConfig is a listener's tls block.
type tlsConfig struct {
	Cert, Key         string // PEM files, relative to the config file
	ClientCA          string // PEM CA bundle for client certificates (mTLS)
	RequireClientCert bool
	MinVersion        string // "1.2" (default) or "1.3"
	// IdentityAsUsername takes the username from the verified client
	// certificate's Common Name (tcp listeners).
	IdentityAsUsername bool
}

// listenerExtras decodes the keys a listener type adds to id, type and
// address: path and allowed_origins (websocket), mode (unix), token (http),
// proxy_protocol, proxy_protocol_trusted, the tls block, connection_rate and
// connection_burst (tcp, websocket), and max_connections (tcp, websocket,
// unix). set records which
// keys were present, so the loader can refuse keys the type does not take.
func (d *decoder) listenerExtras(lc *listenerConfig, set map[string]*yaml.Node) map[string]func(string, *yaml.Node) {
	return map[string]func(string, *yaml.Node){
		"path": func(k string, v *yaml.Node) {
			if s, ok := d.str(k, v); ok {
				if s == "" || s[0] != '/' {
					d.errorf(v, k, "must be an absolute HTTP path, e.g. /mqtt")
					return
				}
				lc.Path, set["path"] = s, v
			}
		},
		"allowed_origins": func(k string, v *yaml.Node) {
			if l, ok := d.strList(k, "origins", v); ok {
				lc.AllowedOrigins, set["allowed_origins"] = append(lc.AllowedOrigins, l...), v
			}
		},
		"allowed_hosts": func(k string, v *yaml.Node) {
			if l, ok := d.strList(k, "host names", v); ok {
				lc.AllowedHosts, set["allowed_hosts"] = append(lc.AllowedHosts, l...), v
			}
		},
		"mode": func(k string, v *yaml.Node) {
			s, ok := d.str(k, v)
			if !ok {
				return
			}
			m, err := strconv.ParseUint(s, 8, 32)
			if err != nil || m > 0o777 {
				d.errorf(v, k, `must be an octal file mode such as "0660", got %q`, s)
				return
			}
			lc.Mode, set["mode"] = os.FileMode(m), v
		},
		"token": func(k string, v *yaml.Node) {
			if s, ok := d.str(k, v); ok {
				lc.Token, set["token"] = s, v
			}
		},
		"proxy_protocol": func(k string, v *yaml.Node) {
			if b, ok := d.boolean(k, v); ok {
				lc.ProxyProtocol, set["proxy_protocol"] = b, v
			}
		},
		"proxy_protocol_trusted": func(k string, v *yaml.Node) {
			set["proxy_protocol_trusted"] = v // present, even when wrong: see checkProxyTrusted
			switch {
			case v.Kind == yaml.ScalarNode && v.ShortTag() == "!!str":
				d.errorf(v, k, "cannot use %s as a list of networks; write [%s]", describe(v), describe(v))
				return
			case v.Kind != yaml.SequenceNode:
				d.errorf(v, k, "cannot use %s as a list of networks", describe(v))
				return
			case len(v.Content) == 0:
				d.errorf(v, k, `must list at least one network or address of a proxy, e.g. ["10.0.0.0/8"]`)
				return
			}
			for i, n := range v.Content {
				ik := k + "[" + strconv.Itoa(i) + "]"
				s, ok := d.str(ik, n)
				if !ok {
					continue
				}
				p, err := proxyproto.ParseTrusted(s)
				if err != nil {
					d.errorf(n, ik, "%v", err)
					continue
				}
				lc.ProxyTrusted = append(lc.ProxyTrusted, p)
			}
		},
		"max_connections": func(k string, v *yaml.Node) {
			if x, ok := d.integer(k, v, 0, math.MaxInt32); ok {
				lc.MaxConnections, set["max_connections"] = int(x), v
			}
		},
		"connection_rate": func(k string, v *yaml.Node) {
			if x, ok := d.number(k, v, 0, 1e9); ok {
				lc.ConnectionRate, set["connection_rate"] = x, v
			}
		},
		"connection_burst": func(k string, v *yaml.Node) {
			if x, ok := d.integer(k, v, 1, math.MaxInt32); ok {
				lc.ConnectionBurst, set["connection_burst"] = int(x), v
			}
		},
		"tls": func(k string, v *yaml.Node) {
			t := &tlsConfig{}
			d.fields(v, k, map[string]func(string, *yaml.Node){
				"cert":      func(k string, v *yaml.Node) { t.Cert, _ = d.str(k, v) },
				"key":       func(k string, v *yaml.Node) { t.Key, _ = d.str(k, v) },
				"client_ca": func(k string, v *yaml.Node) { t.ClientCA, _ = d.str(k, v) },
				"require_client_cert": func(k string, v *yaml.Node) {
					t.RequireClientCert, _ = d.boolean(k, v)
				},
				"identity_as_username": func(k string, v *yaml.Node) {
					t.IdentityAsUsername, _ = d.boolean(k, v)
				},
				"min_version": func(k string, v *yaml.Node) {
					if s, ok := d.str(k, v); ok {
						if s != "1.2" && s != "1.3" {
							d.errorf(v, k, `must be "1.2" or "1.3", got %q`, s)
							return
						}
						t.MinVersion = s
					}
				},
			})
			if v.Kind != yaml.MappingNode {
				return
			}
			for _, need := range []string{"cert", "key"} {
				if !d.hasKey(v, need) {
					d.errorf(v, k+"."+need, "required key missing")
				}
			}
			if t.IdentityAsUsername && !t.RequireClientCert {
				d.errorf(v, k+".identity_as_username", "needs require_client_cert: true, so every client has a verified certificate")
			}
			if t.RequireClientCert && t.ClientCA == "" {
				d.errorf(v, k+".require_client_cert", "needs client_ca, the CA that signs client certificates")
			}
			lc.TLS, set["tls"] = t, v
		},
	}
}

// checkProxyTrusted checks that proxy_protocol and proxy_protocol_trusted
// come together, on listener types that take them: the PROXY protocol
// without a list of trusted proxies would let any peer choose its address
// (or, trusting none, refuse every connection), and a list without the
// protocol does nothing.
func (d *decoder) checkProxyTrusted(path string, lc listenerConfig, extras map[string]*yaml.Node) {
	if !slices.Contains(listenerKeys(lc.Type), "proxy_protocol_trusted") {
		return // "not used by listeners of type" says enough
	}
	on, trusted := extras["proxy_protocol"], extras["proxy_protocol_trusted"]
	switch {
	case lc.ProxyProtocol && trusted == nil:
		d.errorf(on, path+".proxy_protocol", `needs proxy_protocol_trusted, the networks of the proxies that may send PROXY headers `+
			`(e.g. ["10.0.0.0/8"]; ["0.0.0.0/0", "::/0"] trusts every peer)`)
	case !lc.ProxyProtocol && trusted != nil:
		d.errorf(trusted, path+".proxy_protocol_trusted", "needs proxy_protocol: true")
	}
}

// listenerKeys lists the optional keys a listener type takes.
func listenerKeys(typ string) []string {
	switch typ {
	case "tcp":
		return []string{"tls", "proxy_protocol", "proxy_protocol_trusted", "max_connections", "connection_rate", "connection_burst"}
	case "websocket":
		return []string{"tls", "path", "allowed_origins", "allowed_hosts", "proxy_protocol", "proxy_protocol_trusted",
			"max_connections", "connection_rate", "connection_burst"}
	case "unix":
		return []string{"mode", "max_connections"}
	case "http":
		return []string{"token"}
	}
	return nil
}
