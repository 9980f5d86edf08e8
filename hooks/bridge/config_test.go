package bridge

import (
	"strings"
	"testing"
	"time"
)

// Config errors name the bridge and the key.
func TestConfigErrors(t *testing.T) {
	good := func() BridgeConfig {
		return BridgeConfig{Name: "cloud", Address: "tcp://broker.example:1883",
			Topics: []TopicRule{{Direction: DirOut, Filter: "sensors/#", RemotePrefix: "site1/", QoS: 1}}}
	}
	cases := []struct {
		name   string
		change func(*BridgeConfig)
		want   string // "" when valid
	}{
		{"valid", func(*BridgeConfig) {}, ""},
		{"no name", func(b *BridgeConfig) { b.Name = "" }, "bridges[0]: name: "},
		{"bad name", func(b *BridgeConfig) { b.Name = "a b" }, "bridges[0] (a b): name: "},
		{"scheme", func(b *BridgeConfig) { b.Address = "http://x:1" }, "bridges[0] (cloud): address: \"http://x:1\": the scheme is not"},
		{"no host", func(b *BridgeConfig) { b.Address = "tcp://:1883" }, "bridges[0] (cloud): address: \"tcp://:1883\": no host"},
		{"port", func(b *BridgeConfig) { b.Address = "tcp://x:99999" }, "bridges[0] (cloud): address: \"tcp://x:99999\": port"},
		{"protocol", func(b *BridgeConfig) { b.Protocol = "3.1" }, "bridges[0] (cloud): protocol: \"3.1\" is not 5 or 3.1.1"},
		{"tls on tcp", func(b *BridgeConfig) { b.TLS = &TLSConfig{CA: "ca.pem"} }, "bridges[0] (cloud): tls: set for an address"},
		{"cert without key", func(b *BridgeConfig) {
			b.Address, b.TLS = "tls://x", &TLSConfig{Cert: "c.pem"}
		}, "bridges[0] (cloud): tls: cert and key go together"},
		{"keepalive", func(b *BridgeConfig) { b.KeepAlive = 100000 * time.Second }, "bridges[0] (cloud): keepalive: "},
		{"backoff", func(b *BridgeConfig) { b.BackoffMin, b.BackoffMax = time.Minute, time.Second }, "bridges[0] (cloud): backoff_max: "},
		{"queue size", func(b *BridgeConfig) { b.QueueSize = -1 }, "bridges[0] (cloud): queue_size: "},
		{"no topics", func(b *BridgeConfig) { b.Topics = nil }, "bridges[0] (cloud): topics: none"},
		{"direction", func(b *BridgeConfig) { b.Topics[0].Direction = "up" }, "bridges[0] (cloud): topics[0]: direction: \"up\""},
		{"no direction", func(b *BridgeConfig) { b.Topics[0].Direction = "" }, "bridges[0] (cloud): topics[0]: direction: required"},
		{"qos", func(b *BridgeConfig) { b.Topics[0].QoS = 3 }, "bridges[0] (cloud): topics[0]: qos: 3"},
		{"bad filter", func(b *BridgeConfig) { b.Topics[0].Filter = "a/#/b" }, "bridges[0] (cloud): topics[0]: filter: "},
		{"shared filter", func(b *BridgeConfig) { b.Topics[0].Filter = "$share/g/a" }, "bridges[0] (cloud): topics[0]: filter: a shared"},
		{"wildcard prefix", func(b *BridgeConfig) { b.Topics[0].RemotePrefix = "site/+/" }, "bridges[0] (cloud): topics[0]: remote_prefix: "},
		{"notification topic", func(b *BridgeConfig) { b.NotificationTopic = "a/#" }, "bridges[0] (cloud): notification_topic: "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := good()
			tc.change(&b)
			c := Config{Bridges: []BridgeConfig{b}}
			err := c.check()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	// Two bridges of one name; none at all.
	dup := Config{Bridges: []BridgeConfig{good(), good()}}
	if err := dup.check(); err == nil || !strings.Contains(err.Error(), "bridges[1] (cloud): name: \"cloud\" is the name of another bridge") {
		t.Errorf("duplicate names: %v", err)
	}
	if err := (&Config{}).check(); err == nil || !strings.Contains(err.Error(), "bridges: none") {
		t.Errorf("no bridges: %v", err)
	}
}

// The defaults a bridge gets, and the topic renaming of its rules.
func TestConfigDefaultsAndRename(t *testing.T) {
	c := Config{Bridges: []BridgeConfig{{Name: "cloud", Address: "tls://broker.example",
		Topics: []TopicRule{{Direction: DirIn, Filter: "#", RemotePrefix: "commands/site1/", LocalPrefix: "cmd/"}}}}}
	if err := c.check(); err != nil {
		t.Fatal(err)
	}
	b := c.Bridges[0]
	if scheme, target, _ := b.dialTarget(); scheme != "tls" || target != "broker.example:8883" {
		t.Errorf("dial target %s %s, want tls broker.example:8883", scheme, target)
	}
	if b.Protocol != "5" || b.KeepAlive != time.Minute || b.SessionExpiry != time.Hour || b.QueueSize != 100000 ||
		b.Inflight != 64 || !*b.Notifications || !*b.TryPrivate || !strings.HasSuffix(b.ClientID, ".cloud") ||
		b.NotificationTopic != "bridges/"+b.ClientID+"/state" {
		t.Errorf("defaults: %+v", b)
	}
	for _, tc := range []struct{ topic, from, to, want string }{
		{"commands/site1/reboot", "commands/site1/", "cmd/", "cmd/reboot"},
		{"commands/site1", "commands/site1/", "cmd/", "cmd"}, // "p/#" matches "p"
		{"a/b", "", "site1/", "site1/a/b"},
		{"site1/a", "site1/", "", "a"},
	} {
		if got := rename(tc.topic, tc.from, tc.to); got != tc.want {
			t.Errorf("rename(%q, %q, %q) = %q, want %q", tc.topic, tc.from, tc.to, got, tc.want)
		}
	}
	if _, target, _ := (&BridgeConfig{Address: "wss://h"}).dialTarget(); target != "wss://h:443/mqtt" {
		t.Errorf("wss target %s", target)
	}
}
