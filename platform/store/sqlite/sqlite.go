package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/collectorhq/collector/platform/store"
	"github.com/collectorhq/collector/queue"
	qsqlite "github.com/collectorhq/collector/queue/sqlite"
)

var _ store.Store = (*Store)(nil)

// Store is the SQLite backend of store.Store. The job queue (queue/sqlite)
// and the record store (Records) live in the same file, so that an act
// that spans them commits once.
type Store struct {
	path string
	w    *sql.DB // the one writer: MaxOpenConns(1), BEGIN IMMEDIATE
	r    *sql.DB // readers
	ckpt *sql.DB // the checkpointer's own connection
	in   *store.Integrity
	now  func() time.Time
	q    *qsqlite.Queue
	recs *Records

	// Statements of the hot path (a heartbeat every 30 s from every
	// collector), prepared once: parsing SQL costs more than running it.
	accessLookup, beatUpdate, beatInsert, beatPrune, beatRollup *sql.Stmt

	stop chan struct{}
	done chan struct{}
}

// busyTimeout bounds how long a connection waits on another process's lock.
const busyTimeout = 10 * time.Second

// Options are what Open needs besides the path.
type Options struct {
	// IntegrityKey (32 bytes, kept outside the database) keys the MACs of
	// credentials, collector keys, settings and the audit chain. Required.
	IntegrityKey []byte
	// PreviousIntegrityKeys are the other keys of a data key rotation in
	// progress: MACs under them still verify, and `platform keys rotate`
	// re-computes them under IntegrityKey.
	PreviousIntegrityKeys [][]byte
	// Queue configures the job queue in the same file.
	Queue queue.Config
	// Now is the clock (time.Now if nil).
	Now func() time.Time
	// QueueOptions are passed to the queue (tests: a park hook).
	QueueOptions []qsqlite.Option
	// AdoptIntegrity allows adding MACs to the rows of a database written
	// before they existed. The platform allows it only until its data
	// directory records the adoption, so that an attacker cannot make it
	// launder rows by deleting the marker from the database.
	AdoptIntegrity bool
}

