package vanemqcmd

import (
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/editdist"
)

// defaultYAML is the configuration used when no --config is given.
//
//go:embed default.yaml
var defaultYAML []byte

// defaultConfigName names the embedded default in messages.
const defaultConfigName = "default.yaml (embedded)"

// config is a parsed and validated configuration file. Every key the file
// leaves out has its documented default.
type config struct {
	// Listeners are the transports to serve, in file order.
	Listeners []listenerConfig
	// Options holds the mqtt section. Logger and Version are left for the
	// caller to set.
	Options core.Options
	// Log is the log section.
	Log logConfig
	// Hooks are the hooks list, in file order; hooks.go builds them.
	Hooks []hookConfig
	// Storage is the storage section (storage_config.go); storage.go
	// opens the store.
	Storage storageConfig
	// Cluster is the cluster section (cluster_config.go), nil without
	// one; buildHooks adds the cluster hook it configures.
	Cluster *clusterConfig
	// Dir is the directory relative paths in hook configs and in the
	// storage section are resolved against: the config file's, or the
	// working directory for the embedded default. loadConfig sets it.
	Dir string
}

// listenerConfig is one entry of the listeners list.
type listenerConfig struct {
	ID      string // unique name, used in logs
	Type    string // a key of listenerTypes()
	Address string // host:port to bind (unix: the socket's path)

	Path           string      // websocket: HTTP path, default /mqtt
	AllowedOrigins []string    // websocket: browser origins; default loopback origins on loopback, else same host
	AllowedHosts   []string    // websocket: host names a browser's Host may be on a loopback listener
	Mode           os.FileMode // unix: socket file mode, default 0660
	TLS            *tlsConfig  // tcp, websocket: serve TLS (tls, wss)
	ProxyProtocol  bool        // tcp, websocket: require a PROXY protocol header
	Token          string      // http: bearer token of the JSON API; empty disables it

	// ProxyTrusted (tcp, websocket) lists the networks of the proxies
	// that may send PROXY headers; required with ProxyProtocol.
	ProxyTrusted []netip.Prefix

	MaxConnections  int     // tcp, websocket, unix: connections open at once; 0 = unlimited
	ConnectionRate  float64 // tcp, websocket: new connections per second per source IP; 0 = unlimited
	ConnectionBurst int     // tcp, websocket: token bucket size; 0 = max(1, ceil(ConnectionRate))
}

// hookConfig is one entry of the hooks list: a registered hook module, its
// priority and its config block, which the module decodes itself when the
// hook is built (see buildHooks).
type hookConfig struct {
	ID       string     // a registered module, or module:instance (core.HookModuleOf)
	Priority int        // higher runs first; default 0
	Config   *yaml.Node // the config block; nil when absent or empty
	File     string     // the config file's name, for errors
	Line     int        // the line of the list entry, for errors
	Key      string     // "hooks[N]", for errors
}

// logConfig is the log section.
type logConfig struct {
	Level  slog.Level
	Format string // "text" or "json"
}

// The defaults for keys a file leaves out. The mqtt defaults are
// core.DefaultOptions().
var (
	defaultListener = listenerConfig{ID: "tcp", Type: "tcp", Address: "127.0.0.1:1883"}
	defaultLog      = logConfig{Level: slog.LevelInfo, Format: "text"}
)

// Limits checked by the loader.
const (
	minPacketSize = 16        // the smallest maximum that still fits a useful CONNECT
	maxPacketSize = 268435460 // 256 MiB of remaining length plus a 5-byte fixed header
	minClientID   = 23        // MQTT requires servers to accept client ids of 1 to 23 bytes
)

// logLevels and logFormats are the accepted values of log.level and log.format.
var (
	logLevels = []struct {
		name  string
		level slog.Level
	}{{"debug", slog.LevelDebug}, {"info", slog.LevelInfo}, {"warn", slog.LevelWarn}, {"error", slog.LevelError}}
	logFormats = []string{"text", "json"}
)

// configError is one problem in a configuration file. It prints as
// "FILE:LINE: KEY: MESSAGE"; LINE or KEY are left out when unknown.
type configError struct {
	File string
	Line int    // 1-based; 0 when the problem has no line
	Key  string // dotted path such as "mqtt.receive_maximum" or "listeners[1].id"
	Msg  string
	Err  error // the underlying error, if any
}

// Error formats the problem as FILE:LINE: KEY: MESSAGE.
func (e *configError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
	}
	if e.Key != "" {
		b.WriteString(": " + e.Key)
	}
	b.WriteString(": " + e.Msg)
	return b.String()
}

