package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/platform/store"
	qsqlite "github.com/collectorhq/collector/queue/sqlite"
)

// CreateCollector inserts c with its first enrollment token.
func (s *Store) CreateCollector(ctx context.Context, c store.Collector, tok store.EnrollmentToken, ev store.Event) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO collectors(id, name, pool, pool_mac, created_at) VALUES (?, ?, ?, ?, ?)`,
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

func (s *Store) tokenMAC(hash, collectorID string, expires int64) []byte {
	return s.in.Sum(store.MACEnrollmentToken, []byte(hash), []byte(collectorID), store.Int64(expires))
}

func (s *Store) insertToken(ctx context.Context, tx *sql.Tx, tok store.EnrollmentToken) error {
	exp := nanos(tok.ExpiresAt)
	_, err := tx.ExecContext(ctx, `INSERT INTO enrollment_tokens(hash, collector_id, created_at, expires_at, mac) VALUES (?, ?, ?, ?, ?)`,
		tok.Hash, tok.CollectorID, nanos(tok.CreatedAt), exp, s.tokenMAC(tok.Hash, tok.CollectorID, exp))
	if err != nil {
		return fmt.Errorf("insert enrollment token: %w", err)
	}
	return nil
}

func (s *Store) keysMAC(id string, identity, hpke []byte) []byte {
	return s.in.Sum(store.MACCollectorKeys, []byte(id), identity, hpke)
}

const collectorCols = `id, name, pool, created_at, enrolled_at, identity_key, hpke_key, last_seen_at, last_beat, keys_mac, desired_image, desired_version, pool_mac`

type scanner interface{ Scan(...any) error }

// queryAll runs a query on the readers and scans every row with scan.
func queryAll[T any](ctx context.Context, db *sql.DB, scan func(scanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// scanCollector reads a collector; keys whose MAC does not verify are
// cleared and the row flagged Tampered, a pool whose MAC does not verify
// is cleared and the row flagged PoolTampered.
func (s *Store) scanCollector(r scanner) (store.Collector, error) {
	var c store.Collector
	var created, enrolled, seen int64
	var beat sql.NullString
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
	if beat.Valid {
		var hb store.Heartbeat
		if err := json.Unmarshal([]byte(beat.String), &hb); err == nil {
			c.LastBeat = &hb
		}
	}
	return c, nil
}

// Collector returns one collector, store.ErrNotFound, or store.ErrIntegrity
// when its keys were not written by the platform.
func (s *Store) Collector(ctx context.Context, id string) (store.Collector, error) {
	c, err := s.scanCollector(s.r.QueryRowContext(ctx, `SELECT `+collectorCols+` FROM collectors WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return c, fmt.Errorf("collector %s: %w", id, store.ErrNotFound)
	}
	if err == nil && c.Tampered {
		return c, fmt.Errorf("keys of collector %s: %w", id, store.ErrIntegrity)
	}
	return c, err
}

// Collectors returns every collector, oldest first.
func (s *Store) Collectors(ctx context.Context) ([]store.Collector, error) {
	return queryAll(ctx, s.r, s.scanCollector, `SELECT `+collectorCols+` FROM collectors ORDER BY created_at, id`)
}

// CountCollectors counts collectors by status.
func (s *Store) CountCollectors(ctx context.Context, activeSince time.Time) (store.StatusCounts, error) {
	var c store.StatusCounts
	err := s.r.QueryRowContext(ctx, `SELECT
		COALESCE(SUM(enrolled_at = 0), 0),
		COALESCE(SUM(enrolled_at != 0 AND last_seen_at >= ?1 AND NOT degraded), 0),
		COALESCE(SUM(enrolled_at != 0 AND last_seen_at >= ?1 AND degraded), 0),
		COALESCE(SUM(enrolled_at != 0 AND last_seen_at < ?1), 0)
		FROM (SELECT enrolled_at, last_seen_at,
			(COALESCE(json_extract(last_beat, '$.engine_error'), '') != '' OR
			 COALESCE(json_extract(last_beat, '$.runner_state'), '') NOT IN ('running', 'restarted')) AS degraded
			FROM collectors)`, activeSince.UnixNano()).Scan(&c.Pending, &c.Active, &c.Degraded, &c.Offline)
	return c, err
}

