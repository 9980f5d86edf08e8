package bridge

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/packets"
	"github.com/vanemq/vanemq/core/topics"
	"github.com/vanemq/vanemq/hooks/bridge/mqttc"
)

// A bridge has two MQTT connections. The local one is the broker's own
// (core.InternalConn over net.Pipe): a persistent session subscribed to
// the rules' local filters, with no-local, so that what the bridge
// brings in never goes back out. Its session is the outgoing queue: while
// the remote is away, messages wait there (bounded by queue_size, stored
// with the broker's sessions), and the bridge acknowledges a message to
// the local broker only once the remote has acknowledged it, so nothing
// acknowledged is lost. The remote connection subscribes to the rules'
// remote filters (no-local on MQTT 5) and publishes what comes out.

// maxQoS0Waiting bounds the QoS 0 messages waiting for the remote; beyond
// it they are dropped, as QoS 0 may be.
const maxQoS0Waiting = 1024

// echoWindow is how long an outgoing message is remembered, on MQTT 3.1.1
// remotes (no no-local), to recognise it when the remote sends it back.
const echoWindow = time.Minute

// internalConn marks the local side as the broker's own.
type internalConn struct {
	net.Conn
	policy core.ClientPolicy
}

func (c internalConn) InternalPolicy() core.ClientPolicy { return c.policy }

// outMsg is a message on its way out: waiting for the remote, or sent
// and not yet acknowledged by it.
type outMsg struct {
	m       mqttc.Message
	ack     func(packets.ReasonCode) // the local acknowledgement; nil for QoS 0
	sending bool
}

// bridge runs one bridge.
type bridge struct {
	cfg     BridgeConfig
	srv     *core.Server
	log     *slog.Logger
	tls     *tls.Config
	localID string
	echo    *echoFilter // MQTT 3.1.1 remotes with rules both ways

	// private is set while the remote accepted the bridge bit
	// (try_private): it sends nothing of ours back, and the echo filter
	// is off; privateRefused once a remote refused it.
	private, privateRefused atomic.Bool

	connected               atomic.Bool
	sent, received, dropped atomic.Uint64
	lastRemoteErr           atomic.Pointer[string]
	local                   atomic.Pointer[mqttc.Client]
	stopped                 chan struct{}

	// The outgoing messages, in order, and the sender's wake-up.
	mu    sync.Mutex
	queue []*outMsg
	qos0  int // QoS 0 messages in queue
	wake  chan struct{}

	remoteMu sync.Mutex
	remote   *mqttc.Client
	// unreleased are the packet identifiers of QoS 2 flows the last
	// remote connection left incomplete, for the next one to release
	// (keepRemote's goroutine only).
	unreleased []uint16
}

func newBridge(cfg BridgeConfig, srv *core.Server, log *slog.Logger) (*bridge, error) {
	tc, err := cfg.tlsConfig()
	if err != nil {
		return nil, err
	}
	br := &bridge{cfg: cfg, srv: srv, tls: tc, localID: core.InternalIDPrefix + "bridge/" + cfg.Name,
		log: log.With("bridge", cfg.Name, "remote", cfg.Address), wake: make(chan struct{}, 1), stopped: make(chan struct{})}
	if cfg.version() == packets.Version311 {
		var in, out bool
		for i := range cfg.Topics {
			in, out = in || cfg.Topics[i].in(), out || cfg.Topics[i].out()
		}
		if in && out {
			br.echo = newEchoFilter(echoWindow, 1<<16)
		}
	}
	return br, nil
}

// start opens the local session and subscribes it, before the broker's
// listeners serve, so that nothing published from the start is missed;
// then run keeps both connections up until ctx ends.
func (br *bridge) start(ctx context.Context) {
	lc, err := br.connectLocal(ctx)
	if err != nil {
		br.log.Error("bridge: local connection failed", "cause", err)
	}
	go br.run(ctx, lc)
}

func (br *bridge) run(ctx context.Context, lc *mqttc.Client) {
	defer close(br.stopped)
	var wg sync.WaitGroup
	wg.Go(func() { br.keepLocal(ctx, lc) })
	br.keepRemote(ctx)
	wg.Wait()
}

