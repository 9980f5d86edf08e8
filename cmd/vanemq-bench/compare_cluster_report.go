package main

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// clusterReport is everything the cluster command's markdown and tables
// show: the cells as compare has them, the ratios of deliveries per broker
// CPU-second to single's, and the latency the cluster adds.
type clusterReport struct {
	report
	Ratios  []clusterRatio
	Latency []clusterLatency
}

// hookBrokerOnly names single+hook measured on its broker's CPU alone,
// without the cluster dev process that runs its NATS server.
const hookBrokerOnly = clusterSingleHook + " (broker only)"

// clusterRatio compares one configuration with single in one scenario.
type clusterRatio struct {
	Scenario scenarioSpec
	Config   string // clusterSingleHook, hookBrokerOnly or clusterAcross
	// Single and Other are the medians of deliveries per broker
	// CPU-second; ok is false for a configuration without a successful run.
	Single, Other     float64
	SingleOK, OtherOK bool
	// OfMedians is Other ÷ Single; 0 when either is missing.
	OfMedians float64
	// Spread is Other ÷ Single per round, each of two runs made one after
	// the other; the target is decided on its median.
	Spread spread
	// Target is the least median Other ÷ Single, 0 for none; Status is
	// statusPass, statusFail or statusNoData, "" without a target.
	Target float64
	Status string
}

// clusterLatency is the latency a configuration adds to single's in one
// scenario, in µs.
type clusterLatency struct {
	Scenario scenarioSpec
	Config   string
	// AddedP50 and AddedP99 are the configuration's median p50 and p99
	// minus single's; ok is false without a successful run of both.
	AddedP50, AddedP99 float64
	OK                 bool
	// P50 and P99 are the differences per round.
	P50, P99 spread
}

// spread is a set of per-round values: their median, lowest and highest.
type spread struct {
	Values           []float64
	Median, Min, Max float64
}

// newSpread summarizes xs.
func newSpread(xs []float64) spread {
	s := spread{Values: xs, Median: math.NaN(), Min: math.NaN(), Max: math.NaN()}
	for i, v := range xs {
		if i == 0 {
			s.Min, s.Max = v, v
		}
		s.Min, s.Max = min(s.Min, v), max(s.Max, v)
	}
	if len(xs) > 0 {
		s.Median = median(xs)
	}
	return s
}

// buildClusterReport aggregates the run records into a report.
func buildClusterReport(env envInfo, o *compareOptions, scenarios []scenarioSpec, records []runRecord) *clusterReport {
	rep := &clusterReport{report: report{
		Env:       env,
		Rounds:    o.rounds,
		Duration:  o.duration,
		Warmup:    o.warmup,
		Quick:     o.quick,
		Command:   clusterCommandLine(o.args),
		Scenarios: scenarios,
		Brokers:   clusterConfigNames(),
		Cells:     summarize(records),
	}}
	for _, r := range records {
		if r.Err != nil {
			rep.Failures = append(rep.Failures, r)
		}
	}
	rep.Ratios = clusterRatios(scenarios, records)
	rep.Latency = clusterLatencies(scenarios, records)
	return rep
}

// pairedRounds applies f to the results of configurations a and b in each
// round of scenario where both succeeded, and returns the values f
// accepts, round by round.
func pairedRounds(records []runRecord, scenario, a, b string, f func(a, b *benchResult) (float64, bool)) []float64 {
	type pair struct{ a, b *benchResult }
	var rounds []pair
	for i := range records {
		r := &records[i]
		if r.Scenario != scenario || r.Err != nil {
			continue
		}
		for len(rounds) <= r.Round {
			rounds = append(rounds, pair{})
		}
		switch r.Broker {
		case a:
			rounds[r.Round].a = &r.Result
		case b:
			rounds[r.Round].b = &r.Result
		}
	}
	var out []float64
	for _, p := range rounds {
		if p.a == nil || p.b == nil {
			continue
		}
		if v, ok := f(p.a, p.b); ok {
			out = append(out, v)
		}
	}
	return out
}

