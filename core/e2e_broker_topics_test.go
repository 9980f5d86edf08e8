package core_test

import (
	"context"
	"strings"
	"testing"

	"github.com/eclipse/paho.golang/paho"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/packets"
)

// sysAllowHook allows the client "sys-writer" to publish under $SYS, and
// has no opinion on anything else.
type sysAllowHook struct{}

var _ core.AuthorizePublishHook = sysAllowHook{}

func (sysAllowHook) ID() string { return "test.sys_allow" }

func (sysAllowHook) AuthorizePublish(_ context.Context, cl *core.ClientInfo, m *core.Message) core.Verdict {
	if cl.ID == "sys-writer" && strings.HasPrefix(m.Topic, "$SYS/") {
		return core.Allow
	}
	return core.Next
}

// $SYS belongs to the broker: a client's publish there, retained or not,
// by MQTT 5 (PUBACK 0x87) or 3.1.1 (not routed), and a will there, are
// refused unless an AuthorizePublish hook explicitly allows them, so no
// client can forge the broker's counters or a bridge's state topic
// [MQTT-4.7.2-1]. Other $ topics, and topics that only start with "$SYS",
// are the clients' (issue 17 §4).
func TestE2EBrokerTopicsRefused(t *testing.T) {
	t.Parallel()
	rec := newRecorder(core.EventDisconnected)
	tb := hookBroker(t, withHooks(sysAllowHook{}, rec))
	obs := connectV5(t, tb.Addr, v5Connect("sys-observer"))
	obs.sub("$SYS/#", 1)
	obs.sub("$app/#", 1)
	obs.sub("$SYSX/#", 1)

	v5 := connectV5(t, tb.Addr, v5Connect("sys-forger5"))
	for _, topic := range []string{"$SYS/broker/version", "$SYS/broker/connection/remote/state", "$SYS"} {
		for _, retain := range []bool{false, true} {
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			r, err := v5.Cli.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Retain: retain, Payload: []byte("forged")})
			cancel()
			if err == nil && (r == nil || r.ReasonCode != byte(packets.NotAuthorized)) {
				t.Errorf("v5 publish to %q (retain %v): %+v, want PUBACK 0x87", topic, retain, r)
			}
		}
	}
	v3 := connectV3(t, tb.Addr, "sys-forger3", nil)
	v3.pub("$SYS/broker/uptime", 1, true, "forged")

	cp := v5Connect("sys-will")
	cp.WillMessage = &paho.WillMessage{Topic: "$SYS/broker/connection/x/state", QoS: 1, Payload: []byte("0")}
	w := connectV5(t, tb.Addr, cp)
	w.kill()
	rec.expectKind(t, "disconnected", "sys-will")

	// What clients may use: other $ topics, a look-alike, and $SYS for a
	// client a hook allows.
	v5.pub("$app/x", 1, "app")
	v5.pub("$SYSX/x", 1, "lookalike")
	writer := connectV5(t, tb.Addr, v5Connect("sys-writer"))
	writer.pub("$SYS/custom/allowed", 1, "allowed")
	got := obs.until("$SYS/custom/allowed")
	var topics []string
	for _, m := range got {
		topics = append(topics, m.Topic)
		if string(m.Payload) == "forged" || m.Topic == "$SYS/broker/connection/x/state" {
			t.Errorf("a client's publish to %s reached a subscriber", m.Topic)
		}
	}
	if strings.Join(topics, ",") != "$app/x,$SYSX/x" {
		t.Errorf("delivered %v before the allowed $SYS publish, want [$app/x $SYSX/x]", topics)
	}
	// Nothing forged was retained either.
	late := connectV5(t, tb.Addr, v5Connect("sys-late"))
	late.sub("$SYS/#", 1)
	writer.pub("$SYS/custom/end", 1, "end")
	for _, m := range late.until("$SYS/custom/end") {
		if string(m.Payload) == "forged" {
			t.Errorf("a forged retained message was kept on %s", m.Topic)
		}
	}
}

// Without any hook, too, $SYS is refused to clients: the check is the
// broker's, not a hook's [MQTT-4.7.2-1].
func TestE2EBrokerTopicsRefusedWithoutHooks(t *testing.T) {
	t.Parallel()
	tb := hookBroker(t, withHooks())
	obs := connectV5(t, tb.Addr, v5Connect("nohook-observer"))
	obs.sub("$SYS/#", 1)
	obs.sub("marker", 1)
	c := connectV5(t, tb.Addr, v5Connect("nohook-forger"))
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	r, err := c.Cli.Publish(ctx, &paho.Publish{Topic: "$SYS/broker/version", QoS: 1, Payload: []byte("forged")})
	if err == nil && (r == nil || r.ReasonCode != byte(packets.NotAuthorized)) {
		t.Errorf("publish to $SYS/broker/version: %+v, want PUBACK 0x87", r)
	}
	c.pub("marker", 1, "end")
	if got := obs.until("marker"); len(got) > 0 {
		t.Errorf("a client's $SYS publish was routed: %v", got)
	}
}
