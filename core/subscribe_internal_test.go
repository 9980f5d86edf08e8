package core

import (
	"bufio"
	"bytes"
	"context"
	"strings"
	"testing"
	"unsafe"

	"github.com/valyala/bytebufferpool"

	"github.com/vanemq/vanemq/core/packets"
)

// A subscription keeps copies of its filter and share group, not views
// into the SUBSCRIBE it came in: one that did would keep the packet's whole
// body (every filter, every user property) alive as long as it lasts, so
// that a session's subscriptions could hold far more memory than
// max_subscriptions filters. The SUBSCRIBE here is decoded as a connection
// decodes one larger than its read buffer, into a body of its own that the
// packet's strings point into.
func TestSubscriptionCopiesItsStrings(t *testing.T) {
	srv, err := New(Options{SysInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	in := &packets.Packet{Type: packets.Subscribe, ProtocolVersion: packets.Version5, PacketID: 1,
		Subscriptions: []packets.Subscription{{Filter: "sensors/+/temp", QoS: 1}, {Filter: "$share/group/sensors/+/hum", QoS: 1}}}
	in.Properties.UserProperties = []packets.UserProperty{{Key: "padding", Value: strings.Repeat("x", 60000)}}
	buf := bytebufferpool.Get()
	defer bytebufferpool.Put(buf)
	if err := in.Encode(buf); err != nil {
		t.Fatal(err)
	}
	r := packets.NewReader(bufio.NewReaderSize(bytes.NewReader(buf.B), 16), 0)
	r.SetVersion(packets.Version5)
	var p packets.Packet
	if err := r.ReadPacket(&p); err != nil {
		t.Fatal(err)
	}
	c := &client{srv: srv}
	c.id, c.version = "copier", packets.Version5
	for _, req := range p.Subscriptions {
		code, sub := srv.checkSubscription(context.Background(), c, req, 0)
		if code.IsError() {
			t.Fatalf("%s: refused: %v", req.Filter, code)
		}
		lo := uintptr(unsafe.Pointer(unsafe.StringData(req.Filter)))
		hi := lo + uintptr(len(req.Filter))
		for what, s := range map[string]string{"filter": sub.Filter, "group": sub.Group} {
			if p := uintptr(unsafe.Pointer(unsafe.StringData(s))); s != "" && p >= lo && p < hi {
				t.Errorf("%s: the subscription's %s %q points into the SUBSCRIBE's body", req.Filter, what, s)
			}
		}
	}
}
