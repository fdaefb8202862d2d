package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/platform/store"
	qpg "github.com/collectorhq/collector/queue/postgres"
)

// Lock order. Acts on a collector lock its row first, then its tokens,
// and append the audit entry (the audit lock) last, so that replicas
// running them together wait for one another instead of deadlocking:
//   - DeleteCollector takes the row FOR UPDATE: it waits for, and blocks,
//     every other act on the collector;
//   - Enroll takes it FOR NO KEY UPDATE, IssueAccessToken FOR SHARE: a
//     token exchange and a re-enrollment never interleave;
//   - acts that only need it to exist (an integration assigned to it, a
//     new enrollment token) take it FOR KEY SHARE, which a heartbeat's
//     update does not wait for.

// CreateCollector inserts c with its first enrollment token.
func (s *Store) CreateCollector(ctx context.Context, c store.Collector, tok store.EnrollmentToken, ev store.Event) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO collectors(id, name, pool, pool_mac, created_at) VALUES ($1, $2, $3, $4, $5)`,
			c.ID, c.Name, c.Pool, store.PoolMAC(s.in, c.ID, c.Pool), nanos(c.CreatedAt))
		if isUnique(err) {
			return fmt.Errorf("collector %s: %w", c.ID, store.ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("insert collector: %w", err)
		}
		if err := s.insertToken(ctx, tx, tok); err != nil {
			return err
		}
		return s.appendAudit(ctx, tx, ev)
	})
}

func (s *Store) enrollmentTokenMAC(hash, collectorID string, expires int64) []byte {
	return s.in.Sum(store.MACEnrollmentToken, []byte(hash), []byte(collectorID), store.Int64(expires))
}

func (s *Store) insertToken(ctx context.Context, tx pgx.Tx, tok store.EnrollmentToken) error {
	exp := nanos(tok.ExpiresAt)
	_, err := tx.Exec(ctx, `INSERT INTO enrollment_tokens(hash, collector_id, created_at, expires_at, mac) VALUES ($1, $2, $3, $4, $5)`,
		tok.Hash, tok.CollectorID, nanos(tok.CreatedAt), exp, s.enrollmentTokenMAC(tok.Hash, tok.CollectorID, exp))
	if err != nil {
		return fmt.Errorf("insert enrollment token: %w", err)
	}
	return nil
}

func (s *Store) keysMAC(id string, identity, hpke []byte) []byte {
	return s.in.Sum(store.MACCollectorKeys, []byte(id), identity, hpke)
}

const collectorCols = `id, name, pool, created_at, enrolled_at, identity_key, hpke_key, last_seen_at, last_beat, keys_mac, desired_image, desired_version, pool_mac`

// degradedSQL is true for a collector whose last heartbeat reported an
// engine error or a runner that is not running (or that never beat).
const degradedSQL = `(coalesce(last_beat::json ->> 'engine_error', '') <> '' OR
	coalesce(last_beat::json ->> 'runner_state', '') NOT IN ('running', 'restarted'))`

// scanner is a row to scan: pgx.Row or pgx.CollectableRow.
type scanner interface{ Scan(...any) error }

// querier runs a query: the pool, or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// queryAll runs a query and scans every row with scan.
func queryAll[T any](ctx context.Context, db querier, scan func(scanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := db.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (T, error) { return scan(r) })
}

// scanCollector reads a collector; keys whose MAC does not verify are
// cleared and the row flagged Tampered, a pool whose MAC does not verify
// is cleared and the row flagged PoolTampered.
func (s *Store) scanCollector(r scanner) (store.Collector, error) {
	var c store.Collector
	var created, enrolled, seen int64
	var beat *string
	var mac, poolMAC []byte
	if err := r.Scan(&c.ID, &c.Name, &c.Pool, &created, &enrolled, &c.IdentityKey, &c.HPKEKey, &seen, &beat, &mac, &c.DesiredImage, &c.DesiredVersion,
		&poolMAC); err != nil {
		return c, err
	}
	if (len(c.IdentityKey) > 0 || len(c.HPKEKey) > 0 || len(mac) > 0) && !s.in.Verify(mac, store.MACCollectorKeys, []byte(c.ID), c.IdentityKey, c.HPKEKey) {
		c.IdentityKey, c.HPKEKey, c.Tampered = nil, nil, true
	}
	store.CheckPool(s.in, &c, poolMAC)
	c.CreatedAt, c.EnrolledAt, c.LastSeenAt = fromNanos(created), fromNanos(enrolled), fromNanos(seen)
	if beat != nil {
		var hb store.Heartbeat
		if err := json.Unmarshal([]byte(*beat), &hb); err == nil {
			c.LastBeat = &hb
		}
	}
	return c, nil
}

// Collector returns one collector, store.ErrNotFound, or store.ErrIntegrity
// when its keys were not written by the platform.
func (s *Store) Collector(ctx context.Context, id string) (store.Collector, error) {
	c, err := s.scanCollector(s.pool.QueryRow(ctx, `SELECT `+collectorCols+` FROM collectors WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return c, fmt.Errorf("collector %s: %w", id, store.ErrNotFound)
	}
	if err == nil && c.Tampered {
		return c, fmt.Errorf("keys of collector %s: %w", id, store.ErrIntegrity)
	}
	return c, err
}

