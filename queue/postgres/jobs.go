package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/collectorhq/collector/queue"
	"github.com/collectorhq/collector/queue/internal/ids"
	"github.com/collectorhq/collector/queue/internal/notify"
)

// Enqueue implements queue.Queue. The INSERT does nothing when the partial
// unique index on active jobs already holds the integration, so two
// concurrent Enqueues (any processes) can never both insert; the one that
// did not insert returns the active job. A new job is announced to the
// other processes by the same statement (pg_notify, sent at its commit)
// or, when this process sent a NOTIFY less than notifyEvery ago, by the
// debouncer at the window's end.
func (q *Queue) Enqueue(ctx context.Context, req queue.EnqueueRequest) (*queue.Job, bool, error) {
	to := queue.Target{CollectorID: req.CollectorID, Pool: req.Pool}
	if err := queue.CheckEnqueue(req); err != nil {
		return nil, false, err
	}
	if q.isClosed() {
		return nil, false, queue.ErrClosed
	}
	// The active job may finish between the INSERT that saw it and the
	// read of it: then insert again.
	for range 10 {
		insert, args, notified := q.insertJob(req)
		job, err := scanJob(insert.queryRow(ctx, q.pool, args), nil)
		if err == nil {
			q.notifier.Notify(wakeKey(to))
			if !notified {
				q.debounce.pend(payloadKey(to))
			}
			return job, false, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return nil, false, fmt.Errorf("enqueue integration %q: %w", req.IntegrationID, err)
		}
		job, err = scanJob(activeJobSQL.queryRow(ctx, q.pool, pgx.NamedArgs{"integration": req.IntegrationID, "mode": string(req.Mode)}))
		if err == nil {
			return job, true, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return nil, false, fmt.Errorf("enqueue integration %q: %w", req.IntegrationID, err)
		}
	}
	return nil, false, fmt.Errorf("enqueue integration %q: its active job kept changing", req.IntegrationID)
}

// insertJob returns the INSERT of req's job and its arguments, and
// whether it notifies the other processes itself; when it does not, the
// caller pends the key once the INSERT committed.
func (q *Queue) insertJob(req queue.EnqueueRequest) (stmt, pgx.NamedArgs, bool) {
	key := payloadKey(queue.Target{CollectorID: req.CollectorID, Pool: req.Pool})
	args := pgx.NamedArgs{
		"id": ids.Job(), "integration": req.IntegrationID, "collector": req.CollectorID, "pool": req.Pool,
		"max_attempts": req.Mode.Attempts(q.cfg.MaxAttempts), "now": q.now(), "requested_by": req.RequestedBy,
		"mode": string(req.Mode), "priority": req.Mode.Priority(),
	}
	s, notifies := insertJobSQL, q.debounce.claim(time.Now())
	if notifies {
		s = insertJobNotifySQL
		args["channel"], args["payload"] = Channel, q.sender+" "+key
	}
	return s, args, notifies
}

// wakeKey is the notifier key of a target's waiters.
func wakeKey(to queue.Target) string {
	if to.Pool != "" && to.CollectorID == "" {
		return poolKey(to.Pool)
	}
	return to.CollectorID
}

// publish wakes the waiters of targets, in this process at once and in
// the others through Channel. It runs after the change committed, outside
// any transaction; a failure to notify only costs the others latency.
func (q *Queue) publish(ctx context.Context, targets []queue.Target) {
	if len(targets) == 0 {
		return
	}
	payloads := make([]string, 0, len(targets))
	seen := map[string]bool{}
	for _, to := range targets {
		k := payloadKey(to)
		if seen[k] {
			continue
		}
		seen[k] = true
		q.notifier.Notify(wakeKey(to))
		payloads = append(payloads, q.sender+" "+k)
	}
	_, _ = notifySQL.exec(ctx, q.pool, pgx.NamedArgs{"channel": Channel, "payloads": payloads})
}

