package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/collectorhq/collector/platform/access"
	"github.com/collectorhq/collector/platform/store"
)

var _ access.Store = (*Store)(nil)

// Integrity domains of the access rows.
const (
	macUser    = "user-v1"
	macSession = "session-v1"
	macToken   = "api-token-v1"
)

func b(v bool) []byte {
	if v {
		return []byte{1}
	}
	return []byte{0}
}

func (s *Store) userMAC(u access.User) []byte {
	return s.in.Sum(macUser, []byte(u.ID), []byte(u.Login), []byte(u.Role), b(u.Disabled), []byte(u.PasswordHash),
		[]byte(u.SSOIssuer), []byte(u.SSOSubject))
}

func (s *Store) sessionMAC(x access.Session) []byte {
	return s.in.Sum(macSession, []byte(x.Hash), []byte(x.UserID), []byte(x.Stage), store.Int64(nanos(x.MFAAt)),
		store.Int64(nanos(x.ExpiresAt)), []byte(x.Method), []byte(x.SSOSubject))
}

func (s *Store) tokenMACOf(t access.APIToken) []byte {
	return s.in.Sum(macToken, []byte(t.ID), []byte(t.UserID), []byte(t.Role), []byte(t.Hash), store.Int64(nanos(t.ExpiresAt)), store.Int64(nanos(t.RevokedAt)))
}

const userCols = `id, login, display_name, role, disabled, password_hash, sso_issuer, sso_subject, created_at, updated_at, mac`

// scanUser reads a user; a row whose MAC fails is ErrIntegrity: a role or
// password written outside the platform never grants anything.
func (s *Store) scanUser(r scanner) (access.User, error) {
	var u access.User
	var role string
	var created, updated int64
	var mac []byte
	if err := r.Scan(&u.ID, &u.Login, &u.DisplayName, &role, &u.Disabled, &u.PasswordHash, &u.SSOIssuer, &u.SSOSubject, &created, &updated, &mac); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return u, access.ErrNotFound
		}
		return u, err
	}
	u.Role, u.CreatedAt, u.UpdatedAt = access.Role(role), fromNanos(created), fromNanos(updated)
	if !s.in.Verify(mac, macUser, []byte(u.ID), []byte(u.Login), []byte(u.Role), b(u.Disabled), []byte(u.PasswordHash), []byte(u.SSOIssuer), []byte(u.SSOSubject)) {
		return access.User{}, fmt.Errorf("user %s: %w", u.ID, store.ErrIntegrity)
	}
	return u, nil
}

// adminsSQL counts the enabled admins.
const adminsSQL = `SELECT count(*) FROM users WHERE role = 'admin' AND disabled = 0`

// CountAdmins implements access.Store.
func (s *Store) CountAdmins(ctx context.Context) (int, error) {
	var n int
	err := s.r.QueryRowContext(ctx, adminsSQL).Scan(&n)
	return n, err
}

func (s *Store) insertUser(ctx context.Context, tx *sql.Tx, u access.User) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO users(`+userCols+`) VALUES (?,?,?,?,?,?,?,?,?,?,?)`,
		u.ID, u.Login, u.DisplayName, string(u.Role), u.Disabled, u.PasswordHash, u.SSOIssuer, u.SSOSubject,
		nanos(u.CreatedAt), nanos(u.UpdatedAt), s.userMAC(u))
	if isUnique(err) {
		return fmt.Errorf("%w: the login %q (or single sign-on subject) is taken", access.ErrConflict, u.Login)
	}
	return err
}

// CreateUser implements access.Store.
func (s *Store) CreateUser(ctx context.Context, u access.User, ev store.Event) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.insertUser(ctx, tx, u); err != nil {
			return err
		}
		return s.appendAudit(ctx, tx, ev)
	})
}

// User implements access.Store.
func (s *Store) User(ctx context.Context, id string) (access.User, error) {
	return s.scanUser(s.r.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE id = ?`, id))
}

