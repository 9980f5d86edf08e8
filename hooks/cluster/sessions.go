package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vanemq/vanemq/core"
)

// Which node holds a client's session is the KV bucket PREFIX_sessions:
// key s.HASH of the client ID, value an ownerRecord. A node claims a
// session for a connecting client by compare-and-swap on the key, the
// epoch one higher than the record it replaces, then asks the node the
// record named (subject PREFIX.sess.NODE) to let the session go: that
// node closes the client's connection with Session taken over and replies
// with the session's state, which this node adopts.

// ownerRecord names the node, and its process, holding a session.
type ownerRecord struct {
	ClientID string `json:"client_id"`
	Node     string `json:"node"`
	Instance uint64 `json:"instance"`
	// Epoch counts the claims of the session: a node whose record was
	// replaced by a higher epoch no longer holds the session.
	Epoch uint64 `json:"epoch"`
	// Will is the will the session owes, if its client's connection ended
	// with the node: the will of the client's connection, kept until the
	// node settles it (WillSettled), for the node that adopts the
	// session should this one die.
	Will *core.StoredWill `json:"will,omitempty"`
	// WillGen counts the claims of the client on the node that wrote
	// Will: a will settled here is cleared only if no later claim here
	// wrote another.
	WillGen uint64 `json:"will_gen,omitempty"`
	// Owner is the identity that claimed the session, for a will
	// published by the adopting node of a session no store kept.
	Owner *core.Identity `json:"owner,omitempty"`
	// Adopted is set by a node that adopted the session from a dead one,
	// and kept by the claims after it: the dead node, should it run
	// again, lets the session go without publishing its will (the
	// adopter did).
	Adopted bool `json:"adopted,omitempty"`
}

// sessionKey is the bucket key of client id's session.
func sessionKey(id string) string {
	sum := sha256.Sum256([]byte(id))
	return "s." + hex.EncodeToString(sum[:16])
}

// releaseRequest asks a node to let a session go.
type releaseRequest struct {
	ClientID string        `json:"client_id"`
	Clean    bool          `json:"clean"`
	Identity core.Identity `json:"identity"` // who the claiming client is
	Node     string        `json:"node"`     // the node claiming it
	Epoch    uint64        `json:"epoch"`    // of the claim
	// Budget is how long the claimant waits for the answer: past it the
	// node lets nothing go, since nobody would receive the state.
	Budget time.Duration `json:"budget"`
	// Ping asks only whether the node runs (gone): it answers at once.
	Ping bool `json:"ping,omitempty"`
}

// releaseReply is the answer: the session's state, if the node had it.
// A state too big for one NATS message comes in several: the first holds
// the session and its first deliveries, each later one more deliveries
// (Chunk), and More says whether another follows.
type releaseReply struct {
	Found bool `json:"found"`
	// Refused is set when the session belongs to another identity and
	// the node's foreign_session policy refuses the claim.
	Refused bool `json:"refused,omitempty"`
	// Busy is set when the node could not let the session go within the
	// claim's budget (its inbox not routed yet): it keeps the session,
	// and the client is to try again.
	Busy    bool           `json:"busy,omitempty"`
	Session *wireSession   `json:"session,omitempty"`
	Chunk   []wireDelivery `json:"chunk,omitempty"`
	More    bool           `json:"more,omitempty"`
	// Dropped counts queued messages left out because one alone is too
	// big for a NATS message.
	Dropped int `json:"dropped,omitempty"`
	// Routed are the latest QoS 1/2 messages the node routed before
	// letting the session go: the session has those it wanted, and the
	// claimant's own copies of them skip it (moves.go).
	Routed []msgKey `json:"routed,omitempty"`
	Error  string   `json:"error,omitempty"`
}

// errContended is returned when other nodes keep claiming the session.
var errContended = errors.New("cluster: the session is being claimed on other nodes at the same time")

