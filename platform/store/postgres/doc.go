// Package postgres is the PostgreSQL backend of the platform's store
// (store.Store), its accounts (access.Store) and its record store
// (jobs.Records), beside the job queue (queue/postgres) in the same
// database: an act that spans them commits once, as on SQLite. Several
// platform processes (replicas) may share one database: migrations run
// once under an advisory lock, the audit chain's appends are serialized
// by another, and nothing that matters is kept only in a process.
//
// Times are stored as Unix nanoseconds (bigint), as on SQLite: the audit
// chain hashes them, and timestamptz would keep microseconds.
package postgres