// Next implements queue.Queue. It subscribes to the collector's (and its
// pool's) wake-ups before each look at the store, so an Enqueue landing
// between the look and the wait still wakes it. The wait is in real time;
// the times stored come from the queue's clock.
func (q *Queue) Next(ctx context.Context, req queue.NextRequest) (*queue.Job, error) {
	if req.CollectorID == "" {
		return nil, errors.New("next job: collector ID is required")
	}
	deadline := time.Now().Add(req.Wait)
	leased := false
	defer func() { q.leavePool(req, leased) }()
	// The first look, and one woken for the collector's own queue, go
	// straight to the lease (see tryNext).
	check := false
	for {
		woken, release := q.notifier.Subscribe(req.CollectorID)
		var poolWoken <-chan struct{}
		releasePool := func() {}
		if req.Pool != "" {
			poolWoken, releasePool = q.notifier.Subscribe(poolKey(req.Pool))
		}
		job, err := q.tryNext(ctx, req, check)
		if err != nil || job != nil {
			release()
			releasePool()
			if err != nil {
				if errors.Is(err, queue.ErrClosed) || q.isClosed() {
					return nil, queue.ErrClosed // Close may have closed the pool under it
				}
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
		own, err := q.sleep(ctx, woken, poolWoken, min(remaining, q.cfg.PollInterval))
		q.park(req.CollectorID, -1)
		release()
		releasePool()
		if err != nil {
			return nil, err
		}
		check = !own
	}
}

// poolKey is the notifier key of a pool's queue (collector IDs never
// contain a NUL).
func poolKey(pool string) string { return "pool\x00" + pool }

// A pool job goes to the least loaded member it fits on, as in
// queue/sqlite: each member's Next records its load (the largest of its
// memory, CPU and job slots in use, as fractions of its capacity), and a
// member whose load is above another known member's leaves the pool's
// young jobs (enqueued less than PoolHandoff ago) to it. A member is known
// from its Next until a lease TTL after its last one returned
// empty-handed; one that just leased is forgotten until it asks again.
// The registry is per process: members long-polling another process are
// not compared, and a young job waits at most PoolHandoff for them.

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

// park counts a Next of collectorID into (delta 1) or out of (-1) its
// wait, for Waiting, and calls the park hook on the way in.
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
// for a job in this process.
func (q *Queue) Waiting(collectorID string) int {
	q.waitMu.Lock()
	defer q.waitMu.Unlock()
	return q.waiting[collectorID]
}

// sleep waits for a wake-up, the fallback poll, the end of ctx or Close,
// and reports whether the collector's own wake-up (woken) ended it.
func (q *Queue) sleep(ctx context.Context, woken, poolWoken <-chan struct{}, d time.Duration) (bool, error) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-woken:
		return true, nil
	case <-poolWoken: // nil when the collector has no pool: never ready
		return false, nil
	case <-t.C:
		return false, nil
	case <-ctx.Done():
		return false, ctx.Err()
	case <-q.closed:
		return false, queue.ErrClosed
	}
}

// nextArgs are the arguments of mayHaveWorkSQL and leaseNextSQL.
func (q *Queue) nextArgs(req queue.NextRequest, now time.Time) pgx.NamedArgs {
	return pgx.NamedArgs{
		"collector": req.CollectorID, "pool": req.Pool, "free": req.FreeMemoryBytes,
		"def_mem": q.cfg.DefaultPeakMemoryBytes, "lim_mem": q.cfg.LimitMemoryBytes,
		"def_cpu": q.cfg.DefaultPeakCPUs, "lim_cpu": q.cfg.LimitCPUs,
		"cap_mem": req.Capacity.MemoryBytes, "cap_cpu": req.Capacity.CPUs, "max_jobs": req.Capacity.MaxJobs,
		"handoff": now.Add(-q.cfg.PoolHandoff), "now": now,
	}
}

// work is what mayHaveWork read.
type work struct {
	old, young, expired bool
	used                queue.Usage
}

