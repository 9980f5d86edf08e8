package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// compareUsage is printed for -h and for bad usage of the compare command.
const compareUsage = `Usage: vanemq-bench compare [flags]

Benchmarks vanemq against mochi-mqtt and Mosquitto on loopback. For every
scenario of the matrix and every round it starts each broker fresh on a free
port (in an order that alternates per round), runs vanemq-bench -json against
it, and stops it. It prints the medians, the vanemq/peer ratios and the
targets, and writes them with the method and machine to -out. It exits
non-zero if a vanemq run fails or a broker has no successful run; failed
peer runs are listed in the report.

Flags:
`

// Broker names, in the order of the first round.
const (
	brokerVanemq    = "vanemq"
	brokerMochi     = "mochi"
	brokerMosquitto = "mosquitto"
)

// brokerNames lists the compared brokers in the order of the first round.
func brokerNames() []string {
	return []string{brokerVanemq, brokerMochi, brokerMosquitto}
}

// compareOptions is the parsed command line of the compare command.
type compareOptions struct {
	vanemqBin    string         // the vanemq broker binary
	mochiBin     string         // the peer-mochi binary
	mosquittoBin string         // the mosquitto binary
	rounds       int            // runs of each (scenario, broker)
	duration     time.Duration  // measured time of each run
	warmup       time.Duration  // unmeasured time before each run
	out          string         // the markdown file to write; "" for none
	quick        bool           // smoke mode: 2 s runs, 1 round
	filter       *regexp.Regexp // selects scenarios by ID; nil for all
	args         []string       // the arguments as given, for the report

	// profileDir, when not empty, is where each vanemq run writes a CPU
	// profile of the broker (vanemq --cpuprofile), named by profileName.
	profileDir string

	// tool is the vanemq-bench binary run for each scenario: this program
	// itself, unless a test sets another.
	tool string
	// startTimeout bounds the wait for a broker's port to accept.
	startTimeout time.Duration
	// stopTimeout bounds the wait for a broker to exit after SIGTERM.
	stopTimeout time.Duration
}

// Defaults of the compare command.
const (
	defaultRounds       = 3
	defaultDuration     = 10 * time.Second
	quickDuration       = 2 * time.Second
	defaultStartTimeout = 15 * time.Second
	defaultStopTimeout  = 15 * time.Second
	// toolSlack is added to warm-up plus duration to bound one tool run.
	toolSlack = 2 * time.Minute
)

// runCompare is the compare command: args are the arguments after
// "compare" (a leading "compare" is skipped too). It writes the tables to
// stdout and progress and diagnostics to stderr. It returns an error for bad
// usage, when a binary is missing, when ctx ends, or, after writing the
// report, when a vanemq run failed or a broker had no successful run (see
// failureError); failed peer runs alone only warn.
func runCompare(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "compare" {
		args = args[1:]
	}
	opts, err := parseCompareFlags(args, stderr)
	if err != nil {
		return err
	}
	tool, err := os.Executable()
	if err != nil {
		return fmt.Errorf("compare: find own executable: %w", err)
	}
	opts.tool = tool
	return opts.run(ctx, stdout, stderr)
}

// parseCompareFlags parses the compare command's flags. -h returns
// flag.ErrHelp after printing the usage to stderr.
func parseCompareFlags(args []string, stderr io.Writer) (*compareOptions, error) {
	fs := flag.NewFlagSet("vanemq-bench compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), compareUsage)
		fs.PrintDefaults()
	}
	o := &compareOptions{
		args:         append([]string(nil), args...),
		startTimeout: defaultStartTimeout,
		stopTimeout:  defaultStopTimeout,
	}
	fs.StringVar(&o.vanemqBin, "vanemq", "bin/vanemq", "the vanemq broker `binary`")
	fs.StringVar(&o.mochiBin, "mochi", "bin/peer-mochi", "the mochi-mqtt peer `binary` (built from cmd/vanemq-bench/peers/mochi)")
	fs.StringVar(&o.mosquittoBin, "mosquitto", "mosquitto", "the Mosquitto `binary`; looked up in PATH, then /usr/sbin")
	fs.IntVar(&o.rounds, "rounds", defaultRounds, "`runs` of each scenario per broker; the report shows medians")
	fs.DurationVar(&o.duration, "duration", defaultDuration, "measured `time` of each run")
	fs.StringVar(&o.out, "out", "docs/benchmarks.md", "write the report to `FILE`; empty for none")
	fs.BoolVar(&o.quick, "quick", false, "smoke test: 2s runs, 1 round")
	fs.StringVar(&o.profileDir, "profile", "", "write a CPU profile of every vanemq run into `DIR` (vanemq --cpuprofile), named scenario.broker.round.pprof")
	run := fs.String("run", "", "only run the scenarios whose ID matches `REGEXP` (IDs such as fanin-q0-64, conns-10000)")
	if err := o.parseFlags(fs, args, run, "compare"); err != nil {
		return nil, err
	}
	return o, nil
}