// brokerOnlyPerCPU is a single+hook run's deliveries per CPU-second of its
// broker alone, the first of its processes; ok is false for a run without
// the CPU time of each.
func brokerOnlyPerCPU(r *benchResult) (float64, bool) {
	if len(r.BrokerCPUSByPID) < 2 || !(r.BrokerCPUSByPID[0] > 0) {
		return 0, false
	}
	return r.DeliveriesPerBrokerCPUS * r.BrokerCPUS / r.BrokerCPUSByPID[0], true
}

// clusterRatios computes single+hook ÷ single (with and without the NATS
// process's CPU) and across ÷ single of deliveries per broker CPU-second in
// the throughput scenarios.
func clusterRatios(scenarios []scenarioSpec, records []runRecord) []clusterRatio {
	cells := summarize(records)
	m := perCPUMetric()
	perCPU := func(r *benchResult) (float64, bool) { return r.DeliveriesPerBrokerCPUS, true }
	var rows []clusterRatio
	for _, s := range scenarios {
		if !s.throughputKind() {
			continue
		}
		for _, c := range []string{clusterSingleHook, hookBrokerOnly, clusterAcross} {
			row := clusterRatio{Scenario: s, Config: c}
			row.Single, row.SingleOK = m.value(cells, s.ID, clusterSingle)
			config, get := c, perCPU
			if c == hookBrokerOnly {
				config, get = clusterSingleHook, brokerOnlyPerCPU
				var xs []float64
				for i := range records {
					if r := &records[i]; r.Scenario == s.ID && r.Broker == config && r.Err == nil {
						if v, ok := get(&r.Result); ok {
							xs = append(xs, v)
						}
					}
				}
				row.Other, row.OtherOK = median(xs), len(xs) > 0
			} else {
				row.Other, row.OtherOK = m.value(cells, s.ID, c)
			}
			if row.SingleOK && row.OtherOK {
				if v, ok := ratio(row.Other, row.Single); ok && !math.IsInf(v, 0) {
					row.OfMedians = v
				}
			}
			row.Spread = newSpread(pairedRounds(records, s.ID, config, clusterSingle, func(o, single *benchResult) (float64, bool) {
				ov, ok := get(o)
				if !ok {
					return 0, false
				}
				v, ok := ratio(ov, single.DeliveriesPerBrokerCPUS)
				return v, ok && !math.IsInf(v, 0)
			}))
			if c == clusterSingleHook {
				row.Target, row.Status = targetHookRatio, statusNoData
				if len(row.Spread.Values) > 0 {
					row.Status = passFail(row.Spread.Median >= targetHookRatio)
				}
			}
			rows = append(rows, row)
		}
	}
	return rows
}

// clusterLatencies computes the latency single+hook and across add to
// single's in the latency scenarios.
func clusterLatencies(scenarios []scenarioSpec, records []runRecord) []clusterLatency {
	cells := summarize(records)
	var rows []clusterLatency
	for _, s := range scenarios {
		if s.Kind != scenarioLatency {
			continue
		}
		for _, c := range []string{clusterSingleHook, clusterAcross} {
			row := clusterLatency{Scenario: s, Config: c, AddedP50: math.NaN(), AddedP99: math.NaN()}
			single, ok1 := cells[cellKey{s.ID, clusterSingle}]
			other, ok2 := cells[cellKey{s.ID, c}]
			if ok1 && ok2 && single.OK > 0 && other.OK > 0 {
				row.AddedP50, row.AddedP99, row.OK = other.P50-single.P50, other.P99-single.P99, true
			}
			diff := func(get func(*benchResult) float64) spread {
				return newSpread(pairedRounds(records, s.ID, c, clusterSingle, func(o, single *benchResult) (float64, bool) {
					return get(o) - get(single), get(o) > 0 && get(single) > 0
				}))
			}
			row.P50 = diff(func(r *benchResult) float64 { return r.P50us })
			row.P99 = diff(func(r *benchResult) float64 { return r.P99us })
			rows = append(rows, row)
		}
	}
	return rows
}

// fmtSpread formats a spread's lowest and highest with f, "–" for none.
func fmtSpread(s spread, f func(float64) string) string {
	if len(s.Values) == 0 {
		return "–"
	}
	return f(s.Min) + " – " + f(s.Max)
}

