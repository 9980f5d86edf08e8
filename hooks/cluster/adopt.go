package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vanemq/vanemq/core"
)

// A node that dies (SIGKILL, a lost machine) leaves its sessions in its
// store and what other nodes handed to it in its inbox. Another node
// adopts them: it takes the lock adopt.NODE in the sessions bucket (one
// adopter at a time; the dead node, starting again, waits for it), makes
// sure the node is gone (nothing answers on its subject PREFIX.sess.NODE),
// claims each of its session records (epoch + 1), installs each session
// as its store held it, writes the sessions' routes, deletes the dead
// node's, and routes what waits in the dead node's inbox to the adopted
// sessions only (this node's other clients received those messages
// through their own hand-offs). The stores are read through StateStores:
// a node whose store the others cannot open (pebble on its own disk)
// keeps its sessions until it returns.

// SessionStore reads the sessions a node kept in its store.
type SessionStore interface {
	// LoadSession reads one client's stored session; ok is false when
	// the store holds none.
	LoadSession(ctx context.Context, clientID string) (s core.StoredSession, ok bool, err error)
	// Close lets the store go.
	Close() error
}

// StateStores lets nodes read each other's stores: a node names its own
// in the sessions bucket (key store.NODE), and another opens it with Open
// to adopt the node's sessions when it dies.
type StateStores struct {
	// Mine names this node's store for Open on the other nodes ("" for a
	// store they cannot reach).
	Mine string
	// Open opens, to read from, the store another node named.
	Open func(ctx context.Context, name string) (SessionStore, error)
}

// adoptTimeout bounds one adoption of a dead node; adoptRetryWait is how
// long a node waits before trying again an adoption that failed (or a
// node it cannot adopt) on its own.
const (
	adoptTimeout   = 2 * time.Minute
	adoptRetryWait = time.Minute
)

// errNotAdoptable is returned for a node whose sessions this node cannot
// read: no StateStores here, or the node named no store.
var errNotAdoptable = errors.New("cluster: the node's store cannot be read from here")

// adoptLock is the value of the lock adopt.NODE.
type adoptLock struct {
	Node     string `json:"node"`
	Instance uint64 `json:"instance"`
}

func adoptKey(node string) string { return "adopt." + node }
func storeKey(node string) string { return "store." + node }

// adoptNode adopts the sessions of node, which is gone, or waits for the
// adoption already running (here or on another node), up to ctx. It
// returns nil once no adoption of node runs any more: the caller reads
// the session records again.
func (h *Hook) adoptNode(ctx context.Context, node string) error {
	h.adoptMu.Lock()
	done, running := h.adopting[node]
	if !running {
		h.mu.Lock()
		life := h.life
		if life == nil || life.Err() != nil {
			h.mu.Unlock()
			h.adoptMu.Unlock()
			return errors.New("cluster: stopped")
		}
		h.wg.Add(1)
		h.mu.Unlock()
		done = make(chan error, 1)
		h.adopting[node] = done
		go func() {
			defer h.wg.Done()
			actx, cancel := context.WithTimeout(life, adoptTimeout)
			err := h.adopt(actx, node)
			cancel()
			h.adoptMu.Lock()
			delete(h.adopting, node)
			if errors.Is(err, errNotAdoptable) {
				h.adoptRetry[node] = time.Now().Add(adoptRetryWait)
			}
			h.adoptMu.Unlock()
			done <- err
			close(done)
		}()
	}
	h.adoptMu.Unlock()
	select {
	case err, ok := <-done:
		if !ok {
			return nil // another waiter took the result: it ended
		}
		return err
	case <-ctx.Done():
		return fmt.Errorf("cluster: adopting the sessions of %s: %w", node, ctx.Err())
	}
}

// notAdoptable reports whether an adoption of node found lately that
// its sessions cannot be read from here.
func (h *Hook) notAdoptable(node string) bool {
	h.adoptMu.Lock()
	defer h.adoptMu.Unlock()
	return time.Now().Before(h.adoptRetry[node])
}

