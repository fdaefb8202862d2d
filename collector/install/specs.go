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
// and, on Docker, the secret tmpfs.
func RunnerSpec(c *config.Config) *engine.ContainerSpec {
	extra := []engine.Mount{{Source: c.StateDir, Target: c.StateDir, Relabel: engine.RelabelPrivate}}
	docker := c.Engine.Kind == string(engine.KindDocker) && c.Engine.SecretDir != ""
	if docker {
		extra = append(extra, engine.Mount{Source: c.Engine.SecretDir, Target: c.Engine.SecretDir})
	}
	s := roleSpec(c, "runner", RunnerName, extra)
	// The root filesystem is read-only: temporary files (the signature
	// checker's) go to the state dir.
	s.Env["TMPDIR"] = filepath.Join(c.StateDir, "tmp")
	s.Labels[LabelSpec] = specHash(s)
	if docker {
		// Docker's secret files are chowned to the job's user.
		s.CapAdd = []string{"CHOWN"}
		s.Labels[LabelSpec] = specHash(s)
	}
	return s
}

func roleSpec(c *config.Config, role, name string, extra []engine.Mount) *engine.ContainerSpec {
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
			{Source: c.Engine.Socket, Target: c.Engine.Socket},
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
	if c.Engine.SecretDir != "" && c.Engine.Kind == string(engine.KindDocker) {
		s.Env[env.SecretDir] = c.Engine.SecretDir
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
