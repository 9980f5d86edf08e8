//go:build unix

package vanemqcmd

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vanemq/vanemq/core/mqtttest"
)

// soakConfig is the broker's configuration in TestSoak: TCP and the admin
// listener on free ports, pebble storage synced to disk, and session
// queues long enough that a subscriber offline for a moment misses
// nothing.
const soakConfig = `allow_anonymous: true
listeners:
  - {id: tcp, type: tcp, address: "127.0.0.1:0"}
  - {id: http, type: http, address: "127.0.0.1:0"}
mqtt:
  max_queued_messages: 100000
  sys_interval: 1s
storage: {type: pebble, path: %q, durability: sync}
log: {level: info, format: text}
`

// TestSoak runs the vanemq binary (with the race detector when the test
// has it) under a mixed load for VANEMQ_SOAK, 5s by default (`make soak`
// runs 10m), and then checks what an operator relies on after a long run:
//
//   - every QoS 1 message a publisher had acknowledged reaches persistent
//     subscribers (MQTT 5 and 3.1.1) that keep dropping their connections,
//     abruptly or cleanly, and resume their sessions [MQTT-3.2.2-2]
//     [MQTT-4.4.0-1];
//   - QoS 2 arrives exactly once [MQTT-4.3.3-10];
//   - a will is published for each connection that ended without a
//     DISCONNECT, and for none that sent one [MQTT-3.1.2-8]
//     [MQTT-3.1.2-10];
//   - the retained messages are the last ones set, cleared ones gone
//     [MQTT-3.3.1-5] [MQTT-3.3.1-6];
//   - once the clients are gone, the broker's goroutines are back to what
//     they were before the load (read from its /metrics, as an operator
//     would), no data race or panic was logged, and SIGTERM stops it with
//     status 0.
func TestSoak(t *testing.T) {
	d := 5 * time.Second
	if s := os.Getenv("VANEMQ_SOAK"); s != "" {
		var err error
		if d, err = time.ParseDuration(s); err != nil || d <= 0 {
			t.Fatalf("VANEMQ_SOAK=%q: want a positive duration such as 10m", s)
		}
	}
	exe := buildSoakBinary(t)
	p := startBinary(t, exe, "--config", writeConfig(t, fmt.Sprintf(soakConfig, filepath.Join(t.TempDir(), "data"))))
	addr, admin := p.listenAddr(t), p.listenAddr(t)
	metricsURL := "http://" + admin + "/metrics"
	baseGoroutines := mustMetric(t, metricsURL, "go_goroutines")

	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	s := &soak{t: t, ctx: ctx, cancel: cancel, addr: addr, q2: newSeqLog(), acked: map[string]*atomic.Int64{}}
	for _, name := range []string{"pub5", "pub3", "q2"} {
		s.acked[name] = new(atomic.Int64)
	}

	var load, subs sync.WaitGroup
	finals := make(chan func(), 4) // the durable subscribers' last connections
	sub5Log, sub3Log := newSeqLog(), newSeqLog()
	// The publishers start once the durable subscribers have subscribed:
	// they must get every message acknowledged from then on.
	var subscribed sync.WaitGroup
	subscribed.Add(2)
	subs.Go(func() { finals <- s.durableV5("durable-5", sub5Log, sync.OnceFunc(subscribed.Done)) })
	subs.Go(func() { finals <- s.durableV311("durable-3", sub3Log, sync.OnceFunc(subscribed.Done)) })
	subscribed.Wait()
	q2Done := s.q2Subscriber()
	wills := s.willWatcher()
	load.Go(func() { s.publishV5("pub5", "soak/q1/pub5", 1) })
	load.Go(func() { s.publishV311("pub3") })
	load.Go(func() { s.publishV5("q2", "soak/q2", 2) })
	var abrupt, clean []string
	load.Go(func() { abrupt, clean = s.churn() })
	var retained map[string]string
	load.Go(func() { retained = s.retainer() })
	var peakGoroutines float64
	var heap []float64 // heap in use, sampled every second
	load.Go(func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			v, err := metrics(metricsURL, "go_goroutines", "go_memstats_heap_inuse_bytes")
			if err != nil {
				s.fail("reading the broker's metrics: %v", err)
				return
			}
			peakGoroutines, heap = max(peakGoroutines, v[0]), append(heap, v[1])
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	})
	load.Wait()
	subs.Wait()
	close(finals)
	if t.Failed() {
		return // the load ended early; what follows would only repeat it
	}

	acked := map[string]int{}
	for name, n := range s.acked {
		acked[name] = int(n.Load())
	}
	for _, sl := range []struct {
		name string
		log  *seqLog
		want map[string]int
	}{
		{"durable-5", sub5Log, map[string]int{"pub5": acked["pub5"], "pub3": acked["pub3"]}},
		{"durable-3", sub3Log, map[string]int{"pub5": acked["pub5"], "pub3": acked["pub3"]}},
		{"q2-sub", s.q2, map[string]int{"q2": acked["q2"]}},
	} {
		if !mqtttest.Until(3*waitTimeout, func() bool { return len(sl.log.missing(sl.want)) == 0 }) {
			t.Errorf("%s: acknowledged messages never delivered (the first ten): %v [MQTT-4.4.0-1]", sl.name, sl.log.missing(sl.want))
		}
	}
	if dup := s.q2.duplicates(); len(dup) > 0 {
		t.Errorf("QoS 2 messages delivered more than once [MQTT-4.3.3-10]: %v", dup)
	}
	mqtttest.Eventually(t, waitTimeout, "a will for each connection dropped without DISCONNECT", func() bool {
		return len(wills.topics()) >= len(abrupt)
	})
	got := wills.topics()
	for _, id := range clean {
		if slices.Contains(got, "soak/will/"+id) {
			t.Errorf("a will was published for %s, which sent DISCONNECT [MQTT-3.1.2-10]", id)
		}
	}
	for _, id := range abrupt {
		if !slices.Contains(got, "soak/will/"+id) {
			t.Errorf("no will for %s, whose connection dropped [MQTT-3.1.2-8]", id)
		}
	}
	s.checkRetained(retained)

	for f := range finals {
		if f != nil {
			f()
		}
	}
	q2Done()
	wills.stop()
	var now float64
	mqtttest.Eventually(t, waitTimeout, "the broker's goroutines back to their number before the load", func() bool {
		now = mustMetric(t, metricsURL, "go_goroutines")
		return now <= baseGoroutines
	})
	for _, bad := range []string{"DATA RACE", "panic"} {
		if strings.Contains(p.logs.String(), bad) {
			t.Errorf("the broker's log has %q:\n%s", bad, p.logs)
		}
	}
	tenth := len(heap)/10 + 1
	t.Logf("%s: acknowledged QoS 1 %d (MQTT 5) + %d (3.1.1), QoS 2 %d; durable sessions resumed %d (MQTT 5) and %d (3.1.1) times; "+
		"%d connections churned (%d without DISCONNECT); %d retained topics; broker goroutines %v before, peak %v, %v after; "+
		"heap in use, most in the first and last tenth of the run: %.1f and %.1f MiB",
		d, acked["pub5"], acked["pub3"], acked["q2"], sub5Log.sessions.Load(), sub3Log.sessions.Load(),
		len(abrupt)+len(clean), len(abrupt), len(retained), baseGoroutines, peakGoroutines, now,
		slices.Max(heap[:tenth])/(1<<20), slices.Max(heap[len(heap)-tenth:])/(1<<20))
	p.stop(t)
}