// UserByLogin implements access.Store.
func (s *Store) UserByLogin(ctx context.Context, login string) (access.User, error) {
	return s.scanUser(s.r.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE login = ?`, login))
}

// UserBySSO implements access.Store.
func (s *Store) UserBySSO(ctx context.Context, issuer, subject string) (access.User, error) {
	return s.scanUser(s.r.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE sso_issuer = ? AND sso_subject = ? AND sso_subject != ''`, issuer, subject))
}

// Users implements access.Store. A row that fails its MAC is left out
// (and logged by the caller's checks elsewhere): it grants nothing.
func (s *Store) Users(ctx context.Context) ([]access.User, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+userCols+` FROM users ORDER BY login`)
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
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE users SET display_name = ?, role = ?, disabled = ?, password_hash = ?,
			sso_issuer = ?, sso_subject = ?, updated_at = ?, mac = ? WHERE id = ? AND login = ?`,
			u.DisplayName, string(u.Role), u.Disabled, u.PasswordHash, u.SSOIssuer, u.SSOSubject, nanos(u.UpdatedAt), s.userMAC(u), u.ID, u.Login)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
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

// revokeAll deletes the user's sessions (but keep) and revokes its tokens.
func revokeAll(ctx context.Context, tx *sql.Tx, userID, keep string) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE user_id = ? AND hash != ?`, userID, keep); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `DELETE FROM api_tokens WHERE user_id = ?`, userID)
	return err
}

const sessionCols = `hash, user_id, created_at, last_seen_at, expires_at, stage, mfa_at, method, sso_subject, source, user_agent, mac`

func (s *Store) insertSession(ctx context.Context, tx *sql.Tx, x access.Session) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO sessions(`+sessionCols+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)`,
		x.Hash, x.UserID, nanos(x.CreatedAt), nanos(x.LastSeenAt), nanos(x.ExpiresAt), x.Stage, nanos(x.MFAAt),
		x.Method, x.SSOSubject, x.Source, x.UserAgent, s.sessionMAC(x))
	return err
}

// CreateSession implements access.Store.
func (s *Store) CreateSession(ctx context.Context, x access.Session, ev *store.Event) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.insertSession(ctx, tx, x); err != nil {
			return err
		}
		if ev == nil {
			return nil
		}
		return s.appendAudit(ctx, tx, *ev)
	})
}

// SessionByHash implements access.Store; a session whose MAC fails (its
// stage or second-factor time written outside the platform) does not
// exist.
func (s *Store) SessionByHash(ctx context.Context, hash string) (access.Session, error) {
	var x access.Session
	var created, seen, expires, mfa int64
	var mac []byte
	err := s.r.QueryRowContext(ctx, `SELECT `+sessionCols+` FROM sessions WHERE hash = ?`, hash).Scan(
		&x.Hash, &x.UserID, &created, &seen, &expires, &x.Stage, &mfa, &x.Method, &x.SSOSubject, &x.Source, &x.UserAgent, &mac)
	if errors.Is(err, sql.ErrNoRows) {
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
	_, err := s.exec(ctx, `UPDATE sessions SET last_seen_at = ? WHERE hash = ?`, nanos(at), hash)
	return err
}

// RotateSession implements access.Store.
func (s *Store) RotateSession(ctx context.Context, old string, x access.Session, ev *store.Event) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE hash = ?`, old)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return access.ErrUnauthenticated
		}
		if err := s.insertSession(ctx, tx, x); err != nil {
			return err
		}
		if ev == nil {
			return nil
		}
		return s.appendAudit(ctx, tx, *ev)
	})
}

// DeleteSession implements access.Store.
func (s *Store) DeleteSession(ctx context.Context, hash string, ev *store.Event) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE hash = ?`, hash); err != nil {
			return err
		}
		if ev == nil {
			return nil
		}
		return s.appendAudit(ctx, tx, *ev)
	})
}

