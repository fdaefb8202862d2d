package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/collectorhq/collector/platform/store"
)

// migrateLockKey is the advisory lock that serializes the store's
// migrations between replicas starting together (one 64-bit key, unlike
// the queue's).
const migrateLockKey = 0x636f6c6c73746f72 // "collstor"

// migrations are applied in order, each once, all in one transaction.
// Append only: never edit a migration that has shipped. Version 1 is the
// schema of SQLite's ten migrations, in PostgreSQL's types: times are Unix
// nanoseconds (0: not yet), byte strings bytea. The columns pages are
// ordered by compare bytes (COLLATE "C"), as SQLite does, whatever the
// database's locale.
var migrations = []string{
	1: `
CREATE TABLE settings (
	key   text PRIMARY KEY,
	value text NOT NULL,
	mac   bytea
);
CREATE TABLE collectors (
	id              text COLLATE "C" PRIMARY KEY,
	name            text COLLATE "C" NOT NULL,
	pool            text NOT NULL DEFAULT '',
	created_at      bigint NOT NULL,
	enrolled_at     bigint NOT NULL DEFAULT 0,
	identity_key    bytea,
	hpke_key        bytea,
	keys_mac        bytea,
	last_seen_at    bigint NOT NULL DEFAULT 0,
	last_beat       text,
	desired_image   text NOT NULL DEFAULT '',
	desired_version text NOT NULL DEFAULT ''
);
CREATE INDEX collectors_name ON collectors(name, id);
CREATE INDEX collectors_pool ON collectors(pool, id) WHERE pool <> '';
CREATE TABLE enrollment_tokens (
	hash         text PRIMARY KEY,
	collector_id text NOT NULL REFERENCES collectors(id) ON DELETE CASCADE,
	created_at   bigint NOT NULL,
	expires_at   bigint NOT NULL,
	used_at      bigint NOT NULL DEFAULT 0,
	revoked_at   bigint NOT NULL DEFAULT 0,
	mac          bytea
);
CREATE INDEX enrollment_tokens_collector ON enrollment_tokens(collector_id);
CREATE TABLE access_tokens (
	hash         text PRIMARY KEY,
	collector_id text NOT NULL REFERENCES collectors(id) ON DELETE CASCADE,
	expires_at   bigint NOT NULL,
	key_fp       text NOT NULL DEFAULT '',
	mac          bytea
);
CREATE INDEX access_tokens_collector ON access_tokens(collector_id);
CREATE INDEX access_tokens_expiry ON access_tokens(expires_at);
CREATE TABLE used_jtis (
	collector_id text NOT NULL,
	jti          text NOT NULL,
	expires_at   bigint NOT NULL,
	PRIMARY KEY (collector_id, jti)
);
CREATE INDEX used_jtis_expiry ON used_jtis(expires_at);
CREATE TABLE heartbeats (
	id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	collector_id text NOT NULL REFERENCES collectors(id) ON DELETE CASCADE,
	at           bigint NOT NULL,
	data         text NOT NULL
);
CREATE INDEX heartbeats_collector ON heartbeats(collector_id, id);
CREATE TABLE heartbeat_rollups (
	collector_id text NOT NULL REFERENCES collectors(id) ON DELETE CASCADE,
	bucket       bigint NOT NULL,
	beats        bigint NOT NULL,
	mem_total    bigint NOT NULL,
	mem_free_min bigint NOT NULL,
	cpus         bigint NOT NULL,
	running_max  bigint NOT NULL,
	PRIMARY KEY (collector_id, bucket)
);
CREATE TABLE integrations (
	id            text COLLATE "C" PRIMARY KEY,
	name          text COLLATE "C" NOT NULL UNIQUE,
	image         text NOT NULL,
	config        bytea NOT NULL,
	secret_fields text NOT NULL,
	interval_sec  bigint NOT NULL,
	collector_id  text REFERENCES collectors(id),
	pool          text NOT NULL DEFAULT '',
	network       text NOT NULL DEFAULT '',
	config_schema text NOT NULL DEFAULT '',
	created_at    bigint NOT NULL,
	updated_at    bigint NOT NULL
);
CREATE INDEX integrations_collector ON integrations(collector_id);
CREATE INDEX integrations_name_collector ON integrations(collector_id, name);
CREATE TABLE audit_log (
	seq       bigint PRIMARY KEY,
	time      bigint NOT NULL,
	actor     text NOT NULL,
	action    text NOT NULL,
	target    text NOT NULL,
	details   text NOT NULL,
	prev_hash text NOT NULL,
	hash      text NOT NULL,
	mac       text NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_actor ON audit_log(actor, seq);
CREATE INDEX audit_log_action ON audit_log(action, seq);
CREATE INDEX audit_log_target ON audit_log(target, seq);
CREATE INDEX audit_log_time ON audit_log(time);

-- The record keys collate "C" (byte order, as SQLite's BINARY), whatever
-- the database's locale: List's pages and key-prefix ranges run on the
-- primary key. Log chunks are bytea: logs are stored as sent, any bytes.
CREATE TABLE data_entities (
	integration_id text NOT NULL,
	key            text COLLATE "C" NOT NULL,
	type           text NOT NULL,
	class          text NOT NULL,
	properties     text NOT NULL,
	last_job_id    text NOT NULL,
	updated_at     bigint NOT NULL,
	deleted_at     bigint,
	PRIMARY KEY (integration_id, key)
);
CREATE INDEX data_entities_type ON data_entities(integration_id, type);
CREATE TABLE data_relationships (
	integration_id text NOT NULL,
	key            text COLLATE "C" NOT NULL,
	type           text NOT NULL,
	class          text NOT NULL,
	from_key       text COLLATE "C" NOT NULL,
	to_key         text COLLATE "C" NOT NULL,
	properties     text NOT NULL,
	last_job_id    text NOT NULL,
	updated_at     bigint NOT NULL,
	deleted_at     bigint,
	PRIMARY KEY (integration_id, key)
);
CREATE INDEX data_relationships_from ON data_relationships(integration_id, from_key);
CREATE INDEX data_relationships_to ON data_relationships(integration_id, to_key);
CREATE TABLE data_batches (
	job_id   text NOT NULL,
	lease_id text NOT NULL,
	seq      bigint NOT NULL,
	accepted bigint NOT NULL,
	refused  bigint NOT NULL,
	PRIMARY KEY (job_id, lease_id, seq)
);
CREATE TABLE data_job_logs (
	job_id text NOT NULL,
	chunk  bigint NOT NULL,
	text   bytea NOT NULL,
	PRIMARY KEY (job_id, chunk)
);
CREATE TABLE data_job_stats (
	job_id         text PRIMARY KEY,
	records        bigint NOT NULL DEFAULT 0,
	refused        bigint NOT NULL DEFAULT 0,
	log_bytes      bigint NOT NULL DEFAULT 0,
	log_dropped    bigint NOT NULL DEFAULT 0,
	runner_refused bigint NOT NULL DEFAULT 0,
	dangling       bigint NOT NULL DEFAULT 0
);
CREATE TABLE data_log_chunks (
	job_id   text NOT NULL,
	lease_id text NOT NULL,
	seq      bigint NOT NULL,
	PRIMARY KEY (job_id, lease_id, seq)
);
CREATE TABLE data_purges (
	integration_id text PRIMARY KEY,
	requested_at   bigint NOT NULL
);

CREATE TABLE users (
	id            text PRIMARY KEY,
	login         text NOT NULL UNIQUE,
	display_name  text NOT NULL,
	role          text NOT NULL,
	disabled      boolean NOT NULL DEFAULT false,
	password_hash text NOT NULL DEFAULT '',
	sso_issuer    text NOT NULL DEFAULT '',
	sso_subject   text NOT NULL DEFAULT '',
	created_at    bigint NOT NULL,
	updated_at    bigint NOT NULL,
	mac           bytea NOT NULL
);
CREATE UNIQUE INDEX users_sso ON users(sso_issuer, sso_subject) WHERE sso_subject <> '';
CREATE TABLE sessions (
	hash         text PRIMARY KEY,
	user_id      text NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	created_at   bigint NOT NULL,
	last_seen_at bigint NOT NULL,
	expires_at   bigint NOT NULL,
	stage        text NOT NULL,
	mfa_at       bigint NOT NULL DEFAULT 0,
	method       text NOT NULL,
	sso_subject  text NOT NULL DEFAULT '',
	source       text NOT NULL DEFAULT '',
	user_agent   text NOT NULL DEFAULT '',
	mac          bytea NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);
CREATE INDEX sessions_expiry ON sessions(expires_at);
CREATE TABLE api_tokens (
	id           text PRIMARY KEY,
	user_id      text NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	name         text NOT NULL,
	role         text NOT NULL,
	hash         text NOT NULL UNIQUE,
	created_at   bigint NOT NULL,
	expires_at   bigint NOT NULL,
	last_used_at bigint NOT NULL DEFAULT 0,
	revoked_at   bigint NOT NULL DEFAULT 0,
	mac          bytea NOT NULL
);
CREATE INDEX api_tokens_user ON api_tokens(user_id);
CREATE TABLE login_throttles (
	key           text PRIMARY KEY,
	failures      bigint NOT NULL,
	last_failure  bigint NOT NULL,
	blocked_until bigint NOT NULL
);
CREATE TABLE user_totp (
	user_id   text PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
	sealed    bytea,
	pending   bytea,
	last_step bigint NOT NULL DEFAULT -1
);
CREATE TABLE user_recovery_codes (
	user_id text NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	hash    text NOT NULL,
	used_at bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (user_id, hash)
);
CREATE TABLE device_grants (
	code_hash   text PRIMARY KEY,
	user_code   text NOT NULL UNIQUE,
	created_at  bigint NOT NULL,
	expires_at  bigint NOT NULL,
	source      text NOT NULL DEFAULT '',
	user_id     text NOT NULL DEFAULT '',
	approved_at bigint NOT NULL DEFAULT 0,
	consumed_at bigint NOT NULL DEFAULT 0
);
CREATE TABLE passkey_users (
	user_id text PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
	handle  bytea NOT NULL UNIQUE
);
CREATE TABLE passkeys (
	id                 text PRIMARY KEY,
	user_id            text NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	rp_id              text NOT NULL,
	credential_id      bytea NOT NULL UNIQUE,
	public_key         bytea NOT NULL,
	sign_count         bigint NOT NULL DEFAULT 0,
	aaguid             bytea,
	transports         text NOT NULL DEFAULT '',
	backup_eligible    boolean NOT NULL DEFAULT false,
	backup_state       boolean NOT NULL DEFAULT false,
	user_verified      boolean NOT NULL DEFAULT false,
	attestation_type   text NOT NULL DEFAULT '',
	attestation_format text NOT NULL DEFAULT '',
	attachment         text NOT NULL DEFAULT '',
	name               text NOT NULL,
	created_at         bigint NOT NULL,
	last_used_at       bigint NOT NULL DEFAULT 0,
	mac                bytea NOT NULL
);
CREATE INDEX passkeys_user ON passkeys(user_id);
CREATE TABLE passkey_ceremonies (
	session_hash text NOT NULL REFERENCES sessions(hash) ON DELETE CASCADE,
	kind         text NOT NULL,
	user_id      text NOT NULL,
	data         bytea NOT NULL,
	expires_at   bigint NOT NULL,
	mac          bytea NOT NULL,
	PRIMARY KEY (session_hash, kind)
);
CREATE INDEX passkey_ceremonies_expiry ON passkey_ceremonies(expires_at);
CREATE TABLE sso_used_flows (
	hash       text PRIMARY KEY,
	expires_at bigint NOT NULL
);
`,
	// 2: the identity key a collector's last key rotation replaced,
	// accepted until valid_until while successor is its key.
	2: `
CREATE TABLE collector_previous_keys (
	collector_id text PRIMARY KEY REFERENCES collectors(id) ON DELETE CASCADE,
	identity_key bytea NOT NULL,
	successor    bytea NOT NULL,
	valid_until  bigint NOT NULL,
	mac          bytea NOT NULL
);
`,
	// 3: the attempt (lease) a job's record counts are of: a new attempt
	// starts them over ('': rows from before, counted on).
	3: `
ALTER TABLE data_job_stats ADD COLUMN lease_id text NOT NULL DEFAULT '';
`,
	// 4: pool memberships carry an integrity MAC: a pool's members are
	// sealed its jobs' secrets. The rows written before get theirs in the
	// same transaction (adoptPools).
	poolMACsVersion: `
ALTER TABLE collectors ADD COLUMN pool_mac bytea;
`,
}

