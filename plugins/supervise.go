package plugins

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os/signal"
	"time"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/plugins/proto/pluginv1"
)

// The supervisor watches the running plugin and restarts it when it exits,
// fails its observer stream or stops answering health checks. Restarts in
// a row (without a healthy minute between) wait longer each time, as
// Kubernetes' CrashLoopBackOff does: RestartDelay before the first,
// doubling up to MaxBackoff, for as long as the hook runs. A plugin is
// never left down for good: once it can start again, it does by itself.
// After MaxRestarts restarts in a row it counts as down (each further one
// is logged as an error); SIGHUP starts a plugin that is not serving at
// once, and Restart (the admin API) restarts it at once, running or not,
// both starting the back-off over. Meanwhile decisions follow the failure
// policy, and Health says why the plugin is not serving.

// healthyRun is how long a plugin must run, answering its health checks,
// for its restarts to stop counting as in a row.
const healthyRun = time.Minute

// restartReq asks the supervisor to restart the plugin now; done
// receives the outcome (nil once the new process serves).
type restartReq struct{ done chan error }

// reply sends the outcome of the start r asked for, if any.
func (r *restartReq) reply(err error) {
	if r != nil {
		r.done <- err // buffered: the supervisor never waits
	}
}

// errRestartRequested is the cause of a restart Restart asked for.
var errRestartRequested = errors.New("a restart was requested")

// errClosed is Restart's error once the hook has stopped.
var errClosed = errors.New("the plugin hook is stopped")

// Restart implements core.Restarter: it starts the plugin again at once
// (a running one is stopped first, its queued events sent) and starts the
// back-off over. It returns nil once the new process serves, the error of
// its start when it fails (the supervisor then goes on restarting it with
// the back-off), or ctx's error when ctx ends first.
func (h *Hook) Restart(ctx context.Context) error {
	req := restartReq{done: make(chan error, 1)}
	select {
	case h.kick <- req:
	case <-h.stopped:
		return errClosed
	case <-ctx.Done():
		return fmt.Errorf("restart not requested: the plugin is being stopped or started: %w", ctx.Err())
	}
	select {
	case err := <-req.done:
		return err
	case <-h.stopped:
		return errClosed
	case <-ctx.Done():
		return fmt.Errorf("the restart is still under way: %w", ctx.Err())
	}
}

// setState records why the plugin is not serving, for Health.
func (h *Hook) setState(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	h.state.Store(&s)
}

// supervise runs the plugin until the hook closes: it watches the running
// instance, and restarts it when it fails or a restart is asked for.
func (h *Hook) supervise(inst *instance) {
	defer close(h.stopped)
	defer func() { signal.Stop(h.hup) }()
	inRow := 0 // restarts in a row, without a healthy minute between
	for {
		req, why := h.watch(inst, &inRow)
		if why == nil { // the hook closes
			h.setState("plugin %s is stopped", h.name)
			h.cur.Store(nil)
			inst.close()
			return
		}
		h.setState("plugin %s is restarting: %v", h.name, why)
		h.cur.Store(nil)
		if req != nil {
			h.logger().Info("plugin restart requested: stopping it and starting it again; decisions follow the failure policy meanwhile",
				"policy", h.cfg.OnFailure)
			inRow = 0
		}
		inst.close()
		if inst = h.restart(why, req, &inRow); inst == nil {
			h.setState("plugin %s is stopped", h.name)
			return
		}
	}
}

// watch returns why the running plugin must be restarted: it exited, its
// observer stream failed, it did not answer a health check, or Restart
// asked (with its request); no error when the hook closes. A health check that
// passes after healthyRun of running resets inRow.
func (h *Hook) watch(inst *instance, inRow *int) (*restartReq, error) {
	poll := time.NewTicker(100 * time.Millisecond)
	defer poll.Stop()
	started := time.Now()
	lastHealth := started
	for {
		select {
		case <-h.stop:
			return nil, nil
		case err := <-inst.failed:
			return nil, err
		case req := <-h.kick:
			return &req, errRestartRequested
		case <-h.hup:
			h.logger().Debug("SIGHUP: the plugin is serving; nothing to restart")
		case now := <-poll.C:
			if inst.client.Exited() {
				return nil, errors.New("the plugin process exited")
			}
			if now.Sub(lastHealth) < h.cfg.HealthInterval {
				continue
			}
			lastHealth = now
			ctx, cancel := context.WithTimeout(context.Background(), max(10*h.cfg.Timeout, time.Second))
			_, err := inst.rpc.Plugin.Health(ctx, &pluginv1.HealthRequest{})
			cancel()
			if err != nil {
				return nil, fmt.Errorf("health check: %w", err)
			}
			if now.Sub(started) > healthyRun {
				*inRow = 0
			}
		}
	}
}

