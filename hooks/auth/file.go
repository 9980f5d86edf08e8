// Package auth holds vanemq's built-in authentication and authorization
// hooks:
//
//   - auth.allow (Allow) authenticates every client;
//   - auth.file (File) authenticates users against a YAML file of bcrypt
//     hashes and authorizes publishes and subscriptions with a YAML file of
//     ACL rules, reloading both on SIGHUP and when they change.
//
// Importing the package registers both as hook modules, so a config file
// can name them:
//
//	allow_anonymous: false
//	hooks:
//	  - {id: auth.file, priority: 100, config: {users: users.yaml, acl: acl.yaml}}
//
// See README.md in this directory for the file formats.
package auth

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/packets"
	"github.com/vanemq/vanemq/core/sourceip"
	"github.com/vanemq/vanemq/hooks/filewatch"
)

// FileID is the ID of the file-based hook.
const FileID = "auth.file"

func init() {
	core.RegisterHookModule(core.Module(FileID, fileConfig{}, newFileModule))
}

// fileConfig is auth.file's config block.
type fileConfig struct {
	Users string `yaml:"users"`
	ACL   string `yaml:"acl"`
	// The bounds of password checks (GuardOptions).
	VerifyConcurrency int           `yaml:"verify_concurrency"`
	VerifyQueue       int           `yaml:"verify_queue"`
	CacheSize         int           `yaml:"cache_size"`
	CacheTTL          time.Duration `yaml:"cache_ttl"`
	MaxFailures       int           `yaml:"max_failures"`
	FailureWindow     time.Duration `yaml:"failure_window"`
	FailureDelay      time.Duration `yaml:"failure_delay"`
}

// newFileModule makes an auth.file hook from its config block; relative
// paths are taken from the config file's directory. The hook reloads on
// SIGHUP and on file changes.
func newFileModule(cfg core.HookConfig, c fileConfig) (core.Hook, error) {
	if c.Users == "" {
		return nil, fmt.Errorf("%s: config: users: missing key: the users file is required, e.g. {users: users.yaml}", FileID)
	}
	resolve := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(cfg.Dir, p)
	}
	return NewFile(FileOptions{
		Users:  resolve(c.Users),
		ACL:    resolve(c.ACL),
		Logger: cfg.Logger,
		Server: cfg.Server,
		Watch:  true,
		Guard: GuardOptions{Concurrency: c.VerifyConcurrency, Queue: c.VerifyQueue, CacheSize: c.CacheSize,
			CacheTTL: c.CacheTTL, MaxFailures: c.MaxFailures, FailureWindow: c.FailureWindow, FailureDelay: c.FailureDelay},
	})
}

// FileOptions configures a File hook made with NewFile.
type FileOptions struct {
	// Users is the users file's path; required.
	Users string
	// ACL is the ACL file's path; when empty the hook does not authorize
	// (publishes and subscriptions are left to other hooks, and allowed
	// when none decides).
	ACL string
	// Logger receives reload reports and, at debug level, each refusal
	// with its cause. Default: discard.
	Logger *slog.Logger
	// Watch makes the hook reload both files on SIGHUP and when they
	// change on disk, until Close (or the server stops).
	Watch bool
	// OnReload, if set, is called after every reload with nil or the
	// error that kept the previous users and rules in force (see
	// FileErrors). It runs on the watcher's goroutine (or Reload's
	// caller's) and must not call Close.
	OnReload func(error)
	// Guard bounds the password checks, so that a storm of wrong
	// passwords cannot starve other clients (see GuardOptions).
	Guard GuardOptions
	// Server, if set, is told of every successful reload, so that it takes
	// effect on live sessions too: the server re-checks what every
	// session may read (Server.InvalidateAuthorization), and the clients
	// this hook authenticated whose user was removed from the users file,
	// whose password changed, or whose client ID the user's client_ids no
	// longer allow, are disconnected with Not authorized.
	Server *core.Server
}

