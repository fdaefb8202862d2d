package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/collectorhq/collector/queue"
	"github.com/collectorhq/collector/queue/internal/notify"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

var _ queue.Queue = (*Queue)(nil)

// BusyTimeoutMillis is the busy_timeout OpenDB sets: how long a write waits
// for another writer of the same file before failing with SQLITE_BUSY.
const BusyTimeoutMillis = 5000

// maxConns bounds OpenDB's pool: one writer at a time plus readers.
const maxConns = 8

// Queue is a queue.Queue stored in SQLite. Create it with New or Open.
type Queue struct {
	db     *sql.DB
	rdb    *sql.DB // readers; db when no read pool was given
	ownsDB bool
	cfg    queue.Config
	now    func() time.Time
	onPark func(collectorID string)

	// wmu makes this Queue a single writer: its write transactions never
	// contend with each other for SQLite's lock.
	wmu    sync.Mutex
	stmts  stmtCache // on db
	rstmts stmtCache // on rdb

	notifier *notify.Notifier
	// waiting counts the Next calls parked per collector (Waiting).
	waitMu  sync.Mutex
	waiting map[string]int
	// members are the known members of each pool, by collector ID.
	members map[string]map[string]member
	// lazyExpired counts leases Next expired since the last ExpireLeases.
	lazyExpired atomic.Int64

	closed    chan struct{}
	closeOnce sync.Once
}

// OpenDB opens (creating if needed) the SQLite file at path with the settings
// the queue expects: WAL journal, busy_timeout, synchronous=NORMAL (durable
// across a crash of the process; a power loss can drop the last commits) and
// foreign keys on. The platform can open its database with it and pass the
// *sql.DB to New.
func OpenDB(path string) (*sql.DB, error) {
	if path == "" {
		return nil, errors.New("open sqlite database: empty path")
	}
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", BusyTimeoutMillis))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(ON)")
	dsn := "file:" + escapePath(path) + "?" + q.Encode()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open sqlite database %q: %w", path, err)
	}
	// Keep connections: opening one re-runs the pragmas, and database/sql's
	// default of two idle connections makes concurrent Next calls churn.
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite database %q: %w", path, err)
	}
	return db, nil
}

// escapePath keeps a path with '?' or '#' from being read as DSN parameters.
func escapePath(p string) string {
	return strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(p)
}

// Option is an optional knob of New and Open.
type Option func(*Queue)

// WithClock makes the queue read the time from now: lease expiries,
// creation and finish times (tests move it). Waiting stays in real time.
func WithClock(now func() time.Time) Option { return func(q *Queue) { q.now = now } }

// WithReader sends reads that need no lock (Get, List, Depth, the cheap
// look before a lease) to a read pool on the same file, so that they never
// wait for, or hold, the writer.
func WithReader(r *sql.DB) Option { return func(q *Queue) { q.rdb = r } }

// WithParkHook calls f each time a Next call of collectorID, having found
// nothing, is about to wait: tests use it to know a long poll is parked
// instead of sleeping. f runs on Next's goroutine and must not block. (When
// the queue is built elsewhere, Waiting tells the same by polling.)
func WithParkHook(f func(collectorID string)) Option { return func(q *Queue) { q.onPark = f } }

// Open opens a standalone queue in the SQLite file at path (see OpenDB).
// Close closes the database.
func Open(path string, cfg queue.Config, opts ...Option) (*Queue, error) {
	db, err := OpenDB(path)
	if err != nil {
		return nil, err
	}
	q, err := New(db, cfg, opts...)
	if err != nil {
		db.Close()
		return nil, err
	}
	q.ownsDB = true
	return q, nil
}

// New returns a queue on an open SQLite database, typically the platform's,
// after migrating its queue_ tables. The database must be in WAL mode (New
// switches it if it is not) and its connections must have a busy_timeout
// (open it with OpenDB, or add _pragma=busy_timeout(5000) to the DSN). The
// caller keeps ownership of db: Close does not close it.
func New(db *sql.DB, cfg queue.Config, opts ...Option) (*Queue, error) {
	if db == nil {
		return nil, errors.New("new sqlite queue: nil *sql.DB")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new sqlite queue: %w", err)
	}
	// time.Now is only the default clock; every stored time reads q.now.
	q := &Queue{db: db, cfg: cfg, now: time.Now, notifier: notify.New(), waiting: map[string]int{}, members: map[string]map[string]member{}, closed: make(chan struct{})}
	for _, o := range opts {
		o(q)
	}
	if q.rdb == nil {
		q.rdb = db
	}
	ctx := context.Background()
	if err := checkDB(ctx, db); err != nil {
		return nil, fmt.Errorf("new sqlite queue: %w", err)
	}
	if err := q.migrate(ctx); err != nil {
		return nil, fmt.Errorf("new sqlite queue: %w", err)
	}
	if err := q.stmts.prepare(ctx, db, preparedQueries); err != nil {
		q.stmts.close()
		return nil, fmt.Errorf("new sqlite queue: %w", err)
	}
	if err := q.rstmts.prepare(ctx, q.rdb, readQueries); err != nil {
		q.stmts.close()
		q.rstmts.close()
		return nil, fmt.Errorf("new sqlite queue: %w", err)
	}
	go q.pollLoop()
	return q, nil
}

// checkDB refuses a database on which concurrent writers would fail at once,
// and turns WAL on (a persistent property of the file) so readers never block
// the writer.
func checkDB(ctx context.Context, db *sql.DB) error {
	var busy int
	if err := db.QueryRowContext(ctx, `PRAGMA busy_timeout`).Scan(&busy); err != nil {
		return fmt.Errorf("read busy_timeout: %w", err)
	}
	if busy <= 0 {
		return errors.New("the database has no busy_timeout, so concurrent writes would fail with SQLITE_BUSY: open it with sqlite.OpenDB or add _pragma=busy_timeout(5000) to the DSN")
	}
	var mode string
	if err := db.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil {
		return fmt.Errorf("read journal_mode: %w", err)
	}
	if strings.EqualFold(mode, "wal") || strings.EqualFold(mode, "memory") {
		return nil
	}
	if err := db.QueryRowContext(ctx, `PRAGMA journal_mode=WAL`).Scan(&mode); err != nil {
		return fmt.Errorf("set journal_mode=WAL: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("set journal_mode=WAL: the database stayed in %q mode", mode)
	}
	return nil
}

// Close wakes waiting Next calls with queue.ErrClosed and, for a queue made by
// Open, closes the database. It is safe to call more than once.
func (q *Queue) Close() error {
	var err error
	q.closeOnce.Do(func() {
		close(q.closed)
		// Take the writer lock so no write transaction is cut short.
		q.wmu.Lock()
		defer q.wmu.Unlock()
		q.stmts.close()
		q.rstmts.close()
		if q.ownsDB {
			err = q.db.Close()
		}
	})
	return err
}

func (q *Queue) isClosed() bool {
	select {
	case <-q.closed:
		return true
	default:
		return false
	}
}