// adopt runs one adoption of node (see the top of the file).
func (h *Hook) adopt(ctx context.Context, node string) error {
	st, nc := h.js.Load(), h.nc.Load()
	if st == nil || nc == nil {
		return errNoJetStream
	}
	release, err := h.lockAdoption(ctx, st.sessions, node)
	if err != nil || release == nil {
		return err
	}
	defer release()
	if gone, err := h.gone(ctx, nc, node); err != nil || !gone {
		return err
	}
	where, err := st.sessions.Get(ctx, storeKey(node))
	if errors.Is(err, jetstream.ErrKeyNotFound) || err == nil && len(where.Value()) == 0 || h.cfg.States == nil || h.cfg.States.Open == nil {
		return errNotAdoptable
	}
	if err != nil {
		return fmt.Errorf("cluster: look up the store of %s: %w", node, err)
	}
	store, err := h.cfg.States.Open(ctx, string(where.Value()))
	if err != nil {
		return fmt.Errorf("cluster: open the store of %s (%s): %w", node, where.Value(), err)
	}
	defer func() { _ = store.Close() }()

	started := time.Now()
	adopted, lost, err := h.adoptSessions(ctx, st, store, node)
	if err != nil {
		return err
	}
	// The adopted sessions' routes are written before the dead node's go,
	// so that no publisher between the two finds no node for them.
	if err := h.flushInterest(ctx); err != nil {
		return err
	}
	if err := h.deleteRoutes(ctx, st, node); err != nil {
		return err
	}
	routed, err := h.drainDeadInbox(ctx, st, node, adopted)
	if err != nil {
		return err
	}
	// A record a claim held a moment and gave back (its holder died
	// under the claim) is adopted too, with its stored state.
	late, lostLate, err := h.adoptSessions(ctx, st, store, node)
	if err != nil {
		return err
	}
	if len(late) > 0 {
		h.log.Warn("cluster: sessions of a dead node adopted after its inbox was routed: what the inbox held for them is missing", "dead_node", node, "sessions", len(late))
		for id := range late {
			adopted[id] = true
		}
	}
	lost += lostLate
	_ = st.nodes.Delete(ctx, node)
	h.stats.adoptedDead.Add(int64(len(adopted)))
	h.log.Warn("cluster: adopted the sessions of a node that is gone", "dead_node", node,
		"sessions", len(adopted), "sessions_without_state", lost, "inbox_messages", routed, "took", time.Since(started).Round(time.Millisecond))
	return nil
}

// lockAdoption takes the lock adopt.NODE, returning how to let it go; it
// returns nil, nil after waiting for another node's adoption of node to
// end. A lock whose holder is gone is broken.
func (h *Hook) lockAdoption(ctx context.Context, kv jetstream.KeyValue, node string) (func(), error) {
	mine := mustJSON(adoptLock{Node: h.cfg.Node, Instance: h.instance})
	for {
		rev, err := kv.Create(ctx, adoptKey(node), mine)
		if err == nil {
			return func() {
				dctx, cancel := context.WithTimeout(context.Background(), h.cfg.ConnectTimeout)
				defer cancel()
				_ = kv.Delete(dctx, adoptKey(node), jetstream.LastRevision(rev))
			}, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, fmt.Errorf("cluster: lock the adoption of %s: %w", node, err)
		}
		waited, err := h.awaitAdoption(ctx, kv, node)
		if err != nil || waited {
			return nil, err
		}
	}
}

