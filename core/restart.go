package core

import (
	"context"
	"errors"
	"fmt"
)

// ErrNoHook is returned for a hook ID the server does not have.
var ErrNoHook = errors.New("core: no such hook")

// ErrNotRestartable is returned by RestartHook for a hook that is not a
// Restarter.
var ErrNotRestartable = errors.New("core: the hook cannot be restarted")

// Restarter is implemented by hooks that run something of their own that
// can fail and be started again while the broker runs (a plugin's
// process): Server.RestartHook restarts them on an operator's request (the
// admin API), and HookStatus.Restarts counts their restarts.
type Restarter interface {
	// Restart starts it again at once, stopping it first if it runs, and
	// starts any back-off between restarts over. It returns nil once it
	// serves again, why it could not start (the hook then goes on
	// restarting it as it would have), or ctx's error when ctx ends first
	// (the restart may still be under way).
	Restart(ctx context.Context) error
	// Restarts counts the restarts tried since the hook was made,
	// whether they succeeded or not.
	Restarts() int64
}

// RestartHook restarts the hook with the given ID at once (see
// Restarter.Restart): it fails with ErrNoHook for an unknown ID, with
// ErrNotRestartable for a hook that is not a Restarter, and otherwise
// with what Restart returns, naming the hook.
func (s *Server) RestartHook(ctx context.Context, id string) error {
	for _, e := range s.hooks.snapshot() {
		if e.id != id {
			continue
		}
		r, ok := e.hook.(Restarter)
		if !ok {
			return fmt.Errorf("hook %s: %w", id, ErrNotRestartable)
		}
		if err := r.Restart(ctx); err != nil {
			return fmt.Errorf("hook %s: restart: %w", id, err)
		}
		return nil
	}
	return fmt.Errorf("%w: %s", ErrNoHook, id)
}
