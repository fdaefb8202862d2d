package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/collectorhq/collector/platform/store"
)

// RotateCollectorKeys implements store.Store: a compare-and-swap on the
// identity key under the collector's row lock, so that of two rotations
// signed by the same key (two replicas) one wins and the other finds the
// key stale.
func (s *Store) RotateCollectorKeys(ctx context.Context, r store.KeyRotation, ev store.Event) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		var enrolled int64
		var identity, hpke, mac []byte
		err := tx.QueryRow(ctx, `SELECT enrolled_at, identity_key, hpke_key, keys_mac FROM collectors WHERE id = $1 FOR NO KEY UPDATE`,
			r.CollectorID).Scan(&enrolled, &identity, &hpke, &mac)
		switch {
		case errors.Is(err, pgx.ErrNoRows), err == nil && enrolled == 0:
			return fmt.Errorf("collector %s: %w", r.CollectorID, store.ErrNotEnrolled)
		case err != nil:
			return fmt.Errorf("look up collector %s: %w", r.CollectorID, err)
		case !s.in.Verify(mac, store.MACCollectorKeys, []byte(r.CollectorID), identity, hpke):
			return fmt.Errorf("keys of collector %s: %w", r.CollectorID, store.ErrIntegrity)
		case !bytes.Equal(identity, r.OldIdentityKey):
			return fmt.Errorf("collector %s: %w", r.CollectorID, store.ErrStaleKey)
		}
		if _, err := tx.Exec(ctx, `UPDATE collectors SET identity_key = $1, hpke_key = $2, keys_mac = $3 WHERE id = $4`,
			r.IdentityKey, r.HPKEKey, s.keysMAC(r.CollectorID, r.IdentityKey, r.HPKEKey), r.CollectorID); err != nil {
			return fmt.Errorf("record collector keys: %w", err)
		}
		p := store.PreviousKey{IdentityKey: r.OldIdentityKey, Successor: r.IdentityKey, Until: r.PreviousUntil}
		if _, err := tx.Exec(ctx, `INSERT INTO collector_previous_keys(collector_id, identity_key, successor, valid_until, mac)
			VALUES ($1, $2, $3, $4, $5) ON CONFLICT (collector_id) DO UPDATE SET identity_key = excluded.identity_key,
			successor = excluded.successor, valid_until = excluded.valid_until, mac = excluded.mac`,
			r.CollectorID, p.IdentityKey, p.Successor, p.Until.UnixNano(), store.PreviousKeyMAC(s.in, r.CollectorID, p)); err != nil {
			return fmt.Errorf("record previous identity key: %w", err)
		}
		return s.appendAudit(ctx, tx, ev)
	})
}

// keysQuerier is the pool or a transaction.
type keysQuerier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// PreviousCollectorKey implements store.Store.
func (s *Store) PreviousCollectorKey(ctx context.Context, id string) (store.PreviousKey, error) {
	return s.previousKey(ctx, s.pool, id)
}

func (s *Store) previousKey(ctx context.Context, q keysQuerier, id string) (store.PreviousKey, error) {
	var p store.PreviousKey
	var until int64
	var mac []byte
	err := q.QueryRow(ctx, `SELECT identity_key, successor, valid_until, mac FROM collector_previous_keys WHERE collector_id = $1`,
		id).Scan(&p.IdentityKey, &p.Successor, &until, &mac)
	if errors.Is(err, pgx.ErrNoRows) {
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
func (s *Store) keyAccepted(ctx context.Context, q keysQuerier, id string, current []byte, fp string, now time.Time) (bool, error) {
	return store.KeyAccepted(fp, current, now, func() (store.PreviousKey, error) { return s.previousKey(ctx, q, id) })
}
