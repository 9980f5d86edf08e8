package core_test

import (
	"net"
	"testing"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/packets"
)

// A 3.1.1 client whose CONNECT sets the bridge bit of the protocol level
// (0x84, Mosquitto's try_private) is served as 3.1.1, and its
// subscriptions behave as MQTT 5's no-local and retain-as-published: it
// does not get back what it publishes, and gets the retained flag of a
// live retained message, which a plain 3.1.1 subscriber does not
// ([MQTT-3.3.1-9] in 3.1.1: the flag is 0 for a message sent because of an
// established subscription).
func TestBridgeBitClient(t *testing.T) {
	tb := startBroker(t, core.Options{})
	dialRaw := func(id string, bridge bool) *pipeClient {
		nc, err := net.Dial("tcp", tb.Addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = nc.Close() })
		c := newPipeClient(t, nc, packets.Version311)
		p := &packets.Packet{Type: packets.Connect}
		p.Connect.ProtocolName, p.Connect.ClientID, p.Connect.CleanStart, p.Connect.Bridge = "MQTT", id, true, bridge
		c.send(p)
		if ack := c.read(); ack.Type != packets.Connack || ack.ReasonCode != 0 {
			t.Fatalf("%s: %s %s", id, ack.Type, ack.ReasonCode)
		}
		c.send(&packets.Packet{Type: packets.Subscribe, PacketID: 1, Subscriptions: []packets.Subscription{{Filter: "b/#", QoS: 1}}})
		if p := c.read(); p.Type != packets.Suback {
			t.Fatalf("%s: %s, want SUBACK", id, p.Type)
		}
		return c
	}
	bridge, plain := dialRaw("mosquitto-bridge", true), dialRaw("plain", false)

	bridge.send(&packets.Packet{Type: packets.Publish, Topic: "b/own", QoS: 1, PacketID: 2, Payload: []byte("x")})
	if p := bridge.read(); p.Type != packets.Puback {
		t.Fatalf("bridge got %s, want its PUBACK and not its own message", p.Type)
	}
	plain.send(&packets.Packet{Type: packets.Publish, Topic: "b/live", QoS: 1, PacketID: 3, Retain: true, Payload: []byte("r")})
	// The plain client gets the bridge's message, then its PUBACK and its
	// own message (it has no no-local); the bridge gets only the live one.
	got := map[string]bool{}
	for len(got) < 3 {
		p := plain.read()
		switch p.Type {
		case packets.Publish:
			got[p.Topic] = true
			if p.Topic == "b/live" && p.Retain {
				t.Error("plain 3.1.1 subscriber: a live message with the retained flag [MQTT-3.3.1-9]")
			}
			if p.QoS > 0 {
				plain.send(&packets.Packet{Type: packets.Puback, PacketID: p.PacketID})
			}
		case packets.Puback:
			got["puback"] = true
		}
	}
	if !got["b/own"] || !got["b/live"] {
		t.Fatalf("plain client got %v", got)
	}
	p := bridge.read()
	if p.Type != packets.Publish || p.Topic != "b/live" || !p.Retain {
		t.Fatalf("bridge got %s %q retain %v, want b/live with the retained flag as published", p.Type, p.Topic, p.Retain)
	}
}