// backoff waits before the attempt after failures failed ones: doubling
// from backoff_min to backoff_max, with ±25% jitter. false when ctx ended.
func (br *bridge) backoff(ctx context.Context, failures int) bool {
	d := br.cfg.BackoffMin
	for i := 1; i < failures && d < br.cfg.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, br.cfg.BackoffMax)
	d += time.Duration((rand.Float64() - 0.5) * 0.5 * float64(d))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// keepLocal keeps the local connection up, starting with lc (nil: none
// yet).
func (br *bridge) keepLocal(ctx context.Context, lc *mqttc.Client) {
	for failures := 0; ctx.Err() == nil; lc = nil {
		var err error
		if lc == nil {
			lc, err = br.connectLocal(ctx)
		}
		if err != nil {
			failures++
			if ctx.Err() == nil {
				br.log.Error("bridge: local connection failed", "cause", err, "attempt", failures)
			}
			if !br.backoff(ctx, failures) {
				return
			}
			continue
		}
		failures = 0
		br.local.Store(lc)
		select {
		case <-lc.Done():
			var de *mqttc.DisconnectError
			if errors.As(lc.Err(), &de) && de.Code == packets.ServerShuttingDown {
				// The broker is stopping: the bridge stops with it.
				br.local.Store(nil)
				<-ctx.Done()
				return
			}
			if ctx.Err() == nil {
				br.log.Warn("bridge: local connection lost", "cause", lc.Err())
			}
		case <-ctx.Done():
			_ = lc.Close()
		}
		br.local.Store(nil)
		// What the lost session had delivered is delivered again when it
		// resumes: forget it here.
		br.mu.Lock()
		br.queue, br.qos0 = nil, 0
		br.mu.Unlock()
	}
}

// connectLocal opens the bridge's session in this broker and subscribes it
// to the rules' local filters.
func (br *bridge) connectLocal(ctx context.Context) (*mqttc.Client, error) {
	a, b := net.Pipe()
	policy := core.ClientPolicy{MaxQueuedMessages: br.cfg.QueueSize, MaxInflight: uint16(min(br.cfg.Inflight, math.MaxUint16)),
		SessionExpiryMax: math.MaxUint32}
	if err := br.srv.ServeConn(internalConn{Conn: a, policy: policy}, "bridge"); err != nil {
		_ = b.Close()
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, br.cfg.ConnectTimeout)
	defer cancel()
	lc, err := mqttc.Connect(cctx, b, mqttc.Options{
		ClientID: br.localID, Version: packets.Version5, SessionExpiry: math.MaxUint32,
		ReceiveMaximum: uint16(min(br.cfg.Inflight, math.MaxUint16)), OnMessage: br.outbound, Logger: br.log,
	})
	if err != nil {
		return nil, err
	}
	var subs []packets.Subscription
	want := map[string]bool{}
	for i := range br.cfg.Topics {
		r := &br.cfg.Topics[i]
		if !r.out() || want[r.localFilter()] {
			continue
		}
		want[r.localFilter()] = true
		// Retained messages go out when a subscription is new, with their
		// flag; what the bridge itself published here never goes back.
		subs = append(subs, packets.Subscription{Filter: r.localFilter(), QoS: r.QoS, NoLocal: true,
			RetainAsPublished: true, RetainHandling: 1})
	}
	var stale []string
	for _, s := range br.srv.Subscriptions() {
		if s.ClientID == br.localID && !want[s.Filter] {
			stale = append(stale, s.Filter)
		}
	}
	if len(stale) > 0 {
		if err := lc.Unsubscribe(cctx, stale); err != nil {
			_ = lc.Close()
			return nil, err
		}
		br.log.Info("bridge: dropped the subscriptions of rules no longer configured", "filters", stale)
	}
	if len(subs) > 0 {
		codes, err := lc.Subscribe(cctx, subs)
		if err != nil {
			_ = lc.Close()
			return nil, err
		}
		for i, c := range codes {
			if c >= 0x80 {
				br.log.Error("bridge: local subscription refused", "filter", subs[i].Filter, "reason", c.String())
			}
		}
	}
	return lc, nil
}

// outRule is the first out rule whose local filter matches topic.
func (br *bridge) outRule(topic string) *TopicRule {
	for i := range br.cfg.Topics {
		if r := &br.cfg.Topics[i]; r.out() && topics.MatchFilter(r.localFilter(), topic) {
			return r
		}
	}
	return nil
}

// inRule is the first in rule whose remote filter matches topic.
func (br *bridge) inRule(topic string) *TopicRule {
	for i := range br.cfg.Topics {
		if r := &br.cfg.Topics[i]; r.in() && topics.MatchFilter(r.remoteFilter(), topic) {
			return r
		}
	}
	return nil
}

