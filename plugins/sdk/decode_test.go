package sdk

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/vanemq/vanemq/plugins/proto/pluginv1"
)

// The batch decoder reads what proto.Marshal writes, and gives the
// events the generated types and clientOf/messageOf would.
func TestBatchDecoderMatchesProto(t *testing.T) {
	fmtZero, expiry := uint32(0), uint32(60)
	client := &pluginv1.Client{Id: "c1", Username: "alice", Remote: "127.0.0.1:4000", Listener: "tcp", ProtocolVersion: 5, CleanStart: true}
	tlsClient := &pluginv1.Client{Id: "c2", ProtocolVersion: 4, CertCommonName: "dev", CertDnsNames: []string{"a.example", "b.example"}}
	full := &pluginv1.Message{Topic: "a/b", Payload: []byte("x"), Qos: 2, Retain: true, Origin: "c1",
		Properties: &pluginv1.Properties{PayloadFormat: &fmtZero, MessageExpiry: &expiry, ContentType: "text/plain",
			ResponseTopic: "r/1", CorrelationData: []byte{0, 1}, UserProperties: []*pluginv1.UserProperty{{Key: "k", Value: "v"}, {Key: "k"}}}}
	events := []*pluginv1.ObservedEvent{
		{Event: pluginv1.Event_EVENT_PUBLISHED, Client: client, Message: &pluginv1.Message{Topic: "t", Payload: []byte("21.5"), Qos: 1, Origin: "c1"}, UnixNanos: 42},
		{Event: pluginv1.Event_EVENT_PUBLISHED, Client: client, Message: full, UnixNanos: 43},
		{Event: pluginv1.Event_EVENT_PUBLISHED, Client: tlsClient, Message: &pluginv1.Message{Topic: "big", Payload: bytes.Repeat([]byte{9}, 70000)}},
		{Event: pluginv1.Event_EVENT_DROPPED, ClientId: "sub", Message: &pluginv1.Message{Topic: "t"}, Reason: "queue full"},
		{Event: pluginv1.Event_EVENT_RETAINED, Message: &pluginv1.Message{Topic: "r", Properties: &pluginv1.Properties{}}},
		{Event: pluginv1.Event_EVENT_SUBSCRIBED, Client: client, Filter: "a/#", Qos: 2},
		{Event: pluginv1.Event_EVENT_DISCONNECTED, Client: client, Code: 0x8E, Reason: "session taken over"},
		{Event: pluginv1.Event_EVENT_STARTED, UnixNanos: 7},
		{Event: pluginv1.Event_EVENT_SYS_TICK, UnixNanos: 8, Stats: &pluginv1.Stats{ClientsConnected: 3, Sessions: 4, Connections: 5,
			MessagesIn: 1 << 40, MessagesOut: 7, BytesIn: 8, BytesOut: 9, Dropped: 10, Subscriptions: 11, Retained: 12, RetainedBytes: 13,
			ProtocolErrors: 14, HookEventsLost: 15, StoreFailures: 16,
			DroppedBy: map[string]int64{"expired": 2, "too_large": 0}, RefusedBy: map[string]int64{"max_subscriptions": 1},
			MessagesInByQos: []int64{1, 2, 3}, MessagesOutByQos: []int64{4, 5, 6}, PayloadBytesInByQos: []int64{7, 8, 9},
			PayloadBytesOutByQos: []int64{10, 11, 300}}},
		{Event: pluginv1.Event_EVENT_STOPPED, UnixNanos: 9},
	}
	raw, err := proto.Marshal(&pluginv1.EventBatch{Events: events, Dropped: 5})
	if err != nil {
		t.Fatal(err)
	}
	// A field from a later version of the contract is skipped.
	raw = protowire.AppendTag(raw, 99, protowire.BytesType)
	raw = protowire.AppendString(raw, "future")

	var got []*Event
	var d batchDecoder
	dropped, err := d.decode(raw, func(e *Event) { got = append(got, e) })
	if err != nil {
		t.Fatal(err)
	}
	if dropped != 5 {
		t.Errorf("dropped %d, want 5", dropped)
	}
	if len(got) != len(events) {
		t.Fatalf("%d events, want %d", len(got), len(events))
	}
	for i, e := range events {
		want := &Event{Kind: EventKind(e.GetEvent()), Filter: e.GetFilter(), QoS: byte(e.GetQos()), Reason: e.GetReason(),
			Code: ReasonCode(e.GetCode()), ClientID: e.GetClientId(), Time: time.Unix(0, e.GetUnixNanos())}
		if e.GetClient() != nil {
			want.Client = clientOf(e.GetClient())
		}
		if e.GetMessage() != nil {
			want.Msg = messageOf(e.GetMessage())
		}
		if st := e.GetStats(); st != nil {
			want.Stats = &Stats{ClientsConnected: st.GetClientsConnected(), Sessions: st.GetSessions(), Connections: st.GetConnections(),
				MessagesIn: st.GetMessagesIn(), MessagesOut: st.GetMessagesOut(), BytesIn: st.GetBytesIn(), BytesOut: st.GetBytesOut(),
				Dropped: st.GetDropped(), Subscriptions: st.GetSubscriptions(), Retained: st.GetRetained(), RetainedBytes: st.GetRetainedBytes(),
				ProtocolErrors: st.GetProtocolErrors(), HookEventsLost: st.GetHookEventsLost(), StoreFailures: st.GetStoreFailures(),
				DroppedBy: st.GetDroppedBy(), RefusedBy: st.GetRefusedBy()}
			copy(want.Stats.MessagesInByQoS[:], st.GetMessagesInByQos())
			copy(want.Stats.MessagesOutByQoS[:], st.GetMessagesOutByQos())
			copy(want.Stats.PayloadBytesInByQoS[:], st.GetPayloadBytesInByQos())
			copy(want.Stats.PayloadBytesOutByQoS[:], st.GetPayloadBytesOutByQos())
		}
		if !reflect.DeepEqual(got[i], want) {
			t.Errorf("event %d:\n got %+v %+v %+v %+v\nwant %+v %+v %+v %+v", i, got[i], got[i].Client, got[i].Msg, got[i].Stats,
				want, want.Client, want.Msg, want.Stats)
		}
	}
	if got[0].Client != got[1].Client {
		t.Error("the same client decoded twice, not shared")
	}
}