// ClaimSession implements core.ClusterHook: it makes this node the
// session's holder in the bucket and, if another node held it, has that
// node let it go, adopting its state unless clean is set. Without a
// JetStream session, or while NATS is away, the node claims nothing and
// serves the client from what it has (counted as unclaimed): there is no
// cluster to ask.
func (h *Hook) ClaimSession(ctx context.Context, claim core.SessionClaim) error {
	id, clean := claim.ClientID, claim.Clean
	st := h.js.Load()
	if st == nil || !h.connected() {
		h.stats.unclaimed.Add(1)
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, h.cfg.TakeoverTimeout)
	defer cancel()
	key := sessionKey(id)
	h.endMu.Lock()
	h.willGen[id]++
	gen := h.willGen[id]
	h.endMu.Unlock()
	mine := ownerRecord{ClientID: id, Node: h.cfg.Node, Instance: h.instance, Will: claim.Will, WillGen: gen, Owner: &claim.Identity}
	noAdopt := map[string]bool{} // gone nodes whose stores this node cannot read
	for range 5 {
		e, err := st.sessions.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			mine.Epoch = 1
			val, _ := json.Marshal(mine)
			if _, err := st.sessions.Create(ctx, key, val); errors.Is(err, jetstream.ErrKeyExists) {
				continue
			} else if err != nil {
				return fmt.Errorf("cluster: claim the session: %w", err)
			}
			return nil
		}
		if err != nil {
			h.stats.unclaimed.Add(1)
			h.log.Warn("cluster: cannot look up which node holds the session; serving it from this node", "client", id, "cause", err)
			return nil
		}
		var old ownerRecord
		if err := json.Unmarshal(e.Value(), &old); err != nil {
			old = ownerRecord{} // unreadable: claimed over
		}
		if old.Node == h.cfg.Node && old.Instance == h.instance {
			if old.Will != nil || claim.Will != nil { // the new connection's will replaces the old's
				mine.Epoch, mine.Adopted = old.Epoch, old.Adopted
				if _, err := st.sessions.Update(ctx, key, mustJSON(mine), e.Revision()); err != nil && (errors.Is(err, jetstream.ErrKeyExists) || isWrongSequence(err)) {
					continue
				}
			}
			return nil // here already
		}
		if old.Node != "" && old.Node != h.cfg.Node && h.notAdoptable(old.Node) {
			noAdopt[old.Node] = true
		}
		if old.Node != "" && old.Node != h.cfg.Node && !noAdopt[old.Node] {
			// A holder that is gone has its sessions adopted, this one
			// with them, before its record is touched: a record claimed
			// here meanwhile would escape the adoption, and with it what
			// the dead node's inbox holds for the session.
			if h.noResponders(ctx, old.Node) {
				err := h.adoptNode(ctx, old.Node)
				switch {
				case errors.Is(err, errNotAdoptable):
					noAdopt[old.Node] = true
				case err != nil:
					h.stats.takeoverBusy.Add(1)
					h.log.Warn("cluster: cannot adopt the sessions of the node that held the session", "client", id, "held_by", old.Node, "cause", err)
					return fmt.Errorf("cluster: %s, which held the session, is gone, and its sessions are not adopted yet; connect again", old.Node)
				}
				continue
			}
		}
		// Adopted stays: a node fenced since the adoption still publishes
		// no will for the session.
		mine.Epoch, mine.Adopted = old.Epoch+1, old.Adopted
		val, _ := json.Marshal(mine)
		claimed, err := st.sessions.Update(ctx, key, val, e.Revision())
		if err != nil {
			if errors.Is(err, jetstream.ErrKeyExists) || isWrongSequence(err) {
				continue // claimed meanwhile by another node
			}
			return fmt.Errorf("cluster: claim the session: %w", err)
		}
		if old.Node == "" || old.Node == h.cfg.Node {
			return nil // this node's earlier process, or no readable holder
		}
		req := releaseRequest{ClientID: id, Clean: clean, Identity: claim.Identity, Node: h.cfg.Node, Epoch: mine.Epoch}
		if dl, ok := ctx.Deadline(); ok {
			req.Budget = time.Until(dl)
		}
		moved, routed, out := h.askRelease(ctx, old, req)
		if out == releaseGone && noAdopt[old.Node] {
			h.stats.takeoverLost.Add(1)
			h.log.Warn("cluster: the node that held the session is gone, and its store cannot be read from here; the session starts over here", "client", id, "held_by", old.Node)
			return nil
		}
		if out == releaseRefused || out == releaseBusy || out == releaseGone {
			// The session stays where it is: give the record back, on a
			// context of its own (the claim's may be spent).
			old.Epoch = mine.Epoch + 1
			back, _ := json.Marshal(old)
			bctx, bcancel := context.WithTimeout(context.Background(), h.cfg.ConnectTimeout)
			// On the revision this claim wrote: a read may come from a
			// replica that has not seen it yet.
			if _, err := st.sessions.Update(bctx, key, back, claimed); err != nil {
				h.log.Warn("cluster: cannot give a session's record back", "client", id, "held_by", old.Node, "cause", err)
			}
			bcancel()
			if out == releaseRefused {
				return fmt.Errorf("cluster: %w", core.ErrForeignSession)
			}
			if out == releaseGone {
				// Its sessions are adopted (by this node, or the one that
				// got there first); then the record says where this one is.
				err := h.adoptNode(ctx, old.Node)
				if errors.Is(err, errNotAdoptable) {
					noAdopt[old.Node] = true
					continue
				}
				if err == nil {
					continue
				}
				h.log.Warn("cluster: cannot adopt the sessions of the node that held the session", "client", id, "held_by", old.Node, "cause", err)
			}
			h.stats.takeoverBusy.Add(1)
			return fmt.Errorf("cluster: %s, which holds the session, could not let it go within takeover_timeout; connect again", old.Node)
		}
		if moved == nil || clean {
			return nil
		}
		h.mv.skip(id, routed) // before: a copy routed once the session is here skips it
		if err := h.srv.AdoptSession(moved); err != nil {
			return fmt.Errorf("cluster: adopt the session from %s: %w", old.Node, err)
		}
		h.mv.adopted(id, h.mv.routed.Load(), h.seq.Load())
		h.stats.adopted.Add(1)
		return nil
	}
	return errContended
}

