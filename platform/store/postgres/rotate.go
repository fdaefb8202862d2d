package postgres

import (
	"bytes"
	"context"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/collectorhq/collector/platform/access"
	"github.com/collectorhq/collector/platform/store"
)

var _ store.Rekeyer = (*Store)(nil)

// macRow is one MAC'd row as rotation sees it: its primary key (the
// cursor of the walk and the update's key), the MAC it has, and how to
// compute its MAC with a store's integrity key.
type macRow struct {
	key []any
	mac []byte
	sum func(*Store) []byte
}

// macTable walks one kind of MAC'd row: sel reads a batch after a cursor
// (args: the key columns, then the limit), upd swaps a row's MAC if it is
// unchanged (args: new MAC, key columns, old MAC). text: the MAC column
// is hex text (the audit log), not a blob.
type macTable struct {
	sel   string
	upd   string
	start []any
	text  bool
	scan  func(pgx.Rows) (macRow, error)
}

// macTables computes each row's MAC with the write path's own functions
// (userMAC, keysMAC, ...) on a view of the store keyed by one key of the
// ring (under), so rotation and the write path cannot drift apart.
var macTables = map[store.MACKind]macTable{
	store.MACRowsSettings: {
		sel:   `SELECT key, value, mac FROM settings WHERE key > $1 ORDER BY key LIMIT $2`,
		upd:   `UPDATE settings SET mac = $1 WHERE key = $2 AND mac = $3`,
		start: []any{""},
		scan: func(r pgx.Rows) (macRow, error) {
			var k, v string
			var mac []byte
			err := r.Scan(&k, &v, &mac)
			return macRow{[]any{k}, mac, func(s *Store) []byte { return s.in.Sum(store.MACSetting, []byte(k), []byte(v)) }}, err
		},
	},
	store.MACRowsCollectorKeys: {
		sel:   `SELECT id, identity_key, hpke_key, keys_mac FROM collectors WHERE id > $1 AND keys_mac IS NOT NULL ORDER BY id LIMIT $2`,
		upd:   `UPDATE collectors SET keys_mac = $1 WHERE id = $2 AND keys_mac = $3`,
		start: []any{""},
		scan: func(r pgx.Rows) (macRow, error) {
			var id string
			var identity, hpke, mac []byte
			err := r.Scan(&id, &identity, &hpke, &mac)
			return macRow{[]any{id}, mac, func(s *Store) []byte { return s.keysMAC(id, identity, hpke) }}, err
		},
	},
	store.MACRowsCollectorPools: {
		sel:   `SELECT id, pool, pool_mac FROM collectors WHERE id > $1 AND pool_mac IS NOT NULL ORDER BY id LIMIT $2`,
		upd:   `UPDATE collectors SET pool_mac = $1 WHERE id = $2 AND pool_mac = $3`,
		start: []any{""},
		scan: func(r pgx.Rows) (macRow, error) {
			var id, pool string
			var mac []byte
			err := r.Scan(&id, &pool, &mac)
			return macRow{[]any{id}, mac, func(s *Store) []byte { return store.PoolMAC(s.in, id, pool) }}, err
		},
	},
	store.MACRowsCollectorPrevious: {
		sel: `SELECT collector_id, identity_key, successor, valid_until, mac FROM collector_previous_keys
			WHERE collector_id > $1 ORDER BY collector_id LIMIT $2`,
		upd:   `UPDATE collector_previous_keys SET mac = $1 WHERE collector_id = $2 AND mac = $3`,
		start: []any{""},
		scan: func(r pgx.Rows) (macRow, error) {
			var id string
			var p store.PreviousKey
			var until int64
			var mac []byte
			err := r.Scan(&id, &p.IdentityKey, &p.Successor, &until, &mac)
			p.Until = time.Unix(0, until).UTC()
			return macRow{[]any{id}, mac, func(s *Store) []byte { return store.PreviousKeyMAC(s.in, id, p) }}, err
		},
	},
	store.MACRowsEnrollmentTokens: {
		sel:   `SELECT hash, collector_id, expires_at, mac FROM enrollment_tokens WHERE hash > $1 AND mac IS NOT NULL ORDER BY hash LIMIT $2`,
		upd:   `UPDATE enrollment_tokens SET mac = $1 WHERE hash = $2 AND mac = $3`,
		start: []any{""},
		scan: func(r pgx.Rows) (macRow, error) {
			var hash, id string
			var exp int64
			var mac []byte
			err := r.Scan(&hash, &id, &exp, &mac)
			return macRow{[]any{hash}, mac, func(s *Store) []byte { return s.enrollmentTokenMAC(hash, id, exp) }}, err
		},
	},
	store.MACRowsAccessTokens: {
		sel:   `SELECT hash, collector_id, expires_at, key_fp, mac FROM access_tokens WHERE hash > $1 AND mac IS NOT NULL ORDER BY hash LIMIT $2`,
		upd:   `UPDATE access_tokens SET mac = $1 WHERE hash = $2 AND mac = $3`,
		start: []any{""},
		scan: func(r pgx.Rows) (macRow, error) {
			var hash, id, fp string
			var exp int64
			var mac []byte
			err := r.Scan(&hash, &id, &exp, &fp, &mac)
			return macRow{[]any{hash}, mac, func(s *Store) []byte { return s.accessMAC(hash, id, exp, fp) }}, err
		},
	},
	store.MACRowsAudit: {
		// The per-entry MACs only: the hash chain is not keyed and does
		// not change.
		sel:   `SELECT seq, hash, mac FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2`,
		upd:   `UPDATE audit_log SET mac = $1 WHERE seq = $2 AND mac = $3`,
		start: []any{int64(0)},
		text:  true,
		scan: func(r pgx.Rows) (macRow, error) {
			var seq int64
			var hash, mac string
			err := r.Scan(&seq, &hash, &mac)
			return macRow{[]any{seq}, []byte(mac), func(s *Store) []byte {
				e := store.AuditEntry{Hash: hash}
				store.SealEntry(s.in, &e)
				return []byte(e.MAC)
			}}, err
		},
	},
	store.MACRowsUsers: {
		sel: `SELECT id, login, role, disabled, password_hash, sso_issuer, sso_subject, mac FROM users
			WHERE id > $1 ORDER BY id LIMIT $2`,
		upd:   `UPDATE users SET mac = $1 WHERE id = $2 AND mac = $3`,
		start: []any{""},
		scan: func(r pgx.Rows) (macRow, error) {
			var u access.User
			var role string
			var mac []byte
			err := r.Scan(&u.ID, &u.Login, &role, &u.Disabled, &u.PasswordHash, &u.SSOIssuer, &u.SSOSubject, &mac)
			u.Role = access.Role(role)
			return macRow{[]any{u.ID}, mac, func(s *Store) []byte { return s.userMAC(u) }}, err
		},
	},
	store.MACRowsSessions: {
		sel: `SELECT hash, user_id, stage, mfa_at, expires_at, method, sso_subject, mac FROM sessions
			WHERE hash > $1 ORDER BY hash LIMIT $2`,
		upd:   `UPDATE sessions SET mac = $1 WHERE hash = $2 AND mac = $3`,
		start: []any{""},
		scan: func(r pgx.Rows) (macRow, error) {
			var x access.Session
			var mfa, exp int64
			var mac []byte
			err := r.Scan(&x.Hash, &x.UserID, &x.Stage, &mfa, &exp, &x.Method, &x.SSOSubject, &mac)
			x.MFAAt, x.ExpiresAt = fromNanos(mfa), fromNanos(exp)
			return macRow{[]any{x.Hash}, mac, func(s *Store) []byte { return s.sessionMAC(x) }}, err
		},
	},
	store.MACRowsAPITokens: {
		sel:   `SELECT id, user_id, role, hash, expires_at, revoked_at, mac FROM api_tokens WHERE id > $1 ORDER BY id LIMIT $2`,
		upd:   `UPDATE api_tokens SET mac = $1 WHERE id = $2 AND mac = $3`,
		start: []any{""},
		scan: func(r pgx.Rows) (macRow, error) {
			var t access.APIToken
			var role string
			var exp, revoked int64
			var mac []byte
			err := r.Scan(&t.ID, &t.UserID, &role, &t.Hash, &exp, &revoked, &mac)
			t.Role, t.ExpiresAt, t.RevokedAt = access.Role(role), fromNanos(exp), fromNanos(revoked)
			return macRow{[]any{t.ID}, mac, func(s *Store) []byte { return s.tokenMAC(t) }}, err
		},
	},
	store.MACRowsPasskeys: {
		sel:   `SELECT id, user_id, rp_id, credential_id, public_key, mac FROM passkeys WHERE id > $1 ORDER BY id LIMIT $2`,
		upd:   `UPDATE passkeys SET mac = $1 WHERE id = $2 AND mac = $3`,
		start: []any{""},
		scan: func(r pgx.Rows) (macRow, error) {
			var pk access.Passkey
			var mac []byte
			err := r.Scan(&pk.ID, &pk.UserID, &pk.RPID, &pk.CredentialID, &pk.PublicKey, &mac)
			return macRow{[]any{pk.ID}, mac, func(s *Store) []byte { return s.passkeyMAC(pk) }}, err
		},
	},
	store.MACRowsPasskeyCeremonies: {
		sel: `SELECT session_hash, kind, user_id, data, expires_at, mac FROM passkey_ceremonies
			WHERE (session_hash, kind) > ($1, $2) ORDER BY session_hash, kind LIMIT $3`,
		upd:   `UPDATE passkey_ceremonies SET mac = $1 WHERE session_hash = $2 AND kind = $3 AND mac = $4`,
		start: []any{"", ""},
		scan: func(r pgx.Rows) (macRow, error) {
			var c access.PasskeyCeremony
			var exp int64
			var mac []byte
			err := r.Scan(&c.SessionHash, &c.Kind, &c.UserID, &c.Data, &exp, &mac)
			c.ExpiresAt = fromNanos(exp)
			return macRow{[]any{c.SessionHash, c.Kind}, mac, func(s *Store) []byte { return s.ceremonyMAC(c) }}, err
		},
	},
}

