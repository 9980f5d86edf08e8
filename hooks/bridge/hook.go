package bridge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/vanemq/vanemq/core"
)

func init() {
	core.RegisterHookModule(core.Module(ID, Config{}, func(hc core.HookConfig, c Config) (core.Hook, error) {
		return New(hc.ID, c, hc.Server, hc.Logger)
	}))
}

// Hook runs the bridges of one config block: each starts with the
// server and stops with it.
type Hook struct {
	id      string
	log     *slog.Logger
	bridges []*bridge

	mu     sync.Mutex
	cancel context.CancelFunc
}

// New checks cfg and makes the bridges for srv; they connect when srv
// starts (OnStarted). id is the hook's ID ("bridge", or "bridge:NAME").
// An error names the bridge and the key at fault.
func New(id string, cfg Config, srv *core.Server, log *slog.Logger) (*Hook, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := cfg.check(); err != nil {
		return nil, fmt.Errorf("%s: %w", ID, err)
	}
	if srv == nil {
		return nil, fmt.Errorf("%s: needs the server it bridges", ID)
	}
	h := &Hook{id: id, log: log}
	var errs []error
	for i, bc := range cfg.Bridges {
		br, err := newBridge(bc, srv, log)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: bridges[%d] (%s): %w", ID, i, bc.Name, err))
			continue
		}
		h.bridges = append(h.bridges, br)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return h, nil
}

// ID implements core.Hook.
func (h *Hook) ID() string { return h.id }

// What the hook implements: the bridges start with the server and are
// closed by it after OnStopped; their traffic goes through their own
// connections, not through the pipeline.
var (
	_ core.Hook           = (*Hook)(nil)
	_ core.StartedHook    = (*Hook)(nil)
	_ core.BridgeReporter = (*Hook)(nil)
	_ io.Closer           = (*Hook)(nil)
)

// OnStarted implements core.StartedHook: the bridges connect.
func (h *Hook) OnStarted(context.Context) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	// Each bridge's session here is subscribed before OnStarted returns,
	// which is before the listeners serve.
	for _, br := range h.bridges {
		br.start(ctx)
	}
}

// stopTimeout bounds waiting for the bridges to stop.
const stopTimeout = 5 * time.Second

// Close stops the bridges: the remote connections end cleanly, after
// saying offline. It may be called more than once.
func (h *Hook) Close() error {
	h.mu.Lock()
	cancel := h.cancel
	h.cancel = func() {}
	h.mu.Unlock()
	if cancel == nil {
		return nil // never started
	}
	cancel()
	deadline := time.After(stopTimeout)
	for _, br := range h.bridges {
		select {
		case <-br.stopped:
		case <-deadline:
			return errors.New("bridge: stopping: timed out")
		}
	}
	return nil
}

// Bridges implements core.BridgeReporter.
func (h *Hook) Bridges() []core.BridgeStatus {
	out := make([]core.BridgeStatus, 0, len(h.bridges))
	for _, br := range h.bridges {
		out = append(out, br.status())
	}
	return out
}
