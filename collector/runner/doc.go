// Package runner is the collector's job loop: it long-polls the platform
// for jobs, opens each sealed envelope, verifies and pulls the image by
// digest, runs the integration as a hardened one-time container with its
// config delivered as an engine secret, streams the container's stdout up
// as validated record batches and its redacted stderr as job logs, reports
// how the job ended, and removes the container and the secret whatever
// happened.
package runner