// isWrongSequence reports a compare-and-swap that lost.
func isWrongSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

// releaseOutcome is what asking a node to let a session go came to.
type releaseOutcome int

const (
	// releaseNone: the node had no session for the client, or is gone
	// (no one answers its subject): the session starts here.
	releaseNone releaseOutcome = iota
	// releaseMoved: the node let the session go, with its state.
	releaseMoved
	// releaseRefused: the session is another identity's, which the
	// node's policy keeps.
	releaseRefused
	// releaseBusy: the node is alive but did not let the session go in
	// time; it keeps it.
	releaseBusy
	// releaseGone: the node is gone (no one answers its subject, or it is
	// frozen): its sessions are to be adopted (adoptNode).
	releaseGone
)

// askRelease asks old's node to let the session go and returns its
// state, the messages the node routed just before (releaseReply.Routed),
// and what came of it. A node that does not answer in time but is alive
// (in the registry) keeps the session (busy: past the request's budget it
// lets nothing go); one that no longer exists loses it (the session
// starts over here).
func (h *Hook) askRelease(ctx context.Context, old ownerRecord, req releaseRequest) (*core.StoredSession, []msgKey, releaseOutcome) {
	nc := h.nc.Load()
	if nc == nil {
		return nil, nil, releaseNone
	}
	rep, err := h.request(ctx, nc, h.sessSubj+"."+old.Node, mustJSON(req))
	if err != nil && !errors.Is(err, nats.ErrNoResponders) && h.alive(old.Node) {
		h.log.Warn("cluster: the node that holds the session did not answer in time; it keeps it", "client", req.ClientID, "held_by", old.Node, "cause", err)
		return nil, nil, releaseBusy
	}
	if err != nil {
		h.log.Info("cluster: the node that holds the session is gone", "client", req.ClientID, "held_by", old.Node, "cause", err)
		return nil, nil, releaseGone
	}
	switch {
	case rep.Refused:
		return nil, nil, releaseRefused
	case rep.Busy:
		return nil, nil, releaseBusy
	case !rep.Found || rep.Session == nil:
		return nil, nil, releaseNone
	}
	if rep.Dropped > 0 {
		h.log.Warn("cluster: a session moved without some of its queued messages (each too big for a NATS message)", "client", req.ClientID, "held_by", old.Node, "dropped", rep.Dropped)
	}
	st, err := rep.Session.decode(time.Now())
	if err != nil {
		h.stats.takeoverLost.Add(1)
		h.log.Warn("cluster: the session's state from another node does not decode; the session starts over here", "client", req.ClientID, "held_by", old.Node, "cause", err)
		return nil, nil, releaseNone
	}
	return st, rep.Routed, releaseMoved
}