// Unwrap returns the underlying error, if any.
func (e *configError) Unwrap() error { return e.Err }

// loadConfig reads and parses the file at path; with an empty path it
// parses the embedded default.
func loadConfig(path string) (*config, error) {
	if path == "" {
		cfg, err := parseConfig(defaultConfigName, defaultYAML)
		if err != nil {
			return nil, err
		}
		if cfg.Dir, err = os.Getwd(); err != nil {
			cfg.Dir = "."
		}
		return cfg, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	cfg, err := parseConfig(path, data)
	if err != nil {
		return nil, err
	}
	cfg.Dir = filepath.Dir(path)
	if abs, err := filepath.Abs(cfg.Dir); err == nil {
		cfg.Dir = abs
	}
	return cfg, nil
}

// allDigits matches a decimal integer literal.
var allDigits = regexp.MustCompile(`^[-+]?[0-9]+$`)

// yamlLine matches the line number yaml puts in its syntax errors.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parseConfig parses and validates a configuration file's contents; name
// is the file name used in errors. An empty file gives the defaults, which
// deny anonymous clients (allow_anonymous: false); the embedded default.yaml
// allows them. The error joins one *configError per problem found, in file
// order. Hook IDs are checked against the registered modules here; the
// hooks themselves are built by buildHooks.
func parseConfig(name string, data []byte) (*config, error) {
	cfg := &config{
		Listeners: []listenerConfig{defaultListener},
		Options:   core.DefaultOptions(),
		Log:       defaultLog,
		Storage:   defaultStorage,
	}
	cfg.Options.Logger, cfg.Options.Version = nil, ""

	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	var doc yaml.Node
	switch err := dec.Decode(&doc); {
	case errors.Is(err, io.EOF):
		return cfg, nil // empty, or only comments
	case err != nil:
		e := &configError{File: name, Msg: err.Error(), Err: err}
		if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
			e.Line, _ = strconv.Atoi(m[1])
			e.Msg = "invalid YAML: " + m[2]
		}
		return nil, e
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		line := extra.Line
		if err != nil {
			line = 0
		}
		return nil, &configError{File: name, Line: line, Msg: "only one YAML document is allowed"}
	}

	d := &decoder{file: name}
	d.top(&doc, cfg)
	if len(d.errs) > 0 {
		return nil, errors.Join(d.errs...)
	}
	return cfg, nil
}

// decoder walks a yaml.Node tree, filling a config and collecting errors.
type decoder struct {
	file string
	errs []error
}

func (d *decoder) errorf(n *yaml.Node, key, format string, args ...any) {
	d.errs = append(d.errs, &configError{File: d.file, Line: n.Line, Key: key, Msg: fmt.Sprintf(format, args...)})
}

// top decodes the document's root mapping.
func (d *decoder) top(doc *yaml.Node, cfg *config) {
	root := doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	root = deref(root)
	if isNull(root) {
		return
	}
	if root.Kind != yaml.MappingNode {
		d.errorf(root, "", "the configuration must be a mapping with the keys allow_anonymous, cluster, hooks, listeners, mqtt, log and storage; found %s", describe(root))
		return
	}
	d.fields(root, "", map[string]func(string, *yaml.Node){
		"allow_anonymous": func(key string, v *yaml.Node) {
			if b, ok := d.boolean(key, v); ok {
				cfg.Options.AllowAnonymous = b
			}
		},
		"hooks":     func(key string, v *yaml.Node) { cfg.Hooks = d.hooks(key, v) },
		"listeners": func(key string, v *yaml.Node) { cfg.Listeners = d.listeners(key, v) },
		"mqtt":      func(key string, v *yaml.Node) { d.mqtt(key, v, &cfg.Options) },
		"log":       func(key string, v *yaml.Node) { d.log(key, v, &cfg.Log) },
		"storage":   func(key string, v *yaml.Node) { d.storage(key, v, &cfg.Storage) },
		"cluster":   func(key string, v *yaml.Node) { cfg.Cluster = d.cluster(key, v) },
	})
	d.checkClusterOnce(cfg)
	cfg.clusterStorage()
}

