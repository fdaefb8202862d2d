package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"

	"github.com/collectorhq/collector/queue"
)

// lockSQL is the first statement of every write transaction. database/sql
// begins transactions DEFERRED, and New takes a shared *sql.DB whose DSN (and
// so _txlock=immediate) it does not control. A first statement that writes
// takes SQLite's write lock at once, waiting up to busy_timeout for it, as
// BEGIN IMMEDIATE would; without it, a transaction that read first would
// have to upgrade its lock, which fails with SQLITE_BUSY without waiting
// when another process wrote meanwhile. It changes no row.
const lockSQL = `UPDATE queue_migrations SET version = version WHERE 0`

// wtx is a write transaction that runs the statements New prepared (database/sql
// re-prepares them once per pooled connection): parsing each statement anew
// was about a third of the hot paths' CPU time.
type wtx struct {
	q  *Queue
	tx *sql.Tx
}

// QueryRowContext runs a cached statement in the transaction.
func (w *wtx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := w.q.stmts.get(query); st != nil {
		return w.tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return w.tx.QueryRowContext(ctx, query, args...)
}

// QueryContext runs a cached statement in the transaction.
func (w *wtx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := w.q.stmts.get(query); st != nil {
		return w.tx.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	return w.tx.QueryContext(ctx, query, args...)
}

// ExecContext runs a cached statement in the transaction.
func (w *wtx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := w.q.stmts.get(query); st != nil {
		return w.tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return w.tx.ExecContext(ctx, query, args...)
}

// write runs fn in a write transaction, holding the queue's writer lock so
// that this queue's writes never contend with each other for SQLite's lock.
// fn's error rolls the transaction back. database/sql rolls it back too if
// ctx ends, so a pooled connection never keeps an open transaction.
func (q *Queue) write(ctx context.Context, fn func(w *wtx) error) error {
	return Classify(q.writeTx(ctx, fn))
}

func (q *Queue) writeTx(ctx context.Context, fn func(w *wtx) error) error {
	if q.isClosed() {
		return queue.ErrClosed
	}
	q.wmu.Lock()
	defer q.wmu.Unlock()
	if q.isClosed() { // Close may have closed the database while we waited.
		return queue.ErrClosed
	}
	tx, err := q.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() // no-op after Commit
	w := &wtx{q: q, tx: tx}
	if _, err := w.ExecContext(ctx, lockSQL); err != nil {
		return fmt.Errorf("take the write lock: %w", err)
	}
	if err := fn(w); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// queryRow runs a cached read statement on the read pool, outside any
// transaction.
func (q *Queue) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	if st := q.rstmts.get(query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return q.rdb.QueryRowContext(ctx, query, args...)
}

// reader is the read pool.
func (q *Queue) reader() *sql.DB { return q.rdb }

// stmtCache holds the statements New prepared, by query text. A query not
// in it runs unprepared. Nothing is prepared later: preparing on the *sql.DB
// takes a connection from the pool, and doing that inside a transaction
// deadlocks a pool of one connection (a common way to run SQLite).
type stmtCache struct {
	mu sync.RWMutex
	m  map[string]*sql.Stmt
}

func (c *stmtCache) prepare(ctx context.Context, db *sql.DB, queries []string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]*sql.Stmt)
	}
	for _, query := range queries {
		st, err := db.PrepareContext(ctx, query)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", firstLine(query), err)
		}
		c.m[query] = st
	}
	return nil
}

// get returns the prepared statement for query, or nil.
func (c *stmtCache) get(query string) *sql.Stmt {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.m[query]
}

func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.m {
		st.Close()
	}
	c.m = nil
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