// Collectors returns every collector, oldest first.
func (s *Store) Collectors(ctx context.Context) ([]store.Collector, error) {
	return queryAll(ctx, s.pool, s.scanCollector, `SELECT `+collectorCols+` FROM collectors ORDER BY created_at, id`)
}

// CountCollectors counts collectors by status.
func (s *Store) CountCollectors(ctx context.Context, activeSince time.Time) (store.StatusCounts, error) {
	var c store.StatusCounts
	err := s.pool.QueryRow(ctx, `SELECT
		count(*) FILTER (WHERE enrolled_at = 0),
		count(*) FILTER (WHERE enrolled_at <> 0 AND last_seen_at >= $1 AND NOT degraded),
		count(*) FILTER (WHERE enrolled_at <> 0 AND last_seen_at >= $1 AND degraded),
		count(*) FILTER (WHERE enrolled_at <> 0 AND last_seen_at < $1)
		FROM (SELECT enrolled_at, last_seen_at, `+degradedSQL+` AS degraded FROM collectors) AS c`,
		activeSince.UnixNano()).Scan(&c.Pending, &c.Active, &c.Degraded, &c.Offline)
	return c, err
}

// DeleteCollector deletes a collector with no integrations; its tokens, keys
// and heartbeats go with it (ON DELETE CASCADE), and the queue ends the
// jobs it holds (Tx.CollectorGone: queued ones canceled, in-flight ones
// moved where their integration is or canceled), in the same transaction.
// The row is locked first: an integration being assigned to it on another
// replica either commits before (and is refused here) or waits and then
// finds it gone.
func (s *Store) DeleteCollector(ctx context.Context, id string, ev store.Event) (int, error) {
	var canceled int
	err := s.qtx(ctx, func(qt *qpg.Tx) error {
		tx := qt.SQL()
		if err := lockCollector(ctx, tx, id, "FOR UPDATE"); err != nil {
			return err
		}
		refs, err := assigned(ctx, tx, id)
		if err != nil {
			return err
		}
		if len(refs) > 0 {
			return &store.AssignedError{CollectorID: id, Integrations: refs}
		}
		if _, err := tx.Exec(ctx, `DELETE FROM collectors WHERE id = $1`, id); err != nil {
			return fmt.Errorf("delete collector: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM used_jtis WHERE collector_id = $1`, id); err != nil {
			return fmt.Errorf("delete collector's jtis: %w", err)
		}
		var moved int
		if canceled, moved, err = qt.CollectorGone(ctx, id, "canceled: its collector was deleted"); err != nil {
			return err
		}
		if canceled > 0 {
			ev.Details = withDetail(ev.Details, "jobs_canceled", canceled)
		}
		if moved > 0 {
			ev.Details = withDetail(ev.Details, "jobs_moved", moved)
		}
		return s.appendAudit(ctx, tx, ev)
	})
	return canceled, err
}

// lockCollector locks the collector's row with lock (a FOR clause), or
// returns store.ErrNotFound.
func lockCollector(ctx context.Context, tx pgx.Tx, id, lock string) error {
	var one int
	err := tx.QueryRow(ctx, `SELECT 1 FROM collectors WHERE id = $1 `+lock, id).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("collector %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("lock collector %s: %w", id, err)
	}
	return nil
}

// collectorExists returns store.ErrNotFound unless the collector exists,
// and keeps it from being deleted until tx ends.
func collectorExists(ctx context.Context, tx pgx.Tx, id string) error {
	return lockCollector(ctx, tx, id, "FOR KEY SHARE")
}

// SetCollectorPool implements store.Store.
func (s *Store) SetCollectorPool(ctx context.Context, id, pool string, ev store.Event) error {
	return s.qtx(ctx, func(qt *qpg.Tx) error {
		tx := qt.SQL()
		tag, err := tx.Exec(ctx, `UPDATE collectors SET pool = $1, pool_mac = $2 WHERE id = $3`, pool, store.PoolMAC(s.in, id, pool), id)
		if err != nil {
			return fmt.Errorf("set pool: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("collector %s: %w", id, store.ErrNotFound)
		}
		return s.appendAudit(ctx, tx, ev)
	})
}

// PoolMembers implements store.Store: a row whose membership fails its
// MAC is not a member.
func (s *Store) PoolMembers(ctx context.Context, pool string, limit int) ([]store.Collector, error) {
	// pool <> '' matches the partial index collectors_pool.
	list, err := queryAll(ctx, s.pool, s.scanCollector, `SELECT `+collectorCols+` FROM collectors
		WHERE pool = $1 AND pool <> '' ORDER BY id LIMIT $2`, pool, limit)
	return store.Members(list, pool), err
}

// SetDesiredImage implements store.Store.
func (s *Store) SetDesiredImage(ctx context.Context, t store.UpgradeTarget, image, version string, ev store.Event) ([]string, error) {
	var ids []string
	err := s.tx(ctx, func(tx pgx.Tx) error {
		q, args := `UPDATE collectors SET desired_image = $1, desired_version = $2 WHERE `, []any{image, version}
		switch {
		case t.CollectorID != "":
			q, args = q+`id = $3`, append(args, t.CollectorID)
		case t.Pool != "":
			q, args = q+`pool = $3`, append(args, t.Pool)
		case t.All:
			q += `true`
		default:
			return fmt.Errorf("set desired image: no target: %w", store.ErrInvalid)
		}
		var err error
		if ids, err = queryAll(ctx, tx, scanString, q+` RETURNING id`, args...); err != nil {
			return fmt.Errorf("set desired image: %w", err)
		}
		if len(ids) == 0 {
			if t.CollectorID != "" {
				return fmt.Errorf("collector %s: %w", t.CollectorID, store.ErrNotFound)
			}
			return fmt.Errorf("no collector in that target: %w", store.ErrNotFound)
		}
		ev.Details = withDetail(ev.Details, "collectors", len(ids))
		return s.appendAudit(ctx, tx, ev)
	})
	return ids, err
}

func scanString(r scanner) (string, error) {
	var v string
	err := r.Scan(&v)
	return v, err
}

// ClearDesiredImage implements store.Store.
func (s *Store) ClearDesiredImage(ctx context.Context, id, image string, ev store.Event) (bool, error) {
	cleared := false
	err := s.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE collectors SET desired_image = '', desired_version = '' WHERE id = $1 AND desired_image = $2`, id, image)
		if err != nil {
			return fmt.Errorf("clear desired image: %w", err)
		}
		cleared = tag.RowsAffected() > 0
		return s.appendAudit(ctx, tx, ev)
	})
	return cleared, err
}

// withDetail returns d with k set, allocating d if needed.
func withDetail(d map[string]any, k string, v any) map[string]any {
	if d == nil {
		d = map[string]any{}
	}
	d[k] = v
	return d
}

// assigned returns the integrations assigned to the collector, by name.
func assigned(ctx context.Context, tx pgx.Tx, collectorID string) ([]store.IntegrationRef, error) {
	return queryAll(ctx, tx, func(r scanner) (store.IntegrationRef, error) {
		var ref store.IntegrationRef
		err := r.Scan(&ref.ID, &ref.Name)
		return ref, err
	}, `SELECT id, name FROM integrations WHERE collector_id = $1 ORDER BY name`, collectorID)
}

// ReplaceEnrollmentToken revokes the collector's unused tokens and adds tok.
func (s *Store) ReplaceEnrollmentToken(ctx context.Context, tok store.EnrollmentToken, ev store.Event) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		if err := collectorExists(ctx, tx, tok.CollectorID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE enrollment_tokens SET revoked_at = $1
			WHERE collector_id = $2 AND used_at = 0 AND revoked_at = 0`, nanos(tok.CreatedAt), tok.CollectorID); err != nil {
			return fmt.Errorf("revoke enrollment tokens: %w", err)
		}
		if err := s.insertToken(ctx, tx, tok); err != nil {
			return err
		}
		return s.appendAudit(ctx, tx, ev)
	})
}

