// Package bridge connects the broker to other MQTT brokers (hook ID
// "bridge"): messages published here under chosen topics go out to a
// remote broker, and messages published there come in, with prefixes
// rewritten both ways, without loops and without losing a QoS 1 or 2
// message. See docs/bridging.md.
package bridge

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/packets"
	"github.com/vanemq/vanemq/core/topics"
)

// ID is the hook's ID.
const ID = "bridge"

// Config is the hook's config block: any number of bridges.
type Config struct {
	Bridges []BridgeConfig `yaml:"bridges"`
}

// BridgeConfig is one bridge: a connection to a remote broker and the
// topics that cross it.
type BridgeConfig struct {
	// Name names the bridge in logs, metrics and $SYS: letters, digits,
	// '-', '_' and '.'.
	Name string `yaml:"name"`
	// Address is the remote broker: tcp://host:port, tls://host:port,
	// ws://host:port/path or wss://host:port/path (mqtt:// and mqtts://
	// are tcp:// and tls://). The port defaults to 1883, 8883, 80 or 443.
	Address string `yaml:"address"`
	// Protocol is the MQTT version spoken to the remote: "5" (default)
	// or "3.1.1".
	Protocol string `yaml:"protocol"`
	// ClientID is the bridge's client ID on the remote (default
	// HOSTNAME.NAME).
	ClientID string `yaml:"client_id"`
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// TLS configures tls:// and wss:// addresses.
	TLS *TLSConfig `yaml:"tls"`
	// CleanStart starts a new session on the remote at each connection;
	// false (the default) resumes it, so that messages for the bridge's
	// subscriptions wait there while it is away.
	CleanStart bool `yaml:"clean_start"`
	// SessionExpiry is how long the remote keeps the bridge's session
	// after a disconnection (MQTT 5; default 1h; 0s with clean_start).
	SessionExpiry time.Duration `yaml:"session_expiry"`
	// KeepAlive is the remote connection's keep alive (default 60s).
	KeepAlive time.Duration `yaml:"keepalive"`
	// Topics are the forwarding rules.
	Topics []TopicRule `yaml:"topics"`
	// QueueSize bounds the messages waiting to go out while the remote is
	// away (default 100000); beyond it new ones are dropped and counted.
	// The queue is the bridge's session here, stored with the broker's
	// sessions when storage is configured.
	QueueSize int `yaml:"queue_size"`
	// Inflight bounds the QoS 1 and 2 messages on their way to the remote
	// at once (default 64).
	Inflight int `yaml:"inflight"`
	// BackoffMin and BackoffMax bound the wait between reconnection
	// attempts, which doubles from the first to the second, with jitter
	// (defaults 1s and 2m).
	BackoffMin time.Duration `yaml:"backoff_min"`
	BackoffMax time.Duration `yaml:"backoff_max"`
	// Notifications publishes the bridge's state, "online" or "offline",
	// retained, on NotificationTopic: on the remote (its will says
	// offline when the connection is lost) and here (default true).
	Notifications *bool `yaml:"notifications"`
	// NotificationTopic defaults to bridges/CLIENT_ID/state.
	NotificationTopic string `yaml:"notification_topic"`
	// ConnectTimeout bounds dialling and the CONNECT exchange (default
	// 10s).
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// TryPrivate (MQTT 3.1.1; default true) connects as Mosquitto's
	// bridges do, with the bridge bit of the protocol level: Mosquitto
	// and vanemq then send none of the bridge's own messages back and
	// keep retained flags. A remote that refuses it gets a plain 3.1.1
	// connection instead.
	TryPrivate *bool `yaml:"try_private"`
}

