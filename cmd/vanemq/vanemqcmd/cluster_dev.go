package vanemqcmd

// `vanemq cluster dev [--nodes N] [--host H] [--port P] [--dir D]` starts
// a cluster on this machine to try clustering: N embedded NATS servers
// (hooks/cluster/natsdev: clustered, with JetStream) and N vanemq nodes
// in this process, node i joined through NATS server i, each with the
// embedded default's settings (anonymous clients allowed) and its own
// pebble store. It prints one line per node, its name, MQTT address and
// NATS URL, then a ready line, on standard output, and stops every node
// and server on SIGINT, SIGTERM or the end of its context. Everything
// listens on loopback only.
//
// Exit status: 0 after a clean stop, 1 when the cluster cannot start or
// a node's shutdown fails, 2 for bad usage.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/hooks/cluster"
	"github.com/vanemq/vanemq/hooks/cluster/natsdev"
	"github.com/vanemq/vanemq/hooks/storage"
)

// Limits and defaults of cluster dev.
const (
	devMaxNodes = 16
	// devStartTimeout bounds the start: NATS servers ready, every node
	// joined.
	devStartTimeout = 60 * time.Second
	// devPoll is how often the start checks whether the nodes have
	// joined.
	devPoll = 50 * time.Millisecond
)

// clusterUsage is the usage of `vanemq cluster`.
const clusterUsage = "Usage: vanemq cluster dev [--nodes N] [--host ADDR] [--port PORT] [--dir DIR]\n"

// runCluster runs `vanemq cluster` with the arguments after "cluster" and
// returns the exit status.
func runCluster(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "vanemq cluster: want a command: dev")
		fmt.Fprint(stderr, clusterUsage)
		return 2
	}
	switch args[0] {
	case "dev":
		return runClusterDev(ctx, args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stderr, clusterUsage+"\nStarts a vanemq cluster on this machine to try clustering (see docs/clustering.md).\n")
		return 0
	}
	fmt.Fprintf(stderr, "vanemq cluster: unknown command %q\n", args[0])
	fmt.Fprint(stderr, clusterUsage)
	return 2
}

// devOptions are the flags of cluster dev.
type devOptions struct {
	nodes int
	host  string
	port  int    // the first node's MQTT port; 0: every node on a free port
	dir   string // "": a temporary directory, removed at exit
}

// runClusterDev runs `vanemq cluster dev` with the arguments after "dev".
func runClusterDev(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("vanemq cluster dev", flag.ContinueOnError)
	fset.SetOutput(stderr)
	var o devOptions
	fset.IntVar(&o.nodes, "nodes", 3, "how many NATS servers and vanemq nodes to start, `N` of each (1 to "+strconv.Itoa(devMaxNodes)+")")
	fset.StringVar(&o.host, "host", "127.0.0.1", "the loopback `ADDR` every node and NATS server listens on")
	fset.IntVar(&o.port, "port", 1883, "the first node's MQTT TCP `PORT`; the next nodes listen on the following ports (0: each on a free port)")
	fset.StringVar(&o.dir, "dir", "", "keep the NATS servers' and nodes' data in `DIR` (default: a temporary directory, removed at exit)")
	fset.Usage = func() {
		fmt.Fprintf(fset.Output(), clusterUsage+"\n"+
			"Starts N embedded NATS servers (clustered, with JetStream) and N vanemq nodes\n"+
			"in this process, node i joined through NATS server i, on loopback only, to try\n"+
			"clustering on one machine; not for production. It prints each node's name,\n"+
			"MQTT address and NATS URL, then \"ready\", and stops everything on Ctrl-C.\n\nFlags:\n")
		fset.PrintDefaults()
	}
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fset.NArg() > 0 {
		fmt.Fprintf(stderr, "vanemq cluster dev: unexpected argument %q\n", fset.Arg(0))
		fset.Usage()
		return 2
	}
	if err := o.check(); err != nil {
		fmt.Fprintf(stderr, "vanemq cluster dev: %v\n", err)
		fset.Usage()
		return 2
	}

	logger := newLogger(stderr, defaultLog)
	dc, err := startDevCluster(ctx, o, logger)
	if err != nil {
		fmt.Fprintf(stderr, "vanemq cluster dev: %v\n", err)
		return 1
	}
	for _, n := range dc.nodes {
		fmt.Fprintf(stdout, "%s mqtt=%s nats=%s\n", n.name, n.addr, n.natsURL)
	}
	nodes := "nodes"
	if len(dc.nodes) == 1 {
		nodes = "node"
	}
	fmt.Fprintf(stdout, "ready: %d %s (data in %s); Ctrl-C stops them\n", len(dc.nodes), nodes, dc.dir)

	<-ctx.Done()
	logger.Info("shutting down", "reason", context.Cause(ctx), "timeout", shutdownTimeout)
	if err := dc.stop(context.WithoutCancel(ctx)); err != nil {
		fmt.Fprintf(stderr, "vanemq cluster dev: %v\n", err)
		return 1
	}
	logger.Info("stopped")
	return 0
}

