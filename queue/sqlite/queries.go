package sqlite

import "fmt"

// Every statement the queue runs more than once, prepared once by New (see
// prepared). Statements take positional parameters in the order listed.

// The hot paths name their partial index (INDEXED BY): without statistics
// the planner would rather walk a collector's whole history through
// queue_jobs_collector than the few queued rows in queue_jobs_next. SQLite
// fails the statement if the named index cannot serve it, so a schema change
// that breaks this is caught by the tests, not in production.
var (
	// leaseNextSQL leases to collector ?3 the oldest queued job of its own
	// or of its pool ?4 that fits beside what it already runs (see
	// candidateSQL for the parameters).
	leaseNextSQL = `WITH ` + usedCTE + `
		UPDATE queue_jobs SET state = 'leased', lease_id = ?1, lease_expires_at = ?2, collector_id = ?3
		WHERE seq = (` + candidate("?14") + `)
		RETURNING ` + jobColumns

	// mayHaveWorkSQL, a cheap read so that waiting collectors take the
	// write lock only when it can pay: is a job eligible for collector ?3
	// now, leaving its pool's young jobs aside, or has any lease expired at
	// ?15; is one eligible counting the young ones; and the collector's
	// predicted use (used), from which Next works out whether it is the
	// least loaded member. ?1, ?2 and ?14 are unused (the same parameter
	// list as leaseNextSQL).
	mayHaveWorkSQL = `WITH ` + usedCTE + ` SELECT
		?1 IS NOT NULL AND ?2 IS NOT NULL AND ?14 IS NOT NULL AND (
		EXISTS (` + candidate("0") + `)
		OR EXISTS (SELECT 1 FROM queue_jobs INDEXED BY queue_jobs_lease
			WHERE state IN ('leased','running') AND lease_expires_at <= ?15)),
		EXISTS (` + candidate("1") + `),
		used.n, used.mem, used.cpu
		FROM used`

	// expireSQL requeues or kills every job whose lease expired at ?1.
	// SQLite evaluates every SET expression on the old row, so the CASEs
	// all see the attempt before the increment.
	expireSQL = `
		UPDATE queue_jobs INDEXED BY queue_jobs_lease SET
			state       = CASE WHEN attempt >= max_attempts THEN 'dead' ELSE 'queued' END,
			finished_at = CASE WHEN attempt >= max_attempts THEN ?1 END,
			error       = CASE WHEN attempt >= max_attempts
				THEN 'lease expired on the last attempt (' || attempt || ' of ' || max_attempts || '): the runner stopped renewing it'
				ELSE 'lease expired on attempt ' || attempt || ' of ' || max_attempts || '; requeued' END,
			attempt     = CASE WHEN attempt >= max_attempts THEN attempt ELSE attempt + 1 END,
			lease_id = '', lease_expires_at = NULL, started_at = NULL,
			collector_id = CASE WHEN attempt >= max_attempts THEN collector_id ELSE ` + destCollector + ` END,
			pool         = CASE WHEN attempt >= max_attempts THEN pool ELSE ` + destPool + ` END,
			requeue_collector_id = '', requeue_pool = ''
		WHERE state IN ('leased','running') AND lease_expires_at <= ?1
		RETURNING collector_id, pool, state`
)

// Where a job in flight goes when its lease ends without a finish (it
// expires, the platform gives the job back, its collector is deleted):
// where its integration moved while the job was in flight (Reassign sets
// requeue_collector_id or requeue_pool, migration 6), else a pool job's
// pool (for any member), else its collector's queue. Requeued on the old
// collector, a job whose integration had moved waited there for a
// collector that might never ask again, and, as the integration's active
// job, was what every later Enqueue of it returned. SQLite evaluates a SET
// expression on the row before the update, so these read the old values.
const (
	retargeted    = `(requeue_collector_id != '' OR requeue_pool != '')`
	destCollector = `(CASE WHEN ` + retargeted + ` THEN requeue_collector_id WHEN pool != '' THEN '' ELSE collector_id END)`
	destPool      = `(CASE WHEN ` + retargeted + ` THEN requeue_pool ELSE pool END)`
)