// Open opens (creating if needed) the database file at path, applies the
// pending migrations, opens the job queue and the record store in the same
// file and returns the store.
func Open(ctx context.Context, path string, o Options) (*Store, error) {
	if path == "" {
		return nil, errors.New("open sqlite store: empty path")
	}
	in, err := store.NewIntegrity(o.IntegrityKey, o.PreviousIntegrityKeys...)
	if err != nil {
		return nil, fmt.Errorf("open sqlite store: %w", err)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open sqlite store: %w", err)
	}
	s := &Store{path: path, in: in, now: o.Now, stop: make(chan struct{}), done: make(chan struct{})}
	if s.w, err = openDB(path, roleWriter); err != nil {
		return nil, err
	}
	if s.r, err = openDB(path, roleReader); err != nil {
		s.w.Close()
		return nil, err
	}
	if s.ckpt, err = openDB(path, roleCheckpointer); err != nil {
		s.w.Close()
		s.r.Close()
		return nil, err
	}
	go s.checkpointLoop()
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	if err := s.prepare(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	qopts := append([]qsqlite.Option{qsqlite.WithReader(s.r), qsqlite.WithClock(o.Now)}, o.QueueOptions...)
	if s.q, err = qsqlite.New(s.w, o.Queue, qopts...); err != nil {
		s.Close()
		return nil, fmt.Errorf("open job queue in %s: %w", path, err)
	}
	if s.recs, err = newRecords(ctx, s); err != nil {
		s.Close()
		return nil, fmt.Errorf("open record store in %s: %w", path, err)
	}
	if err := s.adoptIntegrity(ctx, o.AdoptIntegrity); err != nil {
		s.Close()
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	// The file may hold secrets (sealed, but still): owner only.
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		_ = os.Chmod(p, 0o600)
	}
	return s, nil
}

type role int

// writerCacheKiB is the writer connection's page cache, at most (readers
// keep SQLite's default, 2 MiB each).
const writerCacheKiB = 256 << 10

const (
	roleWriter role = iota
	roleReader
	roleCheckpointer
)

func openDB(path string, role role) (*sql.DB, error) {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(1)")
	// No connection checkpoints when it commits: checkpointLoop does, on its
	// own connection, so a checkpoint's writes and fsyncs never hold up a
	// commit (with synchronous=NORMAL, a WAL commit itself does not fsync).
	q.Add("_pragma", "wal_autocheckpoint(0)")
	switch role {
	case roleWriter:
		q.Set("_txlock", "immediate")
		// The one writer's page cache, filled as used (SQLite's default
		// is 2 MiB). A batch of records whose keys are spread over large
		// tables (directory DNs) dirties pages all over their indexes: with
		// the default, the cache spilled dirty pages to the WAL in the
		// middle of every batch and read evicted ones back, 97 µs a record
		// in the LDAP benchmark (BenchmarkLDAPUsers' profile: 40% in WAL
		// writes, 15% in page reads). writerCacheKiB bounds it.
		q.Add("_pragma", fmt.Sprintf("cache_size(-%d)", writerCacheKiB))
	case roleReader:
		q.Add("_pragma", "query_only(1)")
	}
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	if role != roleReader {
		db.SetMaxOpenConns(1)
	} else {
		db.SetMaxOpenConns(8)
		db.SetMaxIdleConns(8)
	}
	db.SetConnMaxIdleTime(0)
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	return db, nil
}

// Queue returns the job queue kept in the same file.
func (s *Store) Queue() *qsqlite.Queue { return s.q }

// Records returns the record store kept in the same file.
func (s *Store) Records() *Records { return s.recs }

// Path returns the database file's path.
func (s *Store) Path() string { return s.path }

// Close stops the checkpointer, checkpoints what is left and closes the
// handles.
func (s *Store) Close() error {
	select {
	case <-s.stop:
		return nil // already closed
	default:
	}
	close(s.stop)
	<-s.done
	if s.q != nil {
		s.q.Close()
	}
	for _, st := range []*sql.Stmt{s.accessLookup, s.beatUpdate, s.beatInsert, s.beatPrune, s.beatRollup} {
		if st != nil {
			st.Close()
		}
	}
	_, _ = s.ckpt.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`)
	return errors.Join(s.r.Close(), s.w.Close(), s.ckpt.Close())
}

// checkpointInterval is how often checkpointLoop copies the WAL back into
// the database file.
const checkpointInterval = time.Second

// checkpointLoop runs passive checkpoints, which never block readers or the
// writer: they copy what no reader still needs and leave the rest for the
// next round. Once a round copies everything, the next commit starts the WAL
// file over, so it stays bounded.
func (s *Store) checkpointLoop() {
	defer close(s.done)
	t := time.NewTicker(checkpointInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			_, _ = s.ckpt.Exec(`PRAGMA wal_checkpoint(PASSIVE)`)
		}
	}
}

// tx runs fn in one IMMEDIATE transaction on the writer. A full disk is
// queue.ErrStorageFull (qsqlite.Classify).
func (s *Store) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return qsqlite.Classify(err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return qsqlite.Classify(err)
	}
	return qsqlite.Classify(tx.Commit())
}

// exec runs one write on the writer outside a transaction of tx's (its
// own). A full disk is queue.ErrStorageFull, as in tx.
func (s *Store) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	res, err := s.w.ExecContext(ctx, query, args...)
	return res, qsqlite.Classify(err)
}

// appendAudit adds ev to the chain inside tx, with its MAC.
func (s *Store) appendAudit(ctx context.Context, tx *sql.Tx, ev store.Event) error {
	prevSeq, prevHash := int64(0), store.GenesisHash
	err := tx.QueryRowContext(ctx, `SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1`).Scan(&prevSeq, &prevHash)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("read audit head: %w", err)
	}
	e, err := store.NewEntry(prevSeq, prevHash, ev)
	if err != nil {
		return err
	}
	store.SealEntry(s.in, &e)
	_, err = tx.ExecContext(ctx, `INSERT INTO audit_log(seq, time, actor, action, target, details, prev_hash, hash, mac)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, e.Seq, e.Time.UnixNano(), e.Actor, e.Action, e.Target, e.Details, e.PrevHash, e.Hash, e.MAC)
	if err != nil {
		return fmt.Errorf("append audit entry: %w", err)
	}
	return nil
}

func isUnique(err error) bool {
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
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

// Setting returns a setting's value, store.ErrNotFound, or
// store.ErrIntegrity when its MAC does not verify.
func (s *Store) Setting(ctx context.Context, key string) (string, error) {
	var v string
	var mac []byte
	err := s.r.QueryRowContext(ctx, `SELECT value, mac FROM settings WHERE key = ?`, key).Scan(&v, &mac)
	if errors.Is(err, sql.ErrNoRows) {
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
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.putSetting(ctx, tx, key, value); err != nil || ev == nil {
			return err
		}
		return s.appendAudit(ctx, tx, *ev)
	})
}

