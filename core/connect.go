package core

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/vanemq/vanemq/core/packets"
	"github.com/vanemq/vanemq/core/topics"
)

// connect runs the CONNECT exchange. It reports whether the client is now
// connected; on false a refusing CONNACK (if any) is queued as final.
func (s *Server) connect(ctx context.Context, c *client, p *packets.Packet) bool {
	cf := &p.Connect
	c.takeConnect(p)
	var (
		ack    packets.Properties // the CONNACK's (v5)
		policy ClientPolicy       // set by the Connect hooks
	)
	id, assigned, code, why := s.admit(ctx, c, p, &ack, &policy)
	if code != packets.Success {
		return s.refuseConnect(c, cf.ClientID, code, why)
	}
	maxIn, expiry := c.applyPolicy(&policy, p)
	if c.version == packets.Version5 {
		s.connackProperties(c, &p.Properties, &ack, id, assigned, expiry, maxIn)
	}
	c.r.SetMaxSize(maxIn)
	if s.cluster != nil {
		err := s.cluster.ClaimSession(ctx, SessionClaim{ClientID: id, Clean: cf.CleanStart, Identity: identityOf(&c.info), Will: s.claimedWill(c)})
		switch {
		case errors.Is(err, ErrForeignSession):
			return s.refuseConnect(c, id, packets.NotAuthorized, ErrForeignSession.Error()+" (on another node)")
		case err != nil:
			return s.refuseConnect(c, id, packets.ServerUnavailable, err.Error())
		}
	}
	if !s.attach(c, id, cf.CleanStart, expiry, &ack) {
		return s.refuseConnect(c, id, packets.NotAuthorized, ErrForeignSession.Error())
	}
	c.logConnected(cf)
	return true
}

// takeConnect records what the CONNECT fixes for the connection's life:
// protocol version, keep alive, clean start, bridge bit.
func (c *client) takeConnect(p *packets.Packet) {
	c.version = p.ProtocolVersion
	c.r.SetVersion(c.version)
	c.keepAlive = p.Connect.KeepAlive
	c.cleanStart = p.Connect.CleanStart
	c.bridge = p.Connect.Bridge
}

// admit runs, in order, the steps of connecting that may refuse the
// client: its identifier, its certificate identity, its will, the limits it
// announced (which shape the refusing CONNACK too), enhanced
// authentication, and authentication, which fills policy. It returns the
// identifier the client gets and whether the broker assigned it, or the
// reason code and cause of the refusal.
func (s *Server) admit(ctx context.Context, c *client, p *packets.Packet, ack *packets.Properties, policy *ClientPolicy) (string, bool, packets.ReasonCode, string) {
	cf := &p.Connect
	id, assigned, code, why := s.clientID(c, cf)
	if code != packets.Success {
		return "", false, code, why
	}
	certAuth, code, why := c.identify(id, cf)
	if code != packets.Success {
		return id, assigned, code, why
	}
	if code, why = s.checkWill(c, cf); code != packets.Success {
		return id, assigned, code, why
	}
	c.takeClientLimits(&p.Properties)
	if code, why = s.connectEnhancedAuth(ctx, c, &p.Properties, ack); code != packets.Success {
		return id, assigned, code, why
	}
	code, why = s.authenticate(ctx, c, p, c.authMethod != "" || certAuth, policy)
	return id, assigned, code, why
}

// refuseConnect logs and counts a refused CONNECT and queues the refusing
// CONNACK as the connection's last packet, with why as its reason string.
// asked is the identifier the client asked for, which names it in the log
// when it was refused before it got one. It returns false, for connect.
func (s *Server) refuseConnect(c *client, asked string, code packets.ReasonCode, why string) bool {
	if c.id == "" {
		c.id = asked // the logger names the client as it asked to be called
	}
	c.logger().Warn("connection refused", "reason", code.String(), "cause", why)
	s.stats.refused.Add(1)
	var props *packets.Properties
	if why != "" {
		props = &packets.Properties{ReasonString: why}
		props.Set(packets.PropReasonString)
	}
	c.sendConnack(code, false, props, true)
	return false
}

