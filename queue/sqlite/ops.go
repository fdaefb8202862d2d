package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/collectorhq/collector/queue"
	"github.com/collectorhq/collector/queue/internal/ids"
)

// Tx is a write transaction on the queue's database. Backends that keep
// their tables in the same database (the platform's store and record store)
// act on a job in the same transaction as their own writes through it:
// a reassignment moves the queued job with the integration, an ingest
// checks the lease where it writes, a finish sweeps what the run did not
// send. Waiting Next calls are woken after the commit.
type Tx struct {
	q      *Queue
	w      *wtx
	notify []string // collectors whose waiters to wake after the commit
}

// Update runs fn in one write transaction; fn's error rolls it back.
// Collectors that got work are woken once it commits.
func (q *Queue) Update(ctx context.Context, fn func(t *Tx) error) error {
	var notify []string
	err := q.write(ctx, func(w *wtx) error {
		t := &Tx{q: q, w: w}
		if err := fn(t); err != nil {
			return err
		}
		notify = t.notify
		return nil
	})
	if err != nil {
		return err
	}
	for _, c := range notify {
		q.notifier.Notify(c)
	}
	return nil
}

// SQL returns the transaction, for the caller's own statements.
func (t *Tx) SQL() *sql.Tx { return t.w.tx }

// Now is the queue's clock, read once per call.
func (t *Tx) Now() time.Time { return t.q.now() }

// Enqueue is queue.Queue's Enqueue inside t.
func (t *Tx) Enqueue(ctx context.Context, req queue.EnqueueRequest) (*queue.Job, bool, error) {
	if err := queue.CheckEnqueue(req); err != nil {
		return nil, false, err
	}
	attempts, priority := req.Mode.Attempts(t.q.cfg.MaxAttempts), req.Mode.Priority()
	job, err := scanJob(t.w.QueryRowContext(ctx, insertJobSQL,
		ids.Job(), req.IntegrationID, req.CollectorID, attempts, t.q.now().UnixNano(), req.RequestedBy, req.Pool, string(req.Mode), priority))
	existed := false
	if errors.Is(err, sql.ErrNoRows) {
		existed = true
		job, err = scanJob(t.w.QueryRowContext(ctx, activeJobSQL, req.IntegrationID, string(req.Mode)))
	}
	if err != nil {
		return nil, false, fmt.Errorf("enqueue integration %q: %w", req.IntegrationID, err)
	}
	if !existed {
		t.wake(queue.Target{CollectorID: job.CollectorID, Pool: job.Pool})
	}
	return job, existed, nil
}

// Get reads a job inside t.
func (t *Tx) Get(ctx context.Context, jobID string) (*queue.Job, error) {
	return getJob(ctx, t.w, jobID)
}

// CheckLease returns the job if leaseID is its current, unexpired lease;
// else queue.ErrLeaseLost (or queue.ErrNotFound). An expired lease is
// refused even before ExpireLeases has requeued the job: the job may be
// handed out again at any moment, so the old holder must stop.
func (t *Tx) CheckLease(ctx context.Context, jobID, leaseID string) (*queue.Job, error) {
	j, err := getJob(ctx, t.w, jobID)
	if err != nil {
		return nil, err
	}
	if leaseID == "" || leaseID != j.LeaseID {
		return nil, fmt.Errorf("job %s is %s under another or no lease: %w", jobID, j.State, queue.ErrLeaseLost)
	}
	if !j.State.Active() {
		return nil, fmt.Errorf("job %s is %s: %w", jobID, j.State, queue.ErrLeaseLost)
	}
	if !j.LeaseExpiresAt.After(t.q.now()) {
		return nil, fmt.Errorf("lease expired at %s: %w", j.LeaseExpiresAt.Format(time.RFC3339Nano), queue.ErrLeaseLost)
	}
	return j, nil
}

// withLease is CheckLease with the lease-then-state order of queue.Queue:
// a finished job keeps its last lease ID, so a call with it is refused as
// an invalid state, not a lost lease.
func (t *Tx) withLease(ctx context.Context, jobID, leaseID string) (*queue.Job, error) {
	j, err := getJob(ctx, t.w, jobID)
	if err != nil {
		return nil, err
	}
	if leaseID != j.LeaseID {
		return nil, queue.ErrLeaseLost
	}
	if j.State != queue.StateLeased && j.State != queue.StateRunning {
		return nil, fmt.Errorf("job is %s: %w", j.State, queue.ErrInvalidState)
	}
	if !j.LeaseExpiresAt.After(t.q.now()) {
		return nil, fmt.Errorf("lease expired at %s: %w", j.LeaseExpiresAt.Format(time.RFC3339Nano), queue.ErrLeaseLost)
	}
	return j, nil
}

// Renew is queue.Queue's Renew inside t.
func (t *Tx) Renew(ctx context.Context, jobID, leaseID string) (*queue.Job, error) {
	j, err := t.withLease(ctx, jobID, leaseID)
	if err != nil {
		return nil, fmt.Errorf("renew lease of job %q: %w", jobID, err)
	}
	return scanJob(t.w.QueryRowContext(ctx, renewSQL, t.q.now().Add(t.q.cfg.LeaseTTL).UnixNano(), j.ID))
}

