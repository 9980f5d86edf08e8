package main

import (
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vanemq/vanemq/core/topics"
)

// Scenario names, as given to -scenario.
const (
	scenarioFanin   = "fanin"
	scenarioFanout  = "fanout"
	scenarioPairs   = "pairs"
	scenarioLatency = "latency"
	scenarioConns   = "conns"
	scenarioSilent  = "silent"
)

// Transport names, as given to -transport.
const (
	transportTCP = "tcp"
	transportTLS = "tls"
	transportWS  = "ws"
	transportWSS = "wss"
)

// Defaults and bounds of the command line.
const (
	// defaultLatencyRate is the total message rate of the latency scenario
	// when -rate is 0.
	defaultLatencyRate = 10000
	// minPayload is the smallest -size: the payload carries an 8-byte send
	// timestamp.
	minPayload = 8
	// maxPayload is the largest -size accepted.
	maxPayload = 64 << 20
	// maxClients bounds -publishers, -subscribers, -pairs and -conns.
	maxClients = 1_000_000
	// defaultSilentConns is -conns of the silent scenario when the flag is
	// not given: the count of issue 15's measurement.
	defaultSilentConns = 2000
	// defaultSend is -send: a CONNECT's fixed header declaring a remaining
	// length of 1,048,570 bytes (just under 1 MiB).
	defaultSend = "10faff3f"
	// maxSend bounds the bytes of -send.
	maxSend = 64 << 10
	// maxWaves bounds -waves.
	maxWaves = 1000
	// maxTopics bounds -topics.
	maxTopics = 1_000_000
	// defaultFanoutTopic is fan-out's topic, and its subscribers' filter,
	// unless -topic-pattern and -filter say otherwise.
	defaultFanoutTopic = "bench/fanout"
	// topicNumber is the placeholder of -topic-pattern for a topic's number.
	topicNumber = "{n}"
	// clientPlaceholder is the placeholder of -username for a client's role
	// letter and number (s0, p0, …).
	clientPlaceholder = "{c}"
)

// benchUsage is printed before the flag list for -h and for bad usage.
const benchUsage = `Usage: vanemq-bench -scenario fanin|fanout|pairs|latency|conns|silent [flags]
       vanemq-bench compare [flags]   (vanemq-bench compare -h for its flags)
       vanemq-bench acl [flags]       (vanemq-bench acl -h for its flags)
       vanemq-bench cluster [flags]   (vanemq-bench cluster -h for its flags)

A load generator for MQTT brokers. Scenarios:
  fanin    -publishers P publish on bench/fanin/{i}; one subscriber on bench/fanin/+
  fanout   one publisher on bench/fanout; -subscribers S subscribe to it
           (-topics, -topic-pattern and -filter change the topics)
  pairs    -pairs N publisher/subscriber pairs, each on bench/pairs/{i}
  latency  one publisher, one subscriber on bench/latency, paced at -rate;
           reports p50/p99/p99.9 latency
  conns    opens -conns C idle connections with -dialers concurrent dialers;
           reports connects/s and broker memory per connection
  silent   -waves W waves of -conns C connections (2000 unless given) that
           each send -send HEX (a CONNECT declaring 1 MiB by default) and
           then nothing; with -silent-connect each first completes CONNECT.
           Holds each wave for -hold, reports the broker's memory per
           connection per wave and the worst, connections the broker
           closed, and the connect latency of a healthy client meanwhile

Message scenarios measure for -duration after every SUBACK and -warmup, then
drain up to -drain for late deliveries. Every payload starts with an 8-byte
send timestamp. Loss sets the messages sent inside the window against their
deliveries, late ones included; throughput counts the deliveries that
arrived inside the window. With -broker-pid the broker's CPU time in the
window and its memory are read from /proc (summed over the PIDs given: the
processes of a cluster). With -sub-addr the subscribers connect to another
broker than the publishers: a message that crosses a cluster.

Flags:
`