// awaitAdoption waits while a live node holds the lock adopt.NODE, and
// breaks a lock whose holder is gone. waited reports that a live holder's
// adoption ended; false means the lock is free now (or was broken).
func (h *Hook) awaitAdoption(ctx context.Context, kv jetstream.KeyValue, node string) (waited bool, err error) {
	nc := h.nc.Load()
	if nc == nil {
		return false, errNoJetStream
	}
	var failing time.Time // since when the lock cannot be read
	for {
		gctx, gcancel := context.WithTimeout(ctx, pingTimeout)
		e, err := kv.Get(gctx, adoptKey(node))
		gcancel()
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return waited, nil
		}
		if err != nil {
			// A bucket just made answers once its stream has a leader:
			// try again a while. One that stays unreadable has no
			// adoption going on either (the adopter could not write).
			if failing.IsZero() {
				failing = time.Now()
			} else if time.Since(failing) > unreadableLock {
				h.log.Debug("cluster: the adoption lock cannot be read; going on", "node", node, "cause", err)
				return false, nil
			}
			select {
			case <-ctx.Done():
				return false, fmt.Errorf("cluster: read the adoption lock of %s: %w", node, err)
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		var l adoptLock
		_ = json.Unmarshal(e.Value(), &l)
		if l.Node == "" || l.Node == h.cfg.Node && l.Instance != h.instance {
			_ = kv.Delete(ctx, adoptKey(node), jetstream.LastRevision(e.Revision()))
			return false, nil // unreadable, or this node's earlier process's
		}
		if l.Node != h.cfg.Node {
			if gone, err := h.gone(ctx, nc, l.Node); err == nil && gone {
				h.log.Warn("cluster: the node adopting another's sessions is gone itself; taking over", "dead_node", node, "adopter", l.Node)
				_ = kv.Delete(ctx, adoptKey(node), jetstream.LastRevision(e.Revision()))
				return false, nil
			}
		}
		waited = true
		select {
		case <-ctx.Done():
			return false, fmt.Errorf("cluster: waiting for %s to adopt the sessions of %s: %w", l.Node, node, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// unreadableLock is how long awaitAdoption tries to read a lock that
// cannot be read before it takes it for absent.
const unreadableLock = 2 * time.Second

// pingTimeout bounds a ping of a node (gone).
const pingTimeout = time.Second

// noResponders reports whether nothing answers on node's subject: the
// node does not run (a frozen one still has its subscription).
func (h *Hook) noResponders(ctx context.Context, node string) bool {
	nc := h.nc.Load()
	return nc != nil && errors.Is(h.ping(ctx, nc, node), nats.ErrNoResponders)
}

// ping asks node whether it runs, within pingTimeout of ctx.
func (h *Hook) ping(ctx context.Context, nc *nats.Conn, node string) error {
	pctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	_, err := nc.RequestWithContext(pctx, h.sessSubj+"."+node, mustJSON(releaseRequest{Ping: true}))
	return err
}

// gone reports whether node is no longer running: nothing answers on its
// subject, or it does not answer and has not written its registry entry
// for three heartbeats (it is frozen; fenced when it runs again).
func (h *Hook) gone(ctx context.Context, nc *nats.Conn, node string) (bool, error) {
	if nc == nil {
		return false, errNoJetStream
	}
	err := h.ping(ctx, nc, node)
	switch {
	case err == nil:
		return false, nil
	case errors.Is(err, nats.ErrNoResponders):
		return true, nil
	case ctx.Err() != nil:
		return false, ctx.Err()
	}
	return !h.alive(node), nil
}

// adoptSessions claims and installs every session whose record names
// node, returning the adopted clients and how many records had no stored
// session (a session that lived in memory only: it ends, and the will it
// owed is published).
func (h *Hook) adoptSessions(ctx context.Context, st *jsState, store SessionStore, node string) (map[string]bool, int, error) {
	w, err := st.sessions.Watch(ctx, "s.*", jetstream.IgnoreDeletes())
	if err != nil {
		return nil, 0, fmt.Errorf("cluster: read the session records: %w", err)
	}
	var theirs []jetstream.KeyValueEntry
	for e := range w.Updates() {
		if e == nil {
			break // the records as they are now
		}
		var rec ownerRecord
		if json.Unmarshal(e.Value(), &rec) == nil && rec.Node == node {
			theirs = append(theirs, e)
		}
	}
	_ = w.Stop()
	if ctx.Err() != nil {
		return nil, 0, ctx.Err()
	}
	adopted := make(map[string]bool, len(theirs))
	lost := 0
	for _, e := range theirs {
		var rec ownerRecord
		_ = json.Unmarshal(e.Value(), &rec)
		sess, ok, err := store.LoadSession(ctx, rec.ClientID)
		if err != nil {
			h.log.Warn("cluster: cannot read a session of a node that is gone; it stays with that node", "client", rec.ClientID, "dead_node", node, "cause", err)
			continue
		}
		mine := mustJSON(ownerRecord{ClientID: rec.ClientID, Node: h.cfg.Node, Instance: h.instance, Epoch: rec.Epoch + 1,
			Will: rec.Will, Owner: rec.Owner, Adopted: true})
		if !ok {
			if rec.Will == nil {
				// Nothing stored, nothing owed: the session ended with its
				// node.
				if err := st.sessions.Delete(ctx, e.Key(), jetstream.LastRevision(e.Revision())); err == nil {
					lost++
				}
				continue
			}
			// A session no store kept, whose will is owed: it is adopted
			// without state, and ends at once, publishing the will.
			sess = core.StoredSession{ClientID: rec.ClientID, Owner: rec.Owner}
		}
		sess.Will = rec.Will
		if _, err := st.sessions.Update(ctx, e.Key(), mine, e.Revision()); err != nil {
			continue // claimed meanwhile: a client connected elsewhere
		}
		if err := h.srv.AdoptSession(&sess); err != nil {
			h.log.Warn("cluster: cannot install a session of a node that is gone", "client", rec.ClientID, "dead_node", node, "cause", err)
			continue
		}
		if !ok {
			lost++ // ended, its will published
			continue
		}
		adopted[rec.ClientID] = true
	}
	return adopted, lost, nil
}

// deleteRoutes deletes node's route table entries.
func (h *Hook) deleteRoutes(ctx context.Context, st *jsState, node string) error {
	lister, err := st.routes.ListKeysFiltered(ctx, node+".>")
	if err != nil {
		return fmt.Errorf("cluster: list the routes of %s: %w", node, err)
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	_ = lister.Stop()
	for _, k := range keys {
		if err := st.routes.Delete(ctx, k); err != nil {
			return fmt.Errorf("cluster: delete a route of %s: %w", node, err)
		}
	}
	return nil
}

// drainGrace is how long the drain of a dead node's inbox waits, after
// finding it empty, for a message a publisher sent before it saw the
// dead node's routes go; it then reads the inbox once more.
const drainGrace = time.Second

// drainDeadInbox routes what waits in node's inbox to the adopted
// sessions, through a consumer of its own (the dead node's is deleted, so
// that what it had taken and not acknowledged is read again at once), and
// returns how many messages it routed.
func (h *Hook) drainDeadInbox(ctx context.Context, st *jsState, node string, adopted map[string]bool) (int, error) {
	if err := st.inbox.DeleteConsumer(ctx, node); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return 0, fmt.Errorf("cluster: delete the inbox consumer of %s: %w", node, err)
	}
	name := "adopt-" + node
	cons, err := st.inbox.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:           name,
		Description:       "vanemq: " + h.cfg.Node + " adopting the inbox of " + node,
		FilterSubject:     h.inboxSubject(node),
		AckPolicy:         jetstream.AckExplicitPolicy,
		AckWait:           30 * time.Second,
		InactiveThreshold: adoptTimeout,
	})
	if err != nil {
		return 0, fmt.Errorf("cluster: read the inbox of %s: %w", node, err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), h.cfg.ConnectTimeout)
		defer cancel()
		_ = st.inbox.DeleteConsumer(dctx, name)
	}()
	only := func(id string) bool { return adopted[id] }
	rb := h.srv.NewRemoteBatch()
	routed, empty := 0, 0
	for empty < 2 {
		batch, err := cons.Fetch(maxBatch, jetstream.FetchMaxWait(250*time.Millisecond))
		if err != nil {
			return routed, fmt.Errorf("cluster: read the inbox of %s: %w", node, err)
		}
		var msgs []jetstream.Msg
		for m := range batch.Messages() {
			if e, ok := h.open(m.Data(), m.Subject()); ok {
				h.routeMu.Lock()
				h.stats.received.Add(1)
				switch {
				case len(e.targets) > 0: // passed on for sessions that moved to the dead node
					h.deliverTo(rb, e, "", "", m.Subject(), func(id string) bool { return only(id) && slices.Contains(e.targets, id) })
				case e.ordinary:
					h.deliverTo(rb, e, "", "", m.Subject(), only)
				}
				for _, g := range e.groups {
					h.deliverTo(rb, e, g.group, g.filter, m.Subject(), only)
				}
				h.routeMu.Unlock()
			}
			msgs = append(msgs, m)
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return routed, fmt.Errorf("cluster: read the inbox of %s: %w", node, err)
		}
		if len(msgs) == 0 {
			if empty++; empty < 2 {
				select {
				case <-ctx.Done():
					return routed, ctx.Err()
				case <-time.After(drainGrace):
				}
			}
			continue
		}
		empty = 0
		stored := make(chan error, 1)
		rb.Flush(func(err error) { stored <- err })
		select {
		case err := <-stored:
			if err != nil {
				return routed, fmt.Errorf("cluster: store what the inbox of %s held: %w", node, err)
			}
		case <-ctx.Done():
			return routed, ctx.Err()
		}
		for _, m := range msgs {
			_ = m.Ack()
		}
		routed += len(msgs)
	}
	return routed, nil
}

// nameStore writes which store this node keeps its sessions in
// (store.NODE), for the node that adopts them should this one die.
func (h *Hook) nameStore(ctx context.Context, st *jsState) {
	if h.cfg.States == nil || h.cfg.States.Mine == "" {
		return
	}
	if _, err := st.sessions.Put(ctx, storeKey(h.cfg.Node), []byte(h.cfg.States.Mine)); err != nil {
		h.log.Warn("cluster: cannot name this node's store in the cluster; should this node die, its sessions wait for it", "cause", err)
	}
}

// adoptStale adopts the sessions of the nodes in the registry that have
// not written their entry for adopt_after: run every heartbeat.
func (h *Hook) adoptStale(ctx context.Context) {
	h.reg.mu.Lock()
	var stale []string
	for name, n := range h.reg.nodes {
		if name != h.cfg.Node && time.Since(n.seen) > h.cfg.AdoptAfter {
			stale = append(stale, name)
		}
	}
	h.reg.mu.Unlock()
	for _, node := range stale {
		h.adoptMu.Lock()
		_, running := h.adopting[node]
		later := time.Now().Before(h.adoptRetry[node])
		h.adoptMu.Unlock()
		if running || later {
			continue
		}
		go func() {
			err := h.adoptNode(ctx, node)
			if err == nil || ctx.Err() != nil {
				return
			}
			h.adoptMu.Lock()
			h.adoptRetry[node] = time.Now().Add(adoptRetryWait)
			h.adoptMu.Unlock()
			if !errors.Is(err, errNotAdoptable) {
				h.log.Warn("cluster: cannot adopt the sessions of a node that is gone; trying again later", "dead_node", node, "cause", err)
			}
		}()
	}
}