// Enroll checks and burns the token, then records the collector's keys and
// revokes its earlier access tokens. Any failure rolls everything back.
// The collector's row and the token's are locked before the token is
// checked: of two replicas enrolling with one token, the second waits and
// then finds it used (ErrTokenUsed), and a token revoked meanwhile is
// never burned.
func (s *Store) Enroll(ctx context.Context, e store.Enrollment, ev store.Event) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		err := lockCollector(ctx, tx, e.CollectorID, "FOR NO KEY UPDATE")
		if errors.Is(err, store.ErrNotFound) {
			// As checkToken: no token of an unknown collector is valid.
			return store.ErrTokenInvalid
		}
		if err != nil {
			return err
		}
		if err := s.checkToken(ctx, tx, e); err != nil {
			return err
		}
		now := nanos(e.Now)
		if _, err := tx.Exec(ctx, `UPDATE enrollment_tokens SET used_at = $1 WHERE hash = $2`, now, e.TokenHash); err != nil {
			return fmt.Errorf("burn enrollment token: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE collectors SET enrolled_at = $1, identity_key = $2, hpke_key = $3, keys_mac = $4 WHERE id = $5`,
			now, e.IdentityKey, e.HPKEKey, s.keysMAC(e.CollectorID, e.IdentityKey, e.HPKEKey), e.CollectorID); err != nil {
			return fmt.Errorf("record collector keys: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM access_tokens WHERE collector_id = $1`, e.CollectorID); err != nil {
			return fmt.Errorf("revoke access tokens: %w", err)
		}
		return s.appendAudit(ctx, tx, ev)
	})
}

