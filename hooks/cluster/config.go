package cluster

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// ID is the hook's ID.
const ID = "cluster"

// Config is the hook's config block (the `cluster:` block of the config
// file).
type Config struct {
	// URLs are the NATS servers to connect to, nats://host:port or
	// tls://host:port; any one of a NATS cluster is enough, the client
	// learns the others from it.
	URLs []string `yaml:"urls"`
	// Node names this node in the cluster: letters, digits, '-' and '_'
	// (default: the host name, with other characters made '_'). Each node
	// of a cluster needs its own.
	Node string `yaml:"node"`
	// Prefix is the first token of every subject the cluster uses
	// (default "vanemq"), so that several vanemq clusters, or other
	// applications, can share one NATS system.
	Prefix string `yaml:"prefix"`
	// Username and Password, Token, or Credentials (a NATS .creds file)
	// authenticate to NATS; at most one of the three.
	Username    string `yaml:"username"`
	Password    string `yaml:"password"`
	Token       string `yaml:"token"`
	Credentials string `yaml:"credentials"`
	// TLS configures tls:// URLs (and mutual TLS).
	TLS *TLSConfig `yaml:"tls"`
	// ConnectTimeout bounds each attempt to reach a NATS server (default
	// 5s).
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// ReconnectWait is the pause between attempts to reach NATS again
	// after losing it (default 1s). The node keeps trying for as long as
	// it runs.
	ReconnectWait time.Duration `yaml:"reconnect_wait"`
	// Replicas is how many copies of the cluster's JetStream state (the
	// inbox stream, the route table) NATS keeps (default: as many NATS
	// servers as the node knows of, up to 3). It applies when the state
	// is first made; a later change needs the streams edited in NATS.
	Replicas int `yaml:"replicas"`
	// HandoffTimeout bounds how long a QoS 1/2 publisher's
	// acknowledgement waits for JetStream to store the message for the
	// other nodes (default 5s); past it the publisher is disconnected
	// without one, and sends the message again.
	HandoffTimeout time.Duration `yaml:"handoff_timeout"`
	// InboxMaxAge is how long a QoS 1/2 message waits in a node's inbox
	// for the node to take it (default 24h): a node away for longer
	// loses what was older.
	InboxMaxAge time.Duration `yaml:"inbox_max_age"`
	// TakeoverTimeout bounds how long a connecting client waits for the
	// node that holds its session to let it go (default 5s). Past it, a
	// node that is alive keeps the session and the client is refused
	// (Server unavailable: it connects again); a node that is gone, or
	// frozen (fenced by the session's epoch when it runs again), loses it,
	// and the session starts over on the client's node.
	TakeoverTimeout time.Duration `yaml:"takeover_timeout"`
	// AdoptAfter is how long a node may stop writing its registry entry
	// before another node adopts its sessions (default 30s). A client
	// that connects to another node meanwhile has them adopted at once,
	// once the node is found gone (nothing answers on its subject).
	AdoptAfter time.Duration `yaml:"adopt_after"`
	// States lets the nodes read each other's stores, to adopt the
	// sessions of a node that died; the broker sets it for a store the
	// other nodes can reach (storage type nats). Without it, a dead
	// node's sessions wait for the node to return.
	States *StateStores `yaml:"-"`
}

// TLSConfig is the TLS client configuration for NATS.
type TLSConfig struct {
	// CA is a PEM file of the certificates that may sign the servers'
	// (default: the system's).
	CA string `yaml:"ca"`
	// Cert and Key are the node's client certificate and key, PEM.
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// DefaultPrefix is the prefix of a config that sets none.
const DefaultPrefix = "vanemq"

// DefaultNode is the node name of a config that sets none: the host
// name, with characters a node name may not have made '_'.
func DefaultNode() (string, error) {
	h, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("the host name is unknown: %w", err)
	}
	return hostNode(h), nil
}

var (
	nodeRE   = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	prefixRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)
)

