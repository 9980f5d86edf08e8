package storage

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/vanemq/vanemq/core/packets"
)

// A vanemq process on a pebble store with durability sync, killed with
// SIGKILL and started again. Nothing it acknowledged may be lost: the
// subscriber may get a message twice (QoS 1, with DUP), never miss one.

// crashBroker is the vanemq binary run as a child process.
type crashBroker struct {
	t      *testing.T
	exe    string
	config string
	addr   string
	cmd    *exec.Cmd
	stderr *bytes.Buffer
}

func newCrashBroker(t *testing.T) *crashBroker {
	t.Helper()
	dir := t.TempDir()
	exe := filepath.Join(dir, "vanemq")
	build := exec.Command("go", "build", "-o", exe, "github.com/vanemq/vanemq/cmd/vanemq")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building vanemq: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	config := filepath.Join(dir, "vanemq.yaml")
	yml := fmt.Sprintf(`allow_anonymous: true
listeners:
  - {id: tcp, type: tcp, address: %q}
mqtt: {max_queued_messages: 1000000, sys_interval: 0s}
storage: {type: pebble, path: %q, durability: sync}
log: {level: warn}
`, addr, filepath.Join(dir, "data"))
	if err := os.WriteFile(config, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	b := &crashBroker{t: t, exe: exe, config: config, addr: addr}
	t.Cleanup(func() {
		b.kill()
		if t.Failed() {
			t.Logf("broker's last log:\n%s", b.stderr)
		}
	})
	return b
}

// start runs the broker and waits (bounded) until it accepts connections.
func (b *crashBroker) start() {
	b.t.Helper()
	b.stderr = new(bytes.Buffer)
	b.cmd = exec.Command(b.exe, "--config", b.config)
	b.cmd.Stderr = b.stderr
	if err := b.cmd.Start(); err != nil {
		b.t.Fatal(err)
	}
	deadline := time.Now().Add(waitTimeout)
	for {
		c, err := net.DialTimeout("tcp", b.addr, time.Second)
		if err == nil {
			_ = c.Close()
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("broker not accepting on %s after %s: %v\n%s", b.addr, waitTimeout, err, b.stderr)
		}
		time.Sleep(10 * time.Millisecond) // polling for the port, bounded by the deadline
	}
}

// kill sends SIGKILL and reaps the process.
func (b *crashBroker) kill() {
	if b.cmd == nil || b.cmd.Process == nil {
		return
	}
	_ = b.cmd.Process.Kill()
	_ = b.cmd.Wait()
	b.cmd = nil
}

func TestCrashKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the broker binary")
	}
	b := newCrashBroker(t)
	b.start()
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 9))
	t.Logf("seed %d", seed)

	// The persistent subscriber: QoS 1 and QoS 2 subscriptions, then
	// away for the whole test.
	sub, _ := dialRaw(t, b.addr, v5Connect("sub", true, 3600))
	sub.subscribe("q1/#", 1)
	sub.subscribe("q2/#", 2)
	sub.disconnect()

	acked := map[string]bool{}      // QoS 1 and 2 payloads the broker acknowledged
	retained := map[string]string{} // topic -> last acknowledged retained payload

	// QoS 1: rounds of pipelined publishing, each cut by SIGKILL after a
	// random number of PUBACKs.
	for round := range 3 {
		killAt := 1 + rng.IntN(1500)
		crashPublishQoS1(t, b, round, 2000, killAt, acked, retained)
		b.kill()
		b.start()
	}

	// QoS 2, publisher with a persistent session: killed at a random step
	// of a random flow, then the flow is completed as the protocol says.
	for round := range 3 {
		crashPublishQoS2(t, b, round, 20, rng.IntN(20), rng.IntN(3), acked)
	}

	// The subscriber comes back and must get every acknowledged message.
	sub, ack := dialRaw(t, b.addr, v5Connect("sub", false, 3600))
	if !ack.SessionPresent {
		t.Fatal("subscriber's session not restored after SIGKILL")
	}
	got := map[string]int{}
	missing := len(acked)
	deadline := time.Now().Add(30 * time.Second)
	for missing > 0 && time.Now().Before(deadline) {
		p, err := sub.tryRead(5 * time.Second)
		if err != nil {
			break
		}
		switch p.Type {
		case packets.Publish:
			payload := string(p.Payload)
			if acked[payload] && got[payload] == 0 {
				missing--
			}
			got[payload]++
			if p.QoS == 1 {
				sub.send(&packets.Packet{Type: packets.Puback, PacketID: p.PacketID})
			} else {
				sub.send(&packets.Packet{Type: packets.Pubrec, PacketID: p.PacketID})
			}
		case packets.Pubrel:
			sub.send(&packets.Packet{Type: packets.Pubcomp, PacketID: p.PacketID})
		}
	}
	var lost []string
	for p := range acked {
		if got[p] == 0 {
			lost = append(lost, p)
		}
	}
	if len(lost) > 0 {
		t.Fatalf("%d of %d acknowledged messages lost after SIGKILL, e.g. %q", len(lost), len(acked), lost[:min(5, len(lost))])
	}
	for p, n := range got {
		if n > 1 && p[:2] == "q2" {
			t.Errorf("QoS 2 message %q delivered %d times [MQTT-4.3.3-9]", p, n)
		}
	}

	// Retained messages: the last acknowledged value of each topic.
	r, _ := dialRaw(t, b.addr, v5Connect("r", true, 0))
	r.send(&packets.Packet{Type: packets.Subscribe, PacketID: 1, Subscriptions: []packets.Subscription{{Filter: "q1/ret/#", QoS: 0}}})
	r.expect(packets.Suback)
	seen := map[string]string{}
	for len(seen) < len(retained) {
		p, err := r.tryRead(5 * time.Second)
		if err != nil {
			break
		}
		if p.Type == packets.Publish {
			seen[p.Topic] = string(p.Payload)
		}
	}
	for topic, want := range retained {
		if have := seen[topic]; have != want && !newerRetained(have, want) {
			t.Errorf("retained %s after SIGKILL: %q, want the last acknowledged %q (or a later one)", topic, have, want)
		}
	}
	t.Logf("%d acknowledged messages, all delivered (%d deliveries); %d retained topics kept", len(acked), sumCounts(got), len(retained))
}

