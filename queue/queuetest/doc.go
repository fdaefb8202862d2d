// Package queuetest is the conformance suite every queue.Queue backend must
// pass: Run drives a fresh queue per case through the state machine, dedupe,
// leases and their expiry, long polling, the capacity filter, cancel,
// collector isolation, reassignment (of queued jobs, and of jobs in flight
// when their leases end) and a deleted collector's jobs, with concurrency
// where the contract is about races. Run it under -race.
//
// A backend hands each case a Backend: the queue, a way to move its clock
// (lease expiry is tested by moving the clock, never by waiting a lease out)
// and a signal that a Next is parked (long-poll cases wait for it instead of
// sleeping). Only the waits that are the contract itself, a Next's Wait and
// its context, take real time.
package queuetest