func (s *Store) putSetting(ctx context.Context, tx *sql.Tx, key, value string) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO settings(key, value, mac) VALUES (?, ?, ?)
		ON CONFLICT(key) DO UPDATE SET value = excluded.value, mac = excluded.mac`,
		key, value, s.in.Sum(store.MACSetting, []byte(key), []byte(value)))
	return err
}

// AppendAudit records ev on its own.
func (s *Store) AppendAudit(ctx context.Context, ev store.Event) error {
	return s.tx(ctx, func(tx *sql.Tx) error { return s.appendAudit(ctx, tx, ev) })
}

// AuditEntries returns up to limit entries after seq after.
func (s *Store) AuditEntries(ctx context.Context, after int64, limit int) ([]store.AuditEntry, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT seq, time, actor, action, target, details, prev_hash, hash, mac
		FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?`, after, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.AuditEntry
	for rows.Next() {
		e, err := scanAudit(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

func scanAudit(rows *sql.Rows) (store.AuditEntry, error) {
	var e store.AuditEntry
	var t int64
	err := rows.Scan(&e.Seq, &t, &e.Actor, &e.Action, &e.Target, &e.Details, &e.PrevHash, &e.Hash, &e.MAC)
	e.Time = time.Unix(0, t).UTC()
	return e, err
}

// AuditHead returns the newest entry's seq and hash.
func (s *Store) AuditHead(ctx context.Context) (store.Checkpoint, error) {
	var c store.Checkpoint
	err := s.r.QueryRowContext(ctx, `SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1`).Scan(&c.Seq, &c.Hash)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Checkpoint{}, nil
	}
	return c, err
}

// VerifyAudit walks the whole chain in seq order, checking each MAC and,
// with expect, that the chain still holds that entry.
func (s *Store) VerifyAudit(ctx context.Context, expect ...store.Checkpoint) (store.VerifyResult, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT seq, time, actor, action, target, details, prev_hash, hash, mac
		FROM audit_log ORDER BY seq`)
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

// Prune drops expired enrollment tokens, access tokens and jtis.
func (s *Store) Prune(ctx context.Context, now time.Time) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		n := now.UnixNano()
		for _, q := range []string{
			`DELETE FROM access_tokens WHERE expires_at <= ?`,
			`DELETE FROM used_jtis WHERE expires_at <= ?`,
			// Keep used/revoked/expired enrollment tokens a day, so a replay
			// gets a precise answer ("already used") rather than "invalid".
			`DELETE FROM enrollment_tokens WHERE expires_at <= ? - 86400000000000`,
			`DELETE FROM device_grants WHERE expires_at <= ?`,
			`DELETE FROM sessions WHERE expires_at <= ?`,
		} {
			if _, err := tx.ExecContext(ctx, q, n); err != nil {
				return err
			}
		}
		return pruneRollups(ctx, tx, now)
	})
}

// prepare prepares the hot statements. It runs before any transaction: on
// the one-connection writer, preparing inside a transaction would wait for a
// second connection forever.
func (s *Store) prepare(ctx context.Context) error {
	var err error
	for _, p := range []struct {
		db  *sql.DB
		dst **sql.Stmt
		sql string
	}{
		{s.r, &s.accessLookup, sqlAccessLookup},
		{s.w, &s.beatUpdate, sqlBeatUpdate},
		{s.w, &s.beatInsert, sqlBeatInsert},
		{s.w, &s.beatPrune, sqlBeatPrune},
		{s.w, &s.beatRollup, sqlBeatRollup},
	} {
		if *p.dst, err = p.db.PrepareContext(ctx, p.sql); err != nil {
			return fmt.Errorf("prepare %q: %w", p.sql, err)
		}
	}
	return nil
}

// Backup writes a consistent copy of the database at path to dest (which
// must not exist), while the platform may be running: `VACUUM INTO` reads
// one snapshot of the WAL-mode file and writes a compact copy. The copy is
// 0600; restoring it means stopping the platform and putting it in place
// of the database file (with its -wal and -shm files removed).
func Backup(ctx context.Context, path, dest string) error {
	if _, err := os.Stat(dest); err == nil {
		return fmt.Errorf("backup to %s: the file exists; choose a new name", dest)
	}
	db, err := openDB(path, roleReader)
	if err != nil {
		return err
	}
	defer db.Close()
	// VACUUM INTO writes; the reader role is query_only.
	if _, err := db.ExecContext(ctx, `PRAGMA query_only(0)`); err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, dest); err != nil {
		return fmt.Errorf("backup %s to %s: %w", path, dest, err)
	}
	return os.Chmod(dest, 0o600)
}