// DeleteSessions implements access.Store.
func (s *Store) DeleteSessions(ctx context.Context, userID, keep string, ev store.Event) (int, error) {
	n := 0
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE user_id = ? AND hash != ?`, userID, keep)
		if err != nil {
			return err
		}
		c, _ := res.RowsAffected()
		n = int(c)
		ev.Details = withDetail(ev.Details, "sessions_ended", n)
		return s.appendAudit(ctx, tx, ev)
	})
	return n, err
}

const tokenCols = `id, user_id, name, role, hash, created_at, expires_at, last_used_at, revoked_at, mac`

func (s *Store) scanToken(r scanner) (access.APIToken, error) {
	var t access.APIToken
	var role string
	var created, expires, used, revoked int64
	var mac []byte
	if err := r.Scan(&t.ID, &t.UserID, &t.Name, &role, &t.Hash, &created, &expires, &used, &revoked, &mac); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
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
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO api_tokens(`+tokenCols+`) VALUES (?,?,?,?,?,?,?,?,?,?)`,
			t.ID, t.UserID, t.Name, string(t.Role), t.Hash, nanos(t.CreatedAt), nanos(t.ExpiresAt), 0, 0, s.tokenMACOf(t)); err != nil {
			return err
		}
		return s.appendAudit(ctx, tx, ev)
	})
}

// TokenByHash implements access.Store.
func (s *Store) TokenByHash(ctx context.Context, hash string) (access.APIToken, error) {
	return s.scanToken(s.r.QueryRowContext(ctx, `SELECT `+tokenCols+` FROM api_tokens WHERE hash = ?`, hash))
}

// Token implements access.Store.
func (s *Store) Token(ctx context.Context, id string) (access.APIToken, error) {
	return s.scanToken(s.r.QueryRowContext(ctx, `SELECT `+tokenCols+` FROM api_tokens WHERE id = ?`, id))
}

// Tokens implements access.Store ("" lists every user's).
func (s *Store) Tokens(ctx context.Context, userID string) ([]access.APIToken, error) {
	q, args := `SELECT `+tokenCols+` FROM api_tokens ORDER BY created_at`, []any{}
	if userID != "" {
		q, args = `SELECT `+tokenCols+` FROM api_tokens WHERE user_id = ? ORDER BY created_at`, []any{userID}
	}
	return queryAll(ctx, s.r, s.scanToken, q, args...)
}

// RevokeToken implements access.Store.
func (s *Store) RevokeToken(ctx context.Context, id string, at time.Time, ev store.Event) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		t, err := s.scanToken(tx.QueryRowContext(ctx, `SELECT `+tokenCols+` FROM api_tokens WHERE id = ?`, id))
		if err != nil {
			return err
		}
		if !t.RevokedAt.IsZero() {
			return nil
		}
		t.RevokedAt = at
		if _, err := tx.ExecContext(ctx, `UPDATE api_tokens SET revoked_at = ?, mac = ? WHERE id = ?`, nanos(at), s.tokenMACOf(t), id); err != nil {
			return err
		}
		return s.appendAudit(ctx, tx, ev)
	})
}

// TouchToken implements access.Store.
func (s *Store) TouchToken(ctx context.Context, id string, at time.Time) error {
	_, err := s.exec(ctx, `UPDATE api_tokens SET last_used_at = ? WHERE id = ?`, nanos(at), id)
	return err
}

func scanThrottle(r scanner) (access.Throttle, error) {
	var t access.Throttle
	var last, until int64
	err := r.Scan(&t.Key, &t.Failures, &last, &until)
	t.LastFailure, t.BlockedUntil = fromNanos(last), fromNanos(until)
	return t, err
}

