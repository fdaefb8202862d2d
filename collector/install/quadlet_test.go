package install_test

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/collectorhq/collector/collector/config"
	"github.com/collectorhq/collector/collector/install"
	"github.com/collectorhq/collector/internal/env"
	"github.com/collectorhq/collector/internal/testutil"
	"github.com/collectorhq/collector/selinux"
)

var update = flag.Bool("update", false, "rewrite packaging/quadlet from the renderer")

// referenceConfig is the collector the units in packaging/quadlet are
// rendered for: the default paths and socket, Podman, the collector's
// SELinux module (the RPM installs it), systemd as the supervisor. The
// image and collector ID are placeholders the RPM build (or `collector
// install --quadlet`, which writes the real units) fills in.
func referenceConfig() *config.Config {
	return &config.Config{
		CollectorID: "col_REPLACE_ME",
		Image:       "registry.example/collectorhq/collector@sha256:" + strings.Repeat("0", 64),
		Dir:         config.DefaultDir, StateDir: config.DefaultStateDir,
		Engine:      config.EngineConfig{Kind: "podman", Socket: "/run/podman/podman.sock", SecretDir: "/run/collector/secrets"},
		SELinuxType: selinux.CollectorType,
		Supervisor:  config.SupervisorSystemd,
	}
}

func repoRoot(t *testing.T) string {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(wd, "..", "..")
}

// TestReferenceUnitsAreRendered: the units the RPM ships are exactly what
// the renderer writes for the reference collector (go test -update
// rewrites them), so they never drift from the installer's specs.
func TestReferenceUnitsAreRendered(t *testing.T) {
	units, err := install.QuadletUnits(referenceConfig())
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(repoRoot(t), "packaging", "quadlet")
	for name, want := range units {
		p := filepath.Join(dir, name)
		if *update {
			if err := os.WriteFile(p, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("%v (go test ./collector/install -run ReferenceUnits -update writes it)", err)
		}
		if string(got) != want {
			t.Errorf("%s differs from the renderer's output: run go test ./collector/install -run ReferenceUnits -update", p)
		}
	}
}

// TestQuadletUnitsCarryTheSpec: each unit carries what the container spec
// has, key by key, and no AutoUpdate.
func TestQuadletUnitsCarryTheSpec(t *testing.T) {
	c := referenceConfig()
	units, err := install.QuadletUnits(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, spec := range []struct {
		name string
		want []string
	}{
		{"collector-daemon.container", []string{"Exec=daemon", "ContainerName=collector-daemon"}},
		{"collector-runner.container", []string{"Exec=runner", "ContainerName=collector-runner", "AddCapability=CHOWN",
			"Volume=/var/lib/collector:/var/lib/collector", "Volume=/run/collector/secrets:/run/collector/secrets:z",
			`Environment=COLLECTOR_SECRET_DIR=/run/collector/secrets`}},
	} {
		u := units[spec.name]
		want := append([]string{
			"Image=" + c.Image, "SecurityLabelType=collector_container_t", "DropCapability=ALL", "NoNewPrivileges=true", "ReadOnly=true",
			"Volume=/etc/collector:/etc/collector:ro", "Volume=/run/podman:/run/podman:ro",
			"Ulimit=nofile=4096:4096", "Ulimit=nproc=1024:1024", `HealthCmd=["/usr/bin/collector","health"]`,
			"HealthInterval=30s", "HealthRetries=3", "LogDriver=journald", "PodmanArgs=--memory 268435456 --pids-limit 256",
			"Tmpfs=/run/collector-health:rw,nosuid,nodev,noexec,mode=0700,size=1048576",
			"Label=io.collector.collector=col_REPLACE_ME", "Requires=podman.socket", "Restart=always", "WantedBy=multi-user.target default.target",
		}, spec.want...)
		lines := strings.Split(u, "\n")
		for _, w := range want {
			if !slices.Contains(lines, w) {
				t.Errorf("%s lacks the line %q:\n%s", spec.name, w, u)
			}
		}
		for _, l := range lines {
			if strings.HasPrefix(l, "AutoUpdate=") {
				t.Errorf("%s sets %s: upgrades are the daemon's job", spec.name, l)
			}
		}
	}
	off := referenceConfig()
	off.SELinuxType = ""
	units, _ = install.QuadletUnits(off)
	if u := units["collector-daemon.container"]; !strings.Contains(u, "\nSecurityLabelDisable=true\n") || strings.Contains(u, "SecurityLabelType") {
		t.Errorf("without the SELinux module the unit must disable labels:\n%s", u)
	}
}

// TestQuadletGeneratesVerifiedServices runs Podman's own Quadlet
// generator (built from the podman module in go.mod) on the units and
// `systemd-analyze verify` on the services it generates, which needs no
// running systemd.
func TestQuadletGeneratesVerifiedServices(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if env.InCI() {
			t.Fatalf("systemd-analyze: %v (apt-get install systemd)", err)
		}
		t.Skipf("systemd-analyze not installed: %v", err)
	}
	tmp := t.TempDir()
	quadlet := testutil.BuildQuadlet(t)
	for _, cfg := range []*config.Config{referenceConfig(), func() *config.Config {
		c := referenceConfig()
		c.SELinuxType, c.Network = "", "host"
		return c
	}()} {
		units := filepath.Join(tmp, "units-"+cfg.SELinuxType)
		if _, _, err := install.WriteQuadletUnits(units, cfg); err != nil {
			t.Fatal(err)
		}
		services := testutil.QuadletDryrun(t, quadlet, units)
		gen := filepath.Join(tmp, "gen-"+cfg.SELinuxType)
		os.MkdirAll(gen, 0o755)
		var paths []string
		for _, name := range []string{"collector-daemon.service", "collector-runner.service"} {
			body, ok := services[name]
			if !ok {
				t.Fatalf("quadlet generated no %s, only %d units", name, len(services))
			}
			checkExecStart(t, name, body, cfg)
			p := filepath.Join(gen, name)
			if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			paths = append(paths, p)
		}
		// --man=no: the units' man pages are not installed here.
		v := exec.Command(analyze, append([]string{"verify", "--man=no"}, paths...)...)
		if vout, err := v.CombinedOutput(); err != nil || strings.Contains(string(vout), "collector-") {
			t.Errorf("systemd-analyze verify: %v\n%s", err, vout)
		}
	}
}

// checkExecStart looks for the spec in the podman command line Quadlet
// generated.
func checkExecStart(t *testing.T, name, body string, cfg *config.Config) {
	t.Helper()
	exec := testutil.ExecStart(body)
	want := []string{"--name collector-", `--health-cmd "[\"/usr/bin/collector\",\"health\"]"`, "--cap-drop all", "--read-only",
		"--security-opt=no-new-privileges", "--ulimit nofile=4096:4096", "--memory 268435456", "--log-driver journald", cfg.Image}
	if cfg.SELinuxType == "" {
		want = append(want, "--security-opt label=disable", "--network host")
	} else {
		want = append(want, "--security-opt label=type:collector_container_t")
	}
	for _, w := range want {
		if !strings.Contains(exec, w) {
			t.Errorf("%s: ExecStart lacks %q:\n%s", name, w, exec)
		}
	}
}