// check validates the flags.
func (o devOptions) check() error {
	if o.nodes < 1 || o.nodes > devMaxNodes {
		return fmt.Errorf("--nodes %d: want 1 to %d", o.nodes, devMaxNodes)
	}
	if ip, err := netip.ParseAddr(o.host); err != nil || !ip.IsLoopback() {
		return fmt.Errorf("--host %q: want a loopback address such as 127.0.0.1 or ::1: a dev cluster is for this machine only", o.host)
	}
	if o.port < 0 || o.port > 65535 || (o.port > 0 && o.port+o.nodes-1 > 65535) {
		return fmt.Errorf("--port %d: want 0 (free ports) or a port from 1 to %d, so that the %d nodes' ports are all at most 65535", o.port, 65536-o.nodes, o.nodes)
	}
	return nil
}

// addr is node i's MQTT listen address.
func (o devOptions) addr(i int) string {
	port := 0
	if o.port > 0 {
		port = o.port + i
	}
	return net.JoinHostPort(o.host, strconv.Itoa(port))
}

// devCluster is a running dev cluster.
type devCluster struct {
	dir    string // the data directory
	rmDir  bool   // dir is temporary: removed by stop
	nats   *natsdev.Cluster
	nodes  []*devNode
	logger *slog.Logger
}

// devNode is one vanemq node of a dev cluster.
type devNode struct {
	name    string
	addr    string // the bound MQTT address
	natsURL string // the NATS server it is joined through
	srv     *core.Server
	store   *storage.Store
	logger  *slog.Logger
}

// startDevCluster starts the NATS servers and the nodes, and returns once
// every node has joined (connected to NATS, JetStream set up) and sees
// every other node alive. On error nothing is left running.
func startDevCluster(ctx context.Context, o devOptions, logger *slog.Logger) (_ *devCluster, err error) {
	dc := &devCluster{dir: o.dir, logger: logger}
	if dc.dir == "" {
		if dc.dir, err = os.MkdirTemp("", "vanemq-cluster-dev-"); err != nil {
			return nil, fmt.Errorf("make a data directory: %w", err)
		}
		dc.rmDir = true
	} else if err := os.MkdirAll(dc.dir, 0o750); err != nil {
		return nil, fmt.Errorf("make the data directory: %w", err)
	}
	if abs, err := filepath.Abs(dc.dir); err == nil {
		dc.dir = abs
	}
	defer func() {
		if err != nil {
			_ = dc.stop(context.WithoutCancel(ctx))
		}
	}()
	sctx, cancel := context.WithTimeout(ctx, devStartTimeout)
	defer cancel()

	logger.Info("starting NATS servers", "nodes", o.nodes, "host", o.host)
	if dc.nats, err = natsdev.Start(sctx, natsdev.Options{Nodes: o.nodes, Dir: filepath.Join(dc.dir, "nats"), Host: o.host}); err != nil {
		return nil, err
	}
	for i := range o.nodes {
		n, err := dc.startNode(ctx, o, i)
		if err != nil {
			return nil, err
		}
		dc.nodes = append(dc.nodes, n)
	}
	if err := dc.waitJoined(sctx); err != nil {
		return nil, err
	}
	return dc, nil
}

