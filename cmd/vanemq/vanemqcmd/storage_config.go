package vanemqcmd

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/vanemq/vanemq/hooks/storage"
)

// storageConfig is the storage section: where the broker keeps its state
// (persistent sessions, their subscriptions and messages, retained
// messages) across restarts. storage.go opens the store it describes.
type storageConfig struct {
	Type           string        // storage.TypePebble (default), TypeRedis or TypeMemory (no store)
	Durability     string        // pebble, redis: storage.DurabilitySync (default) or DurabilityNone
	CommitInterval time.Duration // pebble, redis: 0 to 1s; 0 never waits for more changes
	CommitMaxOps   int           // pebble, redis: changes that make a batch write at once
	Path           string        // pebble: the data directory, relative to the config file's directory
	MinFreeSpace   uint64        // pebble: free bytes below which writes are refused
	Redis          redisConfig   // redis: the server
}

// redisConfig is the storage.redis block.
type redisConfig struct {
	Address     string // host:port; required with type redis
	Username    string
	Password    string
	DB          int
	Prefix      string
	DialTimeout time.Duration
	TLS         *redisTLSConfig // nil: plain TCP
}

// redisTLSConfig is the storage.redis.tls block: TLS to the Redis server.
type redisTLSConfig struct {
	CA         string // PEM CA bundle verifying the server; empty: the system's roots
	Cert, Key  string // PEM client certificate and key, both or neither
	ServerName string // empty: the address's host
}

// defaultStorage is the storage of a file without a storage section:
// pebble in "data" next to the config file (for the embedded default, in
// the working directory), every change synced before it is acknowledged,
// commits that never wait for more changes (those arriving during one
// commit form the next).
var defaultStorage = storageConfig{
	Type:           storage.TypePebble,
	Durability:     storage.DurabilitySync,
	CommitInterval: 0,
	CommitMaxOps:   512,
	Path:           "data",
	MinFreeSpace:   64 << 20,
	Redis:          redisConfig{Prefix: "vanemq", DialTimeout: 5 * time.Second},
}

// storageTypes and durabilities are the accepted values of storage.type
// and storage.durability.
var (
	storageTypes = []string{storage.TypeMemory, storage.TypePebble, storage.TypeRedis}
	durabilities = []string{storage.DurabilitySync, storage.DurabilityNone}
)

// maxCommitInterval bounds storage.commit_interval: under load a change
// waits at most that long before it is written, and its acknowledgement
// with it.
const maxCommitInterval = time.Second

// storageKeys lists the keys besides type a storage type takes.
func storageKeys(typ string) []string {
	switch typ {
	case storage.TypePebble:
		return []string{"durability", "commit_interval", "commit_max_ops", "path", "min_free_space"}
	case storage.TypeRedis:
		return []string{"durability", "commit_interval", "commit_max_ops", "redis"}
	}
	return nil // memory: nothing is stored
}

// storage decodes the storage section onto sc, which holds the defaults.
// Keys the type does not use are errors, so that a file never seems to
// configure what it does not.
func (d *decoder) storage(key string, n *yaml.Node, sc *storageConfig) {
	var typeNode, redisNode *yaml.Node
	typeOK := true                 // type is absent (pebble) or known
	redisBad := false              // redis is neither a mapping nor empty
	set := map[string]*yaml.Node{} // the keys besides type that decoded, for the type check
	d.fields(n, key, map[string]func(string, *yaml.Node){
		"type": func(k string, v *yaml.Node) {
			s, ok := d.str(k, v)
			switch {
			case !ok:
				typeOK = false
			case !slices.Contains(storageTypes, s):
				d.errorf(v, k, "unknown storage type %q (known: %s)", s, strings.Join(storageTypes, ", "))
				typeOK = false
			default:
				sc.Type, typeNode = s, v
			}
		},
		"durability": func(k string, v *yaml.Node) {
			s, ok := d.str(k, v)
			if !ok {
				return
			}
			if !slices.Contains(durabilities, s) {
				d.errorf(v, k, "unknown durability %q (known: %s)", s, strings.Join(durabilities, ", "))
				return
			}
			sc.Durability, set["durability"] = s, v
		},
		"commit_interval": func(k string, v *yaml.Node) {
			t, ok := d.duration(k, v)
			if !ok {
				return
			}
			if t > maxCommitInterval {
				d.errorf(v, k, "must be between 0s and %s, got %s", maxCommitInterval, v.Value)
				return
			}
			sc.CommitInterval, set["commit_interval"] = t, v
		},
		"commit_max_ops": func(k string, v *yaml.Node) {
			if x, ok := d.integer(k, v, 1, math.MaxInt32); ok {
				sc.CommitMaxOps, set["commit_max_ops"] = int(x), v
			}
		},
		"path": func(k string, v *yaml.Node) {
			s, ok := d.str(k, v)
			if !ok {
				return
			}
			if s == "" {
				d.errorf(v, k, "must not be empty (the data directory; relative to the config file's directory)")
				return
			}
			sc.Path, set["path"] = s, v
		},
		"min_free_space": func(k string, v *yaml.Node) {
			if x, ok := d.integer(k, v, 1<<20, 1<<50); ok {
				sc.MinFreeSpace, set["min_free_space"] = uint64(x), v
			}
		},
		"redis": func(k string, v *yaml.Node) {
			switch {
			case d.redis(k, v, &sc.Redis):
				redisNode, set["redis"] = v, v
			case !isNull(v):
				redisBad = true
			}
		},
	})
	if n.Kind != yaml.MappingNode || !typeOK {
		return
	}
	// Keys the type does not use, in file order.
	keys := slices.SortedFunc(func(yield func(string) bool) {
		for k := range set {
			if !yield(k) {
				return
			}
		}
	}, func(a, b string) int { return cmp.Compare(set[a].Line, set[b].Line) })
	for _, name := range keys {
		if slices.Contains(storageKeys(sc.Type), name) {
			continue
		}
		what := fmt.Sprintf("storage of type %q", sc.Type)
		if typeNode == nil {
			what += " (type left out: pebble is the default)"
		}
		d.errorf(set[name], key+"."+name, "not used by %s", what)
	}
	if sc.Type == storage.TypeRedis && !redisBad {
		switch {
		case redisNode == nil:
			d.errorf(n, key+".redis.address", "required key missing: type redis needs the server's host:port")
		case !d.hasKey(redisNode, "address"):
			d.errorf(redisNode, key+".redis.address", "required key missing: type redis needs the server's host:port")
		}
	}
}

