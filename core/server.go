package core

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/bytebufferpool"

	"github.com/vanemq/vanemq/core/packets"
	"github.com/vanemq/vanemq/core/topics"
)

// Server is an MQTT broker: it owns the sessions, the subscription trie and
// the retained messages, and serves clients from its listeners.
type Server struct {
	opts Options
	log  *slog.Logger

	subs     *topics.Trie
	retained *topics.Retained[*message]
	stats    stats
	started  time.Time
	// refusals throttles the logging of refusals by limit (limits.go).
	refusals [numLimits]refusalLog
	// rewrites throttles the warnings of messages a Deliver or Will hook
	// rewrote into an invalid one (hook_events.go).
	rewrites refusalLog

	// sessMu guards sessions. Lock order: sessMu, then session.mu, then
	// client.outMu (see LOCKS.md).
	sessMu   sync.Mutex
	sessions map[string]*session
	// live mirrors sessions for the publish path, which must not take
	// sessMu: deliveries look sessions up here without a global lock.
	live sync.Map // client ID -> *session
	// online counts sessions with a live connection.
	online atomic.Int64

	scratch   *sync.Pool                      // *fanoutScratch
	batches   sync.Pool                       // *[]outItem, outbound queues
	writeBufs chan *bytebufferpool.ByteBuffer // free writer batch buffers (a GC does not empty it, unlike sync.Pool)
	readBufs  sync.Pool                       // *[]byte, the read buffers of busy connections
	accepted  func(*topics.Subscription) bool // s.isOnline, bound once

	connsMu sync.Mutex
	conns   map[*client]struct{}

	lnMu      sync.Mutex
	listeners []Listener

	inline inlineSubs
	// listenerCounts holds each listener's connection counters.
	listenerCounts sync.Map  // listener ID -> *listenerCounts
	timers         timerGate // session timer callbacks, closed by Shutdown
	hooks          pipeline
	// authGen is the authorization generation the cached read verdicts
	// belong to; InvalidateAuthorization starts a new one. readSeed
	// hashes topics for the caches (read_auth.go).
	authGen  atomic.Uint64
	readSeed maphash.Seed
	// sharedReads caches the read verdicts that hold for every subscriber.
	sharedReads readCache
	// store is the storage hook (Store) chosen at Start, nil without one;
	// storeDurable caches store.Durable(). storeSeq numbers stored
	// deliveries and messages (persist.go).
	store        Store
	storeDurable bool
	storeSeq     atomic.Uint64
	// cluster is the ClusterHook chosen at Start, nil without one.
	// interest counts this node's subscriptions for it, by (group,
	// filter) and QoS, under interestMu, a leaf lock under which
	// InterestChanged runs, so that changes reach the hook in order
	// (cluster.go).
	cluster    ClusterHook
	interestMu sync.Mutex
	interest   map[interestKey]*[3]int
	// later queues notifications raised under a session lock (notifier).
	later chan func()
	// ctx is the server's lifetime, set by Start.
	ctx context.Context

	closing atomic.Bool
	wg      sync.WaitGroup // connections and background loops
	cancel  context.CancelFunc
}

// New returns a server with the given options; zero fields take defaults.
func New(opts Options) (*Server, error) {
	opts.fill()
	if opts.MaxPacketSize < 16 {
		return nil, fmt.Errorf("core: max packet size %d is below the smallest useful packet (16)", opts.MaxPacketSize)
	}
	s := &Server{
		opts:     opts,
		log:      opts.Logger,
		subs:     topics.NewTrie(),
		retained: topics.NewSizedRetained(retainedSize),
		sessions: make(map[string]*session),
		conns:    make(map[*client]struct{}),
		scratch:  newScratchPool(),
		readSeed: maphash.MakeSeed(),
	}
	s.batches.New = func() any { return new([]outItem) }
	s.writeBufs = make(chan *bytebufferpool.ByteBuffer, 4*runtime.GOMAXPROCS(0))
	s.readBufs.New = func() any {
		b := make([]byte, readBufSize)
		return &b
	}
	s.accepted = s.isOnline
	s.hooks.log = s.log
	s.later = make(chan func(), 4096)
	return s, nil
}

// Options returns the server's options with defaults filled in.
func (s *Server) Options() Options { return s.opts }

// AddListener binds l and registers it; it starts accepting on Start.
func (s *Server) AddListener(l Listener) error {
	if err := l.Listen(); err != nil {
		return fmt.Errorf("listener %s: %w", l.ID(), err)
	}
	s.lnMu.Lock()
	s.listeners = append(s.listeners, l)
	s.lnMu.Unlock()
	s.listenerCounts.Store(l.ID(), &listenerCounts{protocol: l.Protocol(), address: l.Address()})
	return nil
}