// checkToken says why a token cannot enroll e.CollectorID, if it cannot,
// and locks its row until tx ends. A token of another collector is
// reported as invalid, not as "wrong collector", so that a token reveals
// nothing about other collectors; so is a token row the platform did not
// write (its MAC fails).
func (s *Store) checkToken(ctx context.Context, tx pgx.Tx, e store.Enrollment) error {
	var owner string
	var expires, used, revoked int64
	var mac []byte
	err := tx.QueryRow(ctx, `SELECT collector_id, expires_at, used_at, revoked_at, mac FROM enrollment_tokens WHERE hash = $1 FOR UPDATE`,
		e.TokenHash).Scan(&owner, &expires, &used, &revoked, &mac)
	switch {
	case errors.Is(err, pgx.ErrNoRows), err == nil && owner != e.CollectorID:
		return store.ErrTokenInvalid
	case err == nil && !s.in.Verify(mac, store.MACEnrollmentToken, []byte(e.TokenHash), []byte(owner), store.Int64(expires)):
		return fmt.Errorf("%w: %w", store.ErrTokenInvalid, store.ErrIntegrity)
	case err != nil:
		return fmt.Errorf("look up enrollment token: %w", err)
	case used != 0:
		return store.ErrTokenUsed
	case revoked != 0:
		return store.ErrTokenRevoked
	case e.Now.UnixNano() >= expires:
		return store.ErrTokenExpired
	}
	return nil
}