// benchConfig is the parsed command line of a load-generator run.
type benchConfig struct {
	Scenario string
	Addr     string // host:port of the broker
	// SubAddr is the host:port the message scenarios' subscribers connect
	// to: -sub-addr, Addr unless given (another node of a cluster).
	SubAddr     string
	Transport   string // tcp, tls, ws or wss
	WSPath      string // HTTP path of the WebSocket endpoint
	TLSInsecure bool   // skip certificate verification (tls, wss)
	MQTT        byte   // protocol version: 4 (3.1.1) or 5
	QoS         byte
	Size        int // payload bytes
	Publishers  int // fanin
	Subscribers int // fanout
	Pairs       int // pairs
	Conns       int // conns
	Duration    time.Duration
	Warmup      time.Duration
	Rate        int // total messages per second; 0: the scenario's default
	Inflight    int // unacknowledged QoS 1/2 messages per publisher
	// BrokerPIDs are the broker's processes, whose CPU times and VmRSS
	// are summed (a cluster's); none: no broker metrics.
	BrokerPIDs []int
	Label      string
	JSON       bool
	Drain      time.Duration // longest wait for late deliveries
	Hold       time.Duration // conns: how long the connections stay open
	Dialers    int           // concurrent connection set-ups
	Waves      int           // silent: waves of connections
	Send       string        // silent: hex of the bytes each connection sends
	// SilentConnect makes each silent connection complete CONNECT before
	// it sends Send.
	SilentConnect bool
	// Filter is what fan-out's subscribers subscribe to; "" for the
	// publisher's topic, when it has only one.
	Filter string
	// Topics is how many topics fan-out's publisher rotates over, message
	// by message; TopicPattern, comma-separated patterns with topicNumber,
	// makes them (see fanoutTopics).
	Topics       int
	TopicPattern string
	// Username and Password are every client's credentials ("" for none);
	// clientPlaceholder in Username is replaced by the client's role letter
	// and number.
	Username string
	Password string
}

// rate returns the total message rate the scenario runs at: -rate, or for
// the latency scenario its default when -rate is 0. Zero means as fast as
// possible.
func (c *benchConfig) rate() int {
	if c.Rate == 0 && c.Scenario == scenarioLatency {
		return defaultLatencyRate
	}
	return c.Rate
}

