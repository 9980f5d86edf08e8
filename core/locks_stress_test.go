package core_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/mqtttest"
	"github.com/vanemq/vanemq/hooks/storage"
)

// stressHook calls back into the server from the events LOCKS.md moves out
// from under session locks, within a budget: Deliver of a retained message
// publishes, subscribes in process or disconnects the subscriber, or
// denies one; AuthorizeRead denies some topics;
// OnRetained of a cleared message publishes. It counts expired sessions.
type stressHook struct {
	srv     *core.Server
	budget  atomic.Int64
	calls   atomic.Int64
	expired atomic.Int64
}

func (*stressHook) ID() string { return "test.stress" }

// AuthorizeRead denies reading every third st/x/ topic, so that the
// deliveries and InvalidateAuthorization's re-checks drop some.
func (h *stressHook) AuthorizeRead(_ context.Context, _ *core.ClientInfo, topic string) core.Verdict {
	if strings.HasPrefix(topic, "st/x/") && len(topic)%3 == 0 {
		return core.Deny(0, "stress")
	}
	return core.Next
}

var (
	_ core.DeliverHook       = (*stressHook)(nil)
	_ core.RetainedHook      = (*stressHook)(nil)
	_ core.AuthorizeReadHook = (*stressHook)(nil)
	_ core.SessionHook       = (*stressHook)(nil)
)

func (h *stressHook) Deliver(_ context.Context, sub *core.ClientInfo, m *core.Message) core.Verdict {
	if !m.Retain || h.budget.Add(-1) < 0 {
		return core.Next
	}
	switch n := h.calls.Add(1); {
	case n%5 == 0 && strings.HasPrefix(m.Topic, "st/x/"):
		return core.Deny(0, "stress")
	case n%3 == 1:
		if unsub, err := h.srv.Subscribe("st/#", func(core.InlineMessage) {}); err == nil {
			unsub()
		}
	case n%9 == 2 && strings.HasPrefix(sub.ID, "st-sub-"):
		_ = h.srv.Disconnect(sub.ID, 0, "stress")
	default:
		h.echo(sub.ID)
	}
	return core.Next
}

func (h *stressHook) OnRetained(_ context.Context, m *core.Message) {
	if len(m.Payload) == 0 && h.budget.Add(-1) >= 0 {
		h.echo("retained")
	}
}

func (h *stressHook) OnSession(_ context.Context, _ *core.ClientInfo, change core.SessionChange) {
	if change == core.SessionExpired {
		h.expired.Add(1)
	}
}

func (h *stressHook) echo(from string) {
	_ = h.srv.Publish(core.InlineMessage{Topic: "st/echo", QoS: 1, Payload: []byte(from)})
}

// churnHook is added and removed while events are dispatched.
type churnHook struct{}

func (churnHook) ID() string { return "test.churn" }
func (churnHook) Deliver(context.Context, *core.ClientInfo, *core.Message) core.Verdict {
	return core.Next
}
func (churnHook) OnPublished(context.Context, *core.ClientInfo, *core.Message) {}

