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
	var job *queue.Job
	var existed bool
	err := q.Update(ctx, func(t *Tx) error {
		var err error
		job, existed, err = t.Enqueue(ctx, req)
		return err
	})
	return job, existed, err
}

// Next implements queue.Queue. It subscribes to the collector's notifier
// before each look at the store, so an Enqueue landing between the look and
// the wait still wakes it. The wait is in real time; the times stored come
// from the queue's clock.
func (q *Queue) Next(ctx context.Context, req queue.NextRequest) (*queue.Job, error) {
	if req.CollectorID == "" {
		return nil, errors.New("next job: collector ID is required")
	}
	// Real time, not q.now: req.Wait is how long the caller's request may
	// hang, which a test clock moving stored times must not cut short.
	deadline := time.Now().Add(req.Wait)
	leased := false
	defer func() { q.leavePool(req, leased) }()
	for {
		woken, release := q.notifier.Subscribe(req.CollectorID)
		var poolWoken <-chan struct{}
		releasePool := func() {}
		if req.Pool != "" {
			poolWoken, releasePool = q.notifier.Subscribe(poolKey(req.Pool))
		}
		job, err := q.tryNext(ctx, req)
		if err != nil || job != nil {
			release()
			releasePool()
			if err != nil {
				return nil, fmt.Errorf("next job for collector %q: %w", req.CollectorID, err)
			}
			leased = true
			return job, nil
		}
		remaining := time.Until(deadline)
		if remaining <= 0 {
			release()
			releasePool()
			return nil, queue.ErrNoJob
		}
		q.park(req.CollectorID, 1)
		// Woken by a write that concerns it, or by the shared poll
		// (pollLoop) when its queue has queued jobs, or at its deadline.
		err = q.sleep(ctx, woken, poolWoken, remaining)
		q.park(req.CollectorID, -1)
		release()
		releasePool()
		if err != nil {
			return nil, err
		}
	}
}

// poolKey is the notifier key of a pool's queue (collector IDs never
// contain a NUL).
func poolKey(pool string) string { return "pool\x00" + pool }

// A pool job goes to the least loaded member it fits on: each member's
// Next records its load (the largest of its memory, CPU and job slots in
// use, as fractions of its capacity), and a member whose load is above
// another known member's leaves the pool's young jobs (enqueued less than
// PoolHandoff ago) to it. A member is known from its Next until a lease
// TTL after its last one returned empty-handed; one that just leased is
// forgotten until it asks again (its load has changed).

// load is a member's use of its capacity, in [0, ∞).
func load(u queue.Usage, c queue.Capacity) float64 {
	l := 0.0
	if c.MemoryBytes > 0 {
		l = max(l, float64(u.MemoryBytes)/float64(c.MemoryBytes))
	}
	if c.CPUs > 0 {
		l = max(l, u.CPUs/c.CPUs)
	}
	if c.MaxJobs > 0 {
		l = max(l, float64(u.Jobs)/float64(c.MaxJobs))
	}
	return l
}

// member is what the pool knows of one member.
type member struct {
	load float64
	at   time.Time // its last Next, by the queue's clock
}

// joinPool records req's member load and reports whether no other known
// member of the pool is less loaded.
func (q *Queue) joinPool(req queue.NextRequest, l float64) bool {
	now := q.now()
	q.waitMu.Lock()
	defer q.waitMu.Unlock()
	m := q.members[req.Pool]
	if m == nil {
		m = map[string]member{}
		q.members[req.Pool] = m
	}
	m[req.CollectorID] = member{load: l, at: now}
	least := true
	for id, other := range m {
		switch {
		case now.Sub(other.at) > q.cfg.LeaseTTL:
			delete(m, id) // gone quiet: no longer known
		case id != req.CollectorID && other.load < l:
			least = false
		}
	}
	return least
}

// leavePool is called as req's Next returns: a member that leased a job
// is forgotten until it asks again; one that found nothing stays known.
func (q *Queue) leavePool(req queue.NextRequest, leased bool) {
	if req.Pool == "" {
		return
	}
	now := q.now()
	q.waitMu.Lock()
	defer q.waitMu.Unlock()
	m := q.members[req.Pool]
	if m == nil {
		return
	}
	if leased {
		delete(m, req.CollectorID)
	} else if e, ok := m[req.CollectorID]; ok {
		e.at = now
		m[req.CollectorID] = e
	}
	if len(m) == 0 {
		delete(q.members, req.Pool)
	}
}

