package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/collectorhq/collector/platform/access"
	"github.com/collectorhq/collector/platform/store"
)

// Integrity domains of the access rows: the same as SQLite's, so a MAC
// means the same thing in either backend.
const (
	macUser    = "user-v1"
	macSession = "session-v1"
	macToken   = "api-token-v1"
)

// boolByte is a boolean as the MACs take it (one byte, as SQLite stores it).
func boolByte(v bool) []byte {
	if v {
		return []byte{1}
	}
	return []byte{0}
}

func (s *Store) userMAC(u access.User) []byte {
	return s.in.Sum(macUser, []byte(u.ID), []byte(u.Login), []byte(u.Role), boolByte(u.Disabled), []byte(u.PasswordHash),
		[]byte(u.SSOIssuer), []byte(u.SSOSubject))
}

func (s *Store) sessionMAC(x access.Session) []byte {
	return s.in.Sum(macSession, []byte(x.Hash), []byte(x.UserID), []byte(x.Stage), store.Int64(nanos(x.MFAAt)),
		store.Int64(nanos(x.ExpiresAt)), []byte(x.Method), []byte(x.SSOSubject))
}

func (s *Store) tokenMAC(t access.APIToken) []byte {
	return s.in.Sum(macToken, []byte(t.ID), []byte(t.UserID), []byte(t.Role), []byte(t.Hash), store.Int64(nanos(t.ExpiresAt)), store.Int64(nanos(t.RevokedAt)))
}

const userCols = `id, login, display_name, role, disabled, password_hash, sso_issuer, sso_subject, created_at, updated_at, mac`

// scanUser reads a user; a row whose MAC fails is ErrIntegrity: a role or
// password written outside the platform never grants anything.
func (s *Store) scanUser(r pgx.Row) (access.User, error) {
	var u access.User
	var role string
	var created, updated int64
	var mac []byte
	if err := r.Scan(&u.ID, &u.Login, &u.DisplayName, &role, &u.Disabled, &u.PasswordHash, &u.SSOIssuer, &u.SSOSubject, &created, &updated, &mac); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return u, access.ErrNotFound
		}
		return u, err
	}
	u.Role, u.CreatedAt, u.UpdatedAt = access.Role(role), fromNanos(created), fromNanos(updated)
	if !s.in.Verify(mac, macUser, []byte(u.ID), []byte(u.Login), []byte(u.Role), boolByte(u.Disabled), []byte(u.PasswordHash), []byte(u.SSOIssuer), []byte(u.SSOSubject)) {
		return access.User{}, fmt.Errorf("user %s: %w", u.ID, store.ErrIntegrity)
	}
	return u, nil
}

// adminsSQL counts the enabled admins.
const adminsSQL = `SELECT count(*) FROM users WHERE role = 'admin' AND NOT disabled`

// CountAdmins implements access.Store.
func (s *Store) CountAdmins(ctx context.Context) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, adminsSQL).Scan(&n)
	return n, err
}

func (s *Store) insertUser(ctx context.Context, tx pgx.Tx, u access.User) error {
	_, err := tx.Exec(ctx, `INSERT INTO users(`+userCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		u.ID, u.Login, u.DisplayName, string(u.Role), u.Disabled, u.PasswordHash, u.SSOIssuer, u.SSOSubject,
		nanos(u.CreatedAt), nanos(u.UpdatedAt), s.userMAC(u))
	if isUnique(err) {
		return fmt.Errorf("%w: the login %q (or single sign-on subject) is taken", access.ErrConflict, u.Login)
	}
	return err
}

// CreateUser implements access.Store.
func (s *Store) CreateUser(ctx context.Context, u access.User, ev store.Event) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		if err := s.insertUser(ctx, tx, u); err != nil {
			return err
		}
		return s.appendAudit(ctx, tx, ev)
	})
}

// User implements access.Store.
func (s *Store) User(ctx context.Context, id string) (access.User, error) {
	return s.scanUser(s.pool.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE id = $1`, id))
}

// UserByLogin implements access.Store.
func (s *Store) UserByLogin(ctx context.Context, login string) (access.User, error) {
	return s.scanUser(s.pool.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE login = $1`, login))
}