// Every lock order of LOCKS.md, at once, under -race: subscribers whose
// SUBSCRIBE gets retained messages through a Deliver hook that calls back
// into the server (Publish, Subscribe, Disconnect), retained messages that
// expire and are cleared on subscribing (OnRetained, the store), sessions
// that expire (the store under sessMu and session.mu) while clients take
// them over, resume them and disconnect in every way, fan-out to all of
// them, and hooks added, refreshed, listed and removed (pipeline.mu), with
// the status calls (sessMu, then session.mu). It must end (no deadlock;
// the watchdog dumps the goroutines), leak nothing, keep retained messages
// in front of live ones, and leave the store as the broker's memory: the
// retained messages last published, and no session once all expired.
func TestLocksStress(t *testing.T) {
	baseline := runtime.NumGoroutine()
	dir := filepath.Join(t.TempDir(), "data")
	h := &stressHook{}
	h.budget.Store(400)
	srv, addr, stop := storedBroker(t, dir, func(srv *core.Server) core.Hook { h.srv = srv; return h })

	pub, err := stressClient(addr, "st-pub")
	if err != nil {
		t.Fatal(err)
	}
	if err := publish(pub, &paho.Publish{Topic: "st/o", QoS: 1, Retain: true, Payload: []byte("o-retained")}); err != nil {
		t.Fatal(err)
	}

	const (
		retainedRounds = 240
		subWorkers     = 4
		subRounds      = 12
		orderRounds    = 10
		hookRounds     = 100
	)
	// Retained messages that expire in 1 s: the subscribers go on until
	// they have, so that SUBSCRIBEs find them expired and clear them.
	for k := range 8 {
		_ = publish(pub, &paho.Publish{Topic: fmt.Sprintf("st/x/start/%d", k), QoS: 1, Retain: true, Payload: []byte("x"),
			Properties: &paho.PublishProperties{MessageExpiry: u32(1)}})
	}
	xPublished := time.Now()
	const expiredAfter = 1200 * time.Millisecond

	var (
		subsDone  atomic.Bool
		wg        sync.WaitGroup
		orderDone = make(chan struct{})
		orderErrs = make(chan string, 2*orderRounds) // at most two a round
	)
	run := func(f func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f()
		}()
	}
	// Retained messages on st/r/<k>, each topic's last one known, with
	// some cleared; retained messages on st/x/<i> that expire in 1 s and
	// are cleared by a later SUBSCRIBE; live messages.
	var published int // retained rounds the publisher made
	run(func() {
		for i := 0; i < retainedRounds || (!subsDone.Load() && i < 10*retainedRounds); i++ {
			published = i + 1
			if err := publish(pub, &paho.Publish{Topic: fmt.Sprintf("st/r/%d", i%8), QoS: 1, Retain: true, Payload: retainedPayload(i)}); err != nil {
				t.Errorf("retained round %d: %v", i, err)
				return
			}
			if i%20 == 0 {
				_ = publish(pub, &paho.Publish{Topic: fmt.Sprintf("st/x/%d", i), QoS: 1, Retain: true, Payload: []byte("x"),
					Properties: &paho.PublishProperties{MessageExpiry: u32(1)}})
			}
			_ = publish(pub, &paho.Publish{Topic: fmt.Sprintf("st/live/%d", i%4), QoS: byte(i % 2), Payload: []byte("live")})
		}
	})
	// Subscribers: workers w and w+2 share client IDs, so connections take
	// sessions over; sessions expire at once or after 1 s, start clean or
	// resume; connections end with DISCONNECT, by dropping the socket, or
	// by being taken over or disconnected by the hook.
	var subsLeft atomic.Int32
	subsLeft.Store(subWorkers)
	for w := range subWorkers {
		run(func() {
			defer func() {
				if subsLeft.Add(-1) == 0 {
					subsDone.Store(true)
				}
			}()
			var open []*paho.Client
			for i := 0; i < subRounds || (time.Since(xPublished) < expiredAfter && i < 10*subRounds); i++ {
				expiry := uint32(i % 2)
				cp := &paho.Connect{ClientID: fmt.Sprintf("st-sub-%d-%d", w%2, i%3), KeepAlive: 30, CleanStart: i%4 != 3,
					Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry}}
				c, conn, _, err := mqtttest.DialPaho(addr, cp, func(*paho.Publish) {})
				if err != nil {
					continue // taken over while connecting
				}
				// A connection taken over before its SUBSCRIBE gets no
				// SUBACK: the wait ends with the client.
				ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
				go func() {
					select {
					case <-c.Done():
						cancel()
					case <-ctx.Done():
					}
				}()
				subID := w + 1
				_, _ = c.Subscribe(ctx, &paho.Subscribe{
					Properties: &paho.SubscribeProperties{SubscriptionIdentifier: &subID},
					Subscriptions: []paho.SubscribeOptions{
						{Topic: "st/r/#", QoS: 1}, {Topic: "st/x/#", QoS: 1}, {Topic: "st/echo", QoS: 1}, {Topic: "st/live/#", QoS: 1},
					}})
				cancel()
				switch i % 3 {
				case 0:
					mqtttest.ClosePaho(c, nil)
				case 1:
					mqtttest.ClosePaho(c, conn)
				default:
					open = append(open, c)
				}
			}
			for _, c := range open {
				mqtttest.ClosePaho(c, nil)
			}
		})
	}
	// New subscribers to st/o, while it is published live, get its
	// retained message first.
	run(func() {
		defer close(orderDone)
		for i := range orderRounds {
			got := make(chan *paho.Publish, 64)
			cp := &paho.Connect{ClientID: fmt.Sprintf("st-order-%d", i), KeepAlive: 30, CleanStart: true}
			c, _, _, err := mqtttest.DialPaho(addr, cp, func(p *paho.Publish) {
				select {
				case got <- p:
				default:
				}
			})
			if err != nil {
				orderErrs <- err.Error()
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "st/o", QoS: 1}}}); err != nil {
				orderErrs <- fmt.Sprintf("%s: subscribe: %v", cp.ClientID, err)
			}
			cancel()
			select {
			case p := <-got:
				if !p.Retain || string(p.Payload) != "o-retained" {
					orderErrs <- fmt.Sprintf("%s: first message %q retain=%v, want the retained one", cp.ClientID, p.Payload, p.Retain)
				}
			case <-time.After(waitTimeout):
				orderErrs <- cp.ClientID + ": no message on st/o"
			}
			mqtttest.ClosePaho(c, nil)
		}
	})
	run(func() {
		live, err := stressClient(addr, "st-opub")
		if err != nil {
			t.Error(err)
			return
		}
		defer mqtttest.ClosePaho(live, nil)
		for range 5000 {
			select {
			case <-orderDone:
				return
			default:
			}
			_ = publish(live, &paho.Publish{Topic: "st/o", QoS: 1, Payload: []byte("o-live")})
		}
	})
	// The hook list changes while events are dispatched; the status calls
	// and InvalidateAuthorization walk the sessions.
	run(func() {
		for i := range hookRounds {
			if err := srv.AddHook(churnHook{}, i%3-1); err != nil {
				t.Errorf("AddHook: %v", err)
			}
			_ = srv.Hooks()
			if err := srv.RefreshHook(h.ID()); err != nil {
				t.Errorf("RefreshHook: %v", err)
			}
			_ = srv.Clients()
			_ = srv.Subscriptions()
			_ = srv.InvalidateAuthorization()
			if !srv.RemoveHook("test.churn") {
				t.Errorf("RemoveHook: the churn hook was not there")
			}
		}
	})

	done := make(chan struct{})
	start := time.Now()
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		buf := make([]byte, 1<<22)
		buf = buf[:runtime.Stack(buf, true)]
		t.Fatalf("the stress did not end within 30 s (a deadlock?):\n\n%s", buf)
	}
	t.Logf("stress: %v, %d retained rounds, %d hook calls back", time.Since(start), published, h.calls.Load())
	close(orderErrs)
	for e := range orderErrs {
		t.Error(e)
	}
	mqtttest.ClosePaho(pub, nil)

	// Every session ends: at once, or expiring after 1 s.
	mqtttest.Eventually(t, waitTimeout, "every session has ended", func() bool {
		s := srv.Stats()
		return s.Sessions == 0 && s.ClientsConnected == 0
	})
	t.Logf("sessions ended %v after the start", time.Since(start))
	if h.expired.Load() == 0 {
		t.Error("no session expired: the stress missed expireSession")
	}
	if h.calls.Load() == 0 {
		t.Error("the Deliver hook never called back into the server")
	}
	want := make(map[string]string)
	for i := range published {
		k := fmt.Sprintf("st/r/%d", i%8)
		if p := retainedPayload(i); len(p) == 0 {
			delete(want, k)
		} else {
			want[k] = string(p)
		}
	}
	mem := make(map[string]string)
	unsub, err := srv.Subscribe("st/r/#", func(m core.InlineMessage) { mem[m.Topic] = string(m.Payload) })
	if err != nil {
		t.Fatal(err)
	}
	unsub()
	checkRetained(t, "in memory", mem, want)
	stop()

	// The store holds what the broker held.
	st2, err := storage.Open(context.Background(), storage.Config{Path: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	// Retained first, as the broker loads: LoadSessions lets the
	// snapshot go.
	retained, err := st2.LoadRetained(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	sessions, err := st2.LoadSessions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sessions {
		t.Errorf("session %s (expiry %d, %d subscriptions, %d deliveries) left in the store after every session ended",
			s.ClientID, s.Expiry, len(s.Subscriptions), len(s.Deliveries))
	}
	stored := make(map[string]string)
	for _, m := range retained {
		if strings.HasPrefix(m.Topic, "st/r/") {
			stored[m.Topic] = string(m.Payload)
		}
	}
	checkRetained(t, "in the store", stored, want)
	if err := st2.Close(); err != nil {
		t.Error(err)
	}
	mqtttest.CheckGoroutines(t, "after the stress", baseline)
}

// retainedPayload is the stress's i-th retained message on st/r/<i%8>:
// empty (clearing the topic) one time in 37.
func retainedPayload(i int) []byte {
	if i%37 == 36 {
		return nil
	}
	return []byte(fmt.Sprintf("v%d", i))
}

// checkRetained compares retained messages by topic with what was
// published last.
func checkRetained(t *testing.T, where string, got, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("retained %s %s: %q, want %q, the last published", where, k, got[k], v)
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("retained %s %s: %q, want none (cleared last)", where, k, v)
		}
	}
}

// stressClient connects a paho client that the test ends itself.
func stressClient(addr, id string) (*paho.Client, error) {
	c, _, _, err := mqtttest.DialPaho(addr, &paho.Connect{ClientID: id, KeepAlive: 30, CleanStart: true}, nil)
	return c, err
}

// publish publishes p, waiting for its acknowledgement at QoS 1; the
// stress ignores the errors of clients that may be cut off.
func publish(c *paho.Client, p *paho.Publish) error {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	_, err := c.Publish(ctx, p)
	return err
}