// rename replaces the prefix from of topic with to. A filter "p/#" also
// matches "p" itself, which becomes the other prefix without its slash.
func rename(topic, from, to string) string {
	if rest, ok := strings.CutPrefix(topic, from); ok {
		return to + rest
	}
	return strings.TrimSuffix(to, "/")
}

// outbound takes a message the local session delivers.
func (br *bridge) outbound(m mqttc.Message, ack func(packets.ReasonCode)) {
	r := br.outRule(m.Topic)
	remote := ""
	if r != nil {
		remote = rename(m.Topic, r.LocalPrefix, r.RemotePrefix)
	}
	if r == nil || remote == "" || m.Topic == br.cfg.NotificationTopic {
		// Not for the remote (a subscription being dropped, or the
		// bridge's own state).
		if ack != nil {
			ack(packets.Success)
		}
		return
	}
	// The MQTT 5 properties travel as they are: mqttc sends neither topic
	// aliases nor subscription identifiers, nor any property over 3.1.1.
	o := &outMsg{m: mqttc.Message{Topic: remote, Payload: m.Payload, QoS: min(m.QoS, r.QoS), Retain: m.Retain,
		Properties: m.Properties}, ack: ack}
	br.mu.Lock()
	if o.m.QoS == 0 && ack == nil && (!br.connected.Load() || br.qos0 >= maxQoS0Waiting) {
		br.mu.Unlock()
		br.dropped.Add(1) // QoS 0, and the remote is away or behind
		return
	}
	if ack == nil {
		br.qos0++
	}
	br.queue = append(br.queue, o)
	br.mu.Unlock()
	select {
	case br.wake <- struct{}{}:
	default:
	}
}

// keepRemote keeps the remote connection up, with backoff between
// attempts, and sends the queue while it is.
func (br *bridge) keepRemote(ctx context.Context) {
	for failures := 0; ctx.Err() == nil; {
		rc, err := br.connectRemote(ctx)
		if err != nil {
			failures++
			if ctx.Err() != nil {
				return
			}
			msg := err.Error()
			if last := br.lastRemoteErr.Swap(&msg); failures == 1 || last == nil || *last != msg || failures%10 == 0 {
				br.log.Error("bridge: cannot connect to the remote broker", "cause", err, "attempt", failures)
			}
			if !br.backoff(ctx, failures) {
				return
			}
			continue
		}
		failures = 0
		br.lastRemoteErr.Store(nil)
		br.remoteMu.Lock()
		br.remote = rc
		br.remoteMu.Unlock()
		br.connected.Store(true)
		br.notify("online")
		br.log.Info("bridge: connected", "client_id", br.cfg.ClientID, "protocol", br.cfg.Protocol,
			"session_present", rc.SessionPresent())
		br.send(ctx, rc)
		br.connected.Store(false)
		if ctx.Err() == nil {
			<-rc.Done()
			br.unreleased = rc.Unreleased()
		}
		br.remoteMu.Lock()
		br.remote = nil
		br.remoteMu.Unlock()
		if ctx.Err() != nil {
			br.closeRemote(rc)
			return
		}
		br.log.Warn("bridge: connection to the remote broker lost", "cause", rc.Err())
		br.notify("offline")
		br.requeue()
	}
}

// closeRemote ends the remote connection on a stop: the state goes
// offline first (the will is for a lost connection only).
func (br *bridge) closeRemote(rc *mqttc.Client) {
	if *br.cfg.Notifications {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		done := make(chan struct{})
		err := rc.Publish(ctx, br.state("offline"), func(packets.ReasonCode, error) { close(done) })
		if err == nil {
			select {
			case <-done:
			case <-ctx.Done():
			}
		}
		cancel()
	}
	_ = rc.Close()
	br.notify("offline")
}

// state is the notification message.
func (br *bridge) state(s string) mqttc.Message {
	return mqttc.Message{Topic: br.cfg.NotificationTopic, Payload: []byte(s), QoS: 1, Retain: true}
}

// notify publishes the bridge's state here.
func (br *bridge) notify(s string) {
	if !*br.cfg.Notifications {
		return
	}
	m := br.state(s)
	if err := br.srv.Publish(core.InlineMessage{Topic: m.Topic, Payload: m.Payload, QoS: m.QoS, Retain: true}); err != nil {
		br.log.Warn("bridge: state notification", "cause", err)
	}
}