// expireEvery is how often, at most, a process's leases sweep expired
// leases without knowing of one: a sweep that finds nothing still costs
// PostgreSQL a statement per lease, and the scheduler sweeps anyway
// (ExpireLeases). A job whose lease passed waits at most this long more.
const expireEvery = time.Second

// sweepDue reports whether a lease at now (the queue's clock) should
// sweep expired leases, and if so counts the sweep as done: the first
// sweep in expireEvery, or after the clock went back.
func (q *Queue) sweepDue(now time.Time) bool {
	last, n := q.lastSweep.Load(), now.UnixNano()
	if n >= last && n-last < int64(expireEvery) {
		return false
	}
	return q.lastSweep.CompareAndSwap(last, n)
}

// tryNext leases a job if one is eligible now, or returns (nil, nil).
// The lease is one round trip (a batch, one implicit transaction): the
// collector's advisory lock, the expiry of passed leases, and the lease.
// When check is set, and always for a member of a pool, it reads first,
// without locks, what the collector uses and whether a job may be there:
// a member's load decides whether it may take the pool's young jobs
// (least-loaded handoff), and a Next woken by its poll or for its pool
// that finds nothing takes no lock. A Next's first look, and one woken
// for the collector's own queue, go straight to the lease: a runner asks
// when it has room, and a wake-up for its queue means a job was added to
// it; a check would almost always say yes, for a round trip more.
func (q *Queue) tryNext(ctx context.Context, req queue.NextRequest, check bool) (*queue.Job, error) {
	if q.isClosed() {
		return nil, queue.ErrClosed
	}
	// A long poll of a collector's own queue, known empty since a look
	// that this process's notifications would have ended, waits for one.
	quietable := req.Pool == "" && q.listening.Load()
	if quietable && !check && req.Wait > 0 && q.notifier.Quiet(req.CollectorID, time.Now()) {
		return nil, nil
	}
	leastLoaded, expire := true, false
	if check || req.Pool != "" {
		var w work
		err := mayHaveWorkSQL.queryRow(ctx, q.pool, q.nextArgs(req, q.now())).
			Scan(&w.old, &w.young, &w.expired, &w.used.Jobs, &w.used.MemoryBytes, &w.used.CPUs)
		if err != nil {
			return nil, err
		}
		if req.Pool != "" {
			leastLoaded = q.joinPool(req, load(w.used, req.Capacity))
		}
		if !w.old && !w.expired && !(w.young && leastLoaded) {
			return nil, nil
		}
		expire = w.expired
	}
	now := q.now()
	if expire {
		q.lastSweep.Store(now.UnixNano())
	} else {
		expire = q.sweepDue(now)
	}
	args := q.nextArgs(req, now)
	args["young"] = leastLoaded
	args["lease_id"] = ids.Lease()
	args["expires"] = now.Add(q.cfg.LeaseTTL)
	b := &pgx.Batch{}
	// Without a capacity, what the collector runs does not matter: no lock.
	lock := req.Capacity != (queue.Capacity{})
	if lock {
		collectorLockSQL.queue(b, pgx.NamedArgs{"collector": req.CollectorID})
	}
	if expire {
		expireSQL.queue(b, pgx.NamedArgs{"now": now})
	}
	if req.Pool == "" {
		leaseOwnSQL.queue(b, args)
	} else {
		leaseNextSQL.queue(b, args)
	}
	var look *notify.Look
	if quietable {
		look = q.notifier.Look(req.CollectorID)
		defer func() { look.End(false, time.Time{}) }() // unless ended below
	}
	br := q.pool.SendBatch(ctx, b)
	defer br.Close()
	if lock {
		if _, err := br.Exec(); err != nil {
			return nil, fmt.Errorf("lock the collector: %w", err)
		}
	}
	var expired []queue.Target
	if expire {
		var err error
		if expired, err = scanExpired(br); err != nil {
			return nil, fmt.Errorf("expire leases: %w", err)
		}
	}
	job, more, err := scanLease(br)
	if err != nil {
		return nil, err
	}
	if err := br.Close(); err != nil { // the commit
		return nil, err
	}
	if look != nil {
		look.End(!more, time.Now().Add(q.cfg.PollInterval))
	}
	q.lazyExpired.Add(int64(len(expired)))
	q.publish(ctx, expired)
	return job, nil
}

