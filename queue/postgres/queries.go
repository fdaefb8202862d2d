package postgres

import "fmt"

// The statements are written with named arguments (@name), each cast
// where it is used so that PostgreSQL never guesses a type from a literal
// it is compared with, and run as stmts (positional arguments, see
// positional).

const jobColumns = `id, integration_id, collector_id, state, attempt, max_attempts,
	lease_id, lease_expires_at, created_at, started_at, finished_at,
	exit_code, error, peak_memory_bytes, peak_cpu_percent, requested_by, pool, mode, outcome`

// Admission, as in queue/sqlite. A job's predicted memory is its
// integration's recent peak (else @def_mem), never above @lim_mem (0:
// none); its CPU the same with @def_cpu and @lim_cpu. usedCTE sums them
// over collector @collector's active jobs. A candidate is a queued job of
// @collector, or of its pool @pool (queued in the pool: collector_id ”;
// one enqueued at or before @handoff, or any when the young switch says
// so), that fits: @free memory measured by the collector (0: unknown),
// @cap_mem memory and @cap_cpu CPUs of capacity (0: unknown), fewer than
// @max_jobs active jobs (0: no limit). Oldest first.
const (
	needMem = `(CASE WHEN @lim_mem::bigint > 0
		THEN least(coalesce(nullif(%[1]s.peak_memory_bytes, 0), @def_mem::bigint), @lim_mem::bigint)
		ELSE coalesce(nullif(%[1]s.peak_memory_bytes, 0), @def_mem::bigint) END)`
	needCPU = `(CASE WHEN @lim_cpu::float8 > 0
		THEN least(coalesce(nullif(%[1]s.peak_cpu, 0), @def_cpu::float8), @lim_cpu::float8)
		ELSE coalesce(nullif(%[1]s.peak_cpu, 0), @def_cpu::float8) END)`
)

