package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// migrations are applied in order, each once, recorded in schema_migrations.
// Never edit one that has shipped: append a new one.
var migrations = []string{
	// 1: initial schema. Times are Unix nanoseconds; 0 means "not yet".
	`
CREATE TABLE settings (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
);
CREATE TABLE collectors (
	id           TEXT PRIMARY KEY,
	name         TEXT NOT NULL,
	pool         TEXT NOT NULL DEFAULT '',
	created_at   INTEGER NOT NULL,
	enrolled_at  INTEGER NOT NULL DEFAULT 0,
	identity_key BLOB,
	hpke_key     BLOB,
	last_seen_at INTEGER NOT NULL DEFAULT 0,
	last_beat    TEXT
);
CREATE TABLE enrollment_tokens (
	hash         TEXT PRIMARY KEY,
	collector_id TEXT NOT NULL REFERENCES collectors(id) ON DELETE CASCADE,
	created_at   INTEGER NOT NULL,
	expires_at   INTEGER NOT NULL,
	used_at      INTEGER NOT NULL DEFAULT 0,
	revoked_at   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX enrollment_tokens_collector ON enrollment_tokens(collector_id);
CREATE TABLE access_tokens (
	hash         TEXT PRIMARY KEY,
	collector_id TEXT NOT NULL REFERENCES collectors(id) ON DELETE CASCADE,
	expires_at   INTEGER NOT NULL
);
CREATE INDEX access_tokens_collector ON access_tokens(collector_id);
CREATE TABLE used_jtis (
	collector_id TEXT NOT NULL,
	jti          TEXT NOT NULL,
	expires_at   INTEGER NOT NULL,
	PRIMARY KEY (collector_id, jti)
);
CREATE TABLE heartbeats (
	id           INTEGER PRIMARY KEY AUTOINCREMENT,
	collector_id TEXT NOT NULL REFERENCES collectors(id) ON DELETE CASCADE,
	at           INTEGER NOT NULL,
	data         TEXT NOT NULL
);
CREATE INDEX heartbeats_collector ON heartbeats(collector_id, id);
CREATE TABLE integrations (
	id            TEXT PRIMARY KEY,
	name          TEXT NOT NULL UNIQUE,
	image         TEXT NOT NULL,
	config        BLOB NOT NULL,
	secret_fields TEXT NOT NULL,
	interval_sec  INTEGER NOT NULL,
	collector_id  TEXT REFERENCES collectors(id),
	network       TEXT NOT NULL DEFAULT '',
	created_at    INTEGER NOT NULL,
	updated_at    INTEGER NOT NULL
);
CREATE INDEX integrations_collector ON integrations(collector_id);
CREATE TABLE audit_log (
	seq       INTEGER PRIMARY KEY,
	time      INTEGER NOT NULL,
	actor     TEXT NOT NULL,
	action    TEXT NOT NULL,
	target    TEXT NOT NULL,
	details   TEXT NOT NULL,
	prev_hash TEXT NOT NULL,
	hash      TEXT NOT NULL
);
`,
}

func (s *Store) migrate(ctx context.Context) error {
	if _, err := s.w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	for i, m := range migrations {
		version := i + 1
		err := s.tx(ctx, func(tx *sql.Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = ?`, version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if _, err := tx.ExecContext(ctx, m); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations(version, applied_at) VALUES (?, ?)`, version, time.Now().UnixNano())
			return err
		})
		if err != nil {
			return fmt.Errorf("apply migration %d: %w", version, err)
		}
	}
	return nil
}

// SchemaVersion returns the highest applied migration.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v sql.NullInt64
	err := s.r.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&v)
	return int(v.Int64), err
}