// request sends a release request and gathers its reply, in as many NATS
// messages as it comes in (releaseReply.More), within ctx.
func (h *Hook) request(ctx context.Context, nc *nats.Conn, subject string, data []byte) (*releaseReply, error) {
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.PublishRequest(subject, inbox, data); err != nil {
		return nil, err
	}
	var whole *releaseReply
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return nil, err
		}
		if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
			return nil, nats.ErrNoResponders
		}
		var rep releaseReply
		if err := json.Unmarshal(m.Data, &rep); err != nil {
			return nil, fmt.Errorf("a reply that does not decode: %w", err)
		}
		if rep.Error != "" {
			return nil, errors.New(rep.Error)
		}
		if rep.Busy {
			return &rep, nil
		}
		if whole == nil {
			whole = &rep
		} else if whole.Session != nil {
			whole.Session.Deliveries = append(whole.Session.Deliveries, rep.Chunk...)
			whole.Dropped += rep.Dropped
		}
		if !rep.More {
			return whole, nil
		}
	}
}

// errorString is s as an error, nil for "".
func errorString(s string) error {
	if s == "" {
		return nil
	}
	return errors.New(s)
}

// serveReleases answers other nodes' requests to let a session go, on
// the subject PREFIX.sess.NODE.
func (h *Hook) serveReleases(nc *nats.Conn) (*nats.Subscription, error) {
	return nc.Subscribe(h.sessSubj+"."+h.cfg.Node, func(m *nats.Msg) {
		var req releaseRequest
		err := json.Unmarshal(m.Data, &req)
		if err == nil && req.Ping {
			_ = m.Respond(mustJSON(releaseReply{}))
			return
		}
		if err != nil || req.ClientID == "" {
			_ = m.Respond(mustJSON(releaseReply{Error: "bad request"}))
			return
		}
		// Past the budget the claimant has given up: let nothing go.
		budget := req.Budget - 250*time.Millisecond
		if req.Budget == 0 {
			budget = h.cfg.TakeoverTimeout / 2 // a claim without a deadline
		}
		if budget <= 0 {
			_ = m.Respond(mustJSON(releaseReply{Busy: true}))
			return
		}
		deadline := time.Now().Add(budget)
		// A request that waited while this node was stopped is stale: the
		// node fences first, and lets a session go only for the claim
		// the record still names (a claimant that gave up gave it back).
		fctx, fcancel := context.WithDeadline(context.Background(), deadline)
		h.fenceIfStalled(fctx)
		current := h.claimCurrent(fctx, req)
		fcancel()
		if !current {
			_ = m.Respond(mustJSON(releaseReply{Busy: true}))
			return
		}
		if !req.Clean {
			// What was handed to this node for the session goes with it.
			ctx, cancel := context.WithDeadline(context.Background(), deadline)
			err := h.drainInbox(ctx)
			cancel()
			if err != nil {
				h.log.Warn("cluster: a session stays here: this node could not route its inbox before the claim's deadline", "client", req.ClientID, "claimed_by", req.Node, "cause", err)
				_ = m.Respond(mustJSON(releaseReply{Busy: true}))
				return
			}
		}
		if time.Now().After(deadline) {
			_ = m.Respond(mustJSON(releaseReply{Busy: true}))
			return
		}
		st, what, routed := h.releaseHeld(core.SessionClaim{ClientID: req.ClientID, Clean: req.Clean, Identity: req.Identity}, req.Node)
		found := what == core.Released
		rep := releaseReply{Found: found, Refused: what == core.ReleaseRefused, Routed: routed}
		if found && st.ClientID != "" {
			rep.Session = encodeSession(&st)
		}
		limit := int64(1 << 20)
		if nc := h.nc.Load(); nc != nil {
			limit = nc.MaxPayload()
		}
		for _, part := range splitReply(rep, int(limit)) {
			_ = m.Respond(mustJSON(part))
			rep.Dropped = part.Dropped
		}
		if rep.Dropped > 0 {
			h.log.Warn("cluster: a session moved to another node without some of its queued messages (each too big for a NATS message)", "client", req.ClientID, "to", req.Node, "dropped", rep.Dropped)
		}
		if found {
			h.stats.released.Add(1)
			h.log.Info("cluster: session moved to another node", "client", req.ClientID, "to", req.Node, "clean", req.Clean)
		}
	})
}

