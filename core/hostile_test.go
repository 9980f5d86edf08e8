package core_test

// Input that costs a client little and the broker much, bounded (issue 15):
// packets before CONNECT, topic depth, topic aliases.

import (
	"runtime"
	"strings"
	"testing"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/packets"
)

// A CONNECT larger than max_connect_size is refused before its body is
// read: an MQTT 5 client is told with CONNACK 0x95 Packet too large, then
// the connection closes [MQTT-3.2.2-8]; a 3.1.1 client has no such code
// and is closed [MQTT-3.2.2-6... 3.1.1 §3.2.2.3]. The broker's maximum
// packet size, far above it, applies only once CONNECT is answered.
func TestConnectLargerThanMaxConnectSize(t *testing.T) {
	b := startBroker(t, core.Options{MaxPacketSize: 16 << 20, MaxConnectSize: 1024})
	head := append([]byte{0x10}, biVarint(1<<20)...) // 1 MiB declared
	t.Run("MQTT 5", func(t *testing.T) {
		c := biDial(t, b.Addr, "big5")
		c.setVersion(packets.Version5)
		c.mustWrite(head, biStr("MQTT"), []byte{5, 2})
		if p := c.expect(biIO, packets.Connack); p.ReasonCode != packets.PacketTooLarge {
			t.Fatalf("got %s, want CONNACK 0x95", biDescribe(p))
		}
		c.expectClosed(biIO)
	})
	t.Run("MQTT 3.1.1", func(t *testing.T) {
		c := biDial(t, b.Addr, "big4")
		c.mustWrite(head, biStr("MQTT"), []byte{4, 2})
		c.expectClosed(biIO)
	})
	t.Run("under the limit, with a will", func(t *testing.T) {
		c := biDial(t, b.Addr, "will")
		will := biJoin(biStr("w/t"), biStr(strings.Repeat("w", 800)))
		c.mustWrite(biConnectRaw("MQTT", 4, 0x02|0x04, 0, nil, biStr("will"), will))
		c.setVersion(packets.Version311)
		if p := c.expect(biIO, packets.Connack); p.ReasonCode != packets.Success {
			t.Fatalf("got %s, want the CONNECT accepted", biDescribe(p))
		}
		// After CONNECT the maximum packet size applies: 64 KiB goes.
		sub := biConnectOK(t, b.Addr, packets.Version311, "sub")
		sub.mustWrite(biSubscribe(packets.Version311, 1, "big/#", 0))
		sub.expect(biIO, packets.Suback)
		c.mustWrite(biPublish(packets.Version311, 0, "big/a", 0, strings.Repeat("p", 64<<10)))
		if p := sub.expect(biIO, packets.Publish); len(p.Payload) != 64<<10 {
			t.Fatalf("delivered %d bytes, want 64 KiB", len(p.Payload))
		}
	})
}

// max_topic_levels: a topic name or filter deeper than the limit is valid
// MQTT that this broker does not accept. A PUBLISH is answered with 0x90
// Topic Name invalid ("not malformed, but not accepted", v5 §3.4.2.1) and
// not delivered; a filter with 0x8F Topic Filter invalid in SUBACK (v5
// §3.9.3), 0x80 Failure for 3.1.1 [MQTT-3.9.3-2]; a will topic with
// CONNACK 0x90 [MQTT-3.2.2-8].
func TestMaxTopicLevels(t *testing.T) {
	b := startBroker(t, core.Options{MaxTopicLevels: 8})
	ok := strings.Repeat("a/", 7) + "a"  // 8 levels
	deep := ok + "/a"                    // 9
	empty := strings.Repeat("/", 60_000) // 60,001 empty levels, in 60 KB
	sub := biConnectOK(t, b.Addr, packets.Version5, "levels-sub")
	sub.mustWrite(biSubscribe(packets.Version5, 1, "#", 1))
	sub.expect(biIO, packets.Suback)

	pub := biConnectOK(t, b.Addr, packets.Version5, "levels-pub")
	for i, topic := range []string{deep, empty} {
		pub.mustWrite(biPublish(packets.Version5, 1, topic, uint16(10+i), "x"))
		if p := pub.expect(biIO, packets.Puback); p.ReasonCode != packets.TopicNameInvalid {
			t.Errorf("PUBLISH with %d levels: %s, want PUBACK 0x90", strings.Count(topic, "/")+1, biDescribe(p))
		}
	}
	pub.mustWrite(biPublish(packets.Version5, 1, ok, 20, "at the limit"))
	if p := pub.expect(biIO, packets.Puback); p.ReasonCode != packets.Success {
		t.Errorf("PUBLISH with 8 levels: %s, want PUBACK 0x00", biDescribe(p))
	}
	// The first delivery is the one at the limit: the deeper ones went nowhere.
	if p := sub.expect(biIO, packets.Publish); p.Topic != ok {
		t.Errorf("delivered %q, want only the topic at the limit", p.Topic)
	}

	for _, tc := range []struct {
		version byte
		filter  string
		want    packets.ReasonCode
	}{
		{packets.Version5, deep, packets.TopicFilterInvalid},
		{packets.Version5, strings.Repeat("+/", 8) + "#", packets.TopicFilterInvalid},
		{packets.Version5, "$share/g/" + deep, packets.TopicFilterInvalid},
		{packets.Version5, "$share/g/" + ok, packets.Success},
		{packets.Version311, empty, packets.V3SubackFailure},
		{packets.Version311, ok, packets.Success},
	} {
		c := biConnectOK(t, b.Addr, tc.version, "levels-filter")
		c.mustWrite(biSubscribe(tc.version, 2, tc.filter, 0))
		p := c.expect(biIO, packets.Suback)
		if len(p.ReasonCodes) != 1 || p.ReasonCodes[0] != tc.want {
			t.Errorf("v%d SUBSCRIBE to %.30q (%d levels): %s, want 0x%02X", tc.version, tc.filter, strings.Count(tc.filter, "/")+1, biDescribe(p), byte(tc.want))
		}
		c.disconnect()
	}

	w := biDial(t, b.Addr, "levels-will")
	w.setVersion(packets.Version5)
	w.mustWrite(biConnectRaw("MQTT", 5, 0x02|0x04, 0, biProps(), biStr("levels-will"), biProps(), biStr(deep), biStr("gone")))
	if p := w.expect(biIO, packets.Connack); p.ReasonCode != packets.TopicNameInvalid {
		t.Errorf("will topic with 9 levels: %s, want CONNACK 0x90", biDescribe(p))
	}
}

