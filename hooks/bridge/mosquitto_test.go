package bridge

import (
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/mqtttest"
)

// mosquitto is Debian's mosquitto broker (package mosquitto; `make test`
// installs it), run by a test.
type mosquitto struct {
	addr string
	dir  string
	cmd  *exec.Cmd
	out  *logBuffer
	done chan struct{}
}

// startMosquitto starts mosquitto on addr with persistence in dir, so that
// a restart keeps its sessions, and the config lines extra. It is stopped
// (SIGTERM, which saves its state) when the test ends.
func startMosquitto(t *testing.T, addr, dir string, extra ...string) *mosquitto {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if _, err := os.Stat("/usr/sbin/mosquitto"); err != nil {
			t.Fatal("mosquitto is not installed: `make deps` installs Debian's package")
		}
		bin = "/usr/sbin/mosquitto"
	}
	host, port, _ := net.SplitHostPort(addr)
	conf := filepath.Join(dir, "mosquitto.conf")
	text := "listener " + port + " " + host + "\nallow_anonymous true\npersistence true\npersistence_location " + dir +
		"/\nautosave_interval 0\nlog_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n"
	if u, err := user.Current(); err == nil {
		// Started as root, mosquitto would become the user mosquitto,
		// who cannot write the test's directory.
		text += "user " + u.Username + "\n"
	}
	text += strings.Join(extra, "\n") + "\n"
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	m := &mosquitto{addr: addr, dir: dir, out: &logBuffer{}, done: make(chan struct{})}
	m.cmd = exec.Command(bin, "-c", conf)
	m.cmd.Stdout, m.cmd.Stderr = m.out, m.out
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = m.cmd.Wait()
		close(m.done)
	}()
	t.Cleanup(m.stop)
	eventuallyOr(t, "mosquitto listening on "+addr, func() bool {
		select {
		case <-m.done:
			return false
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	}, func() { t.Logf("mosquitto's output:\n%s", m.out) })
	return m
}

// stop ends mosquitto with SIGTERM (it saves its state) and waits.
func (m *mosquitto) stop() {
	select {
	case <-m.done:
		return
	default:
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(waitTimeout):
		_ = m.cmd.Process.Kill()
		<-m.done
	}
}

// vanemq bridged to a real Mosquitto, over MQTT 5 and 3.1.1: forwarding
// out and in with prefixes, MQTT 5 properties, a two-way rule that does
// not loop (on 3.1.1, which has no no-local, the bridge recognises its
// own messages coming back), and QoS 1 messages published while
// Mosquitto is down all delivered once it is back.
func TestBridgeMosquitto(t *testing.T) {
	for _, proto := range []string{"5", "3.1.1"} {
		t.Run("protocol "+proto, func(t *testing.T) {
			addrM := mqtttest.FreeAddr(t)
			mq := startMosquitto(t, addrM, t.TempDir())
			a := startBroker(t, "", core.Options{}, withBridge(t, Config{Bridges: []BridgeConfig{fastBackoff(BridgeConfig{
				Name: "mosq", Address: "tcp://" + addrM, Protocol: proto, ClientID: "vanemq-edge",
				Topics: []TopicRule{
					{Direction: DirOut, Filter: "sensors/#", RemotePrefix: "site1/", QoS: 1},
					{Direction: DirIn, Filter: "#", RemotePrefix: "commands/site1/", LocalPrefix: "cmd/", QoS: 1},
					{Direction: DirBoth, Filter: "data/#", QoS: 1},
				},
			})}}))
			eventuallyOr(t, "bridge connected", func() bool { return bridgeOf(a.Server, "mosq").Connected },
				func() { t.Logf("vanemq log:\n%s\nmosquitto:\n%s", a.log, mq.out) })

			subM := dialSession(t, addrM, "subM")
			subM.sub("site1/#")
			subA := dial(t, a.addr, "subA")
			subA.sub("cmd/#")
			pubA, pubM := dial(t, a.addr, "pubA"), dial(t, addrM, "pubM")

			pubA.pub(&paho.Publish{Topic: "sensors/t", QoS: 1, Payload: []byte("20"),
				Properties: &paho.PublishProperties{User: paho.UserProperties{{Key: "unit", Value: "C"}}}})
			m := subM.next()
			if m.Topic != "site1/sensors/t" || string(m.Payload) != "20" {
				t.Fatalf("Mosquitto received %s=%s, want site1/sensors/t=20", m.Topic, m.Payload)
			}
			if proto == "5" && (m.Properties == nil || m.Properties.User.Get("unit") != "C") {
				t.Errorf("user property lost across an MQTT 5 bridge: %+v", m.Properties)
			}
			pubM.pub(&paho.Publish{Topic: "commands/site1/open", QoS: 1, Payload: []byte("valve")})
			if in := subA.next(); in.Topic != "cmd/open" || string(in.Payload) != "valve" {
				t.Fatalf("vanemq received %s=%s, want cmd/open=valve", in.Topic, in.Payload)
			}
			noLoopAddrs(t, a.addr, addrM)

			// Mosquitto goes away; messages wait; it comes back with its
			// sessions (persistence), and they all arrive.
			_ = subM.Disconnect(&paho.Disconnect{})
			mq.stop()
			eventually(t, "bridge disconnected", func() bool { return !bridgeOf(a.Server, "mosq").Connected })
			const n = 200
			for i := range n {
				pubA.pub(&paho.Publish{Topic: "sensors/q", QoS: 1, Payload: []byte(itoa(i))})
			}
			mq = startMosquitto(t, addrM, mq.dir)
			eventually(t, "bridge reconnected", func() bool { return bridgeOf(a.Server, "mosq").Connected })
			eventually(t, "queue drained", func() bool { return bridgeOf(a.Server, "mosq").Queued == 0 })
			sub2 := dialSession(t, addrM, "subM")
			var got []string
			for len(got) < n {
				if m := sub2.next(); m.Topic == "site1/sensors/q" {
					got = append(got, string(m.Payload))
				}
			}
			checkAll(t, got, n)
		})
	}
}

// noLoopAddrs is noLoop between two brokers by address.
func noLoopAddrs(t *testing.T, a, b string) {
	t.Helper()
	noLoop(t, &broker{addr: a}, &broker{addr: b})
}

// A Mosquitto bridging into vanemq over MQTT 3.1.1 sets the bridge bit of
// the protocol level (try_private, its default): vanemq accepts it and
// does not send back what the bridge publishes, so a two-way bridge does
// not loop.
func TestMosquittoBridgesIntoVanemq(t *testing.T) {
	b := startBroker(t, "", core.Options{}, nil)
	addrM := mqtttest.FreeAddr(t)
	mq := startMosquitto(t, addrM, t.TempDir(),
		"connection tovanemq", "address "+b.addr, "bridge_protocol_version mqttv311", "try_private true",
		"cleansession true", "notifications false", "topic data/# both 1")
	eventuallyOr(t, "mosquitto's bridge connected to vanemq, as a bridge", func() bool {
		return strings.Contains(b.log.String(), "bridge=true")
	}, func() { t.Logf("vanemq:\n%s\nmosquitto:\n%s", b.log, mq.out) })
	noLoopAddrs(t, addrM, b.addr)
}
