// Package store declares what the platform keeps and the Store interface every
// storage backend implements (store/sqlite today; PostgreSQL can follow). It
// also owns the audit log's hash chain, so that every backend computes and
// verifies it the same way.
package store