// restart starts the plugin again until it serves (it returns the new
// instance) or the hook closes (nil). why is the cause it is not running.
// Each start waits the back-off of its place in the row, except the one
// req asked for; SIGHUP or Restart during a wait start it at once, the
// row starting over.
func (h *Hook) restart(why error, req *restartReq, inRow *int) *instance {
	failedStart := false // why is a start that failed, not a run that ended
	for {
		*inRow++
		if req == nil {
			wait := h.cfg.backoff(*inRow)
			wait = min(wait+rand.N(wait/2+1), h.cfg.MaxBackoff) // jitter
			h.scheduled(*inRow, wait, why, failedStart)
			timer := time.NewTimer(wait)
			select {
			case <-h.stop:
				timer.Stop()
				return nil
			case <-timer.C:
			case <-h.hup:
				timer.Stop()
				*inRow = 1
				h.logger().Info("SIGHUP: starting the plugin at once")
			case r := <-h.kick:
				timer.Stop()
				*inRow = 1
				req = &r
				h.logger().Info("plugin restart requested: starting it at once")
			}
		}
		h.restarts.Add(1)
		h.setState("plugin %s is starting (restart %d in a row) after: %v", h.name, *inRow, why)
		reads := h.disp.Load().events.Has(core.EventAuthorizeRead)
		inst, err := h.start()
		if err != nil {
			// Health says so before Restart returns the error (scheduled
			// then adds when the next start is).
			h.setState("plugin %s is restarting: %v", h.name, err)
			req.reply(err)
			req = nil
			why, failedStart = err, true
			continue
		}
		h.cur.Store(inst)
		h.state.Store(nil)
		if (reads || h.disp.Load().events.Has(core.EventAuthorizeRead)) && h.srv != nil {
			// The new process (perhaps a new binary, or one that read its
			// rules again) decides reads afresh: the server forgets the
			// old one's verdicts, and checks what the sessions hold.
			h.srv.InvalidateAuthorization()
		}
		req.reply(nil) // once decisions reach the new process, and its reads are in force
		h.logger().Info("plugin restarted", "attempt", *inRow)
		return inst
	}
}

// scheduled logs the next start and records it for Health: a warning for
// the first max_restarts restarts in a row, an error after them, when
// the plugin counts as down.
func (h *Hook) scheduled(n int, wait time.Duration, why error, failedStart bool) {
	at := time.Now().Add(wait).UTC().Format("2006-01-02T15:04:05.000Z")
	if n > h.cfg.MaxRestarts {
		h.setState("plugin %s is down: %d restarts in a row did not keep it running (max_restarts %d), the last: %v; next attempt at %s",
			h.name, n-1, h.cfg.MaxRestarts, why, at)
		h.logger().Error("plugin is down: it keeps failing; decisions follow the failure policy, and it is restarted with a back-off",
			"cause", why, "restarts_in_a_row", n-1, "next_attempt_in", wait, "max_backoff", h.cfg.MaxBackoff, "policy", h.cfg.OnFailure)
		return
	}
	h.setState("plugin %s is restarting: %v; restart %d in a row at %s", h.name, why, n, at)
	msg := "plugin failed; restarting it, decisions follow the failure policy meanwhile"
	if failedStart {
		msg = "plugin restart failed"
	}
	h.logger().Warn(msg, "cause", why, "attempt", n, "next_attempt_in", wait, "policy", h.cfg.OnFailure)
}

// start launches the plugin and checks its description; a description
// with other events than before is followed (the pipeline is refreshed).
func (h *Hook) start() (*instance, error) {
	inst, err := h.launch()
	if err != nil {
		return nil, err
	}
	disp, err := describe(inst.desc)
	if err != nil {
		inst.close()
		return nil, fmt.Errorf("the restarted plugin describes itself wrongly: %w", err)
	}
	if old := h.disp.Load(); !disp.same(old) {
		h.disp.Store(disp)
		if h.srv != nil {
			if err := h.srv.RefreshHook(h.cfg.Name); err != nil {
				h.logger().Warn("restarted plugin's new events could not be registered", "cause", err)
			}
		}
		h.logger().Info("restarted plugin describes other events; the broker follows", "events", h.describeEvents())
	}
	return inst, nil
}
