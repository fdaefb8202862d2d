package install

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"path/filepath"
	"time"

	"github.com/collectorhq/collector/collector/config"
	"github.com/collectorhq/collector/collector/health"
	"github.com/collectorhq/collector/engine"
	"github.com/collectorhq/collector/internal/buildinfo"
	"github.com/collectorhq/collector/internal/env"
	"github.com/collectorhq/collector/selinux"
)

// Names and labels of the collector's own containers.
const (
	// DaemonName and RunnerName are the default names (config.NamePrefix
	// may start them: Config.DaemonName, Config.RunnerName).
	DaemonName     = config.DefaultDaemonName
	RunnerName     = config.DefaultRunnerName
	LabelRole      = "io.collector.role"
	LabelVersion   = "io.collector.version"
	LabelCollector = "io.collector.collector"
	// LabelSpec holds a hash of the spec, so a re-install can tell an
	// unchanged container from one to replace.
	LabelSpec = "io.collector.spec"
	// LabelSystemdUnit is the label Podman gives a container a systemd
	// unit runs (Quadlet's, or podman generate systemd's).
	LabelSystemdUnit = "PODMAN_SYSTEMD_UNIT"
)

// DaemonSpec is the spec of collector-daemon.
//
// It gets the state dir too: it pins the platform's key set from its
// heartbeat answers there (config.PlatformKeysFile), which the runner's
// TLS pins and envelope checks read.
func DaemonSpec(c *config.Config) *engine.ContainerSpec {
	s := roleSpec(c, "daemon", c.DaemonName(), []engine.Mount{{Source: c.StateDir, Target: c.StateDir}})
	// The root filesystem is read-only: the image verifier of upgrades
	// keeps its few temporary files on a small tmpfs.
	s.Tmpfs = append(s.Tmpfs, engine.Tmpfs{Target: "/tmp", SizeBytes: 16 << 20})
	s.Labels[LabelSpec] = specHash(s)
	return s
}

// RunnerSpec is the spec of collector-runner: it also gets the state dir
// and the secret dir, a tmpfs where it writes each job's config as a file
// (engine.SecretFiles). The relabel of the secret dir is shared (z), like
// the job's mount of its file, so the runner can remove the file after the
// job whatever the job's MCS level (docs/selinux.md). The config and state
// dirs are not relabelled: with the collector's SELinux module they keep
// the module's file contexts (readable by the collector's type and root
// only), which a relabel would replace by container_file_t; with labels
// disabled a relabel does nothing.
func RunnerSpec(c *config.Config) *engine.ContainerSpec {
	secretDir := secretDir(c)
	extra := []engine.Mount{
		{Source: c.StateDir, Target: c.StateDir},
		{Source: secretDir, Target: secretDir, Relabel: engine.RelabelShared},
	}
	s := roleSpec(c, "runner", c.RunnerName(), extra)
	s.Env[env.SecretDir] = secretDir
	// The root filesystem is read-only: temporary files (the signature
	// checker's) go to the state dir.
	s.Env["TMPDIR"] = filepath.Join(c.StateDir, "tmp")
	// Secret files are chowned to the job's user.
	s.CapAdd = []string{"CHOWN"}
	s.Labels[LabelSpec] = specHash(s)
	return s
}

func secretDir(c *config.Config) string {
	if c.Engine.SecretDir != "" {
		return c.Engine.SecretDir
	}
	return engine.DefaultSecretDir
}

// sharedDirs hold more than an engine's socket: mounting one would hand the
// collector's containers every other socket and file of the host in it.
var sharedDirs = map[string]bool{
	"/": true, "/run": true, "/var/run": true, "/tmp": true, "/var/tmp": true, "/var": true, "/var/lib": true,
	"/dev": true, "/dev/shm": true, "/etc": true, "/home": true, "/root": true, "/usr": true, "/opt": true,
	"/srv": true, "/mnt": true, "/media": true, "/run/user": true,
}

