package platform

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/platform/access"
	"github.com/collectorhq/collector/platform/jobs"
	"github.com/collectorhq/collector/queue"
)

// Config is the server's configuration. Start from DefaultConfig.
type Config struct {
	// Listen is the host:port the HTTPS server binds.
	Listen string
	// DataDir holds the CA, keys, admin token and (by default) the database.
	DataDir string
	// Database is the SQLite file ("" means <DataDir>/platform.db), or a
	// postgres:// URL (see DatabaseIsPostgres).
	Database string
	// DatabaseMaxConns bounds a PostgreSQL database's connection pool
	// (0: twice the CPUs, at least 8).
	DatabaseMaxConns int
	// DataKeyFile, if set, holds the at-rest data keys (the key ring, the
	// first seals: docs/auth.md) instead of <DataDir>/data.key: replicas
	// sharing a database are all given the same file (it is never created:
	// a replica making its own would seal what the others cannot open).
	DataKeyFile string
	// PublicURL is the URL collectors reach the platform at: install commands
	// point at it and it is the audience of collector assertions. "" means
	// https://<Listen>.
	PublicURL string
	// TLSCert and TLSKey are PEM files; both empty means a CA and server
	// certificate generated in DataDir.
	TLSCert, TLSKey string
	// CollectorImage is the image the install commands run.
	CollectorImage string
	// HeartbeatInterval is what collectors are told to use; a collector is
	// active while its last heartbeat is within 3 intervals.
	HeartbeatInterval time.Duration
	// EnrollmentTokenTTL is how long an enrollment token lives.
	EnrollmentTokenTTL time.Duration
	// AccessTokenTTL is how long a collector access token lives.
	AccessTokenTTL time.Duration
	// CollectorKeyGrace is how long a collector's identity key is still
	// accepted after a key rotation replaced it: its daemon and runner
	// switch to the new key meanwhile (docs/auth.md §7).
	CollectorKeyGrace time.Duration
	// HeartbeatHistory is how many heartbeats are kept per collector.
	HeartbeatHistory int
	// MaxBodyBytes bounds request bodies.
	MaxBodyBytes int64
	// ShutdownTimeout bounds the graceful shutdown.
	ShutdownTimeout time.Duration
	// ImagePolicy is the containers/image policy.json (sigstoreSigned
	// requirements) collectors verify every image against; it is handed
	// to them at enrollment, over the pinned TLS connection.
	ImagePolicy []byte
	// Queue tunes the job queue (lease TTL, attempts).
	Queue queue.Config
	// Jobs tunes the scheduler and the sealing of envelopes.
	Jobs jobs.Config
	// JobLimits are the resource limits sealed into every job.
	JobLimits crypto.Limits
	// JobRetention is how long finished jobs and their logs are kept (0:
	// forever).
	JobRetention time.Duration
	// MetricsPublic serves /metrics without a token (a trusted network
	// only: it tells how many collectors and jobs there are).
	MetricsPublic bool
	// MinCollectorVersion, when set, refuses an upgrade to a collector
	// image whose version label is below it (or has none).
	MinCollectorVersion string
	// HeaderTimeout bounds the wait for a request's headers, and for a new
	// connection's first request whatever its protocol (HTTP/2 included).
	HeaderTimeout time.Duration
	// BodyGrace and BodyMinRate set a request body's deadline: BodyGrace
	// plus its size at BodyMinRate bytes per second. A large upload on a
	// slow link gets the time it needs; a trickling client does not.
	BodyGrace   time.Duration
	BodyMinRate int64
	// HousekeepingInterval is how often job retention and the purges of
	// deleted integrations run.
	HousekeepingInterval time.Duration
	// LiveInterval is how often a console page's live stream looks for
	// changes (collector status, a job's logs).
	LiveInterval time.Duration
	// VerifyImages checks an integration's image against ImagePolicy and
	// its registry when it is saved (off only in tests of other things,
	// whose images are names, not images).
	VerifyImages bool
	// InsecureRegistries are registries reached over plain HTTP when the
	// platform verifies an image; a registry on a loopback address always
	// is (tests, the demo).
	InsecureRegistries []string
	// Access tunes sign-in, sessions, second factors and tokens.
	Access access.Config
}

// DefaultConfig returns the defaults the serve command starts from.
// QueueConfig is the queue's configuration with the job limits as the
// ceilings of its predictions: a job never needs more than its container
// may use, and one killed at its memory limit is predicted at it.
func (c Config) QueueConfig() queue.Config {
	q := c.Queue
	q.LimitMemoryBytes, q.LimitCPUs = c.JobLimits.MemoryBytes, c.JobLimits.CPUs
	return q
}

