package engine

import (
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"
)

// Kind names a container engine API.
type Kind string

// The engine kinds a backend exists for.
const (
	KindPodman Kind = "podman"
	KindDocker Kind = "docker"
)

// Typed errors at the boundary. Backends wrap them, so callers test with
// errors.Is and never see a client library's error model.
var (
	// ErrNotFound: the image, container or secret does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the name is taken, or the object is in the wrong state.
	ErrConflict = errors.New("conflict")
	// ErrUnavailable: the engine could not be reached.
	ErrUnavailable = errors.New("engine unavailable")
)

// Engine is what the collector asks of a container engine.
type Engine interface {
	// Kind says which API this backend speaks.
	Kind() Kind
	// Info pings the engine and describes it. It may cost the engine
	// much more than a ping (Podman asks the host's package manager for
	// its components' versions): a check that the engine answers is Ping.
	Info(ctx context.Context) (*Info, error)
	// Ping checks that the engine answers, at the least cost to it.
	Ping(ctx context.Context) error

	// ImageExists reports whether ref is present locally.
	ImageExists(ctx context.Context, ref string) (bool, error)
	// InspectImage describes a local image; ErrNotFound if absent.
	InspectImage(ctx context.Context, ref string) (*Image, error)
	// PullImage pulls ref (a tag or name@sha256:...) and returns the image.
	// A reference the registry does not have gives ErrNotFound.
	PullImage(ctx context.Context, ref string, opts PullOptions) (*Image, error)
	// RemoveImage removes a local image.
	RemoveImage(ctx context.Context, ref string, force bool) error
	// LoadImage loads a docker-archive tar into the engine's store: an
	// image the collector fetched and verified itself (through its proxy,
	// from its mirrors), which the engine then runs by its ID.
	LoadImage(ctx context.Context, archive io.Reader) error

	// CreateContainer creates a container from spec and returns its ID.
	CreateContainer(ctx context.Context, spec *ContainerSpec) (string, error)
	// StartContainer starts a created container.
	StartContainer(ctx context.Context, id string) error
	// WaitContainer blocks until the container exits, or ctx ends, and
	// returns its exit code.
	WaitContainer(ctx context.Context, id string) (int, error)
	// ContainerLogs copies the container's stdout and stderr to the two
	// writers, kept apart. With follow it returns when the container exits.
	ContainerLogs(ctx context.Context, id string, follow bool, stdout, stderr io.Writer) error
	// StopContainer asks the container to stop and kills it after timeout.
	StopContainer(ctx context.Context, id string, timeout time.Duration) error
	// SignalContainer sends a signal ("USR1", "TERM", ...) to the
	// container's main process.
	SignalContainer(ctx context.Context, id, signal string) error
	// RenameContainer gives a container a new name (ErrConflict if taken).
	RenameContainer(ctx context.Context, id, name string) error
	// RemoveContainer removes a container (force: even if running) with
	// its anonymous volumes.
	RemoveContainer(ctx context.Context, id string, force bool) error
	// InspectContainer describes a container; ErrNotFound if absent.
	InspectContainer(ctx context.Context, id string) (*Container, error)
	// ListContainers lists containers (running or not) carrying every
	// label given.
	ListContainers(ctx context.Context, labels map[string]string) ([]Container, error)
	// ContainerStats takes one sample of a running container's usage.
	ContainerStats(ctx context.Context, id string) (*Stats, error)
	// RunHealthCheck runs the container's health check now, whatever the
	// engine's own schedule, and returns the container's health
	// (HealthStarting, HealthHealthy or HealthUnhealthy) with the check's
	// output. A container without a health check gives ErrNotFound.
	RunHealthCheck(ctx context.Context, id string) (*Health, error)
	// ReadLogs copies the container's logs as an operator asks for them:
	// from a time, the last lines, following until ctx ends or the
	// container stops. Unlike ContainerLogs, a follow here is the
	// engine's own, for people: it makes no promise of completeness.
	ReadLogs(ctx context.Context, id string, opts LogOptions, stdout, stderr io.Writer) error
	// ListImages lists the local images.
	ListImages(ctx context.Context) ([]Image, error)

	// CreateSecret stores data as a secret for containers created later
	// with a SecretMount of that name. A taken name gives ErrConflict.
	CreateSecret(ctx context.Context, name string, data []byte) error
	// RemoveSecret deletes a secret; ErrNotFound if absent.
	RemoveSecret(ctx context.Context, name string) error

	// Close releases the connection.
	Close() error
}

