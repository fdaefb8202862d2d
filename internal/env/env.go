// Package env names every environment variable the binaries read, in one
// place (flag > environment > file > default).
package env

import "os"

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

	// The installer's choices for the host (P10): Quadlet units instead
	// of engine-supervised containers and where to write them, the
	// daemon's and runner's SELinux type (auto, disable, or a type), how
	// long the runner may stall before it is unhealthy, how long unused
	// integration images are kept.
	Quadlet     = "COLLECTOR_QUADLET"
	QuadletDir  = "COLLECTOR_QUADLET_DIR"
	SELinuxType = "COLLECTOR_SELINUX_TYPE"
	RunnerStall = "COLLECTOR_RUNNER_STALL"
	JobMemory   = "COLLECTOR_JOB_MEMORY"
	JobCPUs     = "COLLECTOR_JOB_CPUS"
	NamePrefix  = "COLLECTOR_NAME_PREFIX"
	// UpgradeWindow bounds the wait for health in an upgrade.
	UpgradeWindow = "COLLECTOR_UPGRADE_WINDOW"
	// TestUnhealthy, in a test image's environment, makes its health
	// check fail: the e2e suite's image that must be rolled back.
	TestUnhealthy = "COLLECTOR_TEST_UNHEALTHY"
	// TestCrashAt, in a test image's environment, makes its daemon or
	// runner exit at once (as a kill -9 would leave things) at a step,
	// once: the engine's restart of its container spares the restarted
	// role. A comma-separated list: the upgrade's steps ("pulled",
	// "drained", "runner", "successor"), "daemon-token" (an access token
	// issued, not read), "runner-ended" and "runner-finished" (a job's
	// container removed, before and after its report).
	TestCrashAt = "COLLECTOR_TEST_CRASH_AT"
	// TestPlatformClockOffset moves `platform serve`'s clock by a Go
	// duration ("-10m"): the e2e suite's platform whose collectors' host
	// clocks are off. Never set it in production.
	TestPlatformClockOffset = "COLLECTOR_TEST_PLATFORM_CLOCK_OFFSET"
	// UpgradeSuccessor (its image) and UpgradeSteps (the steps taken
	// before it) are in the environment of an upgrade's new daemon.
	UpgradeSuccessor = "COLLECTOR_UPGRADE_SUCCESSOR"
	UpgradeSteps     = "COLLECTOR_UPGRADE_STEPS"
	ImageGrace       = "COLLECTOR_IMAGE_GRACE"

	// The collector's egress (P10): the proxy (with its credentials: the
	// installer stores it in the config dir, and no container of the
	// collector gets it in its environment), the hosts reached without
	// it, and the CA bundle of a TLS-inspecting proxy (PEM or a path).
	Proxy   = "COLLECTOR_PROXY"
	NoProxy = "COLLECTOR_NO_PROXY"
	ExtraCA = "COLLECTOR_EXTRA_CA"
	// RegistryMirrors are PREFIX=LOCATION[,LOCATION] entries separated
	// by ";" (egress.ParseMirrors); "none" removes them.
	RegistryMirrors = "COLLECTOR_REGISTRY_MIRRORS"

	// The operator commands: the root of the host's file system as they
	// see it (/ on the host; where it is mounted when they run in a
	// container, or a test's directory), for the checks that read the
	// host's systemd and Quadlet units.
	HostRoot = "COLLECTOR_HOST_ROOT"
)

// Both binaries.
const (
	LogLevel  = "COLLECTOR_LOG_LEVEL"  // debug, info, warn, error
	LogFormat = "COLLECTOR_LOG_FORMAT" // auto, json, text
)

// Platform side (platform serve and the admin commands).
const (
	PlatformListen              = "PLATFORM_LISTEN"
	PlatformDataDir             = "PLATFORM_DATA_DIR"
	PlatformDatabase            = "PLATFORM_DATABASE"
	PlatformDatabaseMaxConns    = "PLATFORM_DATABASE_MAX_CONNS"
	PlatformDataKeyFile         = "PLATFORM_DATA_KEY_FILE"
	PlatformPublicURL           = "PLATFORM_PUBLIC_URL"
	PlatformTLSCert             = "PLATFORM_TLS_CERT"
	PlatformTLSKey              = "PLATFORM_TLS_KEY"
	PlatformCollectorImage      = "PLATFORM_COLLECTOR_IMAGE"
	PlatformHeartbeatInterval   = "PLATFORM_HEARTBEAT_INTERVAL"
	PlatformEnrollmentTTL       = "PLATFORM_ENROLLMENT_TOKEN_TTL"
	PlatformCollectorKeyGrace   = "PLATFORM_COLLECTOR_KEY_GRACE"
	PlatformImagePolicy         = "PLATFORM_IMAGE_POLICY"
	PlatformLeaseTTL            = "PLATFORM_LEASE_TTL"
	PlatformMaxAttempts         = "PLATFORM_MAX_ATTEMPTS"
	PlatformJobMemory           = "PLATFORM_JOB_MEMORY"
	PlatformJobCPUs             = "PLATFORM_JOB_CPUS"
	PlatformMinCollectorVersion = "PLATFORM_MIN_COLLECTOR_VERSION"
	PlatformMaxJobsPerCollector = "PLATFORM_MAX_JOBS_PER_COLLECTOR"
	PlatformJobTimeout          = "PLATFORM_JOB_TIMEOUT"
	PlatformJobRetention        = "PLATFORM_JOB_RETENTION"
	PlatformMetricsPublic       = "PLATFORM_METRICS_PUBLIC"
	PlatformRequireMFA          = "PLATFORM_REQUIRE_MFA"
	PlatformInsecureRegistries  = "PLATFORM_INSECURE_REGISTRIES"
	PlatformNoImageCheck        = "PLATFORM_NO_IMAGE_CHECK"
	// The admin commands: which platform, as whom.
	PlatformServer = "PLATFORM_URL"
	PlatformToken  = "PLATFORM_TOKEN"
	PlatformCAFile = "PLATFORM_CA_FILE"
)