// buildSoakBinary compiles the command, with the race detector when this
// test runs with it.
func buildSoakBinary(t *testing.T) string {
	t.Helper()
	if !raceEnabled {
		return buildBinary(t)
	}
	exe := filepath.Join(t.TempDir(), "vanemq")
	out, err := exec.Command("go", "build", "-race", "-o", exe, "..").CombinedOutput()
	if err != nil {
		t.Fatalf("go build -race: %v\n%s", err, out)
	}
	return exe
}

// metrics reads unlabelled samples from one scrape of the broker's
// Prometheus endpoint, in the order of names.
func metrics(url string, names ...string) ([]float64, error) {
	resp, err := (&http.Client{Timeout: waitTimeout}).Get(url) // a hung broker fails the test, not hangs it
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, found := make([]float64, len(names)), 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		if i := slices.Index(names, name); ok && i >= 0 {
			if out[i], err = strconv.ParseFloat(v, 64); err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			found++
		}
	}
	if found != len(names) {
		return nil, fmt.Errorf("%s: not every one of %v has a sample (%v)", url, names, sc.Err())
	}
	return out, nil
}

// mustMetric is one metric, for the test's goroutine.
func mustMetric(t *testing.T, url, name string) float64 {
	t.Helper()
	v, err := metrics(url, name)
	if err != nil {
		t.Fatal(err)
	}
	return v[0]
}

// soak is TestSoak's load: each method is one client's loop, run until
// ctx ends.
type soak struct {
	t      *testing.T
	ctx    context.Context
	cancel context.CancelFunc // ends the load early, after a failure
	addr   string
	q2     *seqLog
	acked  map[string]*atomic.Int64 // publisher → messages acknowledged, numbered from 1
}

