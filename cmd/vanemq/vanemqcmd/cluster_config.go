package vanemqcmd

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/hooks/cluster"
	"github.com/vanemq/vanemq/hooks/storage"
)

// The top-level cluster section joins the broker to a cluster of vanemq
// nodes over NATS: it adds the cluster hook (hooks/cluster) as a hooks
// entry `- id: cluster` with the same keys as its config block would,
// decoded here so that each error names its line and key, and a
// mistyped key gets a suggestion. A file may configure the hook one way
// or the other, not both.

// clusterConfig is the cluster section.
type clusterConfig struct {
	Config cluster.Config
	File   string         // the config file's name, for errors
	Line   int            // the line of the section, for errors
	lines  map[string]int // the line of each key set ("urls[1]", "tls.ca"), for the hook's errors
}

// cluster decodes the cluster section. An empty section (cluster: with
// nothing under it, or ~) configures no cluster.
func (d *decoder) cluster(key string, n *yaml.Node) *clusterConfig {
	if isNull(n) {
		return nil
	}
	cc := &clusterConfig{File: d.file, Line: n.Line, lines: make(map[string]int)}
	c := &cc.Config
	at := func(k string, v *yaml.Node) { cc.lines[strings.TrimPrefix(k, key+".")] = v.Line }
	str := func(dst *string) func(string, *yaml.Node) {
		return func(k string, v *yaml.Node) {
			if s, ok := d.str(k, v); ok {
				*dst = s
				at(k, v)
			}
		}
	}
	dur := func(dst *time.Duration) func(string, *yaml.Node) {
		return func(k string, v *yaml.Node) {
			if t, ok := d.duration(k, v); ok {
				*dst = t
				at(k, v)
			}
		}
	}
	d.fields(n, key, map[string]func(string, *yaml.Node){
		"urls": func(k string, v *yaml.Node) {
			urls, ok := d.strList(k, "NATS server URLs", v)
			if !ok {
				return
			}
			if len(urls) == 0 {
				d.errorf(v, k, "at least one NATS server URL is needed (nats://host:port or tls://host:port)")
				return
			}
			c.URLs = urls
			at(k, v)
			for i, item := range v.Content {
				at(k+"["+strconv.Itoa(i)+"]", item)
			}
		},
		"node":        str(&c.Node),
		"prefix":      str(&c.Prefix),
		"username":    str(&c.Username),
		"password":    str(&c.Password),
		"token":       str(&c.Token),
		"credentials": str(&c.Credentials),
		"tls": func(k string, v *yaml.Node) {
			if isNull(v) {
				return
			}
			t := &cluster.TLSConfig{}
			d.fields(v, k, map[string]func(string, *yaml.Node){
				"ca":   str(&t.CA),
				"cert": str(&t.Cert),
				"key":  str(&t.Key),
			})
			if hasCert := d.hasKey(v, "cert"); v.Kind == yaml.MappingNode && hasCert != d.hasKey(v, "key") {
				missing := "key"
				if !hasCert {
					missing = "cert"
				}
				d.errorf(v, k+"."+missing, "required key missing: the client certificate and its key go together")
			}
			c.TLS = t
			at(k, v)
		},
		"connect_timeout":  dur(&c.ConnectTimeout),
		"reconnect_wait":   dur(&c.ReconnectWait),
		"handoff_timeout":  dur(&c.HandoffTimeout),
		"inbox_max_age":    dur(&c.InboxMaxAge),
		"takeover_timeout": dur(&c.TakeoverTimeout),
		"adopt_after":      dur(&c.AdoptAfter),
		"replicas": func(k string, v *yaml.Node) {
			if x, ok := d.integer(k, v, 0, 5); ok {
				c.Replicas = int(x)
				at(k, v)
			}
		},
	})
	if n.Kind == yaml.MappingNode && !d.hasKey(n, "urls") {
		d.errorf(n, key+".urls", "required key missing: the NATS servers to join through (nats://host:port or tls://host:port)")
	}
	return cc
}

