package plugins

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/packets"
	"github.com/vanemq/vanemq/plugins/proto/pluginv1"
)

// appendEvent writes what proto.Marshal would: a batch of encoded events
// decodes (with the generated code a plugin uses) into the ObservedEvents
// that clientProto and messageProto build.
func TestAppendEventDecodes(t *testing.T) {
	withProps := &core.Message{Topic: "a/b", Payload: []byte("x"), QoS: 2, Retain: true, Origin: "pub"}
	withProps.Properties.PayloadFormat = 0
	withProps.Properties.Set(packets.PropPayloadFormat) // present though zero
	withProps.Properties.MessageExpiry = 300
	withProps.Properties.Set(packets.PropMessageExpiry)
	withProps.Properties.ContentType = "text/plain"
	withProps.Properties.Set(packets.PropContentType)
	withProps.Properties.ResponseTopic = "r/1"
	withProps.Properties.Set(packets.PropResponseTopic)
	withProps.Properties.CorrelationData = []byte{0, 1, 2}
	withProps.Properties.Set(packets.PropCorrelationData)
	withProps.Properties.UserProperties = []packets.UserProperty{{Key: "k", Value: "v"}, {Key: "k", Value: ""}}
	withProps.Properties.Set(packets.PropUserProperty)

	cert := &x509.Certificate{Subject: pkix.Name{CommonName: "device-7"}, DNSNames: []string{"d7.example", "d7.local"}}
	tlsClient := &core.ClientInfo{ID: "c2", Remote: "[::1]:5000", Listener: "tls", ProtocolVersion: 4,
		TLS: &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}}}
	client := &core.ClientInfo{ID: "c1", Username: "alice", Remote: "127.0.0.1:4000", Listener: "tcp", ProtocolVersion: 5, CleanStart: true}

	stats := core.Stats{ClientsConnected: 1, Sessions: 2, Connections: 3, MessagesIn: 1 << 40, MessagesOut: 5, BytesIn: 6,
		BytesOut: 7, Dropped: 8, Subscriptions: 9, Retained: 10, RetainedBytes: 11, ProtocolErrors: 12, HookEventsLost: 13,
		StoreFailures: 14, MessagesInByQoS: [3]int64{1, 2, 300}, MessagesOutByQoS: [3]int64{4, 5, 6},
		PayloadBytesInByQoS: [3]int64{7, 8, 9}, PayloadBytesOutByQoS: [3]int64{10, 11, 12}}
	stats.DroppedBy[core.DropExpired] = 15
	stats.RefusedBy[core.LimitRetainedBytes] = 16

	cases := []struct {
		name string
		in   observed
		want *pluginv1.ObservedEvent
	}{
		{"published, no properties",
			observed{event: pluginv1.Event_EVENT_PUBLISHED, client: client, msg: &core.Message{Topic: "t", Payload: []byte("21.5"), QoS: 1}, nanos: 42},
			&pluginv1.ObservedEvent{Event: pluginv1.Event_EVENT_PUBLISHED, Client: clientProto(client),
				Message: messageProto(&core.Message{Topic: "t", Payload: []byte("21.5"), QoS: 1}), UnixNanos: 42}},
		{"every property, tls client",
			observed{event: pluginv1.Event_EVENT_PUBLISHED, client: tlsClient, msg: withProps, nanos: 1},
			&pluginv1.ObservedEvent{Event: pluginv1.Event_EVENT_PUBLISHED, Client: clientProto(tlsClient), Message: messageProto(withProps), UnixNanos: 1}},
		{"payloads whose lengths take two and three bytes",
			observed{event: pluginv1.Event_EVENT_DROPPED, clientID: "sub", msg: &core.Message{Topic: "big", Payload: bytes.Repeat([]byte{7}, 20000)}, reason: "queue full"},
			&pluginv1.ObservedEvent{Event: pluginv1.Event_EVENT_DROPPED, ClientId: "sub", Reason: "queue full",
				Message: messageProto(&core.Message{Topic: "big", Payload: bytes.Repeat([]byte{7}, 20000)})}},
		{"subscription",
			observed{event: pluginv1.Event_EVENT_SUBSCRIBED, client: client, filter: "a/#", qos: 2},
			&pluginv1.ObservedEvent{Event: pluginv1.Event_EVENT_SUBSCRIBED, Client: clientProto(client), Filter: "a/#", Qos: 2}},
		{"disconnect with a code",
			observed{event: pluginv1.Event_EVENT_DISCONNECTED, client: client, code: 0x8E, reason: "session taken over"},
			&pluginv1.ObservedEvent{Event: pluginv1.Event_EVENT_DISCONNECTED, Client: clientProto(client), Code: 0x8E, Reason: "session taken over"}},
		{"a reason that is not UTF-8 is repaired, not a batch the plugin cannot read",
			observed{event: pluginv1.Event_EVENT_DISCONNECTED, reason: "read: \xff\xfe"},
			&pluginv1.ObservedEvent{Event: pluginv1.Event_EVENT_DISCONNECTED, Reason: "read: \uFFFD"}},
		{"started: no client, no message",
			observed{event: pluginv1.Event_EVENT_STARTED, nanos: 5},
			&pluginv1.ObservedEvent{Event: pluginv1.Event_EVENT_STARTED, UnixNanos: 5}},
		{"sys_tick: every counter",
			observed{event: pluginv1.Event_EVENT_SYS_TICK, stats: &stats, nanos: 6},
			&pluginv1.ObservedEvent{Event: pluginv1.Event_EVENT_SYS_TICK, Stats: statsProto(&stats), UnixNanos: 6}},
		{"sys_tick: all zero",
			observed{event: pluginv1.Event_EVENT_SYS_TICK, stats: &core.Stats{}},
			&pluginv1.ObservedEvent{Event: pluginv1.Event_EVENT_SYS_TICK, Stats: statsProto(&core.Stats{})}},
		{"retained cleared: empty payload",
			observed{event: pluginv1.Event_EVENT_RETAINED, msg: &core.Message{Topic: "r"}},
			&pluginv1.ObservedEvent{Event: pluginv1.Event_EVENT_RETAINED, Message: &pluginv1.Message{Topic: "r"}}},
	}
	var all []byte
	var want pluginv1.EventBatch
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := appendEvent(nil, &tc.in, nil)
			var got pluginv1.EventBatch
			if err := proto.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			if len(got.Events) != 1 || !proto.Equal(got.Events[0], tc.want) {
				t.Fatalf("decoded %v\nwant %v", got.Events, tc.want)
			}
		})
		all = appendEvent(all, &tc.in, nil)
		want.Events = append(want.Events, tc.want)
	}
	// A whole batch, with the dropped count appended as the queue does.
	all = appendDropped(all, 9)
	want.Dropped = 9
	var got pluginv1.EventBatch
	if err := proto.Unmarshal(all, &got); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(&got, &want) {
		t.Fatalf("batch decoded differently:\n%v\nwant\n%v", &got, &want)
	}
}

