// Package config is the collector's enrollment on disk: /etc/collector
// (0700, root) with config.json and the two private keys (0600), the image
// signature policy the platform handed over at enrollment, and, apart from
// it, the operator's image trust root (trusted-keys.pem): the only keys a
// platform policy may use. Private keys never leave this directory.
package config

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/collectorhq/collector/collector/egress"
	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/internal/files"
)

// Default locations on the collector's host (and, mounted at the same
// paths, inside its containers).
const (
	DefaultDir      = "/etc/collector"
	DefaultStateDir = "/var/lib/collector"
)

// File names inside the config dir.
const (
	ConfigFile   = "config.json"
	IdentityFile = "identity.key"
	HPKEFile     = "hpke.key"
	PolicyFile   = "policy.json"
	// TrustedKeysFile is the operator's image trust root: PEM public keys,
	// set by the operator or pinned at the first enrollment.
	TrustedKeysFile = "trusted-keys.pem"
)

// Config is the collector's enrollment and settings (config.json).
type Config struct {
	CollectorID          string    `json:"collector_id"`
	PlatformURL          string    `json:"platform_url"`
	CAPin                string    `json:"ca_pin"`
	Audience             string    `json:"audience"`
	PlatformSigningKey   []byte    `json:"platform_signing_key"` // Ed25519 public key, pinned at enrollment
	HeartbeatIntervalSec int       `json:"heartbeat_interval_sec"`
	EnrolledAt           time.Time `json:"enrolled_at"`
	// Image is the collector image, by digest, its containers run.
	Image string `json:"image,omitempty"`
	// Engine is how the collector reaches its container engine.
	Engine EngineConfig `json:"engine"`
	// Network is the network mode of the collector's own containers ("" =
	// the engine's default; "host" to reach a platform on 127.0.0.1).
	Network string `json:"network,omitempty"`
	// JobNetwork is the network of jobs whose integration names none.
	JobNetwork string `json:"job_network,omitempty"`
	// Dir is the config dir itself, mounted at the same path into the
	// collector's containers.
	Dir string `json:"dir"`
	// StateDir keeps the runner's record of jobs.
	StateDir string `json:"state_dir"`
	// Insecure allows plain-HTTP image registries on 127.0.0.0/8 (tests, demo).
	InsecureRegistries []string `json:"insecure_registries,omitempty"`
	// AllowInsecurePolicy lets a platform policy accept unsigned images
	// (insecureAcceptAnything): the operator's choice at install, never
	// the platform's.
	AllowInsecurePolicy bool `json:"allow_insecure_policy,omitempty"`
	// SELinuxType is the SELinux type the daemon and runner run as: the
	// collector module's type where it is loaded, "" (labels disabled)
	// where it is not (selinux.RoleOptions).
	SELinuxType string `json:"selinux_type,omitempty"`
	// Supervisor is what keeps the daemon and runner running and starts
	// them at boot: "" or SupervisorEngine (the engine's restart policy;
	// on Podman, podman-restart.service at boot), or SupervisorSystemd
	// (Quadlet units).
	Supervisor string `json:"supervisor,omitempty"`
	// RunnerStallSec is how long the runner's job loop may make no
	// progress before its health check fails (0: DefaultRunnerStall).
	RunnerStallSec int `json:"runner_stall_sec,omitempty"`
	// JobMemoryBytes and JobCPUs are what the collector offers its jobs,
	// reported to the platform as its capacity (0: the host's, all of
	// it). The platform leases it only jobs predicted to fit beside what
	// already runs.
	JobMemoryBytes int64 `json:"job_memory_bytes,omitempty"`
	JobCPUs        int   `json:"job_cpus,omitempty"`
	// NamePrefix starts the names of the collector's own containers
	// (NamePrefix + "collector-daemon"), so that several collectors can
	// share one engine (tests; one host serving two platforms).
	NamePrefix string `json:"name_prefix,omitempty"`
	// UpgradeWindowSec is how long a new runner or daemon has to become
	// healthy in an upgrade before it is rolled back (0: the default).
	UpgradeWindowSec int `json:"upgrade_window_sec,omitempty"`
	// ImageGraceSec is how long an integration image no job uses any
	// more is kept before it is removed (0: DefaultImageGrace).
	ImageGraceSec int `json:"image_grace_sec,omitempty"`
	// Proxy is the HTTP(S) proxy the daemon and runner reach the platform
	// (tunneled with CONNECT: the CA pin holds) and registries through:
	// http://[user:password@]host:port or https://... Its credentials are
	// kept here only (config.json is 0600), never in the containers'
	// environment, labels or command lines.
	Proxy string `json:"proxy,omitempty"`
	// NoProxy are hosts reached directly (egress.Bypass says how they
	// match).
	NoProxy []string `json:"no_proxy,omitempty"`
	// ExtraCA is a PEM bundle trusted beside the system's roots for an
	// https:// proxy and for registries behind a TLS-inspecting proxy;
	// never for the platform, which stays pinned.
	ExtraCA string `json:"extra_ca,omitempty"`
	// RegistryMirrors are read before the registries they mirror, for
	// integration images (egress.Mirror).
	RegistryMirrors []egress.Mirror `json:"registry_mirrors,omitempty"`
}

// Egress is the config's proxy settings.
func (c *Config) Egress() egress.Settings {
	return egress.Settings{Proxy: c.Proxy, NoProxy: c.NoProxy, ExtraCA: []byte(c.ExtraCA), Mirrors: c.RegistryMirrors}
}

// Supervisors of the collector's own containers.
const (
	SupervisorEngine  = "engine"
	SupervisorSystemd = "systemd"
)

