package core_test

// End-to-end tests of the bounds on what clients make the broker hold
// (issue 15): subscriptions per session, and the broker's retained
// messages by count and by bytes. Each refusal has its reason code, is
// counted in Stats.RefusedBy and logged, at warn level for the first only.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/logtest"
	"github.com/vanemq/vanemq/core/mqtttest"
)

// subscribeEach sends one SUBSCRIBE with every filter at QoS 1 and returns
// the SUBACK's reason codes, one per filter and in their order
// [MQTT-3.9.3-1/2]. paho returns an error as well when a code refuses.
func subscribeEach(t testing.TB, c *v5Client, filters ...string) []byte {
	t.Helper()
	opts := make([]paho.SubscribeOptions, len(filters))
	for i, f := range filters {
		opts[i] = paho.SubscribeOptions{Topic: f, QoS: 1}
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	sa, err := c.Cli.Subscribe(ctx, &paho.Subscribe{Subscriptions: opts})
	if sa == nil {
		t.Fatalf("%s: SUBSCRIBE %v: no SUBACK: %v", c.ID, filters, err)
	}
	if len(sa.Reasons) != len(filters) {
		t.Fatalf("%s: SUBACK for %d filters has %d reason codes [MQTT-3.9.3-2]", c.ID, len(filters), len(sa.Reasons))
	}
	return sa.Reasons
}

// unsubscribeV5 removes one filter and fails the test unless it existed.
func unsubscribeV5(t testing.TB, c *v5Client, filter string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	ua, err := c.Cli.Unsubscribe(ctx, &paho.Unsubscribe{Topics: []string{filter}})
	if err != nil || len(ua.Reasons) != 1 || ua.Reasons[0] != 0 {
		t.Fatalf("%s: UNSUBSCRIBE %q: %+v, %v", c.ID, filter, ua, err)
	}
}

// publishRetained publishes a retained message and returns the reason code
// of its PUBACK (QoS 1) or PUBREC (QoS 2).
func publishRetained(t testing.TB, c *v5Client, topic string, qos byte, payload string) byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	r, err := c.Cli.Publish(ctx, &paho.Publish{Topic: topic, QoS: qos, Retain: true, Payload: []byte(payload)})
	if r == nil {
		t.Fatalf("%s: retained publish to %q at QoS %d: no acknowledgement: %v", c.ID, topic, qos, err)
	}
	return r.ReasonCode
}

// sessionSubscriptions is how many subscriptions the broker counts for id.
func sessionSubscriptions(t testing.TB, tb *testBroker, id string) int {
	t.Helper()
	st, ok := tb.Client(id)
	if !ok {
		t.Fatalf("no session %q", id)
	}
	return st.Subscriptions
}

// logLines counts the lines of log at level (DEBUG, INFO, WARN) whose
// message is msg and which contain every one of the attrs (key=value).
func logLines(log, level, msg string, attrs ...string) int {
	n := 0
	for line := range strings.SplitSeq(log, "\n") {
		if !strings.Contains(line, "level="+level+" ") || !strings.Contains(line, fmt.Sprintf("msg=%q", msg)) {
			continue
		}
		all := true
		for _, a := range attrs {
			all = all && strings.Contains(line, a)
		}
		if all {
			n++
		}
	}
	return n
}

const (
	subRefusedMsg     = "subscription refused: the session holds the most subscriptions allowed"
	retainedCountMsg  = "retained message refused: the store holds the most retained messages allowed"
	retainedBytesMsg  = "retained message refused: it would take the retained messages over their size limit"
	restoredSubsMsg   = "restored sessions hold more subscriptions than allowed; they keep them but can add none"
	restoredRetainMsg = "restored retained messages are over the limits; they are kept, but new retained topics (or larger messages) are refused until they are under them"
	quotaExceeded     = 0x97
	v3SubackFailure   = 0x80
	grantedQoS1       = 1
	refusalWarnEvery  = 10 * time.Second // as core's: no second warning within a test
)

