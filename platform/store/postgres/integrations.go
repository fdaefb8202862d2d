package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/collectorhq/collector/platform/store"
	"github.com/collectorhq/collector/queue"
	qpg "github.com/collectorhq/collector/queue/postgres"
)

const integrationCols = `id, name, image, config, secret_fields, interval_sec, coalesce(collector_id, ''), network, created_at, updated_at, config_schema, pool`

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

// nullable is NULL for "" (collector_id references collectors).
func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// CreateIntegration inserts in; its collector, if any, must exist (and is
// kept from being deleted until the insert commits).
func (s *Store) CreateIntegration(ctx context.Context, in store.Integration, ev store.Event) error {
	fields, err := json.Marshal(orEmpty(in.SecretFields))
	if err != nil {
		return fmt.Errorf("encode secret fields: %w", err)
	}
	return s.tx(ctx, func(tx pgx.Tx) error {
		if in.CollectorID != "" {
			if err := collectorExists(ctx, tx, in.CollectorID); err != nil {
				return err
			}
		}
		if err := validTarget(in); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO integrations(id, name, image, config, secret_fields, interval_sec, collector_id, network, created_at, updated_at, config_schema, pool)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`, in.ID, in.Name, in.Image, in.SealedConfig, string(fields),
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
	in, err := scanIntegration(s.pool.QueryRow(ctx, `SELECT `+integrationCols+` FROM integrations WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return in, fmt.Errorf("integration %s: %w", id, store.ErrNotFound)
	}
	return in, err
}

// Integrations returns every integration by name.
func (s *Store) Integrations(ctx context.Context) ([]store.Integration, error) {
	return queryAll(ctx, s.pool, scanIntegration, `SELECT `+integrationCols+` FROM integrations ORDER BY name`)
}

// UpdateIntegration replaces every field of in but ID, CreatedAt and
// CollectorID. The row is locked while its target is compared: an
// assignment committing on another replica in between would otherwise be
// undone by this update.
func (s *Store) UpdateIntegration(ctx context.Context, in store.Integration, ev store.Event) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		var cur, pool string
		err := tx.QueryRow(ctx, `SELECT coalesce(collector_id, ''), pool FROM integrations WHERE id = $1 FOR UPDATE`, in.ID).Scan(&cur, &pool)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("integration %s: %w", in.ID, store.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("look up integration %s: %w", in.ID, err)
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
	err := s.qtx(ctx, func(qt *qpg.Tx) error {
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
func (s *Store) writeIntegration(ctx context.Context, tx pgx.Tx, in store.Integration, ev store.Event) error {
	fields, err := json.Marshal(orEmpty(in.SecretFields))
	if err != nil {
		return fmt.Errorf("encode secret fields: %w", err)
	}
	if err := validTarget(in); err != nil {
		return err
	}
	if in.CollectorID != "" {
		if err := collectorExists(ctx, tx, in.CollectorID); err != nil {
			return err
		}
	}
	tag, err := tx.Exec(ctx, `UPDATE integrations SET name = $1, image = $2, config = $3, secret_fields = $4,
		interval_sec = $5, collector_id = $6, network = $7, updated_at = $8, config_schema = $9, pool = $10 WHERE id = $11`,
		in.Name, in.Image, in.SealedConfig, string(fields), int64(in.Interval/time.Second),
		nullable(in.CollectorID), in.Network, nanos(in.UpdatedAt), string(in.ConfigSchema), in.Pool, in.ID)
	if isUnique(err) {
		return fmt.Errorf("an integration named %q already exists: %w", in.Name, store.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("update integration: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("integration %s: %w", in.ID, store.ErrNotFound)
	}
	return s.appendAudit(ctx, tx, ev)
}

// DeleteIntegration deletes one integration and cancels its active jobs, in
// one transaction; with purge, its data, jobs and job logs are queued for
// deletion (Records.Purge) in that same transaction.
func (s *Store) DeleteIntegration(ctx context.Context, id string, purge bool, ev store.Event) (int, error) {
	canceled := 0
	err := s.qtx(ctx, func(qt *qpg.Tx) error {
		tx := qt.SQL()
		tag, err := tx.Exec(ctx, `DELETE FROM integrations WHERE id = $1`, id)
		if err != nil {
			return fmt.Errorf("delete integration: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("integration %s: %w", id, store.ErrNotFound)
		}
		if canceled, err = qt.CancelActive(ctx, id, "canceled: its integration was deleted"); err != nil {
			return err
		}
		if purge {
			if _, err := tx.Exec(ctx, `INSERT INTO data_purges(integration_id, requested_at) VALUES ($1, $2)
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
	err := s.qtx(ctx, func(qt *qpg.Tx) error {
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
	err := s.qtx(ctx, func(qt *qpg.Tx) error {
		var err error
		if job, err = qt.Cancel(ctx, jobID, ""); err != nil {
			return err
		}
		return s.appendAudit(ctx, qt.SQL(), ev(job))
	})
	return job, err
}
