package vanemqcmd

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/vanemq/vanemq/core"
)

// everyKeyYAML sets every key the loader knows to a value other than its
// default.
const everyKeyYAML = `allow_anonymous: true
hooks:
  - id: test.hook
    priority: 10
    config: {greeting: hi}
listeners:
  - id: plain
    type: tcp
    address: "0.0.0.0:1883"
  - {id: local, type: tcp, address: "[::1]:0"}
  - {id: web, type: websocket, address: "127.0.0.1:8083", path: /ws}
mqtt:
  max_packet_size: 65536
  receive_maximum: 10
  max_inflight: 20
  max_queued_messages: 30
  queue_qos0_messages: true
  foreign_session: refuse
  topic_alias_maximum: 40
  session_expiry_max: 50
  server_keep_alive: 60
  connect_timeout: 5s
  sys_interval: 1m
  max_client_id_len: 128
  max_connect_size: 4096
  max_topic_levels: 16
  topic_alias_bytes: 1000
  outbound_queue: 70
  max_subscriptions: 80
  max_retained_messages: 90
  max_retained_bytes: 100
  retain_available: false
  wildcard_subscription_available: false
  subscription_identifier_available: false
  shared_subscription_available: false
log:
  level: debug
  format: json
storage:
  type: pebble
  path: /var/lib/vanemq
  durability: none
`

// defaultStorageWant is the storage of a file without a storage section:
// pebble in "data", synced, commits that do not wait; Redis and NATS
// settings unused but at their defaults.
var defaultStorageWant = storageConfig{
	Type: "pebble", Durability: "sync", CommitInterval: 0, CommitMaxOps: 512, Path: "data", MinFreeSpace: 64 << 20,
	Redis: redisConfig{Prefix: "vanemq", DialTimeout: 5 * time.Second},
	NATS:  natsConfig{Prefix: "vanemq", Timeout: 5 * time.Second},
}

// defaults is the configuration every key-less file gives. It denies
// anonymous clients; the embedded default.yaml allows them.
func defaults() *config {
	o := core.DefaultOptions()
	o.Logger, o.Version = nil, ""
	return &config{
		Listeners: []listenerConfig{{ID: "tcp", Type: "tcp", Address: "127.0.0.1:1883"}},
		Options:   o,
		Log:       logConfig{Level: slog.LevelInfo, Format: "text"},
		Storage:   defaultStorageWant,
	}
}