// claimCurrent reports whether the session record names the claim of
// req (its node and epoch). Without JetStream it cannot tell, and says
// yes: the claimant holds the record it wrote.
func (h *Hook) claimCurrent(ctx context.Context, req releaseRequest) bool {
	st := h.js.Load()
	if st == nil || req.Epoch == 0 {
		return true
	}
	e, err := st.sessions.Get(ctx, sessionKey(req.ClientID))
	if err != nil {
		return !errors.Is(err, jetstream.ErrKeyNotFound)
	}
	var rec ownerRecord
	if json.Unmarshal(e.Value(), &rec) != nil {
		return true
	}
	// An older epoch is a replica that has not seen the claim yet; a
	// newer one, or the same by another node, a claim since.
	if rec.Epoch > req.Epoch || rec.Epoch == req.Epoch && rec.Node != req.Node {
		h.log.Info("cluster: a request to let a session go is stale: the record names another claim", "client", req.ClientID, "claimed_by", req.Node, "epoch", req.Epoch, "record_node", rec.Node, "record_epoch", rec.Epoch)
		return false
	}
	return true
}

// splitReply cuts rep into NATS messages of at most limit bytes: the
// first with the session and as many deliveries as fit, the others with
// the rest, in order. A delivery too big for a message alone is left out
// (counted in the last part's Dropped).
func splitReply(rep releaseReply, limit int) []releaseReply {
	if rep.Session == nil || len(rep.Session.Deliveries) == 0 {
		return []releaseReply{rep}
	}
	all := rep.Session.Deliveries
	budget := limit * 9 / 10
	size := func(d *wireDelivery) int { // JSON: base64 publish, origin, fields
		return len(d.Publish)*4/3 + len(d.Origin)*2 + 8*len(d.SubscriptionIDs) + 96
	}
	head := rep
	sess := *rep.Session
	sess.Deliveries = nil
	head.Session = &sess
	used := len(mustJSON(head))
	parts := []releaseReply{head}
	cur := &parts[0]
	dropped := 0
	for i := range all {
		d := &all[i]
		n := size(d)
		if n > budget {
			dropped++
			continue
		}
		if used+n > budget {
			cur.More = true
			parts = append(parts, releaseReply{Found: true})
			cur = &parts[len(parts)-1]
			used = 64
		}
		if cur.Session != nil {
			cur.Session.Deliveries = append(cur.Session.Deliveries, *d)
		} else {
			cur.Chunk = append(cur.Chunk, *d)
		}
		used += n
	}
	cur.Dropped = dropped
	return parts
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// SessionEnded implements core.ClusterHook: the session's record is
// removed from the bucket if this node still holds it (endSessions).
func (h *Hook) SessionEnded(id string) {
	h.endMu.Lock()
	delete(h.willGen, id) // the session left: its claims count again
	h.ended = append(h.ended, id)
	h.endMu.Unlock()
	h.signal(h.wakeEnded)
}

// WillSettled implements core.ClusterHook: the session's record lets go
// of its will, if this node still holds it (settleWills).
func (h *Hook) WillSettled(id string) {
	h.endMu.Lock()
	h.settled = append(h.settled, settledWill{id, h.willGen[id]})
	h.endMu.Unlock()
	h.signal(h.wakeEnded)
}

// settledWill is a will settled here: the client's, as of its claim
// count gen.
type settledWill struct {
	id  string
	gen uint64
}

// settleWills clears the will of the records of the clients whose wills
// were settled here, where this node still holds the session.
func (h *Hook) settleWills() {
	h.endMu.Lock()
	ids := h.settled
	h.settled = nil
	h.endMu.Unlock()
	st := h.js.Load()
	if st == nil || !h.connected() || len(ids) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.ConnectTimeout)
	defer cancel()
	for _, sw := range ids {
		e, rec, ok := h.ownRecord(ctx, st, sw.id)
		if !ok || rec.Will == nil || rec.WillGen > sw.gen {
			continue // not ours, or the will of a later connection
		}
		rec.Will = nil
		_, _ = st.sessions.Update(ctx, e.Key(), mustJSON(rec), e.Revision())
	}
}