// Topic aliases keep a copy of their topic, not the PUBLISH that set it:
// a client setting many aliases on messages with large payloads leaves the
// broker holding topics, not payloads [MQTT-3.3.2-12]. Without the copy,
// 64 aliases set by 1 MiB messages kept 64 MiB alive.
func TestTopicAliasesKeepNoPayload(t *testing.T) {
	const aliases, payload = 64, 1 << 20
	b := startBroker(t, core.Options{TopicAliasMaximum: aliases, MaxPacketSize: 2 << 20})
	c := biConnectOK(t, b.Addr, packets.Version5, "aliases")
	big := strings.Repeat("p", payload)
	before := liveHeap()
	for a := uint16(1); a <= aliases; a++ {
		c.mustWrite(biPublish(packets.Version5, 0, "alias/"+strings.Repeat("t", int(a)), 0, big, biPropU16(0x23, a)))
	}
	// The broker handles a connection's packets in order: once PINGRESP is
	// back, every alias is set and every PUBLISH routed (to no one).
	c.mustWrite([]byte{0xC0, 0})
	c.expect(biIO, packets.Pingresp)
	if grown := liveHeap() - before; grown > 16<<20 {
		t.Fatalf("the live heap grew by %d MiB after %d aliases set by %d KiB messages: the alias table keeps the messages", grown>>20, aliases, payload>>10)
	}
	// The aliases work.
	s := biConnectOK(t, b.Addr, packets.Version5, "aliases-sub")
	s.mustWrite(biSubscribe(packets.Version5, 1, "alias/#", 0))
	s.expect(biIO, packets.Suback)
	c.mustWrite(biPublish(packets.Version5, 0, "", 0, "by alias", biPropU16(0x23, 3)))
	if p := s.expect(biIO, packets.Publish); p.Topic != "alias/ttt" || string(p.Payload) != "by alias" {
		t.Fatalf("got %s, want the message on the aliased topic alias/ttt", biDescribe(p))
	}
}

// liveHeap is the heap in use after a collection.
func liveHeap() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// topic_alias_bytes bounds the topic names a connection's aliases hold: a
// client that goes over it is disconnected with 0x97 Quota exceeded (v5
// §3.14.2.1: "an implementation or administrative imposed limit has been
// exceeded"); re-setting an alias to a topic of the same length does not
// add up.
func TestTopicAliasBytes(t *testing.T) {
	b := startBroker(t, core.Options{TopicAliasMaximum: 10, TopicAliasBytes: 100})
	c := biConnectOK(t, b.Addr, packets.Version5, "aliasbytes")
	t40 := strings.Repeat("a", 40)
	for range 5 { // alias 1 set five times to 40 bytes: 40 held
		c.mustWrite(biPublish(packets.Version5, 1, t40, 1, "x", biPropU16(0x23, 1)))
		c.expect(biIO, packets.Puback)
	}
	c.mustWrite(biPublish(packets.Version5, 1, strings.Repeat("b", 40), 2, "x", biPropU16(0x23, 2))) // 80
	c.expect(biIO, packets.Puback)
	c.mustWrite(biPublish(packets.Version5, 1, strings.Repeat("c", 40), 3, "x", biPropU16(0x23, 3))) // 120
	if p := c.expect(biIO, packets.Disconnect); p.ReasonCode != packets.QuotaExceeded {
		t.Fatalf("got %s, want DISCONNECT 0x97", biDescribe(p))
	}
	c.expectClosed(biIO)
}

// A connected client's identifier and user name are copies, not views of
// its CONNECT: a CONNECT larger than the reader's buffer (a large user
// property, or password) does not stay alive as long as the connection.
// Without the copy, 100 such clients kept 6 MB alive.
func TestClientInfoKeepsNoConnect(t *testing.T) {
	b := startBroker(t, core.Options{})
	pad := strings.Repeat("u", 60_000)
	before := liveHeap()
	for i := range 100 {
		id := "pinned-" + strings.Repeat("x", i%10) + string(rune('a'+i%26)) + strings.Repeat("y", i/26)
		c := biDial(t, b.Addr, id)
		c.mustWrite(biConnectRaw("MQTT", 5, 0x02|0x80, 0, biProps(biPropUser("pad", pad)), biStr(id), biStr("user-"+id)))
		c.setVersion(packets.Version5)
		if p := c.expect(biIO, packets.Connack); p.ReasonCode != packets.Success {
			t.Fatalf("%s: %s", id, biDescribe(p))
		}
	}
	if grown := liveHeap() - before; grown > 3<<20 {
		t.Fatalf("the live heap grew by %d MiB for 100 connected clients whose CONNECTs carried 60 KB each: their client identifiers keep their CONNECTs", grown>>20)
	}
}
