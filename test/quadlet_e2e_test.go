package test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/engine"
	"github.com/collectorhq/collector/internal/env"
	"github.com/collectorhq/collector/internal/testutil"
)

// TestQuadletInstall: the container installer, run again with --quadlet
// on the collector it installed, writes the Quadlet units (the real
// collector ID and image digest, this host's paths) into the mounted
// directory and removes the containers the engine ran; Podman's generator
// makes services of them; a second run changes nothing; and what boot
// runs, each generated service's ExecStart, brings the collector back:
// active, and running a job.
func TestQuadletInstall(t *testing.T) {
	need(t)
	p := startPlatform(t)
	k := podmanKit(t)
	h, vars, token := newHost(t, p, k)
	if out, err := h.runInstaller(vars, token); err != nil {
		t.Fatalf("installer: %v\n%s", err, out)
	}
	h.open(t)
	waitFor(t, "collector active", 90*time.Second, func() bool { return p.collector(t, h.id).Status == api.CollectorStatusActive })

	qdir := t.TempDir()
	h.mounts = []string{qdir}
	vars[env.Quadlet], vars[env.QuadletDir] = "true", qdir
	out, err := h.runInstaller(vars, "burned-token")
	if err != nil {
		t.Fatalf("installer --quadlet: %v\n%s", err, out)
	}
	for _, want := range []string{"collector-daemon: removed (systemd runs it", "collector-runner: removed (systemd runs it",
		qdir + "/collector-daemon.container", "written", "systemctl daemon-reload"} {
		if !strings.Contains(out, want) {
			t.Errorf("installer --quadlet output lacks %q:\n%s", want, out)
		}
	}
	ctx := context.Background()
	for _, n := range []string{"collector-daemon", "collector-runner"} {
		if _, err := h.eng.InspectContainer(ctx, n); !errors.Is(err, engine.ErrNotFound) {
			t.Errorf("%s still exists after --quadlet (%v): the engine and systemd would both run it", n, err)
		}
	}
	if out, err := h.runInstaller(vars, "burned-token"); err != nil || !strings.Contains(out, "unchanged") {
		t.Errorf("installer --quadlet again: %v, want the units unchanged:\n%s", err, out)
	}

	services := testutil.QuadletDryrun(t, testutil.BuildQuadlet(t), qdir)
	start := time.Now()
	for _, name := range []string{"collector-runner.service", "collector-daemon.service"} {
		unit, ok := services[name]
		if !ok {
			t.Fatalf("the generator made no %s of %s", name, qdir)
		}
		args := testutil.SplitExec(testutil.ExecStart(unit))
		if len(args) < 3 || args[0] != "/usr/bin/podman" || args[1] != "run" {
			t.Fatalf("%s: ExecStart %q is not a podman run", name, args)
		}
		for _, want := range []string{h.id, h.etc, world.registry.Addr + "/collectorhq/collector@sha256:"} {
			if !strings.Contains(strings.Join(args, " "), want) {
				t.Errorf("%s: ExecStart lacks %q: %q", name, want, args)
			}
		}
		args = bootable(t, args[1:])
		if out, err := world.podman.CLI(args...).CombinedOutput(); err != nil {
			t.Fatalf("%s's ExecStart: %v\n%s", name, err, out)
		}
		t.Cleanup(func() { world.podman.CLI("rm", "-f", "-t", "0", strings.TrimSuffix(name, ".service")).Run() })
	}
	rolesStarted(t, h, "the collector's containers running from their units", start)
	waitFor(t, "collector active from its units", 60*time.Second, func() bool {
		return p.collector(t, h.id).Status == api.CollectorStatusActive
	})
	integ := p.integration(t, h.id, world.exampleImage, map[string]any{"count": 3, "token": "e2e-quadlet-secret"})
	p.waitSucceeded(t, p.runJob(t, integ).ID, 3*time.Minute, "a job of the collector systemd runs")
}

// bootable is a generated ExecStart's podman arguments as this machine
// can run them without systemd: what needs systemd's environment is
// replaced, each said in the log.
func bootable(t *testing.T, args []string) []string {
	t.Helper()
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		switch {
		case args[i] == "--log-driver" && i+1 < len(args) && args[i+1] == "journald":
			// No journald here (the collector's containers log to it under
			// systemd): Podman's default driver instead.
			out = append(out, "--log-driver", "k8s-file")
			i++
			t.Log("ExecStart: --log-driver journald run as k8s-file (no journald on this machine)")
		case args[i] == "--cgroups=split":
			// Split puts the container's cgroup under the unit's, which
			// exists only under systemd: Podman's default here.
			t.Log("ExecStart: --cgroups=split left out (no systemd unit cgroup on this machine)")
		default:
			out = append(out, args[i])
		}
	}
	return out
}
