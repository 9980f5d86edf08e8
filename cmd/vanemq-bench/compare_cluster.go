package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clusterUsage is printed for -h and for bad usage of the cluster command.
const clusterUsage = `Usage: vanemq-bench cluster [flags]

Measures what clustering costs (issue 18): pairs and fan-out 1→50 at QoS 0
and 1, and the latency at 2,000 msg/s, QoS 1, in three configurations of
vanemq on loopback:

  single       one vanemq process, one TCP listener, no cluster
  single+hook  the same with the cluster hook joined to a NATS server (that
               of a separate "vanemq cluster dev --nodes 1"), publishers and
               subscribers on the one node: no remote interest
  across       "vanemq cluster dev --nodes 2": one process with 2 NATS
               servers and 2 nodes; publishers on n1, subscribers on n2

For every scenario and round it starts each configuration fresh on free
ports, in an order that alternates per round, runs vanemq-bench -json
against it (-broker-pid summing every process of the configuration), and
stops it. It prints the medians, their spread, and across ÷ single and
single+hook ÷ single of deliveries per broker CPU-second (the latter
against the issue's ≥ 0.9×) and the latency a cross-node hop adds, and
writes them with the method and machine to -out. It exits non-zero if a
run fails.

Flags:
`

// The cluster command's configurations.
const (
	clusterSingle     = "single"
	clusterSingleHook = "single+hook"
	clusterAcross     = "across"
)

// clusterConfigNames lists the configurations in the order of the first
// round.
func clusterConfigNames() []string {
	return []string{clusterSingle, clusterSingleHook, clusterAcross}
}

// Settings of the cluster command.
const (
	// defaultClusterRounds and defaultClusterDuration are its defaults,
	// those of the acl command: a median and a spread of ratios.
	defaultClusterRounds   = 3
	defaultClusterDuration = 5 * time.Second
	// clusterLatencyRate is the latency scenario's rate, the issue's.
	clusterLatencyRate = 2000
	// clusterHookNode is the node name of single+hook's broker: the
	// cluster dev process that runs its NATS server has a node n1 of its
	// own, idle.
	clusterHookNode = "bench"
	// devStartTimeout bounds the start of a cluster dev process, until
	// its ready line: vanemq cluster dev itself allows 60 s.
	devStartTimeout = 90 * time.Second
	// devOutputMax bounds what is kept of a cluster dev process's
	// standard output while waiting for its ready line.
	devOutputMax = 64 << 10
	// targetHookRatio is issue 18's least single+hook ÷ single of
	// deliveries per broker CPU-second.
	targetHookRatio = 0.9
)

// clusterMatrix is the cluster command's scenarios: those of the issue, as
// compare runs them, and the latency at the rate.
func clusterMatrix() []scenarioSpec {
	pairs := func(qos int) scenarioSpec {
		return scenarioSpec{ID: fmt.Sprintf("pairs-q%d-64", qos), Kind: scenarioPairs,
			Title: fmt.Sprintf("100 pairs 1→1, QoS %d, 64 B", qos), MQTT: 4, QoS: qos, Size: 64, Pairs: 100}
	}
	fanout := func(qos int) scenarioSpec {
		return scenarioSpec{ID: fmt.Sprintf("fanout-q%d-64", qos), Kind: scenarioFanout,
			Title: fmt.Sprintf("fan-out 1→50, QoS %d, 64 B", qos), MQTT: 4, QoS: qos, Size: 64, Publishers: 1, Subscribers: 50}
	}
	return []scenarioSpec{
		pairs(0), pairs(1), fanout(0), fanout(1),
		{ID: fmt.Sprintf("latency-q1-64-r%d", clusterLatencyRate), Kind: scenarioLatency,
			Title: fmt.Sprintf("latency 1→1 at %d msg/s, QoS 1, 64 B", clusterLatencyRate),
			MQTT:  4, QoS: 1, Size: 64, Publishers: 1, Subscribers: 1, Rate: clusterLatencyRate},
	}
}