// fmtRatio3 formats a ratio with three decimals, such as 0.895×: with two,
// a median just under the target would read as on it.
func fmtRatio3(v float64) string {
	return strconv.FormatFloat(v, 'f', 3, 64) + "×"
}

// fmtAdded formats a latency difference in µs with its sign.
func fmtAdded(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	if v >= 0 {
		return "+" + fmtNum(v)
	}
	return fmtNum(v)
}

// renderClusterTables writes the result sections: the medians and their
// spread, the ratios to single, the latency added, and the failed runs.
func renderClusterTables(w io.Writer, rep *clusterReport) {
	base := rep.report
	base.Failures = nil // listed below, after the ratios
	renderTables(w, &base)

	if len(rep.Ratios) > 0 {
		fmt.Fprintln(w, "## ÷ single")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Deliveries per broker CPU-second of each configuration over single's. *Per round* divides the")
		fmt.Fprintln(w, "two runs of each round, made one after the other: their median decides the target, and their")
		fmt.Fprintln(w, "lowest and highest show the spread. *single+hook (broker only)* counts its broker's CPU alone,")
		fmt.Fprintln(w, "without the cluster dev process that runs its NATS server.")
		fmt.Fprintln(w)
		var rows [][]string
		for _, r := range rep.Ratios {
			val := func(v float64, ok bool) string {
				if !ok {
					return "–"
				}
				return fmtNum(v)
			}
			rat := func(v float64) string {
				if v > 0 && !math.IsNaN(v) {
					return fmtRatio3(v)
				}
				return "–"
			}
			target := "–"
			if r.Target > 0 {
				target = fmt.Sprintf("%s (≥ %.2f×)", r.Status, r.Target)
			}
			rows = append(rows, []string{r.Scenario.ID, r.Config + " ÷ single", val(r.Single, r.SingleOK), val(r.Other, r.OtherOK),
				rat(r.OfMedians), rat(r.Spread.Median), fmtSpread(r.Spread, fmtRatio3), strconv.Itoa(len(r.Spread.Values)), target})
		}
		writeTable(w, []string{"scenario", "ratio", "single", "other", "÷ of medians", "÷ per round, median", "÷ per round, min – max", "rounds", "target"},
			"llrrrrrrl", rows)
	}

	if len(rep.Latency) > 0 {
		fmt.Fprintln(w, "## Latency added to single's")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "The configuration's median p50 and p99 minus single's, in µs, and the differences per round (two")
		fmt.Fprintln(w, "runs made one after the other). For across it is the cost of the hop from node n1 to node n2.")
		fmt.Fprintln(w)
		var rows [][]string
		for _, r := range rep.Latency {
			rows = append(rows, []string{r.Scenario.ID, r.Config, fmtAdded(r.AddedP50), fmtSpread(r.P50, fmtAdded),
				fmtAdded(r.AddedP99), fmtSpread(r.P99, fmtAdded), strconv.Itoa(len(r.P99.Values))})
		}
		writeTable(w, []string{"scenario", "config", "added p50 µs", "per round, min – max", "added p99 µs", "per round, min – max", "rounds"},
			"llrrrrr", rows)
	}

	if len(rep.Failures) > 0 {
		fmt.Fprintln(w, "## Failed runs")
		fmt.Fprintln(w)
		for _, f := range rep.Failures {
			fmt.Fprintf(w, "- %s, round %d, %s: %s\n", f.Scenario, f.Round+1, f.Broker, truncate(oneLine(f.Err.Error()), 600))
		}
		fmt.Fprintln(w)
	}
}

