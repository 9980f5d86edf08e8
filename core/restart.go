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