// redis decodes the storage.redis block onto rc, which holds the
// defaults. It reports whether n was a mapping.
func (d *decoder) redis(key string, n *yaml.Node, rc *redisConfig) bool {
	d.fields(n, key, map[string]func(string, *yaml.Node){
		"address": func(k string, v *yaml.Node) {
			s, ok := d.str(k, v)
			if !ok {
				return
			}
			if err := checkRedisAddress(s); err != nil {
				d.errorf(v, k, "invalid address %q: %v", s, err)
				return
			}
			rc.Address = s
		},
		"username": func(k string, v *yaml.Node) { rc.Username, _ = d.str(k, v) },
		"password": func(k string, v *yaml.Node) { rc.Password, _ = d.str(k, v) },
		"db": func(k string, v *yaml.Node) {
			if x, ok := d.integer(k, v, 0, math.MaxInt32); ok {
				rc.DB = int(x)
			}
		},
		"prefix": func(k string, v *yaml.Node) {
			s, ok := d.str(k, v)
			if !ok {
				return
			}
			if s == "" {
				d.errorf(v, k, "must not be empty")
				return
			}
			rc.Prefix = s
		},
		"dial_timeout": func(k string, v *yaml.Node) {
			t, ok := d.duration(k, v)
			if !ok {
				return
			}
			if t == 0 {
				d.errorf(v, k, "must be greater than 0")
				return
			}
			rc.DialTimeout = t
		},
		"tls": func(k string, v *yaml.Node) {
			t := &redisTLSConfig{}
			d.fields(v, k, map[string]func(string, *yaml.Node){
				"ca":          func(k string, v *yaml.Node) { t.CA, _ = d.str(k, v) },
				"cert":        func(k string, v *yaml.Node) { t.Cert, _ = d.str(k, v) },
				"key":         func(k string, v *yaml.Node) { t.Key, _ = d.str(k, v) },
				"server_name": func(k string, v *yaml.Node) { t.ServerName, _ = d.str(k, v) },
			})
			if v.Kind != yaml.MappingNode {
				return
			}
			// A client certificate is its two files.
			switch cert, key := d.hasKey(v, "cert"), d.hasKey(v, "key"); {
			case cert && !key:
				d.errorf(v, k+".key", "required key missing: cert needs its key")
			case key && !cert:
				d.errorf(v, k+".cert", "required key missing: key needs its cert")
			}
			rc.TLS = t
		},
	})
	return n.Kind == yaml.MappingNode
}

// checkRedisAddress validates a Redis server's address: host:port, both
// given, the port a number from 1 to 65535.
func checkRedisAddress(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			err = errors.New(ae.Err)
		}
		return fmt.Errorf("%w (want host:port, e.g. 127.0.0.1:6379)", err)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	if host == "" || strings.ContainsAny(host, " /") {
		return fmt.Errorf("host %q is not an IP address or host name", host)
	}
	return nil
}