// Admission. A job's predicted memory is its integration's recent peak
// (else the default ?6), never above the limit ?7 (0: none); its CPU the
// same with ?8 and ?9. usedCTE sums them over collector ?3's active jobs.
// A candidate is a queued job of collector ?3, or of its pool ?4 (queued in
// the pool: collector_id ”; one enqueued before ?13, or any when ?14 says
// ?3 is the least loaded waiting member), that fits: ?5 free memory
// measured by the collector (0: unknown), ?10 memory and ?11 CPUs of
// capacity (0: unknown), ?12 jobs at most (0: no limit). The highest
// priority first (validations), then the oldest.
const (
	needMem = `(CASE WHEN ?7 > 0 THEN min(coalesce(nullif(%[1]s.peak_memory_bytes, 0), ?6), ?7) ELSE coalesce(nullif(%[1]s.peak_memory_bytes, 0), ?6) END)`
	needCPU = `(CASE WHEN ?9 > 0 THEN min(coalesce(nullif(%[1]s.peak_cpu, 0), ?8), ?9) ELSE coalesce(nullif(%[1]s.peak_cpu, 0), ?8) END)`
)

var (
	usedCTE = `used AS (SELECT count(*) AS n,
			coalesce(sum(` + fmt.Sprintf(needMem, "pu") + `), 0) AS mem,
			coalesce(sum(` + fmt.Sprintf(needCPU, "pu") + `), 0) AS cpu
		FROM queue_jobs AS u INDEXED BY queue_jobs_active_collector
		LEFT JOIN queue_integration_peaks AS pu ON pu.integration_id = u.integration_id
		WHERE u.collector_id = ?3 AND u.state IN ('leased','running'))`
	fits = `(?12 <= 0 OR used.n < ?12)
			AND (?5 <= 0 OR ` + fmt.Sprintf(needMem, "p") + ` <= ?5)
			AND (?10 <= 0 OR used.mem + ` + fmt.Sprintf(needMem, "p") + ` <= ?10)
			AND (?11 <= 0 OR used.cpu + ` + fmt.Sprintf(needCPU, "p") + ` <= ?11)`
	// candidateSQL takes the young pool jobs when young (an SQL boolean)
	// says so.
	candidateSQL = `SELECT seq FROM (
			SELECT * FROM (SELECT j.seq, j.priority, j.created_at FROM queue_jobs AS j INDEXED BY queue_jobs_next
				LEFT JOIN queue_integration_peaks AS p ON p.integration_id = j.integration_id, used
				WHERE j.state = 'queued' AND j.collector_id = ?3 AND ` + fits + `
				ORDER BY j.priority DESC, j.created_at, j.seq LIMIT 1)
			UNION ALL
			SELECT * FROM (SELECT j.seq, j.priority, j.created_at FROM queue_jobs AS j INDEXED BY queue_jobs_next_pool
				LEFT JOIN queue_integration_peaks AS p ON p.integration_id = j.integration_id, used
				WHERE ?4 != '' AND j.state = 'queued' AND j.pool = ?4 AND j.collector_id = ''
				  AND (j.created_at <= ?13 OR %[1]s) AND ` + fits + `
				ORDER BY j.priority DESC, j.created_at, j.seq LIMIT 1))
		ORDER BY priority DESC, created_at, seq LIMIT 1`

	// candidate is candidateSQL with its young-jobs switch.
	candidate = func(young string) string { return fmt.Sprintf(candidateSQL, young) }

	// usageSQL: the predicted use of collector ?3's active jobs (?6-?9 as
	// above; the other parameters unused).
	usageSQL = `WITH ` + usedCTE + ` SELECT n, mem, cpu FROM used`

	// needSQL: the predicted use of a job of integration ?1 (?2 default
	// memory, ?3 memory limit, ?4 default CPU, ?5 CPU limit), and whether
	// it comes from runs.
	needSQL = `SELECT
		CASE WHEN ?3 > 0 THEN min(coalesce(nullif(max(p.peak_memory_bytes), 0), ?2), ?3) ELSE coalesce(nullif(max(p.peak_memory_bytes), 0), ?2) END,
		CASE WHEN ?5 > 0 THEN min(coalesce(nullif(max(p.peak_cpu), 0), ?4), ?5) ELSE coalesce(nullif(max(p.peak_cpu), 0), ?4) END,
		count(p.integration_id) > 0
		FROM (SELECT ?1 AS id) LEFT JOIN queue_integration_peaks AS p ON p.integration_id = id`
)