// clientID returns the client identifier the connection gets: the one it
// asked for, or for an empty one, where the protocol allows it, a fresh one
// (assigned). An empty identifier where it is not allowed, one longer than
// max_client_id_len, and one in (or, for the broker's own connections, out
// of) the InternalIDPrefix space are refused.
func (s *Server) clientID(c *client, cf *packets.ConnectFields) (id string, assigned bool, code packets.ReasonCode, why string) {
	id = cf.ClientID
	if id == "" {
		switch {
		case c.version == packets.Version5:
			assigned = true
		case c.version == packets.Version311 && cf.CleanStart:
			assigned = true
		case c.version == packets.Version311:
			return "", false, packets.ClientIdentifierNotValid, "empty client identifier with clean session 0 [MQTT-3.1.3-8]"
		default:
			return "", false, packets.ClientIdentifierNotValid, "MQTT 3.1 requires a client identifier"
		}
		id = s.assignClientID()
	}
	if len(id) > s.opts.MaxClientIDLen {
		return "", false, packets.ClientIdentifierNotValid, "client identifier longer than max_client_id_len"
	}
	switch reserved := strings.HasPrefix(id, InternalIDPrefix); {
	case reserved && !c.internal:
		return "", false, packets.ClientIdentifierNotValid, "client identifiers beginning with " + InternalIDPrefix + " are the broker's own (bridges)"
	case !reserved && c.internal:
		return "", false, packets.ClientIdentifierNotValid, "an internal connection's client identifier must begin with " + InternalIDPrefix
	}
	return id, assigned, packets.Success, ""
}

// identify names the connection: its client identifier and the ClientInfo
// hooks see. On a listener that takes the user name from a verified client
// certificate (CertIdentity) that name replaces any the client sent, and
// certAuth is set; without a certificate the client is refused.
func (c *client) identify(id string, cf *packets.ConnectFields) (certAuth bool, code packets.ReasonCode, why string) {
	c.id = id
	c.info = ClientInfo{
		ID:              id,
		Username:        cf.Username,
		Remote:          c.remote,
		Listener:        c.listener,
		ProtocolVersion: c.version,
		CleanStart:      cf.CleanStart,
		TLS:             tlsState(c.conn),
	}
	ci, ok := c.conn.(CertIdentity)
	if !ok {
		return false, packets.Success, ""
	}
	name, ok := ci.CertIdentity()
	if !ok {
		return false, packets.NotAuthorized, "this listener takes the username from a verified client certificate, and there is none"
	}
	cf.Username, cf.UsernameFlag = name, true
	c.info.Username = name
	return true, packets.Success, ""
}

// checkWill validates the CONNECT's will, if any, and keeps it (c.will).
func (s *Server) checkWill(c *client, cf *packets.ConnectFields) (packets.ReasonCode, string) {
	if !cf.WillFlag {
		return packets.Success, ""
	}
	if err := topics.ValidateTopicName(cf.Will.Topic); err != nil {
		return packets.TopicNameInvalid, "will topic: " + err.Error()
	}
	if err := topics.CheckLevels(cf.Will.Topic, s.opts.MaxTopicLevels, false); err != nil {
		return packets.TopicNameInvalid, "will topic: " + err.Error()
	}
	if cf.Will.Retain && s.opts.DisableRetain {
		return packets.RetainNotSupported, "will retain requested but retain is not available"
	}
	w := cf.Will
	c.will = &w
	return packets.Success, ""
}

// takeClientLimits applies the flow control and limits the client
// announced (v5): its Receive Maximum, Maximum Packet Size and Topic Alias
// Maximum, whether it wants problem information, and its session expiry.
func (c *client) takeClientLimits(props *packets.Properties) {
	o := &c.srv.opts
	c.sendMax = o.MaxInflight
	c.reqProblemInfo = true
	if c.version != packets.Version5 {
		return
	}
	if props.Has(packets.PropReceiveMaximum) {
		c.sendMax = min(props.ReceiveMaximum, o.MaxInflight)
	}
	if props.Has(packets.PropMaximumPacketSize) {
		c.maxOutPacket = props.MaximumPacketSize
	}
	if !o.DisableTopicAliases {
		c.aliasOutMax = min(props.TopicAliasMaximum, o.TopicAliasMaximum)
	}
	if props.Has(packets.PropRequestProblemInfo) {
		c.reqProblemInfo = props.RequestProblemInfo == 1
	}
	c.connectExpiry = props.SessionExpiry
}

// connectEnhancedAuth runs v5 enhanced authentication when the CONNECT
// names a method (enhanced_auth.go), and puts the method and the hooks'
// last response in the CONNACK's properties.
func (s *Server) connectEnhancedAuth(ctx context.Context, c *client, props, ack *packets.Properties) (packets.ReasonCode, string) {
	if c.version != packets.Version5 || !props.Has(packets.PropAuthMethod) {
		return packets.Success, ""
	}
	if !s.hooks.has(EventEnhancedAuth) {
		return packets.BadAuthenticationMethod, "no hook handles authentication method " + props.AuthMethod
	}
	resp, code, why := c.enhancedAuth(ctx, props.AuthMethod, props.AuthData)
	if code != packets.Success {
		return code, why
	}
	c.authMethod = props.AuthMethod
	ack.AuthMethod = props.AuthMethod
	ack.Set(packets.PropAuthMethod)
	if resp != nil {
		ack.AuthData = resp
		ack.Set(packets.PropAuthData)
	}
	return packets.Success, ""
}

