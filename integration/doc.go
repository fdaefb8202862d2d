// Package integration is the Go SDK for integration authors: it reads the
// job's config file and writes records in the format the collector's runner
// reads (docs/integration-contract.md).
//
// An integration is a program in a container. It reads its config, a JSON
// document, from /run/collector/config.json (an engine secret: tmpfs, mode
// 0400), writes one JSON record per line to stdout, logs to stderr, and
// exits 0 when the run is complete (a full sync: what the run did not emit is
// deleted on the platform). Any other exit status fails the job and the
// platform keeps the data of the previous run.
//
// Around that core: Secret (a config value that prints as [REDACTED]
// everywhere), exit codes that say why a run failed (ErrAuth,
// ErrUnreachable, ErrCertificate, ErrAccess, ErrBadConfig, ExitOn,
// ExitCoder), a validate mode (WithValidate: connect, check access, emit
// nothing, one result line), --config and --validate (or
// COLLECTOR_INTEGRATION_CONFIG and COLLECTOR_INTEGRATION_MODE) for running
// the program directly, and helpers for talking to a target: Retry with
// jittered backoff, Limiter, Paginate. The manifest an integration ships
// with is read by package integration/manifest.
//
// The simplest integration:
//
//	func main() {
//		integration.Main("my-integration", func(ctx context.Context, cfg []byte, out *integration.Emitter, log *slog.Logger) error {
//			return out.Entity("host-1", "my_host", "Host", integration.String("name", "web"))
//		})
//	}
package integration