// scanLease reads leaseNextSQL's result: the job leased, if any, and
// whether the collector's own queue holds more.
func scanLease(br pgx.BatchResults) (*queue.Job, bool, error) {
	rows, err := br.Query()
	if err != nil {
		return nil, false, err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, false, err
		}
		return nil, false, errors.New("lease: no result row")
	}
	var more bool
	if rows.RawValues()[0] == nil { // no job leased: NULLs
		skip := make([]any, len(rows.FieldDescriptions())-1)
		if err := rows.Scan(append(skip, &more)...); err != nil {
			return nil, false, err
		}
		return nil, more, rows.Err()
	}
	job, err := scanJob(rows, &more)
	if err != nil {
		return nil, false, err
	}
	rows.Close()
	return job, more, rows.Err()
}

// scanExpired reads expireSQL's result: the targets to wake.
func scanExpired(br pgx.BatchResults) ([]queue.Target, error) {
	rows, err := br.Query()
	if err != nil {
		return nil, err
	}
	return collectExpired(rows)
}

func collectExpired(rows pgx.Rows) ([]queue.Target, error) {
	defer rows.Close()
	var out []queue.Target
	for rows.Next() {
		var to queue.Target
		if err := rows.Scan(&to.CollectorID, &to.Pool); err != nil {
			return nil, err
		}
		out = append(out, to)
	}
	return out, rows.Err()
}

// Usage implements queue.Queue.
func (q *Queue) Usage(ctx context.Context, collectorID string) (queue.Usage, error) {
	var u queue.Usage
	if q.isClosed() {
		return u, queue.ErrClosed
	}
	err := usageSQL.queryRow(ctx, q.pool, pgx.NamedArgs{
		"collector": collectorID, "def_mem": q.cfg.DefaultPeakMemoryBytes, "lim_mem": q.cfg.LimitMemoryBytes,
		"def_cpu": q.cfg.DefaultPeakCPUs, "lim_cpu": q.cfg.LimitCPUs,
	}).Scan(&u.Jobs, &u.MemoryBytes, &u.CPUs)
	if err != nil {
		return u, fmt.Errorf("usage of collector %q: %w", collectorID, err)
	}
	return u, nil
}

// Need implements queue.Queue.
func (q *Queue) Need(ctx context.Context, integrationID string) (queue.Need, error) {
	var n queue.Need
	if q.isClosed() {
		return n, queue.ErrClosed
	}
	err := needSQL.queryRow(ctx, q.pool, pgx.NamedArgs{
		"integration": integrationID, "def_mem": q.cfg.DefaultPeakMemoryBytes, "lim_mem": q.cfg.LimitMemoryBytes,
		"def_cpu": q.cfg.DefaultPeakCPUs, "lim_cpu": q.cfg.LimitCPUs,
	}).Scan(&n.MemoryBytes, &n.CPUs, &n.Known)
	if err != nil {
		return n, fmt.Errorf("need of integration %q: %w", integrationID, err)
	}
	return n, nil
}

// ExpireLeases implements queue.Queue. Several processes may sweep at
// once: each expiry is applied, and counted, by one of them.
func (q *Queue) ExpireLeases(ctx context.Context) (int, error) {
	if q.isClosed() {
		return 0, queue.ErrClosed
	}
	now := q.now()
	q.lastSweep.Store(now.UnixNano())
	rows, err := expireSQL.query(ctx, q.pool, pgx.NamedArgs{"now": now})
	if err != nil {
		return 0, fmt.Errorf("expire leases: %w", err)
	}
	expired, err := collectExpired(rows)
	if err != nil {
		return 0, fmt.Errorf("expire leases: %w", err)
	}
	q.publish(ctx, expired)
	// Next's lazy expiries since the last call count too, once.
	return len(expired) + int(q.lazyExpired.Swap(0)), nil
}