// IssueAccessToken records the jti (refusing a replay) and the token, if
// the key the assertion was verified with is still the collector's. The
// collector's row is locked FOR SHARE while the key is checked, so a
// re-enrollment on another replica either commits first (the key check
// fails) or waits for this token and then deletes it: a token never
// outlives the key it was issued for.
func (s *Store) IssueAccessToken(ctx context.Context, jti string, jtiExpires time.Time, tok store.AccessToken, now time.Time) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		var enrolled int64
		var identity []byte
		err := tx.QueryRow(ctx, `SELECT enrolled_at, identity_key FROM collectors WHERE id = $1 FOR SHARE`, tok.CollectorID).Scan(&enrolled, &identity)
		if errors.Is(err, pgx.ErrNoRows) || err == nil && enrolled == 0 {
			return store.ErrNotEnrolled
		}
		if err != nil {
			return fmt.Errorf("look up collector %s: %w", tok.CollectorID, err)
		}
		if ok, err := s.keyAccepted(ctx, tx, tok.CollectorID, identity, tok.KeyFingerprint, now); err != nil {
			return err
		} else if !ok {
			return store.ErrStaleKey
		}
		if err := recordJTI(ctx, tx, tok.CollectorID, jti, jtiExpires, now); err != nil {
			return err
		}
		exp := nanos(tok.ExpiresAt)
		_, err = tx.Exec(ctx, `INSERT INTO access_tokens(hash, collector_id, expires_at, key_fp, mac) VALUES ($1, $2, $3, $4, $5)`,
			tok.Hash, tok.CollectorID, exp, tok.KeyFingerprint, s.accessMAC(tok.Hash, tok.CollectorID, exp, tok.KeyFingerprint))
		if err != nil {
			return fmt.Errorf("insert access token: %w", err)
		}
		return nil
	})
}

// recordJTI inserts the jti, or store.ErrReplay if it is live. An expired
// row with the same jti (it lingers until Prune) is taken over. The
// primary key decides between replicas: of two inserting the same jti at
// once, the second waits for the first to commit, then finds the row live
// and updates nothing.
func recordJTI(ctx context.Context, tx pgx.Tx, collectorID, jti string, expires, now time.Time) error {
	tag, err := tx.Exec(ctx, `INSERT INTO used_jtis(collector_id, jti, expires_at) VALUES ($1, $2, $3)
		ON CONFLICT (collector_id, jti) DO UPDATE SET expires_at = excluded.expires_at
		WHERE used_jtis.expires_at <= $4`, collectorID, jti, nanos(expires), now.UnixNano())
	if err != nil {
		return fmt.Errorf("record jti: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrReplay
	}
	return nil
}

func (s *Store) accessMAC(hash, collectorID string, expires int64, keyFP string) []byte {
	return s.in.Sum(store.MACAccessToken, []byte(hash), []byte(collectorID), store.Int64(expires), []byte(keyFP))
}

// AccessTokenCollector returns the collector a live access token belongs
// to, if the platform wrote the token (its MAC verifies) for the key the
// collector has now. One query: it runs on every request a collector
// makes.
func (s *Store) AccessTokenCollector(ctx context.Context, hash string, now time.Time) (string, error) {
	var id, keyFP string
	var exp int64
	var mac, identity []byte
	err := s.pool.QueryRow(ctx, `SELECT a.collector_id, a.expires_at, a.key_fp, a.mac, c.identity_key
		FROM access_tokens AS a JOIN collectors AS c ON c.id = a.collector_id
		WHERE a.hash = $1 AND a.expires_at > $2`, hash, now.UnixNano()).Scan(&id, &exp, &keyFP, &mac, &identity)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return "", store.ErrAccessInvalid
	case err != nil:
		return "", fmt.Errorf("look up access token: %w", err)
	case !s.in.Verify(mac, store.MACAccessToken, []byte(hash), []byte(id), store.Int64(exp), []byte(keyFP)):
		return "", fmt.Errorf("%w: %w", store.ErrAccessInvalid, store.ErrIntegrity)
	case keyFP == "" || crypto.Fingerprint(identity) != keyFP:
		// A token of the key a rotation replaced, while it is live.
		if ok, err := s.keyAccepted(ctx, s.pool, id, identity, keyFP, now); err != nil {
			return "", err
		} else if !ok {
			return "", store.ErrAccessInvalid
		}
	}
	return id, nil
}

