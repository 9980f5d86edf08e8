package cluster

import (
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/mqtttest"
	"github.com/vanemq/vanemq/core/packets"
	"github.com/vanemq/vanemq/listeners/tcp"
)

// BenchmarkFanIn is a QoS 0 (and QoS 1) fan-in, 4 publishers to one
// subscriber, 64-byte payloads, on: one node without the cluster hook;
// one node with it, in a cluster of one (no remote interest: the cost of
// the hook itself); and across two nodes (publishers on n1, subscriber on
// n2). It reports deliveries per second and the process's CPU time per
// delivery (clients included, the same in every case), so that the
// ratios compare the brokers' costs, and the QoS 0 messages lost (a node
// drops what comes faster than it routes, counted):
//
//	go test -run '^$' -bench FanIn -benchtime 200000x -count 6 ./hooks/cluster/ | benchstat -
func BenchmarkFanIn(b *testing.B) {
	for _, qos := range []byte{0, 1} {
		q := "qos" + strconv.Itoa(int(qos))
		b.Run(q+"/single", func(b *testing.B) {
			srv, err := core.New(core.Options{AllowAnonymous: true, SysInterval: -1, Logger: testLogger(b)})
			if err != nil {
				b.Fatal(err)
			}
			addr := mqtttest.Serve(b, srv, tcp.New("tcp", "127.0.0.1:0"))
			fanIn(b, addr, addr, qos)
		})
		b.Run(q+"/hook", func(b *testing.B) {
			nats := startNATS(b, 1)
			n := startNode(b, "n1", nats.URL(0))
			fanIn(b, n.addr, n.addr, qos)
		})
		b.Run(q+"/across", func(b *testing.B) {
			nats := startNATS(b, 1)
			n1 := startNode(b, "n1", nats.URL(0))
			n1.nats = nats
			n2 := startNode(b, "n2", nats.URL(0))
			fanIn(b, n1.addr, n2.addr, qos, func() {
				waitReach(b, n1, "bench/in", 1)
			})
			b.Logf("n2: hook dropped %d, received %d; core dropped %d %v", n2.hook.stats.dropped.Load(), n2.hook.stats.received.Load(), n2.srv.Stats().Dropped, n2.srv.Stats().DroppedBy)
		})
	}
}

// fanIn runs b.N messages from 4 publishers on pubAddr to one subscriber
// on subAddr; ready, when given, runs after the subscription.
func fanIn(b *testing.B, pubAddr, subAddr string, qos byte, ready ...func()) {
	const publishers = 4
	sub := mqtttest.Dial(b, subAddr, "sub", "")
	sub.Subscribe(b, "bench/in", qos)
	for _, f := range ready {
		f()
	}
	pubs := make([]*mqtttest.Conn, publishers)
	for i := range pubs {
		pubs[i] = mqtttest.Dial(b, pubAddr, "pub"+strconv.Itoa(i), "")
	}
	total := b.N - b.N%publishers
	got := make(chan int, 1)
	var last time.Time
	go func() {
		n := 0
		for n < total {
			p := sub.Read(5 * time.Second)
			if p == nil {
				break
			}
			if p.Type != packets.Publish {
				continue
			}
			if p.QoS == 1 {
				sub.Send(&packets.Packet{Type: packets.Puback, PacketID: p.PacketID})
				if sub.Buffered() == 0 {
					sub.Flush()
				}
			}
			n++
		}
		last = time.Now()
		got <- n
	}()
	payload := make([]byte, 64)
	cpu0 := cpuTime()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for _, pc := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := packets.Packet{Type: packets.Publish, Topic: "bench/in", Payload: payload, QoS: qos}
			// QoS 1: a window of 64 unacknowledged messages.
			const window = 64
			acked, sent := 0, 0
			for sent < total/publishers {
				if qos == 1 {
					for sent-acked >= window {
						if r := pc.Read(5 * time.Second); r == nil {
							return
						} else if r.Type == packets.Puback {
							acked++
						}
					}
					p.PacketID = uint16(sent%60000 + 1)
				}
				pc.Send(&p)
				sent++
				if qos == 1 && sent-acked >= window {
					pc.Flush()
				}
			}
			pc.Flush()
		}()
	}
	wg.Wait()
	n := <-got
	b.StopTimer()
	cpu := cpuTime() - cpu0
	b.ReportMetric(float64(n)/last.Sub(start).Seconds(), "msg/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(max(n, 1)), "cpu-ns/msg")
	b.ReportMetric(100*float64(total-n)/float64(total), "%lost")
	if qos > 0 && n < total {
		b.Fatalf("%d of %d QoS %d messages arrived", n, total, qos)
	}
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