// leaseCall runs a lease-carrying statement (its WHERE includes
// leaseHeld) and, when it changes no row, reads the job to say why, in
// queue.Queue's order: not found, lease lost, invalid state, lease passed.
// requireLeased refuses a running job (Requeue).
func (q *Queue) leaseCall(ctx context.Context, what string, s stmt, args pgx.NamedArgs, jobID, leaseID string, now time.Time, requireLeased bool) (*queue.Job, error) {
	if q.isClosed() {
		return nil, queue.ErrClosed
	}
	return leaseCallOn(ctx, q.pool, what, s, args, jobID, leaseID, now, requireLeased)
}

// leaseCallOn is leaseCall on db (the pool, or a transaction).
func leaseCallOn(ctx context.Context, db querier, what string, s stmt, args pgx.NamedArgs, jobID, leaseID string, now time.Time, requireLeased bool) (*queue.Job, error) {
	args["id"], args["lease_id"], args["now"] = jobID, leaseID, now
	job, err := scanJob(s.queryRow(ctx, db, args))
	if err == nil {
		return job, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%s job %q: %w", what, jobID, err)
	}
	j, err := getJobOn(ctx, db, jobID)
	if err != nil {
		return nil, fmt.Errorf("%s job %q: %w", what, jobID, err)
	}
	switch {
	case leaseID != j.LeaseID:
		err = queue.ErrLeaseLost
	case j.State != queue.StateLeased && j.State != queue.StateRunning:
		err = fmt.Errorf("job is %s: %w", j.State, queue.ErrInvalidState)
	case !j.LeaseExpiresAt.After(now):
		err = fmt.Errorf("lease expired at %s: %w", j.LeaseExpiresAt.Format(time.RFC3339Nano), queue.ErrLeaseLost)
	case requireLeased && j.State != queue.StateLeased:
		err = fmt.Errorf("job is %s: %w", j.State, queue.ErrInvalidState)
	default:
		// It changed between the two statements: report what it is now.
		err = fmt.Errorf("job is %s under lease %q: %w", j.State, j.LeaseID, queue.ErrLeaseLost)
	}
	return nil, fmt.Errorf("%s job %q: %w", what, jobID, err)
}

// Renew implements queue.Queue.
func (q *Queue) Renew(ctx context.Context, jobID, leaseID string) (*queue.Job, error) {
	now := q.now()
	return q.leaseCall(ctx, "renew lease of", renewSQL, pgx.NamedArgs{"expires": now.Add(q.cfg.LeaseTTL)}, jobID, leaseID, now, false)
}

// MarkRunning implements queue.Queue. It also renews the lease.
func (q *Queue) MarkRunning(ctx context.Context, jobID, leaseID string) (*queue.Job, error) {
	now := q.now()
	return q.leaseCall(ctx, "mark running", markRunningSQL, pgx.NamedArgs{"expires": now.Add(q.cfg.LeaseTTL)}, jobID, leaseID, now, false)
}

// Finish implements queue.Queue. A successful run's peaks (or, killed at
// its memory limit, the limit) become a sample of the integration's
// prediction in the same statement.
func (q *Queue) Finish(ctx context.Context, jobID, leaseID string, res queue.Result) (*queue.Job, error) {
	return q.leaseCall(ctx, "finish", finishSQL, q.finishArgs(res), jobID, leaseID, q.now(), false)
}