// with returns the defaults changed by f.
func with(f func(c *config)) *config {
	c := defaults()
	f(c)
	return c
}

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want *config
	}{
		{"empty file", "", defaults()},
		{"only comments", "# nothing here\n\n", defaults()},
		{"empty document", "---\n", defaults()},
		{"null document", "~\n", defaults()},
		{"empty sections", "mqtt:\nlog:\n", defaults()},
		{"every key", everyKeyYAML, &config{
			Hooks: []hookConfig{{ID: "test.hook", Priority: 10, File: "t.yaml", Line: 3, Key: "hooks[0]"}},
			Listeners: []listenerConfig{
				{ID: "plain", Type: "tcp", Address: "0.0.0.0:1883"},
				{ID: "local", Type: "tcp", Address: "[::1]:0"},
				{ID: "web", Type: "websocket", Address: "127.0.0.1:8083", Path: "/ws"},
			},
			Options: core.Options{
				MaxPacketSize:       65536,
				ReceiveMaximum:      10,
				MaxInflight:         20,
				MaxQueuedMessages:   30,
				QueueQoS0:           true,
				ForeignSession:      core.ForeignSessionRefuse,
				TopicAliasMaximum:   40,
				SessionExpiryMax:    50,
				ServerKeepAlive:     60,
				ConnectTimeout:      5 * time.Second,
				SysInterval:         time.Minute,
				MaxClientIDLen:      128,
				MaxConnectSize:      4096,
				MaxTopicLevels:      16,
				TopicAliasBytes:     1000,
				OutboundQueue:       70,
				MaxSubscriptions:    80,
				MaxRetainedMessages: 90,
				MaxRetainedBytes:    100,
				DisableRetain:       true,
				DisableWildcardSubs: true,
				DisableSubIDs:       true,
				DisableSharedSubs:   true,
				AllowAnonymous:      true,
			},
			Log: logConfig{Level: slog.LevelDebug, Format: "json"},
			Storage: func() storageConfig {
				s := defaultStorageWant
				s.Path, s.Durability = "/var/lib/vanemq", "none"
				return s
			}(),
		}},
		{"topic aliases off", "mqtt:\n  topic_alias_maximum: 0\n", with(func(c *config) {
			c.Options.TopicAliasMaximum, c.Options.DisableTopicAliases = 0, true
		})},
		{"$SYS off", "mqtt:\n  sys_interval: 0\n", with(func(c *config) { c.Options.SysInterval = -1 })},
		{"$SYS off as a duration", "mqtt:\n  sys_interval: 0s\n", with(func(c *config) { c.Options.SysInterval = -1 })},
		{"features explicitly on", "mqtt:\n  retain_available: true\n  shared_subscription_available: true\n", defaults()},
		{"queue_qos0 explicitly off", "mqtt:\n  queue_qos0_messages: false\n", defaults()},
		{"foreign sessions refused", "mqtt:\n  foreign_session: refuse\n", with(func(c *config) { c.Options.ForeignSession = core.ForeignSessionRefuse })},
		{"foreign sessions discarded", "mqtt:\n  foreign_session: discard\n", defaults()},
		{"server keep alive 0", "mqtt:\n  server_keep_alive: 0\n", defaults()},
		{"duration in seconds", "mqtt:\n  connect_timeout: 30\n", with(func(c *config) { c.Options.ConnectTimeout = 30 * time.Second })},
		{"duration with units", "mqtt:\n  connect_timeout: 1m30s\n  sys_interval: 250ms\n", with(func(c *config) {
			c.Options.ConnectTimeout = 90 * time.Second
			c.Options.SysInterval = 250 * time.Millisecond
		})},
		{"limits at their bounds", `mqtt:
  max_packet_size: 268435460
  receive_maximum: 65535
  max_client_id_len: 23
  session_expiry_max: 4294967295
`, with(func(c *config) {
			c.Options.MaxPacketSize = 268435460
			c.Options.ReceiveMaximum = 65535
			c.Options.MaxClientIDLen = 23
			c.Options.SessionExpiryMax = 4294967295
		})},
		{"subscription and retained limits off", "mqtt:\n  max_subscriptions: 0\n  max_retained_messages: 0\n  max_retained_bytes: 0\n",
			with(func(c *config) {
				c.Options.MaxSubscriptions, c.Options.MaxRetainedMessages, c.Options.MaxRetainedBytes = -1, -1, -1
			})},
		{"subscription and retained limits at their bounds", `mqtt:
  max_subscriptions: 2147483647
  max_retained_messages: 1
  max_retained_bytes: 9223372036854775807
`, with(func(c *config) {
			c.Options.MaxSubscriptions, c.Options.MaxRetainedMessages, c.Options.MaxRetainedBytes = 2147483647, 1, 9223372036854775807
		})},
		{"hex integer", "mqtt:\n  max_packet_size: 0x10000\n", with(func(c *config) { c.Options.MaxPacketSize = 65536 })},
		{"listeners only", "listeners:\n  - {id: a, type: tcp, address: \":1883\"}\n", with(func(c *config) {
			c.Listeners = []listenerConfig{{ID: "a", Type: "tcp", Address: ":1883"}}
		})},
		{"host name address", "listeners:\n  - {id: a, type: tcp, address: \"localhost:1883\"}\n", with(func(c *config) {
			c.Listeners = []listenerConfig{{ID: "a", Type: "tcp", Address: "localhost:1883"}}
		})},
		{"anchors and aliases", `listeners:
  - {id: a, type: tcp, address: &addr "127.0.0.1:1884"}
  - {id: b, type: tcp, address: *addr}
`, with(func(c *config) {
			c.Listeners = []listenerConfig{
				{ID: "a", Type: "tcp", Address: "127.0.0.1:1884"},
				{ID: "b", Type: "tcp", Address: "127.0.0.1:1884"},
			}
		})},
		{"connection limits", `listeners:
  - {id: a, type: tcp, address: ":1", max_connections: 100, connection_rate: 2.5, connection_burst: 10}
  - {id: b, type: websocket, address: ":2", connection_rate: 3}
  - {id: c, type: unix, address: /tmp/v.sock, max_connections: 0}
`, with(func(c *config) {
			c.Listeners = []listenerConfig{
				{ID: "a", Type: "tcp", Address: ":1", MaxConnections: 100, ConnectionRate: 2.5, ConnectionBurst: 10},
				{ID: "b", Type: "websocket", Address: ":2", ConnectionRate: 3},
				{ID: "c", Type: "unix", Address: "/tmp/v.sock"},
			}
		})},
		{"proxy protocol", `listeners:
  - id: a
    type: tcp
    address: ":1"
    proxy_protocol: true
    proxy_protocol_trusted: ["10.0.0.0/8", "192.0.2.7", "::1", "2001:db8::/32"]
  - {id: b, type: websocket, address: ":2", proxy_protocol: true, proxy_protocol_trusted: ["0.0.0.0/0", "::/0"]}
`, with(func(c *config) {
			c.Listeners = []listenerConfig{
				{ID: "a", Type: "tcp", Address: ":1", ProxyProtocol: true, ProxyTrusted: []netip.Prefix{
					netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32"),
					netip.MustParsePrefix("::1/128"), netip.MustParsePrefix("2001:db8::/32")}},
				{ID: "b", Type: "websocket", Address: ":2", ProxyProtocol: true, ProxyTrusted: []netip.Prefix{
					netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}},
			}
		})},
		{"log levels", "log:\n  level: warn\n", with(func(c *config) { c.Log.Level = slog.LevelWarn })},
		{"log level error", "log:\n  level: error\n", with(func(c *config) { c.Log.Level = slog.LevelError })},
		{"allow_anonymous true", "allow_anonymous: true\n", with(func(c *config) { c.Options.AllowAnonymous = true })},
		{"allow_anonymous false", "allow_anonymous: false\n", defaults()},
		{"no hooks", "hooks: []\n", defaults()},
		{"null hooks", "hooks:\n", defaults()},
		{"hooks", `hooks:
  - {id: test.hook, priority: 100, config: {greeting: hi}}
  - id: test.other
  - id: test.noconfig
    priority: -5
    config:
`, with(func(c *config) {
			c.Hooks = []hookConfig{
				{ID: "test.hook", Priority: 100, File: "t.yaml", Line: 2, Key: "hooks[0]"},
				{ID: "test.other", File: "t.yaml", Line: 3, Key: "hooks[1]"},
				{ID: "test.noconfig", Priority: -5, File: "t.yaml", Line: 4, Key: "hooks[2]"},
			}
		})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseConfig("t.yaml", []byte(tt.yaml))
			if err != nil {
				t.Fatalf("parseConfig: %v", err)
			}
			// The config blocks are nodes, checked by TestBuildHooks.
			for i := range got.Hooks {
				got.Hooks[i].Config = nil
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("parseConfig =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // every line of the error, in order
	}{
		{"unknown key", `mqtt:
  receive_maximum: 10

  max_pakcet_size: 10
`, []string{"t.yaml:4: mqtt.max_pakcet_size: unknown key (did you mean max_packet_size?)"}},
		{"unknown key, no suggestion", "mqtt:\n  colour: blue\n", []string{"t.yaml:2: mqtt.colour: unknown key"}},
		{"unknown top-level key", "listners: []\n", []string{"t.yaml:1: listners: unknown key (did you mean listeners?)"}},
		{"unknown listener key", "listeners:\n  - {id: a, type: tcp, address: \":1\", tsl: {}}\n",
			[]string{"t.yaml:2: listeners[0].tsl: unknown key (did you mean tls?)"}},
		{"tls not a mapping", "listeners:\n  - {id: a, type: tcp, address: \":1\", tls: true}\n",
			[]string{"t.yaml:2: listeners[0].tls: cannot use true as a mapping"}},
		{"tls without key", "listeners:\n  - id: a\n    type: tcp\n    address: \":1\"\n    tls: {cert: c.pem}\n",
			[]string{"t.yaml:5: listeners[0].tls.key: required key missing"}},
		{"tls bad min_version", "listeners:\n  - id: a\n    type: tcp\n    address: \":1\"\n    tls: {cert: c.pem, key: k.pem, min_version: \"1.1\"}\n",
			[]string{`t.yaml:5: listeners[0].tls.min_version: must be "1.2" or "1.3", got "1.1"`}},
		{"identity without a required client certificate", "listeners:\n  - id: a\n    type: tcp\n    address: \":1\"\n    tls: {cert: c.pem, key: k.pem, identity_as_username: true}\n",
			[]string{"t.yaml:5: listeners[0].tls.identity_as_username: needs require_client_cert: true, so every client has a verified certificate"}},
		{"client cert without CA", "listeners:\n  - id: a\n    type: tcp\n    address: \":1\"\n    tls: {cert: c.pem, key: k.pem, require_client_cert: true}\n",
			[]string{"t.yaml:5: listeners[0].tls.require_client_cert: needs client_ca, the CA that signs client certificates"}},
		{"path on a tcp listener", "listeners:\n  - {id: a, type: tcp, address: \":1\", path: /mqtt}\n",
			[]string{`t.yaml:2: listeners[0].path: not used by listeners of type "tcp"`}},
		{"proxy_protocol on a unix listener", "listeners:\n  - {id: a, type: unix, address: /tmp/v.sock, proxy_protocol: true}\n",
			[]string{`t.yaml:2: listeners[0].proxy_protocol: not used by listeners of type "unix"`}},
		{"token on a tcp listener", "listeners:\n  - {id: a, type: tcp, address: \":1\", token: t}\n",
			[]string{`t.yaml:2: listeners[0].token: not used by listeners of type "tcp"`}},
		{"tls on an http listener", "listeners:\n  - {id: a, type: http, address: \":1\", tls: {cert: c.pem, key: k.pem}}\n",
			[]string{`t.yaml:2: listeners[0].tls: not used by listeners of type "http"`}},
		{"proxy_protocol not a boolean", "listeners:\n  - {id: a, type: tcp, address: \":1\", proxy_protocol: \"yes\"}\n",
			[]string{`t.yaml:2: listeners[0].proxy_protocol: cannot use "yes" as a boolean (want true or false)`}},
		{"proxy_protocol without trusted proxies", "listeners:\n  - id: a\n    type: tcp\n    address: \":1\"\n    proxy_protocol: true\n",
			[]string{`t.yaml:5: listeners[0].proxy_protocol: needs proxy_protocol_trusted, the networks of the proxies that may send PROXY headers (e.g. ["10.0.0.0/8"]; ["0.0.0.0/0", "::/0"] trusts every peer)`}},
		{"websocket proxy_protocol without trusted proxies", "listeners:\n  - {id: a, type: websocket, address: \":1\", proxy_protocol: true}\n",
			[]string{`t.yaml:2: listeners[0].proxy_protocol: needs proxy_protocol_trusted, the networks of the proxies that may send PROXY headers (e.g. ["10.0.0.0/8"]; ["0.0.0.0/0", "::/0"] trusts every peer)`}},
		{"trusted proxies without proxy_protocol", "listeners:\n  - id: a\n    type: tcp\n    address: \":1\"\n    proxy_protocol_trusted: [10.0.0.0/8]\n",
			[]string{`t.yaml:5: listeners[0].proxy_protocol_trusted: needs proxy_protocol: true`}},
		{"trusted proxies with proxy_protocol false", "listeners:\n  - {id: a, type: tcp, address: \":1\", proxy_protocol: false, proxy_protocol_trusted: [\"::1\"]}\n",
			[]string{`t.yaml:2: listeners[0].proxy_protocol_trusted: needs proxy_protocol: true`}},
		{"trusted proxies empty", "listeners:\n  - {id: a, type: tcp, address: \":1\", proxy_protocol: true, proxy_protocol_trusted: []}\n",
			[]string{`t.yaml:2: listeners[0].proxy_protocol_trusted: must list at least one network or address of a proxy, e.g. ["10.0.0.0/8"]`}},
		{"trusted proxies a string", "listeners:\n  - {id: a, type: tcp, address: \":1\", proxy_protocol: true, proxy_protocol_trusted: 10.0.0.0/8}\n",
			[]string{`t.yaml:2: listeners[0].proxy_protocol_trusted: cannot use "10.0.0.0/8" as a list of networks; write ["10.0.0.0/8"]`}},
		{"trusted proxies a mapping", "listeners:\n  - {id: a, type: tcp, address: \":1\", proxy_protocol: true, proxy_protocol_trusted: {a: 1}}\n",
			[]string{`t.yaml:2: listeners[0].proxy_protocol_trusted: cannot use a mapping as a list of networks`}},
		{"trusted proxies bad entries", `listeners:
  - id: a
    type: tcp
    address: ":1"
    proxy_protocol: true
    proxy_protocol_trusted:
      - 10.0.0.0/8
      - 10.0.0.7/8
      - lb.example.com
      - "fe80::1%eth0"
      - ::ffff:10.0.0.0/104
      - 10.0.0.0/33
      - 7
`, []string{
			`t.yaml:8: listeners[0].proxy_protocol_trusted[1]: "10.0.0.7/8" has host bits set; write the network 10.0.0.0/8 or the address 10.0.0.7`,
			`t.yaml:9: listeners[0].proxy_protocol_trusted[2]: "lb.example.com" is neither an IP address nor a network in CIDR form (e.g. 10.0.0.0/8)`,
			`t.yaml:10: listeners[0].proxy_protocol_trusted[3]: "fe80::1%eth0" has a zone; write the address without %eth0`,
			`t.yaml:11: listeners[0].proxy_protocol_trusted[4]: "::ffff:10.0.0.0/104" is an IPv4-mapped IPv6 address; write the IPv4 form (10.0.0.0/8)`,
			`t.yaml:12: listeners[0].proxy_protocol_trusted[5]: "10.0.0.0/33" is not a network in CIDR form (e.g. 10.0.0.0/8)`,
			`t.yaml:13: listeners[0].proxy_protocol_trusted[6]: cannot use 7 as a string`,
		}},
		{"trusted proxies on a unix listener", "listeners:\n  - {id: a, type: unix, address: /tmp/v.sock, proxy_protocol_trusted: [\"::1\"]}\n",
			[]string{`t.yaml:2: listeners[0].proxy_protocol_trusted: not used by listeners of type "unix"`}},
		{"max_connections negative", "listeners:\n  - {id: a, type: tcp, address: \":1\", max_connections: -1}\n",
			[]string{"t.yaml:2: listeners[0].max_connections: must be between 0 and 2147483647, got -1"}},
		{"max_connections not an integer", "listeners:\n  - {id: a, type: unix, address: /tmp/v.sock, max_connections: lots}\n",
			[]string{`t.yaml:2: listeners[0].max_connections: cannot use "lots" as an integer`}},
		{"connection_rate negative", "listeners:\n  - {id: a, type: tcp, address: \":1\", connection_rate: -0.5}\n",
			[]string{"t.yaml:2: listeners[0].connection_rate: must be between 0 and 1e+09, got -0.5"}},
		{"connection_rate not a number", "listeners:\n  - {id: a, type: websocket, address: \":1\", connection_rate: fast}\n",
			[]string{`t.yaml:2: listeners[0].connection_rate: cannot use "fast" as a number`}},
		{"connection_rate NaN", "listeners:\n  - {id: a, type: tcp, address: \":1\", connection_rate: .nan}\n",
			[]string{"t.yaml:2: listeners[0].connection_rate: must be between 0 and 1e+09, got .nan"}},
		{"connection_burst zero", "listeners:\n  - {id: a, type: tcp, address: \":1\", connection_rate: 1, connection_burst: 0}\n",
			[]string{"t.yaml:2: listeners[0].connection_burst: must be between 1 and 2147483647, got 0"}},
		{"connection_burst without a rate", "listeners:\n  - {id: a, type: tcp, address: \":1\", connection_burst: 5}\n",
			[]string{"t.yaml:2: listeners[0].connection_burst: needs connection_rate, the rate it bursts above"}},
		{"connection_rate on a unix listener", "listeners:\n  - {id: a, type: unix, address: /tmp/v.sock, connection_rate: 1}\n",
			[]string{`t.yaml:2: listeners[0].connection_rate: not used by listeners of type "unix"`}},
		{"max_connections on an http listener", "listeners:\n  - {id: a, type: http, address: \":1\", max_connections: 1}\n",
			[]string{`t.yaml:2: listeners[0].max_connections: not used by listeners of type "http"`}},
		{"relative websocket path", "listeners:\n  - {id: a, type: websocket, address: \":1\", path: mqtt}\n",
			[]string{"t.yaml:2: listeners[0].path: must be an absolute HTTP path, e.g. /mqtt"}},
		{"bad unix mode", "listeners:\n  - {id: a, type: unix, address: /tmp/v.sock, mode: \"999\"}\n",
			[]string{`t.yaml:2: listeners[0].mode: must be an octal file mode such as "0660", got "999"`}},
		{"duplicate key", "mqtt:\n  max_inflight: 1\n  max_inflight: 2\n",
			[]string{"t.yaml:3: mqtt.max_inflight: duplicate key (first set at line 2)"}},
		{"string for integer", "mqtt:\n  receive_maximum: lots\n",
			[]string{`t.yaml:2: mqtt.receive_maximum: cannot use "lots" as an integer`}},
		{"quoted integer", "mqtt:\n  receive_maximum: \"10\"\n",
			[]string{`t.yaml:2: mqtt.receive_maximum: cannot use "10" as an integer`}},
		{"float for integer", "mqtt:\n  max_inflight: 1.5\n",
			[]string{`t.yaml:2: mqtt.max_inflight: cannot use 1.5 as an integer`}},
		{"empty value for integer", "mqtt:\n  max_inflight:\n",
			[]string{`t.yaml:2: mqtt.max_inflight: cannot use an empty value as an integer`}},
		{"mapping for integer", "mqtt:\n  max_inflight: {a: 1}\n",
			[]string{`t.yaml:2: mqtt.max_inflight: cannot use a mapping as an integer`}},
		{"yes for boolean", "mqtt:\n  retain_available: yes\n",
			[]string{`t.yaml:2: mqtt.retain_available: cannot use "yes" as a boolean (want true or false)`}},
		{"unknown foreign_session", "mqtt:\n  foreign_session: takeover\n",
			[]string{`t.yaml:2: mqtt.foreign_session: "takeover": want discard or refuse`}},
		{"integer for boolean", "mqtt:\n  queue_qos0_messages: 1\n",
			[]string{`t.yaml:2: mqtt.queue_qos0_messages: cannot use 1 as a boolean (want true or false)`}},
		{"integer for string", "log:\n  level: 3\n", []string{`t.yaml:2: log.level: cannot use 3 as a string`}},
		{"sequence for section", "mqtt:\n  - a\n", []string{`t.yaml:2: mqtt: cannot use a sequence as a mapping`}},
		{"scalar document", "hello\n", []string{`t.yaml:1: the configuration must be a mapping with the keys allow_anonymous, cluster, hooks, listeners, mqtt, log and storage; found "hello"`}},
		{"string for allow_anonymous", "allow_anonymous: \"true\"\n",
			[]string{`t.yaml:1: allow_anonymous: cannot use "true" as a boolean (want true or false)`}},
		{"yes for allow_anonymous", "allow_anonymous: yes\n",
			[]string{`t.yaml:1: allow_anonymous: cannot use "yes" as a boolean (want true or false)`}},
		{"allow_anonymous in mqtt", "mqtt:\n  allow_anonymous: true\n",
			[]string{`t.yaml:2: mqtt.allow_anonymous: unknown key`}},
		{"hooks not a list", "hooks: auth.file\n", []string{`t.yaml:1: hooks: cannot use "auth.file" as a list of hooks`}},
		{"hook not a mapping", "hooks:\n  - auth.file\n", []string{`t.yaml:2: hooks[0]: cannot use "auth.file" as a mapping`}},
		{"empty hook", "hooks:\n  -\n", []string{`t.yaml:2: hooks[0]: cannot use an empty value as a hook`}},
		{"hook without id", "hooks:\n  - priority: 1\n", []string{`t.yaml:2: hooks[0].id: required key missing`}},
		{"empty hook id", "hooks:\n  - id: \"\"\n", []string{`t.yaml:2: hooks[0].id: must not be empty`}},
		{"unknown hook module of an instance", "hooks:\n  - {id: \"nope:one\"}\n",
			[]string{`t.yaml:2: hooks[0].id: unknown hook "nope:one" (known: ` + strings.Join(core.HookModules(), ", ") + `)`}},
		{"unknown hook", "hooks:\n  - {id: test.hook}\n  - {id: auth.flie, priority: 100}\n",
			[]string{`t.yaml:3: hooks[1].id: unknown hook "auth.flie" (known: ` + strings.Join(core.HookModules(), ", ") + `)`}},
		{"duplicate hook id", "hooks:\n  - {id: test.hook}\n  - {id: test.other}\n  - {id: test.hook, priority: 1}\n",
			[]string{`t.yaml:4: hooks[2].id: duplicate hook id "test.hook" (first used at line 2)`}},
		{"unknown hook key", "hooks:\n  - {id: test.hook, priorty: 1}\n", []string{`t.yaml:2: hooks[0].priorty: unknown key (did you mean priority?)`}},
		{"hook priority not an integer", "hooks:\n  - {id: test.hook, priority: high}\n",
			[]string{`t.yaml:2: hooks[0].priority: cannot use "high" as an integer`}},
		{"hook priority too big", "hooks:\n  - {id: test.hook, priority: 3000000000}\n",
			[]string{`t.yaml:2: hooks[0].priority: must be between -2147483648 and 2147483647, got 3000000000`}},
		{"hook id not a string", "hooks:\n  - {id: 7}\n", []string{`t.yaml:2: hooks[0].id: cannot use 7 as a string`}},
		{"receive_maximum 0", "mqtt:\n  receive_maximum: 0\n",
			[]string{"t.yaml:2: mqtt.receive_maximum: must be between 1 and 65535, got 0"}},
		{"receive_maximum too big", "mqtt:\n  receive_maximum: 65536\n",
			[]string{"t.yaml:2: mqtt.receive_maximum: must be between 1 and 65535, got 65536"}},
		{"max_packet_size too small", "mqtt:\n  max_packet_size: 15\n",
			[]string{"t.yaml:2: mqtt.max_packet_size: must be between 16 and 268435460, got 15"}},
		{"max_packet_size too big", "mqtt:\n  max_packet_size: 268435461\n",
			[]string{"t.yaml:2: mqtt.max_packet_size: must be between 16 and 268435460, got 268435461"}},
		{"integer overflow", "mqtt:\n  max_queued_messages: 99999999999999999999\n",
			[]string{"t.yaml:2: mqtt.max_queued_messages: must be between 1 and 2147483647, got 99999999999999999999"}},
		{"max_inflight 0", "mqtt:\n  max_inflight: 0\n", []string{"t.yaml:2: mqtt.max_inflight: must be between 1 and 65535, got 0"}},
		{"session_expiry_max 0", "mqtt:\n  session_expiry_max: 0\n",
			[]string{"t.yaml:2: mqtt.session_expiry_max: must be between 1 and 4294967295, got 0"}},
		{"max_client_id_len too small", "mqtt:\n  max_client_id_len: 22\n",
			[]string{"t.yaml:2: mqtt.max_client_id_len: must be between 23 and 65535, got 22"}},
		{"max_connect_size too small", "mqtt:\n  max_connect_size: 15\n",
			[]string{"t.yaml:2: mqtt.max_connect_size: must be between 16 and 268435460, got 15"}},
		{"max_topic_levels zero", "mqtt:\n  max_topic_levels: 0\n",
			[]string{"t.yaml:2: mqtt.max_topic_levels: must be between 1 and 65535, got 0"}},
		{"topic_alias_bytes zero", "mqtt:\n  topic_alias_bytes: 0\n",
			[]string{"t.yaml:2: mqtt.topic_alias_bytes: must be between 1 and 2147483647, got 0"}},
		{"max_subscriptions negative", "mqtt:\n  max_subscriptions: -1\n",
			[]string{"t.yaml:2: mqtt.max_subscriptions: must be between 0 and 2147483647, got -1"}},
		{"max_subscriptions too big", "mqtt:\n  max_subscriptions: 2147483648\n",
			[]string{"t.yaml:2: mqtt.max_subscriptions: must be between 0 and 2147483647, got 2147483648"}},
		{"max_retained_messages negative", "mqtt:\n  max_retained_messages: -5\n",
			[]string{"t.yaml:2: mqtt.max_retained_messages: must be between 0 and 2147483647, got -5"}},
		{"max_retained_bytes too big", "mqtt:\n  max_retained_bytes: 9223372036854775808\n",
			[]string{"t.yaml:2: mqtt.max_retained_bytes: must be between 0 and 9223372036854775807, got 9223372036854775808"}},
		{"max_retained_bytes as a size", "mqtt:\n  max_retained_bytes: 1GiB\n",
			[]string{`t.yaml:2: mqtt.max_retained_bytes: cannot use "1GiB" as an integer`}},
		{"topic_alias_maximum negative", "mqtt:\n  topic_alias_maximum: -1\n",
			[]string{"t.yaml:2: mqtt.topic_alias_maximum: must be between 0 and 65535, got -1"}},
		{"negative duration", "mqtt:\n  sys_interval: -1s\n", []string{"t.yaml:2: mqtt.sys_interval: must not be negative, got -1s"}},
		{"negative seconds", "mqtt:\n  sys_interval: -5\n", []string{"t.yaml:2: mqtt.sys_interval: must not be negative, got -5"}},
		{"zero connect timeout", "mqtt:\n  connect_timeout: 0\n", []string{"t.yaml:2: mqtt.connect_timeout: must be greater than 0"}},
		{"bad duration", "mqtt:\n  connect_timeout: 10 seconds\n",
			[]string{`t.yaml:2: mqtt.connect_timeout: cannot use "10 seconds" as a duration (want e.g. 10s, 1m30s or a number of seconds)`}},
		{"bool for duration", "mqtt:\n  connect_timeout: true\n",
			[]string{`t.yaml:2: mqtt.connect_timeout: cannot use true as a duration (want e.g. 10s, 1m30s or a number of seconds)`}},
		{"unknown log level", "log:\n  level: verbose\n", []string{`t.yaml:2: log.level: unknown level "verbose" (known: debug, info, warn, error)`}},
		{"unknown log format", "log:\n  format: xml\n", []string{`t.yaml:2: log.format: unknown format "xml" (known: text, json)`}},
		{"no listeners", "listeners: []\n", []string{"t.yaml:1: listeners: at least one listener is required"}},
		{"null listeners", "listeners:\n", []string{"t.yaml:1: listeners: at least one listener is required"}},
		{"listeners not a list", "listeners: tcp\n", []string{`t.yaml:1: listeners: cannot use "tcp" as a list of listeners`}},
		{"listener not a mapping", "listeners:\n  - tcp\n", []string{`t.yaml:2: listeners[0]: cannot use "tcp" as a mapping`}},
		{"empty listener", "listeners:\n  -\n", []string{`t.yaml:2: listeners[0]: cannot use an empty value as a listener`}},
		{"missing listener keys", "listeners:\n  - type: tcp\n", []string{
			"t.yaml:2: listeners[0].id: required key missing",
			"t.yaml:2: listeners[0].address: required key missing",
		}},
		{"duplicate listener id", `listeners:
  - {id: a, type: tcp, address: ":1883"}
  - {id: b, type: tcp, address: ":1884"}
  - {id: a, type: tcp, address: ":1885"}
`, []string{`t.yaml:4: listeners[2].id: duplicate listener id "a" (first used at line 2)`}},
		{"empty listener id", "listeners:\n  - {id: \"\", type: tcp, address: \":1\"}\n",
			[]string{"t.yaml:2: listeners[0].id: must not be empty"}},
		{"unknown listener type", "listeners:\n  - id: a\n    type: quic\n    address: \":1\"\n",
			[]string{`t.yaml:3: listeners[0].type: unknown listener type "quic" (known: http, tcp, unix, websocket)`}},
		{"address without port", "listeners:\n  - {id: a, type: tcp, address: \"127.0.0.1\"}\n",
			[]string{`t.yaml:2: listeners[0].address: invalid address "127.0.0.1": missing port in address (want host:port, e.g. 0.0.0.0:1883)`}},
		{"address with bad port", "listeners:\n  - {id: a, type: tcp, address: \"127.0.0.1:mqtt\"}\n",
			[]string{`t.yaml:2: listeners[0].address: invalid address "127.0.0.1:mqtt": port "mqtt" is not a number from 0 to 65535`}},
		{"address with port too big", "listeners:\n  - {id: a, type: tcp, address: \":65536\"}\n",
			[]string{`t.yaml:2: listeners[0].address: invalid address ":65536": port "65536" is not a number from 0 to 65535`}},
		{"unquoted IPv6 address", "listeners:\n  - id: a\n    type: tcp\n    address: [::1]:1883\n",
			[]string{`t.yaml:3: invalid YAML: did not find expected node content`}},
		{"IPv6 address as a flow sequence", "listeners:\n  - id: a\n    type: tcp\n    address: [\"::1\"]\n",
			[]string{`t.yaml:4: listeners[0].address: cannot use a sequence as an address; quote IPv6 addresses, e.g. "[::1]:1883"`}},
		{"syntax error", "mqtt:\n  max_inflight: 1\n bad: 2\n", []string{"t.yaml:2: invalid YAML: did not find expected key"}},
		{"tab indentation", "mqtt:\n\tmax_inflight: 1\n", []string{"t.yaml:2: invalid YAML: found character that cannot start any token"}},
		{"two documents", "mqtt: {}\n---\nlog: {}\n", []string{"t.yaml:2: only one YAML document is allowed"}},
		{"several problems, in file order", `listeners:
  - {id: a, type: udp, address: ":1"}
mqtt:
  receive_maximum: lots
  max_packet_size: 1
log:
  level: loud
`, []string{
			`t.yaml:2: listeners[0].type: unknown listener type "udp" (known: http, tcp, unix, websocket)`,
			`t.yaml:4: mqtt.receive_maximum: cannot use "lots" as an integer`,
			`t.yaml:5: mqtt.max_packet_size: must be between 16 and 268435460, got 1`,
			`t.yaml:7: log.level: unknown level "loud" (known: debug, info, warn, error)`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parseConfig("t.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("parseConfig succeeded with %+v, want an error", cfg)
			}
			if got, want := err.Error(), strings.Join(tt.want, "\n"); got != want {
				t.Errorf("error:\n%s\nwant:\n%s", got, want)
			}
			var ce *configError
			if !errors.As(err, &ce) || ce.File != "t.yaml" || ce.Line == 0 {
				t.Errorf("error %#v is not a *configError with a file and line", err)
			}
		})
	}
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "vanemq.yaml")
	if err := os.WriteFile(path, []byte("mqtt:\n  max_pakcet_size: 10\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := loadConfig(path)
	if want := path + ":2: mqtt.max_pakcet_size: unknown key"; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("loadConfig(bad file) = %v, want an error starting %q", err, want)
	}

	_, err = loadConfig(filepath.Join(dir, "missing.yaml"))
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("loadConfig(missing file) = %v, want a not-exist error naming the file", err)
	}
}

// TestEmbeddedDefault checks that default.yaml, which documents the
// defaults for users, gives exactly the defaults of an empty file, except
// that it allows anonymous clients (it listens on loopback only), and that
// hooks' relative paths are resolved against the working directory.
func TestEmbeddedDefault(t *testing.T) {
	got, err := loadConfig("")
	if err != nil {
		t.Fatalf("loadConfig(\"\"): %v", err)
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	want := with(func(c *config) {
		c.Options.AllowAnonymous = true
		c.Dir = wd
		// make run serves MQTT over WebSocket too, for browsers.
		c.Listeners = append(c.Listeners, listenerConfig{ID: "ws", Type: "websocket", Address: "127.0.0.1:8083", Path: "/mqtt"})
		// and the admin listener: health, readiness and metrics; no API.
		c.Listeners = append(c.Listeners, listenerConfig{ID: "http", Type: "http", Address: "127.0.0.1:8080"})
		// It shows the storage path as ./data: the same directory.
		c.Storage.Path = "./data"
	})
	if !reflect.DeepEqual(got, want) {
		t.Errorf("default.yaml gives\n%+v\nwant\n%+v", got, want)
	}
	for _, l := range got.Listeners {
		if !loopbackOnly([]string{l.Address}) {
			t.Errorf("default.yaml allows anonymous clients on %v, which is not loopback only", l)
		}
	}
}

// TestEmptyFileDeniesAnonymous checks that a config file that leaves
// allow_anonymous out denies anonymous clients, unlike no file at all.
func TestEmptyFileDeniesAnonymous(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vanemq.yaml")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Options.AllowAnonymous {
		t.Error("an empty config file allows anonymous clients")
	}
	if cfg.Dir != filepath.Dir(path) {
		t.Errorf("Dir = %q, want the file's directory %q", cfg.Dir, filepath.Dir(path))
	}
	def, err := loadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	if !def.Options.AllowAnonymous {
		t.Error("the embedded default denies anonymous clients")
	}
}

// TestEveryKeyDocumented checks that docs/configuration.md and
// default.yaml name every key the loader accepts.
func TestEveryKeyDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(defaultYAML, &root); err != nil {
		t.Fatal(err)
	}
	var keys []string
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			walk(n.Content[0], path)
		case yaml.SequenceNode:
			for _, c := range n.Content {
				walk(c, path+"[]")
			}
		case yaml.MappingNode:
			for i := 0; i < len(n.Content); i += 2 {
				k := n.Content[i].Value
				if path != "" {
					k = path + "." + k
				}
				keys = append(keys, k)
				walk(n.Content[i+1], k)
			}
		}
	}
	walk(&root, "")
	slices.Sort(keys)
	keys = slices.Compact(keys)
	for _, k := range keys {
		if !strings.Contains(string(doc), "`"+k+"`") {
			t.Errorf("docs/configuration.md does not document `%s`", k)
		}
	}
	// The "every key" case of TestParseConfig and default.yaml set the
	// same keys.
	everyKeys := keys
	keys = nil
	var every yaml.Node
	if err := yaml.Unmarshal([]byte(everyKeyYAML), &every); err != nil {
		t.Fatal(err)
	}
	walk(&every, "")
	slices.Sort(keys)
	keys = slices.Compact(keys)
	// default.yaml has no hooks; the keys of an entry are checked apart.
	keys = slices.DeleteFunc(keys, func(k string) bool { return strings.HasPrefix(k, "hooks[].") })
	// Keys only some listener types take are not in default.yaml either.
	for _, k := range []string{"hooks[].id", "hooks[].priority", "hooks[].config",
		"listeners[].tls.cert", "listeners[].tls.key", "listeners[].tls.client_ca",
		"listeners[].tls.require_client_cert", "listeners[].tls.min_version", "listeners[].tls.identity_as_username",
		"listeners[].allowed_origins", "listeners[].allowed_hosts", "listeners[].mode", "listeners[].proxy_protocol", "listeners[].proxy_protocol_trusted",
		"listeners[].token", "listeners[].max_connections", "listeners[].connection_rate",
		"listeners[].connection_burst",
		// Storage keys of other types than default.yaml's, and tuning.
		"storage.commit_interval", "storage.commit_max_ops", "storage.min_free_space", "storage.redis",
		"storage.redis.address", "storage.redis.username", "storage.redis.password",
		"storage.redis.db", "storage.redis.prefix", "storage.redis.dial_timeout",
		"storage.redis.tls", "storage.redis.tls.ca", "storage.redis.tls.cert",
		"storage.redis.tls.key", "storage.redis.tls.server_name"} {
		if !strings.Contains(string(doc), "`"+k+"`") {
			t.Errorf("docs/configuration.md does not document `%s`", k)
		}
	}
	if !reflect.DeepEqual(keys, everyKeys) {
		t.Errorf("everyKeyYAML sets\n%v\nand default.yaml\n%v", keys, everyKeys)
	}
}