// parseFlags parses args with fs into o, whose flags fs defines, and
// checks them: no arguments, -quick, rounds and duration in range, the
// warm-up, and the -run pattern (run, read once parsed) compiled into
// o.filter. cmd names
// the command in errors.
func (o *compareOptions) parseFlags(fs *flag.FlagSet, args []string, run *string, cmd string) error {
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("%s: unexpected argument %q", cmd, fs.Arg(0))
	}
	if o.quick {
		o.rounds, o.duration = 1, quickDuration
	}
	if o.rounds < 1 {
		return fmt.Errorf("%s: -rounds must be at least 1, got %d", cmd, o.rounds)
	}
	if o.duration <= 0 {
		return fmt.Errorf("%s: -duration must be positive, got %s", cmd, o.duration)
	}
	o.warmup = warmupFor(o.duration)
	if *run != "" {
		re, err := regexp.Compile(*run)
		if err != nil {
			return fmt.Errorf("%s: -run: %w", cmd, err)
		}
		o.filter = re
	}
	return nil
}

// warmupFor is the warm-up before a run of duration d: a fifth of it,
// between 200 ms and 2 s.
func warmupFor(d time.Duration) time.Duration {
	return min(max(d/5, 200*time.Millisecond), 2*time.Second)
}

// runRecord is the outcome of one run of one scenario against one broker.
type runRecord struct {
	Scenario string // scenarioSpec.ID
	Broker   string
	Round    int // 0-based
	Result   benchResult
	Err      error // non-nil when the run failed; Result is then zero
}

// run runs the whole comparison, writes the report and prints the tables.
func (o *compareOptions) run(ctx context.Context, stdout, stderr io.Writer) error {
	scenarios := selectScenarios(scenarioMatrix(), o.filter)
	if len(scenarios) == 0 {
		return fmt.Errorf("compare: -run %q matches no scenario", o.filter)
	}
	bins, err := o.resolveBinaries()
	if err != nil {
		return err
	}
	if o.profileDir != "" {
		if err := os.MkdirAll(o.profileDir, 0o755); err != nil {
			return fmt.Errorf("compare: -profile: %w", err)
		}
	}
	limit, err := raiseNoFileLimit()
	if err != nil {
		fmt.Fprintf(stderr, "compare: warning: %v\n", err)
	}
	env := gatherEnv(ctx, bins)
	env.NoFile = limit
	env.Started = time.Now()

	dir, err := os.MkdirTemp("", "vanemq-bench-compare-")
	if err != nil {
		return fmt.Errorf("compare: temp dir: %w", err)
	}
	defer os.RemoveAll(dir)

	brokers := brokerNames()
	records, err := o.runMatrix(ctx, "compare", scenarios, brokers, stderr, func(sc scenarioSpec, b string, round int) runRecord {
		return o.runOnce(ctx, dir, bins, sc, b, round)
	})
	if err != nil {
		return err
	}

	rep := buildReport(env, o, scenarios, brokers, records)
	var md bytes.Buffer
	renderMarkdown(&md, rep)
	if o.out != "" {
		if err := os.WriteFile(o.out, md.Bytes(), 0o644); err != nil {
			return fmt.Errorf("compare: write report: %w", err)
		}
	}
	renderTables(stdout, rep)
	if o.out != "" {
		fmt.Fprintf(stderr, "compare: wrote %s\n", o.out)
	}
	return failureError(records, brokers, stderr)
}

