package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// writeJSON writes r as one JSON object and a newline.
func writeJSON(w io.Writer, r *runResult) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// writeText writes r as a readable report.
func writeText(w io.Writer, r *runResult) error {
	var b strings.Builder
	line := func(name, format string, args ...any) {
		fmt.Fprintf(&b, "  %-11s %s\n", name, fmt.Sprintf(format, args...))
	}
	fmt.Fprintf(&b, "vanemq-bench %s: %s\n", r.Scenario, describeSetup(r))
	if r.Label != "" {
		line("label", "%s", r.Label)
	}
	switch r.Scenario {
	case scenarioConns:
		line("connected", "%s connections in %.3f s: %s connects/s", thousands(int64(r.Conns)), r.DurationS, thousands(int64(r.ConnectPerS)))
		line("held", "%s, then closed", r.hold)
	case scenarioSilent:
		writeSilentText(line, r)
	default:
		line("window", "%.3f s after %s of warm-up; drained %.3f s", r.DurationS, r.warmup, r.drained.Seconds())
		line("sent", "%s messages", thousands(r.Sent))
		line("expected", "%s deliveries (%d per message)", thousands(r.Expected), r.fan)
		line("received", "%s deliveries of them by the drain's end, loss %.3f %%", thousands(r.Received), r.LossPct)
		line("throughput", "%s deliveries/s (%s arrived inside the window)", thousands(int64(r.DeliveriesPerS)), thousands(r.arrived))
		if r.latN > 0 {
			line("latency", "p50 %.1f µs, p99 %.1f µs, p99.9 %.1f µs, mean %.1f µs, max %.1f µs (%s samples)",
				r.P50us, r.P99us, r.P999us, r.meanUS, r.maxUS, thousands(int64(r.latN)))
		}
	}
	span := "the window"
	switch r.Scenario {
	case scenarioConns:
		span = "connecting"
	case scenarioSilent:
		span = fmt.Sprintf("the run (%.3f s)", r.DurationS)
	}
	if len(r.brokerPIDs) == 0 {
		line("broker", "not measured (no -broker-pid)")
		line("generator", "%.3f s CPU during %s", r.BenchCPUS, span)
	} else {
		perCPU := ""
		if r.Scenario != scenarioConns && r.Scenario != scenarioSilent {
			perCPU = fmt.Sprintf(": %s deliveries per CPU-second", thousands(int64(r.DeliveriesPerBrokerCPUS)))
		}
		pids := "pid " + joinPIDs(r.brokerPIDs)
		if len(r.brokerPIDs) > 1 {
			each := make([]string, len(r.BrokerCPUSByPID))
			for i, s := range r.BrokerCPUSByPID {
				each[i] = strconv.FormatFloat(s, 'f', 3, 64) + " s"
			}
			pids = "pids " + joinPIDs(r.brokerPIDs) + " together (" + strings.Join(each, " + ") + ")"
		}
		line("broker", "%s, %.3f s CPU during %s%s", pids, r.BrokerCPUS, span, perCPU)
		switch r.Scenario {
		case scenarioConns:
			line("memory", "VmRSS %s before, %s after: %s bytes per connection",
				mib(r.rssBefore), mib(r.BrokerRSSBytes), thousands(r.BytesPerConn))
		case scenarioSilent: // in the waves' lines
		default:
			line("memory", "VmRSS %s at the end", mib(r.BrokerRSSBytes))
		}
		line("generator", "%.3f s CPU, %.1f %% of generator + broker CPU", r.BenchCPUS, 100*r.BenchCPUShare)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// describeSetup is the report's first line after the scenario's name.
func describeSetup(r *runResult) string {
	version := "MQTT 3.1.1"
	if r.MQTT == 5 {
		version = "MQTT 5"
	}
	s := fmt.Sprintf("%s, %s", r.Transport, version)
	switch r.Scenario {
	case scenarioConns:
		return s
	case scenarioSilent:
		return s + ", " + describeSilent(r)
	}
	s += fmt.Sprintf(", QoS %d, %d-byte payloads, ", r.QoS, r.Size)
	switch r.Scenario {
	case scenarioPairs:
		s += fmt.Sprintf("%d pairs", r.Pairs)
	default:
		s += fmt.Sprintf("%d publisher%s → %d subscriber%s", r.Publishers, pluralS(r.Publishers), r.Subscribers, pluralS(r.Subscribers))
	}
	if r.Scenario == scenarioFanout {
		s += fmt.Sprintf(" on %s, %d topic%s", r.Filter, r.Topics, pluralS(r.Topics))
	}
	if r.rate > 0 {
		s += fmt.Sprintf(", paced at %s msgs/s", thousands(int64(r.rate)))
	} else {
		s += ", flat out"
	}
	if r.QoS > 0 {
		s += fmt.Sprintf(", inflight %d", r.inflight)
	}
	return s
}

// pluralS returns "s" unless n is 1.
func pluralS(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// thousands formats n with thousands separators: 1234567 as 1,234,567.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// mib formats a byte count in MiB.
func mib(n int64) string {
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}