// fields calls the handler of each key of mapping n, in file order. Unknown
// and repeated keys are errors. A null n (a section with nothing under it)
// has no keys.
func (d *decoder) fields(n *yaml.Node, path string, handlers map[string]func(key string, v *yaml.Node)) {
	n = deref(n)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "cannot use %s as a mapping", describe(n))
		return
	}
	seen := make(map[string]int)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, path, "cannot use %s as a key", describe(k))
			continue
		}
		key := k.Value
		if path != "" {
			key = path + "." + k.Value
		}
		if first, dup := seen[k.Value]; dup {
			d.errorf(k, key, "duplicate key (first set at line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
		h, ok := handlers[k.Value]
		if !ok {
			d.errorf(k, key, "unknown key%s", suggest(k.Value, handlers))
			continue
		}
		h(key, deref(v))
	}
}

// listeners decodes the listeners list and validates each entry.
func (d *decoder) listeners(key string, n *yaml.Node) []listenerConfig {
	if n.Kind != yaml.SequenceNode {
		if isNull(n) {
			d.errorf(n, key, "at least one listener is required")
		} else {
			d.errorf(n, key, "cannot use %s as a list of listeners", describe(n))
		}
		return nil
	}
	if len(n.Content) == 0 {
		d.errorf(n, key, "at least one listener is required")
		return nil
	}
	types := listenerTypes()
	known := slices.Sorted(func(yield func(string) bool) {
		for t := range types {
			if !yield(t) {
				return
			}
		}
	})
	ids := make(map[string]int) // id -> line
	var out []listenerConfig
	for i, item := range n.Content {
		item = deref(item)
		path := fmt.Sprintf("%s[%d]", key, i)
		var lc listenerConfig
		var set [3]*yaml.Node // id, type, address, once decoded
		extras := make(map[string]*yaml.Node)
		handlers := d.listenerExtras(&lc, extras)
		maps.Copy(handlers, map[string]func(string, *yaml.Node){
			"id": func(k string, v *yaml.Node) {
				if s, ok := d.str(k, v); ok {
					lc.ID, set[0] = s, v
				}
			},
			"type": func(k string, v *yaml.Node) {
				if s, ok := d.str(k, v); ok {
					lc.Type, set[1] = s, v
				}
			},
			"address": func(k string, v *yaml.Node) {
				if v.Kind == yaml.SequenceNode {
					d.errorf(v, k, `cannot use a sequence as an address; quote IPv6 addresses, e.g. "[::1]:1883"`)
					return
				}
				if s, ok := d.str(k, v); ok {
					lc.Address, set[2] = s, v
				}
			},
		})
		d.fields(item, path, handlers)
		if item.Kind != yaml.MappingNode {
			if isNull(item) {
				d.errorf(item, path, "cannot use an empty value as a listener")
			}
			continue
		}
		for j, name := range []string{"id", "type", "address"} {
			if set[j] == nil && !d.hasKey(item, name) {
				d.errorf(item, path+"."+name, "required key missing")
			}
		}
		if v := set[0]; v != nil {
			switch first, dup := ids[lc.ID]; {
			case lc.ID == "":
				d.errorf(v, path+".id", "must not be empty")
			case dup:
				d.errorf(v, path+".id", "duplicate listener id %q (first used at line %d)", lc.ID, first)
			default:
				ids[lc.ID] = v.Line
			}
		}
		if v := set[1]; v != nil {
			if _, ok := types[lc.Type]; !ok {
				d.errorf(v, path+".type", "unknown listener type %q (known: %s)", lc.Type, strings.Join(known, ", "))
			}
		}
		if v := set[2]; v != nil {
			if lc.Type == "unix" {
				if lc.Address == "" {
					d.errorf(v, path+".address", "must be the socket's file path")
				}
			} else if err := checkAddress(lc.Address); err != nil {
				d.errorf(v, path+".address", "invalid address %q: %v", lc.Address, err)
			}
		}
		if v := extras["connection_burst"]; v != nil && extras["connection_rate"] == nil {
			d.errorf(v, path+".connection_burst", "needs connection_rate, the rate it bursts above")
		}
		d.checkProxyTrusted(path, lc, extras)
		if set[1] != nil {
			for _, key := range slices.Sorted(maps.Keys(extras)) {
				if v := extras[key]; !slices.Contains(listenerKeys(lc.Type), key) {
					d.errorf(v, path+"."+key, "not used by listeners of type %q", lc.Type)
				}
			}
		}
		out = append(out, lc)
	}
	return out
}

