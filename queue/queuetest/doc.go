// Package queuetest is the conformance suite every queue.Queue backend must
// pass: Run drives a fresh queue per case through the state machine, dedupe,
// leases and their expiry, long polling, the capacity filter, cancel,
// collector isolation and reassignment, with concurrency where the contract
// is about races. Run it under -race.
package queuetest