// statsProto is what appendStats writes, as the generated code builds it.
func statsProto(st *core.Stats) *pluginv1.Stats {
	out := &pluginv1.Stats{ClientsConnected: st.ClientsConnected, Sessions: st.Sessions, Connections: st.Connections,
		MessagesIn: st.MessagesIn, MessagesOut: st.MessagesOut, BytesIn: st.BytesIn, BytesOut: st.BytesOut, Dropped: st.Dropped,
		Subscriptions: st.Subscriptions, Retained: st.Retained, RetainedBytes: st.RetainedBytes, ProtocolErrors: st.ProtocolErrors,
		HookEventsLost: st.HookEventsLost, StoreFailures: st.StoreFailures,
		DroppedBy: map[string]int64{}, RefusedBy: map[string]int64{},
		MessagesInByQos: st.MessagesInByQoS[:], MessagesOutByQos: st.MessagesOutByQoS[:],
		PayloadBytesInByQos: st.PayloadBytesInByQoS[:], PayloadBytesOutByQos: st.PayloadBytesOutByQoS[:]}
	for _, r := range core.DropReasons() {
		out.DroppedBy[r.String()] = st.DroppedBy[r]
	}
	for _, l := range core.Limits() {
		out.RefusedBy[l.String()] = st.RefusedBy[l]
	}
	return out
}

func BenchmarkAppendEvent(b *testing.B) {
	cl := &core.ClientInfo{ID: "sensor-0001", Username: "u", Remote: "127.0.0.1:50000", Listener: "tcp", ProtocolVersion: 5}
	m := &core.Message{Topic: "sensors/1/temp", Payload: make([]byte, 64), Origin: "sensor-0001"}
	e := observed{event: pluginv1.Event_EVENT_PUBLISHED, client: cl, msg: m, nanos: 1}
	buf := make([]byte, 0, 64<<10)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendEvent(buf[:0], &e, nil)
	}
}