// fail reports a failure from a client's goroutine (which must not call
// t.Fatal) and ends the load.
func (s *soak) fail(format string, args ...any) {
	s.t.Errorf(format, args...)
	s.cancel()
}

// pause waits d, or less when the load ends; false when it has.
func (s *soak) pause(d time.Duration) bool {
	select {
	case <-s.ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// between is a random duration in [lo, hi).
func between(lo, hi time.Duration) time.Duration {
	return lo + rand.N(hi-lo)
}

// seqLog records the numbered messages a subscriber received.
type seqLog struct {
	mu       sync.Mutex
	got      map[string]map[int]int // publisher → number → times received
	sessions atomic.Int64           // sessions resumed
}

func newSeqLog() *seqLog { return &seqLog{got: map[string]map[int]int{}} }

// add records payload "publisher/number".
func (l *seqLog) add(t *testing.T, payload []byte) {
	pub, n, ok := strings.Cut(string(payload), "/")
	seq, err := strconv.Atoi(n)
	if !ok || err != nil {
		t.Errorf("unexpected payload %q", payload)
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.got[pub] == nil {
		l.got[pub] = map[int]int{}
	}
	l.got[pub][seq]++
}

// missing lists the messages 1..n of each publisher not received, at
// most ten.
func (l *seqLog) missing(want map[string]int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for pub, n := range want {
		for i := 1; i <= n && len(out) < 10; i++ {
			if l.got[pub][i] == 0 {
				out = append(out, pub+"/"+strconv.Itoa(i))
			}
		}
	}
	return out
}

// duplicates lists the messages received more than once, at most ten.
func (l *seqLog) duplicates() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for pub, m := range l.got {
		for i, c := range m {
			if c > 1 && len(out) < 10 {
				out = append(out, fmt.Sprintf("%s/%d ×%d", pub, i, c))
			}
		}
	}
	return out
}

// dialV5 is mqtttest.DialPaho to the broker, with the CONNACK of a
// refusal in the error.
func (s *soak) dialV5(cp *paho.Connect, onMsg func(*paho.Publish)) (*paho.Client, net.Conn, *paho.Connack, error) {
	c, conn, ca, err := mqtttest.DialPaho(s.addr, cp, onMsg)
	if err != nil && ca != nil {
		err = fmt.Errorf("%w (CONNACK %+v)", err, ca)
	}
	return c, conn, ca, err
}

// subscribeV5 subscribes c to filter at qos.
func subscribeV5(c *paho.Client, filter string, qos byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	sa, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: qos}}})
	if err != nil || len(sa.Reasons) != 1 || sa.Reasons[0] != qos {
		return fmt.Errorf("subscribe %s: %v (SUBACK %+v)", filter, err, sa)
	}
	return nil
}

// durableV5 is an MQTT 5 subscriber to soak/q1/# at QoS 1 with a
// persistent session, which drops its connection (cleanly or not) and
// resumes the session until the load ends. It calls subscribed once
// subscribed, and returns the function that closes its last connection,
// made after the load.
func (s *soak) durableV5(id string, log *seqLog, subscribed func()) func() {
	defer subscribed() // also when it fails first
	expiry := uint32(600)
	onMsg := func(p *paho.Publish) { log.add(s.t, p.Payload) }
	for first := true; ; first = false {
		last := s.ctx.Err() != nil
		c, conn, ca, err := s.dialV5(&paho.Connect{ClientID: id, CleanStart: first, KeepAlive: 30,
			Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry}}, onMsg)
		if err == nil && first {
			err = subscribeV5(c, "soak/q1/#", 1)
			subscribed()
		}
		switch {
		case err != nil:
			s.fail("%s: %v", id, err)
			return nil
		case first:
		case !ca.SessionPresent:
			s.t.Errorf("%s: CONNACK without Session Present on resuming [MQTT-3.2.2-2]", id)
		default:
			log.sessions.Add(1)
		}
		if last {
			return func() { mqtttest.ClosePaho(c, nil) }
		}
		s.pause(between(200*time.Millisecond, time.Second))
		if rand.N(2) == 0 {
			conn = nil // with DISCONNECT, this time
		}
		mqtttest.ClosePaho(c, conn)
		s.pause(between(50*time.Millisecond, 300*time.Millisecond))
	}
}

