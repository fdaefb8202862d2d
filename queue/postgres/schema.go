package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// migrateLockKey is the advisory lock that serializes migrations between
// processes (one 64-bit key: it never meets the two-key collector locks).
const migrateLockKey = 0x636f6c6c71756575 // "collqueu"

// migrations are applied in order, each once, all in one transaction.
// Append only: never edit a migration that has shipped.
var migrations = []string{
	1: `
CREATE TABLE queue_jobs (
	seq               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	id                text        NOT NULL UNIQUE,
	integration_id    text        NOT NULL,
	collector_id      text        NOT NULL,
	pool              text        NOT NULL DEFAULT '',
	state             text        NOT NULL CHECK (state IN ('queued','leased','running','succeeded','failed','canceled','dead')),
	attempt           integer     NOT NULL,
	max_attempts      integer     NOT NULL,
	lease_id          text        NOT NULL DEFAULT '',
	lease_expires_at  timestamptz,
	created_at        timestamptz NOT NULL,
	started_at        timestamptz,
	finished_at       timestamptz,
	exit_code         integer     NOT NULL DEFAULT 0,
	error             text        NOT NULL DEFAULT '',
	peak_memory_bytes bigint      NOT NULL DEFAULT 0,
	peak_cpu_percent  double precision NOT NULL DEFAULT 0,
	requested_by      text        NOT NULL DEFAULT ''
);
-- Dedupe: one active job per integration, enforced by the store.
CREATE UNIQUE INDEX queue_jobs_active_integration ON queue_jobs(integration_id)
	WHERE state IN ('queued','leased','running');
-- Next: the oldest queued job of a collector, of a pool.
CREATE INDEX queue_jobs_next ON queue_jobs(collector_id, created_at, seq)
	WHERE state = 'queued';
CREATE INDEX queue_jobs_next_pool ON queue_jobs(pool, created_at, seq)
	WHERE state = 'queued' AND collector_id = '';
-- Expiry.
CREATE INDEX queue_jobs_lease ON queue_jobs(lease_expires_at)
	WHERE state IN ('leased','running');
-- Admission: what a collector's active jobs use.
CREATE INDEX queue_jobs_active_collector ON queue_jobs(collector_id)
	WHERE state IN ('leased','running');
-- Retention: finished jobs by age.
CREATE INDEX queue_jobs_finished ON queue_jobs(finished_at) WHERE finished_at IS NOT NULL;
-- Pages of jobs, newest first: all, by state, by integration, by collector.
CREATE INDEX queue_jobs_created ON queue_jobs(created_at, seq);
CREATE INDEX queue_jobs_state_created ON queue_jobs(state, created_at, seq);
CREATE INDEX queue_jobs_integration ON queue_jobs(integration_id, created_at, seq);
CREATE INDEX queue_jobs_collector ON queue_jobs(collector_id, created_at, seq);
-- Predicted peaks per integration: the max of the last few successful runs
-- (memory in bytes, CPU in cores).
CREATE TABLE queue_integration_peaks (
	integration_id    text             PRIMARY KEY,
	recent            bigint[]         NOT NULL DEFAULT '{}',
	peak_memory_bytes bigint           NOT NULL DEFAULT 0,
	recent_cpu        double precision[] NOT NULL DEFAULT '{}',
	peak_cpu          double precision NOT NULL DEFAULT 0
);
`,
	2: `
-- Validations: a job's mode ('' collects, 'validate' checks access), its
-- priority (validations are leased first) and a validation's outcome.
ALTER TABLE queue_jobs ADD COLUMN mode text NOT NULL DEFAULT '' CHECK (mode IN ('','validate'));
ALTER TABLE queue_jobs ADD COLUMN priority integer NOT NULL DEFAULT 0;
ALTER TABLE queue_jobs ADD COLUMN outcome text NOT NULL DEFAULT '';
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
	3: `
-- Pages of jobs, newest first, read apart for the active jobs and the
-- finished ones (finished_at is set exactly for the final states). An
-- update never changes an indexed column in place (state is in every
-- partial index's predicate), so each writes an entry into every index
-- whose predicate holds: indexes over the whole history took one per
-- state change of every job; these take one per job, when it finishes,
-- and the active jobs' one entry per change while active.
DROP INDEX queue_jobs_created;
DROP INDEX queue_jobs_state_created;
DROP INDEX queue_jobs_integration;
DROP INDEX queue_jobs_collector;
CREATE INDEX queue_jobs_active_created ON queue_jobs(created_at, seq)
	WHERE state IN ('queued','leased','running');
CREATE INDEX queue_jobs_done_created ON queue_jobs(created_at, seq) WHERE finished_at IS NOT NULL;
CREATE INDEX queue_jobs_done_state ON queue_jobs(state, created_at, seq) WHERE finished_at IS NOT NULL;
CREATE INDEX queue_jobs_done_integration ON queue_jobs(integration_id, created_at, seq) WHERE finished_at IS NOT NULL;
CREATE INDEX queue_jobs_done_collector ON queue_jobs(collector_id, created_at, seq) WHERE finished_at IS NOT NULL;
`,
	4: `
-- Fewer things for each write of a job to do. Retention walks
-- queue_jobs_done_created (see deleteFinishedSQL): every finish wrote an
-- entry into queue_jobs_finished for it alone. The CHECK constraints on
-- state and mode: PostgreSQL builds a table's CHECK expressions from their
-- stored text again in every statement that writes it (parse, plan,
-- compile: 4 % of the machine's CPU under eight runners, measured); the
-- only writers are this package's statements, whose states and modes are
-- constants or come from queue.State and queue.Mode values.
DROP INDEX queue_jobs_finished;
ALTER TABLE queue_jobs DROP CONSTRAINT queue_jobs_state_check, DROP CONSTRAINT queue_jobs_mode_check;
`,
	5: `
-- Where a leased or running job goes if its lease ends without a finish,
-- once its integration moved (Reassign) while it was in flight: a
-- collector, or a pool. Both '' (no move): back to its own queue, or its
-- pool's. Set beside collector_id, never in it: the run under way keeps
-- its lease. Neither is indexed, so setting them leaves every index as it
-- was (a heap-only update when the page has room).
ALTER TABLE queue_jobs ADD COLUMN requeue_collector_id text NOT NULL DEFAULT '';
ALTER TABLE queue_jobs ADD COLUMN requeue_pool text NOT NULL DEFAULT '';
`,
}

// migrate brings the queue_ tables to the latest version, in one
// transaction under an advisory lock: a second process starting at the
// same time waits, then finds the work done.
func (q *Queue) migrate(ctx context.Context) error {
	return pgx.BeginFunc(ctx, q.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrateLockKey)); err != nil {
			return fmt.Errorf("take the migration lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS queue_migrations (
			version    integer PRIMARY KEY,
			applied_at timestamptz NOT NULL)`); err != nil {
			return fmt.Errorf("create queue_migrations: %w", err)
		}
		var have int
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM queue_migrations`).Scan(&have); err != nil {
			return err
		}
		for v := have + 1; v < len(migrations); v++ {
			if _, err := tx.Exec(ctx, migrations[v], pgx.QueryExecModeSimpleProtocol); err != nil {
				return fmt.Errorf("migration %d: %w", v, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO queue_migrations(version, applied_at) VALUES ($1, $2)`, v, q.now()); err != nil {
				return fmt.Errorf("migration %d: %w", v, err)
			}
		}
		return nil
	})
}