// DeleteCollector deletes a collector with no integrations; its tokens, keys
// and heartbeats go with it (ON DELETE CASCADE), and the queue ends the
// jobs it holds (Tx.CollectorGone: queued ones canceled, in-flight ones
// moved where their integration is or canceled), in the same transaction.
func (s *Store) DeleteCollector(ctx context.Context, id string, ev store.Event) (int, error) {
	var canceled int
	err := s.q.Update(ctx, func(qt *qsqlite.Tx) error {
		tx := qt.SQL()
		refs, err := assigned(ctx, tx, id)
		if err != nil {
			return err
		}
		if len(refs) > 0 {
			return &store.AssignedError{CollectorID: id, Integrations: refs}
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM collectors WHERE id = ?`, id)
		if err != nil {
			return fmt.Errorf("delete collector: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("collector %s: %w", id, store.ErrNotFound)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM used_jtis WHERE collector_id = ?`, id); err != nil {
			return err
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

// SetCollectorPool implements store.Store.
func (s *Store) SetCollectorPool(ctx context.Context, id, pool string, ev store.Event) error {
	return s.q.Update(ctx, func(qt *qsqlite.Tx) error {
		tx := qt.SQL()
		res, err := tx.ExecContext(ctx, `UPDATE collectors SET pool = ?, pool_mac = ? WHERE id = ?`, pool, store.PoolMAC(s.in, id, pool), id)
		if err != nil {
			return fmt.Errorf("set pool: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("collector %s: %w", id, store.ErrNotFound)
		}
		return s.appendAudit(ctx, tx, ev)
	})
}

// PoolMembers implements store.Store: a row whose membership fails its
// MAC is not a member.
func (s *Store) PoolMembers(ctx context.Context, pool string, limit int) ([]store.Collector, error) {
	list, err := queryAll(ctx, s.r, s.scanCollector, `SELECT `+collectorCols+` FROM collectors INDEXED BY collectors_pool
		WHERE pool = ? AND pool != '' ORDER BY id LIMIT ?`, pool, limit)
	return store.Members(list, pool), err
}

// SetDesiredImage implements store.Store.
func (s *Store) SetDesiredImage(ctx context.Context, t store.UpgradeTarget, image, version string, ev store.Event) ([]string, error) {
	var ids []string
	err := s.tx(ctx, func(tx *sql.Tx) error {
		q, args := `UPDATE collectors SET desired_image = ?, desired_version = ? WHERE `, []any{image, version}
		switch {
		case t.CollectorID != "":
			q, args = q+`id = ?`, append(args, t.CollectorID)
		case t.Pool != "":
			q, args = q+`pool = ?`, append(args, t.Pool)
		case t.All:
			q += `1`
		default:
			return fmt.Errorf("set desired image: no target: %w", store.ErrInvalid)
		}
		rows, err := tx.QueryContext(ctx, q+` RETURNING id`, args...)
		if err != nil {
			return fmt.Errorf("set desired image: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return err
			}
			ids = append(ids, id)
		}
		if err := rows.Err(); err != nil {
			return err
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

// ClearDesiredImage implements store.Store.
func (s *Store) ClearDesiredImage(ctx context.Context, id, image string, ev store.Event) (bool, error) {
	cleared := false
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE collectors SET desired_image = '', desired_version = '' WHERE id = ? AND desired_image = ?`, id, image)
		if err != nil {
			return fmt.Errorf("clear desired image: %w", err)
		}
		n, _ := res.RowsAffected()
		cleared = n > 0
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

func assigned(ctx context.Context, tx *sql.Tx, collectorID string) ([]store.IntegrationRef, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id, name FROM integrations WHERE collector_id = ? ORDER BY name`, collectorID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var refs []store.IntegrationRef
	for rows.Next() {
		var r store.IntegrationRef
		if err := rows.Scan(&r.ID, &r.Name); err != nil {
			return nil, err
		}
		refs = append(refs, r)
	}
	return refs, rows.Err()
}

// ReplaceEnrollmentToken revokes the collector's unused tokens and adds tok.
func (s *Store) ReplaceEnrollmentToken(ctx context.Context, tok store.EnrollmentToken, ev store.Event) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := collectorExists(ctx, tx, tok.CollectorID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE enrollment_tokens SET revoked_at = ?
			WHERE collector_id = ? AND used_at = 0 AND revoked_at = 0`, nanos(tok.CreatedAt), tok.CollectorID); err != nil {
			return fmt.Errorf("revoke enrollment tokens: %w", err)
		}
		if err := s.insertToken(ctx, tx, tok); err != nil {
			return err
		}
		return s.appendAudit(ctx, tx, ev)
	})
}

func collectorExists(ctx context.Context, tx *sql.Tx, id string) error {
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM collectors WHERE id = ?`, id).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("collector %s: %w", id, store.ErrNotFound)
	}
	return nil
}

// Enroll checks and burns the token, then records the collector's keys and
// revokes its earlier access tokens. Any failure rolls everything back.
func (s *Store) Enroll(ctx context.Context, e store.Enrollment, ev store.Event) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.checkToken(ctx, tx, e); err != nil {
			return err
		}
		now := nanos(e.Now)
		if _, err := tx.ExecContext(ctx, `UPDATE enrollment_tokens SET used_at = ? WHERE hash = ?`, now, e.TokenHash); err != nil {
			return fmt.Errorf("burn enrollment token: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE collectors SET enrolled_at = ?, identity_key = ?, hpke_key = ?, keys_mac = ? WHERE id = ?`,
			now, e.IdentityKey, e.HPKEKey, s.keysMAC(e.CollectorID, e.IdentityKey, e.HPKEKey), e.CollectorID); err != nil {
			return fmt.Errorf("record collector keys: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM access_tokens WHERE collector_id = ?`, e.CollectorID); err != nil {
			return fmt.Errorf("revoke access tokens: %w", err)
		}
		return s.appendAudit(ctx, tx, ev)
	})
}

// checkToken says why a token cannot enroll e.CollectorID, if it cannot. A
// token of another collector is reported as invalid, not as "wrong
// collector", so that a token reveals nothing about other collectors; so is
// a token row the platform did not write (its MAC fails).
func (s *Store) checkToken(ctx context.Context, tx *sql.Tx, e store.Enrollment) error {
	var owner string
	var expires, used, revoked int64
	var mac []byte
	err := tx.QueryRowContext(ctx, `SELECT collector_id, expires_at, used_at, revoked_at, mac FROM enrollment_tokens WHERE hash = ?`,
		e.TokenHash).Scan(&owner, &expires, &used, &revoked, &mac)
	switch {
	case errors.Is(err, sql.ErrNoRows), err == nil && owner != e.CollectorID:
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
// the key the assertion was verified with is still the collector's: the
// check and the insert are one transaction, so a token can never outlive
// a re-enrollment that raced its exchange.
func (s *Store) IssueAccessToken(ctx context.Context, jti string, jtiExpires time.Time, tok store.AccessToken, now time.Time) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		var enrolled int64
		var identity []byte
		err := tx.QueryRowContext(ctx, `SELECT enrolled_at, identity_key FROM collectors WHERE id = ?`, tok.CollectorID).Scan(&enrolled, &identity)
		if errors.Is(err, sql.ErrNoRows) || err == nil && enrolled == 0 {
			return store.ErrNotEnrolled
		}
		if err != nil {
			return err
		}
		if ok, err := s.keyAccepted(ctx, tx, tok.CollectorID, identity, tok.KeyFingerprint, now); err != nil {
			return err
		} else if !ok {
			return store.ErrStaleKey
		}
		// An expired row with the same jti may linger until Prune; drop it.
		if _, err := tx.ExecContext(ctx, `DELETE FROM used_jtis WHERE collector_id = ? AND jti = ? AND expires_at <= ?`,
			tok.CollectorID, jti, now.UnixNano()); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO used_jtis(collector_id, jti, expires_at) VALUES (?, ?, ?)`,
			tok.CollectorID, jti, nanos(jtiExpires))
		if isUnique(err) {
			return store.ErrReplay
		}
		if err != nil {
			return fmt.Errorf("record jti: %w", err)
		}
		exp := nanos(tok.ExpiresAt)
		_, err = tx.ExecContext(ctx, `INSERT INTO access_tokens(hash, collector_id, expires_at, key_fp, mac) VALUES (?, ?, ?, ?, ?)`,
			tok.Hash, tok.CollectorID, exp, tok.KeyFingerprint, s.accessMAC(tok.Hash, tok.CollectorID, exp, tok.KeyFingerprint))
		if err != nil {
			return fmt.Errorf("insert access token: %w", err)
		}
		return nil
	})
}

func (s *Store) accessMAC(hash, collectorID string, expires int64, keyFP string) []byte {
	return s.in.Sum(store.MACAccessToken, []byte(hash), []byte(collectorID), store.Int64(expires), []byte(keyFP))
}

const (
	sqlAccessLookup = `SELECT a.collector_id, a.expires_at, a.key_fp, a.mac, c.identity_key
		FROM access_tokens AS a JOIN collectors AS c ON c.id = a.collector_id
		WHERE a.hash = ? AND a.expires_at > ?`
	sqlBeatUpdate = `UPDATE collectors SET last_seen_at = ?, last_beat = ? WHERE id = ?`
	sqlBeatInsert = `INSERT INTO heartbeats(collector_id, at, data) VALUES (?, ?, ?)`
	sqlBeatPrune  = `DELETE FROM heartbeats WHERE collector_id = ? AND id <= (
		SELECT id FROM heartbeats WHERE collector_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)`
	sqlBeatRollup = `INSERT INTO heartbeat_rollups(collector_id, bucket, beats, mem_total, mem_free_min, cpus, running_max)
		VALUES (?, ?, 1, ?, ?, ?, ?)
		ON CONFLICT(collector_id, bucket) DO UPDATE SET beats = beats + 1, mem_total = excluded.mem_total,
			mem_free_min = min(mem_free_min, excluded.mem_free_min), cpus = excluded.cpus, running_max = max(running_max, excluded.running_max)`
)

// AccessTokenCollector returns the collector a live access token belongs
// to, if the platform wrote the token (its MAC verifies) for the key the
// collector has now.
func (s *Store) AccessTokenCollector(ctx context.Context, hash string, now time.Time) (string, error) {
	var id, keyFP string
	var exp int64
	var mac, identity []byte
	err := s.accessLookup.QueryRowContext(ctx, hash, now.UnixNano()).Scan(&id, &exp, &keyFP, &mac, &identity)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", store.ErrAccessInvalid
	case err != nil:
		return "", err
	case !s.in.Verify(mac, store.MACAccessToken, []byte(hash), []byte(id), store.Int64(exp), []byte(keyFP)):
		return "", fmt.Errorf("%w: %w", store.ErrAccessInvalid, store.ErrIntegrity)
	case keyFP == "" || crypto.Fingerprint(identity) != keyFP:
		// A token of the key a rotation replaced, while it is live.
		if ok, err := s.keyAccepted(ctx, s.r, id, identity, keyFP, now); err != nil {
			return "", err
		} else if !ok {
			return "", store.ErrAccessInvalid
		}
	}
	return id, nil
}

// RecordHeartbeat stores hb as the collector's last and in its history,
// keeping the newest keep entries.
func (s *Store) RecordHeartbeat(ctx context.Context, collectorID string, hb store.Heartbeat, keep int) error {
	data, err := json.Marshal(hb)
	if err != nil {
		return err
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.StmtContext(ctx, s.beatUpdate).ExecContext(ctx, nanos(hb.At), string(data), collectorID)
		if err != nil {
			return fmt.Errorf("update last seen: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("collector %s: %w", collectorID, store.ErrNotFound)
		}
		if _, err := tx.StmtContext(ctx, s.beatInsert).ExecContext(ctx, collectorID, nanos(hb.At), string(data)); err != nil {
			return fmt.Errorf("insert heartbeat: %w", err)
		}
		if err := s.rollUp(ctx, tx, collectorID, hb); err != nil {
			return fmt.Errorf("heartbeat rollup: %w", err)
		}
		_, err = tx.StmtContext(ctx, s.beatPrune).ExecContext(ctx, collectorID, collectorID, keep)
		return err
	})
}

// Heartbeats returns up to limit of the newest heartbeats, newest first.
func (s *Store) Heartbeats(ctx context.Context, collectorID string, limit int) ([]store.Heartbeat, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT data FROM heartbeats WHERE collector_id = ? ORDER BY id DESC LIMIT ?`,
		collectorID, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Heartbeat
	for rows.Next() {
		var data string
		var hb store.Heartbeat
		if err := rows.Scan(&data); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(data), &hb); err != nil {
			return nil, fmt.Errorf("decode heartbeat: %w", err)
		}
		out = append(out, hb)
	}
	return out, rows.Err()
}