// finishArgs are finishSQL's arguments for res, but for the lease's.
func (q *Queue) finishArgs(res queue.Result) pgx.NamedArgs {
	state := queue.StateFailed
	if res.Succeeded {
		state = queue.StateSucceeded
	}
	args := pgx.NamedArgs{
		"state": string(state), "exit_code": res.ExitCode, "error": res.Error,
		"peak_mem": res.PeakMemoryBytes, "peak_cpu": res.PeakCPUPercent,
		"record": false, "sample_mem": int64(0), "sample_cpu": 0.0, "keep": q.cfg.PeakSamples,
		// Kept for a validation only (the statement knows the mode).
		"outcome": queue.ClipOutcome(res.Outcome),
	}
	switch {
	case res.OOMKilled && q.cfg.LimitMemoryBytes > 0:
		// Killed at its limit: it needs all of it (at least) next time.
		args["record"], args["sample_mem"], args["sample_cpu"] = true, q.cfg.LimitMemoryBytes, res.PeakCPUPercent/100
	case res.Succeeded && (res.PeakMemoryBytes > 0 || res.PeakCPUPercent > 0):
		args["record"], args["sample_mem"], args["sample_cpu"] = true, res.PeakMemoryBytes, res.PeakCPUPercent/100
	}
	return args
}

// Cancel implements queue.Queue.
func (q *Queue) Cancel(ctx context.Context, jobID string) (*queue.Job, error) {
	if q.isClosed() {
		return nil, queue.ErrClosed
	}
	job, err := scanJob(cancelSQL.queryRow(ctx, q.pool, pgx.NamedArgs{"id": jobID, "now": q.now(), "reason": ""}))
	if err == nil {
		return job, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("cancel job %q: %w", jobID, err)
	}
	j, err := q.getJob(ctx, jobID)
	if err != nil {
		return nil, fmt.Errorf("cancel job %q: %w", jobID, err)
	}
	return nil, fmt.Errorf("cancel job %q: job is %s: %w", jobID, j.State, queue.ErrInvalidState)
}

// Reassign implements queue.Queue.
func (q *Queue) Reassign(ctx context.Context, integrationID string, to queue.Target) (int, error) {
	if integrationID == "" || !to.Valid() {
		return 0, errors.New("reassign: an integration ID and one target (a collector ID or a pool) are required")
	}
	if q.isClosed() {
		return 0, queue.ErrClosed
	}
	n, err := reassign(ctx, q.pool, integrationID, to)
	if err != nil {
		return 0, fmt.Errorf("reassign integration %q to %+v: %w", integrationID, to, err)
	}
	if n > 0 {
		q.publish(ctx, []queue.Target{to})
	}
	return n, nil
}

// reassign runs reassignSQL on db and reports the queued jobs it moved
// (the in-flight ones it changed move when their leases end).
func reassign(ctx context.Context, db querier, integrationID string, to queue.Target) (int, error) {
	var n int
	err := reassignSQL.queryRow(ctx, db, pgx.NamedArgs{"collector": to.CollectorID, "pool": to.Pool, "integration": integrationID}).Scan(&n)
	return n, err
}

// Requeue implements queue.Queue.
func (q *Queue) Requeue(ctx context.Context, jobID, leaseID string, to queue.Target) (*queue.Job, error) {
	if !to.Valid() {
		return nil, errors.New("requeue: one target (a collector ID or a pool) is required")
	}
	job, err := q.leaseCall(ctx, "requeue", requeueSQL, pgx.NamedArgs{"collector": to.CollectorID, "pool": to.Pool}, jobID, leaseID, q.now(), true)
	if err != nil {
		return nil, err
	}
	// Where it went: to, or where its integration moved since its lease.
	q.publish(ctx, []queue.Target{{CollectorID: job.CollectorID, Pool: job.Pool}})
	return job, nil
}

// Get implements queue.Queue.
func (q *Queue) Get(ctx context.Context, jobID string) (*queue.Job, error) {
	if q.isClosed() {
		return nil, queue.ErrClosed
	}
	j, err := q.getJob(ctx, jobID)
	if err != nil {
		return nil, fmt.Errorf("get job %q: %w", jobID, err)
	}
	return j, nil
}

func (q *Queue) getJob(ctx context.Context, jobID string) (*queue.Job, error) {
	return getJobOn(ctx, q.pool, jobID)
}