// check validates the config and fills in defaults; an error names the
// key.
func (c *Config) check() error {
	if len(c.URLs) == 0 {
		return errors.New("urls: at least one NATS server is needed")
	}
	for i, u := range c.URLs {
		if !strings.Contains(u, "://") {
			return fmt.Errorf("urls[%d]: %q: want nats://host:port or tls://host:port", i, u)
		}
	}
	if c.Node == "" {
		n, err := DefaultNode()
		if err != nil {
			return fmt.Errorf("node: not set, and %w", err)
		}
		c.Node = n
	}
	if !nodeRE.MatchString(c.Node) {
		return fmt.Errorf("node: %q: use 1 to 64 letters, digits, '-' and '_'", c.Node)
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if !prefixRE.MatchString(c.Prefix) {
		return fmt.Errorf("prefix: %q: use 1 to 32 letters, digits, '-' and '_'", c.Prefix)
	}
	n := 0
	for _, set := range []bool{c.Username != "" || c.Password != "", c.Token != "", c.Credentials != ""} {
		if set {
			n++
		}
	}
	if n > 1 {
		return errors.New("username/password, token and credentials: set at most one")
	}
	if c.Password != "" && c.Username == "" {
		return errors.New("password: set without username")
	}
	if c.Credentials != "" {
		if _, err := os.Stat(c.Credentials); err != nil {
			return fmt.Errorf("credentials: %w", err)
		}
	}
	if t := c.TLS; t != nil {
		if (t.Cert == "") != (t.Key == "") {
			return errors.New("tls: set both cert and key, or neither")
		}
		for key, f := range map[string]string{"tls.ca": t.CA, "tls.cert": t.Cert, "tls.key": t.Key} {
			if f == "" {
				continue
			}
			if _, err := os.Stat(f); err != nil {
				return fmt.Errorf("%s: %w", key, err)
			}
		}
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = 5 * time.Second
	}
	if c.ReconnectWait == 0 {
		c.ReconnectWait = time.Second
	}
	if c.HandoffTimeout == 0 {
		c.HandoffTimeout = 5 * time.Second
	}
	if c.InboxMaxAge == 0 {
		c.InboxMaxAge = 24 * time.Hour
	}
	if c.TakeoverTimeout == 0 {
		c.TakeoverTimeout = 5 * time.Second
	}
	if c.AdoptAfter == 0 {
		c.AdoptAfter = 30 * time.Second
	}
	if c.AdoptAfter > 0 && c.AdoptAfter < 3*heartbeat {
		return fmt.Errorf("adopt_after: %s: at least %s (three heartbeats), or a live node would be taken for dead", c.AdoptAfter, 3*heartbeat)
	}
	for key, d := range map[string]time.Duration{"connect_timeout": c.ConnectTimeout, "reconnect_wait": c.ReconnectWait, "handoff_timeout": c.HandoffTimeout, "inbox_max_age": c.InboxMaxAge, "takeover_timeout": c.TakeoverTimeout, "adopt_after": c.AdoptAfter} {
		if d < 0 {
			return fmt.Errorf("%s: must not be negative", key)
		}
	}
	if c.Replicas < 0 || c.Replicas > 5 {
		return fmt.Errorf("replicas: %d: use 1 to 5 (0 for the default)", c.Replicas)
	}
	return nil
}

// resolve makes the config's relative file paths relative to dir, the
// config file's directory.
func (c *Config) resolve(dir string) {
	if dir == "" {
		return
	}
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	abs(&c.Credentials)
	if c.TLS != nil {
		abs(&c.TLS.CA)
		abs(&c.TLS.Cert)
		abs(&c.TLS.Key)
	}
}

// hostNode makes a node name of a host name.
func hostNode(h string) string {
	b := []byte(h)
	for i, c := range b {
		if !plain(c) {
			b[i] = '_'
		}
	}
	if len(b) > 64 {
		b = b[:64]
	}
	return string(b)
}

// natsOptions are the nats.go options the config asks for. The client
// reconnects for as long as the node runs, and never echoes the node's own
// messages back to it.
func (c *Config) natsOptions() []nats.Option {
	opts := []nats.Option{
		nats.Name("vanemq " + c.Node),
		nats.NoEcho(),
		nats.Timeout(c.ConnectTimeout),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(c.ReconnectWait),
	}
	switch {
	case c.Username != "":
		opts = append(opts, nats.UserInfo(c.Username, c.Password))
	case c.Token != "":
		opts = append(opts, nats.Token(c.Token))
	case c.Credentials != "":
		opts = append(opts, nats.UserCredentials(c.Credentials))
	}
	if t := c.TLS; t != nil {
		opts = append(opts, nats.Secure(&tls.Config{MinVersion: tls.VersionTLS12}))
		if t.CA != "" {
			opts = append(opts, nats.RootCAs(t.CA))
		}
		if t.Cert != "" {
			opts = append(opts, nats.ClientCert(t.Cert, t.Key))
		}
	}
	return opts
}
