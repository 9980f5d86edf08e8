package core_test

// Tests of core/LOCKS.md: it names every mutex of the broker's packages,
// and hook code runs under no session lock, so a hook may call back into
// the server (Publish, Subscribe, Disconnect) from the events raised while
// a SUBSCRIBE's retained messages are sent. locks_stress_test.go runs
// every order it lists at once.

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/mqtttest"
	"github.com/vanemq/vanemq/core/packets"
	"github.com/vanemq/vanemq/hooks/storage"
	"github.com/vanemq/vanemq/listeners/tcp"
)

// callbackHook calls back into its server, once, from the Deliver of the
// retained message on cb/retained or from the OnRetained of cb/expiring's
// clearing: what it calls is the test case's call.
type callbackHook struct {
	srv    *core.Server
	events core.EventSet
	call   func(srv *core.Server, clientID string)
	done   atomic.Bool
	called chan struct{} // closed once call returned
}

func (*callbackHook) ID() string              { return "test.callback" }
func (h *callbackHook) Events() core.EventSet { return h.events }

func (h *callbackHook) Deliver(_ context.Context, sub *core.ClientInfo, m *core.Message) core.Verdict {
	if m.Topic == "cb/retained" && m.Retain {
		h.once(sub.ID)
	}
	return core.Next
}

func (h *callbackHook) AuthorizeRead(_ context.Context, cl *core.ClientInfo, topic string) core.Verdict {
	if topic == "cb/retained" && cl.ID == "cb-sub" {
		h.once(cl.ID)
	}
	return core.Next
}

func (h *callbackHook) OnRetained(_ context.Context, m *core.Message) {
	if m.Topic == "cb/expiring" && len(m.Payload) == 0 {
		h.once("cb-sub")
	}
}

func (h *callbackHook) once(clientID string) {
	if h.done.CompareAndSwap(false, true) {
		h.call(h.srv, clientID)
		close(h.called)
	}
}

// A Deliver or OnRetained hook that calls back into the server while a
// SUBSCRIBE's retained messages are sent neither deadlocks nor lets a live
// message overtake the retained ones: the hooks run with the session's
// lock released, and what is delivered to the session meanwhile is queued
// after the retained messages (LOCKS.md). Before, the hooks ran under the
// session lock, and a Publish to the subscriber or a Disconnect of it
// waited for that lock forever: the SUBACK never came.
func TestLocksHookCallsBackDuringRetained(t *testing.T) {
	t.Parallel()
	echo := func(srv *core.Server, _ string) {
		if err := srv.Publish(core.InlineMessage{Topic: "cb/echo", QoS: 1, Payload: []byte("from the hook")}); err != nil {
			panic(err)
		}
	}
	cases := []struct {
		name   string
		events core.EventSet
		expire bool // the retained message cb/expiring has expired (OnRetained clears it)
		call   func(srv *core.Server, clientID string)
		want   []string // topics the subscriber receives, in order ("" for a DISCONNECT)
	}{
		{name: "Deliver publishes to the subscriber", events: core.Events(core.EventDeliver),
			call: echo, want: []string{"cb/retained", "cb/echo"}},
		{name: "Deliver disconnects the subscriber", events: core.Events(core.EventDeliver),
			call: func(srv *core.Server, id string) {
				if err := srv.Disconnect(id, packets.AdministrativeAction, "by the hook"); err != nil {
					panic(err)
				}
			}, want: []string{""}},
		{name: "Deliver subscribes in process", events: core.Events(core.EventDeliver),
			call: func(srv *core.Server, _ string) {
				got := make(chan string, 8)
				unsub, err := srv.Subscribe("cb/#", func(m core.InlineMessage) { got <- m.Topic })
				if err != nil {
					panic(err)
				}
				unsub()
				if len(got) == 0 {
					panic("the in-process subscription got no retained message")
				}
				echo(srv, "")
			}, want: []string{"cb/retained", "cb/echo"}},
		{name: "AuthorizeRead publishes to the subscriber", events: core.Events(core.EventAuthorizeRead),
			call: echo, want: []string{"cb/retained", "cb/echo"}},
		{name: "AuthorizeRead disconnects the subscriber", events: core.Events(core.EventAuthorizeRead),
			call: func(srv *core.Server, id string) {
				if err := srv.Disconnect(id, packets.AdministrativeAction, "by the hook"); err != nil {
					panic(err)
				}
			}, want: []string{""}},
		{name: "OnRetained publishes to the subscriber", events: core.Events(core.EventRetained), expire: true,
			call: echo, want: []string{"cb/retained", "cb/echo"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tb := startBroker(t, core.Options{})
			pub := connectV5(t, tb.Addr, v5Connect("cb-pub"))
			pub.pubRetained("cb/retained", "kept")
			if tc.expire {
				pub.publish(&paho.Publish{Topic: "cb/expiring", QoS: 1, Retain: true, Payload: []byte("short"),
					Properties: &paho.PublishProperties{MessageExpiry: u32(1)}})
				// Waiting out the expiry is what makes the subscription
				// below find the message expired and clear it.
				<-time.After(1100 * time.Millisecond)
			}
			h := &callbackHook{srv: tb.Server, events: tc.events, call: tc.call, called: make(chan struct{})}
			if err := tb.AddHook(h, 0); err != nil {
				t.Fatal(err)
			}
			sub := connectV5(t, tb.Addr, v5Connect("cb-sub"))
			sub.sub("cb/#", 1)
			waitFor(t, h.called, waitTimeout, "the hook's call to return")
			for i, want := range tc.want {
				if want == "" {
					d := waitFor(t, sub.disc, waitTimeout, "the DISCONNECT the hook asked for")
					if d.ReasonCode != byte(packets.AdministrativeAction) {
						t.Errorf("DISCONNECT reason 0x%02x, want 0x98", d.ReasonCode)
					}
					continue
				}
				m := waitFor(t, sub.msgs, waitTimeout, want)
				if m.Topic != want {
					t.Fatalf("message %d is %v, want %s", i, m, want)
				}
				if want == "cb/retained" && !m.Retain {
					t.Errorf("%v sent on subscribing without the retain flag [MQTT-3.3.1-8]", m)
				}
			}
		})
	}
}

