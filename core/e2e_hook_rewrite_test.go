package core_test

import (
	"context"
	"strings"
	"testing"

	"github.com/eclipse/paho.golang/paho"

	"github.com/vanemq/vanemq/core"
)

// badRewriteHook rewrites deliveries and wills on bad/# into what no
// client may receive: a topic with a wildcard, or QoS 3.
type badRewriteHook struct{}

var (
	_ core.DeliverHook = badRewriteHook{}
	_ core.WillHook    = badRewriteHook{}
	_ core.TopicFilter = badRewriteHook{}
)

func (badRewriteHook) ID() string       { return "test.bad_rewrite" }
func (badRewriteHook) Topics() []string { return []string{"bad/#"} }

func (badRewriteHook) Deliver(_ context.Context, _ *core.ClientInfo, m *core.Message) core.Verdict {
	rewriteBadly(m)
	return core.Next
}

func (badRewriteHook) Will(_ context.Context, _ *core.ClientInfo, m *core.Message) core.Verdict {
	rewriteBadly(m)
	return core.Next
}

func rewriteBadly(m *core.Message) {
	switch {
	case strings.HasSuffix(m.Topic, "/wild"):
		m.Topic = "bad/+/x"
	case strings.HasSuffix(m.Topic, "/qos"):
		m.QoS = 3
	}
}

// A Deliver or Will hook that rewrites a message into an invalid one (a
// wildcard in the topic name [MQTT-3.3.2-2], QoS 3 [MQTT-3.3.1-4]) gets it
// dropped and logged, as a Publish hook's is refused, instead of it being
// sent to a subscriber as a malformed PUBLISH (issue 16).
func TestE2EHookInvalidRewriteDropped(t *testing.T) {
	t.Parallel()
	rec := newRecorder(core.EventDisconnected)
	tb := hookBroker(t, withHooks(badRewriteHook{}, rec))
	sub := connectV5(t, tb.Addr, v5Connect("rw-sub"))
	sub.sub("bad/#", 1)
	pub := connectV5(t, tb.Addr, v5Connect("rw-pub"))

	for _, topic := range []string{"bad/wild", "bad/qos"} {
		pub.pub(topic, 1, "rewritten badly")
	}
	pub.pub("bad/fine", 1, "unchanged")
	if m := sub.next(); m.Topic != "bad/fine" {
		t.Errorf("first delivery %v, want bad/fine: the invalid rewrites must be dropped", m)
	}

	cp := v5Connect("rw-will")
	cp.WillMessage = &paho.WillMessage{Topic: "bad/will/wild", QoS: 1, Payload: []byte("gone")}
	w := connectV5(t, tb.Addr, cp)
	w.kill()
	rec.expectKind(t, "disconnected", "rw-will")
	pub.pub("bad/marker", 1, "marker")
	if got := sub.until("bad/marker"); len(got) > 0 {
		t.Errorf("a will rewritten to an invalid topic was delivered: %v", got)
	}
}

// A Connect hook's mountpoint starts every topic name and filter of its
// client, so one that could not start a topic (a wildcard, NUL, or '$',
// which would put the client's topics among the broker's [MQTT-4.7.2-1])
// refuses the CONNECT with 0x83 instead of making the client's every
// topic invalid; a valid one is kept.
func TestE2EHookInvalidMountpointRefused(t *testing.T) {
	t.Parallel()
	pol := &policyHook{mounts: map[string]string{"wild-": "a/+/", "hash-": "a/#", "nul-": "a\x00/", "sys-": "$SYS/", "ok-": "tenant/"}}
	tb := hookBroker(t, withHooks(pol))
	for _, id := range []string{"wild-1", "hash-1", "nul-1", "sys-1"} {
		c, err := dialV5(t, tb.Addr, v5Connect(id), nil)
		if err == nil || c.Connack == nil || c.Connack.ReasonCode != 0x83 {
			code := -1
			if c != nil && c.Connack != nil {
				code = int(c.Connack.ReasonCode)
			}
			t.Errorf("%s: CONNACK %#x, %v; want 0x83 for the mountpoint %q", id, code, err, pol.mounts[id[:strings.IndexByte(id, '-')+1]])
		}
	}
	ok := connectV5(t, tb.Addr, v5Connect("ok-1"))
	ok.sub("x", 1)
	ok.pub("x", 1, "within the mountpoint")
	if m := ok.next(); m.Topic != "x" {
		t.Errorf("got %v, want x: a valid mountpoint works", m)
	}
}