// UserBySSO implements access.Store.
func (s *Store) UserBySSO(ctx context.Context, issuer, subject string) (access.User, error) {
	return s.scanUser(s.pool.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE sso_issuer = $1 AND sso_subject = $2 AND sso_subject <> ''`, issuer, subject))
}

// Users implements access.Store. A row that fails its MAC is left out: it
// grants nothing.
func (s *Store) Users(ctx context.Context) ([]access.User, error) {
	// ORDER BY login COLLATE "C": byte order, as SQLite sorts, whatever
	// the database's collation.
	rows, err := s.pool.Query(ctx, `SELECT `+userCols+` FROM users ORDER BY login COLLATE "C"`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []access.User
	for rows.Next() {
		u, err := s.scanUser(rows)
		if errors.Is(err, store.ErrIntegrity) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// UpdateUser implements access.Store.
func (s *Store) UpdateUser(ctx context.Context, u access.User, revoke bool, ev store.Event) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE users SET display_name = $1, role = $2, disabled = $3, password_hash = $4,
			sso_issuer = $5, sso_subject = $6, updated_at = $7, mac = $8 WHERE id = $9 AND login = $10`,
			u.DisplayName, string(u.Role), u.Disabled, u.PasswordHash, u.SSOIssuer, u.SSOSubject, nanos(u.UpdatedAt), s.userMAC(u), u.ID, u.Login)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return access.ErrNotFound
		}
		if revoke {
			if err := revokeAll(ctx, tx, u.ID, ""); err != nil {
				return err
			}
		}
		return s.appendAudit(ctx, tx, ev)
	})
}

// revokeAll deletes the user's sessions (but keep) and tokens.
func revokeAll(ctx context.Context, tx pgx.Tx, userID, keep string) error {
	if _, err := tx.Exec(ctx, `DELETE FROM sessions WHERE user_id = $1 AND hash <> $2`, userID, keep); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `DELETE FROM api_tokens WHERE user_id = $1`, userID)
	return err
}

const sessionCols = `hash, user_id, created_at, last_seen_at, expires_at, stage, mfa_at, method, sso_subject, source, user_agent, mac`

func (s *Store) insertSession(ctx context.Context, tx pgx.Tx, x access.Session) error {
	_, err := tx.Exec(ctx, `INSERT INTO sessions(`+sessionCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		x.Hash, x.UserID, nanos(x.CreatedAt), nanos(x.LastSeenAt), nanos(x.ExpiresAt), x.Stage, nanos(x.MFAAt),
		x.Method, x.SSOSubject, x.Source, x.UserAgent, s.sessionMAC(x))
	return err
}

// auditIf appends ev inside tx when there is one.
func (s *Store) auditIf(ctx context.Context, tx pgx.Tx, ev *store.Event) error {
	if ev == nil {
		return nil
	}
	return s.appendAudit(ctx, tx, *ev)
}

// CreateSession implements access.Store.
func (s *Store) CreateSession(ctx context.Context, x access.Session, ev *store.Event) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		if err := s.insertSession(ctx, tx, x); err != nil {
			return err
		}
		return s.auditIf(ctx, tx, ev)
	})
}

// SessionByHash implements access.Store; a session whose MAC fails (its
// stage or second-factor time written outside the platform) does not
// exist.
func (s *Store) SessionByHash(ctx context.Context, hash string) (access.Session, error) {
	var x access.Session
	var created, seen, expires, mfa int64
	var mac []byte
	err := s.pool.QueryRow(ctx, `SELECT `+sessionCols+` FROM sessions WHERE hash = $1`, hash).Scan(
		&x.Hash, &x.UserID, &created, &seen, &expires, &x.Stage, &mfa, &x.Method, &x.SSOSubject, &x.Source, &x.UserAgent, &mac)
	if errors.Is(err, pgx.ErrNoRows) {
		return x, access.ErrNotFound
	}
	if err != nil {
		return x, err
	}
	x.CreatedAt, x.LastSeenAt, x.ExpiresAt, x.MFAAt = fromNanos(created), fromNanos(seen), fromNanos(expires), fromNanos(mfa)
	if !s.in.Verify(mac, macSession, []byte(x.Hash), []byte(x.UserID), []byte(x.Stage), store.Int64(mfa), store.Int64(expires), []byte(x.Method), []byte(x.SSOSubject)) {
		return access.Session{}, access.ErrNotFound
	}
	return x, nil
}

