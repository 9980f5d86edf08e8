package topics

import (
	"fmt"
	"testing"
)

// benchDevices × the five sensors of benchSensors = 100,000 topics.
const benchDevices = 20000

// benchSensors are the per-device leaves of the benchmark topic tree.
func benchSensors() []string {
	return []string{"temp", "humidity", "pressure", "battery", "status"}
}

// benchFilters returns the 100,000 "devices/{id}/{sensor}" topics.
func benchFilters() []string {
	sensors := benchSensors()
	fs := make([]string, 0, benchDevices*len(sensors))
	for d := range benchDevices {
		for _, s := range sensors {
			fs = append(fs, fmt.Sprintf("devices/%d/%s", d, s))
		}
	}
	return fs
}

// benchClient returns the client subscribed to the i-th benchFilters entry.
func benchClient(i int) string {
	return fmt.Sprintf("dev-%d", i/len(benchSensors()))
}

// benchTrie builds a trie of 100,000 subscriptions of realistic shape: one
// client per device subscribed to each of its five sensors, plus a few
// hundred wildcard filters (per-device '+', fleet-wide '+' and '#',
// dashboards) and a shared group of workers.
func benchTrie(tb testing.TB) *Trie {
	tb.Helper()
	tr := NewTrie()
	for i, f := range benchFilters() {
		tr.Subscribe(Subscription{ClientID: benchClient(i), Filter: f, QoS: 1})
	}
	for d := 0; d < benchDevices; d += 100 {
		tr.Subscribe(Subscription{ClientID: fmt.Sprintf("mon-%d", d), Filter: fmt.Sprintf("devices/%d/+", d)})
	}
	for i, f := range []string{"devices/+/temp", "devices/+/battery", "devices/#", "#", "+/+/status", "alerts/#"} {
		tr.Subscribe(Subscription{ClientID: fmt.Sprintf("dash-%d", i), Filter: f})
	}
	for i := range 3 {
		tr.Subscribe(Subscription{ClientID: fmt.Sprintf("worker-%d", i), Group: "workers", Filter: "devices/+/temp"})
	}
	return tr
}

func BenchmarkMatch100k(b *testing.B) {
	tr := benchTrie(b)
	var res Matches
	// Matches the device's own filter, its monitor's '+', three fleet-wide
	// filters and the shared group.
	const topic = "devices/12300/temp"
	tr.Match(topic, &res)
	if tr.Count() < 100000 || len(res.Subs) != 5 || len(res.Shared) != 1 {
		b.Fatalf("%d subscriptions; matched %d subs, %d groups; want ≥100000, 5, 1", tr.Count(), len(res.Subs), len(res.Shared))
	}
	b.ReportAllocs()
	for b.Loop() {
		res.Reset()
		tr.Match(topic, &res)
	}
}

func BenchmarkMatchParallel(b *testing.B) {
	tr := benchTrie(b)
	all := benchFilters()
	topics := make([]string, 1024)
	for i := range topics {
		topics[i] = all[(i*7919)%len(all)]
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var res Matches
		i := 0
		for pb.Next() {
			res.Reset()
			tr.Match(topics[i%len(topics)], &res)
			i++
		}
	})
}

// BenchmarkMatchParallelChurn matches in parallel while another goroutine
// keeps subscribing and unsubscribing on the matched path, to show that
// readers are not blocked by writers. B/op includes the writer's
// allocations.
func BenchmarkMatchParallelChurn(b *testing.B) {
	tr := benchTrie(b)
	filters := benchFilters()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			f := filters[i%len(filters)]
			tr.Subscribe(Subscription{ClientID: "churn", Filter: f})
			tr.Unsubscribe("churn", "", f)
		}
	}()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var res Matches
		for pb.Next() {
			res.Reset()
			tr.Match("devices/12300/temp", &res)
		}
	})
	b.StopTimer()
	close(stop)
	<-done
}

// BenchmarkSubscribe adds devices/{id}/{sensor} subscriptions to a growing
// trie (restarting every 100,000).
func BenchmarkSubscribe(b *testing.B) {
	filters := benchFilters()
	b.ReportAllocs()
	tr := NewTrie()
	i := 0
	for b.Loop() {
		if i == len(filters) {
			b.StopTimer()
			tr, i = NewTrie(), 0
			b.StartTimer()
		}
		tr.Subscribe(Subscription{ClientID: "c", Filter: filters[i]})
		i++
	}
}

// BenchmarkUnsubscribeSubscribe removes a subscription from the 100k trie,
// pruning its leaf, and adds it back.
func BenchmarkUnsubscribeSubscribe(b *testing.B) {
	tr := benchTrie(b)
	filters := benchFilters()
	clients := make([]string, len(filters))
	for i := range clients {
		clients[i] = benchClient(i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		j := i % len(filters)
		tr.Unsubscribe(clients[j], "", filters[j])
		tr.Subscribe(Subscription{ClientID: clients[j], Filter: filters[j]})
		i++
	}
}

func BenchmarkRetainedMatch(b *testing.B) {
	r := NewRetained[int]()
	for i, topic := range benchFilters() {
		r.Set(topic, i)
	}
	n := len(benchSensors())
	for _, bc := range []struct {
		filter string
		want   int
	}{
		{"devices/12300/temp", 1},
		{"devices/12300/+", n},
		{"devices/12300/#", n},
		{"+/12300/temp", 1},
		{"devices/+/temp", benchDevices},
		{"#", benchDevices * n},
	} {
		b.Run(bc.filter, func(b *testing.B) {
			found := 0
			count := func(string, int) bool { found++; return true }
			r.Match(bc.filter, count)
			if found != bc.want {
				b.Fatalf("Match(%q) found %d, want %d", bc.filter, found, bc.want)
			}
			b.ReportAllocs()
			for b.Loop() {
				r.Match(bc.filter, count)
			}
		})
	}
}

// BenchmarkRetainedSet replaces values of 1000 topics: Set on an index
// that counts no bytes, as the broker's was, against SetWithin on one that
// counts them and checks both bounds.
func BenchmarkRetainedSet(b *testing.B) {
	topics := make([]string, 1000)
	for i := range topics {
		topics[i] = fmt.Sprintf("bench/%d/state", i)
	}
	size := func(topic string, v []byte) int64 { return int64(len(topic) + len(v)) }
	payload := make([]byte, 64)
	b.Run("Set", func(b *testing.B) {
		r := NewRetained[[]byte]()
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			r.Set(topics[i%len(topics)], payload)
			i++
		}
	})
	b.Run("SetWithin", func(b *testing.B) {
		r := NewSizedRetained(size)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := r.SetWithin(topics[i%len(topics)], payload, 1<<20, 1<<30); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}
