package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/collectorhq/collector/platform/access"
	"github.com/collectorhq/collector/platform/store"
	qsqlite "github.com/collectorhq/collector/queue/sqlite"
)

// Integrity domains of the passkey rows.
const (
	macPasskey  = "passkey-v1"
	macCeremony = "passkey-ceremony-v1"
)

// passkeyMAC covers what lets a passkey sign a user in: whose it is, for
// which relying party, and which key. A row added or edited outside the
// platform (another user's credential, a swapped key) grants nothing.
func (s *Store) passkeyMAC(pk access.Passkey) []byte {
	return s.in.Sum(macPasskey, []byte(pk.ID), []byte(pk.UserID), []byte(pk.RPID), pk.CredentialID, pk.PublicKey)
}

func (s *Store) ceremonyMAC(c access.PasskeyCeremony) []byte {
	return s.in.Sum(macCeremony, []byte(c.SessionHash), []byte(c.Kind), []byte(c.UserID), c.Data, store.Int64(nanos(c.ExpiresAt)))
}

// PasskeyHandle implements access.Store.
func (s *Store) PasskeyHandle(ctx context.Context, userID string) ([]byte, error) {
	var h []byte
	err := s.r.QueryRowContext(ctx, `SELECT handle FROM passkey_users WHERE user_id = ?`, userID).Scan(&h)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, access.ErrNotFound
	}
	return h, err
}

// EnsurePasskeyHandle implements access.Store.
func (s *Store) EnsurePasskeyHandle(ctx context.Context, userID string, handle []byte) ([]byte, error) {
	var h []byte
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO passkey_users(user_id, handle) VALUES (?, ?) ON CONFLICT(user_id) DO NOTHING`, userID, handle); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT handle FROM passkey_users WHERE user_id = ?`, userID).Scan(&h)
	})
	if isForeignKey(err) {
		return nil, access.ErrNotFound
	}
	return h, err
}

func isForeignKey(err error) bool {
	return err != nil && strings.Contains(err.Error(), "FOREIGN KEY constraint failed")
}

const passkeyCols = `id, user_id, rp_id, credential_id, public_key, sign_count, aaguid, transports, backup_eligible, backup_state,
	user_verified, attestation_type, attestation_format, attachment, name, created_at, last_used_at, mac`

// scanPasskey reads a passkey; a row whose MAC fails is ErrIntegrity.
func (s *Store) scanPasskey(r scanner) (access.Passkey, error) {
	var pk access.Passkey
	var transports string
	var count, created, used int64
	var mac []byte
	if err := r.Scan(&pk.ID, &pk.UserID, &pk.RPID, &pk.CredentialID, &pk.PublicKey, &count, &pk.AAGUID, &transports,
		&pk.BackupEligible, &pk.BackupState, &pk.UserVerified, &pk.AttestationType, &pk.AttestationFormat, &pk.Attachment,
		&pk.Name, &created, &used, &mac); err != nil {
		return pk, err
	}
	if !s.in.Verify(mac, macPasskey, []byte(pk.ID), []byte(pk.UserID), []byte(pk.RPID), pk.CredentialID, pk.PublicKey) {
		return access.Passkey{}, fmt.Errorf("passkey %s: %w", pk.ID, store.ErrIntegrity)
	}
	pk.SignCount, pk.CreatedAt, pk.LastUsedAt = uint32(count), fromNanos(created), fromNanos(used)
	if transports != "" {
		pk.Transports = strings.Split(transports, ",")
	}
	return pk, nil
}

// Passkeys implements access.Store.
func (s *Store) Passkeys(ctx context.Context, userID string) ([]access.Passkey, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+passkeyCols+` FROM passkeys WHERE user_id = ? ORDER BY created_at, id`, userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []access.Passkey
	for rows.Next() {
		pk, err := s.scanPasskey(rows)
		if errors.Is(err, store.ErrIntegrity) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, pk)
	}
	return out, rows.Err()
}

