// Package podman is the default engine backend: the Podman v5 Go bindings
// over the libpod REST API. The bindings' context-carried connection and
// error model stay inside this package; callers see engine.Engine and the
// engine package's typed errors.
//
// The v5 bindings talk to the Podman 4.3 service of Debian 12 and RHEL 8/9
// with four silent differences, handled here: secrets.Exists always answers
// false (Inspect is used instead), secret create ignores WithReplace (a taken
// name is reported as engine.ErrConflict, never silently replaced),
// WithShowSecret returns no data (nothing here reads a secret back), and
// network stats are empty (Stats reports memory, CPU and pids only).
package podman