// hooks decodes the hooks list: each entry names a registered hook module
// by id, once, with an optional priority and config block. The config
// block is kept as a node for the module to decode (buildHooks).
func (d *decoder) hooks(key string, n *yaml.Node) []hookConfig {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, key, "cannot use %s as a list of hooks", describe(n))
		return nil
	}
	ids := make(map[string]int) // id -> line
	var out []hookConfig
	for i, item := range n.Content {
		item = deref(item)
		path := fmt.Sprintf("%s[%d]", key, i)
		hc := hookConfig{File: d.file, Line: item.Line, Key: path}
		var idNode *yaml.Node
		d.fields(item, path, map[string]func(string, *yaml.Node){
			"id": func(k string, v *yaml.Node) {
				if s, ok := d.str(k, v); ok {
					hc.ID, idNode = s, v
				}
			},
			"priority": func(k string, v *yaml.Node) {
				// int32, so that comparing priorities cannot overflow.
				if x, ok := d.integer(k, v, math.MinInt32, math.MaxInt32); ok {
					hc.Priority = int(x)
				}
			},
			"config": func(k string, v *yaml.Node) {
				// Nothing, "~" and {} all mean no config.
				if !isNull(v) && (v.Kind != yaml.MappingNode || len(v.Content) > 0) {
					hc.Config = v
				}
			},
		})
		if item.Kind != yaml.MappingNode {
			if isNull(item) {
				d.errorf(item, path, "cannot use an empty value as a hook")
			}
			continue
		}
		if idNode == nil {
			if !d.hasKey(item, "id") {
				d.errorf(item, path+".id", "required key missing")
			}
			continue
		}
		switch first, dup := ids[hc.ID]; {
		case hc.ID == "":
			d.errorf(idNode, path+".id", "must not be empty")
			continue
		case dup:
			d.errorf(idNode, path+".id", "duplicate hook id %q (first used at line %d)", hc.ID, first)
			continue
		}
		ids[hc.ID] = idNode.Line
		if _, ok := core.LookupHookModule(core.HookModuleOf(hc.ID)); !ok {
			known := "none are compiled in"
			if ms := core.HookModules(); len(ms) > 0 {
				known = "known: " + strings.Join(ms, ", ")
			}
			d.errorf(idNode, path+".id", "unknown hook %q (%s)", hc.ID, known)
			continue
		}
		out = append(out, hc)
	}
	return out
}

// hasKey reports whether mapping n has the key name (set, even if to a
// value that failed to decode).
func (d *decoder) hasKey(n *yaml.Node, name string) bool {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if deref(n.Content[i]).Value == name {
			return true
		}
	}
	return false
}

// checkAddress validates a listen address: host:port, with an empty host
// meaning every interface, and a numeric port (0 picks a free one).
func checkAddress(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			err = errors.New(ae.Err)
		}
		return fmt.Errorf("%w (want host:port, e.g. 0.0.0.0:1883)", err)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || (p == 0 && port != "0") {
		return fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	if strings.ContainsAny(host, " /") {
		return fmt.Errorf("host %q is not an IP address or host name", host)
	}
	return nil
}