// sqlHeartbeat records a heartbeat in one statement (one round trip, one
// implicit transaction): last-seen and last beat, the history row, the
// 5-minute rollup, and the pruning of the history to the newest $5 rows.
// The CTEs share one snapshot, so the DELETE does not see the row being
// inserted: it keeps the newest $5 - 1 earlier ones. Nothing but the
// UPDATE is done for an unknown collector (the INSERTs select from it).
const sqlHeartbeat = `WITH c AS (
	UPDATE collectors SET last_seen_at = $2, last_beat = $3 WHERE id = $1 RETURNING id
), h AS (
	INSERT INTO heartbeats(collector_id, at, data) SELECT id, $2, $3 FROM c
), r AS (
	INSERT INTO heartbeat_rollups(collector_id, bucket, beats, mem_total, mem_free_min, cpus, running_max)
	SELECT id, $4, 1, $6, $7, $8, $9 FROM c
	ON CONFLICT (collector_id, bucket) DO UPDATE SET beats = heartbeat_rollups.beats + 1,
		mem_total = excluded.mem_total, mem_free_min = least(heartbeat_rollups.mem_free_min, excluded.mem_free_min),
		cpus = excluded.cpus, running_max = greatest(heartbeat_rollups.running_max, excluded.running_max)
), p AS (
	DELETE FROM heartbeats WHERE collector_id = $1 AND id <= (
		SELECT id FROM heartbeats WHERE collector_id = $1 ORDER BY id DESC LIMIT 1 OFFSET greatest($5::bigint - 1, 0))
	AND EXISTS (SELECT FROM c)
)
SELECT count(*) FROM c`

// RecordHeartbeat stores hb as the collector's last and in its history,
// keeping the newest keep entries (at least the new one), and adds it to
// its 5-minute rollup (rollUp).
func (s *Store) RecordHeartbeat(ctx context.Context, collectorID string, hb store.Heartbeat, keep int) error {
	data, err := json.Marshal(hb)
	if err != nil {
		return fmt.Errorf("encode heartbeat: %w", err)
	}
	var n int
	err = s.pool.QueryRow(ctx, sqlHeartbeat, collectorID, nanos(hb.At), string(data), rollupBucketOf(hb.At), keep,
		hb.MemTotal, hb.MemFree, hb.CPUs, hb.Running).Scan(&n)
	if err != nil {
		return classify(fmt.Errorf("record heartbeat of %s: %w", collectorID, err))
	}
	if n == 0 {
		return fmt.Errorf("collector %s: %w", collectorID, store.ErrNotFound)
	}
	return nil
}

// Heartbeats returns up to limit of the newest heartbeats, newest first.
func (s *Store) Heartbeats(ctx context.Context, collectorID string, limit int) ([]store.Heartbeat, error) {
	return queryAll(ctx, s.pool, func(r scanner) (store.Heartbeat, error) {
		var data string
		var hb store.Heartbeat
		if err := r.Scan(&data); err != nil {
			return hb, err
		}
		if err := json.Unmarshal([]byte(data), &hb); err != nil {
			return hb, fmt.Errorf("decode heartbeat: %w", err)
		}
		return hb, nil
	}, `SELECT data FROM heartbeats WHERE collector_id = $1 ORDER BY id DESC LIMIT $2`, collectorID, limit)
}