// Defaults of the optional durations.
const (
	DefaultRunnerStall = 10 * time.Minute
	DefaultImageGrace  = 7 * 24 * time.Hour
)

// SystemdManaged says whether systemd (Quadlet units) runs the daemon and
// runner, rather than the engine's restart policy.
func (c *Config) SystemdManaged() bool { return c.Supervisor == SupervisorSystemd }

// RunnerStall is RunnerStallSec as a duration, or its default.
func (c *Config) RunnerStall() time.Duration {
	if c.RunnerStallSec > 0 {
		return time.Duration(c.RunnerStallSec) * time.Second
	}
	return DefaultRunnerStall
}

// ImageGrace is ImageGraceSec as a duration, or its default.
func (c *Config) ImageGrace() time.Duration {
	if c.ImageGraceSec > 0 {
		return time.Duration(c.ImageGraceSec) * time.Second
	}
	return DefaultImageGrace
}

// UpgradeWindow is how long a new runner or daemon has to become healthy
// before an upgrade is rolled back (0: the daemon's default, 120 s).
func (c *Config) UpgradeWindow() time.Duration {
	return time.Duration(c.UpgradeWindowSec) * time.Second
}

// EngineConfig names the engine.
type EngineConfig struct {
	Kind      string `json:"kind,omitempty"`
	Host      string `json:"host,omitempty"`
	Socket    string `json:"socket"` // host path of the socket, mounted into the containers
	SecretDir string `json:"secret_dir,omitempty"`
}

// Validate names the first missing field.
func (c *Config) Validate() error {
	switch {
	case c.CollectorID == "":
		return errors.New("collector config: collector_id is empty")
	case c.PlatformURL == "":
		return errors.New("collector config: platform_url is empty")
	case c.CAPin == "":
		return errors.New("collector config: ca_pin is empty")
	case len(c.PlatformSigningKey) != ed25519.PublicKeySize:
		return errors.New("collector config: platform_signing_key is not an Ed25519 public key")
	case c.Audience == "":
		return errors.New("collector config: audience is empty")
	}
	return nil
}

// Keys are the collector's private keys.
type Keys struct {
	Identity ed25519.PrivateKey
	HPKE     *crypto.HPKEKey
}

// NewKeys generates a fresh identity and HPKE key.
func NewKeys() (*Keys, error) {
	_, id, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	hk, err := crypto.GenerateHPKEKey()
	if err != nil {
		return nil, err
	}
	return &Keys{Identity: id, HPKE: hk}, nil
}

// Exists reports whether dir holds a config.
func Exists(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, ConfigFile))
	return err == nil
}

// Load reads the config and keys from dir.
func Load(dir string) (*Config, *Keys, error) {
	b, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if err != nil {
		return nil, nil, fmt.Errorf("read collector config: %w (is the collector installed? run `collector install`)", err)
	}
	var c Config
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, nil, fmt.Errorf("collector config %s: %w", filepath.Join(dir, ConfigFile), err)
	}
	if err := c.Validate(); err != nil {
		return nil, nil, err
	}
	k, err := loadKeys(dir)
	if err != nil {
		return nil, nil, err
	}
	return &c, k, nil
}

func loadKeys(dir string) (*Keys, error) {
	idPEM, err := os.ReadFile(filepath.Join(dir, IdentityFile))
	if err != nil {
		return nil, fmt.Errorf("read identity key: %w", err)
	}
	id, err := crypto.ParseEd25519PrivateKeyPEM(idPEM)
	if err != nil {
		return nil, fmt.Errorf("identity key: %w", err)
	}
	hPEM, err := os.ReadFile(filepath.Join(dir, HPKEFile))
	if err != nil {
		return nil, fmt.Errorf("read HPKE key: %w", err)
	}
	hk, err := crypto.ParseHPKEPrivateKeyPEM(hPEM)
	if err != nil {
		return nil, fmt.Errorf("HPKE key: %w", err)
	}
	return &Keys{Identity: id, HPKE: hk}, nil
}

// Save writes the config and keys to dir (0700), each file 0600, through a
// temporary file and a rename so a crash never leaves half a file.
func Save(dir string, c *Config, k *Keys) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return err
	}
	cb, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	files := []struct {
		name string
		data []byte
	}{
		{IdentityFile, crypto.MarshalEd25519PrivateKeyPEM(k.Identity)},
		{HPKEFile, crypto.MarshalHPKEPrivateKeyPEM(k.HPKE)},
		{ConfigFile, append(cb, '\n')}, // last: its presence means the rest is there
	}
	for _, f := range files {
		if err := WriteFile(filepath.Join(dir, f.name), f.data); err != nil {
			return err
		}
	}
	return nil
}

// ReadTrustedKeys reads the operator's trust root from dir; exists is false
// when there is none yet (no key was ever pinned).
func ReadTrustedKeys(dir string) (data []byte, exists bool, err error) {
	data, err = os.ReadFile(filepath.Join(dir, TrustedKeysFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read the trusted image keys: %w", err)
	}
	return data, true, nil
}

// WriteFile writes data to path with mode 0600 atomically
// (files.WriteAtomic).
func WriteFile(path string, data []byte) error { return files.WriteAtomic(path, data) }

// Default names of the collector's own containers.
const (
	DefaultDaemonName = "collector-daemon"
	DefaultRunnerName = "collector-runner"
)

// DaemonName is the daemon container's name.
func (c *Config) DaemonName() string { return c.NamePrefix + DefaultDaemonName }

// RunnerName is the runner container's name.
func (c *Config) RunnerName() string { return c.NamePrefix + DefaultRunnerName }

// NamePrefixPattern is what a name prefix may be: a container name's
// start, ending in a dash.
var NamePrefixPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,30}-$`)