// runClusterCmd is the cluster command: args are the arguments after
// "cluster". It writes the tables to stdout and progress and diagnostics to
// stderr. It returns an error for bad usage, when the vanemq binary is
// missing, when ctx ends, or, after writing the report, when a run failed.
func runClusterCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	opts, err := parseClusterFlags(args, stderr)
	if err != nil {
		return err
	}
	tool, err := os.Executable()
	if err != nil {
		return fmt.Errorf("cluster: find own executable: %w", err)
	}
	opts.tool = tool
	return opts.runCluster(ctx, stdout, stderr)
}

// parseClusterFlags parses the cluster command's flags. -h returns
// flag.ErrHelp after printing the usage to stderr.
func parseClusterFlags(args []string, stderr io.Writer) (*compareOptions, error) {
	fs := flag.NewFlagSet("vanemq-bench cluster", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), clusterUsage)
		fs.PrintDefaults()
	}
	o := &compareOptions{
		args:         append([]string(nil), args...),
		startTimeout: devStartTimeout,
		stopTimeout:  defaultStopTimeout,
	}
	fs.StringVar(&o.vanemqBin, "vanemq", "bin/vanemq", "the vanemq broker `binary`")
	fs.IntVar(&o.rounds, "rounds", defaultClusterRounds, "`runs` of each scenario per configuration; the report shows medians")
	fs.DurationVar(&o.duration, "duration", defaultClusterDuration, "measured `time` of each run")
	fs.StringVar(&o.out, "out", "", "write the report to `FILE`; empty for none")
	fs.BoolVar(&o.quick, "quick", false, "smoke test: 2s runs, 1 round")
	run := fs.String("run", "", "only run the scenarios whose ID matches `REGEXP` (IDs such as pairs-q0-64, latency-q1-64-r2000)")
	if err := o.parseFlags(fs, args, run, "cluster"); err != nil {
		return nil, err
	}
	return o, nil
}

// runCluster runs the measurement, writes the report and prints the tables.
func (o *compareOptions) runCluster(ctx context.Context, stdout, stderr io.Writer) error {
	scenarios := selectScenarios(clusterMatrix(), o.filter)
	if len(scenarios) == 0 {
		return fmt.Errorf("cluster: -run %q matches no scenario", o.filter)
	}
	var bins brokerBinaries
	var err error
	if bins.vanemq, err = lookBinary(o.vanemqBin); err != nil {
		return fmt.Errorf("cluster: vanemq broker: %w (build it with: make build)", err)
	}
	limit, err := raiseNoFileLimit()
	if err != nil {
		fmt.Fprintf(stderr, "cluster: warning: %v\n", err)
	}
	env := gatherEnv(ctx, bins)
	env.NoFile = limit
	env.Started = time.Now()

	dir, err := os.MkdirTemp("", "vanemq-bench-cluster-")
	if err != nil {
		return fmt.Errorf("cluster: temp dir: %w", err)
	}
	defer os.RemoveAll(dir)

	configs := clusterConfigNames()
	n := 0
	records, err := o.runMatrix(ctx, "cluster", scenarios, configs, stderr, func(sc scenarioSpec, c string, round int) runRecord {
		n++
		return o.runClusterOnce(ctx, filepath.Join(dir, "run-"+strconv.Itoa(n)), bins, sc, c, round)
	})
	if err != nil {
		return err
	}
	rep := buildClusterReport(env, o, scenarios, records)
	var md bytes.Buffer
	renderClusterMarkdown(&md, rep)
	if o.out != "" {
		if err := os.WriteFile(o.out, md.Bytes(), 0o644); err != nil {
			return fmt.Errorf("cluster: write report: %w", err)
		}
	}
	renderClusterTables(stdout, rep)
	if o.out != "" {
		fmt.Fprintf(stderr, "cluster: wrote %s\n", o.out)
	}
	if n := len(rep.Failures); n > 0 {
		return fmt.Errorf("cluster: %d of %d runs failed (listed in the report)", n, len(records))
	}
	return nil
}