// The test-only hook modules. test.hook and test.other decode a
// testHookConfig; the others each misbehave in one way.
func init() {
	for _, id := range []string{"test.hook", "test.other"} {
		core.RegisterHookModule(core.HookModule{ID: id, New: func(hc core.HookConfig) (core.Hook, error) {
			return newTestHook(id, hc)
		}})
	}
	core.RegisterHookModule(core.HookModule{ID: "test.noconfig", New: func(hc core.HookConfig) (core.Hook, error) {
		return &testHook{id: "test.noconfig"}, nil
	}})
	core.RegisterHookModule(core.HookModule{ID: "test.panic", New: func(hc core.HookConfig) (core.Hook, error) {
		panic("boom")
	}})
	core.RegisterHookModule(core.HookModule{ID: "test.wrongid", New: func(hc core.HookConfig) (core.Hook, error) {
		return &testHook{id: "test.other"}, nil
	}})
	core.RegisterHookModule(core.HookModule{ID: "test.nil", New: func(hc core.HookConfig) (core.Hook, error) {
		return nil, nil
	}})
	core.RegisterHookModule(core.HookModule{ID: "test.badtopic", New: func(hc core.HookConfig) (core.Hook, error) {
		return &testHook{id: "test.badtopic", topics: []string{"a/#/b"}}, nil
	}})
	core.RegisterHookModule(core.HookModule{ID: "test.nonpointer", New: func(hc core.HookConfig) (core.Hook, error) {
		var c testHookConfig
		if err := hc.Decode(c); err != nil {
			return nil, err
		}
		return &testHook{id: "test.nonpointer"}, nil
	}})
}

