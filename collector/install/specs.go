package install

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"path/filepath"

	"github.com/collectorhq/collector/collector/config"
	"github.com/collectorhq/collector/engine"
	"github.com/collectorhq/collector/internal/buildinfo"
	"github.com/collectorhq/collector/internal/env"
)

// Names and labels of the collector's own containers.
const (
	DaemonName     = "collector-daemon"
	RunnerName     = "collector-runner"
	LabelRole      = "io.collector.role"
	LabelVersion   = "io.collector.version"
	LabelCollector = "io.collector.collector"
	// LabelSpec holds a hash of the spec, so a re-install can tell an
	// unchanged container from one to replace.
	LabelSpec = "io.collector.spec"
)

// DaemonSpec is the spec of collector-daemon.
func DaemonSpec(c *config.Config) *engine.ContainerSpec {
	return roleSpec(c, "daemon", DaemonName, nil)
}

// RunnerSpec is the spec of collector-runner: it also gets the state dir
// and the secret dir, a tmpfs where it writes each job's config as a file
// (engine.SecretFiles). The relabel of the secret dir is shared (z), like
// the job's mount of its file, so the runner can remove the file after the
// job whatever the job's MCS level (docs/selinux.md).
func RunnerSpec(c *config.Config) *engine.ContainerSpec {
	secretDir := secretDir(c)
	extra := []engine.Mount{
		{Source: c.StateDir, Target: c.StateDir, Relabel: engine.RelabelPrivate},
		{Source: secretDir, Target: secretDir, Relabel: engine.RelabelShared},
	}
	s := roleSpec(c, "runner", RunnerName, extra)
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

func roleSpec(c *config.Config, role, name string, extra []engine.Mount) *engine.ContainerSpec {
	sock, _ := SocketMount(c.Engine.Socket)
	s := &engine.ContainerSpec{
		Name:    name,
		Image:   c.Image,
		Command: []string{role},
		Labels: map[string]string{
			LabelRole: role, LabelVersion: buildinfo.Version, LabelCollector: c.CollectorID,
		},
		Mounts: append([]engine.Mount{
			// Shared relabel (z): daemon and runner both read the config dir.
			{Source: c.Dir, Target: c.Dir, ReadOnly: true, Relabel: engine.RelabelShared},
			sock,
		}, extra...),
		Env: map[string]string{
			env.EngineHost: "unix://" + c.Engine.Socket, env.EngineKind: c.Engine.Kind, env.ConfigDir: c.Dir,
		},
		Restart: engine.RestartUnlessStopped,
		Network: c.Network,
		Ulimits: []engine.Ulimit{{Name: "nofile", Soft: 4096, Hard: 4096}, {Name: "nproc", Soft: 1024, Hard: 1024}},
		// The engine socket is root's; nothing else is needed.
		CapDrop:         []string{"ALL"},
		NoNewPrivileges: true,
		ReadOnlyRootfs:  true,
		Resources:       engine.Resources{MemoryBytes: 256 << 20, Pids: 256},
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