// clusterCommandLine is the cluster command line for args, quoted for a
// shell.
func clusterCommandLine(args []string) string {
	return strings.Replace(commandLine(args), "bin/vanemq-bench compare", "bin/vanemq-bench cluster", 1)
}

// singleConfig is the single configuration: a cluster dev node's settings
// (the built-in defaults, one TCP listener on 127.0.0.1:port, a pebble
// store in storePath) without the cluster.
func singleConfig(port int, storePath string) string {
	return fmt.Sprintf(`# Written by vanemq-bench cluster: the settings of a vanemq cluster dev node
# (the built-in defaults, one TCP listener, a pebble store), without the cluster.
listeners:
  - id: tcp
    type: tcp
    address: "127.0.0.1:%d"
allow_anonymous: true
storage:
  type: pebble
  path: %q
`, port, storePath)
}

// singleHookConfig is singleConfig with the cluster hook, joined to the
// NATS server at natsURL as node clusterHookNode.
func singleHookConfig(port int, storePath, natsURL string) string {
	cfg := strings.Replace(singleConfig(port, storePath), "without the cluster.",
		"with the cluster hook.", 1)
	return cfg + fmt.Sprintf(`cluster:
  urls: [%q]
  node: %s
`, natsURL, clusterHookNode)
}

// runClusterOnce starts configuration c in dir, runs scenario sc against
// it and stops it.
func (o *compareOptions) runClusterOnce(ctx context.Context, dir string, bins brokerBinaries, sc scenarioSpec, c string, round int) runRecord {
	rec := runRecord{Scenario: sc.ID, Broker: c, Round: round}
	procs, target, err := o.startClusterConfig(ctx, dir, bins, c)
	if err != nil {
		rec.Err = err
		return rec
	}
	res, runErr := o.runTool(ctx, sc, target, c)
	var stopErr error
	for _, p := range procs { // the broker before the NATS server it uses
		if err := p.stop(o.stopTimeout); err != nil && stopErr == nil {
			stopErr = err
		}
	}
	switch {
	case runErr != nil:
		for _, p := range procs {
			if tail := p.output(); tail != "" {
				runErr = fmt.Errorf("%w; output of %s: %s", runErr, filepath.Base(p.cmd.Path), tail)
			}
		}
		rec.Err = runErr
	case stopErr != nil:
		rec.Err = stopErr
	default:
		rec.Result = res
	}
	return rec
}