// runMatrix runs every scenario against every broker, round after round,
// the brokers in the order roundOrder gives, each run by runOnce, and
// returns the records of the runs. It reports progress to stderr, the lines
// starting with cmd. Only an interruption (ctx ending) is an error; failed
// runs are records.
func (o *compareOptions) runMatrix(ctx context.Context, cmd string, scenarios []scenarioSpec,
	brokers []string, stderr io.Writer, runOnce func(sc scenarioSpec, broker string, round int) runRecord) ([]runRecord, error) {
	total := 0
	for _, sc := range scenarios {
		total += o.roundsOf(sc) * len(brokers)
	}
	fmt.Fprintf(stderr, "%s: %d scenarios × %d rounds%s × %d brokers = %d runs of %s (+%s warm-up)\n",
		cmd, len(scenarios), o.rounds, moreRounds(scenarios, o), len(brokers), total, o.duration, o.warmup)
	var records []runRecord
	for _, sc := range scenarios {
		for round := range o.roundsOf(sc) {
			for _, b := range roundOrder(brokers, round) {
				rec := runOnce(sc, b, round)
				if ctx.Err() != nil {
					return nil, fmt.Errorf("%s: interrupted: %w", cmd, context.Cause(ctx))
				}
				records = append(records, rec)
				fmt.Fprintf(stderr, "[%d/%d] %s\n", len(records), total, describeRecord(rec))
			}
		}
	}
	return records, nil
}

// roundsOf is how many rounds scenario s runs: -rounds, or the scenario's
// own least number when it is higher, except in a -quick run.
func (o *compareOptions) roundsOf(s scenarioSpec) int {
	if o.quick {
		return o.rounds
	}
	return max(o.rounds, s.Rounds)
}

