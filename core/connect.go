package core

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
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
	props := &p.Properties
	c.version = p.ProtocolVersion
	c.r.SetVersion(c.version)
	c.keepAlive = cf.KeepAlive
	c.cleanStart = cf.CleanStart
	c.bridge = cf.Bridge
	v5 := c.version == packets.Version5

	refuse := func(code packets.ReasonCode, why string) bool {
		if c.id == "" {
			c.id = cf.ClientID // the logger names the client as it asked to be called
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

	id := cf.ClientID
	assigned := false
	if id == "" {
		switch {
		case v5:
			assigned = true
		case c.version == packets.Version311 && cf.CleanStart:
			assigned = true
		case c.version == packets.Version311:
			return refuse(packets.ClientIdentifierNotValid, "empty client identifier with clean session 0 [MQTT-3.1.3-8]")
		default:
			return refuse(packets.ClientIdentifierNotValid, "MQTT 3.1 requires a client identifier")
		}
		id = s.assignClientID()
	}
	if len(id) > s.opts.MaxClientIDLen {
		return refuse(packets.ClientIdentifierNotValid, "client identifier longer than max_client_id_len")
	}
	switch reserved := strings.HasPrefix(id, InternalIDPrefix); {
	case reserved && !c.internal:
		return refuse(packets.ClientIdentifierNotValid, "client identifiers beginning with "+InternalIDPrefix+" are the broker's own (bridges)")
	case !reserved && c.internal:
		return refuse(packets.ClientIdentifierNotValid, "an internal connection's client identifier must begin with "+InternalIDPrefix)
	}
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

	certAuth := false
	if ci, ok := c.conn.(CertIdentity); ok {
		name, ok := ci.CertIdentity()
		if !ok {
			return refuse(packets.NotAuthorized, "this listener takes the username from a verified client certificate, and there is none")
		}
		cf.Username, cf.UsernameFlag = name, true
		c.info.Username = name
		certAuth = true
	}
	if cf.WillFlag {
		if err := topics.ValidateTopicName(cf.Will.Topic); err != nil {
			return refuse(packets.TopicNameInvalid, "will topic: "+err.Error())
		}
		if err := topics.CheckLevels(cf.Will.Topic, s.opts.MaxTopicLevels, false); err != nil {
			return refuse(packets.TopicNameInvalid, "will topic: "+err.Error())
		}
		if cf.Will.Retain && s.opts.DisableRetain {
			return refuse(packets.RetainNotSupported, "will retain requested but retain is not available")
		}
		w := cf.Will
		c.will = &w
	}

	// Flow control and limits the client announced.
	c.sendMax = s.opts.MaxInflight
	c.reqProblemInfo = true
	var expiry uint32
	if v5 {
		if props.Has(packets.PropReceiveMaximum) {
			c.sendMax = min(props.ReceiveMaximum, s.opts.MaxInflight)
		}
		if props.Has(packets.PropMaximumPacketSize) {
			c.maxOutPacket = props.MaximumPacketSize
		}
		if !s.opts.DisableTopicAliases {
			c.aliasOutMax = min(props.TopicAliasMaximum, s.opts.TopicAliasMaximum)
		}
		if props.Has(packets.PropRequestProblemInfo) {
			c.reqProblemInfo = props.RequestProblemInfo == 1
		}
		c.connectExpiry = props.SessionExpiry
	}

	var ack packets.Properties
	if v5 && props.Has(packets.PropAuthMethod) {
		if !s.hooks.has(EventEnhancedAuth) {
			return refuse(packets.BadAuthenticationMethod, "no hook handles authentication method "+props.AuthMethod)
		}
		resp, code, why := c.enhancedAuth(ctx, props.AuthMethod, props.AuthData)
		if code != packets.Success {
			return refuse(code, why)
		}
		c.authMethod = props.AuthMethod
		ack.AuthMethod = props.AuthMethod
		ack.Set(packets.PropAuthMethod)
		if resp != nil {
			ack.AuthData = resp
			ack.Set(packets.PropAuthData)
		}
	}
	var policy ClientPolicy
	if code, why := s.authenticate(ctx, c, p, c.authMethod != "" || certAuth, &policy); code != packets.Success {
		return refuse(code, why)
	}
	maxIn := s.opts.MaxPacketSize
	if policy.MaxPacketSize > 0 {
		maxIn = min(maxIn, policy.MaxPacketSize)
	}
	if policy.MaxInflight > 0 {
		c.sendMax = min(c.sendMax, policy.MaxInflight)
	}
	c.maxQueued = s.opts.MaxQueuedMessages
	if policy.MaxQueuedMessages > 0 {
		c.maxQueued = policy.MaxQueuedMessages
	}
	c.mount = policy.Mountpoint
	expiryMax := s.opts.SessionExpiryMax
	if policy.SessionExpiryMax > 0 {
		expiryMax = policy.SessionExpiryMax
	}
	c.expiryMax = expiryMax
	switch {
	case v5:
		expiry = min(props.SessionExpiry, expiryMax)
	case !cf.CleanStart:
		expiry = expiryMax
	}
	if c.will != nil && c.mount != "" {
		c.will.Topic = c.mount + c.will.Topic
	}

	if v5 {
		if assigned {
			ack.AssignedClientID = id
			ack.Set(packets.PropAssignedClientID)
		}
		if expiry != props.SessionExpiry {
			ack.SessionExpiry = expiry
			ack.Set(packets.PropSessionExpiry)
		}
		if s.opts.ReceiveMaximum != 65535 {
			ack.ReceiveMaximum = s.opts.ReceiveMaximum
			ack.Set(packets.PropReceiveMaximum)
		}
		ack.MaximumPacketSize = maxIn
		ack.Set(packets.PropMaximumPacketSize)
		if !s.opts.DisableTopicAliases {
			ack.TopicAliasMaximum = s.opts.TopicAliasMaximum
			ack.Set(packets.PropTopicAliasMaximum)
		}
		setAvailability(&ack, packets.PropRetainAvailable, &ack.RetainAvailable, s.opts.DisableRetain)
		setAvailability(&ack, packets.PropWildcardSubAvailable, &ack.WildcardSubAvailable, s.opts.DisableWildcardSubs)
		setAvailability(&ack, packets.PropSubscriptionIDAvailable, &ack.SubscriptionIDAvailable, s.opts.DisableSubIDs)
		setAvailability(&ack, packets.PropSharedSubAvailable, &ack.SharedSubAvailable, s.opts.DisableSharedSubs)
		if s.opts.ServerKeepAlive != 0 {
			c.keepAlive = s.opts.ServerKeepAlive
			ack.ServerKeepAlive = s.opts.ServerKeepAlive
			ack.Set(packets.PropServerKeepAlive)
		}
		if props.Has(packets.PropRequestResponseInfo) && props.RequestResponseInfo == 1 {
			ack.ResponseInfo = "responses/" + id
			ack.Set(packets.PropResponseInfo)
		}
	}
	c.r.SetMaxSize(maxIn)
	s.attach(c, id, cf.CleanStart, expiry, &ack)
	if c.logs(slog.LevelInfo) {
		attrs := []any{"version", c.version, "clean_start", cf.CleanStart, "keepalive", c.keepAlive}
		if cf.Bridge {
			attrs = append(attrs, "bridge", true)
		}
		c.logger().Info("client connected", attrs...)
	}
	return true
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
// precedes every delivery to the new connection.
func (s *Server) attach(c *client, id string, clean bool, expiry uint32, ack *packets.Properties) {
	var (
		oldConn *client
		wills   []*willMsg
	)
	s.sessMu.Lock()
	sess := s.sessions[id]
	if sess != nil {
		sess.mu.Lock()
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
	sess.gen++
	sess.expiry = expiry
	sess.maxQueued = c.maxQueued
	c.sess = sess
	c.connected = true
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
	sess.mu.Unlock()
	s.sessMu.Unlock()
	if c.logs(slog.LevelInfo) {
		c.logger().Info("client disconnected", "clean", c.disconnected)
	}
	if now != nil {
		s.publishWill(now)
	}
}

// discardLocked drops a session's subscriptions from the trie and its
// queued state, and its record in the store (rb as in persist). Callers
// hold sessMu and sess.mu.
func (s *Server) discardLocked(sess *session, rb *readBatch) {
	sess.unstoreLocked(rb)
	for k := range sess.subs {
		s.subs.Unsubscribe(sess.id, k.group, k.filter)
	}
	clear(sess.subs)
	clear(sess.inflight)
	clear(sess.inQoS2)
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
