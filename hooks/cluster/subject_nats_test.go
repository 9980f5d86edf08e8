package cluster

import (
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vanemq/vanemq/core/topics"
	"github.com/vanemq/vanemq/hooks/cluster/natsdev"
)

// natsFilters and natsTopics are the filters and topics checked against a
// real nats-server: wildcards, '$' topics, empty levels, non-ASCII UTF-8
// and the characters NATS gives a meaning to ('.', '*', '>') or that the
// encoding uses ('=').
var (
	natsFilters = []string{
		"#", "+", "+/+", "+/x", "+/#", "/#", "+/", "//", "/+",
		"a", "a/b", "a/+", "a/#", "a/+/b", "a//b", "a//#", "/a", "a/",
		"$SYS/#", "$SYS/+", "$SYS", "$x", "$x/#", "$x/+", "x",
		"été/+", "€/😀", "sensors/été/#",
		"a.b/#", "a.b", "*", ">", "*/>", "*/#", "=", "=/+", "=3D", "a=2Eb",
		"a b/+", " ", "\t/#",
	}
	natsTopics = []string{
		"a", "a/b", "a/b/c", "a/x/b", "a//b", "a//b/c", "/a", "a/", "/", "//", "///",
		"$SYS", "$SYS/broker/uptime", "$SYS/x", "$x", "$x/x", "$x/y/z", "$", "x", "y/x", "x/x",
		"été", "été/x", "€/😀", "sensors/été", "sensors/été/1",
		"a.b", "a.b/c", "a.b.c", "*", ">", "*/>", "=", "=/y", "=3D", "a=2Eb", "a b/c", " ", "\t/x",
	}
)

