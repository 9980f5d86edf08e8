// Package natsdev starts embedded nats-server nodes with JetStream on one
// machine: a local NATS system for trying a vanemq cluster out (`vanemq
// cluster dev`) and for the cluster's tests. It is not for production:
// there, vanemq nodes join an existing NATS cluster.
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
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Options configures Start.
type Options struct {
	// Nodes is how many servers to start (default 1). Two or more form a
	// NATS cluster with routes between all of them.
	Nodes int
	// Dir holds each server's JetStream store, in Dir/NAME. Required.
	Dir string
	// ClusterName names the NATS cluster (default "vanemq-dev").
	ClusterName string
	// Host is the address the servers listen on (default 127.0.0.1).
	Host string
	// Logger, when set, receives the servers' logs (notices at Info,
	// warnings and errors at Warn and Error); by default they log
	// nothing.
	Logger *slog.Logger
}

// Cluster is a set of running embedded servers.
type Cluster struct {
	o       Options
	mu      sync.Mutex
	servers []*server.Server // nil when stopped
	client  []int            // client port of each server, fixed after the first start
	route   []int            // route port of each server
}

// Start starts o.Nodes servers and returns once each accepts connections
// and JetStream works across them: a KV bucket with as many replicas as
// there are servers, up to 3, can be made. ctx bounds the wait.
func Start(ctx context.Context, o Options) (*Cluster, error) {
	if o.Nodes <= 0 {
		o.Nodes = 1
	}
	if o.Dir == "" {
		return nil, errors.New("natsdev: Dir is required")
	}
	if o.ClusterName == "" {
		o.ClusterName = "vanemq-dev"
	}
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	c := &Cluster{o: o, servers: make([]*server.Server, o.Nodes), client: make([]int, o.Nodes), route: make([]int, o.Nodes)}
	for i := range o.Nodes {
		var err error
		if c.client[i], err = freePort(o.Host); err == nil && o.Nodes > 1 {
			c.route[i], err = freePort(o.Host)
		}
		if err != nil {
			return nil, fmt.Errorf("natsdev: %s: %w", name(i), err)
		}
	}
	for i := range o.Nodes {
		s, err := c.newServer(i)
		if err != nil {
			c.Close()
			return nil, err
		}
		c.servers[i] = s
	}
	if err := c.waitReady(ctx, -1); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// name is server i's name: n1, n2, …
func name(i int) string { return "n" + strconv.Itoa(i+1) }

// freePort returns a port on host that is free now.
func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// newServer starts server i on its ports, with routes to all the others.
func (c *Cluster) newServer(i int) (*server.Server, error) {
	o := c.o
	opts := &server.Options{
		ServerName: name(i),
		Host:       o.Host,
		Port:       c.client[i],
		JetStream:  true,
		StoreDir:   filepath.Join(o.Dir, name(i)),
		NoSigs:     true,
		NoLog:      o.Logger == nil,
	}
	if o.Nodes > 1 {
		opts.Cluster = server.ClusterOpts{Name: o.ClusterName, Host: o.Host, Port: c.route[i]}
		for j := range o.Nodes {
			if j != i {
				opts.Routes = append(opts.Routes, &url.URL{Scheme: "nats", Host: net.JoinHostPort(o.Host, strconv.Itoa(c.route[j]))})
			}
		}
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("natsdev: %s: %w", name(i), err)
	}
	if o.Logger != nil {
		s.SetLoggerV2(slogAdapter{o.Logger.With("nats_server", name(i))}, false, false, false)
	}
	s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("natsdev: %s: not accepting connections after 30s", name(i))
	}
	return s, nil
}

// waitReady waits until JetStream works through every running server
// (skip: one to leave out, -1 for none).
func (c *Cluster) waitReady(ctx context.Context, skip int) error {
	replicas := min(c.o.Nodes, 3)
	for i := range c.o.Nodes {
		if i == skip || c.server(i) == nil {
			continue
		}
		if err := c.probe(ctx, i, replicas); err != nil {
			return fmt.Errorf("natsdev: %s: JetStream not ready: %w", name(i), err)
		}
	}
	return nil
}

// probe makes and deletes a KV bucket through server i until it works.
func (c *Cluster) probe(ctx context.Context, i, replicas int) error {
	nc, err := nats.Connect(c.URL(i), nats.Timeout(5*time.Second))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	bucket := "natsdev_probe_" + name(i)
	for {
		attempt, cancel := context.WithTimeout(ctx, 5*time.Second)
		kv, err := js.CreateOrUpdateKeyValue(attempt, jetstream.KeyValueConfig{Bucket: bucket, Replicas: replicas})
		if err == nil {
			_, err = kv.Put(attempt, "k", []byte("v"))
		}
		if err == nil {
			err = js.DeleteKeyValue(attempt, bucket)
		}
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %w)", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// server returns server i, nil while stopped.
func (c *Cluster) server(i int) *server.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.servers[i]
}

// Len returns the number of servers, running or stopped.
func (c *Cluster) Len() int { return c.o.Nodes }

// URL returns server i's client URL, nats://host:port.
func (c *Cluster) URL(i int) string {
	return "nats://" + net.JoinHostPort(c.o.Host, strconv.Itoa(c.client[i]))
}

// URLs returns every server's client URL.
func (c *Cluster) URLs() []string {
	out := make([]string, c.o.Nodes)
	for i := range out {
		out[i] = c.URL(i)
	}
	return out
}

// Stop shuts server i down and waits until it has.
func (c *Cluster) Stop(i int) {
	c.mu.Lock()
	s := c.servers[i]
	c.servers[i] = nil
	c.mu.Unlock()
	if s != nil {
		s.Shutdown()
		s.WaitForShutdown()
	}
}

// Restart starts server i again, with its name, ports and store, and
// waits until JetStream works through it.
func (c *Cluster) Restart(ctx context.Context, i int) error {
	c.Stop(i)
	s, err := c.newServer(i)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.servers[i] = s
	c.mu.Unlock()
	if err := c.probe(ctx, i, min(c.o.Nodes, 3)); err != nil {
		return fmt.Errorf("natsdev: %s: JetStream not ready after restart: %w", name(i), err)
	}
	return nil
}

// Close stops every server. It may be called more than once.
func (c *Cluster) Close() {
	for i := range c.o.Nodes {
		c.Stop(i)
	}
}

// slogAdapter is nats-server's Logger on a slog.Logger.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Noticef(format string, v ...any) { a.l.Info(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Warnf(format string, v ...any)   { a.l.Warn(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Fatalf(format string, v ...any)  { a.l.Error(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Errorf(format string, v ...any)  { a.l.Error(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Debugf(format string, v ...any)  { a.l.Debug(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Tracef(format string, v ...any)  { a.l.Debug(fmt.Sprintf(format, v...)) }

// Interest returns how many subscriptions, local and through routes, server
// i knows that match subject (0 while it is stopped): what a test waits
// on until a subscription has spread through the cluster.
func (c *Cluster) Interest(i int, subject string) int {
	s := c.server(i)
	if s == nil {
		return 0
	}
	return s.GlobalAccount().Interest(subject)
}