// applyPolicy sets the connection's limits from the broker's options and
// the Connect hooks' policy (packet size, inflight window, queue bound,
// mountpoint, session expiry maximum). It returns the largest packet the
// client may send and the session expiry it gets.
func (c *client) applyPolicy(policy *ClientPolicy, p *packets.Packet) (maxIn, expiry uint32) {
	o := &c.srv.opts
	maxIn = o.MaxPacketSize
	if policy.MaxPacketSize > 0 {
		maxIn = min(maxIn, policy.MaxPacketSize)
	}
	if policy.MaxInflight > 0 {
		c.sendMax = min(c.sendMax, policy.MaxInflight)
	}
	c.maxQueued = o.MaxQueuedMessages
	if policy.MaxQueuedMessages > 0 {
		c.maxQueued = policy.MaxQueuedMessages
	}
	c.mount = policy.Mountpoint
	c.expiryMax = o.SessionExpiryMax
	if policy.SessionExpiryMax > 0 {
		c.expiryMax = policy.SessionExpiryMax
	}
	switch {
	case c.version == packets.Version5:
		expiry = min(p.Properties.SessionExpiry, c.expiryMax)
	case !p.Connect.CleanStart:
		expiry = c.expiryMax
	}
	if c.will != nil && c.mount != "" {
		c.will.Topic = c.mount + c.will.Topic
	}
	return maxIn, expiry
}

// connackProperties fills a v5 CONNACK's properties: what the broker
// assigned or changed (identifier, session expiry, keep alive), its limits
// and the features it lacks, and response information when asked for.
func (s *Server) connackProperties(c *client, props, ack *packets.Properties, id string, assigned bool, expiry, maxIn uint32) {
	o := &s.opts
	if assigned {
		ack.AssignedClientID = id
		ack.Set(packets.PropAssignedClientID)
	}
	if expiry != props.SessionExpiry {
		ack.SessionExpiry = expiry
		ack.Set(packets.PropSessionExpiry)
	}
	if o.ReceiveMaximum != 65535 {
		ack.ReceiveMaximum = o.ReceiveMaximum
		ack.Set(packets.PropReceiveMaximum)
	}
	ack.MaximumPacketSize = maxIn
	ack.Set(packets.PropMaximumPacketSize)
	if !o.DisableTopicAliases {
		ack.TopicAliasMaximum = o.TopicAliasMaximum
		ack.Set(packets.PropTopicAliasMaximum)
	}
	setAvailability(ack, packets.PropRetainAvailable, &ack.RetainAvailable, o.DisableRetain)
	setAvailability(ack, packets.PropWildcardSubAvailable, &ack.WildcardSubAvailable, o.DisableWildcardSubs)
	setAvailability(ack, packets.PropSubscriptionIDAvailable, &ack.SubscriptionIDAvailable, o.DisableSubIDs)
	setAvailability(ack, packets.PropSharedSubAvailable, &ack.SharedSubAvailable, o.DisableSharedSubs)
	if o.ServerKeepAlive != 0 {
		c.keepAlive = o.ServerKeepAlive
		ack.ServerKeepAlive = o.ServerKeepAlive
		ack.Set(packets.PropServerKeepAlive)
	}
	if props.Has(packets.PropRequestResponseInfo) && props.RequestResponseInfo == 1 {
		ack.ResponseInfo = "responses/" + id
		ack.Set(packets.PropResponseInfo)
	}
}

// logConnected logs the new connection.
func (c *client) logConnected(cf *packets.ConnectFields) {
	if !c.logs(slog.LevelInfo) {
		return
	}
	attrs := []any{"version", c.version, "clean_start", cf.CleanStart, "keepalive", c.keepAlive}
	if cf.Bridge {
		attrs = append(attrs, "bridge", true)
	}
	c.logger().Info("client connected", attrs...)
}

// setAvailability announces a feature as unavailable (0) in CONNACK; an
// absent property means available.
func setAvailability(p *packets.Properties, id packets.PropID, field *byte, disabled bool) {
	if disabled {
		*field = 0
		p.Set(id)
	}
}