// durableV311 is durableV5 over MQTT 3.1.1 (paho.mqtt.golang). Its
// first connection has clean session false too: with 1, the session would
// end with the connection [MQTT-3.1.2-6].
func (s *soak) durableV311(id string, log *seqLog, subscribed func()) func() {
	defer subscribed() // also when it fails first
	for first := true; ; first = false {
		last := s.ctx.Err() != nil
		conns := make(chan net.Conn, 1)
		opts := mqtt.NewClientOptions().AddBroker("tcp://" + s.addr).SetClientID(id).SetProtocolVersion(4).
			SetCleanSession(false).SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(waitTimeout).
			SetKeepAlive(30 * time.Second).
			SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { log.add(s.t, m.Payload()) }).
			SetCustomOpenConnectionFn(func(u *url.URL, _ mqtt.ClientOptions) (net.Conn, error) {
				c, err := net.DialTimeout("tcp", u.Host, waitTimeout)
				if err == nil {
					conns <- c
				}
				return c, err
			})
		c := mqtt.NewClient(opts)
		tok := c.Connect()
		if !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
			s.fail("3.1.1 connect %s: %v", id, tok.Error())
			return nil
		}
		conn := <-conns
		if first {
			if st := c.Subscribe("soak/q1/#", 1, nil); !st.WaitTimeout(waitTimeout) || st.Error() != nil {
				s.fail("3.1.1 subscribe: %v", st.Error())
				return nil
			}
			subscribed()
		} else if !tok.(*mqtt.ConnectToken).SessionPresent() {
			s.t.Errorf("%s: CONNACK without Session Present on resuming [MQTT-3.2.2-2]", id)
		} else {
			log.sessions.Add(1)
		}
		if last {
			return func() { c.Disconnect(100) }
		}
		s.pause(between(200*time.Millisecond, time.Second))
		if rand.N(2) == 0 {
			c.Disconnect(50)
		} else {
			_ = conn.Close() // the broker sees the connection drop, with no DISCONNECT
			c.Disconnect(0)  // and the client's goroutines end (its DISCONNECT cannot be sent)
		}
		s.pause(between(50*time.Millisecond, 300*time.Millisecond))
	}
}

// publishV5 publishes "name/N" to topic at qos every 2 ms, counting in
// s.acked the messages acknowledged (PUBACK, or PUBCOMP at QoS 2), until
// the load ends.
func (s *soak) publishV5(name, topic string, qos byte) {
	c, _, _, err := s.dialV5(&paho.Connect{ClientID: name, CleanStart: true, KeepAlive: 30}, nil)
	if err != nil {
		s.fail("%s: %v", name, err)
		return
	}
	defer mqtttest.ClosePaho(c, nil)
	for n := 1; s.pause(2 * time.Millisecond); n++ {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		r, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: qos, Payload: []byte(name + "/" + strconv.Itoa(n))})
		cancel()
		if err != nil || r.ReasonCode > 0x10 {
			s.fail("%s: publish %d: %v (%+v)", name, n, err, r)
			return
		}
		s.acked[name].Store(int64(n))
	}
}

// publishV311 is publishV5 at QoS 1 over MQTT 3.1.1 (paho.mqtt.golang),
// on soak/q1/NAME.
func (s *soak) publishV311(name string) {
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + s.addr).SetClientID(name).SetProtocolVersion(4).
		SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(waitTimeout))
	if tok := c.Connect(); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		s.fail("3.1.1 connect %s: %v", name, tok.Error())
		return
	}
	defer c.Disconnect(100)
	for n := 1; s.pause(2 * time.Millisecond); n++ {
		tok := c.Publish("soak/q1/"+name, 1, false, name+"/"+strconv.Itoa(n))
		if !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
			s.fail("%s: publish %d: %v", name, n, tok.Error())
			return
		}
		s.acked[name].Store(int64(n))
	}
}

// q2Subscriber subscribes to soak/q2 at QoS 2 for the whole test and
// records what it receives in s.q2; the function returned disconnects it.
func (s *soak) q2Subscriber() func() {
	c, _, _, err := s.dialV5(&paho.Connect{ClientID: "q2-sub", CleanStart: true, KeepAlive: 30},
		func(p *paho.Publish) { s.q2.add(s.t, p.Payload) })
	if err == nil {
		err = subscribeV5(c, "soak/q2", 2)
	}
	if err != nil {
		s.t.Fatal(err)
	}
	return func() { mqtttest.ClosePaho(c, nil) }
}

// topicLog records the topics of the messages a subscriber received.
type topicLog struct {
	mu   sync.Mutex
	seen []string
	stop func()
}

func (l *topicLog) topics() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.seen)
}