const jobColumns = `id, integration_id, collector_id, state, attempt, max_attempts,
	lease_id, lease_expires_at, created_at, started_at, finished_at,
	exit_code, error, peak_memory_bytes, peak_cpu_percent, requested_by, pool, mode, outcome`

const (
	// insertJobSQL: id, integration, collector, max attempts, created at,
	// requested by, pool, mode, priority. The INSERT does nothing when the
	// partial unique index on active jobs already holds the integration
	// in that mode.
	insertJobSQL = `
		INSERT INTO queue_jobs (id, integration_id, collector_id, state, attempt, max_attempts, created_at, requested_by, pool, mode, priority)
		VALUES (?, ?, ?, 'queued', 1, ?, ?, ?, ?, ?, ?)
		ON CONFLICT DO NOTHING
		RETURNING ` + jobColumns

	// activeJobSQL: integration, mode.
	activeJobSQL = `SELECT ` + jobColumns + ` FROM queue_jobs
		WHERE integration_id = ? AND mode = ? AND state IN ('queued','leased','running')`

	// getJobSQL: job ID.
	getJobSQL = `SELECT ` + jobColumns + ` FROM queue_jobs WHERE id = ?`

	// renewSQL: new expiry, job ID.
	renewSQL = `UPDATE queue_jobs SET lease_expires_at = ? WHERE id = ? RETURNING ` + jobColumns

	// markRunningSQL: started at, new expiry, job ID.
	markRunningSQL = `UPDATE queue_jobs SET state = 'running', started_at = ?, lease_expires_at = ?
		WHERE id = ? RETURNING ` + jobColumns

	// finishSQL: state, finished at, exit code, error, peak memory, peak CPU,
	// outcome, job ID. The lease ID stays, as a record of who finished it.
	finishSQL = `UPDATE queue_jobs SET
			state = ?, finished_at = ?, lease_expires_at = NULL, exit_code = ?, error = ?,
			peak_memory_bytes = ?, peak_cpu_percent = ?, outcome = ?
		WHERE id = ? RETURNING ` + jobColumns

	// cancelSQL: finished at, reason, job ID. Clearing lease_id voids the
	// lease: the runner's next call carries a lease ID that no longer
	// matches and gets ErrLeaseLost.
	cancelSQL = `UPDATE queue_jobs SET
			state = 'canceled', finished_at = ?, lease_id = '', lease_expires_at = NULL, error = ?
		WHERE id = ? RETURNING ` + jobColumns

	// cancelIntegrationSQL: finished at, reason, integration. Every active
	// job of the integration (queued, leased or running).
	cancelIntegrationSQL = `UPDATE queue_jobs SET
			state = 'canceled', finished_at = ?, lease_id = '', lease_expires_at = NULL, error = ?
		WHERE integration_id = ? AND state IN ('queued','leased','running')`

	// cancelCollectorSQL: finished at, reason, collector. The jobs queued for
	// the collector.
	cancelCollectorSQL = `UPDATE queue_jobs SET
			state = 'canceled', finished_at = ?, lease_id = '', lease_expires_at = NULL, error = ?
		WHERE collector_id = ? AND state = 'queued'`

	// leaveCollectorSQL: collector ?1, deleted. Its jobs in flight that
	// have somewhere else to go (see destCollector) go there now, with no
	// attempt counted: their leases are void (the collector can no longer
	// renew, finish or send). It returns where each went.
	leaveCollectorSQL = `UPDATE queue_jobs INDEXED BY queue_jobs_active_collector SET
			state = 'queued', collector_id = ` + destCollector + `, pool = ` + destPool + `,
			requeue_collector_id = '', requeue_pool = '',
			lease_id = '', lease_expires_at = NULL, started_at = NULL,
			error = 'collector ' || ?1 || ' was deleted while it held the lease; requeued'
		WHERE collector_id = ?1 AND state IN ('leased','running') AND ` + destCollector + ` != ?1
		RETURNING collector_id, pool`

	// cancelCollectorInFlightSQL: finished at ?1, reason ?2, collector ?3,
	// deleted. Its jobs in flight with nowhere else to go.
	cancelCollectorInFlightSQL = `UPDATE queue_jobs INDEXED BY queue_jobs_active_collector SET
			state = 'canceled', finished_at = ?1, lease_id = '', lease_expires_at = NULL, error = ?2
		WHERE collector_id = ?3 AND state IN ('leased','running') AND ` + destCollector + ` = ?3`

	// requeueSQL: collector ?1, pool ?2, job ID ?3. Back to the queue, no
	// attempt counted: to ?1 or ?2, unless its integration moved while it
	// was leased (Reassign), which is newer than what the caller read.
	requeueSQL = `UPDATE queue_jobs SET
			state = 'queued',
			collector_id = CASE WHEN ` + retargeted + ` THEN requeue_collector_id ELSE ?1 END,
			pool = CASE WHEN ` + retargeted + ` THEN requeue_pool ELSE ?2 END,
			requeue_collector_id = '', requeue_pool = '',
			lease_id = '', lease_expires_at = NULL, started_at = NULL
		WHERE id = ?3 RETURNING ` + jobColumns

	// deleteFinishedSQL: cutoff, limit. Finished jobs past retention, oldest
	// first (finished_at is set exactly for the final states).
	deleteFinishedSQL = `DELETE FROM queue_jobs WHERE seq IN (
			SELECT seq FROM queue_jobs INDEXED BY queue_jobs_finished
			WHERE finished_at IS NOT NULL AND finished_at < ?
			ORDER BY finished_at LIMIT ?)
		RETURNING id`

	// deleteIntegrationJobsSQL: integration, limit. Finished jobs only.
	deleteIntegrationJobsSQL = `DELETE FROM queue_jobs WHERE seq IN (
			SELECT seq FROM queue_jobs INDEXED BY queue_jobs_integration
			WHERE integration_id = ? AND state NOT IN ('queued','leased','running') LIMIT ?)
		RETURNING id`

	// reassignSQL: new collector ?1, new pool ?2, integration ?3. A
	// queued job moves there; a leased or running one keeps its collector
	// (its lease stays good for the run under way) and records where to
	// go if the lease ends without a finish (see destCollector). It returns
	// the state of each job it changed.
	reassignSQL = `UPDATE queue_jobs INDEXED BY queue_jobs_active_integration SET
			collector_id = CASE WHEN state = 'queued' THEN ?1 ELSE collector_id END,
			pool         = CASE WHEN state = 'queued' THEN ?2 ELSE pool END,
			requeue_collector_id = CASE WHEN state = 'queued' THEN '' ELSE ?1 END,
			requeue_pool         = CASE WHEN state = 'queued' THEN '' ELSE ?2 END
		WHERE integration_id = ?3 AND state IN ('queued','leased','running')
		  AND (state != 'queued' OR collector_id != ?1 OR pool != ?2)
		RETURNING state`

	// depthSQL counts the active jobs by state, each through its partial
	// index: never a scan of the whole history.
	depthSQL = `SELECT
		(SELECT count(*) FROM queue_jobs INDEXED BY queue_jobs_next WHERE state = 'queued'),
		(SELECT count(*) FROM queue_jobs INDEXED BY queue_jobs_lease WHERE state IN ('leased','running') AND state = 'leased'),
		(SELECT count(*) FROM queue_jobs INDEXED BY queue_jobs_lease WHERE state IN ('leased','running') AND state = 'running')`

	// peaksSQL: integration.
	peaksSQL = `SELECT recent, recent_cpu FROM queue_integration_peaks WHERE integration_id = ?`

	// savePeaksSQL: integration, recent memory peaks (JSON array), their
	// maximum, recent CPU peaks in cores (JSON array), their maximum.
	savePeaksSQL = `INSERT INTO queue_integration_peaks (integration_id, recent, peak_memory_bytes, recent_cpu, peak_cpu)
		VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (integration_id) DO UPDATE SET recent = excluded.recent, peak_memory_bytes = excluded.peak_memory_bytes,
			recent_cpu = excluded.recent_cpu, peak_cpu = excluded.peak_cpu`
)

// preparedQueries are prepared by New, after the migrations.
var preparedQueries = []string{
	lockSQL, insertJobSQL, activeJobSQL, getJobSQL, leaseNextSQL, mayHaveWorkSQL, expireSQL,
	renewSQL, markRunningSQL, finishSQL, cancelSQL, cancelIntegrationSQL, cancelCollectorSQL, requeueSQL,
	reassignSQL, leaveCollectorSQL, cancelCollectorInFlightSQL, peaksSQL, savePeaksSQL,
}

// readQueries are prepared on the read pool.
var readQueries = []string{getJobSQL, mayHaveWorkSQL, depthSQL, usageSQL, needSQL}