// TouchSession implements access.Store.
func (s *Store) TouchSession(ctx context.Context, hash string, at time.Time) error {
	_, err := s.pool.Exec(ctx, `UPDATE sessions SET last_seen_at = $1 WHERE hash = $2`, nanos(at), hash)
	return err
}

// RotateSession implements access.Store. The DELETE is the claim: of two
// replicas rotating the same session, the second waits on the row lock,
// then deletes nothing and is refused, so one old session never becomes
// two new ones.
func (s *Store) RotateSession(ctx context.Context, old string, x access.Session, ev *store.Event) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM sessions WHERE hash = $1`, old)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return access.ErrUnauthenticated
		}
		if err := s.insertSession(ctx, tx, x); err != nil {
			return err
		}
		return s.auditIf(ctx, tx, ev)
	})
}

// DeleteSession implements access.Store.
func (s *Store) DeleteSession(ctx context.Context, hash string, ev *store.Event) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM sessions WHERE hash = $1`, hash); err != nil {
			return err
		}
		return s.auditIf(ctx, tx, ev)
	})
}

// DeleteSessions implements access.Store.
func (s *Store) DeleteSessions(ctx context.Context, userID, keep string, ev store.Event) (int, error) {
	n := 0
	err := s.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM sessions WHERE user_id = $1 AND hash <> $2`, userID, keep)
		if err != nil {
			return err
		}
		n = int(tag.RowsAffected())
		if ev.Details == nil {
			ev.Details = map[string]any{}
		}
		ev.Details["sessions_ended"] = n
		return s.appendAudit(ctx, tx, ev)
	})
	return n, err
}

const tokenCols = `id, user_id, name, role, hash, created_at, expires_at, last_used_at, revoked_at, mac`

// scanToken reads a token; one whose MAC fails does not exist.
func (s *Store) scanToken(r pgx.Row) (access.APIToken, error) {
	var t access.APIToken
	var role string
	var created, expires, used, revoked int64
	var mac []byte
	if err := r.Scan(&t.ID, &t.UserID, &t.Name, &role, &t.Hash, &created, &expires, &used, &revoked, &mac); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return t, access.ErrNotFound
		}
		return t, err
	}
	t.Role = access.Role(role)
	t.CreatedAt, t.ExpiresAt, t.LastUsedAt, t.RevokedAt = fromNanos(created), fromNanos(expires), fromNanos(used), fromNanos(revoked)
	if !s.in.Verify(mac, macToken, []byte(t.ID), []byte(t.UserID), []byte(t.Role), []byte(t.Hash), store.Int64(expires), store.Int64(revoked)) {
		return access.APIToken{}, access.ErrNotFound
	}
	return t, nil
}

// CreateToken implements access.Store.
func (s *Store) CreateToken(ctx context.Context, t access.APIToken, ev store.Event) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO api_tokens(`+tokenCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, 0, 0, $8)`,
			t.ID, t.UserID, t.Name, string(t.Role), t.Hash, nanos(t.CreatedAt), nanos(t.ExpiresAt), s.tokenMAC(t)); err != nil {
			return err
		}
		return s.appendAudit(ctx, tx, ev)
	})
}

// TokenByHash implements access.Store.
func (s *Store) TokenByHash(ctx context.Context, hash string) (access.APIToken, error) {
	return s.scanToken(s.pool.QueryRow(ctx, `SELECT `+tokenCols+` FROM api_tokens WHERE hash = $1`, hash))
}

// Token implements access.Store.
func (s *Store) Token(ctx context.Context, id string) (access.APIToken, error) {
	return s.scanToken(s.pool.QueryRow(ctx, `SELECT `+tokenCols+` FROM api_tokens WHERE id = $1`, id))
}

// Tokens implements access.Store ("" lists every user's).
func (s *Store) Tokens(ctx context.Context, userID string) ([]access.APIToken, error) {
	q, args := `SELECT `+tokenCols+` FROM api_tokens ORDER BY created_at`, []any{}
	if userID != "" {
		q, args = `SELECT `+tokenCols+` FROM api_tokens WHERE user_id = $1 ORDER BY created_at`, []any{userID}
	}
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (access.APIToken, error) { return s.scanToken(r) })
}

// RevokeToken implements access.Store. The row is read FOR UPDATE: of two
// replicas revoking one token, the second waits, sees it revoked and
// neither writes nor audits again (SQLite's single writer gave that).
func (s *Store) RevokeToken(ctx context.Context, id string, at time.Time, ev store.Event) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		t, err := s.scanToken(tx.QueryRow(ctx, `SELECT `+tokenCols+` FROM api_tokens WHERE id = $1 FOR UPDATE`, id))
		if err != nil {
			return err
		}
		if !t.RevokedAt.IsZero() {
			return nil
		}
		t.RevokedAt = at
		if _, err := tx.Exec(ctx, `UPDATE api_tokens SET revoked_at = $1, mac = $2 WHERE id = $3`, nanos(at), s.tokenMAC(t), id); err != nil {
			return err
		}
		return s.appendAudit(ctx, tx, ev)
	})
}

// TouchToken implements access.Store.
func (s *Store) TouchToken(ctx context.Context, id string, at time.Time) error {
	_, err := s.pool.Exec(ctx, `UPDATE api_tokens SET last_used_at = $1 WHERE id = $2`, nanos(at), id)
	return err
}

const throttleCols = `key, failures, last_failure, blocked_until`

func scanThrottle(r pgx.Row) (access.Throttle, error) {
	var t access.Throttle
	var last, until int64
	err := r.Scan(&t.Key, &t.Failures, &last, &until)
	t.LastFailure, t.BlockedUntil = fromNanos(last), fromNanos(until)
	return t, err
}

// Throttles implements access.Store (in the order of keys).
func (s *Store) Throttles(ctx context.Context, keys ...string) ([]access.Throttle, error) {
	var out []access.Throttle
	for _, k := range keys {
		t, err := scanThrottle(s.pool.QueryRow(ctx, `SELECT `+throttleCols+` FROM login_throttles WHERE key = $1`, k))
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// ActiveThrottles implements access.Store.
func (s *Store) ActiveThrottles(ctx context.Context, since time.Time) ([]access.Throttle, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+throttleCols+` FROM login_throttles
		WHERE last_failure >= $1 ORDER BY blocked_until DESC, key COLLATE "C"`, nanos(since))
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (access.Throttle, error) { return scanThrottle(r) })
}

// RecordFailure implements access.Store: the counter's row is created if
// missing and locked before it is read, so failures counted at once by
// several replicas all count.
func (s *Store) RecordFailure(ctx context.Context, key string, now time.Time, window time.Duration, block func(int) time.Duration) (access.Throttle, error) {
	t := access.Throttle{Key: key}
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO login_throttles(`+throttleCols+`) VALUES ($1, 0, 0, 0) ON CONFLICT (key) DO NOTHING`, key); err != nil {
			return err
		}
		var last int64
		if err := tx.QueryRow(ctx, `SELECT failures, last_failure FROM login_throttles WHERE key = $1 FOR UPDATE`, key).Scan(&t.Failures, &last); err != nil {
			return err
		}
		t.Count(fromNanos(last), now, window, block)
		_, err := tx.Exec(ctx, `UPDATE login_throttles SET failures = $2, last_failure = $3, blocked_until = $4 WHERE key = $1`,
			key, t.Failures, nanos(t.LastFailure), nanos(t.BlockedUntil))
		return err
	})
	return t, err
}