// testHookConfig is the config block of test.hook and test.other.
type testHookConfig struct {
	Greeting string        `yaml:"greeting"`
	Max      int           `yaml:"max"`
	Wait     time.Duration `yaml:"wait"`
	Enabled  bool          `yaml:"enabled"`
	Users    []string      `yaml:"users"` // Authenticate allows these usernames
	Limits   struct {
		Rate  int `yaml:"rate"`
		Burst int `yaml:"burst"`
	} `yaml:"limits"`
	Rules []struct {
		Filter string `yaml:"filter"`
		Allow  bool   `yaml:"allow"`
	} `yaml:"rules"`
	Fail string `yaml:"fail"` // New fails with this message
}

// testHook is the hook the test modules make: it authenticates the users
// of its config and says Next for everyone else.
type testHook struct {
	id     string
	topics []string
	cfg    testHookConfig
	hc     core.HookConfig
}

func newTestHook(id string, hc core.HookConfig) (core.Hook, error) {
	h := &testHook{id: id, hc: hc}
	h.cfg.Greeting = "hello" // a default the config may override
	if err := hc.Decode(&h.cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", id, err)
	}
	if h.cfg.Fail != "" {
		return nil, errors.New(h.cfg.Fail)
	}
	return h, nil
}

func (h *testHook) ID() string { return h.id }