// A session holds at most MaxSubscriptions distinct filters, shared ones
// included. A SUBSCRIBE entry beyond them is refused on its own with 0x97
// Quota exceeded while the others in the packet are granted, each code in
// its filter's place [MQTT-3.8.4-5/6][MQTT-3.9.3-1/2]; a subscription to a
// filter the session holds replaces it [MQTT-3.8.4-3] and does not count
// again; an unsubscription frees a place. A refused filter delivers
// nothing. Refusals are counted and logged: the first at warn level with
// the client and the filter, the next ones (within refusalWarnEvery) at
// debug level.
func TestE2EMaxSubscriptionsV5(t *testing.T) {
	t.Parallel()
	var log logtest.Buffer
	tb := startBroker(t, core.Options{MaxSubscriptions: 3, Logger: log.Logger(slog.LevelDebug)})
	c := connectV5(t, tb.Addr, v5Connect("subs-v5"))
	pub := connectV5(t, tb.Addr, v5Connect("subs-v5-pub"))
	refused := func() int64 { return tb.Stats().RefusedBy[core.LimitSubscriptions] }

	got := subscribeEach(t, c, "lim/a", "$share/g/lim/b", "lim/c", "lim/d", "lim/a")
	want := []byte{grantedQoS1, grantedQoS1, grantedQoS1, quotaExceeded, grantedQoS1}
	if string(got) != string(want) {
		t.Fatalf("SUBACK for 5 filters, 4 distinct, with room for 3: %x, want %x (the 4th refused alone, the repeated lim/a granted) [MQTT-3.9.3-1]", got, want)
	}
	if n := sessionSubscriptions(t, tb, c.ID); n != 3 {
		t.Errorf("session holds %d subscriptions, want 3", n)
	}
	if n := refused(); n != 1 {
		t.Errorf("RefusedBy[max_subscriptions] = %d, want 1", n)
	}

	if got := subscribeEach(t, c, "lim/c", "lim/a"); string(got) != string([]byte{grantedQoS1, grantedQoS1}) {
		t.Errorf("subscribing again to held filters at the limit: %x, want both granted (a replacement, not one more) [MQTT-3.8.4-3]", got)
	}
	if got := subscribeEach(t, c, "lim/d"); got[0] != quotaExceeded {
		t.Errorf("a 4th filter: SUBACK 0x%02x, want 0x97 Quota exceeded", got[0])
	}
	if n := sessionSubscriptions(t, tb, c.ID); n != 3 {
		t.Errorf("session holds %d subscriptions after re-subscribing, want still 3", n)
	}
	pub.pub("lim/d", 1, "not subscribed")
	pub.pub("lim/a", 1, "marker")
	c.expectNone("lim/a", "a refused filter delivers nothing")

	unsubscribeV5(t, c, "lim/c")
	if got := subscribeEach(t, c, "lim/d"); got[0] != grantedQoS1 {
		t.Errorf("after an UNSUBSCRIBE freed a place: SUBACK 0x%02x for lim/d, want granted QoS 1", got[0])
	}
	pub.pub("lim/d", 1, "now subscribed")
	if m := c.next(); m.Topic != "lim/d" {
		t.Errorf("after subscribing in the freed place: got %v, want lim/d", m)
	}

	if n := refused(); n != 2 {
		t.Errorf("RefusedBy[max_subscriptions] = %d, want 2", n)
	}
	out := log.String()
	if n := logLines(out, "WARN", subRefusedMsg, "client=subs-v5", "filter=lim/d", "max_subscriptions=3", "refused_since_last_warning=1"); n != 1 {
		t.Errorf("%d warnings for the first refusal naming the client, filter and limit, want 1; log:\n%s", n, out)
	}
	if n := logLines(out, "DEBUG", subRefusedMsg, "client=subs-v5", "filter=lim/d"); n != 1 {
		t.Errorf("%d debug lines for the second refusal (within %v of the warning), want 1; log:\n%s", n, refusalWarnEvery, out)
	}
}

// MQTT 3.1.1 has one failure code: a filter beyond the limit gets 0x80 in
// its place, the others their granted QoS [MQTT-3.8.4-5][MQTT-3.9.3-1/2].
func TestE2EMaxSubscriptionsV311(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, core.Options{MaxSubscriptions: 2})
	c := connectV3(t, tb.Addr, "subs-v3", nil)
	subscribe := func(filters map[string]byte) map[string]byte {
		t.Helper()
		tok := c.Cli.SubscribeMultiple(filters, nil)
		if !tok.WaitTimeout(waitTimeout) {
			t.Fatalf("SUBSCRIBE %v: no SUBACK", filters)
		}
		return tok.(*mqtt.SubscribeToken).Result()
	}
	if got := subscribe(map[string]byte{"v3/a": 1, "v3/b": 0}); got["v3/a"] != 1 || got["v3/b"] != 0 {
		t.Fatalf("two filters within the limit: %v", got)
	}
	got := subscribe(map[string]byte{"v3/c": 1, "v3/a": 1})
	if got["v3/c"] != v3SubackFailure || got["v3/a"] != 1 {
		t.Errorf("at the limit, a new filter and a held one: %v, want v3/c 0x80 Failure and v3/a granted QoS 1", got)
	}
	if n := sessionSubscriptions(t, tb, "subs-v3"); n != 2 {
		t.Errorf("session holds %d subscriptions, want 2", n)
	}
	if n := tb.Stats().RefusedBy[core.LimitSubscriptions]; n != 1 {
		t.Errorf("RefusedBy[max_subscriptions] = %d, want 1", n)
	}
}