// mqtt decodes the mqtt section onto o, which holds the defaults.
func (d *decoder) mqtt(key string, n *yaml.Node, o *core.Options) {
	d.fields(n, key, map[string]func(string, *yaml.Node){
		"max_packet_size": func(k string, v *yaml.Node) {
			if x, ok := d.integer(k, v, minPacketSize, maxPacketSize); ok {
				o.MaxPacketSize = uint32(x)
			}
		},
		"receive_maximum": func(k string, v *yaml.Node) {
			if x, ok := d.integer(k, v, 1, math.MaxUint16); ok {
				o.ReceiveMaximum = uint16(x)
			}
		},
		"max_inflight": func(k string, v *yaml.Node) {
			if x, ok := d.integer(k, v, 1, math.MaxUint16); ok {
				o.MaxInflight = uint16(x)
			}
		},
		"max_queued_messages": func(k string, v *yaml.Node) {
			if x, ok := d.integer(k, v, 1, math.MaxInt32); ok {
				o.MaxQueuedMessages = int(x)
			}
		},
		"queue_qos0_messages": func(k string, v *yaml.Node) {
			if b, ok := d.boolean(k, v); ok {
				o.QueueQoS0 = b
			}
		},
		"foreign_session": func(k string, v *yaml.Node) {
			if str, ok := d.str(k, v); ok {
				p, err := core.ParseForeignSessionPolicy(str)
				if err != nil {
					d.errorf(v, k, "%v", err)
					return
				}
				o.ForeignSession = p
			}
		},
		"topic_alias_maximum": func(k string, v *yaml.Node) {
			if x, ok := d.integer(k, v, 0, math.MaxUint16); ok {
				o.TopicAliasMaximum, o.DisableTopicAliases = uint16(x), x == 0
			}
		},
		"session_expiry_max": func(k string, v *yaml.Node) {
			if x, ok := d.integer(k, v, 1, math.MaxUint32); ok {
				o.SessionExpiryMax = uint32(x)
			}
		},
		"server_keep_alive": func(k string, v *yaml.Node) {
			if x, ok := d.integer(k, v, 0, math.MaxUint16); ok {
				o.ServerKeepAlive = uint16(x)
			}
		},
		"connect_timeout": func(k string, v *yaml.Node) {
			if t, ok := d.duration(k, v); ok {
				if t == 0 {
					d.errorf(v, k, "must be greater than 0")
					return
				}
				o.ConnectTimeout = t
			}
		},
		"sys_interval": func(k string, v *yaml.Node) {
			if t, ok := d.duration(k, v); ok {
				if t == 0 {
					t = -1 // core: negative turns $SYS off
				}
				o.SysInterval = t
			}
		},
		"max_client_id_len": func(k string, v *yaml.Node) {
			if x, ok := d.integer(k, v, minClientID, math.MaxUint16); ok {
				o.MaxClientIDLen = int(x)
			}
		},
		"max_connect_size": func(k string, v *yaml.Node) {
			if x, ok := d.integer(k, v, minPacketSize, maxPacketSize); ok {
				o.MaxConnectSize = uint32(x)
			}
		},
		"max_topic_levels": func(k string, v *yaml.Node) {
			if x, ok := d.integer(k, v, 1, math.MaxUint16); ok {
				o.MaxTopicLevels = int(x)
			}
		},
		"topic_alias_bytes": func(k string, v *yaml.Node) {
			if x, ok := d.integer(k, v, 1, math.MaxInt32); ok {
				o.TopicAliasBytes = int(x)
			}
		},
		"outbound_queue": func(k string, v *yaml.Node) {
			if x, ok := d.integer(k, v, 1, math.MaxInt32); ok {
				o.OutboundQueue = int(x)
			}
		},
		"max_subscriptions": func(k string, v *yaml.Node) {
			if x, ok := d.integer(k, v, 0, math.MaxInt32); ok {
				o.MaxSubscriptions = int(noLimit(x))
			}
		},
		"max_retained_messages": func(k string, v *yaml.Node) {
			if x, ok := d.integer(k, v, 0, math.MaxInt32); ok {
				o.MaxRetainedMessages = int(noLimit(x))
			}
		},
		"max_retained_bytes": func(k string, v *yaml.Node) {
			if x, ok := d.integer(k, v, 0, math.MaxInt64); ok {
				o.MaxRetainedBytes = noLimit(x)
			}
		},
		"retain_available": func(k string, v *yaml.Node) {
			if b, ok := d.boolean(k, v); ok {
				o.DisableRetain = !b
			}
		},
		"wildcard_subscription_available": func(k string, v *yaml.Node) {
			if b, ok := d.boolean(k, v); ok {
				o.DisableWildcardSubs = !b
			}
		},
		"subscription_identifier_available": func(k string, v *yaml.Node) {
			if b, ok := d.boolean(k, v); ok {
				o.DisableSubIDs = !b
			}
		},
		"shared_subscription_available": func(k string, v *yaml.Node) {
			if b, ok := d.boolean(k, v); ok {
				o.DisableSharedSubs = !b
			}
		},
	})
}

// log decodes the log section.
func (d *decoder) log(key string, n *yaml.Node, lc *logConfig) {
	d.fields(n, key, map[string]func(string, *yaml.Node){
		"level": func(k string, v *yaml.Node) {
			s, ok := d.str(k, v)
			if !ok {
				return
			}
			var names []string
			for _, l := range logLevels {
				if s == l.name {
					lc.Level = l.level
					return
				}
				names = append(names, l.name)
			}
			d.errorf(v, k, "unknown level %q (known: %s)", s, strings.Join(names, ", "))
		},
		"format": func(k string, v *yaml.Node) {
			s, ok := d.str(k, v)
			if !ok {
				return
			}
			if !slices.Contains(logFormats, s) {
				d.errorf(v, k, "unknown format %q (known: %s)", s, strings.Join(logFormats, ", "))
				return
			}
			lc.Format = s
		},
	})
}

// noLimit maps a limit of 0 in a config file, meaning none, to the
// negative value core.Options takes for it (a zero field there is the
// default).
func noLimit(x int64) int64 {
	if x == 0 {
		return -1
	}
	return x
}