// renderClusterMarkdown writes the whole report: setup, method,
// configurations, scenarios, results and how to read them.
func renderClusterMarkdown(w io.Writer, rep *clusterReport) {
	e := rep.Env
	fmt.Fprintln(w, "# Benchmark: what clustering costs")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "<!-- Generated by `make bench-cluster` (bin/vanemq-bench cluster). Do not edit: run it again. -->")
	fmt.Fprintln(w)
	if rep.Quick {
		fmt.Fprintln(w, "**This is a quick smoke run (-quick: one round of 2 s per scenario); its numbers are noisy.**")
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "Issue 18: deliveries per broker CPU-second for pairs and fan-out across two nodes, against the")
	fmt.Fprintln(w, "same load on one node; the latency a cross-node hop adds (p50, p99); and a single node with the")
	fmt.Fprintf(w, "cluster hook and no remote interest at least %.1f× a node without it. Every ratio below comes\n", targetHookRatio)
	fmt.Fprintln(w, "from the one run this file was generated by.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "## Setup")
	fmt.Fprintln(w)
	nofile := "unknown"
	if e.NoFile.Cur > 0 {
		nofile = strconv.FormatUint(e.NoFile.Cur, 10)
	}
	writeTable(w, []string{"", ""}, "ll", [][]string{
		{"date", e.Started.UTC().Format("2006-01-02 15:04 UTC")},
		{"machine", fmt.Sprintf("%s, %d logical CPUs, %s", e.CPU, e.Cores, e.Kernel)},
		{"Go", e.GoVersion},
		{"vanemq", e.Vanemq + " (git describe)"},
		{"open files limit", nofile + " for every process"},
	})

	fmt.Fprintln(w, "## How to reproduce")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "```sh")
	fmt.Fprintf(w, "make bench-cluster ROUNDS=%d BENCH_DURATION=%s    # this file's run\n", rep.Rounds, rep.Duration)
	fmt.Fprintln(w, "make bench-cluster                                # ROUNDS=3 BENCH_DURATION=10s, longer and steadier")
	fmt.Fprintln(w, "```")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "`make bench-cluster` builds `bin/vanemq` and `bin/vanemq-bench` and runs:")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "```sh")
	fmt.Fprintln(w, rep.Command)
	fmt.Fprintln(w, "```")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Add `-run REGEXP` to run only the scenarios whose ID matches, or `-quick` for a smoke run.")
	fmt.Fprintln(w)

	fmt.Fprintln(w, "## Configurations")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "- **single**: `bin/vanemq --config FILE` with the settings of a `vanemq cluster dev` node (the")
	fmt.Fprintln(w, "  built-in defaults, one TCP listener, a pebble store of its own) and no cluster. Its CPU is that")
	fmt.Fprintln(w, "  process's.")
	fmt.Fprintf(w, "- **single+hook**: the same with the `cluster` section, joined as node `%s` to the NATS server of\n", clusterHookNode)
	fmt.Fprintln(w, "  a separate `bin/vanemq cluster dev --nodes 1` process, whose own node n1 stays idle. Publishers")
	fmt.Fprintln(w, "  and subscribers are on the one node: its interest is all local, none remote. Its CPU is the")
	fmt.Fprintln(w, "  broker's plus the whole cluster dev process's (NATS server and idle node), summed by")
	fmt.Fprintln(w, "  `-broker-pid PID,PID`; the *broker only* rows count the broker's alone.")
	fmt.Fprintln(w, "- **across**: `bin/vanemq cluster dev --nodes 2 --port 0`: one process running 2 clustered NATS")
	fmt.Fprintln(w, "  servers (JetStream on) and 2 nodes, n1 joined through the first, n2 through the second.")
	fmt.Fprintln(w, "  Publishers connect to n1, subscribers to n2 (`-sub-addr`): every message crosses from one")
	fmt.Fprintln(w, "  node to the other over NATS. Its CPU is that whole process's, **both NATS servers included**:")
	fmt.Fprintln(w, "  what a two-node cluster costs on this machine, not what one vanemq node does.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "single+hook's configuration (single's is the same without the `cluster` lines):")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "```yaml")
	fmt.Fprint(w, singleHookConfig(1883, "/tmp/…/store", "nats://127.0.0.1:PORT"))
	fmt.Fprintln(w, "```")
	fmt.Fprintln(w)

	fmt.Fprintln(w, "## Method")
	fmt.Fprintln(w)
	fmt.Fprintf(w, "- Everything runs on one machine over loopback: the brokers, NATS and the load generator share its\n"+
		"  %d logical CPUs. For every scenario and round each configuration is started fresh on free ports\n"+
		"  with empty data directories, the generator runs %s of warm-up and then measures for %s, and the\n"+
		"  processes are stopped.\n", e.Cores, rep.Warmup, rep.Duration)
	fmt.Fprintf(w, "- %s. The configurations alternate, and their order alternates per round (single, single+hook,\n"+
		"  across; then across, single+hook, single; …), so that drift in the machine's state falls on all\n"+
		"  alike. The tables show medians over the rounds of the runs that succeeded.\n", nounCount(rep.Rounds, "round"))
	fmt.Fprintln(w, "- *Deliveries/CPU-s* divides the deliveries that arrived inside the window by the user + system")
	fmt.Fprintln(w, "  CPU time of the configuration's processes over the window (from /proc). The warm-up also lets")
	fmt.Fprintln(w, "  n2's subscriptions reach n1 before the window opens.")
	fmt.Fprintln(w, "- MQTT 3.1.1 clients with clean sessions, 64-byte payloads, as `vanemq-bench compare` runs them.")
	fmt.Fprintln(w)

	fmt.Fprintln(w, "## Scenarios")
	fmt.Fprintln(w)
	var rows [][]string
	for _, s := range rep.Scenarios {
		rows = append(rows, []string{s.ID, s.Title, "`" + strings.Join(s.toolArgs(rep.Duration, rep.Warmup), " ") + "`"})
	}
	writeTable(w, []string{"ID", "scenario", "vanemq-bench flags"}, "lll", rows)

	fmt.Fprintln(w, "## How to read it")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "- *single+hook ÷ single* is what the cluster hook costs a node whose clients' interest is all")
	fmt.Fprintf(w, "  local; the issue wants at least %.1f×. The NATS process's CPU is in it, though with no remote\n", targetHookRatio)
	fmt.Fprintln(w, "  interest it should carry next to nothing: a ratio under 1 is the hook's own work per message.")
	fmt.Fprintln(w, "- *across ÷ single* is what a delivery costs when it crosses two nodes, set against one node")
	fmt.Fprintln(w, "  doing all the work: the whole cluster dev process (two nodes and two NATS servers) is measured,")
	fmt.Fprintln(w, "  so a message is handled by the publisher's node, NATS (twice, the servers being clustered),")
	fmt.Fprintln(w, "  and the subscriber's node. 0.5× would mean a delivery across costs twice the CPU of one on a")
	fmt.Fprintln(w, "  single node. Deliveries/s is bounded by the 2 cores shared with the load generator, so compare")
	fmt.Fprintln(w, "  per CPU-second, not per second.")
	fmt.Fprintln(w, "- Across, QoS 0 messages cross over core NATS, one NATS message per message and node that has")
	fmt.Fprintln(w, "  interest; QoS 1 ones are handed to the target node's JetStream inbox, one stored message per")
	fmt.Fprintln(w, "  message and target node, and PUBACK waits for JetStream's acknowledgement (hooks/cluster,")
	fmt.Fprintln(w, "  forward.go). Fan-out 1→50 crosses once per message and fans out on n2; pairs cross once per")
	fmt.Fprintln(w, "  delivery, so pairs show the per-message cost of the crossing and fan-out its amortized one.")
	fmt.Fprintln(w, "- *Latency added* is across's (or single+hook's) p50 and p99 minus single's at the same paced")
	fmt.Fprintf(w, "  rate (%d msg/s): for across, the cross-node hop over NATS.\n", clusterLatencyRate)
	fmt.Fprintln(w, "- *Loss* counts the messages sent inside the window that had not arrived 2 s after it (the")
	fmt.Fprintln(w, "  generator's drain), QoS 1 included: a configuration that falls behind the publishers shows it")
	fmt.Fprintln(w, "  there, and its deliveries/s then count what arrived inside the window, late ones not.")
	fmt.Fprintln(w, "- The spreads show how much a figure moves from round to round on this shared machine: a ratio")
	fmt.Fprintln(w, "  whose range straddles a target is not settled by this run.")
	fmt.Fprintln(w)

	renderClusterTables(w, rep)
}