// The broker's retained messages are bounded by count and by bytes (topic
// plus payload here). A retained PUBLISH that would go over either is
// refused whole, 0x97 Quota exceeded in its PUBACK or PUBREC (v5 sections
// 3.4.2.1, 3.5.2.1): not retained and not delivered, so live and later
// subscribers agree. Replacing counts by the difference in bytes, not as
// one more message; clearing (an empty payload [MQTT-3.3.1-6]) is always
// allowed and frees room; a message without retain is not affected.
func TestE2ERetainedLimitsV5(t *testing.T) {
	t.Parallel()
	var log logtest.Buffer
	tb := startBroker(t, core.Options{MaxRetainedMessages: 3, MaxRetainedBytes: 40, Logger: log.Logger(slog.LevelDebug)})
	pub := connectV5(t, tb.Addr, v5Connect("ret-pub"))
	live := connectV5(t, tb.Addr, v5Connect("ret-live"))
	live.sub("r/#", 1)

	type want struct {
		code            byte
		count           int64
		bytes           int64
		byCount, bySize int64 // RefusedBy
	}
	steps := []struct {
		name    string
		topic   string
		qos     byte
		payload string
		want
	}{
		{"first", "r/a", 1, "0123456789", want{0, 1, 13, 0, 0}},
		{"second", "r/b", 1, "0123456789", want{0, 2, 26, 0, 0}},
		{"new topic over the bytes", "r/c", 1, strings.Repeat("c", 20), want{quotaExceeded, 2, 26, 0, 1}},
		{"new topic within the bytes", "r/c", 1, "ccccc", want{0, 3, 34, 0, 1}},
		{"a 4th topic, at QoS 2", "r/d", 2, "d", want{quotaExceeded, 3, 34, 1, 1}},
		{"replace, to exactly the bytes bound", "r/a", 1, strings.Repeat("a", 16), want{0, 3, 40, 1, 1}},
		{"replace, growing over it", "r/a", 1, strings.Repeat("A", 17), want{quotaExceeded, 3, 40, 1, 2}},
		{"replace, shrinking", "r/a", 2, strings.Repeat("a", 15), want{0, 3, 39, 1, 2}},
		{"clear", "r/b", 1, "", want{0, 2, 26, 1, 2}},
		{"clear a topic with none", "r/none", 1, "", want{0, 2, 26, 1, 2}},
		{"a 3rd topic again", "r/d", 2, "d", want{0, 3, 30, 1, 2}},
	}
	for _, st := range steps {
		code := publishRetained(t, pub, st.topic, st.qos, st.payload)
		if code != st.code {
			t.Errorf("%s: %s (%d bytes) at QoS %d: reason 0x%02x, want 0x%02x", st.name, st.topic, len(st.payload), st.qos, code, st.code)
		}
		s := tb.Stats()
		got := want{code, s.Retained, s.RetainedBytes, s.RefusedBy[core.LimitRetainedMessages], s.RefusedBy[core.LimitRetainedBytes]}
		if got != st.want {
			t.Errorf("%s: code, retained, bytes, refused by count, by bytes = %v, want %v", st.name, got, st.want)
		}
	}
	// Without retain, a message is not bounded by the retained store.
	pub.pub("r/plain", 1, strings.Repeat("p", 100))
	pub.pub("marker", 1, "")

	var live5 []string
	for _, m := range live.until("r/plain") {
		live5 = append(live5, fmt.Sprintf("%s=%d", m.Topic, len(m.Payload)))
	}
	wantLive := []string{"r/a=10", "r/b=10", "r/c=5", "r/a=16", "r/a=15", "r/b=0", "r/none=0", "r/d=1"}
	if strings.Join(live5, " ") != strings.Join(wantLive, " ") {
		t.Errorf("live subscriber got %v, want only the accepted messages %v", live5, wantLive)
	}
	late := connectV5(t, tb.Addr, v5Connect("ret-late"))
	late.sub("r/#", 1)
	pub.pub("r/plain2", 0, "")
	var stored []string
	for _, m := range late.until("r/plain2") {
		stored = append(stored, fmt.Sprintf("%s=%s", m.Topic, m.Payload))
	}
	if len(stored) != 3 || !strings.Contains(strings.Join(stored, " "), "r/a="+strings.Repeat("a", 15)) {
		t.Errorf("a new subscriber got the retained %v, want r/a (the last accepted value), r/c and r/d", stored)
	}

	out := log.String()
	if n := logLines(out, "WARN", retainedBytesMsg, "client=ret-pub", "topic=r/c", "size=23", "retained_bytes=26", "max_retained_bytes=40"); n != 1 {
		t.Errorf("%d warnings for the first refusal by bytes naming client, topic and sizes, want 1; log:\n%s", n, out)
	}
	if n := logLines(out, "WARN", retainedCountMsg, "client=ret-pub", "topic=r/d", "retained=3", "max_retained_messages=3"); n != 1 {
		t.Errorf("%d warnings for the first refusal by count, want 1 (a limit of its own); log:\n%s", n, out)
	}
	if n := logLines(out, "DEBUG", retainedBytesMsg, "topic=r/a"); n != 1 {
		t.Errorf("%d debug lines for the second refusal by bytes, want 1; log:\n%s", n, out)
	}
}

