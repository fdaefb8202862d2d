// Package sqlite is the embedded, default backend of queue.Queue: one SQLite
// file (modernc.org/sqlite, pure Go), in WAL mode, shared with the platform's
// store or standalone.
//
// It owns the tables prefixed queue_ and migrates them itself
// (queue_migrations records what ran). The store enforces the queue's rules:
// a partial unique index keeps one active job per integration, and each
// state change is a single write transaction whose first statement takes
// SQLite's write lock (as BEGIN IMMEDIATE would, on a shared *sql.DB whose
// DSN the queue does not control). Writes from one Queue are serialized in
// process (one writer at a time, so they never fight each other for the
// lock); busy_timeout covers other writers of the same file. Reads (Get,
// List, Depth, the long poll's look) run in parallel under WAL. Statements
// are prepared once, by New.
//
// Next long-polls on an in-process notifier, woken by Enqueue, Reassign and
// lease expiry in the same process; it looks at the store again at least
// every Config.PollInterval for work made eligible by another process.
package sqlite
