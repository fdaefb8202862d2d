package install_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/collectorhq/collector/collector/install"
	"github.com/collectorhq/collector/collector/runner"
	"github.com/collectorhq/collector/engine"
	"github.com/collectorhq/collector/selinux"
)

// TestRoleSpecsSecurity: the daemon and runner run with labels disabled
// unless the collector's SELinux module is loaded, then as its type; both
// carry the health check, its tmpfs, bounded logs, and the restart policy
// that brings them back at boot on their engine. Job containers are
// always confined: container_t at a level of their own where SELinux is
// on, nothing to set where it is off.
func TestRoleSpecsSecurity(t *testing.T) {
	for _, c := range []struct {
		name, selinuxType, kind string
		wantLabel               string
		wantRestart             engine.RestartPolicy
	}{
		{"podman, no module", "", "podman", "disable", engine.RestartAlways},
		{"podman, module", selinux.CollectorType, "podman", "type:collector_container_t", engine.RestartAlways},
		{"docker, no module", "", "docker", "disable", engine.RestartUnlessStopped},
	} {
		cfg := referenceConfig()
		cfg.SELinuxType, cfg.Engine.Kind, cfg.Supervisor = c.selinuxType, c.kind, ""
		for _, s := range []*engine.ContainerSpec{install.DaemonSpec(cfg), install.RunnerSpec(cfg)} {
			if !slices.Equal(s.SELinuxOptions, []string{c.wantLabel}) {
				t.Errorf("%s: %s label options = %q, want [%s]", c.name, s.Name, s.SELinuxOptions, c.wantLabel)
			}
			if s.Restart != c.wantRestart {
				t.Errorf("%s: %s restart = %q, want %q", c.name, s.Name, s.Restart, c.wantRestart)
			}
			if s.Privileged || !s.NoNewPrivileges || !s.ReadOnlyRootfs || !slices.Equal(s.CapDrop, []string{"ALL"}) {
				t.Errorf("%s: %s is not least-privilege: %+v", c.name, s.Name, s)
			}
			if s.HealthCheck == nil || !slices.Equal(s.HealthCheck.Command, []string{"/usr/bin/collector", "health"}) || s.HealthCheck.Retries < 1 {
				t.Errorf("%s: %s health check = %+v", c.name, s.Name, s.HealthCheck)
			}
			// The health status's tmpfs; the daemon's verifier's /tmp.
			wantTmpfs := 1
			if s.Name == install.DaemonName {
				wantTmpfs = 2
			}
			if len(s.Tmpfs) != wantTmpfs || s.Tmpfs[0].Target != "/run/collector-health" || s.Log.MaxBytes == 0 {
				t.Errorf("%s: %s tmpfs %+v, log %+v", c.name, s.Name, s.Tmpfs, s.Log)
			}
			for _, m := range s.Mounts {
				// The module's file types stay on the config and state dirs.
				if (m.Source == cfg.Dir || m.Source == cfg.StateDir) && m.Relabel != engine.RelabelNone {
					t.Errorf("%s: %s relabels %s (%q)", c.name, s.Name, m.Source, m.Relabel)
				}
			}
		}
	}

	level, _ := selinux.LevelOption("system_u:system_r:container_t:s0:c7,c8")
	for _, c := range []struct {
		name string
		opts []string
		want []string
	}{
		{"SELinux on", selinux.JobOptions(level), []string{"type:container_t", "level:s0:c7,c8"}},
		{"SELinux off", selinux.JobOptions(""), nil},
	} {
		s, err := runner.ContainerSpec(runner.JobContainer{Name: "collector-job-x", SecretName: "s", Image: "img@sha256:1", ImageUser: "65532",
			SELinuxOptions: c.opts})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(s.SELinuxOptions, c.want) || slices.Contains(s.SELinuxOptions, "disable") || s.Privileged {
			t.Errorf("job spec, %s: label options %q, want %q", c.name, s.SELinuxOptions, c.want)
		}
	}
}

// TestNamePrefix: a prefix starts the names of both containers and of
// their Quadlet units, so that two collectors can share one engine; a
// malformed one is refused before anything is done.
func TestNamePrefix(t *testing.T) {
	cfg := referenceConfig()
	cfg.NamePrefix = "b-"
	if d, r := install.DaemonSpec(cfg).Name, install.RunnerSpec(cfg).Name; d != "b-collector-daemon" || r != "b-collector-runner" {
		t.Errorf("names = %s, %s; want b-collector-daemon, b-collector-runner", d, r)
	}
	cfg.NamePrefix = ""
	if d := install.DaemonSpec(cfg).Name; d != install.DaemonName {
		t.Errorf("name without a prefix = %s, want %s", d, install.DaemonName)
	}
	for _, bad := range []string{"B-", "b", "-b-", "b/-", "a-very-long-prefix-of-more-than-31-", "b -"} {
		_, err := install.Install(t.Context(), nil, install.Options{NamePrefix: bad})
		if err == nil || !strings.Contains(err.Error(), "name prefix") {
			t.Errorf("prefix %q: %v, want it refused", bad, err)
		}
	}
}