// File is the auth.file hook: user names and bcrypt password hashes from a
// users file, publish and subscribe rules from an optional ACL file. Both
// are re-read on SIGHUP and when they change (with Watch); the new
// contents take effect at once for every later decision, while a file
// with problems leaves the previous contents in force and is reported
// through the logger. Decisions take no lock.
type File struct {
	opts   FileOptions
	log    *slog.Logger
	events core.EventSet
	// compare checks a password against a hash:
	// bcrypt.CompareHashAndPassword, or a recorder in tests.
	compare func(hash, password []byte) error
	// refusalDelay waits before a refusal is answered: delay, or a
	// recorder in tests.
	refusalDelay func(context.Context, time.Duration)

	state    atomic.Pointer[fileState]
	reloadMu sync.Mutex // serialises reloads

	// The storm defences (guard.go) and what they did.
	pool     *verifyPool
	limits   *failureLimits // nil without a limit
	throttle logThrottle
	stats    guardCounters
	delayed  delayed

	// live are the connections this hook authenticated, for revoking
	// them on reload.
	live liveUsers

	watch     *filewatch.Watcher // nil without Watch
	closeOnce sync.Once
	closeErr  error
}

// What the hook implements; Events says which of its event methods the
// config enables.
var (
	_ core.Hook                   = (*File)(nil)
	_ core.EventLister            = (*File)(nil)
	_ core.AuthenticateHook       = (*File)(nil)
	_ core.AuthorizePublishHook   = (*File)(nil)
	_ core.AuthorizeSubscribeHook = (*File)(nil)
	_ core.AuthorizeReadHook      = (*File)(nil)
	_ core.DisconnectedHook       = (*File)(nil)
	_ io.Closer                   = (*File)(nil)
)

// fileState is one loaded generation of the files.
type fileState struct {
	users *Users
	acl   *ACL // nil without an ACL file
	// dummy is the hash of a random password at the users' commonest
	// cost: an unknown user's password is checked against it, so that a
	// refusal takes as long whether the user exists or not.
	dummy     []byte
	dummyCost int
	// cache holds the passwords verified against these users; nil when
	// caching is off. A reload starts a new one.
	cache *verifiedCache
}

// NewFile loads the files and returns the hook, watching them when
// opts.Watch is set. Problems in the files are returned as FileErrors
// (see FileErrors).
func NewFile(opts FileOptions) (*File, error) {
	if opts.Users == "" {
		return nil, errors.New("auth.file: no users file")
	}
	if err := opts.Guard.fill(); err != nil {
		return nil, fmt.Errorf("%s: config: %w", FileID, err)
	}
	f := &File{opts: opts, log: opts.Logger, compare: bcrypt.CompareHashAndPassword,
		pool:     newVerifyPool(opts.Guard.Concurrency, opts.Guard.Queue),
		limits:   newFailureLimits(opts.Guard.MaxFailures, opts.Guard.FailureWindow),
		throttle: logThrottle{every: time.Second}}
	f.refusalDelay = f.delayed.delay
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	ev := []core.Event{core.EventAuthenticate, core.EventDisconnected}
	if opts.ACL != "" {
		ev = append(ev, core.EventAuthorizePublish, core.EventAuthorizeSubscribe, core.EventAuthorizeRead)
	}
	f.events = core.Events(ev...)
	st, err := f.load(nil)
	if err != nil {
		return nil, err
	}
	f.state.Store(st)
	if opts.Watch {
		w, err := f.startWatcher()
		if err != nil {
			return nil, fmt.Errorf("%s: watching for changes: %w", FileID, err)
		}
		f.watch = w
	}
	return f, nil
}

// ID implements core.Hook.
func (f *File) ID() string { return FileID }

// Events implements core.EventLister: Authenticate and OnDisconnected,
// and with an ACL file AuthorizePublish, AuthorizeSubscribe and
// AuthorizeRead (without one, the hook is not called for them, which
// costs nothing).
func (f *File) Events() core.EventSet { return f.events }