// moreRounds names the scenarios that run more rounds than -rounds, such as
// " (9 for pairs-q1-64)", or is "" when none does.
func moreRounds(scenarios []scenarioSpec, o *compareOptions) string {
	var parts []string
	for _, s := range scenarios {
		if n := o.roundsOf(s); n > o.rounds {
			parts = append(parts, fmt.Sprintf("%d for %s", n, s.ID))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// failureError decides the exit status after failed runs. A peer that fails
// some runs under load is a result, reported in the tables and with a
// warning; a failed vanemq run, or a broker without a single successful run
// (a broken setup rather than a result), is an error.
func failureError(records []runRecord, brokers []string, stderr io.Writer) error {
	failed, vanemqFailed := 0, 0
	ok := map[string]int{}
	for _, r := range records {
		switch {
		case r.Err == nil:
			ok[r.Broker]++
		case r.Broker == brokerVanemq:
			vanemqFailed++
			failed++
		default:
			failed++
		}
	}
	if failed == 0 {
		return nil
	}
	var none []string
	for _, b := range brokers {
		if ok[b] == 0 {
			none = append(none, b)
		}
	}
	switch {
	case len(none) > 0:
		return fmt.Errorf("compare: %d of %d runs failed (listed in the report); no run of %s succeeded",
			failed, len(records), strings.Join(none, ", "))
	case vanemqFailed > 0:
		return fmt.Errorf("compare: %d of %d runs failed (listed in the report), %d of them vanemq's",
			failed, len(records), vanemqFailed)
	}
	fmt.Fprintf(stderr, "compare: warning: %d of %d peer runs failed (listed in the report)\n", failed, len(records))
	return nil
}

// describeRecord is a one-line progress summary of a run.
func describeRecord(r runRecord) string {
	head := fmt.Sprintf("%s round %d %s:", r.Scenario, r.Round+1, r.Broker)
	if r.Err != nil {
		return head + " FAILED: " + r.Err.Error()
	}
	res := r.Result
	switch {
	case res.Scenario == "conns":
		return fmt.Sprintf("%s %s connects/s, %s bytes/conn", head, fmtNum(res.ConnectPerS), fmtNum(res.BytesPerConn))
	case res.Scenario == "silent":
		return fmt.Sprintf("%s %s bytes/conn (%s from the start), %s closed by the broker, healthy client served %d of %d, connect max %s",
			head, fmtNum(res.BytesPerConn), fmtNum(res.BytesPerConnFromStart), thousands(int64(res.ClosedByBroker)),
			res.HealthyAttempts-res.HealthyFailed, res.HealthyAttempts, fmtUS(res.HealthyMaxUS))
	case res.Scenario == "latency":
		return fmt.Sprintf("%s p50 %s µs, p99 %s µs, p99.9 %s µs, loss %s", head,
			fmtNum(res.P50us), fmtNum(res.P99us), fmtNum(res.P999us), fmtPct(res.LossPct))
	default:
		return fmt.Sprintf("%s %s deliveries/s, %s per broker CPU-s, loss %s", head,
			fmtNum(res.DeliveriesPerS), fmtNum(res.DeliveriesPerBrokerCPUS), fmtPct(res.LossPct))
	}
}

// roundOrder is the order in which the brokers run in round (0-based): as
// given in even rounds, reversed in odd ones, so that no broker always runs
// first or last (A B C, C B A, A B C, …).
func roundOrder(brokers []string, round int) []string {
	order := append([]string(nil), brokers...)
	if round%2 == 1 {
		for i, j := 0, len(order)-1; i < j; i, j = i+1, j-1 {
			order[i], order[j] = order[j], order[i]
		}
	}
	return order
}

// runOnce starts broker b, runs scenario sc against it and stops it.
func (o *compareOptions) runOnce(ctx context.Context, dir string, bins brokerBinaries, sc scenarioSpec, b string, round int) runRecord {
	rec := runRecord{Scenario: sc.ID, Broker: b, Round: round}
	port, err := freePort()
	if err != nil {
		rec.Err = err
		return rec
	}
	argv, err := brokerCommand(b, bins, dir, port)
	if err != nil {
		rec.Err = err
		return rec
	}
	if o.profileDir != "" && isVanemq(b) {
		argv = append(argv, "--cpuprofile", filepath.Join(o.profileDir, profileName(sc.ID, b, round)))
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	proc, err := startBroker(ctx, argv, addr, o.startTimeout)
	if err != nil {
		rec.Err = err
		return rec
	}
	res, runErr := o.runTool(ctx, sc, toolTarget{addr: addr, pids: []int{proc.pid()}}, b)
	stopErr := proc.stop(o.stopTimeout)
	switch {
	case runErr != nil:
		if tail := proc.output(); tail != "" {
			runErr = fmt.Errorf("%w; broker output: %s", runErr, tail)
		}
		rec.Err = runErr
	case stopErr != nil:
		rec.Err = stopErr
	default:
		rec.Result = res
	}
	return rec
}

// toolTarget is what one run of the load generator drives and measures.
type toolTarget struct {
	addr string
	// subAddr is where the subscribers connect ("" for addr): another
	// node of a cluster.
	subAddr string
	// pids are the broker's processes, whose CPU times are summed.
	pids []int
}

// runTool runs the load generator for sc against target and parses its
// JSON result.
func (o *compareOptions) runTool(ctx context.Context, sc scenarioSpec, target toolTarget, label string) (benchResult, error) {
	args := append(sc.toolArgs(o.duration, o.warmup), "-addr", target.addr)
	if target.subAddr != "" {
		args = append(args, "-sub-addr", target.subAddr)
	}
	args = append(args, "-broker-pid", joinPIDs(target.pids), "-label", label, "-json")
	tctx, cancel := context.WithTimeout(ctx, o.warmup+o.duration+toolSlack)
	defer cancel()
	cmd := exec.CommandContext(tctx, o.tool, args...)
	name := filepath.Base(o.tool) // for messages
	var stdout bytes.Buffer
	stderr := newTailBuffer(4096)
	cmd.Stdout, cmd.Stderr = &stdout, stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = strings.TrimSpace(truncate(stdout.String(), 512))
		}
		return benchResult{}, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, msg)
	}
	res, err := parseBenchResult(stdout.Bytes())
	if err == nil {
		err = checkResult(sc, res)
	}
	if err != nil {
		return benchResult{}, fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return res, nil
}

// checkResult rejects a result that is not for scenario sc, a message
// scenario's result without a single message published inside the window,
// which measures nothing, or a silent one without a healthy attempt.
func checkResult(sc scenarioSpec, res benchResult) error {
	if res.Scenario != sc.Kind {
		return fmt.Errorf("result is for scenario %q, want %q", res.Scenario, sc.Kind)
	}
	if sc.Kind == "silent" {
		if res.HealthyAttempts == 0 {
			return errors.New("no healthy client attempt in the result")
		}
		return nil
	}
	if sc.Topics > 0 && res.Topics != sc.Topics {
		return fmt.Errorf("result is for %d topics, want %d", res.Topics, sc.Topics)
	}
	if sc.Filter != "" && res.Filter != sc.Filter {
		return fmt.Errorf("result is for subscriptions to %q, want %q", res.Filter, sc.Filter)
	}
	if sc.Kind != "conns" && res.Expected == 0 {
		return fmt.Errorf("no message was published inside the measurement window (sent %d): the broker took none", res.Sent)
	}
	return nil
}

// truncate shortens s to at most n bytes, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// benchResult is the JSON object that `vanemq-bench -json` prints for one run.
type benchResult struct {
	Scenario                string    `json:"scenario"`
	Transport               string    `json:"transport"`
	MQTT                    int       `json:"mqtt"`
	QoS                     int       `json:"qos"`
	Size                    int       `json:"size"`
	Publishers              int       `json:"publishers"`
	Subscribers             int       `json:"subscribers"`
	Pairs                   int       `json:"pairs"`
	Conns                   int       `json:"conns"`
	DurationS               float64   `json:"duration_s"`
	Topics                  int       `json:"topics"`
	Filter                  string    `json:"filter"`
	Sent                    int64     `json:"sent"`
	Expected                int64     `json:"expected"`
	Received                int64     `json:"received"`
	LossPct                 float64   `json:"loss_pct"`
	DeliveriesPerS          float64   `json:"deliveries_per_s"`
	BrokerCPUS              float64   `json:"broker_cpu_s"`
	DeliveriesPerBrokerCPUS float64   `json:"deliveries_per_broker_cpu_s"`
	BenchCPUS               float64   `json:"bench_cpu_s"`
	BenchCPUShare           float64   `json:"bench_cpu_share"`
	BrokerCPUSByPID         []float64 `json:"broker_cpu_s_by_pid"`
	P50us                   float64   `json:"p50_us"`
	P99us                   float64   `json:"p99_us"`
	P999us                  float64   `json:"p999_us"`
	ConnectPerS             float64   `json:"connect_per_s"`
	BrokerRSSBytes          float64   `json:"broker_rss_bytes"`
	BytesPerConn            float64   `json:"bytes_per_conn"`
	BytesPerConnFromStart   float64   `json:"bytes_per_conn_from_start"`
	ClosedByBroker          float64   `json:"closed_by_broker"`
	HealthyAttempts         int       `json:"healthy_attempts"`
	HealthyFailed           int       `json:"healthy_failed"`
	HealthyP50us            float64   `json:"healthy_connect_p50_us"`
	HealthyMaxUS            float64   `json:"healthy_connect_max_us"`
	Label                   string    `json:"label"`
}

// errNoResult is returned by parseBenchResult for output without a JSON object.
var errNoResult = errors.New("no JSON result in the output")

// parseBenchResult parses the tool's standard output: exactly one JSON
// object, with nothing but white space around it.
func parseBenchResult(out []byte) (benchResult, error) {
	var res benchResult
	if len(bytes.TrimSpace(out)) == 0 {
		return res, errNoResult
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	if err := dec.Decode(&res); err != nil {
		return benchResult{}, fmt.Errorf("parse JSON result: %w", err)
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err == nil {
			err = errors.New("more than one JSON value")
		}
		return benchResult{}, fmt.Errorf("parse JSON result: after the object: %w", err)
	}
	if res.Scenario == "" {
		return benchResult{}, errors.New("parse JSON result: no scenario field")
	}
	return res, nil
}