// startNode starts vanemq node i: the embedded default's settings, an
// MQTT listener on o.addr(i), a store of its own in the NATS servers'
// JetStream (so that another node adopts its sessions should it die),
// and the cluster hook joined through NATS server i.
func (dc *devCluster) startNode(ctx context.Context, o devOptions, i int) (*devNode, error) {
	name := dc.nats.Name(i) // n1, n2 …: each node is named after its NATS server
	cfg, err := parseConfig(defaultConfigName, defaultYAML)
	if err != nil {
		return nil, err
	}
	cfg.Dir = dc.dir
	cfg.Listeners = []listenerConfig{{ID: "tcp", Type: "tcp", Address: o.addr(i)}}
	cfg.Storage.Type = storage.TypeNATS
	cfg.Storage.NATS.URLs = []string{dc.nats.URL(i)}
	cfg.Cluster = &clusterConfig{
		Config: cluster.Config{URLs: []string{dc.nats.URL(i)}, Node: name},
		File:   "cluster dev",
	}
	cfg.clusterStorage()
	logger := dc.logger.With("node", name)
	srv, store, err := start(ctx, cfg, logger)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", name, err)
	}
	n := &devNode{name: name, natsURL: dc.nats.URL(i), srv: srv, store: store, logger: logger}
	for _, l := range srv.Listeners() {
		n.addr = l.Address
	}
	return n, nil
}

// waitJoined waits until every node is connected to NATS with JetStream
// set up and sees every node alive, or ctx ends.
func (dc *devCluster) waitJoined(ctx context.Context) error {
	t := time.NewTicker(devPoll)
	defer t.Stop()
	for {
		why := dc.notJoined()
		if why == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the nodes have not joined: %s: %w", why, ctx.Err())
		case <-t.C:
		}
	}
}

// notJoined says which node has not joined yet, and why; "" when all
// have.
func (dc *devCluster) notJoined() string {
	for _, n := range dc.nodes {
		st, ok := n.srv.ClusterStatus()
		if !ok {
			return n.name + " runs no cluster hook"
		}
		if st.Unhealthy != "" {
			return n.name + ": " + st.Unhealthy
		}
		alive := 0
		for _, p := range st.Peers {
			if p.Alive {
				alive++
			}
		}
		if alive < len(dc.nodes) {
			return fmt.Sprintf("%s sees %d of %d nodes", n.name, alive, len(dc.nodes))
		}
	}
	return ""
}

// stop shuts every node down at once (each within shutdownTimeout),
// closes their stores, then the NATS servers, and removes a temporary
// data directory. It returns the nodes' errors, joined.
func (dc *devCluster) stop(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, shutdownTimeout)
	defer cancel()
	errs := make([]error, len(dc.nodes))
	var wg sync.WaitGroup
	for i, n := range dc.nodes {
		wg.Go(func() {
			if err := n.srv.Shutdown(ctx); err != nil {
				errs[i] = fmt.Errorf("node %s: shutdown: %w", n.name, err)
			}
			if err := closeStore(n.store, n.logger); err != nil {
				errs[i] = errors.Join(errs[i], fmt.Errorf("node %s: %w", n.name, err))
			}
		})
	}
	wg.Wait()
	if dc.nats != nil {
		dc.nats.Close()
	}
	if dc.rmDir {
		if err := os.RemoveAll(dc.dir); err != nil {
			dc.logger.Warn("cannot remove the temporary data directory", "dir", dc.dir, "err", err)
		}
	}
	return errors.Join(errs...)
}
