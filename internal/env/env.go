// Package env names every environment variable the binaries read, in one
// place (flag > environment > file > default).
package env

// Collector side.
const (
	EngineKind = "COLLECTOR_ENGINE"      // podman or docker
	EngineHost = "COLLECTOR_ENGINE_HOST" // unix:///path to the engine socket
	SecretDir  = "COLLECTOR_SECRET_DIR"  // Docker engine: tmpfs dir for job secrets
)