// Info describes an engine.
type Info struct {
	Kind           Kind
	Version        string // engine version, e.g. "4.3.1"
	APIVersion     string // API version spoken, e.g. "4.3.1" or "1.41"
	Rootless       bool
	SELinuxEnabled bool
	CgroupVersion  string // "1" or "2"
	OS, Arch       string
	CPUs           int
	MemoryBytes    int64
	// Runtime is the OCI runtime containers run with ("runc", "crun").
	Runtime string
	// LogDriver is the engine's default log driver ("journald",
	// "k8s-file", "json-file").
	LogDriver string
	// Storage is where the engine keeps images and containers.
	Storage Storage
}

// Storage describes the engine's container storage and the file system
// it is on. Zero byte counts mean the engine does not say (Docker gives
// no file-system figures).
type Storage struct {
	Root       string // graph root or data root, a host path
	TotalBytes int64  // size of the file system holding Root
	UsedBytes  int64  // bytes in use on it (by anything)
}

// LogOptions select a container's logs for ReadLogs.
type LogOptions struct {
	Follow     bool
	Since      time.Time // zero: from the start
	Tail       int       // the last lines only; 0: all
	Timestamps bool
}

// Health is a container's health and what its last check said.
type Health struct {
	Status        string // HealthStarting, HealthHealthy or HealthUnhealthy
	FailingStreak int
	// Output is the last check's output (stdout and stderr), as the
	// engine kept it: data from inside the container.
	Output string
}

// Health states of a container with a health check.
const (
	HealthStarting  = "starting"
	HealthHealthy   = "healthy"
	HealthUnhealthy = "unhealthy"
)

// PullOptions are the knobs of a pull.
type PullOptions struct {
	// Auth, when set, is used for the registry.
	Auth *RegistryAuth
	// Insecure skips TLS verification and allows plain HTTP (a local test
	// registry). Off by default.
	Insecure bool
}

// RegistryAuth is a registry credential.
type RegistryAuth struct {
	Username string
	Password string
}

// Image describes a local image.
type Image struct {
	ID          string
	RepoTags    []string
	RepoDigests []string // name@sha256:... entries
	Labels      map[string]string
	User        string
	Size        int64
}

// ContainerSpec is the engine-neutral description of a container.
type ContainerSpec struct {
	Name       string
	Image      string // a digest reference in production
	Command    []string
	Entrypoint []string
	Env        map[string]string // never secrets: use Secrets
	Labels     map[string]string
	Mounts     []Mount
	Secrets    []SecretMount
	Restart    RestartPolicy
	// Network is the network mode: "" (the engine's default), "host",
	// "none", or a network name.
	Network   string
	Resources Resources
	Ulimits   []Ulimit
	CapDrop   []string // "ALL" drops every capability
	CapAdd    []string
	// NoNewPrivileges sets the no_new_privs bit for the container's processes.
	NoNewPrivileges bool
	ReadOnlyRootfs  bool
	User            string
	// SELinuxOptions are label options such as "level:s0:c1,c2",
	// "type:container_t" or "disable".
	SELinuxOptions []string
	Privileged     bool
	// HealthCheck, when set, is run by the engine inside the container.
	HealthCheck *HealthCheck
	// Log bounds the engine's log of the container.
	Log LogLimit
	// Tmpfs are private, size-bounded tmpfs mounts (mode 0700, noexec).
	Tmpfs []Tmpfs
}

// HealthCheck is a command the engine runs inside the container every
// Interval; Retries failures in a row (after StartPeriod) make the
// container unhealthy.
type HealthCheck struct {
	Command     []string // exec form: no shell
	Interval    time.Duration
	Timeout     time.Duration
	StartPeriod time.Duration
	Retries     int
}