// ClearThrottle implements access.Store.
func (s *Store) ClearThrottle(ctx context.Context, key string, ev *store.Event) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		q, args := `DELETE FROM login_throttles WHERE key = $1`, []any{key}
		if key == "" {
			q, args = `DELETE FROM login_throttles`, nil
		}
		if _, err := tx.Exec(ctx, q, args...); err != nil {
			return err
		}
		return s.auditIf(ctx, tx, ev)
	})
}

// MFA implements access.Store.
func (s *Store) MFA(ctx context.Context, userID string) (access.MFA, error) {
	var m access.MFA
	var sealed []byte
	err := s.pool.QueryRow(ctx, `SELECT sealed FROM user_totp WHERE user_id = $1`, userID).Scan(&sealed)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return m, err
	}
	m.TOTP = len(sealed) > 0
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM user_recovery_codes WHERE user_id = $1 AND used_at = 0`, userID).Scan(&m.RecoveryCodes); err != nil {
		return m, err
	}
	m.Passkeys, err = s.countPasskeys(ctx, userID)
	return m, err
}

// TOTP implements access.Store.
func (s *Store) TOTP(ctx context.Context, userID string) (access.TOTPRecord, error) {
	var r access.TOTPRecord
	err := s.pool.QueryRow(ctx, `SELECT sealed, pending, last_step FROM user_totp WHERE user_id = $1`, userID).Scan(&r.Sealed, &r.Pending, &r.LastStep)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, access.ErrNotFound
	}
	return r, err
}

// PutTOTP implements access.Store.
func (s *Store) PutTOTP(ctx context.Context, userID string, r access.TOTPRecord, ev *store.Event) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO user_totp(user_id, sealed, pending, last_step) VALUES ($1, $2, $3, $4)
			ON CONFLICT(user_id) DO UPDATE SET sealed = excluded.sealed, pending = excluded.pending, last_step = excluded.last_step`,
			userID, r.Sealed, r.Pending, r.LastStep); err != nil {
			return err
		}
		return s.auditIf(ctx, tx, ev)
	})
}