// requeue makes every message sent and not acknowledged wait again, for
// the next connection; QoS 0 messages are dropped.
func (br *bridge) requeue() {
	br.mu.Lock()
	defer br.mu.Unlock()
	kept := br.queue[:0]
	for _, o := range br.queue {
		if o.ack == nil {
			br.dropped.Add(1)
			continue
		}
		o.sending = false
		kept = append(kept, o)
	}
	clear(br.queue[len(kept):])
	br.queue, br.qos0 = kept, 0
}

// connectRemote dials the remote broker, connects and subscribes.
func (br *bridge) connectRemote(ctx context.Context) (*mqttc.Client, error) {
	cctx, cancel := context.WithTimeout(ctx, br.cfg.ConnectTimeout)
	defer cancel()
	conn, err := br.dial(cctx)
	if err != nil {
		return nil, err
	}
	v := br.cfg.version()
	opts := mqttc.Options{
		ClientID: br.cfg.ClientID, Version: v, CleanStart: br.cfg.CleanStart, KeepAlive: br.cfg.KeepAlive,
		Username: br.cfg.Username, UsernameSet: br.cfg.Username != "",
		Password: []byte(br.cfg.Password), PasswordSet: br.cfg.Password != "",
		ReceiveMaximum: uint16(min(br.cfg.Inflight, math.MaxUint16)),
		OnMessage:      br.inbound, Logger: br.log, Unreleased: br.unreleased,
	}
	if v == packets.Version5 {
		opts.SessionExpiry = uint32(br.cfg.SessionExpiry / time.Second)
	}
	if *br.cfg.Notifications {
		st := br.state("offline")
		opts.Will = &packets.Will{Topic: st.Topic, Payload: st.Payload, QoS: st.QoS, Retain: true}
	}
	opts.Bridge = v == packets.Version311 && *br.cfg.TryPrivate && !br.privateRefused.Load()
	rc, err := mqttc.Connect(cctx, conn, opts)
	var ce *mqttc.ConnectError
	if opts.Bridge && errors.As(err, &ce) && ce.Code == packets.V3UnacceptableProtocolVersion {
		// Not a broker that knows Mosquitto's bridges: plain 3.1.1 from
		// now on, and the echo filter keeps loops away.
		br.privateRefused.Store(true)
		br.log.Info("bridge: the remote broker refuses the bridge protocol level (try_private); connecting as a plain MQTT 3.1.1 client")
		return br.connectRemote(ctx)
	}
	if err != nil {
		return nil, err
	}
	br.private.Store(opts.Bridge)
	var subs []packets.Subscription
	seen := map[string]bool{}
	for i := range br.cfg.Topics {
		r := &br.cfg.Topics[i]
		if !r.in() || seen[r.remoteFilter()] {
			continue
		}
		seen[r.remoteFilter()] = true
		subs = append(subs, packets.Subscription{Filter: r.remoteFilter(), QoS: r.QoS, NoLocal: v == packets.Version5,
			RetainAsPublished: v == packets.Version5})
	}
	if len(subs) > 0 {
		codes, err := rc.Subscribe(cctx, subs)
		if err != nil {
			_ = rc.Close()
			return nil, err
		}
		for i, c := range codes {
			if c >= 0x80 {
				br.log.Error("bridge: the remote broker refused a subscription", "filter", subs[i].Filter, "reason", c.String())
			}
		}
	}
	if *br.cfg.Notifications {
		if err := rc.Publish(cctx, br.state("online"), nil); err != nil {
			_ = rc.Close()
			return nil, err
		}
	}
	return rc, nil
}