// Users returns the users in force.
func (f *File) Users() *Users { return f.state.Load().users }

// ACL returns the ACL in force, nil without an ACL file.
func (f *File) ACL() *ACL { return f.state.Load().acl }

// load reads and parses both files; prev, if not nil, is the state in
// force, whose dummy hash is reused when the cost is unchanged.
func (f *File) load(prev *fileState) (*fileState, error) {
	var errs []error
	st := &fileState{}
	if data, err := os.ReadFile(f.opts.Users); err != nil {
		errs = append(errs, &FileError{File: f.opts.Users, Problem: "cannot read the users file", Err: err})
	} else if st.users, err = ParseUsers(f.opts.Users, data); err != nil {
		errs = append(errs, err)
	}
	if f.opts.ACL != "" {
		if data, err := os.ReadFile(f.opts.ACL); err != nil {
			errs = append(errs, &FileError{File: f.opts.ACL, Problem: "cannot read the ACL file", Err: err})
		} else if st.acl, err = ParseACL(f.opts.ACL, data); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	st.cache = newVerifiedCache(f.opts.Guard.CacheSize, f.opts.Guard.CacheTTL)
	if prev != nil && prev.dummyCost == st.users.cost {
		st.dummy, st.dummyCost = prev.dummy, prev.dummyCost
		return st, nil
	}
	dummy, err := bcrypt.GenerateFromPassword([]byte(rand.Text()), st.users.cost)
	if err != nil {
		return nil, fmt.Errorf("%s: making the unknown-user hash: %w", FileID, err)
	}
	st.dummy, st.dummyCost = dummy, st.users.cost
	return st, nil
}

// Reload re-reads both files. When both are good their contents replace
// the ones in force, atomically, and Reload returns nil; otherwise nothing
// changes, each problem is logged with its file, line and key, and the
// error is returned (see FileErrors). A reload is all or nothing, so a
// users file and an ACL file edited together never take effect apart.
func (f *File) Reload() error {
	return f.reload("Reload")
}

func (f *File) reload(trigger string) error {
	f.reloadMu.Lock()
	defer f.reloadMu.Unlock()
	prev := f.state.Load()
	st, err := f.load(prev)
	if err != nil {
		for _, fe := range FileErrors(err) {
			f.log.Error("auth.file: reload failed; the previous users and rules stay in force",
				"trigger", trigger, "file", fe.File, "line", fe.Line, "key", fe.Key, "problem", fe.problem())
		}
	} else {
		f.state.Store(st)
		rules := 0
		if st.acl != nil {
			rules = st.acl.Len()
		}
		f.log.Info("auth.file: reloaded", "trigger", trigger, "users", st.users.Len(), "rules", rules)
		f.revoke(prev.users, st.users)
	}
	if f.opts.OnReload != nil {
		f.opts.OnReload(err)
	}
	return err
}

// Close stops watching the files and SIGHUP; the server calls it after
// OnStopped. It is safe to call more than once; the hook goes on deciding
// with the contents last loaded.
func (f *File) Close() error {
	f.closeOnce.Do(func() {
		if f.watch != nil {
			f.closeErr = f.watch.Stop()
		}
	})
	return f.closeErr
}

// badCredentials is the verdict for an unknown user or a wrong password;
// the two are not told apart to the client.
func badCredentials() core.Verdict {
	return core.Deny(packets.BadUsernameOrPassword, "bad user name or password")
}

// Authenticate implements core.AuthenticateHook. A client without a user name is left
// to other hooks and allow_anonymous (Next); a known user with the right
// password is allowed; an unknown user or a wrong password is refused with
// Bad User Name or Password (CONNACK 0x86 in MQTT 5, 0x04 in 3.1.1).
// Passwords are never logged. A user whose password is right but whose
// client ID the users file does not allow (client_ids) is refused with
// Client Identifier not valid (0x85; 3.1.1: 0x02): see checkClientID.
//
// A password verified before (within cache_ttl, since the last reload) is
// allowed without bcrypt. A login from a source, or for a user name, with
// too many recent failures is refused without a check, with Connection
// rate exceeded (0x9F); one that finds every check slot taken and the
// queue full, with Server busy (0x89); 3.1.1 clients get 0x03 Server
// unavailable for both (see guard.go). Every refusal is answered after
// failure_delay.
func (f *File) Authenticate(ctx context.Context, cl *core.ClientInfo, cred *core.Credentials) core.Verdict {
	v := f.authenticate(ctx, cl, cred)
	if v.Decision == core.DecisionAllow {
		f.live.add(cl, cred.Username)
	}
	return v
}

// authenticate is Authenticate without the record of the connection.
func (f *File) authenticate(ctx context.Context, cl *core.ClientInfo, cred *core.Credentials) core.Verdict {
	if cred.Username == "" {
		return core.Next
	}
	st := f.state.Load()
	if len(cred.Password) > MaxPasswordLen {
		// bcrypt ignores the bytes past the 72nd; matching on a prefix
		// would accept passwords that were never set.
		f.log.Debug("auth.file: refused: password longer than 72 bytes", "client", cl.ID, "username", cred.Username)
		return badCredentials()
	}
	hash, known := st.users.hashes[cred.Username]
	now := time.Now()
	src, hasSrc := sourceip.OfString(cl.Remote)
	limited := func(why string) core.Verdict {
		f.stats.limited.Add(1)
		warnThrottled(f.log, &f.throttle, "auth.file: login refused without checking its password: "+why,
			"client", cl.ID, "username", cred.Username, "remote", cl.Remote, "max_failures", f.opts.Guard.MaxFailures,
			"failure_window", f.opts.Guard.FailureWindow)
		f.refusalDelay(ctx, f.opts.Guard.FailureDelay)
		return core.Deny(packets.ConnectionRateExceeded, why+"; try again later")
	}
	// A source over its limit first, before the cache: otherwise the cache
	// would answer its guesses of a cached password at network speed.
	if f.limits != nil && f.limits.sourceRefused(src, hasSrc, now) {
		return limited("too many failed logins from this address")
	}
	var entry [32]byte
	if known && st.cache != nil {
		entry = st.cache.entry(cred.Username, cred.Password, hash)
		if st.cache.has(entry, now) {
			f.stats.cached.Add(1)
			return f.checkClientID(ctx, st.users, cl, cred.Username)
		}
	}
	if f.limits != nil {
		if why := f.limits.refused(src, hasSrc, cred.Username, now); why != "" {
			return limited(why)
		}
	}
	if err := f.pool.acquire(ctx); err != nil {
		f.stats.busy.Add(1)
		warnThrottled(f.log, &f.throttle, "auth.file: login refused: the password checks are all busy",
			"client", cl.ID, "username", cred.Username, "remote", cl.Remote, "cause", err,
			"verify_concurrency", f.opts.Guard.Concurrency, "verify_queue", f.opts.Guard.Queue)
		f.refusalDelay(ctx, f.opts.Guard.FailureDelay)
		return core.Deny(packets.ServerBusy, "too many logins at once; try again later")
	}
	f.stats.checks.Add(1)
	var err error
	if known {
		err = f.compare(hash, cred.Password)
	} else {
		// As slow as a wrong password, so that timing does not tell
		// which user names exist.
		_ = f.compare(st.dummy, cred.Password)
	}
	f.pool.release()
	if !known || err != nil {
		if f.limits != nil {
			f.limits.failed(src, hasSrc, cred.Username, time.Now())
		}
		cause := "wrong password"
		if !known {
			cause = "unknown user"
		}
		f.log.Debug("auth.file: refused: "+cause, "client", cl.ID, "username", cred.Username)
		f.refusalDelay(ctx, f.opts.Guard.FailureDelay)
		return badCredentials()
	}
	if st.cache != nil {
		st.cache.add(entry, time.Now())
	}
	return f.checkClientID(ctx, st.users, cl, cred.Username)
}

// guardCounters count what the storm defences did.
type guardCounters struct {
	checks  atomic.Int64 // passwords checked with bcrypt
	cached  atomic.Int64 // logins allowed by the cache, without bcrypt
	limited atomic.Int64 // logins refused for too many failures
	busy    atomic.Int64 // logins refused for a full queue
}

// GuardStats is what the password checks' defences did since the hook
// was made.
type GuardStats struct {
	// Checks counts the passwords checked with bcrypt.
	Checks int64
	// Cached counts the logins allowed from the cache, without bcrypt.
	Cached int64
	// Limited counts the logins refused for too many failed ones.
	Limited int64
	// Busy counts the logins refused because the checks' queue was full.
	Busy int64
}

// GuardStats returns the counts of the storm defences.
func (f *File) GuardStats() GuardStats {
	return GuardStats{Checks: f.stats.checks.Load(), Cached: f.stats.cached.Load(),
		Limited: f.stats.limited.Load(), Busy: f.stats.busy.Load()}
}

// AuthorizePublish implements core.AuthorizePublishHook: the first ACL rule for
// publishing whose filter matches the topic decides; no match denies.
// A denied QoS 1 or 2 PUBLISH is answered with Not Authorized (0x87, MQTT
// 5); at QoS 0 the message is dropped silently.
func (f *File) AuthorizePublish(_ context.Context, cl *core.ClientInfo, m *core.Message) core.Verdict {
	acl := f.state.Load().acl
	if acl == nil {
		return core.Next
	}
	allow, i := acl.CanPublish(cl.Username, cl.ID, m.Topic)
	if allow {
		return core.Allow
	}
	f.log.Debug("auth.file: publish denied", "client", cl.ID, "username", cl.Username, "topic", m.Topic, "rule", acl.describe(i))
	return core.Deny(packets.NotAuthorized, "not authorized to publish to "+m.Topic)
}

// AuthorizeSubscribe implements core.AuthorizeSubscribeHook: see ACL.CanSubscribe. A denied
// filter gets Not Authorized in the SUBACK (0x87 in MQTT 5, 0x80 in
// 3.1.1); the granted QoS is not changed.
func (f *File) AuthorizeSubscribe(_ context.Context, cl *core.ClientInfo, filter string, _ *byte) core.Verdict {
	acl := f.state.Load().acl
	if acl == nil {
		return core.Next
	}
	allow, i := acl.CanSubscribe(cl.Username, cl.ID, filter)
	if allow {
		return core.Allow
	}
	f.log.Debug("auth.file: subscribe denied", "client", cl.ID, "username", cl.Username, "filter", filter, "rule", acl.describe(i))
	return core.Deny(packets.NotAuthorized, "not authorized to subscribe to "+filter)
}

// AuthorizeRead implements core.AuthorizeReadHook: see ACL.CanRead. A
// denied delivery is dropped. The server caches the verdict until the next
// reload: per topic for every subscriber when no rule that could match the
// topic depends on the client (SameForAll), else per subscriber and topic.
func (f *File) AuthorizeRead(_ context.Context, cl *core.ClientInfo, topic string) core.Verdict {
	acl := f.state.Load().acl
	if acl == nil {
		return core.Next
	}
	allow, i, same := acl.firstMatch(actSubscribe, cl.Username, cl.ID, topic)
	v := core.Allow
	if !allow {
		f.log.Debug("auth.file: read denied", "client", cl.ID, "username", cl.Username, "topic", topic, "rule", acl.describe(i))
		v = core.Deny(packets.NotAuthorized, "not authorized to read "+topic)
	}
	v.SameForAll = same
	return v
}

// OnDisconnected implements core.DisconnectedHook: the connection is no
// longer one to revoke.
func (f *File) OnDisconnected(_ context.Context, cl *core.ClientInfo, _ packets.ReasonCode, _ error) {
	f.live.remove(cl)
}
