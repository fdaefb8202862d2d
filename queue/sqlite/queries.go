package sqlite

// Every statement the queue runs more than once, prepared once by New (see
// prepared). Statements take positional parameters in the order listed.

// The hot paths name their partial index (INDEXED BY): without statistics
// the planner would rather walk a collector's whole history through
// queue_jobs_collector than the few queued rows in queue_jobs_next. SQLite
// fails the statement if the named index cannot serve it, so a schema change
// that breaks this is caught by the tests, not in production.
const (
	// leaseNextSQL leases the oldest queued job of collector ?3 whose
	// predicted peak (the integration's, else ?5) fits ?4 bytes (0: any).
	leaseNextSQL = `
		UPDATE queue_jobs SET state = 'leased', lease_id = ?1, lease_expires_at = ?2
		WHERE seq = (
			SELECT j.seq FROM queue_jobs AS j INDEXED BY queue_jobs_next
			LEFT JOIN queue_integration_peaks AS p ON p.integration_id = j.integration_id
			WHERE j.state = 'queued' AND j.collector_id = ?3
			  AND (?4 <= 0 OR coalesce(p.peak_memory_bytes, ?5) <= ?4)
			ORDER BY j.created_at, j.seq
			LIMIT 1)
		RETURNING ` + jobColumns

	// mayHaveWorkSQL: is a job of collector ?1 queued that fits ?3 bytes
	// (default peak ?4), or has any lease expired at ?2? A cheap read, so
	// that waiting collectors take the write lock only when it can pay.
	mayHaveWorkSQL = `SELECT
		EXISTS (SELECT 1 FROM queue_jobs AS j INDEXED BY queue_jobs_next
			LEFT JOIN queue_integration_peaks AS p ON p.integration_id = j.integration_id
			WHERE j.state = 'queued' AND j.collector_id = ?1
			  AND (?3 <= 0 OR coalesce(p.peak_memory_bytes, ?4) <= ?3))
		OR EXISTS (SELECT 1 FROM queue_jobs INDEXED BY queue_jobs_lease
			WHERE state IN ('leased','running') AND lease_expires_at <= ?2)`

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
			lease_id = '', lease_expires_at = NULL, started_at = NULL
		WHERE state IN ('leased','running') AND lease_expires_at <= ?1
		RETURNING collector_id, state`
)

const jobColumns = `id, integration_id, collector_id, state, attempt, max_attempts,
	lease_id, lease_expires_at, created_at, started_at, finished_at,
	exit_code, error, peak_memory_bytes, peak_cpu_percent, requested_by`

const (
	// insertJobSQL: id, integration, collector, max attempts, created at,
	// requested by. The INSERT does nothing when the partial unique index on
	// active jobs already holds the integration.
	insertJobSQL = `
		INSERT INTO queue_jobs (id, integration_id, collector_id, state, attempt, max_attempts, created_at, requested_by)
		VALUES (?, ?, ?, 'queued', 1, ?, ?, ?)
		ON CONFLICT DO NOTHING
		RETURNING ` + jobColumns

	// activeJobSQL: integration.
	activeJobSQL = `SELECT ` + jobColumns + ` FROM queue_jobs
		WHERE integration_id = ? AND state IN ('queued','leased','running')`

	// getJobSQL: job ID.
	getJobSQL = `SELECT ` + jobColumns + ` FROM queue_jobs WHERE id = ?`

	// renewSQL: new expiry, job ID.
	renewSQL = `UPDATE queue_jobs SET lease_expires_at = ? WHERE id = ? RETURNING ` + jobColumns

	// markRunningSQL: started at, new expiry, job ID.
	markRunningSQL = `UPDATE queue_jobs SET state = 'running', started_at = ?, lease_expires_at = ?
		WHERE id = ? RETURNING ` + jobColumns

	// finishSQL: state, finished at, exit code, error, peak memory, peak CPU,
	// job ID. The lease ID stays, as a record of who finished it.
	finishSQL = `UPDATE queue_jobs SET
			state = ?, finished_at = ?, lease_expires_at = NULL, exit_code = ?, error = ?,
			peak_memory_bytes = ?, peak_cpu_percent = ?
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
	// the collector (its in-flight jobs end with their leases).
	cancelCollectorSQL = `UPDATE queue_jobs SET
			state = 'canceled', finished_at = ?, lease_id = '', lease_expires_at = NULL, error = ?
		WHERE collector_id = ? AND state = 'queued'`

	// requeueSQL: collector, job ID. Back to the queue, no attempt counted.
	requeueSQL = `UPDATE queue_jobs SET
			state = 'queued', collector_id = ?, lease_id = '', lease_expires_at = NULL, started_at = NULL
		WHERE id = ? RETURNING ` + jobColumns

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

	// reassignSQL: new collector, integration, new collector.
	reassignSQL = `UPDATE queue_jobs SET collector_id = ?
		WHERE integration_id = ? AND state = 'queued' AND collector_id <> ?`

	// depthSQL counts the active jobs by state, each through its partial
	// index: never a scan of the whole history.
	depthSQL = `SELECT
		(SELECT count(*) FROM queue_jobs INDEXED BY queue_jobs_next WHERE state = 'queued'),
		(SELECT count(*) FROM queue_jobs INDEXED BY queue_jobs_lease WHERE state IN ('leased','running') AND state = 'leased'),
		(SELECT count(*) FROM queue_jobs INDEXED BY queue_jobs_lease WHERE state IN ('leased','running') AND state = 'running')`

	// peaksSQL: integration.
	peaksSQL = `SELECT recent FROM queue_integration_peaks WHERE integration_id = ?`

	// savePeaksSQL: integration, recent peaks (JSON array), their maximum.
	savePeaksSQL = `INSERT INTO queue_integration_peaks (integration_id, recent, peak_memory_bytes)
		VALUES (?, ?, ?)
		ON CONFLICT (integration_id) DO UPDATE SET recent = excluded.recent, peak_memory_bytes = excluded.peak_memory_bytes`
)

// preparedQueries are prepared by New, after the migrations.
var preparedQueries = []string{
	lockSQL, insertJobSQL, activeJobSQL, getJobSQL, leaseNextSQL, mayHaveWorkSQL, expireSQL,
	renewSQL, markRunningSQL, finishSQL, cancelSQL, cancelIntegrationSQL, cancelCollectorSQL, requeueSQL,
	reassignSQL, peaksSQL, savePeaksSQL,
}

// readQueries are prepared on the read pool.
var readQueries = []string{getJobSQL, mayHaveWorkSQL, depthSQL}
