package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/collectorhq/collector/platform/store"
)

// settingIntegrity marks a database whose trust-bearing rows all carry
// integrity MACs. Its own MAC proves the key matches the database, and
// its value says which rows: integrityBeforePools, from the versions
// whose collectors' pools carried none, or integrityWithPools. Only the
// platform can write either, so a database cannot be sent back to "no
// pool MACs yet" (to have memberships adopted again) without a copy of
// its own older marker.
const settingIntegrity = "integrity"

const (
	integrityBeforePools = "1"
	integrityWithPools   = "2"
)

// ErrIntegrityAdoption refuses a database that has rows without MACs after
// its data directory already adopted integrity MACs: something outside the
// platform edited it (or it was swapped for an older copy).
var ErrIntegrityAdoption = errors.New("the database has rows without integrity MACs, but its data directory adopted them already: " +
	"the database was edited outside the platform or replaced by an older copy; restore a backup taken with this version")

// adoptIntegrity checks that the integrity key matches the database and,
// for a database written before MACs existed, adds them once, when the
// caller allows it (the data directory has not adopted them yet); for one
// written before pool memberships carried MACs, it adds those once.
func (s *Store) adoptIntegrity(ctx context.Context, allow bool) error {
	v, err := s.Setting(ctx, settingIntegrity)
	switch {
	case err == nil && v == integrityWithPools:
		return nil
	case err == nil && v == integrityBeforePools:
		return s.adoptPools(ctx)
	case err == nil:
		return fmt.Errorf("the database's integrity marker is %q, which this version does not know: "+
			"it was written by a newer version of the platform; run that version", v)
	case errors.Is(err, store.ErrIntegrity):
		return fmt.Errorf("%w: the integrity key (derived from the data key) is not the one this database was written with: "+
			"start the platform with the data directory (data.key) that belongs to this database", err)
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return err
	}
	empty, err := s.empty(ctx)
	if err != nil {
		return err
	}
	if !empty && !allow {
		return ErrIntegrityAdoption
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		if !empty {
			if err := s.macExisting(ctx, tx); err != nil {
				return err
			}
		}
		return s.putSetting(ctx, tx, settingIntegrity, integrityWithPools)
	})
}

// adoptPools MACs the pool memberships of a database whose other rows
// carry MACs already (written by a version before pools carried them),
// once: the marker moves on to integrityWithPools in the same
// transaction, and the memberships so trusted are audited.
func (s *Store) adoptPools(ctx context.Context) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		members, err := s.macPools(ctx, tx)
		if err != nil {
			return err
		}
		if len(members) > 0 {
			if err := s.appendAudit(ctx, tx, store.PoolsAdoptedEvent(s.now(), members)); err != nil {
				return err
			}
		}
		return s.putSetting(ctx, tx, settingIntegrity, integrityWithPools)
	})
	if err != nil {
		return fmt.Errorf("add integrity MACs to the collectors' pools: %w", err)
	}
	return nil
}

// macPools writes the pool MAC of every collector as its row is now, and
// returns the memberships (collector ID to pool) of those in a pool.
func (s *Store) macPools(ctx context.Context, tx *sql.Tx) (map[string]string, error) {
	all := map[string]string{}
	if err := scanEach(ctx, tx, `SELECT id, pool FROM collectors`, func(r *sql.Rows) error {
		var id, pool string
		err := r.Scan(&id, &pool)
		all[id] = pool
		return err
	}); err != nil {
		return nil, err
	}
	members := map[string]string{}
	for id, pool := range all {
		if _, err := tx.ExecContext(ctx, `UPDATE collectors SET pool_mac = ? WHERE id = ?`, store.PoolMAC(s.in, id, pool), id); err != nil {
			return nil, err
		}
		if pool != "" {
			members[id] = pool
		}
	}
	return members, nil
}

// empty reports whether the database holds no collector, integration or
// audit entry yet.
func (s *Store) empty(ctx context.Context) (bool, error) {
	var n int
	err := s.r.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM collectors) + (SELECT count(*) FROM integrations) +
		(SELECT count(*) FROM audit_log) + (SELECT count(*) FROM settings)`).Scan(&n)
	return n == 0, err
}

// macExisting adds MACs to the rows written before they existed. Access
// tokens are dropped instead (collectors exchange a new assertion on 401).
func (s *Store) macExisting(ctx context.Context, tx *sql.Tx) error {
	type row struct {
		id         string
		a, b       []byte
		exp        int64
		collector  string
		value, key string
	}
	var cols []row
	if err := scanEach(ctx, tx, `SELECT id, identity_key, hpke_key FROM collectors WHERE enrolled_at != 0`, func(r *sql.Rows) error {
		var c row
		err := r.Scan(&c.id, &c.a, &c.b)
		cols = append(cols, c)
		return err
	}); err != nil {
		return err
	}
	for _, c := range cols {
		if _, err := tx.ExecContext(ctx, `UPDATE collectors SET keys_mac = ? WHERE id = ?`, s.keysMAC(c.id, c.a, c.b), c.id); err != nil {
			return err
		}
	}
	if _, err := s.macPools(ctx, tx); err != nil {
		return err
	}
	var toks []row
	if err := scanEach(ctx, tx, `SELECT hash, collector_id, expires_at FROM enrollment_tokens`, func(r *sql.Rows) error {
		var t row
		err := r.Scan(&t.id, &t.collector, &t.exp)
		toks = append(toks, t)
		return err
	}); err != nil {
		return err
	}
	for _, t := range toks {
		if _, err := tx.ExecContext(ctx, `UPDATE enrollment_tokens SET mac = ? WHERE hash = ?`, s.tokenMAC(t.id, t.collector, t.exp), t.id); err != nil {
			return err
		}
	}
	var sets []row
	if err := scanEach(ctx, tx, `SELECT key, value FROM settings`, func(r *sql.Rows) error {
		var v row
		err := r.Scan(&v.key, &v.value)
		sets = append(sets, v)
		return err
	}); err != nil {
		return err
	}
	for _, v := range sets {
		if err := s.putSetting(ctx, tx, v.key, v.value); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM access_tokens`); err != nil {
		return err
	}
	var entries []store.AuditEntry
	if err := scanEach(ctx, tx, `SELECT seq, time, actor, action, target, details, prev_hash, hash, mac FROM audit_log ORDER BY seq`, func(r *sql.Rows) error {
		e, err := scanAudit(r)
		entries = append(entries, e)
		return err
	}); err != nil {
		return err
	}
	for _, e := range entries {
		store.SealEntry(s.in, &e)
		if _, err := tx.ExecContext(ctx, `UPDATE audit_log SET mac = ? WHERE seq = ?`, e.MAC, e.Seq); err != nil {
			return err
		}
	}
	return nil
}

// scanEach runs query in tx and calls f on each row.
func scanEach(ctx context.Context, tx *sql.Tx, query string, f func(*sql.Rows) error) error {
	rows, err := tx.QueryContext(ctx, query)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := f(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}