// under returns a view of s whose MACs are keyed by in alone.
func (s *Store) under(in *store.Integrity) *Store {
	v := *s
	v.in = in
	return &v
}

// macCountBatch is how many rows CountMACKeys reads at a time.
const macCountBatch = 1000

// CountMACKeys implements store.Rekeyer.
func (s *Store) CountMACKeys(ctx context.Context, kind store.MACKind) (store.MACCount, error) {
	return s.walkMACs(ctx, kind, macCountBatch, false)
}

// RekeyMACs implements store.Rekeyer.
func (s *Store) RekeyMACs(ctx context.Context, kind store.MACKind, batch int) (store.MACCount, error) {
	return s.walkMACs(ctx, kind, batch, true)
}

// walkMACs is store.WalkMACs on the rows of kind, each row's MAC
// checked against the write path's own MAC under each ring key.
func (s *Store) walkMACs(ctx context.Context, kind store.MACKind, batch int, rekey bool) (store.MACCount, error) {
	t, ok := macTables[kind]
	if !ok {
		return store.MACCount{}, fmt.Errorf("rekey: unknown kind of row %q", kind)
	}
	var views []*Store
	for _, in := range s.in.Ring() {
		views = append(views, s.under(in))
	}
	c, err := store.WalkMACs(ctx, t.start, batch, len(views), rekey,
		func(ctx context.Context, cursor []any, limit int) ([]macRow, error) {
			return s.macBatch(ctx, t, cursor, limit)
		},
		func(r macRow) []any { return r.key },
		func(r macRow) int { return keyIndex(views, r) },
		func(ctx context.Context, rows []macRow) (int, error) { return s.swapMACs(ctx, t, rows) })
	if err != nil {
		return c, fmt.Errorf("rekey %s: %w", kind, err)
	}
	return c, nil
}