// parseBenchFlags parses the load generator's command line. Usage and flag
// errors are printed to stderr; -h returns flag.ErrHelp.
func parseBenchFlags(args []string, stderr io.Writer) (benchConfig, error) {
	var c benchConfig
	fs := flag.NewFlagSet("vanemq-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), benchUsage)
		fs.PrintDefaults()
	}
	var mqtt, qos uint
	fs.StringVar(&c.Scenario, "scenario", "", "`name` of the scenario: fanin, fanout, pairs, latency, conns or silent (required)")
	fs.StringVar(&c.Addr, "addr", "127.0.0.1:1883", "broker `host:port`")
	fs.StringVar(&c.SubAddr, "sub-addr", "", "`host:port` the subscribers of fanin, fanout, pairs and latency connect to, such as another node of a cluster (default: -addr)")
	fs.StringVar(&c.Transport, "transport", transportTCP, "`transport`: tcp, tls, ws or wss")
	fs.StringVar(&c.WSPath, "ws-path", "/mqtt", "HTTP `path` of the WebSocket endpoint (ws, wss)")
	fs.BoolVar(&c.TLSInsecure, "tls-insecure", false, "do not verify the broker's certificate (tls, wss)")
	fs.UintVar(&mqtt, "mqtt", 4, "MQTT `version`: 4 (3.1.1) or 5")
	fs.UintVar(&qos, "qos", 0, "`QoS` of publications and subscriptions: 0, 1 or 2")
	fs.IntVar(&c.Size, "size", 64, fmt.Sprintf("payload `bytes`, at least %d (the send timestamp)", minPayload))
	fs.IntVar(&c.Publishers, "publishers", 8, "`number` of publishers (fanin)")
	fs.IntVar(&c.Subscribers, "subscribers", 50, "`number` of subscribers (fanout)")
	fs.IntVar(&c.Pairs, "pairs", 100, "`number` of publisher/subscriber pairs (pairs)")
	fs.IntVar(&c.Conns, "conns", 10000, fmt.Sprintf("`number` of idle connections (conns), of connections per wave (silent: %d unless given)", defaultSilentConns))
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "measurement `window`")
	fs.DurationVar(&c.Warmup, "warmup", time.Second, "unmeasured `time` of load before the window")
	fs.IntVar(&c.Rate, "rate", 0, fmt.Sprintf("total `msgs/s` over all publishers; 0 means %d for latency and as fast as possible elsewhere", defaultLatencyRate))
	fs.IntVar(&c.Inflight, "inflight", 100, "unacknowledged QoS 1/2 `messages` per publisher (capped by the broker's Receive Maximum)")
	pids := fs.String("broker-pid", "", "`PIDs` of the broker's processes, comma-separated, for their CPU time and memory from /proc, summed (the processes of a cluster)")
	fs.StringVar(&c.Label, "label", "", "free `text` copied into the report")
	fs.BoolVar(&c.JSON, "json", false, "print the result as one JSON object")
	fs.DurationVar(&c.Drain, "drain", 2*time.Second, "longest `time` to wait for late deliveries after the window")
	fs.DurationVar(&c.Hold, "hold", 2*time.Second, "`time` the connections stay open after connecting (conns, silent: per wave)")
	fs.IntVar(&c.Dialers, "dialers", 64, "concurrent connection set-ups (`number`)")
	fs.IntVar(&c.Waves, "waves", 3, "`number` of waves of connections, each closed before the next (silent)")
	fs.StringVar(&c.Send, "send", defaultSend, "`hex` of the bytes each connection sends before going silent (silent); the default is a CONNECT declaring 1 MiB")
	fs.BoolVar(&c.SilentConnect, "silent-connect", false, "complete an MQTT CONNECT on each connection before sending -send, e.g. 30faff3f, a PUBLISH declaring 1 MiB (silent)")
	fs.StringVar(&c.Filter, "filter", "", "`filter` fan-out's subscribers subscribe to, such as #; empty for the publisher's topic, when -topics is 1 (fanout)")
	fs.IntVar(&c.Topics, "topics", 1, "`number` of topics fan-out's publisher rotates over, message by message (fanout)")
	fs.StringVar(&c.TopicPattern, "topic-pattern", defaultFanoutTopic, "comma-separated topic `patterns` of fan-out's publisher: topic i is pattern i mod P with "+topicNumber+" replaced by i div P (fanout)")
	fs.StringVar(&c.Username, "username", "", "user `name` every client connects with; "+clientPlaceholder+" is replaced by the client's role letter and number (s0, p0, …)")
	fs.StringVar(&c.Password, "password", "", "`password` every client connects with (needs -username)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	conns := false
	fs.Visit(func(f *flag.Flag) { conns = conns || f.Name == "conns" })
	if c.Scenario == scenarioSilent && !conns {
		c.Conns = defaultSilentConns
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	c.MQTT, c.QoS = byte(min(mqtt, 255)), byte(min(qos, 255))
	if c.SubAddr == "" {
		c.SubAddr = c.Addr
	}
	var perr error
	c.BrokerPIDs, perr = parsePIDs(*pids)
	if err := errors.Join(perr, c.validate()); err != nil {
		fmt.Fprintf(stderr, "vanemq-bench: %v\nRun vanemq-bench -h for the flags.\n", err)
		return c, err
	}
	return c, nil
}

// validate checks the flags' values and their combination.
func (c *benchConfig) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	scenarios := []string{scenarioFanin, scenarioFanout, scenarioPairs, scenarioLatency, scenarioConns, scenarioSilent}
	switch {
	case c.Scenario == "":
		bad("-scenario is required (%s)", strings.Join(scenarios, ", "))
	case !slices.Contains(scenarios, c.Scenario):
		bad("-scenario %q is not one of %s", c.Scenario, strings.Join(scenarios, ", "))
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		bad("-addr %q: %v", c.Addr, err)
	}
	if _, _, err := net.SplitHostPort(c.SubAddr); err != nil {
		bad("-sub-addr %q: %v", c.SubAddr, err)
	}
	if !slices.Contains([]string{transportTCP, transportTLS, transportWS, transportWSS}, c.Transport) {
		bad("-transport %q is not tcp, tls, ws or wss", c.Transport)
	}
	if !strings.HasPrefix(c.WSPath, "/") {
		bad("-ws-path %q must start with /", c.WSPath)
	}
	if c.MQTT != 4 && c.MQTT != 5 {
		bad("-mqtt %d is not 4 or 5", c.MQTT)
	}
	if c.QoS > 2 {
		bad("-qos %d is not 0, 1 or 2", c.QoS)
	}
	if c.Size < minPayload || c.Size > maxPayload {
		bad("-size %d is outside %d..%d", c.Size, minPayload, maxPayload)
	}
	count := func(name string, n int) {
		if n < 1 || n > maxClients {
			bad("-%s %d is outside 1..%d", name, n, maxClients)
		}
	}
	switch c.Scenario {
	case scenarioFanin:
		count("publishers", c.Publishers)
	case scenarioFanout:
		count("subscribers", c.Subscribers)
		if _, err := c.fanoutTopics(); err != nil {
			errs = append(errs, err)
		}
		switch {
		case c.Filter != "":
			if err := topics.ValidateFilter(c.Filter); err != nil {
				bad("-filter %q: %v", c.Filter, err)
			}
		case c.Topics > 1:
			bad("-topics %d needs -filter: the subscribers' filter, such as #", c.Topics)
		}
	case scenarioPairs:
		count("pairs", c.Pairs)
	case scenarioConns:
		count("conns", c.Conns)
	case scenarioSilent:
		count("conns", c.Conns)
		if c.Waves < 1 || c.Waves > maxWaves {
			bad("-waves %d is outside 1..%d", c.Waves, maxWaves)
		}
		if b, err := hex.DecodeString(c.Send); err != nil {
			bad("-send %q is not hex: %v", c.Send, err)
		} else if len(b) > maxSend {
			bad("-send has %d bytes, more than %d", len(b), maxSend)
		}
	}
	if c.Duration <= 0 {
		bad("-duration %s must be positive", c.Duration)
	}
	if c.Warmup < 0 {
		bad("-warmup %s is negative", c.Warmup)
	}
	if c.Drain < 0 {
		bad("-drain %s is negative", c.Drain)
	}
	if c.Hold < 0 {
		bad("-hold %s is negative", c.Hold)
	}
	if c.Rate < 0 {
		bad("-rate %d is negative", c.Rate)
	}
	if c.Inflight < 1 || c.Inflight > 65535 {
		bad("-inflight %d is outside 1..65535", c.Inflight)
	}
	if c.Password != "" && c.Username == "" {
		// MQTT 3.1.1 forbids it [MQTT-3.1.2-22].
		bad("-password needs -username")
	}
	if c.Dialers < 1 || c.Dialers > 10000 {
		bad("-dialers %d is outside 1..10000", c.Dialers)
	}
	return errors.Join(errs...)
}

