// Command vanemq-bench is vanemq's load generator: a lean MQTT 3.1.1 and 5
// client, built on vanemq's own codec (core/packets), that drives a broker
// with one of six scenarios and reports throughput, loss, latency, and the
// broker's CPU time and memory read from /proc.
//
// Usage:
//
//	vanemq-bench -scenario fanin|fanout|pairs|latency|conns|silent [flags]
//	vanemq-bench compare [flags]
//	vanemq-bench acl [flags]
//	vanemq-bench cluster [flags]
//
// The scenarios:
//
//   - fanin: -publishers P publish on bench/fanin/{i}; one subscriber
//     subscribes to bench/fanin/+.
//   - fanout: one publisher publishes on bench/fanout; -subscribers S
//     subscribe to it.
//   - pairs: -pairs N publisher/subscriber pairs, each on bench/pairs/{i}.
//   - latency: one publisher and one subscriber on bench/latency, paced at
//     -rate messages per second (10000 by default); reports the p50, p99
//     and p99.9 latency of every delivery in the window.
//   - conns: opens -conns C idle connections, -dialers at a time, and
//     reports the connect rate and the broker's memory per connection
//     ((VmRSS after - VmRSS before) / C); holds them for -hold, then closes
//     them.
//   - silent: the memory a client can make the broker hold for what it
//     sent (issue 15). -waves W waves (3 by default), each of -conns C
//     connections (2000 unless given, -dialers at a time) that send the
//     bytes of -send HEX and then nothing. The default, 10faff3f, is a
//     CONNECT's fixed header declaring 1,048,570 bytes; with
//     -silent-connect each connection first completes an MQTT CONNECT
//     (-mqtt, a client identifier of its own) and then sends -send, such as
//     30faff3f, a PUBLISH declaring as much. A wave is held for -hold while
//     the broker's VmRSS is read every 50 ms; its memory per connection is
//     (the highest reading - VmRSS before the wave) / C, and also over
//     VmRSS before the first wave, so that memory kept from wave to wave
//     counts. Meanwhile a healthy client connects 5 times, spread over the
//     hold, and round-trips a PINGREQ; its connect latency (dial to
//     CONNACK, p50 and max) and failed attempts are reported, and a failed
//     attempt is a result, not a failure of the run. Connections the broker
//     closes (as vanemq does with a CONNECT larger than max_connect_size)
//     are counted. Each wave is closed, without DISCONNECT, 1 s before the
//     next; the report gives each wave's figures and the worst.
//
// Issue 15's measurement of silent connections, before and after CONNECT,
// against a running vanemq:
//
//	vanemq-bench -scenario silent -conns 2000 -waves 3 -broker-pid $(pidof vanemq)
//	vanemq-bench -scenario silent -conns 2000 -waves 3 -silent-connect -send 30faff3f -broker-pid $(pidof vanemq)
//
// A message scenario connects and subscribes every subscriber, connects
// every publisher, loads the broker for -warmup, measures for -duration,
// stops the publishers, and waits up to -drain for late deliveries. Every
// payload starts with the time it was sent (8 bytes, nanoseconds on the
// tool's monotonic clock). Loss sets the messages sent inside the window
// against their deliveries, late ones included, and their latencies are
// recorded. Throughput counts the deliveries that arrived inside the window,
// whatever their send time: under a load the broker cannot keep up with,
// QoS 0 messages wait for seconds in the sockets' buffers, and the window
// then mostly sees messages sent before it. Publishers write many PUBLISH
// packets per write, copied from one encoded template; at QoS 0 they write
// as fast as the socket takes them, at QoS 1 and 2 they keep -inflight
// messages unacknowledged. Each connection has one reader goroutine, which
// reads deliveries and acknowledgements in place and answers a whole read's
// worth of packets with one write of acknowledgements.
//
// With -broker-pid the broker's CPU time (utime + stime of /proc/PID/stat)
// is measured over the window (conns: while connecting; silent: the whole
// run), and its VmRSS is
// read from /proc/PID/status; -broker-pid takes a comma-separated list, whose
// processes' figures are summed (a cluster's nodes and NATS servers). With
// -sub-addr the subscribers of a message scenario connect to another broker
// address than the publishers, such as another node of a cluster. The report gives deliveries per broker
// CPU-second and the generator's own share of the CPU time. -json prints
// one JSON object instead of the text report.
//
// `vanemq-bench compare` runs a matrix of scenarios against vanemq and
// peer brokers; see vanemq-bench compare -h. `vanemq-bench acl` runs
// fan-out 1→50 on # against vanemq with and without auth.file, interleaved,
// and reports what read permission checked at delivery costs (issue 17);
// see vanemq-bench acl -h. `vanemq-bench cluster` runs pairs, fan-out and
// latency against one vanemq node, one with the cluster hook, and a
// two-node cluster (vanemq cluster dev) with the subscribers on the second
// node, interleaved, and reports what clustering costs (issue 18); see
// vanemq-bench cluster -h.
//
// Exit status: 0 on success, 1 when the run fails (a refused or dropped
// connection, a protocol error from the broker, an unreadable /proc entry),
// 2 for bad usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := runCLI(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// runCLI is the whole program: it runs the compare, acl or cluster command or one
// scenario, writes the result to stdout and errors to stderr, and returns
// the exit status.
func runCLI(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	commands := map[string]func(context.Context, []string, io.Writer, io.Writer) error{
		"compare": runCompare,
		"acl":     runACL,
		"cluster": runClusterCmd,
	}
	if len(args) > 0 && commands[args[0]] != nil {
		if err := commands[args[0]](ctx, args[1:], stdout, stderr); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			fmt.Fprintf(stderr, "vanemq-bench: %v\n", err)
			return 1
		}
		return 0
	}
	cfg, err := parseBenchFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	res, err := runBench(ctx, cfg)
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("interrupted: %w", err)
		}
		fmt.Fprintf(stderr, "vanemq-bench: %v\n", err)
		return 1
	}
	if cfg.JSON {
		err = writeJSON(stdout, &res)
	} else {
		err = writeText(stdout, &res)
	}
	if err != nil {
		fmt.Fprintf(stderr, "vanemq-bench: write result: %v\n", err)
		return 1
	}
	return 0
}
