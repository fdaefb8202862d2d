// Package postgres is a queue.Queue stored in PostgreSQL, for platforms
// that run several processes on one database (high availability).
//
// It keeps the semantics of queue/sqlite and passes the same conformance
// suite (queue/queuetest): the same tables (queue_jobs,
// queue_integration_peaks, queue_migrations) and the same admission rules,
// with what PostgreSQL adds for several writers:
//
//   - migrations run in one transaction under pg_advisory_xact_lock, so
//     processes starting together migrate once;
//   - a lease picks its job with FOR UPDATE SKIP LOCKED, so concurrent
//     Next calls (any process) never wait for or take the same job, and
//     the leases of a collector that reports a capacity are serialized by
//     an advisory lock on the collector, so what it already runs is
//     counted exactly;
//   - lease expiry skips rows another sweeper holds, so each expiry is
//     counted once whichever process applies it;
//   - a waiting Next is woken in-process, and across processes by
//     LISTEN/NOTIFY on one channel (one listener connection per Queue);
//     Config.PollInterval stays the fallback, so a lost notification
//     costs latency, never a job.
//
// See docs/queue.md.
package postgres
