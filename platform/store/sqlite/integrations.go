package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/collectorhq/collector/platform/store"
	"github.com/collectorhq/collector/queue"
	qsqlite "github.com/collectorhq/collector/queue/sqlite"
)

const integrationCols = `id, name, image, config, secret_fields, interval_sec, COALESCE(collector_id, ''), network, created_at, updated_at, config_schema, pool`

func scanIntegration(r scanner) (store.Integration, error) {
	var in store.Integration
	var fields, schema string
	var interval, created, updated int64
	err := r.Scan(&in.ID, &in.Name, &in.Image, &in.SealedConfig, &fields, &interval, &in.CollectorID, &in.Network, &created, &updated, &schema, &in.Pool)
	if err != nil {
		return in, err
	}
	if err := json.Unmarshal([]byte(fields), &in.SecretFields); err != nil {
		return in, fmt.Errorf("decode secret fields of %s: %w", in.ID, err)
	}
	in.Interval = time.Duration(interval) * time.Second
	in.CreatedAt, in.UpdatedAt = fromNanos(created), fromNanos(updated)
	if schema != "" {
		in.ConfigSchema = []byte(schema)
	}
	return in, nil
}

// validTarget: an integration targets one collector or one pool, not both.
func validTarget(in store.Integration) error {
	if in.CollectorID != "" && in.Pool != "" {
		return fmt.Errorf("integration %s targets collector %s and pool %q: one or the other: %w", in.ID, in.CollectorID, in.Pool, store.ErrConflict)
	}
	return nil
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// CreateIntegration inserts in; its collector, if any, must exist.
func (s *Store) CreateIntegration(ctx context.Context, in store.Integration, ev store.Event) error {
	fields, err := json.Marshal(orEmpty(in.SecretFields))
	if err != nil {
		return err
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		if in.CollectorID != "" {
			if err := collectorExists(ctx, tx, in.CollectorID); err != nil {
				return err
			}
		}
		if err := validTarget(in); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO integrations(id, name, image, config, secret_fields, interval_sec, collector_id, network, created_at, updated_at, config_schema, pool)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, in.ID, in.Name, in.Image, in.SealedConfig, string(fields),
			int64(in.Interval/time.Second), nullable(in.CollectorID), in.Network, nanos(in.CreatedAt), nanos(in.UpdatedAt), string(in.ConfigSchema), in.Pool)
		if isUnique(err) {
			return fmt.Errorf("an integration named %q already exists: %w", in.Name, store.ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("insert integration: %w", err)
		}
		return s.appendAudit(ctx, tx, ev)
	})
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Integration returns one integration, or store.ErrNotFound.
func (s *Store) Integration(ctx context.Context, id string) (store.Integration, error) {
	in, err := scanIntegration(s.r.QueryRowContext(ctx, `SELECT `+integrationCols+` FROM integrations WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return in, fmt.Errorf("integration %s: %w", id, store.ErrNotFound)
	}
	return in, err
}

// Integrations returns every integration by name.
func (s *Store) Integrations(ctx context.Context) ([]store.Integration, error) {
	return queryAll(ctx, s.r, scanIntegration, `SELECT `+integrationCols+` FROM integrations ORDER BY name`)
}

// UpdateIntegration replaces every field of in but ID, CreatedAt and
// CollectorID.
func (s *Store) UpdateIntegration(ctx context.Context, in store.Integration, ev store.Event) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		var cur, pool string
		err := tx.QueryRowContext(ctx, `SELECT COALESCE(collector_id, ''), pool FROM integrations WHERE id = ?`, in.ID).Scan(&cur, &pool)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("integration %s: %w", in.ID, store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if cur != in.CollectorID || pool != in.Pool {
			return fmt.Errorf("update integration %s: the collector or pool changes only through AssignIntegration", in.ID)
		}
		return s.writeIntegration(ctx, tx, in, ev)
	})
}

// AssignIntegration replaces every field of in but ID and CreatedAt and
// moves the integration's queued job to in.CollectorID or in.Pool, in one
// transaction: a job queued before the move can never be sealed to the old
// collector with the config as it is after the move. A job leased or
// running keeps its lease, and goes to the new target if the lease ends
// without a finish (queue.Queue's Reassign).
func (s *Store) AssignIntegration(ctx context.Context, in store.Integration, ev store.Event) (int, error) {
	moved := 0
	err := s.q.Update(ctx, func(qt *qsqlite.Tx) error {
		if err := s.writeIntegration(ctx, qt.SQL(), in, ev); err != nil {
			return err
		}
		var err error
		if in.CollectorID == "" && in.Pool == "" {
			// Unassigned: nothing may run it, so its queued job goes.
			moved, err = qt.CancelActive(ctx, in.ID, "canceled: the integration was unassigned")
			return err
		}
		moved, err = qt.Reassign(ctx, in.ID, queue.Target{CollectorID: in.CollectorID, Pool: in.Pool})
		return err
	})
	return moved, err
}

// writeIntegration updates in's row and audits ev, inside tx.
func (s *Store) writeIntegration(ctx context.Context, tx *sql.Tx, in store.Integration, ev store.Event) error {
	fields, err := json.Marshal(orEmpty(in.SecretFields))
	if err != nil {
		return err
	}
	if err := validTarget(in); err != nil {
		return err
	}
	if in.CollectorID != "" {
		if err := collectorExists(ctx, tx, in.CollectorID); err != nil {
			return err
		}
	}
	res, err := tx.ExecContext(ctx, `UPDATE integrations SET name = ?, image = ?, config = ?, secret_fields = ?,
		interval_sec = ?, collector_id = ?, network = ?, updated_at = ?, config_schema = ?, pool = ? WHERE id = ?`,
		in.Name, in.Image, in.SealedConfig, string(fields), int64(in.Interval/time.Second),
		nullable(in.CollectorID), in.Network, nanos(in.UpdatedAt), string(in.ConfigSchema), in.Pool, in.ID)
	if isUnique(err) {
		return fmt.Errorf("an integration named %q already exists: %w", in.Name, store.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("update integration: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("integration %s: %w", in.ID, store.ErrNotFound)
	}
	return s.appendAudit(ctx, tx, ev)
}

// DeleteIntegration deletes one integration and cancels its active jobs, in
// one transaction; with purge, its data, jobs and job logs are queued for
// deletion (Records.Purge) in that same transaction.
func (s *Store) DeleteIntegration(ctx context.Context, id string, purge bool, ev store.Event) (int, error) {
	canceled := 0
	err := s.q.Update(ctx, func(qt *qsqlite.Tx) error {
		tx := qt.SQL()
		res, err := tx.ExecContext(ctx, `DELETE FROM integrations WHERE id = ?`, id)
		if err != nil {
			return fmt.Errorf("delete integration: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("integration %s: %w", id, store.ErrNotFound)
		}
		if canceled, err = qt.CancelActive(ctx, id, "canceled: its integration was deleted"); err != nil {
			return err
		}
		if purge {
			if _, err := tx.ExecContext(ctx, `INSERT INTO data_purges(integration_id, requested_at) VALUES (?, ?)
				ON CONFLICT DO NOTHING`, id, nanos(qt.Now())); err != nil {
				return fmt.Errorf("schedule purge: %w", err)
			}
		}
		if canceled > 0 {
			ev.Details = withDetail(ev.Details, "jobs_canceled", canceled)
		}
		return s.appendAudit(ctx, tx, ev)
	})
	return canceled, err
}

// EnqueueJob adds a job as an administrative act, audited in the same
// transaction when a job is added.
func (s *Store) EnqueueJob(ctx context.Context, req queue.EnqueueRequest, ev func(*queue.Job) store.Event) (*queue.Job, bool, error) {
	var job *queue.Job
	var existed bool
	err := s.q.Update(ctx, func(qt *qsqlite.Tx) error {
		var err error
		if job, existed, err = qt.Enqueue(ctx, req); err != nil || existed {
			return err
		}
		return s.appendAudit(ctx, qt.SQL(), ev(job))
	})
	return job, existed, err
}

// CancelJob cancels an active job and audits it, in one transaction.
func (s *Store) CancelJob(ctx context.Context, jobID string, ev func(*queue.Job) store.Event) (*queue.Job, error) {
	var job *queue.Job
	err := s.q.Update(ctx, func(qt *qsqlite.Tx) error {
		var err error
		if job, err = qt.Cancel(ctx, jobID, ""); err != nil {
			return err
		}
		return s.appendAudit(ctx, qt.SQL(), ev(job))
	})
	return job, err
}
