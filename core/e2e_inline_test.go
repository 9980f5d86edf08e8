package core_test

// End-to-end tests of the inline client: Server.Publish and Server.Subscribe
// exchanging messages with network clients.

import (
	"slices"
	"testing"

	"github.com/eclipse/paho.golang/paho"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/packets"
)

// inlineSub subscribes an inline handler that queues what it receives; the
// subscription ends with the test.
func inlineSub(t *testing.T, tb *testBroker, filter string) (<-chan core.InlineMessage, func()) {
	t.Helper()
	ch := make(chan core.InlineMessage, 256)
	unsub, err := tb.Subscribe(filter, func(m core.InlineMessage) { ch <- m })
	if err != nil {
		t.Fatalf("inline Subscribe(%q): %v", filter, err)
	}
	t.Cleanup(unsub)
	return ch, unsub
}

// A network client's message reaches an inline subscription with its topic,
// payload, QoS and properties; the handler has run by the time the PUBACK
// arrives.
func TestE2EInlineSubscribeReceivesClientPublish(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, core.Options{})
	got, _ := inlineSub(t, tb, "inl/#")
	c := connectV5(t, tb.Addr, v5Connect("inl-pub"))

	for _, qos := range []byte{0, 1, 2} {
		c.publish(&paho.Publish{Topic: "inl/a", QoS: qos, Payload: []byte{'p', '0' + qos},
			Properties: &paho.PublishProperties{ContentType: "text/plain", User: paho.UserProperties{{Key: "k", Value: "v"}}}})
		m := waitFor(t, got, waitTimeout, "the inline handler")
		if m.Topic != "inl/a" || string(m.Payload) != string([]byte{'p', '0' + qos}) {
			t.Fatalf("inline handler got %s %q", m.Topic, m.Payload)
		}
		if m.QoS != qos {
			t.Errorf("inline handler got QoS %d, want %d (inline subscriptions are QoS 2)", m.QoS, qos)
		}
		if m.Retain {
			t.Errorf("RETAIN set on a non-retained message")
		}
		if m.Properties.ContentType != "text/plain" {
			t.Errorf("Content Type %q, want text/plain", m.Properties.ContentType)
		}
		if want := []packets.UserProperty{{Key: "k", Value: "v"}}; !slices.Equal(m.Properties.UserProperties, want) {
			t.Errorf("User Properties %v, want %v", m.Properties.UserProperties, want)
		}
	}
}

// Server.Publish reaches network subscribers at min(message QoS, granted
// QoS), with its properties; a retained inline publish is retained.
func TestE2EInlinePublishToClient(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, core.Options{})
	c := connectV5(t, tb.Addr, v5Connect("inl-sub"))
	c.sub("inl/out", 1)

	for _, qos := range []byte{0, 1, 2} {
		var props packets.Properties
		props.ContentType = "application/json"
		props.Set(packets.PropContentType)
		props.UserProperties = []packets.UserProperty{{Key: "from", Value: "inline"}}
		if err := tb.Publish(core.InlineMessage{Topic: "inl/out", Payload: []byte(`{}`), QoS: qos, Properties: props}); err != nil {
			t.Fatalf("inline Publish: %v", err)
		}
		m := c.next()
		if m.Topic != "inl/out" || string(m.Payload) != `{}` {
			t.Fatalf("got %v", m)
		}
		if want := min(qos, 1); m.QoS != want {
			t.Errorf("delivered at QoS %d, want %d [MQTT-3.8.4-8]", m.QoS, want)
		}
		if m.Props.ContentType != "application/json" || m.Props.User.Get("from") != "inline" {
			t.Errorf("properties %+v, want the inline message's content type and user property", m.Props)
		}
	}

	t.Run("retained inline publish is delivered to a later subscriber", func(t *testing.T) {
		if err := tb.Publish(core.InlineMessage{Topic: "inl/kept", Payload: []byte("kept"), QoS: 1, Retain: true}); err != nil {
			t.Fatalf("inline Publish: %v", err)
		}
		late := connectV5(t, tb.Addr, v5Connect("inl-late")).on(t)
		late.sub("inl/kept", 1)
		if m := late.next(); string(m.Payload) != "kept" || !m.Retain {
			t.Errorf("got %v, want the retained inline message", m)
		}
	})

	t.Run("invalid messages are refused", func(t *testing.T) {
		for _, m := range []core.InlineMessage{
			{Topic: "inl/+", Payload: []byte("x")}, // wildcard in a topic name [MQTT-3.3.2-2]
			{Topic: "", Payload: []byte("x")},      // empty topic [MQTT-4.7.3-1]
			{Topic: "inl/q3", QoS: 3},              // no QoS 3
		} {
			if err := tb.Publish(m); err == nil {
				t.Errorf("Publish(%q, QoS %d) accepted", m.Topic, m.QoS)
			}
		}
	})
}

// The function Subscribe returns ends the subscription: an inline handler
// runs on the publishing goroutine, so once a client's QoS 1 PUBLISH is
// acknowledged, a still-subscribed handler has seen it and an unsubscribed
// one never will.
func TestE2EInlineUnsubscribe(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, core.Options{})
	gone, unsub := inlineSub(t, tb, "inl/u")
	kept, _ := inlineSub(t, tb, "inl/u")
	c := connectV5(t, tb.Addr, v5Connect("inl-u"))

	c.pub("inl/u", 1, "before")
	for _, ch := range []<-chan core.InlineMessage{gone, kept} {
		if m := waitFor(t, ch, waitTimeout, "the inline handler"); string(m.Payload) != "before" {
			t.Fatalf("got %q, want before", m.Payload)
		}
	}
	unsub()
	unsub() // idempotent
	c.pub("inl/u", 1, "after")
	if m := waitFor(t, kept, waitTimeout, "the remaining inline handler"); string(m.Payload) != "after" {
		t.Fatalf("got %q, want after", m.Payload)
	}
	select {
	case m := <-gone:
		t.Errorf("unsubscribed handler received %q", m.Payload)
	default:
	}
	if err := tb.Publish(core.InlineMessage{Topic: "inl/u", Payload: []byte("inline")}); err != nil {
		t.Fatalf("inline Publish: %v", err)
	}
	select {
	case m := <-gone:
		t.Errorf("unsubscribed handler received %q", m.Payload)
	default:
	}
}

// Retained messages matching an inline subscription are delivered, with
// RETAIN set, before Subscribe returns.
func TestE2EInlineRetainedOnSubscribe(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, core.Options{})
	c := connectV5(t, tb.Addr, v5Connect("inl-r"))
	c.pubRetained("inl/r/a", "a")
	c.pubRetained("inl/r/b", "b")
	c.pub("inl/r/c", 1, "not retained")

	got, _ := inlineSub(t, tb, "inl/r/+")
	var payloads []string
	for len(got) > 0 {
		m := <-got
		if !m.Retain {
			t.Errorf("retained message %s delivered without RETAIN", m.Topic)
		}
		payloads = append(payloads, string(m.Payload))
	}
	slices.Sort(payloads)
	if !slices.Equal(payloads, []string{"a", "b"}) {
		t.Errorf("inline subscription got %v before Subscribe returned, want the retained a and b", payloads)
	}

	t.Run("shared inline subscription gets no retained messages (4.8.2)", func(t *testing.T) {
		got, _ := inlineSub(t, tb, "$share/g/inl/r/+")
		if len(got) != 0 {
			t.Errorf("shared inline subscription got %d retained message(s)", len(got))
		}
	})
}