func (h *testHook) Events() core.EventSet { return core.Events(core.EventAuthenticate) }

func (h *testHook) Topics() []string { return h.topics }

func (h *testHook) Authenticate(_ context.Context, _ *core.ClientInfo, cred *core.Credentials) core.Verdict {
	if slices.Contains(h.cfg.Users, cred.Username) {
		return core.Allow
	}
	return core.Next
}

// buildFrom parses yaml as t.yaml in dir and builds its hooks.
func buildFrom(t *testing.T, yml, dir string) ([]builtHook, error) {
	t.Helper()
	cfg, err := parseConfig("t.yaml", []byte(yml))
	if err != nil {
		t.Fatalf("parseConfig: %v", err)
	}
	cfg.Dir = dir
	return buildHooks(nil, cfg, slog.New(slog.DiscardHandler))
}

func TestBuildHooks(t *testing.T) {
	built, err := buildFrom(t, `hooks:
  - id: test.hook
    priority: 100
    config:
      max: 7
      wait: 1m
      enabled: true
      users: [alice, bob]
      limits: {rate: 10, burst: 20}
  - {id: test.other, config: {greeting: hi}}
  - {id: test.noconfig}
`, "/etc/vanemq")
	if err != nil {
		t.Fatalf("buildHooks: %v", err)
	}
	if len(built) != 3 {
		t.Fatalf("built %d hooks, want 3", len(built))
	}
	h := built[0].hook.(*testHook)
	want := testHookConfig{Greeting: "hello", Max: 7, Wait: time.Minute, Enabled: true, Users: []string{"alice", "bob"}}
	want.Limits.Rate, want.Limits.Burst = 10, 20
	if !reflect.DeepEqual(h.cfg, want) {
		t.Errorf("test.hook config = %+v, want %+v", h.cfg, want)
	}
	if h.hc.Dir != "/etc/vanemq" || h.hc.Logger == nil || built[0].cfg.Priority != 100 {
		t.Errorf("test.hook got Dir %q, Logger %v, priority %d", h.hc.Dir, h.hc.Logger, built[0].cfg.Priority)
	}
	if got := built[1].hook.(*testHook).cfg.Greeting; got != "hi" {
		t.Errorf("test.other greeting = %q, want hi", got)
	}
	if got := built[2].hook.ID(); got != "test.noconfig" {
		t.Errorf("third hook is %q", got)
	}
}