// withMoreTopics returns topics and n more, drawn at random (with a fixed
// seed) from an alphabet of the characters that matter here.
func withMoreTopics(given []string, n int) []string {
	r := rand.New(rand.NewPCG(18, 4721))
	alphabet := []rune("ab/$ .*>=xé€😀_-")
	out := slices.Clone(given)
	for want := len(out) + n; len(out) < want; {
		var sb strings.Builder
		for range 1 + r.IntN(7) {
			sb.WriteRune(alphabet[r.IntN(len(alphabet))])
		}
		t := sb.String()
		if topics.ValidateTopicName(t) == nil && utf8.ValidString(t) && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// natsMayDeliver reports whether NATS, which knows nothing of MQTT's '$'
// rule, is expected to deliver topic to filter's subjects: when MQTT
// matching does, and also when only [MQTT-4.7.2-1] (a filter starting
// with a wildcard does not match a topic starting with '$') keeps it
// from matching.
func natsMayDeliver(filter, topic string) bool {
	if topics.MatchFilter(filter, topic) {
		return true
	}
	return strings.HasPrefix(topic, "$") && (filter[0] == '+' || filter[0] == '#') &&
		topics.MatchFilter(filter, "S"+topic[1:])
}

// TestSubjectsOnNATS checks the mapping against a real nats-server: a
// subscription to every subject of Filter(f) receives the publishes on
// Topic(t) of exactly the topics MQTT matching (core/topics' Trie) gives
// f, each once, plus the '$' topics that [MQTT-4.7.2-1] keeps from a
// filter starting with a wildcard: NATS cannot exclude those, so the
// receiving node's own matching must (Filter's comment says so). And
// every Topic(t) is a JetStream KV key that stores and reads back.
func TestSubjectsOnNATS(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c, err := natsdev.Start(ctx, natsdev.Options{Nodes: 1, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	nc, err := nats.Connect(c.URL(0), nats.NoReconnect())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)

	const prefix = "vanemq.m"
	all := withMoreTopics(natsTopics, 250)
	trie := topics.NewTrie()
	type natsSub struct {
		filter, subject string
		sub             *nats.Subscription
	}
	var subs []natsSub
	for _, f := range natsFilters {
		if err := topics.ValidateFilter(f); err != nil {
			t.Fatalf("bad test filter %q: %v", f, err)
		}
		trie.Subscribe(topics.Subscription{ClientID: f, Filter: f})
		for _, s := range Filter(prefix, f) {
			sub, err := nc.SubscribeSync(s)
			if err != nil {
				t.Fatalf("filter %q: NATS refuses subject %q: %v", f, s, err)
			}
			subs = append(subs, natsSub{f, s, sub})
		}
	}

	// want[topic] is the filters MQTT matching gives the topic.
	want := map[string][]string{}
	var res topics.Matches
	subjects := map[string]string{} // subject → topic, to catch two topics on one subject
	for _, topic := range all {
		subj := prefix + "." + Topic(topic)
		if other, dup := subjects[subj]; dup {
			t.Fatalf("topics %q and %q share subject %q", other, topic, subj)
		}
		subjects[subj] = topic
		res.Reset()
		trie.Match(topic, &res)
		for _, s := range res.Subs {
			want[topic] = append(want[topic], s.Filter)
		}
		if err := nc.Publish(subj, []byte(topic)); err != nil {
			t.Fatalf("publish %q (topic %q): %v", subj, topic, err)
		}
	}
	// One connection publishes and subscribes: once the server has
	// answered the flush, every delivery is in a subscription's queue.
	if err := nc.FlushTimeout(10 * time.Second); err != nil {
		t.Fatal(err)
	}

	got := map[string]map[string]int{} // filter → topic → deliveries
	deadline := time.Now().Add(10 * time.Second)
	for _, s := range subs {
		n, _, err := s.sub.Pending()
		if err != nil {
			t.Fatal(err)
		}
		for range n {
			m, err := s.sub.NextMsg(time.Until(deadline))
			if err != nil {
				t.Fatalf("subject %q: %d queued, next: %v", s.subject, n, err)
			}
			topic := string(m.Data)
			if back, err := DecodeTopic(strings.TrimPrefix(m.Subject, prefix+".")); err != nil || back != topic {
				t.Errorf("subject %q decodes to %q, %v; it was published for %q", m.Subject, back, err, topic)
			}
			if got[s.filter] == nil {
				got[s.filter] = map[string]int{}
			}
			got[s.filter][topic]++
		}
	}

	var dollar []string
	for _, topic := range all {
		for _, f := range natsFilters {
			n := got[f][topic]
			mqtt := slices.Contains(want[topic], f)
			switch {
			case mqtt && n != 1:
				t.Errorf("filter %q (subjects %q) got topic %q (subject %q) %d times, want once",
					f, Filter(prefix, f), topic, Topic(topic), n)
			case !mqtt && n > 0 && !natsMayDeliver(f, topic):
				t.Errorf("filter %q (subjects %q) got topic %q (subject %q), which it does not match",
					f, Filter(prefix, f), topic, Topic(topic))
			case !mqtt && n > 0:
				dollar = append(dollar, f+" ← "+topic)
			case !mqtt && natsMayDeliver(f, topic):
				t.Errorf("filter %q (subjects %q) did not get '$' topic %q (subject %q): "+
					"NATS is expected to deliver it and the receiver to drop it [MQTT-4.7.2-1]",
					f, Filter(prefix, f), topic, Topic(topic))
			}
		}
	}
	t.Logf("%d topics published; %d deliveries NATS makes that MQTT does not ([MQTT-4.7.2-1], "+
		"left to the receiver's matching), e.g. %q", len(all), len(dollar), dollar[:min(4, len(dollar))])

	// Every Topic(t) is a KV key: Put and Get it back (nats.go validates
	// keys, the server stores them as subjects).
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "topics"})
	if err != nil {
		t.Fatal(err)
	}
	for _, topic := range all {
		key := Topic(topic)
		if _, err := kv.Put(ctx, key, []byte(topic)); err != nil {
			t.Fatalf("KV Put(%q) for topic %q: %v", key, topic, err)
		}
	}
	for _, topic := range all {
		key := Topic(topic)
		e, err := kv.Get(ctx, key)
		if err != nil || string(e.Value()) != topic {
			t.Fatalf("KV Get(%q) for topic %q = %v; want the topic back", key, topic, err)
		}
	}
}
