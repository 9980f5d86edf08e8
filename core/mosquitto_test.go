package core_test

// Interoperability smoke tests with Debian's mosquitto_pub and
// mosquitto_sub (package mosquitto-clients; `make test` installs it).

import (
	"fmt"
	"testing"
	"time"

	"github.com/vanemq/vanemq/core"
)

// TestMosquittoPubSub publishes at QoS 0, 1 and 2 with mosquitto_pub and
// receives with mosquitto_sub, across MQTT 5 and 3.1.1 on both sides.
func TestMosquittoPubSub(t *testing.T) {
	mqNeedClients(t)
	for _, subV := range []string{"mqttv5", "mqttv311"} {
		for _, pubV := range []string{"5", "311"} {
			t.Run(fmt.Sprintf("sub-%s-pub-%s", subV, pubV), func(t *testing.T) {
				t.Parallel()
				b := startBroker(t, core.Options{})
				host, port := mqHostPort(t, b.Addr)
				prefix := fmt.Sprintf("mosq/%s/%s", subV, pubV)
				sub := mqStart(t, 20*time.Second, "mosquitto_sub", "-h", host, "-p", port, "-V", subV,
					"-i", "sub-"+subV+"-"+pubV, "-t", prefix+"/#", "-q", "2", "-C", "3", "-F", `%t|%q|%r|%p\n`)
				mqWaitFor(t, "mosquitto_sub's subscription", func() bool { return b.Stats().Subscriptions >= 1 }, sub)

				var want []string
				for qos := range 3 {
					topic := fmt.Sprintf("%s/q%d", prefix, qos)
					payload := fmt.Sprintf("hello at QoS %d", qos)
					mqRun(t, "mosquitto_pub", "-h", host, "-p", port, "-V", pubV, "-i", fmt.Sprintf("pub-%s-%d", pubV, qos),
						"-t", topic, "-q", fmt.Sprint(qos), "-m", payload)
					want = append(want, fmt.Sprintf("%s|%d|0|%s", topic, qos, payload))
				}
				sub.wait(t, 10*time.Second)
				// Separate publishers: arrival order across connections is not guaranteed.
				mqSameLines(t, "mosquitto_sub", sub.lines(), want, true)
			})
		}
	}
}

// TestMosquittoRetained publishes a retained message with mosquitto_pub -r:
// a live subscriber gets it with retain 0 ([MQTT-3.3.1-9] 3.1.1 /
// [MQTT-3.3.1-12] v5 without Retain As Published), a later subscriber gets
// it with retain 1 (3.1.1 [MQTT-3.3.1-8]; v5 §3.3.1.3), and an empty
// retained message clears it (3.1.1 [MQTT-3.3.1-10/11]; v5 [MQTT-3.3.1-6/7]).
func TestMosquittoRetained(t *testing.T) {
	mqNeedClients(t)
	for _, v := range []struct{ sub, pub string }{{"mqttv5", "5"}, {"mqttv311", "311"}} {
		t.Run(v.sub, func(t *testing.T) {
			t.Parallel()
			b := startBroker(t, core.Options{})
			host, port := mqHostPort(t, b.Addr)
			topic := "mosq/retained/" + v.sub
			format := `%t|%q|%r|%p\n`

			live := mqStart(t, 20*time.Second, "mosquitto_sub", "-h", host, "-p", port, "-V", v.sub,
				"-i", "live-"+v.sub, "-t", topic, "-q", "1", "-C", "1", "-F", format)
			mqWaitFor(t, "the live subscription", func() bool { return b.Stats().Subscriptions >= 1 }, live)
			mqRun(t, "mosquitto_pub", "-h", host, "-p", port, "-V", v.pub, "-i", "retainer",
				"-t", topic, "-q", "1", "-r", "-m", "keep me")
			live.wait(t, 10*time.Second)
			mqSameLines(t, "live mosquitto_sub", live.lines(), []string{topic + "|1|0|keep me"}, false)
			mqWaitFor(t, "the retained message to be stored", func() bool { return b.Stats().Retained == 1 })

			later := mqStart(t, 20*time.Second, "mosquitto_sub", "-h", host, "-p", port, "-V", v.sub,
				"-i", "later-"+v.sub, "-t", "mosq/retained/#", "-q", "2", "-C", "1", "-F", format)
			later.wait(t, 10*time.Second)
			mqSameLines(t, "later mosquitto_sub", later.lines(), []string{topic + "|1|1|keep me"}, false)

			mqRun(t, "mosquitto_pub", "-h", host, "-p", port, "-V", v.pub, "-i", "clearer",
				"-t", topic, "-q", "0", "-r", "-n")
			mqWaitFor(t, "the retained message to be cleared", func() bool { return b.Stats().Retained == 0 })
		})
	}
}

// TestMosquittoUserProperties sends MQTT 5 user properties, a content type
// and a response topic with mosquitto_pub -D; a v5 mosquitto_sub prints them
// unaltered and in order [MQTT-3.3.2-17/18] and a 3.1.1 subscriber gets the bare message.
func TestMosquittoUserProperties(t *testing.T) {
	mqNeedClients(t)
	b := startBroker(t, core.Options{})
	host, port := mqHostPort(t, b.Addr)
	format := `%t|%P|%C|%R|%p\n`
	sub5 := mqStart(t, 20*time.Second, "mosquitto_sub", "-h", host, "-p", port, "-V", "mqttv5",
		"-i", "props-v5", "-t", "mosq/props", "-q", "1", "-C", "1", "-F", format)
	sub3 := mqStart(t, 20*time.Second, "mosquitto_sub", "-h", host, "-p", port, "-V", "mqttv311",
		"-i", "props-v311", "-t", "mosq/props", "-q", "1", "-C", "1", "-F", format)
	mqWaitFor(t, "both subscriptions", func() bool { return b.Stats().Subscriptions >= 2 }, sub5, sub3)

	mqRun(t, "mosquitto_pub", "-h", host, "-p", port, "-V", "5", "-i", "props-pub", "-t", "mosq/props", "-q", "1",
		"-D", "publish", "user-property", "region", "eu",
		"-D", "publish", "user-property", "region", "us",
		"-D", "publish", "user-property", "k", "v",
		"-D", "publish", "content-type", "text/plain",
		"-D", "publish", "response-topic", "mosq/reply",
		"-m", "with properties")
	sub5.wait(t, 10*time.Second)
	sub3.wait(t, 10*time.Second)
	mqSameLines(t, "v5 mosquitto_sub", sub5.lines(),
		[]string{"mosq/props|region:eu region:us k:v|text/plain|mosq/reply|with properties"}, false)
	mqSameLines(t, "3.1.1 mosquitto_sub", sub3.lines(), []string{"mosq/props||||with properties"}, false)
}