// MarkRunning is queue.Queue's MarkRunning inside t.
func (t *Tx) MarkRunning(ctx context.Context, jobID, leaseID string) (*queue.Job, error) {
	j, err := t.withLease(ctx, jobID, leaseID)
	if err != nil {
		return nil, fmt.Errorf("mark job %q running: %w", jobID, err)
	}
	now := t.q.now()
	if j.State == queue.StateRunning { // a retry: renew only, keep StartedAt
		return scanJob(t.w.QueryRowContext(ctx, renewSQL, now.Add(t.q.cfg.LeaseTTL).UnixNano(), j.ID))
	}
	return scanJob(t.w.QueryRowContext(ctx, markRunningSQL, now.UnixNano(), now.Add(t.q.cfg.LeaseTTL).UnixNano(), j.ID))
}

// Finish is queue.Queue's Finish inside t.
func (t *Tx) Finish(ctx context.Context, jobID, leaseID string, res queue.Result) (*queue.Job, error) {
	j, err := t.withLease(ctx, jobID, leaseID)
	if err != nil {
		return nil, fmt.Errorf("finish job %q: %w", jobID, err)
	}
	state := queue.StateFailed
	if res.Succeeded {
		state = queue.StateSucceeded
	}
	outcome := ""
	if j.Mode == queue.ModeValidate {
		outcome = queue.ClipOutcome(res.Outcome)
	}
	done, err := scanJob(t.w.QueryRowContext(ctx, finishSQL,
		string(state), t.q.now().UnixNano(), res.ExitCode, res.Error, res.PeakMemoryBytes, res.PeakCPUPercent, outcome, j.ID))
	if err != nil {
		return nil, fmt.Errorf("finish job %q: %w", jobID, err)
	}
	switch {
	case j.Mode == queue.ModeValidate:
		// A validation's use says nothing of a collection's.
	case res.OOMKilled && t.q.cfg.LimitMemoryBytes > 0:
		// Killed at its limit: it needs all of it (at least) next time.
		if err := recordPeak(ctx, t.w, j.IntegrationID, t.q.cfg.LimitMemoryBytes, res.PeakCPUPercent/100, t.q.cfg.PeakSamples); err != nil {
			return nil, err
		}
	case res.Succeeded && (res.PeakMemoryBytes > 0 || res.PeakCPUPercent > 0):
		if err := recordPeak(ctx, t.w, j.IntegrationID, res.PeakMemoryBytes, res.PeakCPUPercent/100, t.q.cfg.PeakSamples); err != nil {
			return nil, err
		}
	}
	return done, nil
}

// Cancel is queue.Queue's Cancel inside t; reason, if set, replaces the
// default error text ("canceled while <state>").
func (t *Tx) Cancel(ctx context.Context, jobID, reason string) (*queue.Job, error) {
	j, err := getJob(ctx, t.w, jobID)
	if err != nil {
		return nil, fmt.Errorf("cancel job %q: %w", jobID, err)
	}
	if !j.State.Active() {
		return nil, fmt.Errorf("cancel job %q: job is %s: %w", jobID, j.State, queue.ErrInvalidState)
	}
	if reason == "" {
		reason = "canceled while " + string(j.State)
	}
	return scanJob(t.w.QueryRowContext(ctx, cancelSQL, t.q.now().UnixNano(), reason, j.ID))
}

// CancelActive cancels every active job of an integration (queued,
// leased or running), with reason as their error, and reports how many.
func (t *Tx) CancelActive(ctx context.Context, integrationID, reason string) (int, error) {
	if integrationID == "" {
		return 0, errors.New("cancel active jobs: an integration ID is required")
	}
	n, err := t.exec(ctx, cancelIntegrationSQL, t.q.now().UnixNano(), reason, integrationID)
	if err != nil {
		return 0, fmt.Errorf("cancel active jobs of integration %q: %w", integrationID, err)
	}
	return n, nil
}

// CollectorGone ends what the queue holds for a collector being deleted,
// and reports how many jobs it canceled and how many it moved. The jobs
// queued for it are canceled, with reason as their error. Its jobs in
// flight are never requeued onto it: it can no longer renew, finish or
// send, so their leases end now; each goes where its lease's expiry
// would send it (where its integration moved, or its pool) when that is
// elsewhere, with no attempt counted, and is canceled with reason when
// it has nowhere else to go.
func (t *Tx) CollectorGone(ctx context.Context, collectorID, reason string) (canceled, moved int, err error) {
	if collectorID == "" {
		return 0, 0, errors.New("collector gone: a collector ID is required")
	}
	if moved, err = t.leaveCollector(ctx, collectorID); err != nil {
		return 0, 0, fmt.Errorf("move the jobs of deleted collector %q: %w", collectorID, err)
	}
	now := t.q.now().UnixNano()
	queued, err := t.exec(ctx, cancelCollectorSQL, now, reason, collectorID)
	if err != nil {
		return 0, 0, fmt.Errorf("cancel the queued jobs of deleted collector %q: %w", collectorID, err)
	}
	inFlight, err := t.exec(ctx, cancelCollectorInFlightSQL, now, reason, collectorID)
	if err != nil {
		return 0, 0, fmt.Errorf("cancel the running jobs of deleted collector %q: %w", collectorID, err)
	}
	return queued + inFlight, moved, nil
}

