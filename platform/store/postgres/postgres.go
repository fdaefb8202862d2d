package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/collectorhq/collector/platform/access"
	"github.com/collectorhq/collector/platform/store"
	"github.com/collectorhq/collector/queue"
	qpg "github.com/collectorhq/collector/queue/postgres"
)

var (
	_ store.Store  = (*Store)(nil)
	_ access.Store = (*Store)(nil)
)

// Store is the PostgreSQL backend of store.Store. The job queue
// (queue/postgres) and the record store (Records) live in the same
// database and share its connection pool.
type Store struct {
	pool *pgxpool.Pool
	in   *store.Integrity
	now  func() time.Time
	q    *qpg.Queue
	recs *Records
}

// Options are what Open needs besides the URL.
type Options struct {
	// IntegrityKey (32 bytes, kept outside the database) keys the MACs of
	// credentials, collector keys, settings and the audit chain. Required.
	IntegrityKey []byte
	// PreviousIntegrityKeys are the other keys of a data key rotation in
	// progress: MACs under them still verify, and `platform keys rotate`
	// re-computes them under IntegrityKey.
	PreviousIntegrityKeys [][]byte
	// Queue configures the job queue in the same database.
	Queue queue.Config
	// Now is the clock (time.Now if nil).
	Now func() time.Time
	// MaxConns bounds the connection pool (0: the URL's pool_max_conns,
	// else twice the CPUs, at least 8).
	MaxConns int
	// QueueOptions are passed to the queue (tests: a park hook).
	QueueOptions []qpg.Option
}

// Open connects to the database at url (a postgres:// URL or a key=value
// string), applies the pending migrations (once, whichever replica gets
// there first), opens the job queue and the record store on the same pool
// and returns the store.
func Open(ctx context.Context, url string, o Options) (*Store, error) {
	in, err := store.NewIntegrity(o.IntegrityKey, o.PreviousIntegrityKeys...)
	if err != nil {
		return nil, fmt.Errorf("open postgres store: %w", err)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	pc, err := qpg.PoolConfig(url, o.MaxConns)
	if err != nil {
		return nil, fmt.Errorf("open postgres store: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("open postgres store: %w", err)
	}
	s := &Store{pool: pool, in: in, now: o.Now}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres store: %w", err)
	}
	qopts := append([]qpg.Option{qpg.WithClock(o.Now)}, o.QueueOptions...)
	if s.q, err = qpg.New(ctx, pool, o.Queue, qopts...); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres store: %w", err)
	}
	s.recs = &Records{s: s}
	return s, nil
}

// Queue returns the job queue kept in the same database.
func (s *Store) Queue() *qpg.Queue { return s.q }

// Records returns the record store kept in the same database.
func (s *Store) Records() *Records { return s.recs }

// Pool returns the connection pool (tests, benchmarks).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Close closes the queue and the pool. It is safe to call more than once.
func (s *Store) Close() error {
	if s.q != nil {
		s.q.Close()
	}
	s.pool.Close()
	return nil
}

// tx runs fn in one transaction (READ COMMITTED); fn's error rolls it
// back. A full disk is queue.ErrStorageFull.
func (s *Store) tx(ctx context.Context, fn func(pgx.Tx) error) error {
	return classify(pgx.BeginFunc(ctx, s.pool, fn))
}

// qtx runs fn in one transaction that may also act on the job queue.
func (s *Store) qtx(ctx context.Context, fn func(*qpg.Tx) error) error {
	return classify(s.q.Update(ctx, fn))
}

// classify marks PostgreSQL's "disk full" (SQLSTATE 53100) and "out of
// memory" (53200) as queue.ErrStorageFull, which the API answers with 503.
func classify(err error) error {
	var pe *pgconn.PgError
	if err == nil || errors.Is(err, queue.ErrStorageFull) || !errors.As(err, &pe) {
		return err
	}
	if pe.Code == "53100" || pe.Code == "53200" {
		return fmt.Errorf("%w: %w", queue.ErrStorageFull, err)
	}
	return err
}