// poolMACsVersion is the migration that adds the pool memberships' MACs.
const poolMACsVersion = 4

// migrate brings the store's tables to the latest version, in one
// transaction under an advisory lock: a second replica starting at the
// same time waits, then finds the work done.
func (s *Store) migrate(ctx context.Context) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrateLockKey)); err != nil {
			return fmt.Errorf("take the migration lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS store_migrations (
			version    integer PRIMARY KEY,
			applied_at bigint NOT NULL)`); err != nil {
			return fmt.Errorf("create store_migrations: %w", err)
		}
		var have int
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM store_migrations`).Scan(&have); err != nil {
			return err
		}
		if have >= len(migrations) {
			return fmt.Errorf("the database's schema is version %d, newer than this platform's %d: run the newer platform", have, len(migrations)-1)
		}
		for v := have + 1; v < len(migrations); v++ {
			if _, err := tx.Exec(ctx, migrations[v], pgx.QueryExecModeSimpleProtocol); err != nil {
				return fmt.Errorf("migration %d: %w", v, err)
			}
			if v == poolMACsVersion {
				if err := s.adoptPools(ctx, tx); err != nil {
					return fmt.Errorf("migration %d: %w", v, err)
				}
			}
			if _, err := tx.Exec(ctx, `INSERT INTO store_migrations(version, applied_at) VALUES ($1, $2)`, v, s.now().UnixNano()); err != nil {
				return fmt.Errorf("migration %d: %w", v, err)
			}
		}
		return nil
	})
}

