package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/collectorhq/collector/platform/store"
)

// RotateCollectorKeys implements store.Store: a compare-and-swap on the
// identity key, so that of two rotations signed by the same key one wins
// and the other finds the key stale.
func (s *Store) RotateCollectorKeys(ctx context.Context, r store.KeyRotation, ev store.Event) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		var enrolled int64
		var identity, hpke, mac []byte
		err := tx.QueryRowContext(ctx, `SELECT enrolled_at, identity_key, hpke_key, keys_mac FROM collectors WHERE id = ?`,
			r.CollectorID).Scan(&enrolled, &identity, &hpke, &mac)
		switch {
		case errors.Is(err, sql.ErrNoRows), err == nil && enrolled == 0:
			return fmt.Errorf("collector %s: %w", r.CollectorID, store.ErrNotEnrolled)
		case err != nil:
			return fmt.Errorf("look up collector %s: %w", r.CollectorID, err)
		case !s.in.Verify(mac, store.MACCollectorKeys, []byte(r.CollectorID), identity, hpke):
			return fmt.Errorf("keys of collector %s: %w", r.CollectorID, store.ErrIntegrity)
		case !bytes.Equal(identity, r.OldIdentityKey):
			return fmt.Errorf("collector %s: %w", r.CollectorID, store.ErrStaleKey)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE collectors SET identity_key = ?, hpke_key = ?, keys_mac = ? WHERE id = ?`,
			r.IdentityKey, r.HPKEKey, s.keysMAC(r.CollectorID, r.IdentityKey, r.HPKEKey), r.CollectorID); err != nil {
			return fmt.Errorf("record collector keys: %w", err)
		}
		p := store.PreviousKey{IdentityKey: r.OldIdentityKey, Successor: r.IdentityKey, Until: r.PreviousUntil}
		if _, err := tx.ExecContext(ctx, `INSERT INTO collector_previous_keys(collector_id, identity_key, successor, valid_until, mac)
			VALUES (?, ?, ?, ?, ?) ON CONFLICT(collector_id) DO UPDATE SET identity_key = excluded.identity_key,
			successor = excluded.successor, valid_until = excluded.valid_until, mac = excluded.mac`,
			r.CollectorID, p.IdentityKey, p.Successor, p.Until.UnixNano(), store.PreviousKeyMAC(s.in, r.CollectorID, p)); err != nil {
			return fmt.Errorf("record previous identity key: %w", err)
		}
		return s.appendAudit(ctx, tx, ev)
	})
}

// PreviousCollectorKey implements store.Store.
func (s *Store) PreviousCollectorKey(ctx context.Context, id string) (store.PreviousKey, error) {
	return s.previousKey(ctx, s.r, id)
}

func (s *Store) previousKey(ctx context.Context, q rowQuerier, id string) (store.PreviousKey, error) {
	var p store.PreviousKey
	var until int64
	var mac []byte
	err := q.QueryRowContext(ctx, `SELECT identity_key, successor, valid_until, mac FROM collector_previous_keys WHERE collector_id = ?`,
		id).Scan(&p.IdentityKey, &p.Successor, &until, &mac)
	if errors.Is(err, sql.ErrNoRows) {
		return p, fmt.Errorf("previous key of collector %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return p, fmt.Errorf("look up the previous key of collector %s: %w", id, err)
	}
	p.Until = time.Unix(0, until).UTC()
	if !store.VerifyPreviousKey(s.in, id, p, mac) {
		return store.PreviousKey{}, fmt.Errorf("previous key of collector %s: %w", id, store.ErrIntegrity)
	}
	return p, nil
}

// keyAccepted is store.KeyAccepted with the previous key read on q.
func (s *Store) keyAccepted(ctx context.Context, q rowQuerier, id string, current []byte, fp string, now time.Time) (bool, error) {
	return store.KeyAccepted(fp, current, now, func() (store.PreviousKey, error) { return s.previousKey(ctx, q, id) })
}
