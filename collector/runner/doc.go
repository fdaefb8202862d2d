// Package runner is the collector's job loop: it long-polls the platform
// for jobs (only while its container engine answers), opens each sealed
// envelope, verifies and pulls the image by digest, runs the integration
// as a hardened one-time container with its config delivered as an engine
// secret, streams the container's stdout up as validated record batches
// and its redacted stderr as job logs, reports how the job ended, and
// removes the container and the secret whatever happened.
//
// Files by concern: runner.go (the job loop, claims of integrations),
// config.go, engine.go (the part of the engine it uses), job.go (one job's
// pipeline and report), lease.go (lease keeping, handover, retries under
// the current lease), container.go (the container spec, secret, and
// removing what a job leaves), records.go and logs.go (the output
// streams), redact.go (the secrets' forms and their redaction), stats.go,
// state.go (the local record of finished and in-flight jobs).
//
// Every goroutine has an owner that waits for it: Run for the jobs, a
// job's run for its lease keeper, and watch for the stats sampler, the
// log flusher and the output pumps; nothing a job started runs on once it
// is reported.
package runner