// LogLimit bounds what the engine keeps of a container's output. Podman
// caps its log file at MaxBytes (k8s-file: conmon truncates it there;
// journald bounds itself); Docker keeps MaxFiles files of MaxBytes
// (json-file, rotated).
type LogLimit struct {
	MaxBytes int64
	MaxFiles int
}

// Tmpfs is a tmpfs mount private to the container.
type Tmpfs struct {
	Target    string
	SizeBytes int64
}

// Relabel is the SELinux relabel option of a bind mount.
type Relabel string

// Relabel options: none, shared between containers (z), private (Z).
const (
	RelabelNone    Relabel = ""
	RelabelShared  Relabel = "z"
	RelabelPrivate Relabel = "Z"
)

// Mount is a bind mount from the host.
type Mount struct {
	Source   string
	Target   string
	ReadOnly bool
	Relabel  Relabel
}

// SecretMount places a secret as a file inside the container.
type SecretMount struct {
	Name   string
	Target string // absolute path inside the container
	Mode   uint32 // e.g. 0o400
	UID    int
	GID    int
}

// RestartPolicy names when the engine restarts the container.
type RestartPolicy string

// Restart policies common to both engines.
const (
	RestartNo            RestartPolicy = "no"
	RestartAlways        RestartPolicy = "always"
	RestartUnlessStopped RestartPolicy = "unless-stopped"
	RestartOnFailure     RestartPolicy = "on-failure"
)

// Resources are the limits of a container; zero means unlimited.
type Resources struct {
	MemoryBytes int64
	CPUs        float64 // e.g. 0.5 for half a core
	Pids        int64
}

// Ulimit is one resource limit, e.g. {"nofile", 1024, 1024}.
type Ulimit struct {
	Name string
	Soft uint64
	Hard uint64
}

// UlimitName normalises a limit's name as engines report it
// ("RLIMIT_NOFILE", "nofile") to the short form ("nofile").
func UlimitName(n string) string {
	return strings.ToLower(strings.TrimPrefix(strings.ToUpper(n), "RLIMIT_"))
}

// Container describes a container, as read back from the engine.
type Container struct {
	ID       string
	Name     string
	Image    string // what the container was created from
	ImageID  string
	Labels   map[string]string
	State    string // "created", "running", "exited", ...
	Running  bool
	ExitCode int
	// OOMKilled: the kernel killed it at its memory limit (exit 137).
	OOMKilled  bool
	StartedAt  time.Time
	FinishedAt time.Time
	Restart    RestartPolicy
	// RestartCount counts the engine's restarts of it by its policy.
	RestartCount   int
	MemoryLimit    int64
	Ulimits        []Ulimit
	ReadOnlyRootfs bool
	// Health is the container's health ("" without a health check).
	Health string
	// HasHealthCheck says whether the container was created with one.
	HasHealthCheck bool
	// LogDriver and LogMaxBytes are the container's log settings (0: the
	// engine keeps the log unbounded, or its driver bounds it itself).
	LogDriver   string
	LogMaxBytes int64
	// SecurityOptions are the label and other security options it runs
	// with, as the engine reports them ("label=disable", "label=type:...").
	SecurityOptions []string
}

// Stats is one sample of a container's usage.
type Stats struct {
	MemoryBytes uint64  // current usage
	MemoryLimit uint64  // the limit in force, if any
	CPUPercent  float64 // of one core, averaged since the previous sample
	CPUNanos    uint64  // total CPU time consumed
	Pids        uint64
}

// TmpfsOptions are the mount options of t: private, no devices, no
// set-uid, no programs, root-only.
func TmpfsOptions(t Tmpfs) []string {
	opts := []string{"rw", "nosuid", "nodev", "noexec", "mode=0700"}
	if t.SizeBytes > 0 {
		opts = append(opts, "size="+strconv.FormatInt(t.SizeBytes, 10))
	}
	return opts
}
