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
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/packets"
)

// callbackHook calls back into its server, once, from the Deliver of the
// retained message on cb/retained or from the OnRetained of cb/expiring's
// clearing: what it calls is the test case's call.
type callbackHook struct {
	core.HookBase
	srv    *core.Server
	events core.EventSet
	call   func(srv *core.Server, clientID string)
	done   atomic.Bool
	called chan struct{} // closed once call returned
}

func (*callbackHook) ID() string              { return "test.callback" }
func (h *callbackHook) Events() core.EventSet { return h.events }

func (h *callbackHook) Deliver(_ context.Context, clientID string, m *core.Message) core.Verdict {
	if m.Topic == "cb/retained" && m.Retain {
		h.once(clientID)
	}
	return core.Pass
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