// assignClientID returns a fresh, unguessable client identifier.
func (s *Server) assignClientID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "vanemq-" + hex.EncodeToString(b[:])
}

// sendConnack queues a CONNACK in the client's version.
func (c *client) sendConnack(code packets.ReasonCode, present bool, props *packets.Properties, final bool) {
	p := &packets.Packet{Type: packets.Connack, ProtocolVersion: c.version, SessionPresent: present}
	if c.version == packets.Version5 {
		p.ReasonCode = code
		if props != nil {
			p.Properties = *props
		}
	} else {
		p.ReasonCode = packets.V3ConnackCode(code)
	}
	c.enqueueControl(outControl{pkt: p, final: final}, nil)
}

// attach binds the connection to its session: a resumed session or a new
// one, taking the session over from a live connection if there is one
// [MQTT-3.1.4-3]. The CONNACK is queued under the session lock so that it
// precedes every delivery to the new connection. A session another
// identity owns is never resumed: it is discarded as for a clean start,
// or, with ForeignSessionRefuse, attach changes nothing and returns false.
func (s *Server) attach(c *client, id string, clean bool, expiry uint32, ack *packets.Properties) bool {
	var (
		oldConn *client
		wills   []*willMsg
	)
	who := identityOf(&c.info)
	s.sessMu.Lock()
	sess := s.sessions[id]
	if sess != nil {
		sess.mu.Lock()
		if sess.foreignLocked(who) {
			owner := sess.owner
			if s.opts.ForeignSession == ForeignSessionRefuse {
				sess.mu.Unlock()
				s.sessMu.Unlock()
				c.logForeign(owner, "refused (foreign_session: refuse)")
				return false
			}
			if !clean {
				c.logForeign(owner, "its session is discarded and a clean one started (foreign_session: discard)")
				clean = true
			}
		}
		oldConn = sess.conn
		if oldConn != nil {
			sess.conn = nil
			// The old connection's will goes out now when its delay is 0 or
			// its session ends here; a delayed will is suppressed by the
			// resuming connection [MQTT-3.1.2-8][MQTT-3.1.3-9]. It is
			// published before this function returns, so it can never
			// follow (and overwrite) what the new connection publishes.
			if w := oldConn.will; w != nil && (clean || w.Properties.WillDelay == 0) {
				wills = append(wills, &willMsg{will: w, origin: id, info: &oldConn.info})
			}
		}
		if w := sess.takeWillLocked(); w != nil && clean {
			wills = append(wills, w)
		}
		sess.stopTimersLocked()
		if clean {
			s.discardLocked(sess, &c.batch)
		}
		sess.mu.Unlock()
		if clean {
			s.removeSessionLocked(sess)
			sess = nil
		}
	}
	present := sess != nil
	if sess == nil {
		sess = newSession(s, id)
		s.sessions[id] = sess
		s.live.Store(id, sess)
	}
	if oldConn == nil {
		s.online.Add(1)
	}
	sess.mu.Lock()
	sess.conn = c
	if !sess.ownerKnown {
		sess.owner, sess.ownerKnown = who, true
	}
	sess.info.Store(&c.info)
	sess.reads.reset()
	sess.gen++
	sess.expiry = expiry
	sess.maxQueued = c.maxQueued
	c.sess = sess
	c.connected = true
	c.v5Connected.Store(c.version == packets.Version5)
	if s.store != nil {
		if expiry > 0 {
			sess.persistAllLocked(&c.batch)
		} else {
			sess.unstoreLocked(&c.batch)
		}
		if s.storeDurable && len(c.batch.storeOps) > 0 {
			c.holdOutput() // until flushConnect has it stored
		}
	}
	c.sendConnack(packets.Success, present, ack, false)
	sess.resendLocked()
	sess.pumpLocked(&c.batch)
	sess.mu.Unlock()
	s.sessMu.Unlock()

	if oldConn != nil {
		s.sessionEvent(&oldConn.info, SessionTakenOver)
	}
	if present {
		s.sessionEvent(&c.info, SessionResumed)
	} else {
		s.sessionEvent(&c.info, SessionCreated)
	}
	if oldConn != nil {
		if oldConn.logs(slog.LevelInfo) {
			oldConn.logger().Info("session taken over by a new connection", "new_remote", c.remote)
		}
		s.stats.takeovers.Add(1)
		oldConn.kick(packets.SessionTakenOver, "session taken over")
	}
	for _, w := range wills {
		s.publishWill(w)
	}
	return true
}

