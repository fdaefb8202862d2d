package runner

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/collectorhq/collector/engine"
)

// Engine outages. An engine's API service may stop answering while jobs
// are in flight (the Podman service restarting, dockerd restarted) while
// its containers run on: under conmon for Podman, under dockerd's live
// restore. So a job does not fail on the first call an outage cuts: it
// waits for the engine to answer again, within a bound, and goes on where
// it was. Only an engine that stays away past the bound, or comes back
// without the job's container, fails the job (or, before its container
// started, gives it back).

// maxJobEngineBackoff bounds the pause between the checks of a job waiting
// for its engine: the job goes on within that much of the engine's return.
const maxJobEngineBackoff = 5 * time.Second

// errGivenBack marks a job given back to the platform: it is not reported,
// so its lease expires and the platform leases it again (to this collector
// or another of its pool). Only a job whose container has not started is
// given back.
var errGivenBack = errors.New("job given back")

// checkEngine asks the engine to answer (Ping), within engineCheckTimeout.
func (r *Runner) checkEngine(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, engineCheckTimeout)
	defer cancel()
	return r.eng.Ping(cctx)
}

// awaitEngine checks the engine until it answers, pausing between checks
// (doubling up to maxJobEngineBackoff); false if ctx ends first.
func (r *Runner) awaitEngine(ctx context.Context) bool {
	backoff := r.cfg.RetryBackoff
	for ctx.Err() == nil {
		if r.checkEngine(ctx) == nil {
			return ctx.Err() == nil
		}
		backoff = pause(ctx, backoff, maxJobEngineBackoff)
	}
	return false
}

// engineAway reports whether err, from an engine call made under ctx,
// shows the engine away: engine.ErrUnavailable, or another failure that is
// no answer of the engine (a stream cut half way, which a backend cannot
// tell from other errors) while the engine does not answer a check.
func (r *Runner) engineAway(ctx context.Context, err error) bool {
	switch {
	case err == nil, ctx.Err() != nil,
		errors.Is(err, engine.ErrNotFound), errors.Is(err, engine.ErrConflict), errors.Is(err, engine.ErrLogIncomplete):
		return false
	case errors.Is(err, engine.ErrUnavailable):
		return true
	}
	return r.checkEngine(ctx) != nil && ctx.Err() == nil
}

// unavailable is the outage test of a pull: Images classifies its own
// errors, and a refusal of the image is never an outage.
func unavailable(err error) bool { return errors.Is(err, engine.ErrUnavailable) }

// waitOut waits, within ctx, for the engine that err showed away; it logs
// the outage and the engine's return, and reports whether it answers.
func (j *jobRun) waitOut(ctx context.Context, err error) bool {
	start := j.r.cfg.Now()
	j.log.Warn("container engine unavailable: the job waits for it", "err", err)
	if !j.r.awaitEngine(ctx) {
		return false
	}
	j.log.Info("container engine answers again: the job goes on", "after", j.r.cfg.Now().Sub(start).Round(time.Millisecond))
	return true
}

// beforeStart calls f, a step before the job's container runs, again each
// time away says it failed for the engine, once the engine answers. An
// engine away longer than EngineWait (or the job's time limit) gives the
// job back.
func (j *jobRun) beforeStart(ctx context.Context, away func(error) bool, f func() error) error {
	for {
		err := f()
		if err == nil || !away(err) {
			return err
		}
		wait := min(j.r.cfg.EngineWait, j.timeout())
		wctx, cancel := context.WithTimeout(ctx, wait)
		back := j.waitOut(wctx, err)
		cancel()
		switch {
		case ctx.Err() != nil:
			return err
		case !back:
			return fmt.Errorf("%w: the container engine did not answer within %v, before the job's container ran: %w", errGivenBack, wait, err)
		}
	}
}

// sitOut decides what err, from following container id under runCtx, means
// for the follow: true when it was an outage and the engine answers again
// (follow on); false when it ends the follow, with e.lost set if an
// outage lost the job.
func (j *jobRun) sitOut(runCtx context.Context, err error, e *exit) bool {
	if errors.Is(err, engine.ErrNotFound) && e.outage {
		e.lost = fmt.Errorf("job container gone when the container engine came back: how the job ended is unknown: %w", err)
		return false
	}
	if !j.r.engineAway(runCtx, err) {
		return false
	}
	if !e.outage {
		j.logf("the container engine stopped answering; the job runs on and is followed again once the engine answers")
	}
	e.outage = true
	if j.waitOut(runCtx, err) {
		return true
	}
	if errors.Is(runCtx.Err(), context.DeadlineExceeded) {
		e.lost = fmt.Errorf("the container engine did not answer again within the job's time limit (%v): the job could not be followed to its end, nor stopped; its container is removed once the engine answers (last error: %w)", j.timeout(), err)
	}
	return false
}

// retryCleanup removes what cleanup could not (the engine away as the job
// ended) once the engine answers, until ctx ends; the job's in-flight
// record stays until then, so a restarted runner removes them instead.
func (j *jobRun) retryCleanup(ctx context.Context) {
	backoff, refusals := j.r.cfg.RetryBackoff, 0
	for j.cleanPending {
		if !j.r.awaitEngine(ctx) {
			return
		}
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		err := j.r.removeJobObjects(rctx, j.job.JobID)
		cancel()
		switch {
		case err == nil:
			j.r.state.clearInflight(j.job.JobID)
			j.cleanPending = false
			j.log.Info("job container and secret removed once the container engine answered")
			return
		case ctx.Err() != nil:
			return
		case !j.r.engineAway(ctx, err):
			if refusals++; refusals == maxCleanupRefusals {
				j.log.Error("job container or secret not removed: the runner tries again at its next start", "err", err)
				return
			}
		}
		j.log.Warn("removing the job container and secret failed again; retrying", "err", err, "retry_in", backoff)
		backoff = pause(ctx, backoff, maxEngineBackoff)
	}
}

// maxCleanupRefusals bounds the removals retried while the engine answers:
// what an answering engine keeps refusing to remove is left to the
// runner's next start.
const maxCleanupRefusals = 5