// UseTOTPStep implements access.Store: one conditional UPDATE. Of two
// replicas using the same step, the second waits on the row lock, then
// PostgreSQL evaluates the condition again on the row the first wrote,
// finds the step used and updates nothing.
func (s *Store) UseTOTPStep(ctx context.Context, userID string, step int64) error {
	tag, err := s.pool.Exec(ctx, `UPDATE user_totp SET last_step = $1 WHERE user_id = $2 AND last_step < $1`, step, userID)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return access.ErrSecondFactor
	}
	return nil
}

// SetRecoveryCodes implements access.Store.
func (s *Store) SetRecoveryCodes(ctx context.Context, userID string, hashes []string, ev *store.Event) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		// The user's row lock orders two replicas replacing the codes at
		// once: without it, each would delete the old set and both new
		// sets would stay valid, twice as many codes as either showed.
		if _, err := tx.Exec(ctx, `SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE`, userID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM user_recovery_codes WHERE user_id = $1`, userID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO user_recovery_codes(user_id, hash) SELECT $1, h FROM unnest($2::text[]) AS h`,
			userID, hashes); err != nil {
			return err
		}
		return s.auditIf(ctx, tx, ev)
	})
}

// UseRecoveryCode implements access.Store: one conditional UPDATE, so a
// code used by two replicas at once passes once (see UseTOTPStep).
func (s *Store) UseRecoveryCode(ctx context.Context, userID, hash string, at time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE user_recovery_codes SET used_at = $1 WHERE user_id = $2 AND hash = $3 AND used_at = 0`, nanos(at), userID, hash)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return access.ErrSecondFactor
	}
	return nil
}

// ResetMFA implements access.Store.
func (s *Store) ResetMFA(ctx context.Context, userID string, ev store.Event) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		for _, q := range []string{`DELETE FROM user_totp WHERE user_id = $1`, `DELETE FROM user_recovery_codes WHERE user_id = $1`,
			`DELETE FROM sessions WHERE user_id = $1`} {
			if _, err := tx.Exec(ctx, q, userID); err != nil {
				return err
			}
		}
		if err := resetPasskeys(ctx, tx, userID); err != nil {
			return err
		}
		return s.appendAudit(ctx, tx, ev)
	})
}

const settingSetup = "setup_token"

// PutSetupToken implements access.Store.
func (s *Store) PutSetupToken(ctx context.Context, hash string, expires time.Time) error {
	return s.PutSetting(ctx, settingSetup, fmt.Sprintf("%s %d", hash, nanos(expires)), nil)
}

// SetupToken implements access.Store.
func (s *Store) SetupToken(ctx context.Context) (string, time.Time, error) {
	v, err := s.Setting(ctx, settingSetup)
	if errors.Is(err, store.ErrNotFound) {
		return "", time.Time{}, access.ErrNotFound
	}
	if err != nil {
		return "", time.Time{}, err
	}
	var hash string
	var exp int64
	if _, err := fmt.Sscanf(v, "%s %d", &hash, &exp); err != nil {
		return "", time.Time{}, access.ErrNotFound
	}
	return hash, fromNanos(exp), nil
}

// firstUserLockKey is the advisory lock CreateFirstUser holds until its
// transaction ends.
const firstUserLockKey = 0x636f6c6c66697273 // "collfirs"

// CreateFirstUser implements access.Store. Replicas racing to create the
// first user take an advisory lock first, so they run one after the
// other: the second counts the admin the first committed and gets
// ErrConflict, as it would in SQLite, rather than both counting none and
// each creating an admin (their logins differ, so no unique key stops it).
func (s *Store) CreateFirstUser(ctx context.Context, u access.User, hash string, now time.Time, ev store.Event) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(firstUserLockKey)); err != nil {
			return fmt.Errorf("take the first-user lock: %w", err)
		}
		var n int
		if err := tx.QueryRow(ctx, adminsSQL).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("%w: the platform has an administrator already", access.ErrConflict)
		}
		// Burning the token is what checks it: DELETE ... RETURNING.
		var v string
		var mac []byte
		err := tx.QueryRow(ctx, `DELETE FROM settings WHERE key = $1 RETURNING value, mac`, settingSetup).Scan(&v, &mac)
		if err != nil || !s.in.Verify(mac, store.MACSetting, []byte(settingSetup), []byte(v)) {
			return access.ErrUnauthenticated
		}
		var want string
		var exp int64
		if _, err := fmt.Sscanf(v, "%s %d", &want, &exp); err != nil || want != hash || now.UnixNano() >= exp {
			return access.ErrUnauthenticated // rolls the DELETE back: the token stays
		}
		if err := s.insertUser(ctx, tx, u); err != nil {
			return err
		}
		return s.appendAudit(ctx, tx, ev)
	})
}

// PutDeviceGrant implements access.Store.
func (s *Store) PutDeviceGrant(ctx context.Context, g access.DeviceGrant) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO device_grants(code_hash, user_code, created_at, expires_at, source) VALUES ($1, $2, $3, $4, $5)`,
		g.CodeHash, g.UserCode, nanos(g.CreatedAt), nanos(g.ExpiresAt), g.Source)
	if isUnique(err) {
		return fmt.Errorf("%w: user code taken, try again", access.ErrConflict)
	}
	return err
}

