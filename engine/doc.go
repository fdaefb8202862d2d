// Package engine is the one interface the collector uses over container
// engines. It owns the engine-neutral container spec, the typed errors that
// cross the boundary (ErrNotFound, ErrConflict, ErrUnavailable) and the
// selection of a backend for a socket.
//
// Backends live in subpackages named for their technology: engine/podman
// (the Podman v5 bindings over the libpod API, the default) and
// engine/docker (the Docker Engine API, for real Docker or Podman's
// compatible API). Both pass the shared conformance suite in
// engine/enginetest against real engines. No type from a backend's client
// library leaks out of its subpackage.
package engine