// CreatePasskey implements access.Store.
func (s *Store) CreatePasskey(ctx context.Context, pk access.Passkey, ev *store.Event) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO passkeys(`+passkeyCols+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
			pk.ID, pk.UserID, pk.RPID, pk.CredentialID, pk.PublicKey, int64(pk.SignCount), pk.AAGUID, strings.Join(pk.Transports, ","),
			pk.BackupEligible, pk.BackupState, pk.UserVerified, pk.AttestationType, pk.AttestationFormat, pk.Attachment,
			pk.Name, nanos(pk.CreatedAt), nanos(pk.LastUsedAt), s.passkeyMAC(pk))
		if isUnique(err) {
			return fmt.Errorf("%w: this passkey is registered already", access.ErrConflict)
		}
		if err != nil {
			return err
		}
		if ev == nil {
			return nil
		}
		return s.appendAudit(ctx, tx, *ev)
	})
}

// UsePasskey implements access.Store: one UPDATE whose condition is the
// counter check, so of two requests with the same counter one fails.
func (s *Store) UsePasskey(ctx context.Context, id string, signCount uint32, backupState bool, at time.Time) error {
	n := int64(signCount)
	res, err := s.exec(ctx, `UPDATE passkeys SET sign_count = ?, backup_state = ?, last_used_at = ?
		WHERE id = ? AND (sign_count < ? OR (? = 0 AND sign_count = 0))`, n, backupState, nanos(at), id, n, n)
	if err != nil {
		return err
	}
	if c, _ := res.RowsAffected(); c == 0 {
		return access.ErrSecondFactor
	}
	return nil
}

// DeletePasskey implements access.Store.
func (s *Store) DeletePasskey(ctx context.Context, userID, id string, ev store.Event) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM passkeys WHERE id = ? AND user_id = ?`, id, userID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return access.ErrNotFound
		}
		return s.appendAudit(ctx, tx, ev)
	})
}

// countPasskeys counts the user's passkeys whose MAC holds: a row written
// outside the platform is no second factor.
func (s *Store) countPasskeys(ctx context.Context, userID string) (int, error) {
	pks, err := s.Passkeys(ctx, userID)
	return len(pks), err
}

// resetPasskeys deletes the user's passkeys and user handle (the next
// passkey gets a new handle); pending ceremonies go with the sessions.
func (s *Store) resetPasskeys(ctx context.Context, tx *sql.Tx, userID string) error {
	for _, q := range []string{`DELETE FROM passkeys WHERE user_id = ?`, `DELETE FROM passkey_users WHERE user_id = ?`} {
		if _, err := tx.ExecContext(ctx, q, userID); err != nil {
			return err
		}
	}
	return nil
}

// PutPasskeyCeremony implements access.Store. A session that no longer
// exists cannot hold one (ErrUnauthenticated).
func (s *Store) PutPasskeyCeremony(ctx context.Context, c access.PasskeyCeremony) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM passkey_ceremonies WHERE expires_at <= ?`, nanos(s.now())); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO passkey_ceremonies(session_hash, kind, user_id, data, expires_at, mac) VALUES (?,?,?,?,?,?)
			ON CONFLICT(session_hash, kind) DO UPDATE SET user_id = excluded.user_id, data = excluded.data,
			expires_at = excluded.expires_at, mac = excluded.mac`,
			c.SessionHash, c.Kind, c.UserID, c.Data, nanos(c.ExpiresAt), s.ceremonyMAC(c))
		return err
	})
	if isForeignKey(err) {
		return access.ErrUnauthenticated
	}
	return err
}

// TakePasskeyCeremony implements access.Store: DELETE ... RETURNING, so
// a ceremony is finished at most once even by concurrent requests.
func (s *Store) TakePasskeyCeremony(ctx context.Context, sessionHash, kind string, now time.Time) (access.PasskeyCeremony, error) {
	c := access.PasskeyCeremony{SessionHash: sessionHash, Kind: kind}
	var expires int64
	var mac []byte
	err := s.w.QueryRowContext(ctx, `DELETE FROM passkey_ceremonies WHERE session_hash = ? AND kind = ?
		RETURNING user_id, data, expires_at, mac`, sessionHash, kind).Scan(&c.UserID, &c.Data, &expires, &mac)
	if errors.Is(err, sql.ErrNoRows) {
		return access.PasskeyCeremony{}, access.ErrNotFound
	}
	if err != nil {
		return access.PasskeyCeremony{}, qsqlite.Classify(err)
	}
	c.ExpiresAt = fromNanos(expires)
	if !s.in.Verify(mac, macCeremony, []byte(c.SessionHash), []byte(c.Kind), []byte(c.UserID), c.Data, store.Int64(expires)) ||
		!now.Before(c.ExpiresAt) {
		return access.PasskeyCeremony{}, access.ErrNotFound
	}
	return c, nil
}