// LOCKS.md names every mutex of core and core/topics, as `Type.field`
// (`topics.Type.field` in core/topics; the variable's name for a
// variable that embeds one), so that a lock added without its place in
// the order fails here.
func TestLocksDocListsEveryMutex(t *testing.T) {
	doc, err := os.ReadFile("LOCKS.md")
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for dir, prefix := range map[string]string{".": "", "topics": "topics."} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range files {
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.SkipObjectResolution)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range mutexesOf(f) {
				found++
				if !strings.Contains(string(doc), "`"+prefix+m) {
					t.Errorf("%s: mutex %s%s is not in LOCKS.md: give it its place in the lock order", name, prefix, m)
				}
			}
		}
	}
	if found < 10 {
		t.Errorf("found %d mutexes in core and core/topics, want at least 10: is the test reading the right files?", found)
	}
}

// mutexesOf returns the sync.Mutex and sync.RWMutex fields of f's struct
// types as Type.field, and the variables of an anonymous struct embedding
// one by name.
func mutexesOf(f *ast.File) []string {
	var out []string
	isMutex := func(e ast.Expr) bool {
		sel, ok := e.(*ast.SelectorExpr)
		if !ok {
			return false
		}
		pkg, ok := sel.X.(*ast.Ident)
		return ok && pkg.Name == "sync" && (sel.Sel.Name == "Mutex" || sel.Sel.Name == "RWMutex")
	}
	fields := func(owner string, st *ast.StructType) {
		for _, fl := range st.Fields.List {
			if !isMutex(fl.Type) {
				continue
			}
			if len(fl.Names) == 0 {
				out = append(out, owner)
			}
			for _, n := range fl.Names {
				out = append(out, owner+"."+n.Name)
			}
		}
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.TypeSpec:
			if st, ok := n.Type.(*ast.StructType); ok {
				fields(n.Name.Name, st)
			}
		case *ast.ValueSpec:
			for i, v := range n.Values {
				if cl, ok := v.(*ast.CompositeLit); ok && i < len(n.Names) {
					if st, ok := cl.Type.(*ast.StructType); ok {
						fields(n.Names[i].Name, st)
					}
				}
			}
		}
		return true
	})
	return out
}