// checkClusterOnce refuses a file that configures the cluster hook both
// in the cluster section and in the hooks list.
func (d *decoder) checkClusterOnce(cfg *config) {
	if cfg.Cluster == nil {
		return
	}
	for _, hc := range cfg.Hooks {
		if core.HookModuleOf(hc.ID) == cluster.ID {
			d.errs = append(d.errs, &configError{File: d.file, Line: cfg.Cluster.Line, Key: "cluster",
				Msg: fmt.Sprintf("the cluster hook is also configured in %s (line %d): configure it once, in the cluster section or in hooks", hc.Key, hc.Line)})
		}
	}
}

// hookConfig is the hooks entry the section stands for, for errors.
func (cc *clusterConfig) hookConfig() hookConfig {
	return hookConfig{ID: cluster.ID, File: cc.File, Line: cc.Line, Key: "cluster"}
}

// clusterStorage gives each node of a cluster that keeps its state in
// NATS a bucket of its own when the file names none, PREFIX_NODE_state
// (PREFIX the cluster's): the other nodes read it to adopt the node's
// sessions should it die.
func (cfg *config) clusterStorage() {
	cc := cfg.Cluster
	if cc == nil || cfg.Storage.Type != storage.TypeNATS || cfg.Storage.NATS.prefixSet {
		return
	}
	node := cc.Config.Node
	if node == "" {
		node, _ = cluster.DefaultNode() // an error is cluster.New's to report
	}
	prefix := cc.Config.Prefix
	if prefix == "" {
		prefix = cluster.DefaultPrefix
	}
	cfg.Storage.NATS.Prefix = prefix + "_" + node
}

// build makes the cluster hook for srv, with the files named relative to
// dir; with a store in NATS (sc), the other nodes can read this node's
// sessions, and it theirs (cluster.StateStores). An error is a
// *configError naming the key's line.
func (cc *clusterConfig) build(srv *core.Server, dir string, sc storageConfig, logger *slog.Logger) (core.Hook, error) {
	c := cc.Config
	if sc.Type == storage.TypeNATS {
		c.States = &cluster.StateStores{
			Mine: sc.NATS.Prefix,
			Open: func(ctx context.Context, name string) (cluster.SessionStore, error) {
				conf, err := sc.storeConfig(dir, logger.With("store", name))
				if err != nil {
					return nil, err
				}
				conf.NATS.Prefix = name
				st, err := storage.Open(ctx, conf)
				if err != nil {
					return nil, err
				}
				return st, nil
			},
		}
	}
	c.Credentials = resolvePath(dir, c.Credentials)
	if cc.Config.TLS != nil {
		t := *cc.Config.TLS
		t.CA, t.Cert, t.Key = resolvePath(dir, t.CA), resolvePath(dir, t.Cert), resolvePath(dir, t.Key)
		c.TLS = &t
	}
	h, err := cluster.New(cluster.ID, c, srv, logger.With("hook", cluster.ID))
	if err != nil {
		return nil, cc.errorOf(err)
	}
	return h, nil
}

// errorOf places an error of cluster.New, "cluster: KEY: MESSAGE", at
// the key's line; one about no key in particular is placed at the
// section's.
func (cc *clusterConfig) errorOf(err error) *configError {
	msg := strings.TrimPrefix(err.Error(), cluster.ID+": ")
	e := &configError{File: cc.File, Line: cc.Line, Key: "cluster", Msg: msg, Err: err}
	if k, rest, ok := strings.Cut(msg, ": "); ok {
		if line, set := cc.lines[k]; set {
			e.Line, e.Key, e.Msg = line, "cluster."+k, rest
		} else if !strings.ContainsAny(k, " /,") {
			e.Key, e.Msg = "cluster."+k, rest // a key left out, such as urls
		}
	}
	return e
}