// An MQTT 3.1.1 client cannot be told: a retained PUBLISH over the bound
// is acknowledged as usual and dropped [MQTT-3.3.5-2], counted; the
// connection goes on.
func TestE2ERetainedLimitsV311(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, core.Options{MaxRetainedMessages: 1})
	sub := connectV3(t, tb.Addr, "ret3-sub", nil)
	sub.sub("r3/#", 1)
	pub := connectV3(t, tb.Addr, "ret3-pub", nil)
	pub.pub("r3/a", 1, true, "kept")
	pub.pub("r3/b", 1, true, "refused") // acknowledged normally
	pub.pub("r3/b", 2, true, "refused")
	pub.pub("r3/marker", 1, false, "")
	if got := v3Topics(sub.until("r3/marker")); strings.Join(got, " ") != `r3/a "kept"` {
		t.Errorf("subscriber got %v, want only r3/a", got)
	}
	if s := tb.Stats(); s.Retained != 1 || s.RefusedBy[core.LimitRetainedMessages] != 2 {
		t.Errorf("retained %d, refused by count %d: want 1 and 2", s.Retained, s.RefusedBy[core.LimitRetainedMessages])
	}
}

// Every way a retained message enters the store goes through the same
// bounds: a will with retain set [MQTT-3.1.2-17] is not published when the
// store has no room, and an inline Publish (plugins, bridges, scripts)
// returns an error wrapping ErrRetainedFull. The broker's own $SYS topics
// count but are never refused.
func TestE2ERetainedLimitsWillInlineSys(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, core.Options{MaxRetainedMessages: 1, SysInterval: time.Hour})
	mqtttest.Eventually(t, waitTimeout, "the $SYS topics retained beyond the bound of 1", func() bool {
		return tb.Stats().Retained > 1
	})
	late := connectV5(t, tb.Addr, v5Connect("rw-late"))
	late.sub("$SYS/broker/version", 0)
	if m := late.next(); m.Topic != "$SYS/broker/version" || !m.Retain {
		t.Fatalf("with the store over its bound from $SYS alone: got %v, want the retained $SYS/broker/version", m)
	}
	watch := connectV5(t, tb.Addr, v5Connect("rw-watch"))
	watch.sub("rw/#", 1)

	err := tb.Publish(core.InlineMessage{Topic: "rw/inline", Payload: []byte("x"), QoS: 1, Retain: true})
	if !errors.Is(err, core.ErrRetainedFull) || !strings.Contains(err.Error(), "max_retained_messages") {
		t.Errorf("inline retained Publish over the bound: %v, want an error wrapping ErrRetainedFull naming max_retained_messages", err)
	}
	if err := tb.Publish(core.InlineMessage{Topic: "rw/inline", Payload: []byte("plain"), QoS: 1}); err != nil {
		t.Errorf("inline Publish without retain: %v", err)
	}

	cp := v5Connect("rw-dying")
	cp.WillMessage = &paho.WillMessage{Topic: "rw/will", Payload: []byte("gone"), QoS: 1, Retain: true}
	dying := connectV5(t, tb.Addr, cp)
	dying.kill()
	mqtttest.Eventually(t, waitTimeout, "the retained will refused", func() bool {
		return tb.Stats().RefusedBy[core.LimitRetainedMessages] == 2
	})
	watch.pubRetained("rw/marker", "") // clears nothing, delivered
	got := watch.until("rw/marker")
	if len(got) != 1 || got[0].Topic != "rw/inline" || string(got[0].Payload) != "plain" {
		t.Errorf("watcher got %v, want only the inline message without retain (neither the refused inline nor the will)", got)
	}
	fresh := connectV5(t, tb.Addr, v5Connect("rw-fresh"))
	fresh.sub("rw/#", 1)
	fresh.pub("rw/end", 0, "")
	if got := fresh.until("rw/end"); len(got) != 0 {
		t.Errorf("a new subscriber to rw/# got the retained %v, want none", got)
	}
}

