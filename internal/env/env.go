// Package env names every environment variable the binaries read, in one
// place (flag > environment > file > default).
package env

// Collector side.
const (
	EngineKind = "COLLECTOR_ENGINE"      // podman or docker
	EngineHost = "COLLECTOR_ENGINE_HOST" // unix:///path to the engine socket
	SecretDir  = "COLLECTOR_SECRET_DIR"  // Docker engine: tmpfs dir for job secrets
	ConfigDir  = "COLLECTOR_CONFIG_DIR"  // /etc/collector
	StateDir   = "COLLECTOR_STATE_DIR"   // /var/lib/collector

	// The installer's inputs, as the platform's install command sets them.
	// The enrollment token is not among them: it is read from stdin.
	CollectorID        = "COLLECTOR_ID"
	PlatformURL        = "COLLECTOR_PLATFORM_URL"
	CAPin              = "COLLECTOR_CA_PIN"
	Image              = "COLLECTOR_IMAGE"
	Network            = "COLLECTOR_NETWORK"
	JobNetwork         = "COLLECTOR_JOB_NETWORK"
	InsecureRegistries = "COLLECTOR_INSECURE_REGISTRIES"

	// The operator's image trust root, set on the host, never by the
	// platform: the public key(s) image signatures may be made with (PEM,
	// or the path of a PEM file mounted into the installer), and the local
	// permission to run a policy that accepts unsigned images.
	TrustedKeys         = "COLLECTOR_TRUSTED_KEYS"
	AllowInsecurePolicy = "COLLECTOR_ALLOW_INSECURE_POLICY"
)
