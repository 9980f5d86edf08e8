package vanemqcmd

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"regexp"
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
	Type           string        // storage.TypePebble (default), TypeRedis, TypeNATS or TypeMemory (no store)
	Durability     string        // pebble, redis, nats: storage.DurabilitySync (default) or DurabilityNone
	CommitInterval time.Duration // pebble, redis, nats: 0 to 1s; 0 never waits for more changes
	CommitMaxOps   int           // pebble, redis, nats: changes that make a batch write at once
	Path           string        // pebble: the data directory, relative to the config file's directory
	MinFreeSpace   uint64        // pebble: free bytes below which writes are refused
	Redis          redisConfig   // redis: the server
	NATS           natsConfig    // nats: the servers and the bucket
}

// redisConfig is the storage.redis block.
type redisConfig struct {
	Address     string // host:port; required with type redis
	Username    string
	Password    string
	DB          int
	Prefix      string
	DialTimeout time.Duration
	TLS         *clientTLSConfig // nil: plain TCP
}

// natsConfig is the storage.nats block.
type natsConfig struct {
	URLs        []string // nats://host:port or tls://host:port; at least one with type nats
	Prefix      string   // the bucket is <prefix>_state
	Username    string
	Password    string
	Token       string
	Credentials string // a NATS .creds file, relative to the config file's directory
	TLS         *clientTLSConfig
	Replicas    int           // 0: as many servers as the client knows of, up to 3
	Timeout     time.Duration // connecting, and each commit's wait for its acknowledgement
	// prefixSet says the file set prefix; otherwise a node of a cluster
	// gets a bucket of its own (clusterStorage).
	prefixSet bool
}

// clientTLSConfig is a storage.redis.tls or storage.nats.tls block: TLS
// to the store's server.
type clientTLSConfig struct {
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
	NATS:           natsConfig{Prefix: "vanemq", Timeout: 5 * time.Second},
}

// storageTypes and durabilities are the accepted values of storage.type
// and storage.durability.
var (
	storageTypes = []string{storage.TypeMemory, storage.TypePebble, storage.TypeRedis, storage.TypeNATS}
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
	case storage.TypeNATS:
		return []string{"durability", "commit_interval", "commit_max_ops", "nats"}
	}
	return nil // memory: nothing is stored
}

