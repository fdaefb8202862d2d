package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/collectorhq/collector/queue"
)

// querier is what the queue's statements run on: the pool, or a
// transaction.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Tx is a transaction on the queue's database, as queue/sqlite's Tx:
// backends that keep their tables in the same database (the platform's
// store and record store) act on a job in the same transaction as their
// own writes through it. Waiters, here and in the other processes, are
// woken after the commit.
type Tx struct {
	q  *Queue
	tx pgx.Tx
	// publish: targets to wake here and, through Channel, elsewhere;
	// local: targets whose other processes the statement itself told;
	// pend: targets to wake here, and elsewhere through the debouncer.
	publish, local, pend []queue.Target
}

// Update runs fn in one transaction; fn's error rolls it back. Collectors
// that got work are woken once it commits.
func (q *Queue) Update(ctx context.Context, fn func(t *Tx) error) error {
	if q.isClosed() {
		return queue.ErrClosed
	}
	var t *Tx
	err := pgx.BeginFunc(ctx, q.pool, func(tx pgx.Tx) error {
		t = &Tx{q: q, tx: tx}
		return fn(t)
	})
	if err != nil {
		return err
	}
	for _, to := range t.local {
		q.notifier.Notify(wakeKey(to))
	}
	for _, to := range t.pend {
		q.notifier.Notify(wakeKey(to))
		q.debounce.pend(payloadKey(to))
	}
	q.publish(ctx, t.publish)
	return nil
}

// SQL returns the transaction, for the caller's own statements.
func (t *Tx) SQL() pgx.Tx { return t.tx }

// Now is the queue's clock.
func (t *Tx) Now() time.Time { return t.q.now() }

// Enqueue is queue.Queue's Enqueue inside t.
func (t *Tx) Enqueue(ctx context.Context, req queue.EnqueueRequest) (*queue.Job, bool, error) {
	if err := queue.CheckEnqueue(req); err != nil {
		return nil, false, err
	}
	to := queue.Target{CollectorID: req.CollectorID, Pool: req.Pool}
	insert, args, notified := t.q.insertJob(req)
	job, err := scanJob(insert.queryRow(ctx, t.tx, args), nil)
	if err == nil {
		if notified {
			t.local = append(t.local, to)
		} else {
			t.pend = append(t.pend, to)
		}
		return job, false, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return nil, false, fmt.Errorf("enqueue integration %q: %w", req.IntegrationID, err)
	}
	// The INSERT found an active job: it is still there (its row is
	// locked by the conflict check until this transaction ends).
	job, err = scanJob(activeJobSQL.queryRow(ctx, t.tx, pgx.NamedArgs{"integration": req.IntegrationID, "mode": string(req.Mode)}))
	if err != nil {
		return nil, false, fmt.Errorf("enqueue integration %q: %w", req.IntegrationID, err)
	}
	return job, true, nil
}

// Get reads a job inside t.
func (t *Tx) Get(ctx context.Context, jobID string) (*queue.Job, error) {
	return getJobOn(ctx, t.tx, jobID)
}

// CheckLease returns the job if leaseID is its current, unexpired lease;
// else queue.ErrLeaseLost (or queue.ErrNotFound). The job's row is locked
// for share until t ends, so a finish, cancel or expiry of the job waits
// for t's writes (an expiry sweep passes over it) and a write made under
// the lease is never committed after the lease ended.
func (t *Tx) CheckLease(ctx context.Context, jobID, leaseID string) (*queue.Job, error) {
	j, err := scanJob(t.tx.QueryRow(ctx, getJobSQL+` FOR SHARE`, jobID))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, queue.ErrNotFound
	}
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

// Finish is queue.Queue's Finish inside t.
func (t *Tx) Finish(ctx context.Context, jobID, leaseID string, res queue.Result) (*queue.Job, error) {
	return leaseCallOn(ctx, t.tx, "finish", finishSQL, t.q.finishArgs(res), jobID, leaseID, t.q.now(), false)
}