// Throttles implements access.Store.
func (s *Store) Throttles(ctx context.Context, keys ...string) ([]access.Throttle, error) {
	var out []access.Throttle
	for _, k := range keys {
		t, err := scanThrottle(s.r.QueryRowContext(ctx, `SELECT key, failures, last_failure, blocked_until FROM login_throttles WHERE key = ?`, k))
		if errors.Is(err, sql.ErrNoRows) {
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
	return queryAll(ctx, s.r, scanThrottle, `SELECT key, failures, last_failure, blocked_until FROM login_throttles
		WHERE last_failure >= ? ORDER BY blocked_until DESC, key`, nanos(since))
}

// RecordFailure implements access.Store (the one writer serializes it).
func (s *Store) RecordFailure(ctx context.Context, key string, now time.Time, window time.Duration, block func(int) time.Duration) (access.Throttle, error) {
	t := access.Throttle{Key: key}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var last int64
		err := tx.QueryRowContext(ctx, `SELECT failures, last_failure FROM login_throttles WHERE key = ?`, key).Scan(&t.Failures, &last)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		t.Count(fromNanos(last), now, window, block)
		_, err = tx.ExecContext(ctx, `INSERT INTO login_throttles(key, failures, last_failure, blocked_until) VALUES (?,?,?,?)
			ON CONFLICT(key) DO UPDATE SET failures = excluded.failures, last_failure = excluded.last_failure, blocked_until = excluded.blocked_until`,
			t.Key, t.Failures, nanos(t.LastFailure), nanos(t.BlockedUntil))
		return err
	})
	return t, err
}

// ClearThrottle implements access.Store.
func (s *Store) ClearThrottle(ctx context.Context, key string, ev *store.Event) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		q, args := `DELETE FROM login_throttles WHERE key = ?`, []any{key}
		if key == "" {
			q, args = `DELETE FROM login_throttles`, nil
		}
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return err
		}
		if ev == nil {
			return nil
		}
		return s.appendAudit(ctx, tx, *ev)
	})
}

// MFA implements access.Store.
func (s *Store) MFA(ctx context.Context, userID string) (access.MFA, error) {
	var m access.MFA
	var sealed []byte
	err := s.r.QueryRowContext(ctx, `SELECT sealed FROM user_totp WHERE user_id = ?`, userID).Scan(&sealed)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return m, err
	}
	m.TOTP = len(sealed) > 0
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM user_recovery_codes WHERE user_id = ? AND used_at = 0`, userID).Scan(&m.RecoveryCodes); err != nil {
		return m, err
	}
	m.Passkeys, err = s.countPasskeys(ctx, userID)
	return m, err
}

// TOTP implements access.Store.
func (s *Store) TOTP(ctx context.Context, userID string) (access.TOTPRecord, error) {
	var r access.TOTPRecord
	err := s.r.QueryRowContext(ctx, `SELECT sealed, pending, last_step FROM user_totp WHERE user_id = ?`, userID).Scan(&r.Sealed, &r.Pending, &r.LastStep)
	if errors.Is(err, sql.ErrNoRows) {
		return r, access.ErrNotFound
	}
	return r, err
}

// PutTOTP implements access.Store.
func (s *Store) PutTOTP(ctx context.Context, userID string, r access.TOTPRecord, ev *store.Event) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO user_totp(user_id, sealed, pending, last_step) VALUES (?,?,?,?)
			ON CONFLICT(user_id) DO UPDATE SET sealed = excluded.sealed, pending = excluded.pending, last_step = excluded.last_step`,
			userID, r.Sealed, r.Pending, r.LastStep); err != nil {
			return err
		}
		if ev == nil {
			return nil
		}
		return s.appendAudit(ctx, tx, *ev)
	})
}

// UseTOTPStep implements access.Store: one UPDATE, so two requests with
// the same code cannot both pass.
func (s *Store) UseTOTPStep(ctx context.Context, userID string, step int64) error {
	res, err := s.exec(ctx, `UPDATE user_totp SET last_step = ? WHERE user_id = ? AND last_step < ?`, step, userID, step)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return access.ErrSecondFactor
	}
	return nil
}

