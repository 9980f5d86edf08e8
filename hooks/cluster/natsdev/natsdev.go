// Package natsdev starts embedded nats-server nodes on loopback, each with
// JetStream: one standalone server, or a NATS cluster with routes between
// all of its nodes. hooks/cluster's tests run on it, and so does a local
// development cluster started by the broker binary; it is not a way to
// run NATS in production.
//
// Nodes are named n1 … nN and addressed by index: node i (0-based, as in
// URLs) is named n<i+1>. Each keeps its client and cluster ports, chosen
// free by the kernel at Start, and its store directory for the life of
// the Cluster, so that Stop and Restart model a server going down and
// coming back.
package natsdev

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

const (
	defaultHost        = "127.0.0.1"
	defaultClusterName = "natsdev"
	// defaultTimeout bounds Start and Restart when their context has no
	// earlier deadline.
	defaultTimeout = 60 * time.Second
	// pollEvery is how often readiness is checked while waiting for it.
	pollEvery = 50 * time.Millisecond
)

// ErrClosed is returned by Restart once Close has been called.
var ErrClosed = errors.New("natsdev: cluster closed")

// Options says what cluster Start starts.
type Options struct {
	// Nodes is how many servers to start: 1 is a standalone server, 2 or
	// more a cluster with routes between every pair.
	Nodes int
	// Dir holds each node's JetStream store, in Dir/<name> (Dir/n1, …).
	// It is required; a Dir used before gives the nodes their old state.
	Dir string
	// ClusterName names the NATS cluster when Nodes ≥ 2; "natsdev" when
	// empty.
	ClusterName string
	// Host is the address every node listens on, for clients and routes;
	// "127.0.0.1" when empty.
	Host string
	// Logger, when set, gets every node's log, with the attribute
	// nats_server=<name>: notices at Info, warnings at Warn, errors at
	// Error, debug lines at Debug and protocol traces below Debug (the
	// server only produces the levels Logger keeps). When nil the nodes log
	// nothing.
	Logger *slog.Logger
}

// Cluster is a set of running (or stopped) embedded nats-server nodes
// started by Start. Its methods may be called from several goroutines;
// Stop, Restart and Close run one at a time.
type Cluster struct {
	o     Options
	nodes []*node // fixed by Start; a node's name, dir and ports never change

	mu     sync.Mutex // guards the nodes' srv and closed
	closed bool
}

// node is one nats-server of the cluster.
type node struct {
	name        string
	dir         string
	port        int            // server.RANDOM_PORT until its first start
	clusterPort int            // 0 for a standalone server
	srv         *server.Server // nil while stopped
}

// Start starts o.Nodes servers and returns once every one accepts
// connections and JetStream is usable cluster-wide: every pair of nodes
// is routed, a meta leader is elected and sees every node current, and
// a client can create, write and delete a KV bucket with min(3, Nodes)
// replicas. ctx bounds the start (at most a minute when it has no
// earlier deadline); on error nothing is left running.
func Start(ctx context.Context, o Options) (*Cluster, error) {
	for attempt := 1; ; attempt++ {
		c, err := startOnce(ctx, o)
		// The cluster ports are free when chosen, but another process may
		// take one before its node listens: choose again.
		if err == nil || attempt == 3 || !strings.Contains(err.Error(), "address already in use") {
			return c, err
		}
	}
}

// startOnce is one attempt of Start.
func startOnce(ctx context.Context, o Options) (*Cluster, error) {
	if o.Nodes < 1 {
		return nil, fmt.Errorf("natsdev: Options.Nodes is %d, want at least 1", o.Nodes)
	}
	if o.Dir == "" {
		return nil, errors.New("natsdev: Options.Dir is empty, want the directory for the nodes' JetStream stores")
	}
	if o.Host == "" {
		o.Host = defaultHost
	}
	if o.ClusterName == "" {
		o.ClusterName = defaultClusterName
	}
	ctx, cancel := context.WithTimeout(ctx, defaultTimeout)
	defer cancel()

	c := &Cluster{o: o}
	c.mu.Lock()
	defer c.mu.Unlock()
	fail := func(err error) (*Cluster, error) {
		c.closeLocked()
		return nil, err
	}
	// A JetStream cluster needs its routes configured (nats-server refuses
	// to start JetStream otherwise), so the cluster ports are chosen before
	// any node starts, and every node is routed to every node, itself
	// included (nats-server ignores that route) so that each knows the
	// cluster's size. The client ports are left to nats-server.
	clusterPorts := make([]int, o.Nodes)
	if o.Nodes > 1 {
		var err error
		if clusterPorts, err = freePorts(o.Host, o.Nodes); err != nil {
			return nil, err
		}
	}
	for i := range o.Nodes {
		name := "n" + strconv.Itoa(i+1)
		c.nodes = append(c.nodes, &node{name: name, dir: filepath.Join(o.Dir, name), port: server.RANDOM_PORT, clusterPort: clusterPorts[i]})
	}
	for _, n := range c.nodes {
		if err := c.startNode(ctx, n); err != nil {
			return fail(err)
		}
	}
	if err := c.waitReady(ctx); err != nil {
		return fail(err)
	}
	if err := c.checkKV(ctx); err != nil {
		return fail(err)
	}
	return c, nil
}

// Len returns the number of nodes, running or stopped.
func (c *Cluster) Len() int { return len(c.nodes) }

// URL returns node i's client URL, nats://host:port, which stays the
// same across Stop and Restart. It panics when i is not in [0, Len()).
func (c *Cluster) URL(i int) string {
	n := c.node(i)
	return (&url.URL{Scheme: "nats", Host: net.JoinHostPort(c.o.Host, strconv.Itoa(n.port))}).String()
}

