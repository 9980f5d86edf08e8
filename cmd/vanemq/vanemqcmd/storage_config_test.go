package vanemqcmd

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// withStorage returns the default storage changed by f.
func withStorage(f func(s *storageConfig)) storageConfig {
	s := defaultStorageWant
	f(&s)
	return s
}

func TestParseStorageConfig(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want storageConfig
	}{
		{"no section", "", defaultStorageWant},
		{"empty section", "storage:\n", defaultStorageWant},
		{"empty mapping", "storage: {}\n", defaultStorageWant},
		{"pebble, every key", `storage:
  type: pebble
  path: ./state
  durability: none
  commit_interval: 5ms
  commit_max_ops: 64
  min_free_space: 1048576
`, withStorage(func(s *storageConfig) {
			s.Path, s.Durability, s.CommitInterval, s.CommitMaxOps, s.MinFreeSpace = "./state", "none", 5*time.Millisecond, 64, 1<<20
		})},
		{"type left out is pebble", "storage: {path: /var/lib/vanemq}\n", withStorage(func(s *storageConfig) { s.Path = "/var/lib/vanemq" })},
		{"memory", "storage: {type: memory}\n", withStorage(func(s *storageConfig) { s.Type = "memory" })},
		{"commit_interval 0", "storage: {commit_interval: 0}\n", defaultStorageWant},
		{"commit_interval 1s", "storage: {commit_interval: 1s}\n", withStorage(func(s *storageConfig) { s.CommitInterval = time.Second })},
		{"redis, every key", `storage:
  type: redis
  durability: sync
  commit_interval: 2ms
  commit_max_ops: 1000
  redis:
    address: "redis.internal:6380"
    username: vanemq
    password: s3cret
    db: 3
    prefix: broker1
    dial_timeout: 2s
    tls:
      ca: ca.pem
      cert: client.pem
      key: client-key.pem
      server_name: redis.example
`, withStorage(func(s *storageConfig) {
			s.Type, s.CommitInterval, s.CommitMaxOps = "redis", 2*time.Millisecond, 1000
			s.Redis = redisConfig{Address: "redis.internal:6380", Username: "vanemq", Password: "s3cret", DB: 3,
				Prefix: "broker1", DialTimeout: 2 * time.Second,
				TLS: &clientTLSConfig{CA: "ca.pem", Cert: "client.pem", Key: "client-key.pem", ServerName: "redis.example"}}
		})},
		{"redis, address only", "storage:\n  type: redis\n  redis: {address: \"[::1]:6379\"}\n", withStorage(func(s *storageConfig) {
			s.Type, s.Redis.Address = "redis", "[::1]:6379"
		})},
		{"redis, TLS with system roots", "storage:\n  type: redis\n  redis: {address: \"h:6379\", tls: {}}\n", withStorage(func(s *storageConfig) {
			s.Type, s.Redis.Address, s.Redis.TLS = "redis", "h:6379", &clientTLSConfig{}
		})},
		{"nats, every key", `storage:
  type: nats
  durability: none
  commit_interval: 1ms
  commit_max_ops: 100
  nats:
    urls: ["nats://n1.internal:4222", "tls://n2.internal"]
    prefix: site-1
    username: vanemq
    password: s3cret
    replicas: 3
    timeout: 2s
    tls:
      ca: ca.pem
      cert: client.pem
      key: client-key.pem
      server_name: nats.example
`, withStorage(func(s *storageConfig) {
			s.Type, s.Durability, s.CommitInterval, s.CommitMaxOps = "nats", "none", time.Millisecond, 100
			s.NATS = natsConfig{URLs: []string{"nats://n1.internal:4222", "tls://n2.internal"}, Prefix: "site-1", prefixSet: true,
				Username: "vanemq", Password: "s3cret", Replicas: 3, Timeout: 2 * time.Second,
				TLS: &clientTLSConfig{CA: "ca.pem", Cert: "client.pem", Key: "client-key.pem", ServerName: "nats.example"}}
		})},
		{"nats, urls only", "storage:\n  type: nats\n  nats: {urls: [\"nats://127.0.0.1:4222\"]}\n", withStorage(func(s *storageConfig) {
			s.Type, s.NATS.URLs = "nats", []string{"nats://127.0.0.1:4222"}
		})},
		{"nats, credentials", "storage:\n  type: nats\n  nats: {urls: [\"nats://h:4222\"], credentials: vanemq.creds}\n", withStorage(func(s *storageConfig) {
			s.Type, s.NATS.URLs, s.NATS.Credentials = "nats", []string{"nats://h:4222"}, "vanemq.creds"
		})},
		{"nats, token", "storage:\n  type: nats\n  nats: {urls: [\"ws://h:8080\"], token: t0k}\n", withStorage(func(s *storageConfig) {
			s.Type, s.NATS.URLs, s.NATS.Token = "nats", []string{"ws://h:8080"}, "t0k"
		})},
		{"redis block before type", "storage:\n  redis: {address: \"h:6379\"}\n  type: redis\n", withStorage(func(s *storageConfig) {
			s.Type, s.Redis.Address = "redis", "h:6379"
		})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseConfig("t.yaml", []byte(tt.yaml))
			if err != nil {
				t.Fatalf("parseConfig: %v", err)
			}
			if !reflect.DeepEqual(got.Storage, tt.want) {
				t.Errorf("storage =\n%+v\nwant\n%+v", got.Storage, tt.want)
			}
		})
	}
}

func TestParseStorageConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // every line of the error, in order
	}{
		{"bad type", "storage:\n  type: sqlite\n",
			[]string{`t.yaml:2: storage.type: unknown storage type "sqlite" (known: memory, pebble, redis, nats)`}},
		{"type not a string", "storage:\n  type: [pebble]\n",
			[]string{`t.yaml:2: storage.type: cannot use a sequence as a string`}},
		{"bad durability", "storage:\n  type: pebble\n  durability: always\n",
			[]string{`t.yaml:3: storage.durability: unknown durability "always" (known: sync, none)`}},
		{"redis block with pebble", "storage:\n  type: pebble\n  path: data\n  redis:\n    address: \"h:6379\"\n",
			[]string{`t.yaml:5: storage.redis: not used by storage of type "pebble"`}},
		{"redis block, type left out", "storage:\n  redis: {address: \"h:6379\"}\n",
			[]string{`t.yaml:2: storage.redis: not used by storage of type "pebble" (type left out: pebble is the default)`}},
		{"path with redis", "storage:\n  type: redis\n  path: data\n  redis: {address: \"h:6379\"}\n",
			[]string{`t.yaml:3: storage.path: not used by storage of type "redis"`}},
		{"keys with memory, in file order", "storage:\n  commit_max_ops: 10\n  type: memory\n  durability: none\n  path: data\n",
			[]string{
				`t.yaml:2: storage.commit_max_ops: not used by storage of type "memory"`,
				`t.yaml:4: storage.durability: not used by storage of type "memory"`,
				`t.yaml:5: storage.path: not used by storage of type "memory"`,
			}},
		{"missing redis address", "storage:\n  type: redis\n  redis:\n    db: 1\n",
			[]string{`t.yaml:4: storage.redis.address: required key missing: type redis needs the server's host:port`}},
		{"missing redis block", "storage:\n  type: redis\n",
			[]string{`t.yaml:2: storage.redis.address: required key missing: type redis needs the server's host:port`}},
		{"redis address without a port", "storage:\n  type: redis\n  redis: {address: redis.internal}\n",
			[]string{`t.yaml:3: storage.redis.address: invalid address "redis.internal": missing port in address (want host:port, e.g. 127.0.0.1:6379)`}},
		{"redis address with port 0", "storage:\n  type: redis\n  redis: {address: \"h:0\"}\n",
			[]string{`t.yaml:3: storage.redis.address: invalid address "h:0": port "0" is not a number from 1 to 65535`}},
		{"redis not a mapping", "storage:\n  type: redis\n  redis: \"h:6379\"\n",
			[]string{`t.yaml:3: storage.redis: cannot use "h:6379" as a mapping`}},
		{"commit_interval out of range", "storage:\n  commit_interval: 2s\n",
			[]string{`t.yaml:2: storage.commit_interval: must be between 0s and 1s, got 2s`}},
		{"commit_interval in seconds out of range", "storage:\n  commit_interval: 5\n",
			[]string{`t.yaml:2: storage.commit_interval: must be between 0s and 1s, got 5`}},
		{"commit_interval negative", "storage:\n  commit_interval: -1ms\n",
			[]string{`t.yaml:2: storage.commit_interval: must not be negative, got -1ms`}},
		{"min_free_space too small", "storage:\n  min_free_space: 1000\n",
			[]string{`t.yaml:2: storage.min_free_space: must be between 1048576 and 1125899906842624, got 1000`}},
		{"min_free_space with redis", "storage:\n  type: redis\n  min_free_space: 1048576\n  redis: {address: \"127.0.0.1:6379\"}\n",
			[]string{`t.yaml:3: storage.min_free_space: not used by storage of type "redis"`}},
		{"commit_max_ops 0", "storage:\n  commit_max_ops: 0\n",
			[]string{`t.yaml:2: storage.commit_max_ops: must be between 1 and 2147483647, got 0`}},
		{"empty path", "storage:\n  path: \"\"\n",
			[]string{`t.yaml:2: storage.path: must not be empty (the data directory; relative to the config file's directory)`}},
		{"unknown key", "storage:\n  type: pebble\n  dir: data\n",
			[]string{`t.yaml:3: storage.dir: unknown key`}},
		{"unknown key, suggestion", "storage:\n  durabilty: sync\n",
			[]string{`t.yaml:2: storage.durabilty: unknown key (did you mean durability?)`}},
		{"unknown redis key", "storage:\n  type: redis\n  redis:\n    address: \"h:6379\"\n    pasword: x\n",
			[]string{`t.yaml:5: storage.redis.pasword: unknown key (did you mean password?)`}},
		{"redis db negative", "storage:\n  type: redis\n  redis: {address: \"h:6379\", db: -1}\n",
			[]string{`t.yaml:3: storage.redis.db: must be between 0 and 2147483647, got -1`}},
		{"redis empty prefix", "storage:\n  type: redis\n  redis: {address: \"h:6379\", prefix: \"\"}\n",
			[]string{`t.yaml:3: storage.redis.prefix: must not be empty`}},
		{"redis dial_timeout 0", "storage:\n  type: redis\n  redis: {address: \"h:6379\", dial_timeout: 0}\n",
			[]string{`t.yaml:3: storage.redis.dial_timeout: must be greater than 0`}},
		{"redis tls cert without key", "storage:\n  type: redis\n  redis:\n    address: \"h:6379\"\n    tls: {cert: c.pem}\n",
			[]string{`t.yaml:5: storage.redis.tls.key: required key missing: cert needs its key`}},
		{"redis tls unknown key", "storage:\n  type: redis\n  redis:\n    address: \"h:6379\"\n    tls:\n      client_ca: c.pem\n",
			[]string{`t.yaml:6: storage.redis.tls.client_ca: unknown key`}},
		{"nats block with redis", "storage:\n  type: redis\n  redis: {address: \"h:6379\"}\n  nats: {urls: [\"nats://h:4222\"]}\n",
			[]string{`t.yaml:4: storage.nats: not used by storage of type "redis"`}},
		{"missing nats block", "storage:\n  type: nats\n",
			[]string{`t.yaml:2: storage.nats.urls: required key missing: type nats needs at least one NATS server URL`}},
		{"missing nats urls", "storage:\n  type: nats\n  nats:\n    prefix: x\n",
			[]string{`t.yaml:4: storage.nats.urls: required key missing: type nats needs at least one NATS server URL`}},
		{"nats urls empty", "storage:\n  type: nats\n  nats: {urls: []}\n",
			[]string{`t.yaml:3: storage.nats.urls: must list at least one NATS server URL`}},
		{"nats urls not a list", "storage:\n  type: nats\n  nats: {urls: \"nats://h:4222\"}\n",
			[]string{`t.yaml:3: storage.nats.urls: cannot use "nats://h:4222" as a list of NATS server URLs`}},
		{"nats url without scheme", "storage:\n  type: nats\n  nats:\n    urls:\n      - nats://a:4222\n      - b:4222\n",
			[]string{`t.yaml:6: storage.nats.urls[1]: invalid URL "b:4222": scheme "b" (want nats, tls, ws or wss)`}},
		{"nats url with a bad port", "storage:\n  type: nats\n  nats: {urls: [\"nats://h:0\"]}\n",
			[]string{`t.yaml:3: storage.nats.urls[0]: invalid URL "nats://h:0": port "0" is not a number from 1 to 65535`}},
		{"nats url without host", "storage:\n  type: nats\n  nats: {urls: [\"nats://:4222\"]}\n",
			[]string{`t.yaml:3: storage.nats.urls[0]: invalid URL "nats://:4222": no host (want nats://host:port)`}},
		{"nats bad prefix", "storage:\n  type: nats\n  nats: {urls: [\"nats://h\"], prefix: a.b}\n",
			[]string{`t.yaml:3: storage.nats.prefix: "a.b": use 1 to 100 letters, digits, '-' and '_' (it starts the bucket's name)`}},
		{"nats two ways to authenticate", "storage:\n  type: nats\n  nats:\n    urls: [\"nats://h\"]\n    token: t\n    credentials: x.creds\n",
			[]string{`t.yaml:6: storage.nats.credentials: set with token: use one of username (and password), token and credentials`}},
		{"nats password without username", "storage:\n  type: nats\n  nats:\n    urls: [\"nats://h\"]\n    password: p\n",
			[]string{`t.yaml:4: storage.nats.username: required key missing: password needs a username`}},
		{"nats replicas", "storage:\n  type: nats\n  nats: {urls: [\"nats://h\"], replicas: 7}\n",
			[]string{`t.yaml:3: storage.nats.replicas: must be between 1 and 5, got 7`}},
		{"nats timeout 0", "storage:\n  type: nats\n  nats: {urls: [\"nats://h\"], timeout: 0s}\n",
			[]string{`t.yaml:3: storage.nats.timeout: must be greater than 0`}},
		{"nats tls key without cert", "storage:\n  type: nats\n  nats:\n    urls: [\"nats://h\"]\n    tls: {key: k.pem}\n",
			[]string{`t.yaml:5: storage.nats.tls.cert: required key missing: key needs its cert`}},
		{"unknown nats key", "storage:\n  type: nats\n  nats:\n    urls: [\"nats://h\"]\n    url: nats://h\n",
			[]string{`t.yaml:5: storage.nats.url: unknown key (did you mean urls?)`}},
		{"path with nats", "storage:\n  type: nats\n  path: data\n  nats: {urls: [\"nats://h\"]}\n",
			[]string{`t.yaml:3: storage.path: not used by storage of type "nats"`}},
		{"section not a mapping", "storage: pebble\n",
			[]string{`t.yaml:1: storage: cannot use "pebble" as a mapping`}},
		{"duplicate key", "storage:\n  type: pebble\n  type: redis\n",
			[]string{`t.yaml:3: storage.type: duplicate key (first set at line 2)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parseConfig("t.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("parseConfig succeeded with %+v, want an error", cfg.Storage)
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