// A delivery held while a SUBSCRIBE's retained messages go through the
// Deliver hooks (the hook's own Publish here) is stored behind them: after
// a restart, the persistent session's queue still has the retained
// messages first. The retained messages' store sequence numbers are taken
// before the lock is released; were they taken when the messages are
// queued, after the held delivery was stored, the restored queue would put
// the hook's message between them.
func TestLocksHeldDeliveryStoredInOrder(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	h := &callbackHook{events: core.Events(core.EventDeliver), called: make(chan struct{}),
		call: func(srv *core.Server, _ string) {
			if err := srv.Publish(core.InlineMessage{Topic: "cb/echo", QoS: 1, Payload: []byte("from the hook")}); err != nil {
				panic(err)
			}
		}}
	_, addr, stop := storedBroker(t, dir, func(srv *core.Server) core.Hook { h.srv = srv; return h })
	pub := connectV5(t, addr, v5Connect("cb-pub"))
	pub.pubRetained("cb/retained", "kept")
	pub.pubRetained("cb/retained2", "kept too")

	// Receive Maximum 1: one retained message goes in flight, the other
	// and the hook's wait in the session's queue, unacknowledged.
	cp := &packets.Packet{}
	cp.Connect.ClientID, cp.Connect.CleanStart, cp.Connect.KeepAlive = "cb-held", true, 60
	cp.Properties.SessionExpiry, cp.Properties.ReceiveMaximum = 60, 1
	cp.Properties.Set(packets.PropSessionExpiry)
	cp.Properties.Set(packets.PropReceiveMaximum)
	sub := mqtttest.DialConnect(t, addr, cp)
	sub.Send(&packets.Packet{Type: packets.Subscribe, PacketID: 1, Subscriptions: []packets.Subscription{{Filter: "cb/#", QoS: 1}}})
	sub.Flush()
	var first string
	for suback := false; !suback || first == ""; {
		p := sub.Read(waitTimeout)
		switch {
		case p == nil:
			t.Fatal("no SUBACK and PUBLISH after SUBSCRIBE")
		case p.Type == packets.Suback:
			suback = true
		case p.Type == packets.Publish:
			first = p.Topic
		}
	}
	waitFor(t, h.called, waitTimeout, "the hook's Publish")
	stop()

	_, addr, _ = storedBroker(t, dir, nil)
	cp.Connect.CleanStart = false
	cp.Properties.ReceiveMaximum = 100
	back := mqtttest.DialConnect(t, addr, cp)
	var got []string
	for len(got) < 3 {
		p := back.Read(waitTimeout)
		if p == nil {
			t.Fatalf("after the restart the session sent %v, want 3 PUBLISH", got)
		}
		if p.Type == packets.Publish {
			got = append(got, p.Topic)
		}
	}
	second := "cb/retained2"
	if first == second {
		second = "cb/retained"
	}
	if want := []string{first, second, "cb/echo"}; !slices.Equal(got, want) {
		t.Errorf("after the restart the session sent %v, want %v: the retained messages, then what the hook published", got, want)
	}
}

// storedBroker starts a broker on a pebble store in dir, with the hook
// that hook makes for it (when hook is not nil), and returns the server,
// its address and a function that stops it and closes the store (also run
// when the test ends).
func storedBroker(t *testing.T, dir string, hook func(*core.Server) core.Hook) (*core.Server, string, func()) {
	t.Helper()
	st, err := storage.Open(context.Background(), storage.Config{Path: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := core.New(core.Options{Logger: slog.New(slog.DiscardHandler), SysInterval: -1, AllowAnonymous: true})
	if err != nil {
		t.Fatal(err)
	}
	hooks := []core.Hook{st}
	if hook != nil {
		hooks = append(hooks, hook(srv))
	}
	for _, hk := range hooks {
		if err := srv.AddHook(hk, 0); err != nil {
			t.Fatal(err)
		}
	}
	l := tcp.New("tcp", "127.0.0.1:0")
	if err := srv.AddListener(l); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil {
				t.Errorf("Shutdown: %v", err)
			}
			if err := st.Close(); err != nil {
				t.Errorf("closing the store: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return srv, l.Address(), stop
}
