package sqlite

import (
	"context"
	"fmt"
)

// migrations are applied in order, each once, each in its own transaction.
// Append only: never edit a migration that has shipped.
var migrations = []string{
	1: `
CREATE TABLE queue_jobs (
	seq               INTEGER PRIMARY KEY,
	id                TEXT    NOT NULL UNIQUE,
	integration_id    TEXT    NOT NULL,
	collector_id      TEXT    NOT NULL,
	state             TEXT    NOT NULL CHECK (state IN ('queued','leased','running','succeeded','failed','canceled','dead')),
	attempt           INTEGER NOT NULL,
	max_attempts      INTEGER NOT NULL,
	lease_id          TEXT    NOT NULL DEFAULT '',
	lease_expires_at  INTEGER,
	created_at        INTEGER NOT NULL,
	started_at        INTEGER,
	finished_at       INTEGER,
	exit_code         INTEGER NOT NULL DEFAULT 0,
	error             TEXT    NOT NULL DEFAULT '',
	peak_memory_bytes INTEGER NOT NULL DEFAULT 0,
	peak_cpu_percent  REAL    NOT NULL DEFAULT 0,
	requested_by      TEXT    NOT NULL DEFAULT ''
);
-- Dedupe: one active job per integration, enforced by the store.
CREATE UNIQUE INDEX queue_jobs_active_integration ON queue_jobs(integration_id)
	WHERE state IN ('queued','leased','running');
-- Next: oldest queued job of a collector.
CREATE INDEX queue_jobs_next ON queue_jobs(collector_id, created_at, seq)
	WHERE state = 'queued';
-- ExpireLeases.
CREATE INDEX queue_jobs_lease ON queue_jobs(lease_expires_at)
	WHERE state IN ('leased','running');
CREATE INDEX queue_jobs_integration ON queue_jobs(integration_id, created_at);
CREATE INDEX queue_jobs_collector ON queue_jobs(collector_id, created_at);
CREATE INDEX queue_jobs_state ON queue_jobs(state);
-- Predicted peak memory per integration: the max of the last few successful runs.
CREATE TABLE queue_integration_peaks (
	integration_id    TEXT    PRIMARY KEY,
	recent            TEXT    NOT NULL,
	peak_memory_bytes INTEGER NOT NULL
) WITHOUT ROWID;
`,
	2: `
-- Retention: finished jobs by age.
CREATE INDEX queue_jobs_finished ON queue_jobs(finished_at) WHERE finished_at IS NOT NULL;
`,
	3: `
-- Pages of jobs, newest first: all, by state, by integration, by collector.
CREATE INDEX queue_jobs_created ON queue_jobs(created_at, seq);
CREATE INDEX queue_jobs_state_created ON queue_jobs(state, created_at, seq);
DROP INDEX queue_jobs_integration;
CREATE INDEX queue_jobs_integration ON queue_jobs(integration_id, created_at, seq);
DROP INDEX queue_jobs_collector;
CREATE INDEX queue_jobs_collector ON queue_jobs(collector_id, created_at, seq);
`,
	4: `
-- Pools: a job may target a pool (collector_id '' while it is queued there).
ALTER TABLE queue_jobs ADD COLUMN pool TEXT NOT NULL DEFAULT '';
CREATE INDEX queue_jobs_next_pool ON queue_jobs(pool, created_at, seq)
	WHERE state = 'queued' AND collector_id = '';
-- Admission: what a collector's active jobs use.
CREATE INDEX queue_jobs_active_collector ON queue_jobs(collector_id)
	WHERE state IN ('leased','running');
-- Predicted CPU (cores) beside memory.
ALTER TABLE queue_integration_peaks ADD COLUMN recent_cpu TEXT NOT NULL DEFAULT '[]';
ALTER TABLE queue_integration_peaks ADD COLUMN peak_cpu REAL NOT NULL DEFAULT 0;
`,
	5: `
-- Validations: a job's mode ('' collects, 'validate' checks access), its
-- priority (validations are leased first) and a validation's outcome.
ALTER TABLE queue_jobs ADD COLUMN mode TEXT NOT NULL DEFAULT '' CHECK (mode IN ('','validate'));
ALTER TABLE queue_jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
ALTER TABLE queue_jobs ADD COLUMN outcome TEXT NOT NULL DEFAULT '';
-- Dedupe: one active job per integration and mode.
DROP INDEX queue_jobs_active_integration;
CREATE UNIQUE INDEX queue_jobs_active_integration ON queue_jobs(integration_id, mode)
	WHERE state IN ('queued','leased','running');
-- Next: the highest priority, then the oldest, queued job.
DROP INDEX queue_jobs_next;
CREATE INDEX queue_jobs_next ON queue_jobs(collector_id, priority DESC, created_at, seq)
	WHERE state = 'queued';
DROP INDEX queue_jobs_next_pool;
CREATE INDEX queue_jobs_next_pool ON queue_jobs(pool, priority DESC, created_at, seq)
	WHERE state = 'queued' AND collector_id = '';
`,
	6: `
-- Where a leased or running job goes if its lease ends without a finish,
-- once its integration moved (Reassign) while it was in flight: a
-- collector, or a pool. Both '' (no move): back to its own queue, or its
-- pool's. Set beside collector_id, never in it: the run under way keeps
-- its lease.
ALTER TABLE queue_jobs ADD COLUMN requeue_collector_id TEXT NOT NULL DEFAULT '';
ALTER TABLE queue_jobs ADD COLUMN requeue_pool TEXT NOT NULL DEFAULT '';
`,
}

// migrate brings the queue_ tables to the latest version. It is safe to run
// from several processes at once: each step re-reads the version under the
// write lock.
func (q *Queue) migrate(ctx context.Context) error {
	// Outside write: its first statement, lockSQL, needs this table.
	_, err := q.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS queue_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at INTEGER NOT NULL)`)
	if err != nil {
		return fmt.Errorf("create queue_migrations: %w", err)
	}
	for v := 1; v < len(migrations); v++ {
		if err := q.migrateTo(ctx, v); err != nil {
			return fmt.Errorf("migration %d: %w", v, err)
		}
	}
	return nil
}

func (q *Queue) migrateTo(ctx context.Context, v int) error {
	return q.write(ctx, func(c *wtx) error {
		var n int
		if err := c.QueryRowContext(ctx, `SELECT count(*) FROM queue_migrations WHERE version = ?`, v).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		// Not through the statement cache: a migration is several statements,
		// run once.
		if _, err := c.tx.ExecContext(ctx, migrations[v]); err != nil {
			return err
		}
		_, err := c.ExecContext(ctx, `INSERT INTO queue_migrations(version, applied_at) VALUES (?, ?)`, v, q.now().UnixNano())
		return err
	})
}
