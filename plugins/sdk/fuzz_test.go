package sdk

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/vanemq/vanemq/plugins/proto/pluginv1"
)

// FuzzBatchDecoder decodes arbitrary bytes as an event batch. It must
// never panic, and a batch that proto.Unmarshal accepts must decode to
// as many events, with a client and a message where the batch has them,
// and the same dropped count.
//
//	make fuzz    # FUZZTIME each target; the Makefile says why not -fuzztime
//
// The inputs in testdata/fuzz/FuzzBatchDecoder are batches that make the
// decoder do the most for their size (hostileBatches), and inputs that Go
// took longest to minimize: a run of one takes 0.3 µs to 2 ms, but
// minimizing an n-byte input makes up to n²/2 tries, and a try here costs
// ~0.1 ms of coverage bookkeeping (the binary has gRPC's code, instrumented).
func FuzzBatchDecoder(f *testing.F) {
	fmtOne, expiry := uint32(1), uint32(60)
	seeds := []*pluginv1.EventBatch{
		{Events: []*pluginv1.ObservedEvent{{Event: pluginv1.Event_EVENT_PUBLISHED,
			Client: &pluginv1.Client{Id: "c1", Username: "u", CertDnsNames: []string{"a"}},
			Message: &pluginv1.Message{Topic: "t", Payload: make([]byte, 200), Qos: 1, Origin: "c1",
				Properties: &pluginv1.Properties{PayloadFormat: &fmtOne, MessageExpiry: &expiry, ContentType: "x",
					CorrelationData: []byte{1}, UserProperties: []*pluginv1.UserProperty{{Key: "k", Value: "v"}}}},
			UnixNanos: 7}}, Dropped: 3},
		{Events: []*pluginv1.ObservedEvent{{Event: pluginv1.Event_EVENT_DROPPED, ClientId: "s", Reason: "queue full",
			Message: &pluginv1.Message{Topic: "a/b"}}, {Event: pluginv1.Event_EVENT_SUBSCRIBED, Filter: "a/#", Qos: 2}}},
	}
	for _, s := range seeds {
		raw, err := proto.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var got []*Event
		var d batchDecoder
		dropped, err := d.decode(raw, func(e *Event) { got = append(got, e) })
		var want pluginv1.EventBatch
		if proto.Unmarshal(raw, &want) != nil {
			return // not a batch (or a string that is not UTF-8, which the broker repairs)
		}
		if err != nil {
			t.Fatalf("proto.Unmarshal accepts the batch, the decoder does not: %v", err)
		}
		if len(got) != len(want.Events) || dropped != want.Dropped {
			t.Fatalf("%d events, dropped %d; want %d, %d", len(got), dropped, len(want.Events), want.Dropped)
		}
		for i, w := range want.Events {
			if (got[i].Client != nil) != (w.Client != nil) || (got[i].Msg != nil) != (w.Message != nil) {
				t.Fatalf("event %d: client %v message %v; want %v %v", i, got[i].Client, got[i].Msg, w.Client, w.Message)
			}
			if got[i].Kind != EventKind(w.Event) || got[i].ClientID != w.ClientId || got[i].Reason != w.Reason {
				t.Fatalf("event %d: %+v, want %v", i, got[i], w)
			}
		}
	})
}