// startClusterConfig starts the processes of configuration c, with their
// data in dir, and returns them in the order to stop them and the target
// of the load generator. On error nothing is left running.
func (o *compareOptions) startClusterConfig(ctx context.Context, dir string, bins brokerBinaries, c string) (_ []*brokerProc, _ toolTarget, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, toolTarget{}, fmt.Errorf("%s: %w", c, err)
	}
	var procs []*brokerProc
	defer func() {
		if err != nil {
			for _, p := range procs {
				p.kill()
			}
		}
	}()
	if c == clusterAcross {
		p, nodes, err := startClusterDev(ctx, bins.vanemq, 2, filepath.Join(dir, "dev"), o.startTimeout)
		if err != nil {
			return nil, toolTarget{}, err
		}
		procs = append(procs, p)
		return procs, toolTarget{addr: nodes[0].mqtt, subAddr: nodes[1].mqtt, pids: []int{p.pid()}}, nil
	}
	port, err := freePort()
	if err != nil {
		return nil, toolTarget{}, err
	}
	store := filepath.Join(dir, "store")
	text := singleConfig(port, store)
	var nats *brokerProc
	if c == clusterSingleHook {
		var nodes []devNodeAddrs
		nats, nodes, err = startClusterDev(ctx, bins.vanemq, 1, filepath.Join(dir, "nats"), o.startTimeout)
		if err != nil {
			return nil, toolTarget{}, err
		}
		procs = append(procs, nats)
		text = singleHookConfig(port, store, nodes[0].nats)
	}
	cfgPath := filepath.Join(dir, "vanemq.yaml")
	if err := os.WriteFile(cfgPath, []byte(text), 0o644); err != nil {
		return nil, toolTarget{}, fmt.Errorf("write %s config: %w", c, err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	broker, err := startBroker(ctx, []string{bins.vanemq, "--config", cfgPath}, addr, o.startTimeout)
	if err != nil {
		return nil, toolTarget{}, err
	}
	procs = append([]*brokerProc{broker}, procs...)
	pids := []int{broker.pid()}
	if nats != nil {
		pids = append(pids, nats.pid())
	}
	return procs, toolTarget{addr: addr, pids: pids}, nil
}

// devNodeAddrs are the addresses of one node of a cluster dev process, as
// it prints them.
type devNodeAddrs struct {
	name, mqtt, nats string
}

// startClusterDev starts `vanemq cluster dev --nodes nodes --port 0 --dir
// dir` and waits, at most timeout, for its ready line. It returns the
// process and its nodes' addresses; on failure the process is killed.
func startClusterDev(ctx context.Context, vanemq string, nodes int, dir string, timeout time.Duration) (*brokerProc, []devNodeAddrs, error) {
	argv := []string{vanemq, "cluster", "dev", "--nodes", strconv.Itoa(nodes), "--port", "0", "--dir", dir}
	lines := &lineBuffer{max: devOutputMax}
	p, err := startProc(argv, lines)
	if err != nil {
		return nil, nil, err
	}
	fail := func(err error) (*brokerProc, []devNodeAddrs, error) {
		p.kill()
		err = fmt.Errorf("start %s: %w", strings.Join(argv, " "), err)
		if tail := p.output(); tail != "" {
			err = fmt.Errorf("%w; output: %s", err, tail)
		}
		return nil, nil, err
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if out, ready := lines.ready(); ready {
			addrs, err := parseDevNodes(out, nodes)
			if err != nil {
				return fail(err)
			}
			return p, addrs, nil
		}
		select {
		case <-p.done:
			return fail(fmt.Errorf("exited before its ready line: %w", exitError(p.err)))
		case <-ctx.Done():
			return fail(fmt.Errorf("waiting for its ready line: %w", context.Cause(ctx)))
		case <-deadline.C:
			return fail(fmt.Errorf("no ready line within %s", timeout))
		case <-tick.C:
		}
	}
}

// parseDevNodes reads the node lines of cluster dev's standard output,
// "n1 mqtt=127.0.0.1:1883 nats=nats://127.0.0.1:4222" each, and checks
// that there are nodes of them.
func parseDevNodes(out string, nodes int) ([]devNodeAddrs, error) {
	var addrs []devNodeAddrs
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		mqtt, ok1 := strings.CutPrefix(f[1], "mqtt=")
		nats, ok2 := strings.CutPrefix(f[2], "nats=")
		if ok1 && ok2 && mqtt != "" && nats != "" {
			addrs = append(addrs, devNodeAddrs{name: f[0], mqtt: mqtt, nats: nats})
		}
	}
	if len(addrs) != nodes {
		return nil, fmt.Errorf("%d node lines (NAME mqtt=ADDR nats=URL) before the ready line, want %d: %q",
			len(addrs), nodes, truncate(out, 512))
	}
	return addrs, nil
}

// lineBuffer is an io.Writer, safe for concurrent use, that keeps the
// first max bytes written to it: a process's output up to its ready line.
type lineBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

// Write keeps what fits of p; it never fails.
func (l *lineBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p[:min(len(p), max(0, l.max-len(l.buf)))]...)
	return len(p), nil
}

// ready returns the output up to a complete line starting with "ready:",
// and whether there is one.
func (l *lineBuffer) ready() (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := string(l.buf)
	for i := 0; i < len(s); {
		end := strings.IndexByte(s[i:], '\n')
		if end < 0 {
			return "", false
		}
		if strings.HasPrefix(s[i:i+end], "ready:") {
			return s[:i], true
		}
		i += end + 1
	}
	return "", false
}