// Start begins serving on every listener and starts the background loops
// ($SYS). It returns at once; cancelling ctx does what Shutdown does without
// waiting.
func (s *Server) Start(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	s.cancel = cancel
	s.ctx = ctx
	s.started = time.Now()
	if err := s.pickStore(); err != nil {
		cancel()
		s.cancel = nil
		return err
	}
	if err := s.pickCluster(); err != nil {
		cancel()
		s.cancel = nil
		return err
	}
	if err := s.load(ctx); err != nil {
		cancel()
		s.cancel = nil
		s.stopSessionTimers()
		return err
	}
	s.wg.Add(1)
	go s.notifier()
	s.hooks.notify(EventStarted, "", func(h *handlers) { h.started.OnStarted(ctx) })
	// Sessions restored from storage are checked with the rules in force,
	// not trusted as stored.
	s.InvalidateAuthorization()
	s.lnMu.Lock()
	ls := append([]Listener(nil), s.listeners...)
	s.lnMu.Unlock()
	for _, l := range ls {
		s.log.Info("listening", "id", l.ID(), "protocol", l.Protocol(), "address", l.Address())
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			err := l.Serve(func(nc net.Conn) { s.serveConn(ctx, nc, l.ID()) })
			if err != nil && !s.closing.Load() {
				s.log.Error("listener stopped", "id", l.ID(), "cause", err)
			}
		}()
	}
	if s.opts.SysInterval > 0 {
		s.wg.Add(1)
		go s.sysLoop(ctx)
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		<-ctx.Done()
		s.closeAll()
	}()
	return nil
}

// ServeConn serves nc as a connection accepted by the listener named
// listener (for logs and metrics): for transports that are not a
// Listener, and for the broker's own connections (InternalConn, such as
// a bridge's, over net.Pipe). It is an error before Start or after
// Shutdown, and nc is then closed.
func (s *Server) ServeConn(nc net.Conn, listener string) error {
	if s.ctx == nil || s.closing.Load() {
		_ = nc.Close()
		return errors.New("core: ServeConn: the server is not running")
	}
	s.serveConn(s.ctx, nc, listener)
	return nil
}

// serveConn takes a new connection from a listener.
func (s *Server) serveConn(ctx context.Context, nc net.Conn, listener string) {
	if s.closing.Load() {
		_ = nc.Close()
		return
	}
	c := newClient(ctx, s, nc, listener)
	s.connsMu.Lock()
	s.conns[c] = struct{}{}
	s.connsMu.Unlock()
	s.stats.connections.Add(1)
	lc := s.counts(listener)
	lc.accepted.Add(1)
	lc.open.Add(1)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		c.run()
	}()
}

// Shutdown stops the listeners, sends DISCONNECT 0x8B (Server shutting down)
// to v5 clients, closes every connection and waits for the server's
// goroutines to end, or for ctx to be done.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.cancel == nil {
		return errors.New("core: Shutdown before Start")
	}
	s.cancel()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		s.timers.close()
		s.stopSessionTimers()
		s.storeBarrier()
		s.hooks.notify(EventStopped, "", func(h *handlers) { h.stopped.OnStopped(context.WithoutCancel(s.ctx)) })
		s.hooks.closeHooks()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("core: shutdown: %w", ctx.Err())
	}
}

// closeAll closes the listeners and every connection.
func (s *Server) closeAll() {
	s.closing.Store(true)
	s.lnMu.Lock()
	for _, l := range s.listeners {
		if err := l.Close(); err != nil {
			s.log.Warn("closing listener", "id", l.ID(), "cause", err)
		}
	}
	s.lnMu.Unlock()
	s.connsMu.Lock()
	cs := make([]*client, 0, len(s.conns))
	for c := range s.conns {
		cs = append(cs, c)
	}
	s.connsMu.Unlock()
	for _, c := range cs {
		c.kick(packets.ServerShuttingDown, "server shutting down")
	}
	s.log.Info("server stopped accepting; closing connections", "connections", len(cs))
}

// stopSessionTimers cancels every session's will and expiry timers once the
// server has stopped, so no timer fires into a stopped server.
func (s *Server) stopSessionTimers() {
	s.sessMu.Lock()
	defer s.sessMu.Unlock()
	for _, sess := range s.sessions {
		sess.mu.Lock()
		sess.stopTimersLocked()
		sess.mu.Unlock()
	}
}