// Cancel is queue.Queue's Cancel inside t; reason, if set, replaces the
// default error text ("canceled while <state>").
func (t *Tx) Cancel(ctx context.Context, jobID, reason string) (*queue.Job, error) {
	job, err := scanJob(cancelSQL.queryRow(ctx, t.tx, pgx.NamedArgs{"id": jobID, "now": t.q.now(), "reason": reason}))
	if err == nil {
		return job, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("cancel job %q: %w", jobID, err)
	}
	j, err := getJobOn(ctx, t.tx, jobID)
	if err != nil {
		return nil, fmt.Errorf("cancel job %q: %w", jobID, err)
	}
	return nil, fmt.Errorf("cancel job %q: job is %s: %w", jobID, j.State, queue.ErrInvalidState)
}

// CancelActive cancels every active job of an integration (queued,
// leased or running), with reason as their error, and reports how many.
func (t *Tx) CancelActive(ctx context.Context, integrationID, reason string) (int, error) {
	if integrationID == "" {
		return 0, errors.New("cancel active jobs: an integration ID is required")
	}
	tag, err := cancelIntegrationSQL.exec(ctx, t.tx, pgx.NamedArgs{"now": t.q.now(), "reason": reason, "integration": integrationID})
	if err != nil {
		return 0, fmt.Errorf("cancel active jobs of integration %q: %w", integrationID, err)
	}
	return int(tag.RowsAffected()), nil
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
	rows, err := leaveCollectorSQL.query(ctx, t.tx, pgx.NamedArgs{"collector": collectorID})
	if err != nil {
		return 0, 0, fmt.Errorf("move the jobs of deleted collector %q: %w", collectorID, err)
	}
	went, err := collectExpired(rows) // the same columns: where each went
	if err != nil {
		return 0, 0, fmt.Errorf("move the jobs of deleted collector %q: %w", collectorID, err)
	}
	t.publish = append(t.publish, went...)
	args := pgx.NamedArgs{"now": t.q.now(), "reason": reason, "collector": collectorID}
	queued, err := cancelCollectorSQL.exec(ctx, t.tx, args)
	if err != nil {
		return 0, 0, fmt.Errorf("cancel the queued jobs of deleted collector %q: %w", collectorID, err)
	}
	inFlight, err := cancelCollectorInFlightSQL.exec(ctx, t.tx, args)
	if err != nil {
		return 0, 0, fmt.Errorf("cancel the running jobs of deleted collector %q: %w", collectorID, err)
	}
	return int(queued.RowsAffected() + inFlight.RowsAffected()), len(went), nil
}

// Reassign is queue.Queue's Reassign inside t.
func (t *Tx) Reassign(ctx context.Context, integrationID string, to queue.Target) (int, error) {
	if integrationID == "" || !to.Valid() {
		return 0, errors.New("reassign: an integration ID and one target (a collector ID or a pool) are required")
	}
	n, err := reassign(ctx, t.tx, integrationID, to)
	if err != nil {
		return 0, fmt.Errorf("reassign integration %q to %+v: %w", integrationID, to, err)
	}
	if n > 0 {
		t.publish = append(t.publish, to)
	}
	return n, nil
}

// DeleteFinished deletes up to limit jobs that reached a final state
// before cutoff (retention) and returns their IDs, for the caller to drop
// what it keeps per job in the same transaction.
func (t *Tx) DeleteFinished(ctx context.Context, cutoff time.Time, limit int) ([]string, error) {
	ids, err := collectIDs(deleteFinishedSQL.query(ctx, t.tx, pgx.NamedArgs{"cutoff": cutoff, "limit": limit}))
	if err != nil {
		return nil, fmt.Errorf("delete finished jobs: %w", err)
	}
	return ids, nil
}

// DeleteIntegrationJobs deletes up to limit finished jobs of an integration
// (its active ones are canceled first by the caller) and returns their IDs.
func (t *Tx) DeleteIntegrationJobs(ctx context.Context, integrationID string, limit int) ([]string, error) {
	ids, err := collectIDs(deleteIntegrationJobsSQL.query(ctx, t.tx, pgx.NamedArgs{"integration": integrationID, "limit": limit}))
	if err != nil {
		return nil, fmt.Errorf("delete jobs of integration %q: %w", integrationID, err)
	}
	return ids, nil
}

func collectIDs(rows pgx.Rows, err error) ([]string, error) {
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}
