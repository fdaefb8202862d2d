// Package sqlite is the embedded store.Store backend: one SQLite file through
// the pure-Go modernc.org/sqlite driver (so binaries stay static), in WAL mode,
// with schema migrations run at open.
//
// One-writer discipline: writes go through a *sql.DB limited to one
// connection whose transactions begin IMMEDIATE, so writers queue in Go
// instead of failing with SQLITE_BUSY; reads use a separate pool that WAL lets
// run beside the writer. Other packages that keep tables in the same file (the
// job queue, tables prefixed queue_) share the writer through DB.
package sqlite