// isUnique reports a unique_violation (SQLSTATE 23505).
func isUnique(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// auditLockKey is the advisory lock under which an audit entry is
// appended: replicas append one at a time, each after the head it read, so
// the chain never forks (seq is also the primary key).
const auditLockKey = 0x636f6c6c61756469 // "collaudi"

// appendAudit adds ev to the chain inside tx, with its MAC. The lock is
// held until tx ends: audited acts of all replicas commit one at a time.
func (s *Store) appendAudit(ctx context.Context, tx pgx.Tx, ev store.Event) error {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(auditLockKey)); err != nil {
		return fmt.Errorf("take the audit lock: %w", err)
	}
	prevSeq, prevHash := int64(0), store.GenesisHash
	err := tx.QueryRow(ctx, `SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1`).Scan(&prevSeq, &prevHash)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("read audit head: %w", err)
	}
	e, err := store.NewEntry(prevSeq, prevHash, ev)
	if err != nil {
		return err
	}
	store.SealEntry(s.in, &e)
	_, err = tx.Exec(ctx, `INSERT INTO audit_log(seq, time, actor, action, target, details, prev_hash, hash, mac)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, e.Seq, e.Time.UnixNano(), e.Actor, e.Action, e.Target, e.Details, e.PrevHash, e.Hash, e.MAC)
	if err != nil {
		return fmt.Errorf("append audit entry: %w", err)
	}
	return nil
}

// Setting returns a setting's value, store.ErrNotFound, or
// store.ErrIntegrity when its MAC does not verify.
func (s *Store) Setting(ctx context.Context, key string) (string, error) {
	var v string
	var mac []byte
	err := s.pool.QueryRow(ctx, `SELECT value, mac FROM settings WHERE key = $1`, key).Scan(&v, &mac)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", store.ErrNotFound
	}
	if err != nil {
		return "", err
	}
	if !s.in.Verify(mac, store.MACSetting, []byte(key), []byte(v)) {
		return "", fmt.Errorf("setting %q: %w", key, store.ErrIntegrity)
	}
	return v, nil
}

// PutSetting sets a setting, auditing ev (if given) in the same transaction.
func (s *Store) PutSetting(ctx context.Context, key, value string, ev *store.Event) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		if err := s.putSetting(ctx, tx, key, value); err != nil || ev == nil {
			return err
		}
		return s.appendAudit(ctx, tx, *ev)
	})
}

func (s *Store) putSetting(ctx context.Context, tx pgx.Tx, key, value string) error {
	_, err := tx.Exec(ctx, `INSERT INTO settings(key, value, mac) VALUES ($1, $2, $3)
		ON CONFLICT(key) DO UPDATE SET value = excluded.value, mac = excluded.mac`,
		key, value, s.in.Sum(store.MACSetting, []byte(key), []byte(value)))
	return err
}

// AppendAudit records ev on its own.
func (s *Store) AppendAudit(ctx context.Context, ev store.Event) error {
	return s.tx(ctx, func(tx pgx.Tx) error { return s.appendAudit(ctx, tx, ev) })
}

const auditColumns = `seq, time, actor, action, target, details, prev_hash, hash, mac`

// AuditEntries returns up to limit entries after seq after.
func (s *Store) AuditEntries(ctx context.Context, after int64, limit int) ([]store.AuditEntry, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+auditColumns+` FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2`, after, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, scanAudit)
}

func scanAudit(row pgx.CollectableRow) (store.AuditEntry, error) {
	var e store.AuditEntry
	var t int64
	err := row.Scan(&e.Seq, &t, &e.Actor, &e.Action, &e.Target, &e.Details, &e.PrevHash, &e.Hash, &e.MAC)
	e.Time = time.Unix(0, t).UTC()
	return e, err
}

// AuditHead returns the newest entry's seq and hash.
func (s *Store) AuditHead(ctx context.Context) (store.Checkpoint, error) {
	var c store.Checkpoint
	err := s.pool.QueryRow(ctx, `SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1`).Scan(&c.Seq, &c.Hash)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Checkpoint{}, nil
	}
	return c, err
}

// VerifyAudit walks the whole chain in seq order, checking each MAC and,
// with expect, that the chain still holds that entry.
func (s *Store) VerifyAudit(ctx context.Context, expect ...store.Checkpoint) (store.VerifyResult, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+auditColumns+` FROM audit_log ORDER BY seq`)
	if err != nil {
		return store.VerifyResult{}, err
	}
	defer rows.Close()
	v := store.NewVerifier(s.in, expect...)
	for rows.Next() {
		e, err := scanAudit(rows)
		if err != nil {
			return store.VerifyResult{}, err
		}
		if !v.Next(e) {
			break
		}
	}
	return v.Result(), rows.Err()
}

// Prune drops expired enrollment tokens, access tokens, jtis, device
// grants, sessions and old heartbeat rollups.
func (s *Store) Prune(ctx context.Context, now time.Time) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		n := now.UnixNano()
		for _, q := range []string{
			`DELETE FROM access_tokens WHERE expires_at <= $1`,
			`DELETE FROM used_jtis WHERE expires_at <= $1`,
			// Keep used/revoked/expired enrollment tokens a day, so a replay
			// gets a precise answer ("already used") rather than "invalid".
			`DELETE FROM enrollment_tokens WHERE expires_at <= $1 - 86400000000000`,
			`DELETE FROM device_grants WHERE expires_at <= $1`,
			`DELETE FROM sessions WHERE expires_at <= $1`,
		} {
			if _, err := tx.Exec(ctx, q, n); err != nil {
				return err
			}
		}
		return pruneRollups(ctx, tx, now)
	})
}