// storage decodes the storage section onto sc, which holds the defaults.
// Keys the type does not use are errors, so that a file never seems to
// configure what it does not.
func (d *decoder) storage(key string, n *yaml.Node, sc *storageConfig) {
	var typeNode, redisNode, natsNode *yaml.Node
	typeOK := true                 // type is absent (pebble) or known
	redisBad := false              // redis is neither a mapping nor empty
	natsBad := false               // nats is neither a mapping nor empty
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
		"nats": func(k string, v *yaml.Node) {
			switch {
			case d.nats(k, v, &sc.NATS):
				natsNode, set["nats"] = v, v
			case !isNull(v):
				natsBad = true
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
	if sc.Type == storage.TypeNATS && !natsBad {
		switch {
		case natsNode == nil:
			d.errorf(n, key+".nats.urls", "required key missing: type nats needs at least one NATS server URL")
		case !d.hasKey(natsNode, "urls"):
			d.errorf(natsNode, key+".nats.urls", "required key missing: type nats needs at least one NATS server URL")
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
			if t, ok := d.clientTLS(k, v); ok {
				rc.TLS = t
			}
		},
	})
	return n.Kind == yaml.MappingNode
}

// clientTLS decodes a tls block of a store's client; ok is false when n
// is not a mapping.
func (d *decoder) clientTLS(key string, n *yaml.Node) (*clientTLSConfig, bool) {
	t := &clientTLSConfig{}
	d.fields(n, key, map[string]func(string, *yaml.Node){
		"ca":          func(k string, v *yaml.Node) { t.CA, _ = d.str(k, v) },
		"cert":        func(k string, v *yaml.Node) { t.Cert, _ = d.str(k, v) },
		"key":         func(k string, v *yaml.Node) { t.Key, _ = d.str(k, v) },
		"server_name": func(k string, v *yaml.Node) { t.ServerName, _ = d.str(k, v) },
	})
	if n.Kind != yaml.MappingNode {
		return nil, false
	}
	// A client certificate is its two files.
	switch cert, k := d.hasKey(n, "cert"), d.hasKey(n, "key"); {
	case cert && !k:
		d.errorf(n, key+".key", "required key missing: cert needs its key")
	case k && !cert:
		d.errorf(n, key+".cert", "required key missing: key needs its cert")
	}
	return t, true
}

// nats decodes the storage.nats block onto nc, which holds the defaults.
// It reports whether n was a mapping.
func (d *decoder) nats(key string, n *yaml.Node, nc *natsConfig) bool {
	// The ways to authenticate, by key, for the at-most-one check.
	auth := map[string]*yaml.Node{}
	d.fields(n, key, map[string]func(string, *yaml.Node){
		"urls": func(k string, v *yaml.Node) {
			urls, ok := d.strList(k, "NATS server URLs", v)
			if !ok {
				return
			}
			if len(urls) == 0 {
				d.errorf(v, k, "must list at least one NATS server URL")
				return
			}
			for i, u := range urls {
				if err := checkNATSURL(u); err != nil {
					d.errorf(v.Content[i], k+"["+strconv.Itoa(i)+"]", "invalid URL %q: %v", u, err)
					return
				}
			}
			nc.URLs = urls
		},
		"prefix": func(k string, v *yaml.Node) {
			s, ok := d.str(k, v)
			if !ok {
				return
			}
			if !natsPrefixRE.MatchString(s) {
				d.errorf(v, k, "%q: use 1 to 100 letters, digits, '-' and '_' (it starts the bucket's name)", s)
				return
			}
			nc.Prefix, nc.prefixSet = s, true
		},
		"username": func(k string, v *yaml.Node) {
			if s, ok := d.str(k, v); ok {
				nc.Username, auth["username"] = s, v
			}
		},
		"password": func(k string, v *yaml.Node) { nc.Password, _ = d.str(k, v) },
		"token": func(k string, v *yaml.Node) {
			if s, ok := d.str(k, v); ok {
				nc.Token, auth["token"] = s, v
			}
		},
		"credentials": func(k string, v *yaml.Node) {
			s, ok := d.str(k, v)
			if !ok {
				return
			}
			if s == "" {
				d.errorf(v, k, "must not be empty (a NATS .creds file; relative to the config file's directory)")
				return
			}
			nc.Credentials, auth["credentials"] = s, v
		},
		"tls": func(k string, v *yaml.Node) {
			if t, ok := d.clientTLS(k, v); ok {
				nc.TLS = t
			}
		},
		"replicas": func(k string, v *yaml.Node) {
			if x, ok := d.integer(k, v, 1, 5); ok {
				nc.Replicas = int(x)
			}
		},
		"timeout": func(k string, v *yaml.Node) {
			t, ok := d.duration(k, v)
			if !ok {
				return
			}
			if t == 0 {
				d.errorf(v, k, "must be greater than 0")
				return
			}
			nc.Timeout = t
		},
	})
	if n.Kind != yaml.MappingNode {
		return false
	}
	if len(auth) > 1 {
		// The second way, in file order, is the error.
		names := slices.SortedFunc(func(yield func(string) bool) {
			for k := range auth {
				if !yield(k) {
					return
				}
			}
		}, func(a, b string) int { return cmp.Compare(auth[a].Line, auth[b].Line) })
		d.errorf(auth[names[1]], key+"."+names[1], "set with %s: use one of username (and password), token and credentials", names[0])
	}
	if nc.Password != "" && nc.Username == "" {
		d.errorf(n, key+".username", "required key missing: password needs a username")
	}
	return true
}

// natsPrefixRE is what storage.nats.prefix may be.
var natsPrefixRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,100}$`)

// checkNATSURL validates a NATS server's URL: nats://, tls://, ws:// or
// wss://, with a host (the port may be left out: 4222).
func checkNATSURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return err
	}
	switch u.Scheme {
	case "nats", "tls", "ws", "wss":
	case "":
		return errors.New("no scheme (want nats://host:port or tls://host:port)")
	default:
		return fmt.Errorf("scheme %q (want nats, tls, ws or wss)", u.Scheme)
	}
	if u.Hostname() == "" {
		return errors.New("no host (want nats://host:port)")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.ParseUint(p, 10, 16); err != nil || n == 0 {
			return fmt.Errorf("port %q is not a number from 1 to 65535", p)
		}
	}
	return nil
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
