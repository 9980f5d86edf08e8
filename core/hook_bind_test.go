package core

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

// Hooks for TestEventsOf: each is a mistake AddHook must catch, or a shape
// it must accept.
type (
	okHook        struct{}
	misnamedHook  struct{} // OnPublish for OnPublished
	onConnectHook struct{} // OnConnect for Connect
	wrongSigHook  struct{} // OnPublished without its message
	listsTooMuch  struct{} // Events lists what it does not implement
	noEventsHook  struct{}
	helperHook    struct{} // event methods and helpers that are not events
	storeOnlyHook struct{} // a Loader handles no event and is still a hook
	listedHook    struct{} // an EventLister listing a subset of what it has
)

func (okHook) ID() string                                                      { return "ok" }
func (okHook) OnPublished(context.Context, *ClientInfo, *Message)              {}
func (okHook) Authenticate(context.Context, *ClientInfo, *Credentials) Verdict { return Next }

func (misnamedHook) ID() string                                              { return "misnamed" }
func (misnamedHook) OnSubscribed(context.Context, *ClientInfo, string, byte) {}
func (misnamedHook) OnPublish(context.Context, *ClientInfo, *Message)        {}

func (onConnectHook) ID() string { return "onconnect" }
func (onConnectHook) OnConnect(context.Context, *ClientInfo, *ClientPolicy) Verdict {
	return Next
}

func (wrongSigHook) ID() string                               { return "wrongsig" }
func (wrongSigHook) OnPublished(context.Context, *ClientInfo) {}

func (listsTooMuch) ID() string                                         { return "toomuch" }
func (listsTooMuch) Events() EventSet                                   { return Events(EventPublished, EventAcked) }
func (listsTooMuch) OnPublished(context.Context, *ClientInfo, *Message) {}

func (noEventsHook) ID() string { return "none" }

func (helperHook) ID() string                           { return "helper" }
func (helperHook) OnRetained(context.Context, *Message) {}
func (helperHook) Publisher() string                    { return "" }
func (helperHook) Published(n int) int                  { return n }
func (helperHook) Reload(context.Context) error         { return nil }
func (helperHook) Topics() []string                     { return []string{"a/#"} }

func (storeOnlyHook) ID() string { return "store" }
func (storeOnlyHook) LoadRetained(context.Context) ([]StoredMessage, error) {
	return nil, nil
}
func (storeOnlyHook) LoadSessions(context.Context) ([]StoredSession, error) {
	return nil, nil
}

func (listedHook) ID() string                                         { return "listed" }
func (listedHook) Events() EventSet                                   { return Events(EventAcked) }
func (listedHook) OnPublished(context.Context, *ClientInfo, *Message) {}
func (listedHook) OnAcked(context.Context, string, *Message)          {}

// AddHook finds a hook's events by the interfaces it implements, and
// refuses the mistakes that would otherwise compile and never run: a
// misspelt event method, an event method with the wrong signature, an
// EventLister listing events it has no method for, and a hook that
// handles nothing (issue 16 §2).
func TestEventsOf(t *testing.T) {
	tests := []struct {
		name    string
		h       Hook
		want    EventSet
		wantErr []string // substrings of the error; nil: no error
	}{
		{"by interfaces", okHook{}, Events(EventAuthenticate, EventPublished), nil},
		{"misnamed", misnamedHook{}, 0, []string{"OnPublish is not an event method", "OnPublished (notification)", "Publish (modifier)"}},
		{"OnConnect", onConnectHook{}, 0, []string{"OnConnect is not an event method", "did you mean Connect (decision)"}},
		{"wrong signature", wrongSigHook{}, 0, []string{"method OnPublished is not the published event's",
			"it is func(context.Context, *core.ClientInfo)", "wants func(context.Context, *core.ClientInfo, *core.Message) (core.PublishedHook)"}},
		{"lists too much", listsTooMuch{}, 0, []string{"lists events it has no method for: acked"}},
		{"no events", noEventsHook{}, 0, []string{"implements no event interface"}},
		{"helpers are not events", helperHook{}, Events(EventRetained), nil},
		{"a loader", storeOnlyHook{}, 0, nil},
		{"listed subset", listedHook{}, Events(EventAcked), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := EventsOf(tc.h)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("EventsOf: %v", err)
				}
				if got != tc.want {
					t.Errorf("EventsOf = %s, want %s", got, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("EventsOf = %s, nil; want an error", got)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			s := newPipeServer(t)
			if aerr := s.AddHook(tc.h, 0); aerr == nil || !strings.Contains(aerr.Error(), err.Error()) {
				t.Errorf("AddHook = %v, want the error of EventsOf (%v)", aerr, err)
			}
		})
	}
}

// The table of events is complete and consistent: every event has a
// name, a method of its interface, and a kind; names are unique and found
// by EventNamed.
func TestEventSpecs(t *testing.T) {
	seen := map[string]bool{}
	for e := range numEvents {
		sp := eventSpecs[e]
		if sp.name == "" || sp.method == "" || sp.kind == 0 {
			t.Errorf("event %d: incomplete spec %+v", e, sp)
		}
		if seen[sp.name] {
			t.Errorf("event name %q twice", sp.name)
		}
		seen[sp.name] = true
		if got, ok := EventNamed(sp.name); !ok || got != e {
			t.Errorf("EventNamed(%q) = %v, %v", sp.name, got, ok)
		}
		it := eventInterfaces[e]
		if it.NumMethod() != 1 || it.Method(0).Name != sp.method {
			t.Errorf("event %s: interface %s does not have exactly the method %s", sp.name, it, sp.method)
		}
		wantKind := KindNotification
		if it.Method(0).Type.NumOut() == 1 {
			wantKind = KindModifier
			if e <= EventConnect {
				wantKind = KindDecision
			}
		}
		if sp.kind != wantKind {
			t.Errorf("event %s: kind %s, want %s", sp.name, sp.kind, wantKind)
		}
	}
	if _, ok := EventNamed("nonesuch"); ok {
		t.Error("EventNamed found an unknown name")
	}
}

// closingHook records OnStopped and Close in order.
type closingHook struct {
	log *[]string
	err error
}

func (h *closingHook) ID() string                       { return "closing" }
func (h *closingHook) OnStopped(context.Context)        { *h.log = append(*h.log, "stopped") }
func (h *closingHook) Close() error                     { *h.log = append(*h.log, "closed"); return h.err }
func (h *closingHook) OnSysTick(context.Context, Stats) {}

// The server closes a hook that is an io.Closer after OnStopped, once,
// and counts a Close error as the hook's failure (hook.go).
func TestServerClosesHooksAfterStopped(t *testing.T) {
	for _, closeErr := range []error{nil, errors.New("disk gone")} {
		var log []string
		s, err := New(Options{Logger: slog.New(slog.DiscardHandler), SysInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.AddHook(&closingHook{log: &log, err: closeErr}, 0); err != nil {
			t.Fatal(err)
		}
		if err := s.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := s.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
		if strings.Join(log, ",") != "stopped,closed" {
			t.Errorf("close error %v: calls %v, want [stopped closed]", closeErr, log)
		}
		wantFailures := int64(0)
		if closeErr != nil {
			wantFailures = 1
		}
		if got := s.Hooks()[0].Failures; got != wantFailures {
			t.Errorf("close error %v: failures %d, want %d", closeErr, got, wantFailures)
		}
	}
}
