package sdk

import (
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vanemq/vanemq/plugins/proto/pluginv1"
)

// Deliver's subscriber is the client the broker sends; a broker from
// before DeliverRequest had it sends the ID only, which the plugin gets
// as a client with that ID.
func TestSubscriberOf(t *testing.T) {
	for _, tc := range []struct {
		name string
		req  *pluginv1.DeliverRequest
		want *Client
	}{
		{"client", &pluginv1.DeliverRequest{Subscriber: "s1", Client: &pluginv1.Client{Id: "s1", Username: "alice", ProtocolVersion: 5}},
			&Client{ID: "s1", Username: "alice", ProtocolVersion: 5}},
		{"old broker: the ID only", &pluginv1.DeliverRequest{Subscriber: "s1"}, &Client{ID: "s1"}},
	} {
		if got := subscriberOf(tc.req); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestBrokerPID(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  string
		ppid int
		want int
	}{
		{"from the broker's environment", "4242", 7, 4242},
		{"the environment wins over a re-parented orphan's parent", "4242", 1, 4242},
		{"an older broker passes none: the parent", "", 7, 7},
		{"garbage: the parent", "x", 7, 7},
		{"init in the environment: the parent", "1", 7, 7},
		{"started by init or by hand: nothing to watch", "", 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := brokerPID(tc.env, tc.ppid); got != tc.want {
				t.Errorf("brokerPID(%q, %d) = %d, want %d", tc.env, tc.ppid, got, tc.want)
			}
		})
	}
}

// watchBroker ends at once when the broker is already gone (the plugin was
// re-parented before it started), and after a check once it goes.
func TestWatchBroker(t *testing.T) {
	t.Run("gone before the first check", func(t *testing.T) {
		gone := make(chan struct{})
		go watchBroker(4242, func() int { return 1 }, time.Hour, func() { close(gone) })
		select {
		case <-gone:
		case <-time.After(10 * time.Second):
			t.Fatal("a plugin whose broker was gone before it started did not see it at once")
		}
	})
	t.Run("gone later", func(t *testing.T) {
		var parent atomic.Int32
		parent.Store(4242)
		var checks atomic.Int32
		gone := make(chan struct{})
		go watchBroker(4242, func() int {
			if checks.Add(1) == 3 {
				parent.Store(1) // the broker dies between two checks
			}
			return int(parent.Load())
		}, time.Millisecond, func() { close(gone) })
		select {
		case <-gone:
		case <-time.After(10 * time.Second):
			t.Fatal("the broker's death was not seen")
		}
		if n := checks.Load(); n != 3 {
			t.Errorf("%d checks, want 3 (2 while the broker lived)", n)
		}
	})
	t.Run("nothing to watch", func(t *testing.T) {
		called := false
		watchBroker(0, func() int { return 1 }, time.Millisecond, func() { called = true })
		if called {
			t.Error("gone called with no broker to watch")
		}
	})
}