// ownRecord reads client id's session record, reporting whether it names
// this node's process.
func (h *Hook) ownRecord(ctx context.Context, st *jsState, id string) (jetstream.KeyValueEntry, ownerRecord, bool) {
	var rec ownerRecord
	e, err := st.sessions.Get(ctx, sessionKey(id))
	if err != nil || json.Unmarshal(e.Value(), &rec) != nil {
		return nil, rec, false
	}
	return e, rec, rec.Node == h.cfg.Node && rec.Instance == h.instance
}

// endSessions removes the bucket records of the sessions that ended here
// and that no one claimed since: one that a client resumed here again
// meanwhile, or that another node holds now, is left alone.
func (h *Hook) endSessions() {
	h.endMu.Lock()
	ids := h.ended
	h.ended = nil
	h.endMu.Unlock()
	st := h.js.Load()
	if st == nil || !h.connected() {
		return // the next claim of each replaces its record
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.ConnectTimeout)
	defer cancel()
	for _, id := range ids {
		if _, here := h.srv.Client(id); here {
			continue
		}
		if e, _, ok := h.ownRecord(ctx, st, id); ok {
			_ = st.sessions.Delete(ctx, e.Key(), jetstream.LastRevision(e.Revision()))
		}
	}
}

// fence lets go every session here whose record names another holder: run
// when the node finds it was stopped (SIGSTOP, a long pause) for longer
// than other nodes wait for it, during which they may have claimed its
// sessions without it. A session with no record (it ended elsewhere)
// goes too.
func (h *Hook) fence(ctx context.Context) {
	n := h.reconcileSessions(ctx, false)
	h.log.Warn("cluster: this node was stopped for longer than the cluster waits; let go the sessions other nodes claimed meanwhile", "released", n)
}

// reconcileSessions checks each session here against its record and lets
// go those another node holds, returning how many. At the start of a
// JetStream session (start), sessions this node's earlier process held
// (restored from its store) and sessions without a record are claimed
// for this process instead.
func (h *Hook) reconcileSessions(ctx context.Context, start bool) int {
	st := h.js.Load()
	if st == nil {
		return 0
	}
	n := 0
	for _, c := range h.srv.Clients() {
		key := sessionKey(c.ID)
		e, err := st.sessions.Get(ctx, key)
		var rec ownerRecord
		switch {
		case err == nil && json.Unmarshal(e.Value(), &rec) == nil && rec.Node == h.cfg.Node && rec.Instance == h.instance:
			continue // ours
		case errors.Is(err, jetstream.ErrKeyNotFound) && start:
			mine, _ := json.Marshal(ownerRecord{ClientID: c.ID, Node: h.cfg.Node, Instance: h.instance, Epoch: 1})
			_, _ = st.sessions.Create(ctx, key, mine)
			continue
		case err == nil && rec.Node == h.cfg.Node && start:
			// The earlier process's connections are gone; their wills are
			// not published, as a single broker's restart publishes none.
			rec.Instance, rec.Epoch, rec.Will = h.instance, rec.Epoch+1, nil
			mine, _ := json.Marshal(rec)
			_, _ = st.sessions.Update(ctx, key, mine, e.Revision())
			continue
		case err != nil && !errors.Is(err, jetstream.ErrKeyNotFound):
			continue // cannot tell: keep it
		}
		h.srv.ReleaseSession(core.SessionClaim{ClientID: c.ID, Fenced: true, Adopted: err == nil && rec.Adopted})
		n++
	}
	h.stats.fenced.Add(int64(n))
	return n
}