// park counts a Next of collectorID into (delta 1) or out of (-1) its wait,
// for Waiting, and calls the park hook on the way in.
func (q *Queue) park(collectorID string, delta int) {
	if delta > 0 && q.onPark != nil {
		q.onPark(collectorID)
	}
	q.waitMu.Lock()
	defer q.waitMu.Unlock()
	if q.waiting[collectorID] += delta; q.waiting[collectorID] <= 0 {
		delete(q.waiting, collectorID)
	}
}

// Waiting reports how many Next calls of collectorID are parked, waiting
// for a job. Each subscribed to the collector's wake-ups before it looked at
// the store, so an Enqueue for the collector made after Waiting reports one
// wakes it: tests use this to know a long poll is parked instead of
// sleeping.
func (q *Queue) Waiting(collectorID string) int {
	q.waitMu.Lock()
	defer q.waitMu.Unlock()
	return q.waiting[collectorID]
}

// sleep waits for a wake-up, the fallback poll, the end of ctx or Close.
// Its timer is in real time: it bounds the wait, like Next's deadline.
func (q *Queue) sleep(ctx context.Context, woken, poolWoken <-chan struct{}, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-woken:
		return nil
	case <-poolWoken: // nil when the collector has no pool: never ready
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
	w, err := q.mayHaveWork(ctx, req, q.now())
	if err != nil {
		return nil, err
	}
	leastLoaded := true
	if req.Pool != "" {
		leastLoaded = q.joinPool(req, load(w.used, req.Capacity))
	}
	if !w.old && !(w.young && leastLoaded) {
		return nil, nil
	}
	var job *queue.Job
	var expired int
	err = q.Update(ctx, func(t *Tx) error {
		now := q.now() // under the lock: the lease runs from its commit
		var err error
		if expired, err = t.expire(ctx, now); err != nil {
			return err
		}
		job, err = scanJob(t.w.QueryRowContext(ctx, leaseNextSQL, q.nextArgs(req, leastLoaded, ids.Lease(), now)...))
		if errors.Is(err, sql.ErrNoRows) {
			job, err = nil, nil
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	q.lazyExpired.Add(int64(expired))
	return job, nil
}

// nextArgs are leaseNextSQL's and mayHaveWorkSQL's parameters ?1..?15.
func (q *Queue) nextArgs(req queue.NextRequest, leastLoaded bool, leaseID string, now time.Time) []any {
	return []any{
		leaseID, now.Add(q.cfg.LeaseTTL).UnixNano(), req.CollectorID, req.Pool, req.FreeMemoryBytes,
		q.cfg.DefaultPeakMemoryBytes, q.cfg.LimitMemoryBytes, q.cfg.DefaultPeakCPUs, q.cfg.LimitCPUs,
		req.Capacity.MemoryBytes, req.Capacity.CPUs, req.Capacity.MaxJobs,
		now.Add(-q.cfg.PoolHandoff).UnixNano(), leastLoaded, now.UnixNano(),
	}
}

// work is what mayHaveWork read: whether a job is eligible leaving the
// pool's young jobs aside (or a lease expired), whether one is counting
// them, and the collector's predicted use.
type work struct {
	old, young bool
	used       queue.Usage
}

func (q *Queue) mayHaveWork(ctx context.Context, req queue.NextRequest, now time.Time) (work, error) {
	var w work
	if q.isClosed() {
		return w, queue.ErrClosed
	}
	err := q.queryRow(ctx, mayHaveWorkSQL, q.nextArgs(req, false, "", now)...).
		Scan(&w.old, &w.young, &w.used.Jobs, &w.used.MemoryBytes, &w.used.CPUs)
	return w, err
}

// Usage implements queue.Queue.
func (q *Queue) Usage(ctx context.Context, collectorID string) (queue.Usage, error) {
	var u queue.Usage
	err := q.queryRow(ctx, usageSQL, q.nextArgs(queue.NextRequest{CollectorID: collectorID}, false, "", q.now())...).
		Scan(&u.Jobs, &u.MemoryBytes, &u.CPUs)
	if err != nil {
		return u, fmt.Errorf("usage of collector %q: %w", collectorID, err)
	}
	return u, nil
}

// Need implements queue.Queue.
func (q *Queue) Need(ctx context.Context, integrationID string) (queue.Need, error) {
	var n queue.Need
	err := q.queryRow(ctx, needSQL, integrationID, q.cfg.DefaultPeakMemoryBytes, q.cfg.LimitMemoryBytes,
		q.cfg.DefaultPeakCPUs, q.cfg.LimitCPUs).Scan(&n.MemoryBytes, &n.CPUs, &n.Known)
	if err != nil {
		return n, fmt.Errorf("need of integration %q: %w", integrationID, err)
	}
	return n, nil
}

// ExpireLeases implements queue.Queue.
func (q *Queue) ExpireLeases(ctx context.Context) (int, error) {
	var n int
	err := q.Update(ctx, func(t *Tx) error {
		var err error
		n, err = t.expire(ctx, q.now())
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("expire leases: %w", err)
	}
	// Next's lazy expiries since the last call count too, once.
	return n + int(q.lazyExpired.Swap(0)), nil
}

// Renew implements queue.Queue.
func (q *Queue) Renew(ctx context.Context, jobID, leaseID string) (*queue.Job, error) {
	return q.updateJob(ctx, func(t *Tx) (*queue.Job, error) { return t.Renew(ctx, jobID, leaseID) })
}

// MarkRunning implements queue.Queue. It also renews the lease.
func (q *Queue) MarkRunning(ctx context.Context, jobID, leaseID string) (*queue.Job, error) {
	return q.updateJob(ctx, func(t *Tx) (*queue.Job, error) { return t.MarkRunning(ctx, jobID, leaseID) })
}

// Finish implements queue.Queue.
func (q *Queue) Finish(ctx context.Context, jobID, leaseID string, res queue.Result) (*queue.Job, error) {
	return q.updateJob(ctx, func(t *Tx) (*queue.Job, error) { return t.Finish(ctx, jobID, leaseID, res) })
}

// Cancel implements queue.Queue.
func (q *Queue) Cancel(ctx context.Context, jobID string) (*queue.Job, error) {
	return q.updateJob(ctx, func(t *Tx) (*queue.Job, error) { return t.Cancel(ctx, jobID, "") })
}

// Reassign implements queue.Queue.
func (q *Queue) Reassign(ctx context.Context, integrationID string, to queue.Target) (int, error) {
	var n int
	err := q.Update(ctx, func(t *Tx) error {
		var err error
		n, err = t.Reassign(ctx, integrationID, to)
		return err
	})
	return n, err
}

// Requeue implements queue.Queue.
func (q *Queue) Requeue(ctx context.Context, jobID, leaseID string, to queue.Target) (*queue.Job, error) {
	return q.updateJob(ctx, func(t *Tx) (*queue.Job, error) { return t.Requeue(ctx, jobID, leaseID, to) })
}

func (q *Queue) updateJob(ctx context.Context, fn func(t *Tx) (*queue.Job, error)) (*queue.Job, error) {
	var job *queue.Job
	err := q.Update(ctx, func(t *Tx) error {
		var err error
		job, err = fn(t)
		return err
	})
	return job, err
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
	query, args := listSQL(f)
	jobs, err := q.listJobs(ctx, query, args)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	return jobs, nil
}

// listSQL is List's statement: newest first, on an index for each
// filter (all, a state, an integration, a collector).
func listSQL(f queue.Filter) (string, []any) {
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
	if f.Before != "" {
		where = append(where, "(created_at, seq) < (SELECT created_at, seq FROM queue_jobs WHERE id = ?)")
		args = append(args, f.Before)
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
	return query, args
}

func (q *Queue) listJobs(ctx context.Context, query string, args []any) ([]*queue.Job, error) {
	rows, err := q.reader().QueryContext(ctx, query, args...)
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

// Depth implements queue.Queue. It counts the active states only, each
// through its partial index, on the read pool: finished jobs grow without
// bound, and a scrape must never hold the writer (the finished counts are
// counters of the platform instead).
func (q *Queue) Depth(ctx context.Context) (map[queue.State]int, error) {
	if q.isClosed() {
		return nil, queue.ErrClosed
	}
	var queued, leased, running int
	err := q.reader().QueryRowContext(ctx, depthSQL).Scan(&queued, &leased, &running)
	if err != nil {
		return nil, fmt.Errorf("queue depth: %w", err)
	}
	depth := make(map[queue.State]int, 3)
	for s, n := range map[queue.State]int{queue.StateQueued: queued, queue.StateLeased: leased, queue.StateRunning: running} {
		if n > 0 {
			depth[s] = n
		}
	}
	return depth, nil
}

func scanJob(s interface{ Scan(...any) error }) (*queue.Job, error) {
	var j queue.Job
	var state, mode string
	var leaseExp, started, finished sql.NullInt64
	var created int64
	err := s.Scan(&j.ID, &j.IntegrationID, &j.CollectorID, &state, &j.Attempt, &j.MaxAttempts,
		&j.LeaseID, &leaseExp, &created, &started, &finished,
		&j.ExitCode, &j.Error, &j.PeakMemoryBytes, &j.PeakCPUPercent, &j.RequestedBy, &j.Pool, &mode, &j.Outcome)
	if err != nil {
		return nil, err
	}
	j.State, j.Mode = queue.State(state), queue.Mode(mode)
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