// The release tool.
const (
	ReleaseInsecure = "COLLECTOR_RELEASE_INSECURE"
	ReleaseKey      = "COLLECTOR_RELEASE_KEY"
	ReleasePubKey   = "COLLECTOR_RELEASE_PUBKEY"
	// CosignPassword is cosign's own name for the key's password.
	CosignPassword = "COSIGN_PASSWORD"
	// ReleasePodman is the podman command line `build` runs (word-split).
	ReleasePodman = "COLLECTOR_RELEASE_PODMAN"
	// SourceDateEpoch is the reproducible-builds convention: the time
	// stamped on an image and every file in it.
	SourceDateEpoch = "SOURCE_DATE_EPOCH"
)

// Tests and CI.
const (
	// CI=true makes a missing test component a failure, not a skip.
	CI = "CI"
	// The heartbeat load test (platform/load_test.go), off unless set.
	PlatformLoad           = "PLATFORM_LOAD"
	PlatformLoadCollectors = "PLATFORM_LOAD_COLLECTORS"
	PlatformLoadInterval   = "PLATFORM_LOAD_INTERVAL"
	PlatformLoadSeconds    = "PLATFORM_LOAD_SECONDS"
	PlatformLoadConns      = "PLATFORM_LOAD_CONNS"
	PlatformLoadPostgres   = "PLATFORM_LOAD_POSTGRES"
	// TestChromium is the browser the Chromium harness runs
	// (internal/browsertest; default /usr/bin/chromium).
	TestChromium = "COLLECTOR_TEST_CHROMIUM"
	// TestArtifacts is a directory where browser tests keep their
	// screenshots (a folder per test).
	TestArtifacts = "COLLECTOR_TEST_ARTIFACTS"
	// UpdateScreenshots=1 makes the console's browser test write its
	// screenshots over docs/console/*.png (the docs' current set).
	UpdateScreenshots = "COLLECTOR_UPDATE_SCREENSHOTS"
	// XDGConfigHome is where `platform login` keeps its token.
	XDGConfigHome = "XDG_CONFIG_HOME"
	// QuadletUnitDirs points Podman's Quadlet generator at a test's unit
	// directory (its -dryrun in collector/install's tests).
	QuadletUnitDirs = "QUADLET_UNIT_DIRS"
)

// Get returns the variable's value ("" when unset): the one reader of the
// environment (a test fails on os.Getenv anywhere else).
func Get(name string) string { return os.Getenv(name) }

// Lookup returns the variable's value and whether it is set (it may be
// set and empty).
func Lookup(name string) (string, bool) { return os.LookupEnv(name) }

// InCI says whether the tests run in CI (CI=true).
func InCI() bool { return Get(CI) == "true" }

// An integration's program (the SDK's integration.Main), set by the runner
// or by an author running the binary directly. Neither ever holds a
// secret: the config is a file.
const (
	// IntegrationConfig is the path of the config file (default
	// /run/collector/config.json).
	IntegrationConfig = "COLLECTOR_INTEGRATION_CONFIG"
	// IntegrationMode is "validate" for a validation run (connect, check
	// access, emit nothing); unset or "run" for a collection.
	IntegrationMode = "COLLECTOR_INTEGRATION_MODE"
	// IntegrationRecords is the path of the records channel (a FIFO the
	// runner reads directly, past the engine's log path); unset: stdout.
	IntegrationRecords = "COLLECTOR_INTEGRATION_RECORDS"
)

// A job's limits as the runner tells them to the Go runtime in the job's
// container (runner.ContainerSpec): the runtime reads neither from the
// job's cgroup on every host. Never a secret.
const (
	// GoMaxProcs is the Go runtime's number of threads running Go code
	// at once: the job's CPUs, rounded up.
	GoMaxProcs = "GOMAXPROCS"
	// GoMemLimit is the Go runtime's soft memory limit, in bytes: most of
	// the job's memory limit, so its garbage collector works harder
	// before the kernel kills the job.
	GoMemLimit = "GOMEMLIMIT"
)