// Events kept after their batch are unchanged when the buffer the batch
// was read into is reused (gRPC's is), and a batch's events are
// allocated in blocks of eventBlock, all of them delivered.
func TestBatchDecoderEventsOutliveBuffer(t *testing.T) {
	var batch pluginv1.EventBatch
	const n = eventBlock*2 + 3
	for i := range n {
		batch.Events = append(batch.Events, &pluginv1.ObservedEvent{Event: pluginv1.Event_EVENT_PUBLISHED,
			Client:  &pluginv1.Client{Id: "c1"},
			Message: &pluginv1.Message{Topic: fmt.Sprintf("t/%d", i), Payload: payloadOf(i), Origin: "c1"},
			Reason:  "r"})
	}
	raw, err := proto.Marshal(&batch)
	if err != nil {
		t.Fatal(err)
	}
	var d batchDecoder
	var kept []*Event
	if _, err := d.decode(raw, func(e *Event) { kept = append(kept, e) }); err != nil {
		t.Fatal(err)
	}
	for i := range raw {
		raw[i] = 0xEE
	}
	if len(kept) != n {
		t.Fatalf("%d events, want %d", len(kept), n)
	}
	check := func(when string) {
		t.Helper()
		for i, e := range kept {
			if e.Msg.Topic != fmt.Sprintf("t/%d", i) || !bytes.Equal(e.Msg.Payload, payloadOf(i)) || e.Reason != "r" || e.Msg.Origin != "c1" {
				t.Fatalf("event %d %s: %q %q %q %q", i, when, e.Msg.Topic, e.Msg.Payload, e.Reason, e.Msg.Origin)
			}
		}
	}
	check("after the buffer was reused")
	// A payload is its own slice, short (one-byte length) or long:
	// appending to it writes over nothing else.
	for i := range 2 {
		_ = append(kept[i].Msg.Payload, "overflow"...)
	}
	check("after appending to payloads")
}

// payloadOf is the payload of event i: short for even i, over 127 bytes
// (a two-byte length) for odd i.
func payloadOf(i int) []byte {
	p := fmt.Sprintf("p%d", i)
	if i%2 == 1 {
		p += strings.Repeat(".", 200)
	}
	return []byte(p)
}

// Truncated or malformed input is an error, never a panic.
func TestBatchDecoderMalformed(t *testing.T) {
	good, err := proto.Marshal(&pluginv1.EventBatch{Events: []*pluginv1.ObservedEvent{{Event: pluginv1.Event_EVENT_PUBLISHED,
		Client: &pluginv1.Client{Id: "c"}, Message: &pluginv1.Message{Topic: "t", Payload: []byte("p"),
			Properties: &pluginv1.Properties{UserProperties: []*pluginv1.UserProperty{{Key: "k", Value: "v"}}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	for n := 1; n < len(good); n++ {
		var d batchDecoder
		_, err := d.decode(good[:n], func(*Event) {})
		// A cut may fall between fields of the batch only at its end.
		if err != nil && !errors.Is(err, errWire) {
			t.Fatalf("cut at %d: %v is not errWire", n, err)
		}
		if err == nil {
			t.Fatalf("cut at %d of %d: decoded without error", n, len(good))
		}
	}
	for _, b := range [][]byte{{0xFF}, {0x0A, 0x05, 0x01}, {0x0A, 0x02, 0x1A, 0x7F}} {
		var d batchDecoder
		if _, err := d.decode(b, func(*Event) {}); err == nil {
			t.Errorf("%x: decoded without error", b)
		}
	}
}

func BenchmarkBatchDecoder(b *testing.B) {
	var batch pluginv1.EventBatch
	for i := range 512 {
		batch.Events = append(batch.Events, &pluginv1.ObservedEvent{Event: pluginv1.Event_EVENT_PUBLISHED,
			Client:  &pluginv1.Client{Id: "sensor-" + string(rune('a'+i%4)), Username: "u", Remote: "127.0.0.1:50000", Listener: "tcp", ProtocolVersion: 5},
			Message: &pluginv1.Message{Topic: "sensors/1/temp", Payload: make([]byte, 64)}, UnixNanos: 1})
	}
	raw, err := proto.Marshal(&batch)
	if err != nil {
		b.Fatal(err)
	}
	var d batchDecoder
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, err := d.decode(raw, func(*Event) {}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*512), "ns/event")
}