func DefaultConfig() Config {
	return Config{
		Listen:               "127.0.0.1:8443",
		DataDir:              "/var/lib/collector-platform",
		CollectorImage:       "localhost/collector:latest",
		HeartbeatInterval:    30 * time.Second,
		EnrollmentTokenTTL:   24 * time.Hour,
		AccessTokenTTL:       15 * time.Minute,
		CollectorKeyGrace:    time.Hour,
		HeartbeatHistory:     100,
		MaxBodyBytes:         1 << 20,
		ShutdownTimeout:      15 * time.Second,
		Queue:                queue.DefaultConfig(),
		Jobs:                 jobs.DefaultConfig(),
		JobLimits:            crypto.Limits{MemoryBytes: 512 << 20, CPUs: 1, Pids: 512, TimeoutSec: 3600},
		JobRetention:         30 * 24 * time.Hour,
		HeaderTimeout:        10 * time.Second,
		BodyGrace:            30 * time.Second,
		BodyMinRate:          16 << 10,
		HousekeepingInterval: time.Minute,
		LiveInterval:         2 * time.Second,
		VerifyImages:         true,
		Access:               access.DefaultConfig(),
	}
}

// ConfigError names the configuration field that is wrong.
type ConfigError struct {
	Field  string
	Reason string
}

func (e *ConfigError) Error() string { return fmt.Sprintf("config %s: %s", e.Field, e.Reason) }

// Validate checks c and returns a *ConfigError naming the first bad field.
func (c Config) Validate() error {
	bad := func(field, format string, args ...any) error {
		return &ConfigError{Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return bad("listen", "want host:port: %v", err)
	}
	if c.DataDir == "" {
		return bad("data-dir", "must be set")
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return bad("tls-cert", "--tls-cert and --tls-key go together")
	}
	if _, err := c.publicURL(); err != nil {
		return bad("public-url", "%v", err)
	}
	if c.CollectorImage == "" || strings.ContainsAny(c.CollectorImage, " \t\n'\"\\$`;&|") {
		return bad("collector-image", "must be an image reference")
	}
	switch {
	case c.HeartbeatInterval < time.Second || c.HeartbeatInterval > time.Hour:
		return bad("heartbeat-interval", "must be between 1s and 1h")
	case c.EnrollmentTokenTTL < time.Minute || c.EnrollmentTokenTTL > 30*24*time.Hour:
		return bad("enrollment-token-ttl", "must be between 1m and 720h")
	case c.AccessTokenTTL < time.Minute || c.AccessTokenTTL > time.Hour:
		return bad("access-token-ttl", "must be between 1m and 1h")
	case c.CollectorKeyGrace < 0 || c.CollectorKeyGrace > 7*24*time.Hour:
		return bad("collector-key-grace", "must be between 0 and 168h")
	case c.HeartbeatHistory < 1 || c.HeartbeatHistory > 10000:
		return bad("heartbeat-history", "must be between 1 and 10000")
	case c.MaxBodyBytes < 1024:
		return bad("max-body-bytes", "must be at least 1024")
	case c.ShutdownTimeout <= 0:
		return bad("shutdown-timeout", "must be positive")
	case len(c.ImagePolicy) > 0 && !json.Valid(c.ImagePolicy):
		return bad("image-policy", "is not JSON")
	case c.HousekeepingInterval <= 0:
		return bad("housekeeping-interval", "must be positive")
	case c.LiveInterval < 10*time.Millisecond:
		return bad("live-interval", "must be at least 10ms")
	case c.HeaderTimeout <= 0 || c.BodyGrace <= 0 || c.BodyMinRate < 1:
		return bad("header-timeout", "header timeout, body grace and body rate must be positive")
	case c.JobRetention < 0:
		return bad("job-retention", "must not be negative (0 keeps finished jobs forever)")
	}
	if err := c.Queue.Validate(); err != nil {
		return bad("queue", "%v", err)
	}
	return nil
}

// DatabasePath returns the SQLite file's path.
// DatabaseIsPostgres reports whether Database is a PostgreSQL URL.
func (c Config) DatabaseIsPostgres() bool {
	return strings.HasPrefix(c.Database, "postgres://") || strings.HasPrefix(c.Database, "postgresql://")
}

func (c Config) DatabasePath() string {
	if c.Database != "" {
		return c.Database
	}
	return filepath.Join(c.DataDir, "platform.db")
}

// publicURL returns the normalized public URL (no trailing slash).
func (c Config) publicURL() (*url.URL, error) {
	raw := c.PublicURL
	if raw == "" {
		raw = "https://" + c.Listen
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	switch {
	case u.Scheme != "https":
		return nil, fmt.Errorf("%q: must be an https:// URL", raw)
	case u.Host == "" || u.Hostname() == "":
		return nil, fmt.Errorf("%q: has no host", raw)
	case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		return nil, fmt.Errorf("%q: must not carry a query, fragment or user", raw)
	case strings.ContainsAny(raw, " \t\n'\"\\$`;&|<>"):
		return nil, fmt.Errorf("%q: contains characters that are not safe in a command line", raw)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	return u, nil
}
