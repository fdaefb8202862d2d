package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/collectorhq/collector/platform/store"
)

const integrationCols = `id, name, image, config, secret_fields, interval_sec, COALESCE(collector_id, ''), network, created_at, updated_at`

func scanIntegration(r scanner) (store.Integration, error) {
	var in store.Integration
	var fields string
	var interval, created, updated int64
	err := r.Scan(&in.ID, &in.Name, &in.Image, &in.SealedConfig, &fields, &interval, &in.CollectorID, &in.Network, &created, &updated)
	if err != nil {
		return in, err
	}
	if err := json.Unmarshal([]byte(fields), &in.SecretFields); err != nil {
		return in, fmt.Errorf("decode secret fields of %s: %w", in.ID, err)
	}
	in.Interval = time.Duration(interval) * time.Second
	in.CreatedAt, in.UpdatedAt = fromNanos(created), fromNanos(updated)
	return in, nil
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
		_, err := tx.ExecContext(ctx, `INSERT INTO integrations(id, name, image, config, secret_fields, interval_sec, collector_id, network, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, in.ID, in.Name, in.Image, in.SealedConfig, string(fields),
			int64(in.Interval/time.Second), nullable(in.CollectorID), in.Network, nanos(in.CreatedAt), nanos(in.UpdatedAt))
		if isUnique(err) {
			return fmt.Errorf("an integration named %q already exists: %w", in.Name, store.ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("insert integration: %w", err)
		}
		return appendAudit(ctx, tx, ev)
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

// UpdateIntegration replaces every field of in but ID and CreatedAt.
func (s *Store) UpdateIntegration(ctx context.Context, in store.Integration, ev store.Event) error {
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
		res, err := tx.ExecContext(ctx, `UPDATE integrations SET name = ?, image = ?, config = ?, secret_fields = ?,
			interval_sec = ?, collector_id = ?, network = ?, updated_at = ? WHERE id = ?`,
			in.Name, in.Image, in.SealedConfig, string(fields), int64(in.Interval/time.Second),
			nullable(in.CollectorID), in.Network, nanos(in.UpdatedAt), in.ID)
		if isUnique(err) {
			return fmt.Errorf("an integration named %q already exists: %w", in.Name, store.ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("update integration: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("integration %s: %w", in.ID, store.ErrNotFound)
		}
		return appendAudit(ctx, tx, ev)
	})
}

// DeleteIntegration deletes one integration.
func (s *Store) DeleteIntegration(ctx context.Context, id string, ev store.Event) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM integrations WHERE id = ?`, id)
		if err != nil {
			return fmt.Errorf("delete integration: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("integration %s: %w", id, store.ErrNotFound)
		}
		return appendAudit(ctx, tx, ev)
	})
}
