package storage

import (
	"context"
	"fmt"
	"testing"

	"github.com/vanemq/vanemq/core"
)

// BenchmarkNATSScan compares two ways of reading a bucket of 10,000
// records on one embedded NATS server: the engine's scan (one ordered
// consumer delivering the last message of every subject) and listing
// the keys then getting each. Run with
//
//	go test -run '^$' -bench NATSScan -benchtime 20x ./hooks/storage/
func BenchmarkNATSScan(b *testing.B) {
	const sessions, subs = 100, 99 // with the session records, 10,000
	c := startNATS(b, 1)
	st, err := Open(context.Background(), Config{Type: TypeNATS, NATS: NATSConfig{URLs: c.URLs(), Prefix: "scan"}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	for i := range sessions {
		client := fmt.Sprintf("client-%d", i)
		ops := []core.StoreOp{{Kind: core.OpSessionPut, ClientID: client, Expiry: 60}}
		for j := range subs {
			ops = append(ops, core.StoreOp{Kind: core.OpSubscriptionPut, ClientID: client, Subscription: core.StoredSubscription{Filter: fmt.Sprintf("topic/%d/#", j), QoS: 1}})
		}
		done := make(chan error, 1)
		st.Apply(ops, func(err error) { done <- err })
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
	e := st.eng.(*natsEngine)
	ctx := context.Background()
	const want = sessions * (subs + 1)
	b.Run("ordered-consumer", func(b *testing.B) {
		for range b.N {
			n := 0
			if err := e.scan(ctx, func(space, string, []byte, []byte) error { n++; return nil }); err != nil {
				b.Fatal(err)
			}
			if n != want {
				b.Fatalf("scan visited %d records, want %d", n, want)
			}
		}
		b.ReportMetric(float64(want)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
	})
	b.Run("list-keys-get", func(b *testing.B) {
		for range b.N {
			lister, err := e.kv.ListKeys(ctx)
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			for k := range lister.Keys() {
				entry, err := e.kv.Get(ctx, k)
				if err != nil {
					b.Fatal(err)
				}
				if _, _, _, _, err := parseNATSRecord(entry.Key(), entry.Value()); err != nil {
					b.Fatal(err)
				}
				n++
			}
			if n != want+1 { // and the schema record
				b.Fatalf("listed %d keys, want %d", n, want+1)
			}
		}
		b.ReportMetric(float64(want)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
	})
}
