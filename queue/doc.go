// Package queue declares the platform's job queue: the [Queue] interface every
// backend implements, the job [State] machine, the request and result types,
// [Config] and the sentinel errors callers match with errors.Is.
//
// A job is one run of one integration instance on one collector. Its life:
//
//	queued → leased → running → succeeded | failed
//	queued | leased | running → canceled            (Cancel)
//	leased | running → queued with attempt+1        (lease expired)
//	                 → dead                         (… on the last attempt)
//
// A job requeued by its lease's expiry goes where its integration is: the
// collector's queue it came from, a pool job's pool, or, when [Queue.Reassign]
// moved the integration while the job was in flight, its new collector or
// pool; never back to a collector the integration left.
//
// The store enforces that an integration has at most one job queued or in
// flight (leased or running), so identical jobs never pile up and never run in
// parallel. A collector takes work with [Queue.Next], which long-polls and
// hands out the oldest eligible job of that collector under a lease the runner
// renews; the lease ID is the runner's proof of ownership, and any call
// carrying a lease that expired, was voided by [Queue.Cancel] or was replaced
// by a later lease fails with [ErrLeaseLost].
//
// Backends live in subpackages named for their technology (queue/sqlite; a
// PostgreSQL one later) and all pass the shared suite in queue/queuetest.
package queue
