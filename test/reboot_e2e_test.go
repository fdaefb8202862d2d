package test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/engine"
	"github.com/collectorhq/collector/engine/enginetest"
	"github.com/collectorhq/collector/internal/env"
)

// podmanRestartExecStart is what boot runs for Podman's containers: the
// ExecStart of the podman-restart.service Podman ships, with its
// Environment= expanded, split into arguments.
func podmanRestartExecStart(t *testing.T) []string {
	t.Helper()
	var unit string
	for _, p := range []string{"/usr/lib/systemd/system/podman-restart.service", "/lib/systemd/system/podman-restart.service"} {
		if b, err := os.ReadFile(p); err == nil {
			unit = string(b)
			break
		}
	}
	if unit == "" {
		if env.InCI() {
			t.Fatal("podman-restart.service not found (Debian's podman package ships it)")
		}
		t.Skip("podman-restart.service not found")
	}
	vars := map[string]string{}
	var exec string
	sc := bufio.NewScanner(strings.NewReader(unit))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if v, ok := strings.CutPrefix(l, "Environment="); ok {
			k, val, _ := strings.Cut(v, "=")
			vars[k] = strings.Trim(val, `"`)
		}
		if v, ok := strings.CutPrefix(l, "ExecStart="); ok {
			exec = v
		}
	}
	exec = os.Expand(exec, func(k string) string { return vars[k] })
	args := strings.Fields(exec)
	if len(args) < 3 || !strings.HasSuffix(args[0], "/podman") || !strings.Contains(exec, "start --all --filter restart-policy=always") {
		t.Fatalf("podman-restart.service's ExecStart is not what this test knows: %q", exec)
	}
	return args[1:]
}

// rebootComesBack simulates a reboot of a host whose collector was
// installed by the container installer: the containers are stopped as a
// shutdown stops them, the Podman service goes away and comes back with a
// new socket, and then exactly what boot runs for Podman's containers
// (podman-restart.service's ExecStart, on the harness's storage) runs.
// The collector must be back, active, and run a job. A container with
// restart policy unless-stopped, stopped the same way, stays down: the
// reason the installer sets always on Podman.
func rebootComesBack(t *testing.T, p *platformProc, h *host) {
	k := h.kit
	boot := podmanRestartExecStart(t)

	bb, err := enginetest.BuildTestImage(world.podman, world.registry.Addr)
	if err != nil {
		t.Fatal(err)
	}
	control := fmt.Sprintf("reboot-control-%d", time.Now().UnixNano())
	if out, err := k.run("run", "-d", "--name", control, "--restart", "unless-stopped", "--network", "none",
		"--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", bb, "sleep", "600"); err != nil {
		t.Fatalf("control container: %v\n%s", err, out)
	}
	defer k.run("rm", "-f", "-t", "0", control)

	// Shutdown: the daemon first (it would bring the runner back), then
	// the rest; the engine's service goes away.
	for _, n := range []string{"collector-daemon", "collector-runner", control} {
		if out, err := k.run("stop", "-t", "10", n); err != nil {
			t.Fatalf("stop %s: %v\n%s", n, err, out)
		}
	}
	k.stopService()
	time.Sleep(time.Second)
	if err := k.startService(); err != nil {
		t.Fatalf("start the engine's service again: %v", err)
	}
	// Boot: what podman-restart.service runs.
	start := time.Now()
	cmd := world.podman.CLI(boot...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("podman-restart.service's ExecStart (%v): %v\n%s", boot, err, out)
	}
	t.Logf("ran podman-restart.service's ExecStart: podman %s", strings.Join(boot, " "))

	ctx := context.Background()
	rolesStarted(t, h, "the collector's containers running again", start)
	if c, err := h.eng.InspectContainer(ctx, control); err != nil || c.Running {
		t.Errorf("the unless-stopped control container after boot: %+v, %v; want it still stopped (proof that the boot path starts only always)", c, err)
	}
	waitFor(t, "collector active after the reboot", 60*time.Second, func() bool {
		return p.collector(t, h.id).Status == api.CollectorStatusActive
	})
	integ := p.integration(t, h.id, world.exampleImage, map[string]any{"count": 3, "token": "e2e-reboot-secret"})
	if j := p.waitJob(t, p.runJob(t, integ).ID, 3*time.Minute); j.State != api.JobSucceeded {
		t.Fatalf("job after the reboot: %+v", j)
	}
}

// runnerUnhealthyRestarted: a runner whose job loop stops (its process
// frozen) turns unhealthy once its status goes stale, and the daemon
// restarts it and reports it; the collector then runs jobs again. The
// stall bound is set short at install (COLLECTOR_RUNNER_STALL), above the
// 25 s long poll.
func runnerUnhealthyRestarted(t *testing.T, p *platformProc, h *host) {
	k := h.kit
	ctx := context.Background()
	before, err := h.eng.InspectContainer(ctx, "collector-runner")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := k.run("kill", "--signal", "STOP", "collector-runner"); err != nil {
		t.Fatalf("freeze the runner: %v\n%s", err, out)
	}
	var after *engine.Container
	waitFor(t, "the daemon to restart the frozen runner", 3*time.Minute, func() bool {
		c, err := h.eng.InspectContainer(ctx, "collector-runner")
		if err == nil && c.Running && c.StartedAt.After(before.StartedAt) {
			after = c
			return true
		}
		return false
	})
	logs, _ := k.run("logs", "collector-daemon")
	if !strings.Contains(logs, "the runner was unhealthy: restarted it") {
		t.Errorf("the daemon's log does not report the restart:\n%s", logs)
	}
	t.Logf("runner restarted: started %v, was %v", after.StartedAt, before.StartedAt)
	integ := p.integration(t, h.id, world.exampleImage, map[string]any{"count": 3, "token": "e2e-health-secret"})
	if j := p.waitJob(t, p.runJob(t, integ).ID, 3*time.Minute); j.State != api.JobSucceeded {
		t.Fatalf("job after the restart: %+v", j)
	}
}
