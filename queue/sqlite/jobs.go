package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/collectorhq/collector/queue"
	"github.com/collectorhq/collector/queue/internal/ids"
)

// querier is what *wtx and readQuerier share for reading a job.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Enqueue implements queue.Queue. The INSERT does nothing when the partial
// unique index on active jobs already holds the integration, so two
// concurrent Enqueues (even from two processes) can never both insert.
func (q *Queue) Enqueue(ctx context.Context, req queue.EnqueueRequest) (*queue.Job, bool, error) {
	if req.IntegrationID == "" || req.CollectorID == "" {
		return nil, false, errors.New("enqueue: integration ID and collector ID are required")
	}
	var job *queue.Job
	var existed bool
	err := q.write(ctx, func(c *wtx) error {
		var err error
		job, err = scanJob(c.QueryRowContext(ctx, insertJobSQL,
			ids.Job(), req.IntegrationID, req.CollectorID, q.cfg.MaxAttempts, time.Now().UnixNano(), req.RequestedBy))
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		existed = true
		job, err = scanJob(c.QueryRowContext(ctx, activeJobSQL, req.IntegrationID))
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("enqueue integration %q: %w", req.IntegrationID, err)
	}
	if !existed {
		q.notifier.Notify(job.CollectorID)
	}
	return job, existed, nil
}

// Next implements queue.Queue. It subscribes to the collector's notifier
// before each look at the store, so an Enqueue landing between the look and
// the wait still wakes it.
func (q *Queue) Next(ctx context.Context, req queue.NextRequest) (*queue.Job, error) {
	if req.CollectorID == "" {
		return nil, errors.New("next job: collector ID is required")
	}
	deadline := time.Now().Add(req.Wait)
	for {
		woken, release := q.notifier.Subscribe(req.CollectorID)
		job, err := q.tryNext(ctx, req)
		if err != nil || job != nil {
			release()
			if err != nil {
				return nil, fmt.Errorf("next job for collector %q: %w", req.CollectorID, err)
			}
			return job, nil
		}
		remaining := time.Until(deadline)
		if remaining <= 0 {
			release()
			return nil, queue.ErrNoJob
		}
		err = q.sleep(ctx, woken, min(remaining, q.cfg.PollInterval))
		release()
		if err != nil {
			return nil, err
		}
	}
}

// sleep waits for a wake-up, the fallback poll, the end of ctx or Close.
func (q *Queue) sleep(ctx context.Context, woken <-chan struct{}, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-woken:
		return nil
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-q.closed:
		return queue.ErrClosed
	}
}

