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
	// 2: integrity MACs (keyed outside the database) on credentials, the
	// collectors' keys, settings and the audit chain; access tokens bound
	// to the identity key they were issued for.
	`
ALTER TABLE settings ADD COLUMN mac BLOB;
ALTER TABLE collectors ADD COLUMN keys_mac BLOB;
ALTER TABLE enrollment_tokens ADD COLUMN mac BLOB;
ALTER TABLE access_tokens ADD COLUMN key_fp TEXT NOT NULL DEFAULT '';
ALTER TABLE access_tokens ADD COLUMN mac BLOB;
ALTER TABLE audit_log ADD COLUMN mac TEXT NOT NULL DEFAULT '';
`,
	// 3: the record store (until now created by platform/jobs outside the
	// migrations, hence IF NOT EXISTS), idempotent log chunks, the counts
	// of a run (refused by the runner, dangling relationships) and pending
	// purges of deleted integrations.
	`
CREATE TABLE IF NOT EXISTS data_entities (
	integration_id TEXT NOT NULL,
	key            TEXT NOT NULL,
	type           TEXT NOT NULL,
	class          TEXT NOT NULL,
	properties     TEXT NOT NULL,
	last_job_id    TEXT NOT NULL,
	updated_at     INTEGER NOT NULL,
	deleted_at     INTEGER,
	PRIMARY KEY (integration_id, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS data_entities_type ON data_entities(integration_id, type);
CREATE TABLE IF NOT EXISTS data_relationships (
	integration_id TEXT NOT NULL,
	key            TEXT NOT NULL,
	type           TEXT NOT NULL,
	class          TEXT NOT NULL,
	from_key       TEXT NOT NULL,
	to_key         TEXT NOT NULL,
	properties     TEXT NOT NULL,
	last_job_id    TEXT NOT NULL,
	updated_at     INTEGER NOT NULL,
	deleted_at     INTEGER,
	PRIMARY KEY (integration_id, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS data_batches (
	job_id   TEXT NOT NULL,
	lease_id TEXT NOT NULL,
	seq      INTEGER NOT NULL,
	accepted INTEGER NOT NULL,
	refused  INTEGER NOT NULL,
	PRIMARY KEY (job_id, lease_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS data_job_logs (
	job_id  TEXT NOT NULL,
	chunk   INTEGER NOT NULL,
	text    TEXT NOT NULL,
	PRIMARY KEY (job_id, chunk)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS data_job_stats (
	job_id   TEXT PRIMARY KEY,
	records  INTEGER NOT NULL DEFAULT 0,
	refused  INTEGER NOT NULL DEFAULT 0,
	log_bytes INTEGER NOT NULL DEFAULT 0,
	log_dropped INTEGER NOT NULL DEFAULT 0
);
ALTER TABLE data_job_stats ADD COLUMN runner_refused INTEGER NOT NULL DEFAULT 0;
ALTER TABLE data_job_stats ADD COLUMN dangling INTEGER NOT NULL DEFAULT 0;
CREATE TABLE data_log_chunks (
	job_id   TEXT NOT NULL,
	lease_id TEXT NOT NULL,
	seq      INTEGER NOT NULL,
	PRIMARY KEY (job_id, lease_id, seq)
) WITHOUT ROWID;
CREATE TABLE data_purges (
	integration_id TEXT PRIMARY KEY,
	requested_at   INTEGER NOT NULL
);
`,
	// 4: accounts: users, browser sessions, API tokens, sign-in throttles,
	// second factors. Rows that grant access carry integrity MACs.
	`
CREATE TABLE users (
	id            TEXT PRIMARY KEY,
	login         TEXT NOT NULL UNIQUE,
	display_name  TEXT NOT NULL,
	role          TEXT NOT NULL,
	disabled      INTEGER NOT NULL DEFAULT 0,
	password_hash TEXT NOT NULL DEFAULT '',
	sso_issuer    TEXT NOT NULL DEFAULT '',
	sso_subject   TEXT NOT NULL DEFAULT '',
	created_at    INTEGER NOT NULL,
	updated_at    INTEGER NOT NULL,
	mac           BLOB NOT NULL
);
CREATE UNIQUE INDEX users_sso ON users(sso_issuer, sso_subject) WHERE sso_subject != '';
CREATE TABLE sessions (
	hash         TEXT PRIMARY KEY,
	user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	created_at   INTEGER NOT NULL,
	last_seen_at INTEGER NOT NULL,
	expires_at   INTEGER NOT NULL,
	stage        TEXT NOT NULL,
	mfa_at       INTEGER NOT NULL DEFAULT 0,
	method       TEXT NOT NULL,
	sso_subject  TEXT NOT NULL DEFAULT '',
	source       TEXT NOT NULL DEFAULT '',
	user_agent   TEXT NOT NULL DEFAULT '',
	mac          BLOB NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);
CREATE TABLE api_tokens (
	id           TEXT PRIMARY KEY,
	user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	name         TEXT NOT NULL,
	role         TEXT NOT NULL,
	hash         TEXT NOT NULL UNIQUE,
	created_at   INTEGER NOT NULL,
	expires_at   INTEGER NOT NULL,
	last_used_at INTEGER NOT NULL DEFAULT 0,
	revoked_at   INTEGER NOT NULL DEFAULT 0,
	mac          BLOB NOT NULL
);
CREATE INDEX api_tokens_user ON api_tokens(user_id);
CREATE TABLE login_throttles (
	key           TEXT PRIMARY KEY,
	failures      INTEGER NOT NULL,
	last_failure  INTEGER NOT NULL,
	blocked_until INTEGER NOT NULL
);
CREATE TABLE user_totp (
	user_id   TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
	sealed    BLOB,
	pending   BLOB,
	last_step INTEGER NOT NULL DEFAULT -1
);
CREATE TABLE user_recovery_codes (
	user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	hash    TEXT NOT NULL,
	used_at INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (user_id, hash)
) WITHOUT ROWID;
CREATE TABLE device_grants (
	code_hash   TEXT PRIMARY KEY,
	user_code   TEXT NOT NULL UNIQUE,
	created_at  INTEGER NOT NULL,
	expires_at  INTEGER NOT NULL,
	source      TEXT NOT NULL DEFAULT '',
	user_id     TEXT NOT NULL DEFAULT '',
	approved_at INTEGER NOT NULL DEFAULT 0,
	consumed_at INTEGER NOT NULL DEFAULT 0
);
`,
	// 5: passkeys (WebAuthn credentials) as second factors: a random user
	// handle per user, the credentials (MAC over ID, user, RP ID,
	// credential ID and public key), and the state of a ceremony between
	// its begin and finish, bound to the session that began it (gone with
	// it: a rotated or ended session cannot finish one).
	`
CREATE TABLE passkey_users (
	user_id TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
	handle  BLOB NOT NULL UNIQUE
);
CREATE TABLE passkeys (
	id                 TEXT PRIMARY KEY,
	user_id            TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	rp_id              TEXT NOT NULL,
	credential_id      BLOB NOT NULL UNIQUE,
	public_key         BLOB NOT NULL,
	sign_count         INTEGER NOT NULL DEFAULT 0,
	aaguid             BLOB,
	transports         TEXT NOT NULL DEFAULT '',
	backup_eligible    INTEGER NOT NULL DEFAULT 0,
	backup_state       INTEGER NOT NULL DEFAULT 0,
	user_verified      INTEGER NOT NULL DEFAULT 0,
	attestation_type   TEXT NOT NULL DEFAULT '',
	attestation_format TEXT NOT NULL DEFAULT '',
	attachment         TEXT NOT NULL DEFAULT '',
	name               TEXT NOT NULL,
	created_at         INTEGER NOT NULL,
	last_used_at       INTEGER NOT NULL DEFAULT 0,
	mac                BLOB NOT NULL
);
CREATE INDEX passkeys_user ON passkeys(user_id);
CREATE TABLE passkey_ceremonies (
	session_hash TEXT NOT NULL REFERENCES sessions(hash) ON DELETE CASCADE,
	kind         TEXT NOT NULL,
	user_id      TEXT NOT NULL,
	data         BLOB NOT NULL,
	expires_at   INTEGER NOT NULL,
	mac          BLOB NOT NULL,
	PRIMARY KEY (session_hash, kind)
) WITHOUT ROWID;
CREATE INDEX passkey_ceremonies_expiry ON passkey_ceremonies(expires_at);
`,
	// 6: single sign-on: the sign-in flows already finished (a hash of
	// their state), each refused a second time until it expires. The
	// settings live in a settings row.
	`
CREATE TABLE sso_used_flows (
	hash       TEXT PRIMARY KEY,
	expires_at INTEGER NOT NULL
) WITHOUT ROWID;
`,
	// 7: the console's lists and charts: collector names, the audit log by
	// actor, action and target, both ends of relationships, and 5-minute
	// heartbeat rollups for 24-hour charts.
	`
CREATE INDEX collectors_name ON collectors(name, id);
CREATE INDEX integrations_name_collector ON integrations(collector_id, name);
CREATE INDEX audit_log_actor ON audit_log(actor, seq);
CREATE INDEX audit_log_action ON audit_log(action, seq);
CREATE INDEX audit_log_target ON audit_log(target, seq);
CREATE INDEX audit_log_time ON audit_log(time);
CREATE INDEX data_relationships_from ON data_relationships(integration_id, from_key);
CREATE INDEX data_relationships_to ON data_relationships(integration_id, to_key);
CREATE TABLE heartbeat_rollups (
	collector_id TEXT NOT NULL REFERENCES collectors(id) ON DELETE CASCADE,
	bucket       INTEGER NOT NULL,
	beats        INTEGER NOT NULL,
	mem_total    INTEGER NOT NULL,
	mem_free_min INTEGER NOT NULL,
	cpus         INTEGER NOT NULL,
	running_max  INTEGER NOT NULL,
	PRIMARY KEY (collector_id, bucket)
) WITHOUT ROWID;
`,
	// 8: the config schema an integration's image declares (the console's
	// form; configs are validated against it when saved).
	`
ALTER TABLE integrations ADD COLUMN config_schema TEXT NOT NULL DEFAULT '';
`,
	// 9: an integration may target a pool instead of one collector.
	`
ALTER TABLE integrations ADD COLUMN pool TEXT NOT NULL DEFAULT '';
CREATE INDEX collectors_pool ON collectors(pool, id) WHERE pool != '';
`,
	// 10: the image an admin asked a collector to run (upgrades).
	`
ALTER TABLE collectors ADD COLUMN desired_image TEXT NOT NULL DEFAULT '';
ALTER TABLE collectors ADD COLUMN desired_version TEXT NOT NULL DEFAULT '';
`,
	// 11: the identity key a collector's last key rotation replaced,
	// accepted until valid_until while successor is its key.
	`
CREATE TABLE collector_previous_keys (
	collector_id TEXT PRIMARY KEY REFERENCES collectors(id) ON DELETE CASCADE,
	identity_key BLOB NOT NULL,
	successor    BLOB NOT NULL,
	valid_until  INTEGER NOT NULL,
	mac          BLOB NOT NULL
) WITHOUT ROWID;
`,
	// 12: the attempt (lease) a job's record counts are of: a new
	// attempt starts them over ('': rows from before, counted on).
	`
ALTER TABLE data_job_stats ADD COLUMN lease_id TEXT NOT NULL DEFAULT '';
`,
	// 13: records in rowid tables. In WITHOUT ROWID tables keyed by
	// (integration, key) each row (the record's JSON with it, 400–600
	// bytes for a directory's) sat in a B-tree ordered by keys that
	// directories make random (GUIDs): every batch of a large sync
	// dirtied a page of it per record, and split pages all over it. Rows
	// now append in rowid order; the B-trees ordered by key hold the key
	// and a rowid (BenchmarkIngestDirectory at 100,000 users: 49 → 29 µs a
	// record in a first sync, 59 → 23 in the next). The relationships'
	// from/to indexes no longer carry the key: a page listed by from or
	// to sorts that entity's relationships (a few, or a large group's
	// members) instead of every sync writing ~100 bytes more per index
	// entry (23 → 41 µs a record in the next sync, measured).
	`
CREATE TABLE data_entities_13 (
	id             INTEGER PRIMARY KEY,
	integration_id TEXT NOT NULL,
	key            TEXT NOT NULL,
	type           TEXT NOT NULL,
	class          TEXT NOT NULL,
	properties     TEXT NOT NULL,
	last_job_id    TEXT NOT NULL,
	updated_at     INTEGER NOT NULL,
	deleted_at     INTEGER
);
INSERT INTO data_entities_13(integration_id, key, type, class, properties, last_job_id, updated_at, deleted_at)
	SELECT integration_id, key, type, class, properties, last_job_id, updated_at, deleted_at FROM data_entities;
DROP TABLE data_entities;
ALTER TABLE data_entities_13 RENAME TO data_entities;
CREATE UNIQUE INDEX data_entities_key ON data_entities(integration_id, key);
CREATE INDEX data_entities_type ON data_entities(integration_id, type);
CREATE TABLE data_relationships_13 (
	id             INTEGER PRIMARY KEY,
	integration_id TEXT NOT NULL,
	key            TEXT NOT NULL,
	type           TEXT NOT NULL,
	class          TEXT NOT NULL,
	from_key       TEXT NOT NULL,
	to_key         TEXT NOT NULL,
	properties     TEXT NOT NULL,
	last_job_id    TEXT NOT NULL,
	updated_at     INTEGER NOT NULL,
	deleted_at     INTEGER
);
INSERT INTO data_relationships_13(integration_id, key, type, class, from_key, to_key, properties, last_job_id, updated_at, deleted_at)
	SELECT integration_id, key, type, class, from_key, to_key, properties, last_job_id, updated_at, deleted_at FROM data_relationships;
DROP TABLE data_relationships;
ALTER TABLE data_relationships_13 RENAME TO data_relationships;
CREATE UNIQUE INDEX data_relationships_key ON data_relationships(integration_id, key);
CREATE INDEX data_relationships_from ON data_relationships(integration_id, from_key);
CREATE INDEX data_relationships_to ON data_relationships(integration_id, to_key);
`,
	// 14: pool memberships carry an integrity MAC: a pool's members are
	// sealed its jobs' secrets. The rows written before get theirs once,
	// when adoptIntegrity finds the integrity setting at "1".
	`
ALTER TABLE collectors ADD COLUMN pool_mac BLOB;
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

// Migrations returns how many migrations there are (the schema version
// of a store opened by this code).
func Migrations() []string { return append([]string(nil), migrations...) }