// SetRecoveryCodes implements access.Store.
func (s *Store) SetRecoveryCodes(ctx context.Context, userID string, hashes []string, ev *store.Event) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM user_recovery_codes WHERE user_id = ?`, userID); err != nil {
			return err
		}
		for _, h := range hashes {
			if _, err := tx.ExecContext(ctx, `INSERT INTO user_recovery_codes(user_id, hash) VALUES (?, ?)`, userID, h); err != nil {
				return err
			}
		}
		if ev == nil {
			return nil
		}
		return s.appendAudit(ctx, tx, *ev)
	})
}

// UseRecoveryCode implements access.Store.
func (s *Store) UseRecoveryCode(ctx context.Context, userID, hash string, at time.Time) error {
	res, err := s.exec(ctx, `UPDATE user_recovery_codes SET used_at = ? WHERE user_id = ? AND hash = ? AND used_at = 0`, nanos(at), userID, hash)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return access.ErrSecondFactor
	}
	return nil
}

// ResetMFA implements access.Store.
func (s *Store) ResetMFA(ctx context.Context, userID string, ev store.Event) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		for _, q := range []string{`DELETE FROM user_totp WHERE user_id = ?`, `DELETE FROM user_recovery_codes WHERE user_id = ?`,
			`DELETE FROM sessions WHERE user_id = ?`} {
			if _, err := tx.ExecContext(ctx, q, userID); err != nil {
				return err
			}
		}
		if err := s.resetPasskeys(ctx, tx, userID); err != nil {
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

// CreateFirstUser implements access.Store.
func (s *Store) CreateFirstUser(ctx context.Context, u access.User, hash string, now time.Time, ev store.Event) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, adminsSQL).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("%w: the platform has an administrator already", access.ErrConflict)
		}
		var v string
		var mac []byte
		err := tx.QueryRowContext(ctx, `SELECT value, mac FROM settings WHERE key = ?`, settingSetup).Scan(&v, &mac)
		if err != nil || !s.in.Verify(mac, store.MACSetting, []byte(settingSetup), []byte(v)) {
			return access.ErrUnauthenticated
		}
		var want string
		var exp int64
		if _, err := fmt.Sscanf(v, "%s %d", &want, &exp); err != nil || want != hash || now.UnixNano() >= exp {
			return access.ErrUnauthenticated
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM settings WHERE key = ?`, settingSetup); err != nil {
			return err
		}
		if err := s.insertUser(ctx, tx, u); err != nil {
			return err
		}
		return s.appendAudit(ctx, tx, ev)
	})
}

// PutDeviceGrant implements access.Store.
func (s *Store) PutDeviceGrant(ctx context.Context, g access.DeviceGrant) error {
	_, err := s.exec(ctx, `INSERT INTO device_grants(code_hash, user_code, created_at, expires_at, source) VALUES (?,?,?,?,?)`,
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
	err := s.r.QueryRowContext(ctx, `SELECT code_hash, user_code, created_at, expires_at, source, user_id, approved_at, consumed_at
		FROM device_grants WHERE code_hash = ?`, codeHash).Scan(&g.CodeHash, &g.UserCode, &created, &expires, &g.Source, &g.UserID, &approved, &consumed)
	if errors.Is(err, sql.ErrNoRows) {
		return g, access.ErrNotFound
	}
	g.CreatedAt, g.ExpiresAt, g.ApprovedAt, g.ConsumedAt = fromNanos(created), fromNanos(expires), fromNanos(approved), fromNanos(consumed)
	return g, err
}

// ApproveDevice implements access.Store.
func (s *Store) ApproveDevice(ctx context.Context, userCode, userID string, at time.Time, ev store.Event) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE device_grants SET user_id = ?, approved_at = ?
			WHERE user_code = ? AND approved_at = 0 AND expires_at > ?`, userID, nanos(at), userCode, nanos(at))
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return access.ErrNotFound
		}
		return s.appendAudit(ctx, tx, ev)
	})
}

// ConsumeDevice implements access.Store.
func (s *Store) ConsumeDevice(ctx context.Context, codeHash string, at time.Time) error {
	res, err := s.exec(ctx, `UPDATE device_grants SET consumed_at = ? WHERE code_hash = ? AND approved_at != 0 AND consumed_at = 0`, nanos(at), codeHash)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return access.ErrNotFound
	}
	return nil
}