// DeviceGrant implements access.Store.
func (s *Store) DeviceGrant(ctx context.Context, codeHash string) (access.DeviceGrant, error) {
	var g access.DeviceGrant
	var created, expires, approved, consumed int64
	err := s.pool.QueryRow(ctx, `SELECT code_hash, user_code, created_at, expires_at, source, user_id, approved_at, consumed_at
		FROM device_grants WHERE code_hash = $1`, codeHash).Scan(&g.CodeHash, &g.UserCode, &created, &expires, &g.Source, &g.UserID, &approved, &consumed)
	if errors.Is(err, pgx.ErrNoRows) {
		return g, access.ErrNotFound
	}
	g.CreatedAt, g.ExpiresAt, g.ApprovedAt, g.ConsumedAt = fromNanos(created), fromNanos(expires), fromNanos(approved), fromNanos(consumed)
	return g, err
}

// ApproveDevice implements access.Store: a conditional UPDATE, so of two
// approvals of one grant (two users, two replicas) one wins.
func (s *Store) ApproveDevice(ctx context.Context, userCode, userID string, at time.Time, ev store.Event) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE device_grants SET user_id = $1, approved_at = $2
			WHERE user_code = $3 AND approved_at = 0 AND expires_at > $2`, userID, nanos(at), userCode)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return access.ErrNotFound
		}
		return s.appendAudit(ctx, tx, ev)
	})
}

// ConsumeDevice implements access.Store: a conditional UPDATE, so two
// polls at once get one token.
func (s *Store) ConsumeDevice(ctx context.Context, codeHash string, at time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE device_grants SET consumed_at = $1 WHERE code_hash = $2 AND approved_at <> 0 AND consumed_at = 0`, nanos(at), codeHash)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return access.ErrNotFound
	}
	return nil
}