// getJobOn reads a job on db (the pool, or a transaction).
func getJobOn(ctx context.Context, db querier, jobID string) (*queue.Job, error) {
	j, err := scanJob(db.QueryRow(ctx, getJobSQL, jobID))
	if errors.Is(err, pgx.ErrNoRows) {
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
	rows, err := q.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	defer rows.Close()
	var jobs []*queue.Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, fmt.Errorf("list jobs: %w", err)
		}
		jobs = append(jobs, j)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	return jobs, nil
}

// listSQL is List's statement: newest first, on indexes for each filter
// (all, states, an integration, a collector). The active jobs and the
// finished ones are read apart, each newest first on its own partial
// indexes, and merged: the finished jobs' listing indexes get one entry
// per job, when it finishes, instead of one per state change (migration
// 3). A filter on states reads only the side that can hold them.
func listSQL(f queue.Filter) (string, []any) {
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if f.IntegrationID != "" {
		where = append(where, "integration_id = "+arg(f.IntegrationID))
	}
	if f.CollectorID != "" {
		where = append(where, "collector_id = "+arg(f.CollectorID))
	}
	active, done := len(f.States) == 0, len(f.States) == 0
	if len(f.States) > 0 {
		states := make([]string, len(f.States))
		for i, s := range f.States {
			states[i] = string(s)
			active = active || s.Active()
			done = done || !s.Active()
		}
		where = append(where, "state = ANY("+arg(states)+"::text[])")
	}
	if f.Before != "" {
		where = append(where, "(created_at, seq) < (SELECT created_at, seq FROM queue_jobs WHERE id = "+arg(f.Before)+")")
	}
	order := ` ORDER BY created_at DESC, seq DESC`
	if f.Limit > 0 {
		order += ` LIMIT ` + arg(f.Limit)
	}
	var sides []string
	for _, side := range []struct {
		read bool
		cond string // the predicate of the side's indexes
	}{{active, "state IN ('queued','leased','running')"}, {done, "finished_at IS NOT NULL"}} {
		if side.read {
			sides = append(sides, `SELECT `+jobColumns+`, seq FROM queue_jobs WHERE `+
				strings.Join(append([]string{side.cond}, where...), " AND ")+order)
		}
	}
	return `SELECT ` + jobColumns + ` FROM ((` + strings.Join(sides, `) UNION ALL (`) + `)) AS j` + order, args
}

// Depth implements queue.Queue: the active states only, through their
// partial indexes.
func (q *Queue) Depth(ctx context.Context) (map[queue.State]int, error) {
	if q.isClosed() {
		return nil, queue.ErrClosed
	}
	rows, err := q.pool.Query(ctx, depthSQL)
	if err != nil {
		return nil, fmt.Errorf("queue depth: %w", err)
	}
	defer rows.Close()
	depth := make(map[queue.State]int, 3)
	for rows.Next() {
		var s string
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			return nil, fmt.Errorf("queue depth: %w", err)
		}
		if n > 0 {
			depth[queue.State(s)] = n
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("queue depth: %w", err)
	}
	return depth, nil
}

// scanJob reads jobColumns, then into extra (nil skips a column).
func scanJob(s pgx.Row, extra ...any) (*queue.Job, error) {
	var j queue.Job
	var state, mode string
	var leaseExp, started, finished *time.Time
	var created time.Time
	dest := []any{&j.ID, &j.IntegrationID, &j.CollectorID, &state, &j.Attempt, &j.MaxAttempts,
		&j.LeaseID, &leaseExp, &created, &started, &finished,
		&j.ExitCode, &j.Error, &j.PeakMemoryBytes, &j.PeakCPUPercent, &j.RequestedBy, &j.Pool, &mode, &j.Outcome}
	if err := s.Scan(append(dest, extra...)...); err != nil {
		return nil, err
	}
	j.State, j.Mode = queue.State(state), queue.Mode(mode)
	j.LeaseExpiresAt = utc(leaseExp)
	j.CreatedAt = created.UTC()
	j.StartedAt = utc(started)
	j.FinishedAt = utc(finished)
	return &j, nil
}

func utc(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}