// TLSConfig is a bridge's TLS client configuration.
type TLSConfig struct {
	// CA is a PEM file of the certificates that may sign the remote's
	// (default: the system's).
	CA string `yaml:"ca"`
	// Cert and Key are the bridge's client certificate and key, PEM.
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	// ServerName is the name checked in the remote's certificate
	// (default: the address's host).
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify accepts any certificate: for tests only.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// The directions of a rule.
const (
	DirOut  = "out"
	DirIn   = "in"
	DirBoth = "both"
)

// TopicRule says which topics cross the bridge, which way, and how they
// are renamed: a message on LocalPrefix+X here is REMOTE_PREFIX+X there,
// for every X matching Filter.
type TopicRule struct {
	Direction    string `yaml:"direction"`
	Filter       string `yaml:"filter"`
	LocalPrefix  string `yaml:"local_prefix"`
	RemotePrefix string `yaml:"remote_prefix"`
	// QoS caps the QoS of the messages forwarded (0, 1 or 2).
	QoS byte `yaml:"qos"`
}

func (r *TopicRule) out() bool { return r.Direction == DirOut || r.Direction == DirBoth }
func (r *TopicRule) in() bool  { return r.Direction == DirIn || r.Direction == DirBoth }

// localFilter is the rule's filter here; remoteFilter there.
func (r *TopicRule) localFilter() string  { return r.LocalPrefix + r.Filter }
func (r *TopicRule) remoteFilter() string { return r.RemotePrefix + r.Filter }

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// check validates the config and fills in defaults; an error names the
// bridge and the key.
func (c *Config) check() error {
	if len(c.Bridges) == 0 {
		return errors.New("bridges: none configured")
	}
	host, _ := os.Hostname()
	seen := map[string]bool{}
	var errs []error
	for i := range c.Bridges {
		b := &c.Bridges[i]
		where := fmt.Sprintf("bridges[%d]", i)
		if b.Name != "" {
			where += " (" + b.Name + ")"
		}
		if err := b.check(host); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
			continue
		}
		if seen[b.Name] {
			errs = append(errs, fmt.Errorf("%s: name: %q is the name of another bridge", where, b.Name))
		}
		seen[b.Name] = true
	}
	return errors.Join(errs...)
}

func (b *BridgeConfig) check(host string) error {
	if !nameRE.MatchString(b.Name) {
		return fmt.Errorf("name: %q is not 1 to 64 letters, digits, '-', '_' or '.'", b.Name)
	}
	if _, _, err := b.dialTarget(); err != nil {
		return fmt.Errorf("address: %w", err)
	}
	switch b.Protocol {
	case "", "5", "5.0":
		b.Protocol = "5"
	case "3.1.1", "4":
		b.Protocol = "3.1.1"
	default:
		return fmt.Errorf("protocol: %q is not 5 or 3.1.1", b.Protocol)
	}
	if b.ClientID == "" {
		b.ClientID = strings.ReplaceAll(host, ".", "-") + "." + b.Name
	}
	if len(b.ClientID) > 65535 || strings.ContainsRune(b.ClientID, 0) {
		return errors.New("client_id: not a valid MQTT client identifier")
	}
	tlsScheme := strings.HasPrefix(b.Address, "tls://") || strings.HasPrefix(b.Address, "mqtts://") ||
		strings.HasPrefix(b.Address, "ssl://") || strings.HasPrefix(b.Address, "wss://")
	if b.TLS != nil && !tlsScheme {
		return errors.New("tls: set for an address that is not tls:// or wss://")
	}
	if b.TLS != nil && (b.TLS.Cert == "") != (b.TLS.Key == "") {
		return errors.New("tls: cert and key go together")
	}
	err := cmp.Or( // the first error
		core.DefaultWithin(&b.KeepAlive, 60*time.Second, 65535*time.Second, "keepalive"),
		core.DefaultWithin(&b.BackoffMin, time.Second, time.Hour, "backoff_min"),
		core.DefaultWithin(&b.BackoffMax, 2*time.Minute, 24*time.Hour, "backoff_max"),
		core.DefaultWithin(&b.ConnectTimeout, 10*time.Second, 10*time.Minute, "connect_timeout"),
		core.DefaultWithin(&b.QueueSize, 100000, 1<<24, "queue_size"),
		core.DefaultWithin(&b.Inflight, 64, 65535, "inflight"),
	)
	if err != nil {
		return err
	}
	if b.BackoffMax < b.BackoffMin {
		return fmt.Errorf("backoff_max: %s is below backoff_min %s", b.BackoffMax, b.BackoffMin)
	}
	switch {
	case b.SessionExpiry < 0 || b.SessionExpiry > time.Duration(0xFFFFFFFF)*time.Second:
		return fmt.Errorf("session_expiry: %s is outside 0s..%s", b.SessionExpiry, time.Duration(0xFFFFFFFF)*time.Second)
	case b.SessionExpiry == 0 && !b.CleanStart:
		b.SessionExpiry = time.Hour
	}
	if b.Notifications == nil {
		on := true
		b.Notifications = &on
	}
	if b.TryPrivate == nil {
		on := true
		b.TryPrivate = &on
	}
	if b.NotificationTopic == "" {
		b.NotificationTopic = "bridges/" + b.ClientID + "/state"
	}
	if err := topics.ValidateTopicName(b.NotificationTopic); err != nil {
		return fmt.Errorf("notification_topic: %w", err)
	}
	if len(b.Topics) == 0 {
		return errors.New("topics: none: a bridge forwards nothing without them")
	}
	for i := range b.Topics {
		if err := b.Topics[i].check(); err != nil {
			return fmt.Errorf("topics[%d]: %w", i, err)
		}
	}
	return nil
}