// SocketMount is how the collector's containers get the engine socket, at
// the same path as on the host. A mount of the socket file pins the inode
// the engine had when the container started: an engine restarted at the
// same path (`systemctl restart podman`, a manually run service, dockerd
// with live restore) creates a new socket there, and the container would
// get "connection refused" until it is recreated. So the socket's
// directory is mounted (read-only: connecting needs no write on the
// mount), and a new socket in it is seen at once. That needs a directory
// of the engine's own, like /run/podman; a socket directly in a directory
// shared with the rest of the host (Docker's /var/run/docker.sock, or a
// user's runtime dir) is mounted as a file, with dedicated false: the
// installer says what that means and how to avoid it.
func SocketMount(socket string) (m engine.Mount, dedicated bool) {
	dir := filepath.Dir(filepath.Clean(socket))
	parent := filepath.Dir(dir)
	if sharedDirs[dir] || parent == "/run/user" || parent == "/home" {
		return engine.Mount{Source: socket, Target: socket}, false
	}
	return engine.Mount{Source: dir, Target: dir, ReadOnly: true}, true
}

// The collector's own containers' health check: `collector health` in
// the container, reading the status its role keeps (package health).
// Three failures in a row, after a minute to start, make it unhealthy.
var roleHealthCheck = engine.HealthCheck{
	Command:  []string{"/usr/bin/collector", "health"},
	Interval: 30 * time.Second, Timeout: 10 * time.Second, StartPeriod: time.Minute, Retries: 3,
}

// RoleLogLimit bounds the engine's log of the daemon and runner: months
// of INFO lines must not fill the disk. 10 MiB a file (Podman with a file
// driver: one file, truncated there; journald bounds itself), three files
// on Docker.
var RoleLogLimit = engine.LogLimit{MaxBytes: 10 << 20, MaxFiles: 3}

// RestartPolicy is the restart policy of the daemon and runner on an
// engine. On Podman it is always: Podman has no daemon to bring
// containers back at boot; podman-restart.service does, and (before
// Podman 5.7, so on RHEL 8 and 9) only for containers whose policy is
// always. Docker's own daemon restarts unless-stopped containers at boot.
func RestartPolicy(kind string) engine.RestartPolicy {
	if engine.Kind(kind) == engine.KindDocker {
		return engine.RestartUnlessStopped
	}
	return engine.RestartAlways
}

func roleSpec(c *config.Config, role, name string, extra []engine.Mount) *engine.ContainerSpec {
	sock, _ := SocketMount(c.Engine.Socket)
	hc := roleHealthCheck
	s := &engine.ContainerSpec{
		Name:    name,
		Image:   c.Image,
		Command: []string{role},
		Labels: map[string]string{
			LabelRole: role, LabelVersion: buildinfo.Version, LabelCollector: c.CollectorID,
		},
		Mounts: append([]engine.Mount{
			{Source: c.Dir, Target: c.Dir, ReadOnly: true},
			sock,
		}, extra...),
		Env: map[string]string{
			env.EngineHost: "unix://" + c.Engine.Socket, env.EngineKind: c.Engine.Kind, env.ConfigDir: c.Dir,
		},
		Restart: RestartPolicy(c.Engine.Kind),
		Network: c.Network,
		Ulimits: []engine.Ulimit{{Name: "nofile", Soft: 4096, Hard: 4096}, {Name: "nproc", Soft: 1024, Hard: 1024}},
		// The engine socket is root's; nothing else is needed.
		CapDrop:         []string{"ALL"},
		NoNewPrivileges: true,
		ReadOnlyRootfs:  true,
		Resources:       engine.Resources{MemoryBytes: 256 << 20, Pids: 256},
		// The socket needs the module's type, or labels off (docs/selinux.md).
		SELinuxOptions: selinux.RoleOptions(c.SELinuxType),
		HealthCheck:    &hc,
		Log:            RoleLogLimit,
		Tmpfs:          []engine.Tmpfs{{Target: health.Dir, SizeBytes: 1 << 20}},
	}
	s.Labels[LabelSpec] = specHash(s)
	return s
}

// specHash fingerprints a spec (without the hash label itself).
func specHash(s *engine.ContainerSpec) string {
	cp := *s
	labels := map[string]string{}
	for k, v := range s.Labels {
		if k != LabelSpec {
			labels[k] = v
		}
	}
	cp.Labels = labels
	b, _ := json.Marshal(cp)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}