// URLs returns every node's client URL, in node order.
func (c *Cluster) URLs() []string {
	urls := make([]string, len(c.nodes))
	for i := range c.nodes {
		urls[i] = c.URL(i)
	}
	return urls
}

// Name returns node i's server name, n<i+1>. It panics when i is not in
// [0, Len()).
func (c *Cluster) Name(i int) string { return c.node(i).name }

// Stop shuts node i down and returns once it has ended; its store stays
// for Restart. Stopping a stopped node does nothing. It panics when i is
// not in [0, Len()).
func (c *Cluster) Stop(i int) {
	n := c.node(i)
	c.mu.Lock()
	defer c.mu.Unlock()
	stopNode(n)
}

// Restart starts the stopped node i again, with the same name, ports and
// store, and returns once it has rejoined: routed to every running node,
// its JetStream meta state current and seen so by the meta leader. ctx
// bounds the wait (at most a minute when it has no earlier deadline). It
// panics when i is not in [0, Len()).
func (c *Cluster) Restart(ctx context.Context, i int) error {
	n := c.node(i)
	ctx, cancel := context.WithTimeout(ctx, defaultTimeout)
	defer cancel()
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		return fmt.Errorf("natsdev: restart node %s: %w", n.name, ErrClosed)
	case n.srv != nil:
		return fmt.Errorf("natsdev: restart node %s: it is running", n.name)
	}
	if err := c.startNode(ctx, n); err != nil {
		return err
	}
	return c.waitReady(ctx)
}

// Close shuts every running node down and returns once they have ended.
// Calling it again does nothing.
func (c *Cluster) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeLocked()
}

// closeLocked is Close with c.mu held. The nodes shut down at the same
// time: one by one, the survivors would elect new leaders in between.
func (c *Cluster) closeLocked() {
	if c.closed {
		return
	}
	c.closed = true
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		wg.Go(func() { stopNode(n) })
	}
	wg.Wait()
}

// node returns node i, panicking like an index out of range would.
func (c *Cluster) node(i int) *node {
	if i < 0 || i >= len(c.nodes) {
		panic(fmt.Sprintf("natsdev: node index %d out of range [0, %d)", i, len(c.nodes)))
	}
	return c.nodes[i]
}

// routes returns the route URLs of every node.
func (c *Cluster) routes() []*url.URL {
	routes := make([]*url.URL, len(c.nodes))
	for i, n := range c.nodes {
		routes[i] = &url.URL{Scheme: "nats-route", Host: net.JoinHostPort(c.o.Host, strconv.Itoa(n.clusterPort))}
	}
	return routes
}

// freePorts returns n TCP ports free on host, by listening on port 0 and
// closing; another process could take one before its node listens on
// it, and that node then fails to start, naming the port.
func freePorts(host string, n int) ([]int, error) {
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return nil, fmt.Errorf("natsdev: choose a cluster port: %w", err)
		}
		defer l.Close()
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
}

// startNode starts n's server and waits until it accepts connections;
// the first time, it records the client port the kernel chose. c.mu is
// held.
func (c *Cluster) startNode(ctx context.Context, n *node) error {
	opts := &server.Options{
		ServerName: n.name,
		Host:       c.o.Host,
		Port:       n.port,
		NoSigs:     true, // the process's signals are not the server's
		NoLog:      c.o.Logger == nil,
		JetStream:  true,
		StoreDir:   n.dir,
	}
	if c.o.Nodes > 1 {
		opts.Cluster = server.ClusterOpts{Name: c.o.ClusterName, Host: c.o.Host, Port: n.clusterPort}
		opts.Routes = c.routes()
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("natsdev: node %s: %w", n.name, err)
	}
	log := newServerLog(srv, c.o.Logger, n.name)
	srv.Start()
	fail := func(err error) error {
		srv.Shutdown()
		srv.WaitForShutdown()
		return fmt.Errorf("natsdev: node %s (%s): %w", n.name, n.ports(), err)
	}
	for !srv.ReadyForConnections(pollEvery) {
		if f := log.fatalError(); f != "" {
			return fail(errors.New(f))
		}
		if err := ctx.Err(); err != nil {
			return fail(fmt.Errorf("not ready for connections on %s: %w", c.o.Host, err))
		}
	}
	// A fatal error after the listeners are up (JetStream's start) is
	// reported here.
	if f := log.fatalError(); f != "" {
		return fail(errors.New(f))
	}
	if a, ok := srv.Addr().(*net.TCPAddr); ok {
		n.port = a.Port
	}
	n.srv = srv
	return nil
}

// ports describes n's ports for an error.
func (n *node) ports() string {
	s := "client port " + strconv.Itoa(n.port)
	if n.port == server.RANDOM_PORT {
		s = "client port not chosen yet"
	}
	if n.clusterPort != 0 {
		s += ", cluster port " + strconv.Itoa(n.clusterPort)
	}
	return s
}

// stopNode shuts n's server down, if it runs, and waits for its end.
func stopNode(n *node) {
	if n.srv == nil {
		return
	}
	n.srv.Shutdown()
	n.srv.WaitForShutdown()
	n.srv = nil
}

// Interest returns how many subscriptions server i knows that match
// subject (0 while it is stopped). Another server's interest counts once
// however many of its subscriptions match: a test waits on it until a
// subscription has spread through the cluster.
func (c *Cluster) Interest(i int, subject string) int {
	n := c.node(i)
	c.mu.Lock()
	s := n.srv
	c.mu.Unlock()
	if s == nil {
		return 0
	}
	return s.GlobalAccount().Interest(subject)
}