var (
	usedCTE = `used AS (SELECT count(*) AS n,
			coalesce(sum(` + fmt.Sprintf(needMem, "pu") + `), 0)::bigint AS mem,
			coalesce(sum(` + fmt.Sprintf(needCPU, "pu") + `), 0)::float8 AS cpu
		FROM queue_jobs AS u
		LEFT JOIN queue_integration_peaks AS pu ON pu.integration_id = u.integration_id
		WHERE u.collector_id = @collector::text AND u.state IN ('leased','running'))`

	fits = `(@max_jobs::integer <= 0 OR used.n < @max_jobs::integer)
			AND (@free::bigint <= 0 OR ` + fmt.Sprintf(needMem, "p") + ` <= @free::bigint)
			AND (@cap_mem::bigint <= 0 OR used.mem + ` + fmt.Sprintf(needMem, "p") + ` <= @cap_mem::bigint)
			AND (@cap_cpu::float8 <= 0 OR used.cpu + ` + fmt.Sprintf(needCPU, "p") + ` <= @cap_cpu::float8)`

	// ownSQL and poolSQL select the oldest fitting job of the collector's
	// own queue and of its pool's; %[1]s is the young-jobs switch (an SQL
	// boolean), %[2]s a locking clause or nothing.
	ownSQL = `SELECT j.seq, j.priority, j.created_at FROM queue_jobs AS j
			LEFT JOIN queue_integration_peaks AS p ON p.integration_id = j.integration_id CROSS JOIN used
			WHERE j.state = 'queued' AND j.collector_id = @collector::text AND ` + fits + `
			ORDER BY j.priority DESC, j.created_at, j.seq LIMIT 1 %[2]s`
	poolSQL = `SELECT j.seq, j.priority, j.created_at FROM queue_jobs AS j
			LEFT JOIN queue_integration_peaks AS p ON p.integration_id = j.integration_id CROSS JOIN used
			WHERE @pool::text <> '' AND j.state = 'queued' AND j.pool = @pool::text AND j.collector_id = ''
			  AND (j.created_at <= @handoff::timestamptz OR %[1]s) AND ` + fits + `
			ORDER BY j.priority DESC, j.created_at, j.seq LIMIT 1 %[2]s`

	// expiredSQL: has any lease passed at @now.
	expiredSQL = `EXISTS (SELECT 1 FROM queue_jobs WHERE state IN ('leased','running') AND lease_expires_at <= @now::timestamptz)`

	// mayHaveWorkSQL, a read that takes no lock, so that waiting
	// collectors lease only when it can pay: is a job eligible for
	// @collector now, leaving its pool's young jobs aside; is one,
	// counting them; has a lease expired; and the collector's predicted
	// use (from which Next works out whether it is the least loaded
	// member).
	mayHaveWorkSQL = positional(`WITH ` + usedCTE + ` SELECT
		EXISTS (` + fmt.Sprintf(ownSQL, "", "") + `) OR EXISTS (` + fmt.Sprintf(poolSQL, "false", "") + `),
		EXISTS (` + fmt.Sprintf(poolSQL, "true", "") + `),
		` + expiredSQL + `,
		used.n, used.mem, used.cpu
		FROM used`)

	// leaseNextSQL leases to @collector (lease @lease_id until @expires)
	// the oldest fitting job of its own queue or of its pool's, young pool
	// jobs included when @young says so. Candidates are locked with SKIP
	// LOCKED: a job another transaction is leasing is passed over, not
	// waited for, and a job leased since this statement began fails the
	// recheck of its state. It returns one row: the job leased (NULLs when
	// none) and whether the collector's own queue holds another queued job,
	// fitting or not, locked or not (when not, the queue is quiet until a
	// job is added to it, which notifies).
	leaseNextSQL = positional(`WITH ` + usedCTE + `,
		own AS (` + fmt.Sprintf(ownSQL, "", "FOR UPDATE OF j SKIP LOCKED") + `),
		pooled AS (` + fmt.Sprintf(poolSQL, "@young::boolean", "FOR UPDATE OF j SKIP LOCKED") + `),
		pick AS (SELECT seq FROM (SELECT * FROM own UNION ALL SELECT * FROM pooled) AS c
			ORDER BY priority DESC, created_at, seq LIMIT 1),` + leaseAndMore)

	// leaseOwnSQL is leaseNextSQL for a collector in no pool: its own
	// queue only, a plan a third the size (PostgreSQL sets up every node
	// of a plan on each execution).
	leaseOwnSQL = positional(`WITH ` + usedCTE + `,
		pick AS (` + fmt.Sprintf(ownSQL, "", "FOR UPDATE OF j SKIP LOCKED") + `),` + leaseAndMore)

	// usageSQL: the predicted use of @collector's active jobs.
	usageSQL = positional(`WITH ` + usedCTE + ` SELECT n, mem, cpu FROM used`)

	// needSQL: the predicted use of a job of integration @integration, and
	// whether it comes from runs.
	needSQL = positional(`SELECT ` + fmt.Sprintf(needMem, "p") + `, ` + fmt.Sprintf(needCPU, "p") + `, p.integration_id IS NOT NULL
		FROM (SELECT @integration::text AS id) AS i
		LEFT JOIN queue_integration_peaks AS p ON p.integration_id = i.id`)

	// collectorLockSQL serializes the leases of one collector (two keys:
	// a class and the collector's hash), so that what it already runs is
	// counted exactly against its capacity. It holds to the end of the
	// transaction.
	collectorLockSQL = positional(`SELECT pg_advisory_xact_lock(1903520000, hashtext(@collector::text))`)

	// expireSQL requeues or kills every job whose lease expired at @now,
	// skipping rows another transaction holds (another process sweeping,
	// or a renewal: that one is for the next sweep). PostgreSQL evaluates
	// every SET expression on the old row, so the CASEs all see the
	// attempt before the increment. It returns the notify key of each.
	expireSQL = positional(`WITH e AS (SELECT seq FROM queue_jobs
			WHERE state IN ('leased','running') AND lease_expires_at <= @now::timestamptz
			FOR UPDATE SKIP LOCKED)
		UPDATE queue_jobs AS j SET
			state       = CASE WHEN attempt >= max_attempts THEN 'dead' ELSE 'queued' END,
			finished_at = CASE WHEN attempt >= max_attempts THEN @now::timestamptz END,
			error       = CASE WHEN attempt >= max_attempts
				THEN 'lease expired on the last attempt (' || attempt || ' of ' || max_attempts || '): the runner stopped renewing it'
				ELSE 'lease expired on attempt ' || attempt || ' of ' || max_attempts || '; requeued' END,
			attempt     = CASE WHEN attempt >= max_attempts THEN attempt ELSE attempt + 1 END,
			lease_id = '', lease_expires_at = NULL, started_at = NULL,
			collector_id = CASE WHEN attempt >= max_attempts THEN collector_id ELSE ` + destCollector + ` END,
			pool         = CASE WHEN attempt >= max_attempts THEN pool ELSE ` + destPool + ` END,
			requeue_collector_id = '', requeue_pool = ''
		FROM e WHERE j.seq = e.seq
		RETURNING j.collector_id, j.pool`)

	// insertJobSQL inserts a queued job unless the partial unique index on
	// active jobs already holds the integration; insertJobNotifySQL also
	// tells the other processes (@payload on @channel, delivered at
	// commit). Both return the job and a column to skip.
	insertJobSQL       = positional(fmt.Sprintf(insertJob, ", NULL"))
	insertJobNotifySQL = positional(fmt.Sprintf(insertJob, ", pg_notify(@channel::text, @payload::text)"))

	// activeJobSQL: the active job of @integration in @mode.
	activeJobSQL = positional(`SELECT ` + jobColumns + ` FROM queue_jobs
		WHERE integration_id = @integration::text AND mode = @mode::text AND state IN ('queued','leased','running')`)

	renewSQL = positional(`UPDATE queue_jobs SET lease_expires_at = @expires::timestamptz
		WHERE ` + leaseHeld(leasedOrRunning) + ` RETURNING ` + jobColumns)

	// markRunningSQL: a retry on the running job only renews (StartedAt
	// stays).
	markRunningSQL = positional(`UPDATE queue_jobs SET state = 'running',
			started_at = CASE WHEN state = 'running' THEN started_at ELSE @now::timestamptz END,
			lease_expires_at = @expires::timestamptz
		WHERE ` + leaseHeld(leasedOrRunning) + ` RETURNING ` + jobColumns)

	// cancelSQL: clearing lease_id voids the lease: the runner's next call
	// carries a lease ID that no longer matches and gets ErrLeaseLost.
	cancelSQL = positional(`UPDATE queue_jobs SET
			state = 'canceled', finished_at = @now::timestamptz, lease_id = '', lease_expires_at = NULL,
			error = CASE WHEN @reason::text <> '' THEN @reason::text ELSE 'canceled while ' || state END
		WHERE id = @id::text AND state IN ('queued','leased','running')
		RETURNING ` + jobColumns)

	// requeueSQL: back to a queue, no attempt counted: to @collector or
	// @pool, unless its integration moved while it was leased (Reassign),
	// which is newer than what the caller read.
	requeueSQL = positional(`UPDATE queue_jobs SET
			state = 'queued',
			collector_id = CASE WHEN ` + retargeted + ` THEN requeue_collector_id ELSE @collector::text END,
			pool = CASE WHEN ` + retargeted + ` THEN requeue_pool ELSE @pool::text END,
			requeue_collector_id = '', requeue_pool = '',
			lease_id = '', lease_expires_at = NULL, started_at = NULL
		WHERE ` + leaseHeld(`'leased'`) + `
		RETURNING ` + jobColumns)

	// reassignSQL: the active jobs of @integration to @collector or
	// @pool. A queued job moves there; a leased or running one keeps its
	// collector (its lease stays good for the run under way) and records
	// where to go if the lease ends without a finish (see destCollector).
	// One statement, so that a job leased while it runs is updated as
	// what it is by then (PostgreSQL rechecks a row another transaction
	// changed), never missed. It returns how many queued jobs moved.
	reassignSQL = positional(`WITH r AS (UPDATE queue_jobs SET
			collector_id = CASE WHEN state = 'queued' THEN @collector::text ELSE collector_id END,
			pool         = CASE WHEN state = 'queued' THEN @pool::text ELSE pool END,
			requeue_collector_id = CASE WHEN state = 'queued' THEN '' ELSE @collector::text END,
			requeue_pool         = CASE WHEN state = 'queued' THEN '' ELSE @pool::text END
		WHERE integration_id = @integration::text AND state IN ('queued','leased','running')
		  AND (state <> 'queued' OR collector_id <> @collector::text OR pool <> @pool::text)
		RETURNING state)
		SELECT count(*) FILTER (WHERE state = 'queued') FROM r`)

	// cancelIntegrationSQL: every active job of @integration (queued,
	// leased or running), with @reason as its error.
	cancelIntegrationSQL = positional(`UPDATE queue_jobs SET
			state = 'canceled', finished_at = @now::timestamptz, lease_id = '', lease_expires_at = NULL, error = @reason::text
		WHERE integration_id = @integration::text AND state IN ('queued','leased','running')`)

	// cancelCollectorSQL: the jobs queued for @collector, deleted.
	cancelCollectorSQL = positional(`UPDATE queue_jobs SET
			state = 'canceled', finished_at = @now::timestamptz, lease_id = '', lease_expires_at = NULL, error = @reason::text
		WHERE collector_id = @collector::text AND state = 'queued'`)

	// leaveCollectorSQL: the jobs in flight on @collector, deleted, that
	// have somewhere else to go (see destCollector) go there now, with no
	// attempt counted: their leases are void (the collector can no longer
	// renew, finish or send). It returns where each went.
	leaveCollectorSQL = positional(`UPDATE queue_jobs SET
			state = 'queued', collector_id = ` + destCollector + `, pool = ` + destPool + `,
			requeue_collector_id = '', requeue_pool = '',
			lease_id = '', lease_expires_at = NULL, started_at = NULL,
			error = 'collector ' || @collector::text || ' was deleted while it held the lease; requeued'
		WHERE collector_id = @collector::text AND state IN ('leased','running') AND ` + destCollector + ` <> @collector::text
		RETURNING collector_id, pool`)

	// cancelCollectorInFlightSQL: the jobs in flight on @collector,
	// deleted, with nowhere else to go. A job that a reassignment
	// committed since leaveCollectorSQL gave somewhere to go is left to
	// its lease's expiry, which sends it there.
	cancelCollectorInFlightSQL = positional(`UPDATE queue_jobs SET
			state = 'canceled', finished_at = @now::timestamptz, lease_id = '', lease_expires_at = NULL, error = @reason::text
		WHERE collector_id = @collector::text AND state IN ('leased','running') AND ` + destCollector + ` = @collector::text`)

	// deleteFinishedSQL: up to @limit jobs finished before @cutoff, the
	// first created first (finished_at is set exactly for the final
	// states). A job finishes after it was created, so each one finished
	// before @cutoff was created before it: the statement walks
	// queue_jobs_done_created up to @cutoff and passes over the few jobs
	// created before it that finished after (jobs run for minutes, not
	// for a retention period); no index of its own for every finish to
	// write.
	deleteFinishedSQL = positional(`DELETE FROM queue_jobs WHERE seq IN (
			SELECT seq FROM queue_jobs WHERE finished_at IS NOT NULL
			  AND created_at < @cutoff::timestamptz AND finished_at < @cutoff::timestamptz
			ORDER BY created_at, seq LIMIT @limit::integer FOR UPDATE SKIP LOCKED)
		RETURNING id`)

	// deleteIntegrationJobsSQL: up to @limit finished jobs of @integration
	// (finished_at is set exactly for the final states).
	deleteIntegrationJobsSQL = positional(`DELETE FROM queue_jobs WHERE seq IN (
			SELECT seq FROM queue_jobs
			WHERE integration_id = @integration::text AND finished_at IS NOT NULL
			LIMIT @limit::integer FOR UPDATE SKIP LOCKED)
		RETURNING id`)

	// notifySQL sends each of @payloads on @channel.
	notifySQL = positional(`SELECT pg_notify(@channel::text, p) FROM unnest(@payloads::text[]) AS p`)

	// finishSQL records the outcome (a validation's @outcome too) and,
	// when @record and the job collects, adds the samples
	// @sample_mem and @sample_cpu (cores; zero: not measured, not added)
	// to the integration's last @keep and stores their maxima, which Next
	// counts against a collector's capacity. The lease ID stays, as a
	// record of who finished the job.
	finishSQL = positional(`WITH done AS (
			UPDATE queue_jobs SET state = @state::text, finished_at = @now::timestamptz, lease_expires_at = NULL,
				exit_code = @exit_code::integer, error = @error::text,
				peak_memory_bytes = @peak_mem::bigint, peak_cpu_percent = @peak_cpu::float8,
				outcome = CASE WHEN mode = 'validate' THEN @outcome::text ELSE '' END
			WHERE ` + leaseHeld(leasedOrRunning) + `
			RETURNING ` + jobColumns + `),
		peak AS (
			INSERT INTO queue_integration_peaks AS p (integration_id, recent, peak_memory_bytes, recent_cpu, peak_cpu)
			SELECT integration_id,
				CASE WHEN @sample_mem::bigint > 0 THEN ARRAY[@sample_mem::bigint] ELSE '{}'::bigint[] END,
				greatest(@sample_mem::bigint, 0),
				CASE WHEN @sample_cpu::float8 > 0 THEN ARRAY[@sample_cpu::float8] ELSE '{}'::float8[] END,
				greatest(@sample_cpu::float8, 0)
			FROM done WHERE @record::boolean AND done.mode = ''
			ON CONFLICT (integration_id) DO UPDATE SET
				recent = ` + lastSamples("recent") + `,
				peak_memory_bytes = (SELECT coalesce(max(v), 0) FROM unnest(` + lastSamples("recent") + `) AS v),
				recent_cpu = ` + lastSamples("recent_cpu") + `,
				peak_cpu = (SELECT coalesce(max(v), 0) FROM unnest(` + lastSamples("recent_cpu") + `) AS v))
		SELECT ` + jobColumns + ` FROM done`)
)