// willWatcher subscribes to soak/will/# for the whole test.
func (s *soak) willWatcher() *topicLog {
	l := &topicLog{}
	c, _, _, err := s.dialV5(&paho.Connect{ClientID: "will-watcher", CleanStart: true, KeepAlive: 30}, func(p *paho.Publish) {
		l.mu.Lock()
		l.seen = append(l.seen, p.Topic)
		l.mu.Unlock()
	})
	if err == nil {
		err = subscribeV5(c, "soak/will/#", 1)
	}
	if err != nil {
		s.t.Fatal(err)
	}
	l.stop = func() { mqtttest.ClosePaho(c, nil) }
	return l
}

// churn connects short-lived MQTT 5 clients with a will, each of which
// subscribes, publishes and unsubscribes, then leaves with a DISCONNECT
// or by dropping its connection, until the load ends. It returns the
// client IDs of each kind.
func (s *soak) churn() (abrupt, clean []string) {
	for i := 0; s.ctx.Err() == nil; i++ {
		id := "churn-" + strconv.Itoa(i)
		c, conn, _, err := s.dialV5(&paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30,
			WillMessage: &paho.WillMessage{Topic: "soak/will/" + id, QoS: 1, Payload: []byte("gone")}}, nil)
		if err == nil {
			err = subscribeV5(c, "soak/churn/"+id+"/+", 0)
		}
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			_, err = c.Publish(ctx, &paho.Publish{Topic: "soak/churn/" + id + "/x", Payload: []byte("hi")})
			if err == nil {
				_, err = c.Unsubscribe(ctx, &paho.Unsubscribe{Topics: []string{"soak/churn/" + id + "/+"}})
			}
			cancel()
		}
		if err != nil {
			s.fail("%s: %v", id, err)
			return abrupt, clean
		}
		if i%2 == 0 {
			abrupt = append(abrupt, id)
			mqtttest.ClosePaho(c, conn)
		} else {
			clean = append(clean, id)
			mqtttest.ClosePaho(c, nil)
		}
		s.pause(5 * time.Millisecond)
	}
	return abrupt, clean
}

// retainer sets retained messages on soak/r/0..49 at QoS 1, clearing one
// now and then (an empty payload), until the load ends. It returns the
// retained messages there must be: topic → payload.
func (s *soak) retainer() map[string]string {
	want := map[string]string{}
	c, _, _, err := s.dialV5(&paho.Connect{ClientID: "retainer", CleanStart: true, KeepAlive: 30}, nil)
	if err != nil {
		s.fail("retainer: %v", err)
		return want
	}
	defer mqtttest.ClosePaho(c, nil)
	for n := 1; s.pause(3 * time.Millisecond); n++ {
		topic := "soak/r/" + strconv.Itoa(rand.N(50))
		payload := strconv.Itoa(n)
		if rand.N(5) == 0 {
			payload = ""
		}
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		_, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Retain: true, Payload: []byte(payload)})
		cancel()
		if err != nil {
			s.fail("retainer: publish %d: %v", n, err)
			break
		}
		if payload == "" {
			delete(want, topic)
		} else {
			want[topic] = payload
		}
	}
	return want
}

// checkRetained subscribes to soak/r/# and compares the retained
// messages it is sent with want.
func (s *soak) checkRetained(want map[string]string) {
	var mu sync.Mutex
	got := map[string]string{}
	c, _, _, err := s.dialV5(&paho.Connect{ClientID: "retained-check", CleanStart: true, KeepAlive: 30}, func(p *paho.Publish) {
		mu.Lock()
		defer mu.Unlock()
		if !p.Retain {
			s.t.Errorf("a message on %s without the retain flag", p.Topic)
		}
		if old, dup := got[p.Topic]; dup {
			s.t.Errorf("two retained messages on %s: %q and %q", p.Topic, old, p.Payload)
		}
		got[p.Topic] = string(p.Payload)
	})
	if err != nil {
		s.t.Fatal(err)
	}
	defer mqtttest.ClosePaho(c, nil)
	if err := subscribeV5(c, "soak/r/#", 1); err != nil {
		s.t.Fatal(err)
	}
	mqtttest.Eventually(s.t, waitTimeout, "the retained messages", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= len(want)
	})
	mu.Lock()
	defer mu.Unlock()
	for topic, p := range want {
		if got[topic] != p {
			s.t.Errorf("retained on %s: %q, want %q", topic, got[topic], p)
		}
	}
	for topic, p := range got {
		if _, ok := want[topic]; !ok {
			s.t.Errorf("retained on %s: %q, want none (cleared or never set)", topic, p)
		}
	}
}