// LatestVersion is the schema version this code migrates to.
func LatestVersion() int { return len(migrations) - 1 }

// SchemaVersion returns the highest applied migration.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM store_migrations`).Scan(&v)
	return v, err
}

// adoptPools MACs the pool memberships written before they carried MACs,
// in the transaction of the migration that adds the column: a database
// is migrated once, so they are adopted once. PostgreSQL databases never
// had an integrity marker that could tell "not adopted yet" apart from
// "marker deleted", so the memberships so trusted are audited instead: an
// adoption made to run again by altering the schema (dropping the column
// and the store_migrations row) leaves an entry in the audit chain, which
// cannot be removed undetected.
func (s *Store) adoptPools(ctx context.Context, tx pgx.Tx) error {
	rows, err := tx.Query(ctx, `SELECT id, pool FROM collectors`)
	if err != nil {
		return fmt.Errorf("read the collectors' pools: %w", err)
	}
	all := map[string]string{}
	var id, pool string
	if _, err := pgx.ForEachRow(rows, []any{&id, &pool}, func() error {
		all[id] = pool
		return nil
	}); err != nil {
		return fmt.Errorf("read the collectors' pools: %w", err)
	}
	members := map[string]string{}
	for id, pool := range all {
		if _, err := tx.Exec(ctx, `UPDATE collectors SET pool_mac = $1 WHERE id = $2`, store.PoolMAC(s.in, id, pool), id); err != nil {
			return fmt.Errorf("add the pool MAC of collector %s: %w", id, err)
		}
		if pool != "" {
			members[id] = pool
		}
	}
	if len(members) == 0 {
		return nil
	}
	return s.appendAudit(ctx, tx, store.PoolsAdoptedEvent(s.now(), members))
}