// send sends the queue to rc, in order, until rc or ctx ends.
func (br *bridge) send(ctx context.Context, rc *mqttc.Client) {
	for {
		br.mu.Lock()
		var next *outMsg
		for _, o := range br.queue {
			if !o.sending {
				next = o
				break
			}
		}
		if next == nil {
			br.mu.Unlock()
			select {
			case <-br.wake:
				continue
			case <-rc.Done():
				return
			case <-ctx.Done():
				return
			}
		}
		next.sending = true
		br.mu.Unlock()
		if br.echo != nil && !br.private.Load() && br.inRule(next.m.Topic) != nil {
			br.echo.add(next.m.Topic, next.m.Payload)
		}
		o := next
		m := o.m
		// What the remote said it supports (MQTT 5 CONNACK).
		ack := rc.ConnAck()
		if ack.Has(packets.PropMaximumQoS) {
			m.QoS = min(m.QoS, ack.MaximumQoS)
		}
		if ack.Has(packets.PropRetainAvailable) && ack.RetainAvailable == 0 {
			m.Retain = false
		}
		err := rc.Publish(ctx, m, func(code packets.ReasonCode, err error) { br.delivered(o, code, err) })
		switch {
		case err == nil:
		case errors.Is(err, mqttc.ErrPacketTooLarge) || errors.Is(err, mqttc.ErrNotSupported):
			// The remote can never take it.
			br.log.Error("bridge: message dropped: the remote broker cannot take it", "topic", o.m.Topic, "cause", err)
			br.delivered(o, packets.UnspecifiedError, nil)
		default:
			// The connection is ending: the message waits for the next
			// one (requeue).
			select {
			case <-rc.Done():
			case <-ctx.Done():
			}
			return
		}
	}
}

// delivered completes a message the remote acknowledged (or refused, or
// the connection lost: then it waits for the next one).
func (br *bridge) delivered(o *outMsg, code packets.ReasonCode, err error) {
	if err != nil {
		return // requeue makes it wait again
	}
	br.mu.Lock()
	for i, q := range br.queue {
		if q == o {
			br.queue = append(br.queue[:i], br.queue[i+1:]...)
			if o.ack == nil {
				br.qos0--
			}
			break
		}
	}
	br.mu.Unlock()
	if code >= 0x80 {
		br.dropped.Add(1)
		br.log.Warn("bridge: the remote broker refused a message", "topic", o.m.Topic, "reason", code.String())
	} else {
		br.sent.Add(1)
	}
	if o.ack != nil {
		o.ack(packets.Success)
	}
}

// errLocalDown is why a message from the remote was not taken.
var errLocalDown = errors.New("the bridge's local connection is down")

// inbound takes a message from the remote and publishes it here; the
// remote's acknowledgement waits for the local one.
func (br *bridge) inbound(m mqttc.Message, ack func(packets.ReasonCode)) {
	if br.echo != nil && !br.private.Load() && br.echo.take(m.Topic, m.Payload) {
		if ack != nil {
			ack(packets.Success) // our own message, back from a 3.1.1 remote
		}
		return
	}
	r := br.inRule(m.Topic)
	local := ""
	if r != nil {
		local = rename(m.Topic, r.RemotePrefix, r.LocalPrefix)
	}
	if r == nil || local == "" {
		if ack != nil {
			ack(packets.Success)
		}
		return
	}
	lc := br.local.Load()
	lm := mqttc.Message{Topic: local, Payload: m.Payload, QoS: min(m.QoS, r.QoS), Retain: m.Retain,
		Properties: m.Properties}
	done := func(code packets.ReasonCode, err error) {
		if err != nil {
			// Not taken: leave it unacknowledged, and reconnect, so that
			// the remote sends it again.
			br.dropRemote(err)
			return
		}
		if code >= 0x80 {
			br.log.Warn("bridge: the local broker refused a message", "topic", local, "reason", code.String())
		} else {
			br.received.Add(1)
		}
		if ack != nil {
			ack(code)
		}
	}
	if lc == nil {
		done(0, errLocalDown)
		return
	}
	if err := lc.Publish(context.Background(), lm, done); err != nil {
		done(0, err)
	}
}

// dropRemote closes the remote connection (the loop reconnects).
func (br *bridge) dropRemote(cause error) {
	br.remoteMu.Lock()
	rc := br.remote
	br.remoteMu.Unlock()
	if rc != nil {
		br.log.Warn("bridge: reconnecting to have the remote send again what it could not deliver here", "cause", cause)
		_ = rc.Disconnect(packets.UnspecifiedError)
	}
}

// status describes the bridge.
func (br *bridge) status() core.BridgeStatus {
	st := core.BridgeStatus{Name: br.cfg.Name, Remote: br.cfg.Address, Connected: br.connected.Load(),
		Sent: br.sent.Load(), Received: br.received.Load(), Dropped: br.dropped.Load()}
	if cs, ok := br.srv.Client(br.localID); ok {
		st.Queued = cs.Queued + cs.Inflight
		st.Dropped += cs.Dropped
	}
	return st
}
