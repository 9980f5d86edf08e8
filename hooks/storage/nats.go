package storage

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// NATSConfig is how to reach NATS, whose JetStream keeps the records in
// a KV bucket.
type NATSConfig struct {
	// URLs are the NATS servers, nats://host:port or tls://host:port; any
	// one of a NATS cluster is enough, the client learns the others.
	URLs []string
	// Prefix names the bucket, <prefix>_state (default "vanemq"), so
	// stores with different prefixes share a NATS system without meeting.
	Prefix string
	// Username and Password, Token, or Credentials (a NATS .creds file)
	// authenticate the connection; at most one of the three.
	Username    string
	Password    string
	Token       string
	Credentials string
	// TLS, when set, connects over TLS with this configuration.
	TLS *tls.Config
	// Replicas is how many copies of the bucket JetStream keeps (default:
	// as many servers as the client knows of, up to 3). It applies when
	// the bucket is made; a later change needs the stream edited in NATS.
	Replicas int
	// Timeout bounds connecting, and each commit's wait for JetStream's
	// acknowledgement (default 5s).
	Timeout time.Duration
}

// The defaults of NATSConfig.
const (
	defaultNATSPrefix  = "vanemq"
	defaultNATSTimeout = 5 * time.Second
)

// natsPrefixRE is what a prefix may be: it starts a bucket's name.
var natsPrefixRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,100}$`)

// check validates the config and fills in defaults; an error names the
// setting.
func (c *NATSConfig) check() error {
	if len(c.URLs) == 0 {
		return errors.New("storage: type nats needs at least one URL")
	}
	for i, u := range c.URLs {
		if !strings.Contains(u, "://") {
			return fmt.Errorf("storage: nats urls[%d]: %q: want nats://host:port or tls://host:port", i, u)
		}
	}
	if c.Prefix == "" {
		c.Prefix = defaultNATSPrefix
	}
	if !natsPrefixRE.MatchString(c.Prefix) {
		return fmt.Errorf("storage: nats prefix %q: use 1 to 100 letters, digits, '-' and '_'", c.Prefix)
	}
	n := 0
	for _, set := range []bool{c.Username != "" || c.Password != "", c.Token != "", c.Credentials != ""} {
		if set {
			n++
		}
	}
	if n > 1 {
		return errors.New("storage: nats username/password, token and credentials: set at most one")
	}
	if c.Password != "" && c.Username == "" {
		return errors.New("storage: nats password set without a username")
	}
	if c.Replicas < 0 || c.Replicas > 5 {
		return fmt.Errorf("storage: nats replicas %d: use 1 to 5 (0 for the default)", c.Replicas)
	}
	if c.Timeout < 0 {
		return fmt.Errorf("storage: nats timeout %s is negative", c.Timeout)
	}
	if c.Timeout == 0 {
		c.Timeout = defaultNATSTimeout
	}
	return nil
}

// natsDeleteTTL is how long the marker a deletion leaves in the bucket
// lives: long enough for a watcher to see the deletion, and then gone, so
// that deleted deliveries do not pile up in the stream one marker each.
const natsDeleteTTL = "60s"

// natsEngine keeps records in a JetStream KV bucket, <prefix>_state (the
// stream KV_<prefix>_state), so that every node of a vanemq cluster reads
// the records any of them wrote. The keys (see natsKey) are
//
//	c.<client>.<space>.<key>  a client's records (spaces s, b, q, i)
//	m.<key>                   message bodies (key: the 8-byte ID)
//	r.<key>                   retained messages (key: the topic)
//	v.<key>                   the schema record (key: "schema")
//
// where <client> and <key> are tokens (natsToken): 'k' and the bytes in
// base64url without padding, or, for more than natsInline bytes, 'h' and
// the base64url SHA-256 of them; the value of a record with a hashed
// token starts with its client and key in full (natsEnvelope), so that
// scan gives them back. All of a client's records are under c.<client>.,
// which is what scanClient and purge read.
//
// A batch is one JetStream atomic batch (stream setting
// AllowAtomicPublish; headers Nats-Batch-Id, Nats-Batch-Sequence and, on
// the last message, Nats-Batch-Commit: 1), so the bucket takes it whole
// or not at all; only the commit is acknowledged, once the batch is
// stored on a majority of the replicas. nats-server takes at most
// natsAtomicMax messages in one atomic batch: a batch that holds more
// distinct keys is written as several, in order, each whole.
type natsEngine struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	kv      jetstream.KeyValue
	bucket  string
	subject string // "$KV.<bucket>."
	servers string // the URLs without credentials, for where
	timeout time.Duration
	pool    sync.Pool // of *natsBatch
	// batchPrefix and batches make the atomic batches' IDs: random to
	// this engine, then a count.
	batchPrefix string
	batches     atomic.Uint64
}

// natsAtomicMax is how many messages one atomic batch may hold
// (nats-server's default JetStream limit max_batch_size is 1000).
const natsAtomicMax = 1000

// openNATS connects to NATS and opens the bucket, making it when create
// is set and it is missing.
func openNATS(ctx context.Context, cfg NATSConfig, create bool) (*natsEngine, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	e := &natsEngine{bucket: cfg.Prefix + "_state", timeout: cfg.Timeout, servers: redactURLs(cfg.URLs)}
	e.subject = "$KV." + e.bucket + "."
	e.batchPrefix = natsB64.EncodeToString(randomBytes(12)) + "-"
	opts := []nats.Option{
		nats.Name("vanemq storage"),
		nats.Timeout(cfg.Timeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
	}
	switch {
	case cfg.Username != "":
		opts = append(opts, nats.UserInfo(cfg.Username, cfg.Password))
	case cfg.Token != "":
		opts = append(opts, nats.Token(cfg.Token))
	case cfg.Credentials != "":
		opts = append(opts, nats.UserCredentials(cfg.Credentials))
	}
	if cfg.TLS != nil {
		opts = append(opts, nats.Secure(cfg.TLS))
	}
	nc, err := nats.Connect(strings.Join(cfg.URLs, ","), opts...)
	if err != nil {
		if errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) {
			return nil, fmt.Errorf("storage: %s: connecting: authentication refused (check the credentials): %w", e.where(), err)
		}
		return nil, fmt.Errorf("storage: %s: connecting: %w", e.where(), err)
	}
	e.nc = nc
	e.pool.New = func() any { return &natsBatch{e: e} }
	if e.js, err = jetstream.New(nc); err != nil {
		nc.Close()
		return nil, fmt.Errorf("storage: %s: %w", e.where(), err)
	}
	replicas := cfg.Replicas
	if replicas == 0 {
		replicas = min(3, max(1, len(nc.Servers())))
	}
	cctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	open := e.ensureBucket
	if !create {
		open = e.bindBucket
	}
	if err := open(cctx, replicas); err != nil {
		nc.Close()
		return nil, fmt.Errorf("storage: %s: %w", e.where(), err)
	}
	return e, nil
}

// randomBytes returns n random bytes.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return b
}

// redactURLs joins urls without any user or password in them.
func redactURLs(urls []string) string {
	out := make([]string, len(urls))
	for i, s := range urls {
		if u, err := url.Parse(s); err == nil && u.Host != "" {
			out[i] = u.Scheme + "://" + u.Host
		} else {
			out[i] = "(invalid URL)"
		}
	}
	return strings.Join(out, ",")
}

// ensureBucket makes the bucket's stream, as nats.go's CreateKeyValue
// would with history 1, plus atomic batches and per-message TTLs (for the
// deletion markers); a bucket that exists without those gets them.
func (e *natsEngine) ensureBucket(ctx context.Context, replicas int) error {
	name := "KV_" + e.bucket
	scfg := jetstream.StreamConfig{
		Name:               name,
		Description:        "vanemq store: persistent sessions and retained messages",
		Subjects:           []string{e.subject + ">"},
		MaxMsgsPerSubject:  1,
		MaxBytes:           -1,
		MaxMsgSize:         -1,
		MaxMsgs:            -1,
		MaxConsumers:       -1,
		Storage:            jetstream.FileStorage,
		Replicas:           replicas,
		AllowRollup:        true,
		DenyDelete:         true,
		Duplicates:         2 * time.Minute,
		AllowDirect:        true,
		Discard:            jetstream.DiscardNew,
		AllowMsgTTL:        true,
		AllowAtomicPublish: true,
	}
	_, err := e.js.CreateStream(ctx, scfg)
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		var s jetstream.Stream
		if s, err = e.js.Stream(ctx, name); err == nil {
			if c := s.CachedInfo().Config; !c.AllowAtomicPublish || !c.AllowMsgTTL {
				c.AllowAtomicPublish, c.AllowMsgTTL = true, true
				_, err = e.js.UpdateStream(ctx, c)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("making the bucket's stream %s: %w", name, err)
	}
	if e.kv, err = e.js.KeyValue(ctx, e.bucket); err != nil {
		return fmt.Errorf("opening the bucket: %w", err)
	}
	return nil
}

// bindBucket opens the bucket, which must exist.
func (e *natsEngine) bindBucket(ctx context.Context, _ int) error {
	var err error
	if e.kv, err = e.js.KeyValue(ctx, e.bucket); err != nil {
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			return fmt.Errorf("no bucket %s: %w", e.bucket, err)
		}
		return fmt.Errorf("opening the bucket: %w", err)
	}
	return nil
}

// where names the servers and the bucket, never the credentials.
func (e *natsEngine) where() string { return "nats " + e.servers + " bucket " + e.bucket }

// close closes the connection: the committer has had every batch
// acknowledged, and scans stop their consumers, so nothing is pending.
func (e *natsEngine) close() error {
	e.nc.Close()
	return nil
}

var natsSchemaKey = natsKey(nil, spaceMeta, "", []byte("schema"))

// schema reads the schema record and whether the bucket holds any other
// live record.
func (e *natsEngine) schema(ctx context.Context) (string, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	entry, err := e.kv.Get(ctx, string(natsSchemaKey))
	for errors.Is(err, nats.ErrNoResponders) && ctx.Err() == nil {
		// A bucket just made has no stream leader yet: wait for one.
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
		entry, err = e.kv.Get(ctx, string(natsSchemaKey))
	}
	switch {
	case err == nil:
		return string(entry.Value()), false, nil
	case !errors.Is(err, jetstream.ErrKeyNotFound) && !errors.Is(err, jetstream.ErrKeyDeleted):
		return "", false, fmt.Errorf("reading the schema record: %w", err)
	}
	w, err := e.kv.WatchAll(ctx, jetstream.IgnoreDeletes(), jetstream.MetaOnly())
	if err != nil {
		return "", false, fmt.Errorf("listing the bucket: %w", err)
	}
	defer func() { _ = w.Stop() }()
	select {
	case entry, ok := <-w.Updates():
		return "", ok && entry == nil, nil
	case <-ctx.Done():
		return "", false, fmt.Errorf("listing the bucket: %w", ctx.Err())
	}
}

func (e *natsEngine) setSchema(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	if _, err := e.kv.Put(ctx, string(natsSchemaKey), []byte(name)); err != nil {
		return fmt.Errorf("writing the schema record: %w", err)
	}
	return nil
}

// scan reads the last value of every key with one ordered consumer
// (nats.go's KV watcher: DeliverLastPerSubject), skipping deletions.
func (e *natsEngine) scan(ctx context.Context, visit func(sp space, client string, key, val []byte) error) error {
	return e.watch(ctx, "", visit)
}

func (e *natsEngine) scanClient(ctx context.Context, client string, visit func(sp space, client string, key, val []byte) error) error {
	return e.watch(ctx, natsClientFilter(client), visit)
}

// watch visits the live records of the keys filter matches (all when
// filter is empty) and returns once it has seen every one there was
// when it started.
func (e *natsEngine) watch(ctx context.Context, filter string, visit func(sp space, client string, key, val []byte) error) error {
	var filters []string
	if filter != "" {
		filters = []string{filter}
	}
	w, err := e.kv.WatchFiltered(ctx, filters, jetstream.IgnoreDeletes())
	if err != nil {
		return fmt.Errorf("reading the bucket: %w", err)
	}
	defer func() { _ = w.Stop() }()
	for {
		var entry jetstream.KeyValueEntry
		select {
		case entry = <-w.Updates():
		case <-ctx.Done():
			return ctx.Err()
		}
		if entry == nil {
			return nil
		}
		sp, client, key, val, err := parseNATSRecord(entry.Key(), entry.Value())
		if err != nil {
			return err
		}
		if sp == spaceMeta {
			continue
		}
		if err := visit(sp, client, key, val); err != nil {
			return err
		}
	}
}

// get reads one record.
func (e *natsEngine) get(ctx context.Context, sp space, client string, key []byte) ([]byte, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	entry, err := e.kv.Get(ctx, string(natsKey(nil, sp, client, key)))
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted):
		return nil, false, nil
	case err != nil:
		return nil, false, err
	}
	_, _, _, val, err := parseNATSRecord(entry.Key(), entry.Value())
	return val, err == nil, err
}

// clientKeys returns the keys of a client's live records.
func (e *natsEngine) clientKeys(ctx context.Context, client string) ([]string, error) {
	w, err := e.kv.Watch(ctx, natsClientFilter(client), jetstream.IgnoreDeletes(), jetstream.MetaOnly())
	if err != nil {
		return nil, err
	}
	defer func() { _ = w.Stop() }()
	var keys []string
	for {
		select {
		case entry := <-w.Updates():
			if entry == nil {
				return keys, nil
			}
			keys = append(keys, entry.Key())
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (e *natsEngine) newBatch() batch { return e.pool.Get().(*natsBatch) }