// TestBuildHooksLogger checks that a hook's logger is the server's, with
// the hook's ID attached.
func TestBuildHooksLogger(t *testing.T) {
	cfg, err := parseConfig("t.yaml", []byte("hooks:\n  - {id: test.hook}\n"))
	if err != nil {
		t.Fatal(err)
	}
	var buf strings.Builder
	built, err := buildHooks(nil, cfg, slog.New(slog.NewTextHandler(&buf, nil)))
	if err != nil {
		t.Fatal(err)
	}
	built[0].hook.(*testHook).hc.Logger.Info("loaded")
	if !strings.Contains(buf.String(), "msg=loaded hook=test.hook") {
		t.Errorf("hook logged %q, want the hook attribute", buf.String())
	}
}

// aliasBomb is a flow sequence of 10^6 elements once its aliases are
// expanded.
var aliasBomb = func() string {
	var b strings.Builder
	b.WriteString("[&a0 [x, x, x, x, x, x, x, x, x, x]")
	for i := 1; i <= 5; i++ {
		fmt.Fprintf(&b, ", &a%d [", i)
		for j := range 10 {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "*a%d", i-1)
		}
		b.WriteString("]")
	}
	b.WriteString("]")
	return b.String()
}()

func TestBuildHooksErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // every line of the error, in order
	}{
		{"unknown config key", `hooks:
  - id: test.hook
    config:
      max: 1
      greting: hi
`, []string{"t.yaml:5: hooks[0].config.greting: unknown key"}},
		{"unknown key in a flow mapping", "hooks:\n  - {id: test.hook, config: {max: 1, colour: red}}\n",
			[]string{"t.yaml:2: hooks[0].config.colour: unknown key"}},
		{"unknown nested key", `hooks:
  - id: test.hook
    config:
      limits:
        rate: 1
        brust: 2
`, []string{"t.yaml:6: hooks[0].config.limits.brust: unknown key"}},
		{"wrong types", `hooks:
  - id: test.other
    priority: 5
    config:
      max: lots
      enabled: 1
      wait: soon
      users: alice
      limits: 3
`, []string{
			`t.yaml:5: hooks[0].config.max: cannot use "lots" as an integer`,
			`t.yaml:6: hooks[0].config.enabled: cannot use 1 as a boolean (want true or false)`,
			`t.yaml:7: hooks[0].config.wait: cannot use "soon" as a duration (e.g. 10s, 1m30s)`,
			`t.yaml:8: hooks[0].config.users: cannot use "alice" as a list`,
			`t.yaml:9: hooks[0].config.limits: cannot use 3 as a mapping`,
		}},
		{"wrong type in a list", "hooks:\n  - id: test.hook\n    config:\n      users:\n        - alice\n        - [bob]\n",
			[]string{`t.yaml:6: hooks[0].config.users[1]: cannot use a sequence as a string`}},
		{"unknown key in a list of mappings", `hooks:
  - id: test.hook
    config:
      rules:
        - {filter: "a/#", allow: true}
        - {filter: "b/#", alow: true}
        - filter: "c/#"
          allow: maybe
`, []string{
			"t.yaml:6: hooks[0].config.rules[1].alow: unknown key",
			`t.yaml:8: hooks[0].config.rules[2].allow: cannot use "maybe" as a boolean (want true or false)`,
		}},
		{"alias bomb", "hooks:\n  - id: test.hook\n    config:\n      rules: " + aliasBomb + "\n",
			[]string{"t.yaml:4: hooks[0].config: too large once YAML aliases are expanded"}},
		{"config not a mapping", "hooks:\n  - {id: test.hook, config: users.yaml}\n",
			[]string{`t.yaml:2: hooks[0].config: cannot use "users.yaml" as a mapping`}},
		{"duplicate config key", "hooks:\n  - id: test.hook\n    config:\n      max: 1\n      max: 2\n",
			[]string{`t.yaml:5: hooks[0].config.max: duplicate key (first set at line 4)`}},
		{"New fails", "hooks:\n  - {id: test.hook}\n  - {id: test.other, priority: 3, config: {fail: \"users.yaml: no such file\"}}\n",
			[]string{`t.yaml:3: hooks[1]: users.yaml: no such file`}},
		{"every hook's problems", `hooks:
  - {id: test.hook, config: {fail: "first"}}
  - {id: test.other, config: {max: x}}
`, []string{
			`t.yaml:2: hooks[0]: first`,
			`t.yaml:3: hooks[1].config.max: cannot use "x" as an integer`,
		}},
		{"New panics", "hooks:\n  - {id: test.panic}\n", []string{`t.yaml:2: hooks[0]: hook "test.panic" panicked while starting: boom`}},
		{"config for a hook that takes none", "hooks:\n  - id: test.noconfig\n    config: {a: 1}\n",
			[]string{`t.yaml:3: hooks[0].config: hook "test.noconfig" takes no config`}},
		{"hook with another ID", "hooks:\n  - {id: test.wrongid}\n",
			[]string{`t.yaml:2: hooks[0]: hook module "test.wrongid" made a hook with ID "test.other"; a hook's ID must be the id that names it`}},
		{"no hook", "hooks:\n  - {id: test.nil}\n", []string{`t.yaml:2: hooks[0]: hook module "test.nil" returned no hook`}},
		{"Decode without a pointer", "hooks:\n  - {id: test.nonpointer, config: {max: 1}}\n",
			[]string{`t.yaml:2: hooks[0]: hook "test.nonpointer": HookConfig.Decode needs a non-nil pointer, got vanemqcmd.testHookConfig`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			built, err := buildFrom(t, tt.yaml, t.TempDir())
			if err == nil {
				t.Fatalf("buildHooks succeeded with %d hooks, want an error", len(built))
			}
			if got, want := err.Error(), strings.Join(tt.want, "\n"); got != want {
				t.Errorf("error:\n%s\nwant:\n%s", got, want)
			}
			var ce *configError
			if !errors.As(err, &ce) || ce.File != "t.yaml" || ce.Line == 0 {
				t.Errorf("error %#v is not a *configError with a file and line", err)
			}
		})
	}
}

