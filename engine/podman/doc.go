// Package podman is the default engine backend: the Podman v5 Go bindings
// over the libpod REST API. The bindings' context-carried connection and
// error model stay inside this package; callers see engine.Engine and the
// engine package's typed errors.
//
// Secrets are not Podman secrets: whatever its driver, Podman copies a
// secret's value into the container's directory under its storage root,
// on disk, when a container that mounts it is created. They are root-only
// files on a tmpfs bind-mounted read-only, as in the Docker backend
// (engine.SecretFiles, WithSecretDir).
//
// The v5 bindings talk to the Podman 4.3 service of Debian 12 and RHEL 8/9
// with silent differences, handled here: secrets.Exists always answers
// false (Inspect is used instead, when removing a Podman secret an older
// collector left), and network stats are empty (Stats reports memory, CPU
// and pids only).
package podman