// detach unbinds a closing connection from its session, unless the session
// has already moved to another connection. The will is published now, after
// its delay, or when the session ends, whichever is first [MQTT-3.1.3-9];
// a session with expiry 0 ends now.
func (s *Server) detach(c *client) {
	s.connsMu.Lock()
	delete(s.conns, c)
	s.connsMu.Unlock()
	s.counts(c.listener).open.Add(-1)
	sess := c.sess
	if sess == nil {
		return
	}
	var now *willMsg
	s.sessMu.Lock()
	sess.mu.Lock()
	if sess.conn != c {
		sess.mu.Unlock()
		s.sessMu.Unlock()
		if c.logs(slog.LevelInfo) {
			c.logger().Info("connection closed; its session lives on in a newer connection")
		}
		return
	}
	sess.conn = nil
	s.online.Add(-1)
	var w *willMsg
	if c.will != nil && !s.closing.Load() {
		w = &willMsg{will: c.will, origin: c.id, info: &c.info}
	}
	if sess.expiry == 0 {
		s.discardLocked(sess, &c.batch)
		s.removeSessionLocked(sess)
		now = w
	} else {
		if sess.stored {
			s.persist(&c.batch, sess.sessionOp(time.Now()))
		}
		gen := sess.gen
		if w != nil {
			delay := w.will.Properties.WillDelay
			if delay == 0 {
				now = w
			} else {
				sess.will = w
				d := time.Duration(min(delay, sess.expiry)) * time.Second
				sess.willTimer = time.AfterFunc(d, func() { s.willDelayElapsed(sess, gen) })
			}
		}
		d := time.Duration(sess.expiry) * time.Second
		sess.expiryTimer = time.AfterFunc(d, func() { s.expireSession(sess, gen) })
	}
	pending := sess.will != nil
	sess.mu.Unlock()
	s.sessMu.Unlock()
	if c.logs(slog.LevelInfo) {
		c.logger().Info("client disconnected", "clean", c.disconnected)
	}
	if now != nil {
		s.publishWill(now)
	}
	if c.willClaimed && !pending && !s.closing.Load() {
		s.willSettled(c.id) // published, or discarded by DISCONNECT
	}
}

// discardLocked drops a session's subscriptions from the trie and its
// queued state, and its record in the store (rb as in persist). Callers
// hold sessMu and sess.mu.
func (s *Server) discardLocked(sess *session, rb *readBatch) {
	sess.unstoreLocked(rb)
	for k, sub := range sess.subs {
		s.subs.Unsubscribe(sess.id, k.group, k.filter)
		s.interestRemoved(k.group, k.filter, sub.QoS)
	}
	clear(sess.subs)
	sess.inflight.clear()
	clear(sess.inQoS2)
	clear(sess.unforwarded)
	sess.pending.clear()
}

// expireSession ends an offline session whose expiry interval elapsed,
// publishing a will still waiting on its delay.
func (s *Server) expireSession(sess *session, gen uint64) {
	if !s.timers.enter() {
		return
	}
	defer s.timers.exit()
	s.sessMu.Lock()
	sess.mu.Lock()
	if sess.gen != gen || sess.conn != nil || s.sessions[sess.id] != sess {
		sess.mu.Unlock()
		s.sessMu.Unlock()
		return
	}
	w := sess.takeWillLocked()
	sess.stopTimersLocked()
	// The store is told now, under both locks: a client reconnecting with
	// this ID waits for sessMu, so its new session's record is stored
	// after this one's removal, never before it (LOCKS.md).
	s.discardLocked(sess, nil)
	s.removeSessionLocked(sess)
	sess.mu.Unlock()
	s.sessMu.Unlock()
	s.stats.expired.Add(1)
	s.sessionEvent(&ClientInfo{ID: sess.id}, SessionExpired)
	s.log.Info("session expired", "client", sess.id)
	if w != nil {
		s.publishWill(w)
	}
}

// removeSessionLocked drops a session from the registry if it is still the
// registered one. Callers hold sessMu.
func (s *Server) removeSessionLocked(sess *session) {
	if s.sessions[sess.id] == sess {
		delete(s.sessions, sess.id)
		s.live.Delete(sess.id)
		if s.cluster != nil {
			s.cluster.SessionEnded(sess.id)
		}
	}
}

// tlsState returns the TLS state of a TLS connection, nil otherwise.
func tlsState(nc net.Conn) *tls.ConnectionState {
	tc, ok := nc.(interface{ ConnectionState() tls.ConnectionState })
	if !ok {
		return nil
	}
	st := tc.ConnectionState()
	return &st
}