// State restored from a store over the limits is kept, with one warning
// each, but cannot grow: the resumed session keeps its 3 subscriptions
// with room for 2, may re-subscribe to them but add none until it is under
// the limit; the 3 restored retained messages with room for 2 are all
// delivered, a new topic is refused, a replacement no larger is accepted,
// and clearing makes room.
func TestE2ERestoredOverLimits(t *testing.T) {
	t.Parallel()
	msg := func(topic, payload string) core.StoredMessage {
		return core.StoredMessage{Message: core.Message{Topic: topic, Payload: []byte(payload), QoS: 1}}
	}
	store := &storeHook{
		retained: []core.StoredMessage{msg("old/1", "one"), msg("old/2", "two"), msg("old/3", "three")},
		sessions: []core.StoredSession{{
			ClientID: "over",
			Expiry:   300,
			Subscriptions: []core.StoredSubscription{
				{Filter: "f/1", QoS: 1}, {Filter: "f/2", QoS: 1}, {Filter: "$share/g/f/3", QoS: 1},
			},
		}},
	}
	var log logtest.Buffer
	tb := hookBroker(t, hkOpts{allowAnonymous: true, hooks: []hookPrio{{store, 0}},
		opts: core.Options{MaxSubscriptions: 2, MaxRetainedMessages: 2, Logger: log.Logger(slog.LevelDebug)}})

	out := log.String()
	if n := logLines(out, "WARN", restoredSubsMsg, "sessions=1", "largest=over", "subscriptions=3", "max_subscriptions=2"); n != 1 {
		t.Errorf("%d warnings of restored sessions over max_subscriptions, want 1; log:\n%s", n, out)
	}
	if n := logLines(out, "WARN", restoredRetainMsg, "retained=3", "max_retained_messages=2"); n != 1 {
		t.Errorf("%d warnings of restored retained messages over the limit, want 1; log:\n%s", n, out)
	}

	cp := v5Connect("over")
	cp.CleanStart = false
	cp.Properties.SessionExpiryInterval = u32(300)
	c := connectV5(t, tb.Addr, cp)
	if n := sessionSubscriptions(t, tb, "over"); n != 3 {
		t.Fatalf("restored session holds %d subscriptions, want its 3 kept", n)
	}
	if got := subscribeEach(t, c, "f/1", "f/4"); string(got) != string([]byte{grantedQoS1, quotaExceeded}) {
		t.Errorf("over the limit, a held filter and a new one: %x, want granted, 0x97", got)
	}
	unsubscribeV5(t, c, "f/1")
	if got := subscribeEach(t, c, "f/4"); got[0] != quotaExceeded {
		t.Errorf("at the limit again (2 of 2): SUBACK 0x%02x for a new filter, want 0x97", got[0])
	}
	unsubscribeV5(t, c, "f/2")
	if got := subscribeEach(t, c, "f/4"); got[0] != grantedQoS1 {
		t.Errorf("under the limit (1 of 2): SUBACK 0x%02x for a new filter, want granted", got[0])
	}

	fresh := connectV5(t, tb.Addr, v5Connect("fresh"))
	fresh.sub("old/#", 1)
	fresh.pub("old/marker", 0, "")
	if got := fresh.until("old/marker"); len(got) != 3 {
		t.Errorf("the restored retained messages delivered: %v, want all 3", got)
	}
	if code := publishRetained(t, c, "old/4", 1, "4"); code != quotaExceeded {
		t.Errorf("a new retained topic over the restored count: reason 0x%02x, want 0x97", code)
	}
	if code := publishRetained(t, c, "old/3", 1, "33333"); code != 0 {
		t.Errorf("replacing a restored retained message with one no larger: reason 0x%02x, want success", code)
	}
	if code := publishRetained(t, c, "old/1", 1, ""); code != 0 {
		t.Errorf("clearing a restored retained message: reason 0x%02x, want success", code)
	}
	if code := publishRetained(t, c, "old/2", 1, ""); code != 0 {
		t.Errorf("clearing a restored retained message: reason 0x%02x, want success", code)
	}
	if code := publishRetained(t, c, "old/4", 1, "4"); code != 0 {
		t.Errorf("a new retained topic once under the count: reason 0x%02x, want success", code)
	}
}
