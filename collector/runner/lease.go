package runner

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/collectorhq/collector/api"
)

// errLeaseLost ends a job whose lease the platform no longer honours.
var errLeaseLost = errors.New("lease lost: the platform gave the job to another run")

// handoverWait bounds how long a call refused for a lost lease waits for
// the platform's new lease of the job to reach this run (the runner's next
// long poll brings it).
const handoverWait = 30 * time.Second

// cur returns the job's current lease.
func (j *jobRun) cur() *api.Lease {
	j.leaseMu.Lock()
	defer j.leaseMu.Unlock()
	return j.lease
}

// keepLease renews the lease at a third of its TTL until ctx ends; a lost
// lease (one a handover has not replaced) abandons the run.
func (j *jobRun) keepLease(ctx context.Context, abandon context.CancelCauseFunc) {
	ttl := time.Duration(j.cur().LeaseTTLSec) * time.Second
	if ttl <= 0 {
		ttl = 60 * time.Second
	}
	t := time.NewTicker(max(ttl/3, 200*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		l := j.cur()
		_, err := j.r.api.Renew(ctx, l.JobID, l.LeaseID)
		if s := api.StatusOf(err); (s == http.StatusConflict || s == http.StatusNotFound) && j.cur() == l {
			abandon(errLeaseLost)
			return
		}
		if err != nil && ctx.Err() == nil {
			j.log.Warn("lease renewal failed; retrying", "err", err)
		}
	}
}

// handover gives a new lease of a job this runner is still running to that
// run: the platform re-leased it after the old lease expired (an outage
// longer than the lease), and the run goes on under the new lease instead
// of being refused or started twice. It reports whether it took the lease.
func (r *Runner) handover(l *api.Lease) bool {
	j := r.runningJob(l.JobID)
	if j == nil || j.abandoned() {
		// An abandoned run is on its way out: the new lease starts a fresh
		// run, which waits for this one to release the integration.
		return false
	}
	if _, err := r.open(l); err != nil {
		return false
	}
	j.leaseMu.Lock()
	j.lease = l
	close(j.newLease)
	j.newLease = make(chan struct{})
	j.leaseMu.Unlock()
	j.log.Warn("lease expired while the job ran; continuing under the new lease", "attempt", l.Attempt)
	return true
}

// abandoned reports whether the run is on its way out.
func (j *jobRun) abandoned() bool {
	select {
	case <-j.ended:
		return true
	default:
		return false
	}
}

// awaitHandover waits for a lease newer than l; false if none came within
// handoverWait, or the run was abandoned, or ctx ended.
func (j *jobRun) awaitHandover(ctx context.Context, l *api.Lease) bool {
	t := time.NewTimer(handoverWait)
	defer t.Stop()
	for {
		j.leaseMu.Lock()
		cur, changed := j.lease, j.newLease
		j.leaseMu.Unlock()
		if cur != l {
			return true
		}
		select {
		case <-changed:
		case <-t.C:
			return false
		case <-ctx.Done():
			return false
		case <-j.ended:
			return false
		}
	}
}

// retry calls f with the current lease until it succeeds, fails for good,
// or ctx ends. What api.Retryable says may pass if made again (a timeout, a
// broken connection, 408, 429, 5xx) is retried with backoff, with the same
// body: every call is idempotent. A lost lease (409) is retried only if a
// handover brought a new one.
func (j *jobRun) retry(ctx context.Context, what string, f func(context.Context, *api.Lease) error) error {
	backoff := j.r.cfg.RetryBackoff
	for attempt := 1; ; attempt++ {
		l := j.cur()
		err := f(ctx, l)
		if api.StatusOf(err) == http.StatusConflict && j.awaitHandover(ctx, l) {
			continue
		}
		if err == nil || !api.Retryable(err) || ctx.Err() != nil {
			return err
		}
		j.log.Warn(what+" failed; retrying", "attempt", attempt, "err", err, "retry_in", backoff)
		backoff = pause(ctx, backoff, 15*time.Second)
	}
}