// crashPublishQoS1 publishes n QoS 1 messages with 64 in flight, every
// tenth one also retained, and kills the broker after killAt PUBACKs. It
// records what was acknowledged.
func crashPublishQoS1(t *testing.T, b *crashBroker, round, n, killAt int, acked map[string]bool, retained map[string]string) {
	t.Helper()
	pub, _ := dialRaw(t, b.addr, v5Connect("pub1", true, 0))
	sent := map[uint16]*packets.Packet{}
	next, nacks := 0, 0
	for nacks < n {
		for next < n && len(sent) < 64 {
			id := uint16(next%60000) + 1
			p := &packets.Packet{Type: packets.Publish, QoS: 1, PacketID: id,
				Topic: fmt.Sprintf("q1/%d", round), Payload: []byte(fmt.Sprintf("q1-%d-%d", round, next))}
			if next%10 == 0 {
				p.Topic, p.Retain = "q1/ret/"+strconv.Itoa(next%7), true
			}
			pub.send(p)
			sent[id] = p
			next++
		}
		a, err := pub.tryRead(waitTimeout)
		if err != nil {
			t.Fatalf("round %d: reading PUBACK %d: %v\n%s", round, nacks, err, b.stderr)
		}
		if a.Type != packets.Puback {
			t.Fatalf("got %s, want PUBACK", a.Type)
		}
		p := sent[a.PacketID]
		delete(sent, a.PacketID)
		acked[string(p.Payload)] = true
		if p.Retain {
			retained[p.Topic] = string(p.Payload)
		}
		nacks++
		if nacks == killAt {
			b.kill()
			return
		}
	}
}

// crashPublishQoS2 runs n QoS 2 flows from a persistent session and kills
// the broker in flow killFlow: after PUBLISH (step 0), after PUBREC
// (step 1) or after PUBREL (step 2). After the restart the publisher goes
// on as MQTT says: PUBLISH again with DUP if it had no PUBREC, PUBREL
// again if it had [MQTT-4.4.0-1].
func crashPublishQoS2(t *testing.T, b *crashBroker, round, n, killFlow, step int, acked map[string]bool) {
	t.Helper()
	pub, _ := dialRaw(t, b.addr, v5Connect("pub2", round == 0, 3600))
	for i := range n {
		id := uint16(i + 1)
		payload := fmt.Sprintf("q2-%d-%d", round, i)
		p := &packets.Packet{Type: packets.Publish, QoS: 2, PacketID: id, Topic: "q2/x", Payload: []byte(payload)}
		pub.send(p)
		if i == killFlow && step == 0 {
			b.kill()
			b.start()
			pub, _ = dialRaw(t, b.addr, v5Connect("pub2", false, 3600))
			p.Dup = true
			pub.send(p)
		}
		if a := pub.expect(packets.Pubrec); a.PacketID != id || a.ReasonCode.IsError() {
			t.Fatalf("PUBREC %d %s, want %d success", a.PacketID, a.ReasonCode, id)
		}
		acked[payload] = true
		if i == killFlow && step == 1 {
			b.kill()
			b.start()
			pub, _ = dialRaw(t, b.addr, v5Connect("pub2", false, 3600))
		}
		pub.send(&packets.Packet{Type: packets.Pubrel, PacketID: id})
		if i == killFlow && step == 2 {
			b.kill()
			b.start()
			pub, _ = dialRaw(t, b.addr, v5Connect("pub2", false, 3600))
			pub.send(&packets.Packet{Type: packets.Pubrel, PacketID: id})
		}
		a := pub.expect(packets.Pubcomp)
		if a.PacketID != id {
			t.Fatalf("PUBCOMP %d, want %d", a.PacketID, id)
		}
	}
	pub.disconnect()
}

// newerRetained reports whether have was published after want (both
// "q1-round-i" payloads of the same topic).
func newerRetained(have, want string) bool {
	var hr, hi, wr, wi int
	if _, err := fmt.Sscanf(have, "q1-%d-%d", &hr, &hi); err != nil {
		return false
	}
	if _, err := fmt.Sscanf(want, "q1-%d-%d", &wr, &wi); err != nil {
		return false
	}
	return hr > wr || (hr == wr && hi > wi)
}

func sumCounts(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