// keyIndex returns the index of the ring key r's MAC is under, or -1.
func keyIndex(views []*Store, r macRow) int {
	for i, v := range views {
		if hmac.Equal(r.mac, r.sum(v)) {
			return i
		}
	}
	return -1
}

func (s *Store) macBatch(ctx context.Context, t macTable, cursor []any, limit int) ([]macRow, error) {
	rows, err := s.pool.Query(ctx, t.sel, append(append([]any(nil), cursor...), limit)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []macRow
	for rows.Next() {
		r, err := t.scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// swapMACs replaces the MACs of rows by their MACs under the current key,
// each only if unchanged, and returns how many it replaced.
func (s *Store) swapMACs(ctx context.Context, t macTable, rows []macRow) (int, error) {
	n := 0
	err := s.tx(ctx, func(tx pgx.Tx) error {
		n = 0
		for _, r := range rows {
			var cur, old any = r.sum(s), r.mac
			if t.text {
				cur, old = string(r.sum(s)), string(r.mac)
			}
			args := append(append([]any{cur}, r.key...), old)
			tag, err := tx.Exec(ctx, t.upd, args...)
			if err != nil {
				return err
			}
			n += int(tag.RowsAffected())
		}
		return nil
	})
	return n, err
}

// sealedColumns are the sealed values kept in a column of their own: sel
// reads a batch after an ID (args: after, limit), upd swaps a value if it
// is unchanged (args: new, id, old).
var sealedColumns = map[store.SealedKind]struct{ sel, upd string }{
	store.SealedIntegrationConfigs: {
		`SELECT id, config FROM integrations WHERE id > $1 ORDER BY id LIMIT $2`,
		`UPDATE integrations SET config = $1 WHERE id = $2 AND config = $3`,
	},
	store.SealedTOTPSecrets: {
		`SELECT user_id, sealed FROM user_totp WHERE user_id > $1 AND sealed IS NOT NULL ORDER BY user_id LIMIT $2`,
		`UPDATE user_totp SET sealed = $1 WHERE user_id = $2 AND sealed = $3`,
	},
	store.SealedTOTPPending: {
		`SELECT user_id, pending FROM user_totp WHERE user_id > $1 AND pending IS NOT NULL ORDER BY user_id LIMIT $2`,
		`UPDATE user_totp SET pending = $1 WHERE user_id = $2 AND pending = $3`,
	},
}

// sealedSettings are the sealed values kept inside a setting.
var sealedSettings = map[store.SealedKind]store.SealedSetting{
	store.SealedSSOSecret: ssoSecretSetting,
	store.SealedAccessKey: store.AccessKeySetting,
}

// ssoSecretSetting is the SSO client secret, a field of the SSO settings
// (stored as PutSSOSettings writes them).
var ssoSecretSetting = store.SealedSetting{
	Key: settingSSO,
	Get: func(v string) ([]byte, error) {
		var c access.SSOSettings
		err := json.Unmarshal([]byte(v), &c)
		return c.SealedSecret, err
	},
	Set: func(v string, sealed []byte) (string, error) {
		var c access.SSOSettings
		if err := json.Unmarshal([]byte(v), &c); err != nil {
			return "", err
		}
		c.SealedSecret = sealed
		b, err := json.Marshal(c)
		return string(b), err
	},
}

// SealedValues implements store.Rekeyer.
func (s *Store) SealedValues(ctx context.Context, kind store.SealedKind, after string, limit int) ([]store.Sealed, error) {
	if set, ok := sealedSettings[kind]; ok {
		return s.sealedSetting(ctx, set, after)
	}
	col, ok := sealedColumns[kind]
	if !ok {
		return nil, fmt.Errorf("sealed values: unknown kind %q", kind)
	}
	rows, err := s.pool.Query(ctx, col.sel, after, limit)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", kind, err)
	}
	defer rows.Close()
	var out []store.Sealed
	for rows.Next() {
		var v store.Sealed
		if err := rows.Scan(&v.ID, &v.Value); err != nil {
			return nil, fmt.Errorf("read %s: %w", kind, err)
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// sealedSetting returns the value set holds, if its setting exists and
// sorts after after.
func (s *Store) sealedSetting(ctx context.Context, set store.SealedSetting, after string) ([]store.Sealed, error) {
	if set.Key <= after {
		return nil, nil
	}
	v, err := s.Setting(ctx, set.Key)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	sealed, err := set.Get(v)
	if err != nil || len(sealed) == 0 {
		return nil, err
	}
	return []store.Sealed{{ID: set.Key, Value: sealed}}, nil
}

// Reseal implements store.Rekeyer.
func (s *Store) Reseal(ctx context.Context, kind store.SealedKind, id string, old, value []byte) (bool, error) {
	if set, ok := sealedSettings[kind]; ok {
		return s.resealSetting(ctx, set, id, old, value)
	}
	col, ok := sealedColumns[kind]
	if !ok {
		return false, fmt.Errorf("reseal: unknown kind %q", kind)
	}
	tag, err := s.pool.Exec(ctx, col.upd, value, id, old)
	if err != nil {
		return false, fmt.Errorf("reseal %s of %s: %w", kind, id, err)
	}
	return tag.RowsAffected() == 1, nil
}

// resealSetting swaps the sealed value inside a setting, with the
// setting's new MAC, if the setting still verifies and holds old.
func (s *Store) resealSetting(ctx context.Context, set store.SealedSetting, id string, old, value []byte) (bool, error) {
	if id != set.Key {
		return false, fmt.Errorf("reseal: %q is not the setting %q", id, set.Key)
	}
	done := false
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var v string
		var mac []byte
		err := tx.QueryRow(ctx, `SELECT value, mac FROM settings WHERE key = $1 FOR UPDATE`, set.Key).Scan(&v, &mac)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if !s.in.Verify(mac, store.MACSetting, []byte(set.Key), []byte(v)) {
			return fmt.Errorf("setting %q: %w", set.Key, store.ErrIntegrity)
		}
		cur, err := set.Get(v)
		if err != nil || !bytes.Equal(cur, old) {
			return err
		}
		if v, err = set.Set(v, value); err != nil {
			return err
		}
		done = true
		return s.putSetting(ctx, tx, set.Key, v)
	})
	if err != nil {
		return false, fmt.Errorf("reseal setting %q: %w", set.Key, err)
	}
	return done, nil
}
