// Package docker is the fallback engine backend: the Docker Engine API
// through the official Docker Go client, against real dockerd or Podman's
// Docker-compatible API (which it negotiates down to API 1.41).
//
// Docker has no secrets outside swarm, so a secret here is a root-only file
// in a directory on a tmpfs (engine.SecretFiles; a directory off tmpfs is
// refused), bind-mounted read-only at the secret's target path, and
// deleted by RemoveSecret. The directory must be visible at the same path
// to the engine and to this process: the collector's runner container
// mounts it from the host.
//
// A pull error arrives inside the JSON progress stream with HTTP 200; the
// stream is parsed so a failed pull is an error. TLS for a registry is the
// daemon's business (dockerd --insecure-registry): PullOptions.Insecure
// cannot change it from the client.
package docker
