// Package jobs is the platform's side of running a job: the scheduler that
// enqueues each integration's job every period, the sealing of a leased
// job into an envelope for the one collector that runs it, the collector's
// job calls (renew, running, records, logs, finish) checked against the
// job's collector and lease, and the ingest of the records into the data
// store: validated NDJSON, upserted by (integration, _key), applied once per
// batch sequence number, and swept when a run succeeds.
package jobs
