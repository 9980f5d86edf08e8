// Command go-hook is a custom vanemq broker that compiles in a hook of its
// own, tenant.prefix (tenant.go), next to vanemq's built-in auth.file, and
// names both from its config file, vanemq.yaml:
//
//	cd examples/go-hook
//	go run . --config vanemq.yaml
//
// Each user gets a topic space of their own: alice's "x" is the broker's
// "tenants/alice/x", which bob cannot see, and a payload over 1 KiB is
// refused with reason code 0x97 (Quota Exceeded). Try it with the
// Mosquitto clients (users.yaml holds alice/alice-secret and
// bob/bob-secret):
//
//	mosquitto_sub -p 1884 -V mqttv5 -u alice -P alice-secret -t x -v &
//	mosquitto_sub -p 1884 -V mqttv5 -u bob -P bob-secret -t x -v &
//	mosquitto_pub -p 1884 -V mqttv5 -u alice -P alice-secret -t x -m hello
//
// Only alice's subscriber prints "x hello".
//
// The program is short because the framework does the work: a hook
// package registers its module in init (tenant.go does; a blank import of
// github.com/vanemq/vanemq/hooks/auth registers auth.allow and auth.file),
// and main builds each hook the config names with core.LookupHookModule
// and adds it with Server.AddHook. See docs/hooks.md.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/vanemq/vanemq/core"
	_ "github.com/vanemq/vanemq/hooks/auth" // registers auth.allow and auth.file
	"github.com/vanemq/vanemq/listeners/tcp"
)

// exampleConfig is the config file: a subset of the vanemq binary's, with
// one TCP address instead of a list of listeners. The hooks list is
// written exactly as for vanemq.
type exampleConfig struct {
	Address        string      `yaml:"address"`
	AllowAnonymous bool        `yaml:"allow_anonymous"`
	Hooks          []hookEntry `yaml:"hooks"`
}

// hookEntry is one entry of the hooks list.
type hookEntry struct {
	ID       string    `yaml:"id"`
	Priority int       `yaml:"priority"`
	Config   yaml.Node `yaml:"config"` // decoded by the hook's module
}

func main() {
	configPath := flag.String("config", "vanemq.yaml", "read the configuration from `FILE`")
	address := flag.String("address", "", "listen on `HOST:PORT` instead of the configured address")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv, _, err := start(ctx, *configPath, *address, logger)
	if err != nil {
		fmt.Fprintln(os.Stderr, "go-hook:", err)
		os.Exit(1)
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		fmt.Fprintln(os.Stderr, "go-hook:", err)
		os.Exit(1)
	}
}

// start reads the config file at path, builds the hooks it names with
// their registered modules, and starts a broker on the configured address,
// or on address when it is not empty. It returns the server and the
// address it listens on.
func start(ctx context.Context, path, address string, logger *slog.Logger) (srv *core.Server, addr string, err error) {
	cfg, err := loadConfig(path)
	if err != nil {
		return nil, "", err
	}
	if address != "" {
		cfg.Address = address
	}
	srv, err = core.New(core.Options{AllowAnonymous: cfg.AllowAnonymous, Logger: logger})
	if err != nil {
		return nil, "", fmt.Errorf("create server: %w", err)
	}

	var built []core.Hook
	defer func() {
		if err != nil { // the server will not start: stop the hooks' background work
			for _, h := range built {
				if c, ok := h.(io.Closer); ok {
					_ = c.Close()
				}
			}
		}
	}()
	dir := filepath.Dir(path) // relative paths in hook configs are relative to the file
	for i, e := range cfg.Hooks {
		key := fmt.Sprintf("%s: hooks[%d]", path, i)
		m, ok := core.LookupHookModule(e.ID)
		if !ok {
			return nil, "", fmt.Errorf("%s.id: unknown hook %q (known: %s)", key, e.ID, strings.Join(core.HookModules(), ", "))
		}
		h, err := m.New(core.HookConfig{
			Decode: decodeStrict(&e.Config),
			Dir:    dir,
			Logger: logger.With("hook", e.ID),
		})
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", key, err)
		}
		built = append(built, h)
		if err := srv.AddHook(h, e.Priority); err != nil {
			return nil, "", fmt.Errorf("%s: %w", key, err)
		}
	}

	l := tcp.New("tcp", cfg.Address)
	if err := srv.AddListener(l); err != nil {
		return nil, "", err
	}
	// Shutdown, not ctx, ends the server's life.
	if err := srv.Start(context.WithoutCancel(ctx)); err != nil {
		_ = l.Close()
		return nil, "", fmt.Errorf("start server: %w", err)
	}
	return srv, l.Address(), nil
}

// loadConfig reads the config file strictly: unknown keys are errors.
func loadConfig(path string) (*exampleConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	cfg := &exampleConfig{Address: "127.0.0.1:1884"}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// decodeStrict returns a HookConfig.Decode for a config block: it decodes
// the block into v with unknown keys refused, and leaves v alone when the
// block is absent. yaml.v3 checks unknown keys only when decoding text, so
// the block is encoded again first; the line numbers in its errors count
// from the block's first line. (The vanemq binary maps them back to the
// file's lines and keys.)
func decodeStrict(n *yaml.Node) func(v any) error {
	return func(v any) error {
		if n.Kind == 0 || n.ShortTag() == "!!null" {
			return nil
		}
		text, err := yaml.Marshal(n)
		if err != nil {
			return fmt.Errorf("config: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(text))
		dec.KnownFields(true)
		if err := dec.Decode(v); err != nil {
			return fmt.Errorf("config (line %d): %w", n.Line, err)
		}
		return nil
	}
}