func (r *TopicRule) check() error {
	switch r.Direction {
	case DirOut, DirIn, DirBoth:
	case "":
		return errors.New("direction: required: out, in or both")
	default:
		return fmt.Errorf("direction: %q is not out, in or both", r.Direction)
	}
	if r.QoS > 2 {
		return fmt.Errorf("qos: %d is not 0, 1 or 2", r.QoS)
	}
	if r.Filter == "" {
		return errors.New("filter: required")
	}
	if strings.HasPrefix(r.Filter, "$share/") {
		return errors.New("filter: a shared subscription cannot be bridged")
	}
	for _, p := range []struct{ key, v string }{{"local_prefix", r.LocalPrefix}, {"remote_prefix", r.RemotePrefix}} {
		if strings.ContainsAny(p.v, "+#\x00") {
			return fmt.Errorf("%s: %q holds a wildcard or U+0000", p.key, p.v)
		}
	}
	if err := topics.ValidateFilter(r.Filter); err != nil {
		return fmt.Errorf("filter: %w", err)
	}
	if err := topics.ValidateFilter(r.localFilter()); err != nil {
		return fmt.Errorf("local_prefix: %w", err)
	}
	if err := topics.ValidateFilter(r.remoteFilter()); err != nil {
		return fmt.Errorf("remote_prefix: %w", err)
	}
	return nil
}

// version is the protocol version spoken to the remote.
func (b *BridgeConfig) version() byte {
	if b.Protocol == "3.1.1" {
		return packets.Version311
	}
	return packets.Version5
}

// dialTarget parses the address: the scheme (tcp, tls, ws, wss) and the
// host:port to dial (for ws and wss, the URL with its port).
func (b *BridgeConfig) dialTarget() (scheme, target string, err error) {
	u, err := url.Parse(b.Address)
	if err != nil {
		return "", "", fmt.Errorf("%q: %w", b.Address, err)
	}
	ports := map[string]string{"tcp": "1883", "mqtt": "1883", "tls": "8883", "mqtts": "8883", "ssl": "8883", "ws": "80", "wss": "443"}
	def, ok := ports[u.Scheme]
	if !ok {
		return "", "", fmt.Errorf("%q: the scheme is not tcp://, tls://, ws:// or wss://", b.Address)
	}
	if u.Hostname() == "" {
		return "", "", fmt.Errorf("%q: no host", b.Address)
	}
	port := u.Port()
	if port == "" {
		port = def
	} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", "", fmt.Errorf("%q: port %q is not 1..65535", b.Address, port)
	}
	hostport := net.JoinHostPort(u.Hostname(), port)
	switch u.Scheme {
	case "tcp", "mqtt":
		return "tcp", hostport, nil
	case "tls", "mqtts", "ssl":
		return "tls", hostport, nil
	}
	u.Host = hostport
	if u.Path == "" {
		u.Path = "/mqtt"
	}
	return u.Scheme, u.String(), nil
}