// fanoutTopics returns the topics fan-out's publisher rotates over: Topics
// topics, of which the i-th is the (i mod P)-th of TopicPattern's P
// comma-separated patterns with topicNumber replaced by i div P. With
// "public/news/{n},sensors/{n}/temperature" and 4 topics they are
// public/news/0, sensors/0/temperature, public/news/1 and
// sensors/1/temperature. It is an error for the topics not to be valid
// topic names or not to be distinct.
func (c *benchConfig) fanoutTopics() ([]string, error) {
	if c.Topics < 1 || c.Topics > maxTopics {
		return nil, fmt.Errorf("-topics %d is outside 1..%d", c.Topics, maxTopics)
	}
	patterns := strings.Split(c.TopicPattern, ",")
	out := make([]string, c.Topics)
	seen := make(map[string]struct{}, c.Topics)
	for i := range out {
		t := strings.ReplaceAll(patterns[i%len(patterns)], topicNumber, strconv.Itoa(i/len(patterns)))
		if err := topics.ValidateTopicName(t); err != nil {
			return nil, fmt.Errorf("-topic-pattern %q: topic %d, %q: %w", c.TopicPattern, i, t, err)
		}
		if _, dup := seen[t]; dup {
			return nil, fmt.Errorf("-topic-pattern %q makes %q twice in -topics %d: give each pattern %s", c.TopicPattern, t, c.Topics, topicNumber)
		}
		seen[t] = struct{}{}
		out[i] = t
	}
	return out, nil
}

// username is the user name of the index-th client of a role (see
// benchEnv.clientID), "" when the clients connect without one.
func (c *benchConfig) username(role byte, index int) string {
	return strings.ReplaceAll(c.Username, clientPlaceholder, string(role)+strconv.Itoa(index))
}

// maxPIDs bounds the processes of -broker-pid.
const maxPIDs = 64

// parsePIDs parses -broker-pid: "" for none, or comma-separated positive
// process IDs, each at most once.
func parsePIDs(s string) ([]int, error) {
	if s == "" {
		return nil, nil
	}
	parts := strings.Split(s, ",")
	if len(parts) > maxPIDs {
		return nil, fmt.Errorf("-broker-pid %q: %d PIDs, at most %d", s, len(parts), maxPIDs)
	}
	pids := make([]int, 0, len(parts))
	for _, p := range parts {
		pid, err := strconv.Atoi(strings.TrimSpace(p))
		switch {
		case err != nil:
			return nil, fmt.Errorf("-broker-pid %q: %q is not a process ID", s, p)
		case pid <= 0:
			return nil, fmt.Errorf("-broker-pid %q: %d is not a positive process ID", s, pid)
		case slices.Contains(pids, pid):
			return nil, fmt.Errorf("-broker-pid %q: %d twice: its CPU time would count twice", s, pid)
		}
		pids = append(pids, pid)
	}
	return pids, nil
}