// leaveCollector requeues the jobs in flight on a deleted collector that
// have somewhere else to go, and wakes their targets.
func (t *Tx) leaveCollector(ctx context.Context, collectorID string) (int, error) {
	rows, err := t.w.QueryContext(ctx, leaveCollectorSQL, collectorID)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var to queue.Target
		if err := rows.Scan(&to.CollectorID, &to.Pool); err != nil {
			return 0, err
		}
		t.wake(to)
		n++
	}
	return n, rows.Err()
}

// exec runs a statement and reports the rows it changed.
func (t *Tx) exec(ctx context.Context, query string, args ...any) (int, error) {
	res, err := t.w.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// wake queues a wake-up of the waiters of a collector, or of a pool's
// members, after the commit.
func (t *Tx) wake(to queue.Target) {
	if to.Pool != "" && to.CollectorID == "" {
		t.notify = append(t.notify, poolKey(to.Pool))
		return
	}
	t.notify = append(t.notify, to.CollectorID)
}

// Reassign is queue.Queue's Reassign inside t.
func (t *Tx) Reassign(ctx context.Context, integrationID string, to queue.Target) (int, error) {
	if integrationID == "" || !to.Valid() {
		return 0, errors.New("reassign: an integration ID and one target (a collector ID or a pool) are required")
	}
	n, err := t.reassign(ctx, integrationID, to)
	if err != nil {
		return 0, fmt.Errorf("reassign integration %q to %+v: %w", integrationID, to, err)
	}
	if n > 0 {
		t.wake(to)
	}
	return n, nil
}

// reassign runs reassignSQL and counts the queued jobs it moved (the
// others it changed are in flight: they move when their leases end).
func (t *Tx) reassign(ctx context.Context, integrationID string, to queue.Target) (int, error) {
	rows, err := t.w.QueryContext(ctx, reassignSQL, to.CollectorID, to.Pool, integrationID)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var state string
		if err := rows.Scan(&state); err != nil {
			return 0, err
		}
		if queue.State(state) == queue.StateQueued {
			n++
		}
	}
	return n, rows.Err()
}

// Requeue returns a leased job to the queue of to without counting an
// attempt: the platform leased it to a collector that may not run it any
// more (its integration moved). The lease is voided. A job whose
// integration was reassigned since it was leased goes there instead (see
// queue.Queue's Requeue).
func (t *Tx) Requeue(ctx context.Context, jobID, leaseID string, to queue.Target) (*queue.Job, error) {
	if !to.Valid() {
		return nil, errors.New("requeue: one target (a collector ID or a pool) is required")
	}
	j, err := t.withLease(ctx, jobID, leaseID)
	if err != nil {
		return nil, fmt.Errorf("requeue job %q: %w", jobID, err)
	}
	if j.State != queue.StateLeased {
		return nil, fmt.Errorf("requeue job %q: job is %s: %w", jobID, j.State, queue.ErrInvalidState)
	}
	job, err := scanJob(t.w.QueryRowContext(ctx, requeueSQL, to.CollectorID, to.Pool, j.ID))
	if err == nil {
		t.wake(queue.Target{CollectorID: job.CollectorID, Pool: job.Pool})
	}
	return job, err
}

// expire requeues (attempt+1) or kills the jobs whose lease has passed,
// queues their targets for a wake-up and reports how many. A requeued job
// goes where its integration moved while it was in flight, if it did.
func (t *Tx) expire(ctx context.Context, now time.Time) (int, error) {
	rows, err := t.w.QueryContext(ctx, expireSQL, now.UnixNano())
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var collector, pool, state string
		if err := rows.Scan(&collector, &pool, &state); err != nil {
			return 0, err
		}
		t.wake(queue.Target{CollectorID: collector, Pool: pool})
		n++
	}
	return n, rows.Err()
}

// DeleteFinished deletes up to limit jobs that reached a final state
// before cutoff (retention) and returns their IDs, for the caller to drop
// what it keeps per job in the same transaction.
func (t *Tx) DeleteFinished(ctx context.Context, cutoff time.Time, limit int) ([]string, error) {
	rows, err := t.w.QueryContext(ctx, deleteFinishedSQL, cutoff.UnixNano(), limit)
	if err != nil {
		return nil, fmt.Errorf("delete finished jobs: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// DeleteIntegrationJobs deletes up to limit finished jobs of an integration
// (its active ones are canceled first by the caller) and returns their IDs.
func (t *Tx) DeleteIntegrationJobs(ctx context.Context, integrationID string, limit int) ([]string, error) {
	rows, err := t.w.QueryContext(ctx, deleteIntegrationJobsSQL, integrationID, limit)
	if err != nil {
		return nil, fmt.Errorf("delete jobs of integration %q: %w", integrationID, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}