// integer decodes an integer scalar in [lo, hi].
func (d *decoder) integer(key string, n *yaml.Node, lo, hi int64) (int64, bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!float" && allDigits.MatchString(n.Value) {
			// yaml reads integers too big for int64 as floats.
			d.errorf(n, key, "must be between %d and %d, got %s", lo, hi, n.Value)
			return 0, false
		}
		d.errorf(n, key, "cannot use %s as an integer", describe(n))
		return 0, false
	}
	var x int64
	if err := n.Decode(&x); err != nil || x < lo || x > hi {
		d.errorf(n, key, "must be between %d and %d, got %s", lo, hi, n.Value)
		return 0, false
	}
	return x, true
}

// number decodes a finite number (an integer or a float) between lo and hi.
func (d *decoder) number(key string, n *yaml.Node, lo, hi float64) (float64, bool) {
	var x float64
	if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!int" && n.ShortTag() != "!!float") || n.Decode(&x) != nil {
		d.errorf(n, key, "cannot use %s as a number", describe(n))
		return 0, false
	}
	if math.IsNaN(x) || x < lo || x > hi {
		d.errorf(n, key, "must be between %g and %g, got %s", lo, hi, n.Value)
		return 0, false
	}
	return x, true
}

// boolean decodes true or false.
func (d *decoder) boolean(key string, n *yaml.Node) (bool, bool) {
	var b bool
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
		d.errorf(n, key, "cannot use %s as a boolean (want true or false)", describe(n))
		return false, false
	}
	return b, true
}

// str decodes a string scalar.
func (d *decoder) str(key string, n *yaml.Node) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		d.errorf(n, key, "cannot use %s as a string", describe(n))
		return "", false
	}
	return n.Value, true
}

// strList decodes a list of strings, what naming its items in the error
// for a value that is not a list ("origins"); an item that is not a
// string is reported and left out.
func (d *decoder) strList(key, what string, n *yaml.Node) ([]string, bool) {
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, key, "cannot use %s as a list of %s", describe(n), what)
		return nil, false
	}
	var out []string
	for i, item := range n.Content {
		if s, ok := d.str(key+"["+strconv.Itoa(i)+"]", item); ok {
			out = append(out, s)
		}
	}
	return out, true
}

// duration decodes a non-negative duration: a Go duration string ("10s",
// "1m30s", "250ms") or a whole number of seconds.
func (d *decoder) duration(key string, n *yaml.Node) (time.Duration, bool) {
	if n.Kind == yaml.ScalarNode {
		switch n.ShortTag() {
		case "!!int":
			var secs int64
			if err := n.Decode(&secs); err == nil && secs >= 0 && secs <= math.MaxInt64/int64(time.Second) {
				return time.Duration(secs) * time.Second, true
			}
			if secs < 0 {
				d.errorf(n, key, "must not be negative, got %s", n.Value)
			} else {
				d.errorf(n, key, "%s seconds is too long", n.Value)
			}
			return 0, false
		case "!!str":
			t, err := time.ParseDuration(n.Value)
			switch {
			case err != nil:
				d.errorf(n, key, "cannot use %q as a duration (want e.g. 10s, 1m30s or a number of seconds)", n.Value)
				return 0, false
			case t < 0:
				d.errorf(n, key, "must not be negative, got %s", n.Value)
				return 0, false
			}
			return t, true
		}
	}
	d.errorf(n, key, "cannot use %s as a duration (want e.g. 10s, 1m30s or a number of seconds)", describe(n))
	return 0, false
}

// deref follows YAML aliases (*name) to the anchored node.
func deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// isNull reports whether n is an empty value ("key:" with nothing after it,
// "~" or "null").
func isNull(n *yaml.Node) bool {
	return n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// describe names a node's value for "cannot use X as Y" messages.
func describe(n *yaml.Node) string {
	switch {
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return "a sequence"
	case isNull(n):
		return "an empty value"
	case n.ShortTag() == "!!str":
		return strconv.Quote(n.Value)
	default:
		return n.Value
	}
}

// suggest returns " (did you mean X?)" when a known key is a likely typo
// of key, and "" otherwise.
func suggest[V any](key string, known map[string]V) string {
	best, bestDist := "", 3 // suggest only within two edits
	for k := range known {
		if dist := editdist.Distance(key, k); dist < bestDist || (dist == bestDist && k < best) {
			best, bestDist = k, dist
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %s?)", best)
}