// Where a job in flight goes when its lease ends without a finish (it
// expires, the platform gives the job back, its collector is deleted), as
// in queue/sqlite: where its integration moved while the job was in
// flight (Reassign sets requeue_collector_id or requeue_pool, migration
// 5), else a pool job's pool (for any member), else its collector's
// queue. Requeued on the old collector, a job whose integration had moved
// waited there for a collector that might never ask again, and, as the
// integration's active job, was what every later Enqueue of it returned.
// PostgreSQL evaluates a SET expression on the row before the update, so
// these read the old values.
const (
	retargeted    = `(requeue_collector_id <> '' OR requeue_pool <> '')`
	destCollector = `(CASE WHEN ` + retargeted + ` THEN requeue_collector_id WHEN pool <> '' THEN '' ELSE collector_id END)`
	destPool      = `(CASE WHEN ` + retargeted + ` THEN requeue_pool ELSE pool END)`
)

const (
	// leaseAndMore ends leaseNextSQL and leaseOwnSQL: it leases the job
	// of the CTE pick.
	leaseAndMore = `
		leased AS (UPDATE queue_jobs SET state = 'leased', lease_id = @lease_id::text,
			lease_expires_at = @expires::timestamptz, collector_id = @collector::text
		WHERE seq = (SELECT seq FROM pick) AND state = 'queued'
		RETURNING ` + jobColumns + `)
		SELECT l.*, EXISTS (SELECT 1 FROM queue_jobs AS o
			WHERE o.state = 'queued' AND o.collector_id = @collector::text
			  AND o.seq IS DISTINCT FROM (SELECT seq FROM pick))
		FROM (SELECT) AS one LEFT JOIN leased AS l ON true`

	// insertJob is insertJobSQL, %s the column its SELECT adds.
	insertJob = `WITH ins AS (
			INSERT INTO queue_jobs (id, integration_id, collector_id, pool, state, attempt, max_attempts, created_at, requested_by, mode, priority)
			VALUES (@id::text, @integration::text, @collector::text, @pool::text, 'queued', 1, @max_attempts::integer,
				@now::timestamptz, @requested_by::text, @mode::text, @priority::integer)
			ON CONFLICT DO NOTHING
			RETURNING ` + jobColumns + `)
		SELECT ` + jobColumns + `%s FROM ins`

	leasedOrRunning = `'leased','running'`

	getJobSQL = `SELECT ` + jobColumns + ` FROM queue_jobs WHERE id = $1`

	// depthSQL counts the active jobs by state.
	depthSQL = `SELECT state, count(*) FROM queue_jobs WHERE state IN ('queued','leased','running') GROUP BY state`
)

// leaseHeld is the condition of the lease-carrying calls: @lease_id is
// the job's current lease, the job is in one of states (an SQL list), and
// the lease has not passed at @now. When it fails, the call reads the job
// to say why (see leaseCallOn). The job is found by its ID alone: the rest
// is wrapped in IS TRUE (the same truth in a WHERE) so that the planner
// cannot match it to an index on the state or the lease
// (queue_jobs_lease), which a generic plan otherwise scans for the ID.
func leaseHeld(states string) string {
	return `id = @id::text AND (lease_id = @lease_id::text AND state IN (` + states + `)
		AND lease_expires_at > @now::timestamptz) IS TRUE`
}

// lastSamples is the samples column col with the new sample (excluded's,
// none when it is empty) appended, keeping the last @keep.
func lastSamples(col string) string {
	all := fmt.Sprintf("(p.%[1]s || excluded.%[1]s)", col)
	return fmt.Sprintf("%[1]s[greatest(cardinality(%[1]s) - @keep::integer + 1, 1):]", all)
}