// TestBuildHooksAlias checks a config block given through a YAML alias
// whose anchor lies outside the hooks list.
func TestBuildHooksAlias(t *testing.T) {
	cfg := &config{Hooks: []hookConfig{{ID: "test.hook", File: "t.yaml", Line: 5, Key: "hooks[0]"}}}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte("x: &cfg\n  max: 1\n  colour: red\ny: *cfg\n"), &doc); err != nil {
		t.Fatal(err)
	}
	cfg.Hooks[0].Config = doc.Content[0].Content[3] // the alias
	_, err := buildHooks(nil, cfg, slog.New(slog.DiscardHandler))
	if want := "t.yaml:3: hooks[0].config.colour: unknown key"; err == nil || err.Error() != want {
		t.Errorf("error %v, want %s", err, want)
	}
}

// "MODULE:NAME" runs a module under an ID of its own: two js hooks in one
// config; a module that does not take an instance name is refused with
// the ID it made.
func TestHookInstanceIDs(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"a.js", "b.js"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("function authorizePublish() { return true; }"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	built, err := buildFrom(t, "hooks:\n  - {id: \"js:a\", config: {script: a.js, watch: false}}\n  - {id: \"js:b\", config: {script: b.js, watch: false}}\n", dir)
	if err != nil {
		t.Fatalf("two js instances: %v", err)
	}
	closeBuilt(built, slog.New(slog.DiscardHandler))
	if len(built) != 2 || built[0].hook.ID() != "js:a" || built[1].hook.ID() != "js:b" {
		t.Fatalf("built %d hooks", len(built))
	}
	if _, err := buildFrom(t, "hooks:\n  - {id: \"auth.allow:x\"}\n", dir); err == nil || !strings.Contains(err.Error(), `made a hook with ID "auth.allow"`) {
		t.Errorf("auth.allow:x: %v, want the module's fixed ID refused", err)
	}
}

// The bridge module's config errors, through the config file: a key's
// type names its line; a value the bridge refuses names the hook's line,
// the bridge and its key.
func TestBridgeConfigErrors(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       string
	}{
		{"wrong type", `hooks:
  - id: bridge
    config:
      bridges:
        - name: cloud
          address: tcp://127.0.0.1:1
          keepalive: often
`, `t.yaml:7: hooks[0].config.bridges[0].keepalive: cannot use "often" as a duration (e.g. 10s, 1m30s)`},
		{"unknown key", `hooks:
  - id: bridge
    config:
      bridges:
        - {name: cloud, address: "tcp://127.0.0.1:1", topic: []}
`, `t.yaml:5: hooks[0].config.bridges[0].topic: unknown key`},
		{"bad rule", `hooks:
  - id: bridge
    config:
      bridges:
        - name: cloud
          address: tcp://127.0.0.1:1
          protocol: 5
          topics:
            - {direction: sideways, filter: "a/#"}
`, `t.yaml:2: hooks[0]: bridge: bridges[0] (cloud): topics[0]: direction: "sideways" is not out, in or both`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := buildFrom(t, tt.yaml, t.TempDir())
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error:\n%v\nwant:\n%s", err, tt.want)
			}
		})
	}
}
