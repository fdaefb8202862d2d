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
// state.go (the local record of finished and in-flight jobs), outage.go
// (a job waiting out an engine that stopped answering: before its
// container runs, while it runs, and to remove what it left) and
// resume.go (following the container's output again after an outage,
// each byte once).
//
// Every goroutine has an owner that waits for it: Run for the jobs, a
// job's run for its lease keeper, and watch for the stats sampler, the
// log flusher and the output pumps; nothing a job started runs on once it
// is reported. A job whose engine was away as it ended stays in Run's
// hands (holding its integration) until its container and secret are
// removed, or Run ends.
package runner