// tryNext leases a job if one is eligible now, or returns (nil, nil).
func (q *Queue) tryNext(ctx context.Context, req queue.NextRequest) (*queue.Job, error) {
	if ok, err := q.mayHaveWork(ctx, req, time.Now()); err != nil || !ok {
		return nil, err
	}
	var job *queue.Job
	var expired []string
	err := q.write(ctx, func(c *wtx) error {
		now := time.Now() // under the lock: the lease runs from its commit
		var err error
		if expired, err = expireLeases(ctx, c, now); err != nil {
			return err
		}
		job, err = scanJob(c.QueryRowContext(ctx, leaseNextSQL,
			ids.Lease(), now.Add(q.cfg.LeaseTTL).UnixNano(), req.CollectorID,
			req.FreeMemoryBytes, q.cfg.DefaultPeakMemoryBytes))
		if errors.Is(err, sql.ErrNoRows) {
			job, err = nil, nil
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	q.lazyExpired.Add(int64(len(expired)))
	q.notifyAll(expired)
	return job, nil
}

func (q *Queue) mayHaveWork(ctx context.Context, req queue.NextRequest, now time.Time) (bool, error) {
	if q.isClosed() {
		return false, queue.ErrClosed
	}
	var ok bool
	err := q.queryRow(ctx, mayHaveWorkSQL,
		req.CollectorID, now.UnixNano(), req.FreeMemoryBytes, q.cfg.DefaultPeakMemoryBytes).Scan(&ok)
	return ok, err
}

// ExpireLeases implements queue.Queue.
func (q *Queue) ExpireLeases(ctx context.Context) (int, error) {
	var expired []string
	err := q.write(ctx, func(c *wtx) error {
		var err error
		expired, err = expireLeases(ctx, c, time.Now())
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("expire leases: %w", err)
	}
	q.notifyAll(expired)
	return len(expired) + int(q.lazyExpired.Swap(0)), nil
}

// expireLeases requeues (attempt+1) or kills the jobs whose lease has passed,
// and returns the collector of each, to wake its waiters.
func expireLeases(ctx context.Context, c *wtx, now time.Time) ([]string, error) {
	rows, err := c.QueryContext(ctx, expireSQL, now.UnixNano())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var collectors []string
	for rows.Next() {
		var collector, state string
		if err := rows.Scan(&collector, &state); err != nil {
			return nil, err
		}
		collectors = append(collectors, collector)
	}
	return collectors, rows.Err()
}

func (q *Queue) notifyAll(collectors []string) {
	for _, c := range collectors {
		q.notifier.Notify(c)
	}
}

// Renew implements queue.Queue.
func (q *Queue) Renew(ctx context.Context, jobID, leaseID string) (*queue.Job, error) {
	job, err := q.withLease(ctx, jobID, leaseID, func(c *wtx, j *queue.Job, now time.Time) (*queue.Job, error) {
		if j.State != queue.StateLeased && j.State != queue.StateRunning {
			return nil, fmt.Errorf("job is %s: %w", j.State, queue.ErrInvalidState)
		}
		return scanJob(c.QueryRowContext(ctx, renewSQL, now.Add(q.cfg.LeaseTTL).UnixNano(), j.ID))
	})
	if err != nil {
		return nil, fmt.Errorf("renew lease of job %q: %w", jobID, err)
	}
	return job, nil
}

// MarkRunning implements queue.Queue. It also renews the lease.
func (q *Queue) MarkRunning(ctx context.Context, jobID, leaseID string) (*queue.Job, error) {
	job, err := q.withLease(ctx, jobID, leaseID, func(c *wtx, j *queue.Job, now time.Time) (*queue.Job, error) {
		switch j.State {
		case queue.StateRunning: // a retry: renew only, keep StartedAt
			return scanJob(c.QueryRowContext(ctx, renewSQL, now.Add(q.cfg.LeaseTTL).UnixNano(), j.ID))
		case queue.StateLeased:
			return scanJob(c.QueryRowContext(ctx, markRunningSQL, now.UnixNano(), now.Add(q.cfg.LeaseTTL).UnixNano(), j.ID))
		default:
			return nil, fmt.Errorf("job is %s: %w", j.State, queue.ErrInvalidState)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("mark job %q running: %w", jobID, err)
	}
	return job, nil
}

// Finish implements queue.Queue.
func (q *Queue) Finish(ctx context.Context, jobID, leaseID string, res queue.Result) (*queue.Job, error) {
	job, err := q.withLease(ctx, jobID, leaseID, func(c *wtx, j *queue.Job, now time.Time) (*queue.Job, error) {
		if j.State != queue.StateLeased && j.State != queue.StateRunning {
			return nil, fmt.Errorf("job is %s: %w", j.State, queue.ErrInvalidState)
		}
		state := queue.StateFailed
		if res.Succeeded {
			state = queue.StateSucceeded
		}
		done, err := scanJob(c.QueryRowContext(ctx, finishSQL,
			string(state), now.UnixNano(), res.ExitCode, res.Error, res.PeakMemoryBytes, res.PeakCPUPercent, j.ID))
		if err != nil {
			return nil, err
		}
		if res.Succeeded && res.PeakMemoryBytes > 0 {
			err = recordPeak(ctx, c, j.IntegrationID, res.PeakMemoryBytes, q.cfg.PeakSamples)
		}
		return done, err
	})
	if err != nil {
		return nil, fmt.Errorf("finish job %q: %w", jobID, err)
	}
	return job, nil
}

// withLease runs fn in a write transaction once the job exists and leaseID is
// its current, unexpired lease. An expired lease is refused even before
// ExpireLeases has requeued the job: the job may be handed out again at any
// moment, so the old holder must stop.
func (q *Queue) withLease(ctx context.Context, jobID, leaseID string, fn func(c *wtx, j *queue.Job, now time.Time) (*queue.Job, error)) (*queue.Job, error) {
	var out *queue.Job
	err := q.write(ctx, func(c *wtx) error {
		j, err := getJob(ctx, c, jobID)
		if err != nil {
			return err
		}
		now := time.Now()
		if leaseID != j.LeaseID {
			return queue.ErrLeaseLost
		}
		if (j.State == queue.StateLeased || j.State == queue.StateRunning) && !j.LeaseExpiresAt.After(now) {
			return fmt.Errorf("lease expired at %s: %w", j.LeaseExpiresAt.Format(time.RFC3339Nano), queue.ErrLeaseLost)
		}
		out, err = fn(c, j, now)
		return err
	})
	return out, err
}

// Cancel implements queue.Queue.
func (q *Queue) Cancel(ctx context.Context, jobID string) (*queue.Job, error) {
	var job *queue.Job
	err := q.write(ctx, func(c *wtx) error {
		j, err := getJob(ctx, c, jobID)
		if err != nil {
			return err
		}
		if !j.State.Active() {
			return fmt.Errorf("job is %s: %w", j.State, queue.ErrInvalidState)
		}
		job, err = scanJob(c.QueryRowContext(ctx, cancelSQL, time.Now().UnixNano(), j.ID))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("cancel job %q: %w", jobID, err)
	}
	return job, nil
}

// Reassign implements queue.Queue.
func (q *Queue) Reassign(ctx context.Context, integrationID, newCollectorID string) (int, error) {
	if integrationID == "" || newCollectorID == "" {
		return 0, errors.New("reassign: integration ID and collector ID are required")
	}
	var n int64
	err := q.write(ctx, func(c *wtx) error {
		res, err := c.ExecContext(ctx, reassignSQL,
			newCollectorID, integrationID, newCollectorID)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("reassign integration %q to collector %q: %w", integrationID, newCollectorID, err)
	}
	if n > 0 {
		q.notifier.Notify(newCollectorID)
	}
	return int(n), nil
}

// Get implements queue.Queue.
func (q *Queue) Get(ctx context.Context, jobID string) (*queue.Job, error) {
	if q.isClosed() {
		return nil, queue.ErrClosed
	}
	j, err := getJob(ctx, readQuerier{q}, jobID)
	if err != nil {
		return nil, fmt.Errorf("get job %q: %w", jobID, err)
	}
	return j, nil
}

// readQuerier reads through the queue's statement cache.
type readQuerier struct{ q *Queue }

func (r readQuerier) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return r.q.queryRow(ctx, query, args...)
}

func getJob(ctx context.Context, db querier, jobID string) (*queue.Job, error) {
	j, err := scanJob(db.QueryRowContext(ctx, getJobSQL, jobID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, queue.ErrNotFound
	}
	return j, err
}

// List implements queue.Queue.
func (q *Queue) List(ctx context.Context, f queue.Filter) ([]*queue.Job, error) {
	if q.isClosed() {
		return nil, queue.ErrClosed
	}
	var where []string
	var args []any
	if f.IntegrationID != "" {
		where, args = append(where, "integration_id = ?"), append(args, f.IntegrationID)
	}
	if f.CollectorID != "" {
		where, args = append(where, "collector_id = ?"), append(args, f.CollectorID)
	}
	if len(f.States) > 0 {
		marks := strings.TrimSuffix(strings.Repeat("?,", len(f.States)), ",")
		where = append(where, "state IN ("+marks+")")
		for _, s := range f.States {
			args = append(args, string(s))
		}
	}
	query := `SELECT ` + jobColumns + ` FROM queue_jobs`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	query += ` ORDER BY created_at DESC, seq DESC`
	if f.Limit > 0 {
		query += ` LIMIT ?`
		args = append(args, f.Limit)
	}
	jobs, err := q.listJobs(ctx, query, args)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	return jobs, nil
}

func (q *Queue) listJobs(ctx context.Context, query string, args []any) ([]*queue.Job, error) {
	rows, err := q.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var jobs []*queue.Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, err
		}
		jobs = append(jobs, j)
	}
	return jobs, rows.Err()
}

// Depth implements queue.Queue.
func (q *Queue) Depth(ctx context.Context) (map[queue.State]int, error) {
	if q.isClosed() {
		return nil, queue.ErrClosed
	}
	var rows *sql.Rows
	var err error
	if st := q.stmts.get(depthSQL); st != nil {
		rows, err = st.QueryContext(ctx)
	} else {
		rows, err = q.db.QueryContext(ctx, depthSQL)
	}
	if err != nil {
		return nil, fmt.Errorf("queue depth: %w", err)
	}
	defer rows.Close()
	depth := make(map[queue.State]int)
	for rows.Next() {
		var s string
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			return nil, fmt.Errorf("queue depth: %w", err)
		}
		depth[queue.State(s)] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("queue depth: %w", err)
	}
	return depth, nil
}

func scanJob(s interface{ Scan(...any) error }) (*queue.Job, error) {
	var j queue.Job
	var state string
	var leaseExp, started, finished sql.NullInt64
	var created int64
	err := s.Scan(&j.ID, &j.IntegrationID, &j.CollectorID, &state, &j.Attempt, &j.MaxAttempts,
		&j.LeaseID, &leaseExp, &created, &started, &finished,
		&j.ExitCode, &j.Error, &j.PeakMemoryBytes, &j.PeakCPUPercent, &j.RequestedBy)
	if err != nil {
		return nil, err
	}
	j.State = queue.State(state)
	j.LeaseExpiresAt = fromNanos(leaseExp)
	j.CreatedAt = time.Unix(0, created).UTC()
	j.StartedAt = fromNanos(started)
	j.FinishedAt = fromNanos(finished)
	return &j, nil
}

func fromNanos(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.Unix(0, n.Int64).UTC()
}
