package test

// Collector upgrades on the real Podman service (docs/upgrades.md): the
// platform asks, the daemon verifies and pulls, drains the runner, replaces
// it and itself, health-gated, and rolls back when the new runner is not
// healthy.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/engine"
	"github.com/collectorhq/collector/internal/env"
)

// collectorVariant builds an image FROM the e2e collector image with the
// lines given, pushes it under repo:tag, signs it unless unsigned, and
// returns its reference.
func collectorVariant(t *testing.T, repo, tag string, signed bool, lines ...string) string {
	t.Helper()
	dir := t.TempDir()
	cf := "FROM " + world.collectorImage + "\n" + strings.Join(lines, "\n") + "\n"
	if err := os.WriteFile(filepath.Join(dir, "Containerfile"), []byte(cf), 0o644); err != nil {
		t.Fatal(err)
	}
	ref := repo + ":" + tag
	if out, err := world.podman.Run("build", "--pull=never", "-t", ref, "-f", filepath.Join(dir, "Containerfile"), dir); err != nil {
		t.Fatalf("build %s: %v\n%s", ref, err, out)
	}
	if out, err := world.podman.Run("push", "--tls-verify=false", ref, "docker://"+ref); err != nil {
		t.Fatalf("push %s: %v\n%s", ref, err, out)
	}
	if signed {
		keys := filepath.Join(world.dir, "keys")
		if _, err := run(keys, []string{"COSIGN_PASSWORD=e2e-password"}, filepath.Join(world.bin, "collector-release"),
			"sign", "--insecure", "--key", filepath.Join(keys, "cosign.key"), ref); err != nil {
			t.Fatalf("sign %s: %v", ref, err)
		}
	}
	return ref
}

// auditSince returns the audit entries of action on target, in order.
func (p *platformProc) auditOf(t *testing.T, target string) []api.AuditEntry {
	var l api.AuditList
	p.cliJSON(&l, "audit", "list")
	var out []api.AuditEntry
	for _, e := range l.Entries {
		if e.Target == target && strings.HasPrefix(e.Action, "collector.upgrade_") {
			out = append(out, e)
		}
	}
	return out
}

func TestUpgradePodman(t *testing.T) {
	need(t)
	testUpgrade(t, podmanKit(t))
}

func TestUpgradeDocker(t *testing.T) {
	need(t)
	testUpgrade(t, dockerKit(t))
}

func testUpgrade(t *testing.T, k *kit) {
	p := startPlatform(t)
	h := installHost(t, p, k, map[string]string{env.UpgradeWindow: "45s"})
	waitFor(t, "collector active", 90*time.Second, func() bool { return p.collector(t, h.id).Status == api.CollectorStatusActive })
	ctx := context.Background()
	dumpLogs := func(t *testing.T) {
		for _, n := range []string{"collector-daemon", "collector-daemon-next", "collector-runner"} {
			out, _ := k.run("logs", "--tail", "60", n)
			var keep []string
			for _, l := range strings.Split(out, "\n") {
				if !strings.Contains(l, "heartbeat sent") {
					keep = append(keep, l)
				}
			}
			t.Logf("%s's last lines:\n%s", n, strings.Join(keep, "\n"))
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			dumpLogs(t)
		}
	})
	repo := world.registry.Addr + "/collectorhq/collector"
	v2 := collectorVariant(t, repo, "e2e-v2", true, `LABEL org.opencontainers.image.version="e2e-v2"`)
	v3 := collectorVariant(t, repo, "e2e-v3", true, `LABEL org.opencontainers.image.version="e2e-v3"`, `ENV `+env.TestUnhealthy+`=runner`)
	v4 := collectorVariant(t, world.registry.Addr+"/unsigned/collector", "e2e-v4", false, `LABEL org.opencontainers.image.version="e2e-v4"`)
	v5 := collectorVariant(t, repo, "e2e-v5", true, `LABEL org.opencontainers.image.version="e2e-v5"`)

	images := func() (string, string) {
		d, err1 := h.eng.InspectContainer(ctx, "collector-daemon")
		r, err2 := h.eng.InspectContainer(ctx, "collector-runner")
		if err1 != nil || err2 != nil {
			return "", ""
		}
		return d.Image, r.Image
	}
	upgrade := func(ref string) (api.UpgradeResult, error) {
		var res api.UpgradeResult
		out, err := p.cli("collectors", "upgrade", h.id, "--image", ref, "--json")
		if err != nil {
			return res, fmt.Errorf("%v: %s", err, out)
		}
		return res, jsonInto(out, &res)
	}

	var v2Digest string
	t.Run("WhileAJobRuns", func(t *testing.T) {
		id := p.integration(t, h.id, world.exampleImage, map[string]any{"count": 30, "prefix": "up-", "sleep_seconds": 12, "token": "e2e-upgrade-secret"})
		job := p.runJob(t, id)
		waitFor(t, "the job running", 90*time.Second, func() bool { return p.job(t, job.ID).State == api.JobRunning })
		asked := time.Now()
		res, err := upgrade(v2)
		if err != nil {
			t.Fatal(err)
		}
		v2Digest = res.Image
		if !api.ValidDigestRef(v2Digest) || res.Version != "e2e-v2" {
			t.Fatalf("upgrade answered %+v, want v2 by digest", res)
		}
		waitFor(t, "both containers on v2", 4*time.Minute, func() bool {
			d, r := images()
			return d == v2Digest && r == v2Digest
		})
		waitFor(t, "the platform sees v2", time.Minute, func() bool {
			c := p.collector(t, h.id)
			return c.LastHeartbeat != nil && c.LastHeartbeat.Image == v2Digest && c.DesiredImage == ""
		})
		total := time.Since(asked)
		waitFor(t, "the success audited", time.Minute, func() bool {
			for _, e := range p.auditOf(t, h.id) {
				if e.Action == "collector.upgrade_succeeded" {
					return true
				}
			}
			return false
		})
		// The job ran once, to its end, on the old runner (drained).
		j := p.waitJob(t, job.ID, 2*time.Minute)
		if j.State != api.JobSucceeded || j.Attempt != 1 {
			t.Errorf("the job during the upgrade: %+v, want succeeded on attempt 1", j)
		}
		if keys := p.entityKeys(t, id); len(keys) != 31 {
			t.Errorf("%d entities, want 31 (30 and the secret proof)", len(keys))
		}
		steps := p.auditOf(t, h.id)
		var names []string
		at := map[string]time.Time{}
		for _, e := range steps {
			names = append(names, strings.TrimPrefix(e.Action, "collector.upgrade_"))
			if _, ok := at[e.Action]; !ok {
				at[e.Action] = e.Time
			}
		}
		for _, want := range []string{"requested", "pulling", "draining", "runner_replaced", "daemon_replaced", "succeeded"} {
			if _, ok := at["collector.upgrade_"+want]; !ok {
				t.Errorf("no %s step in the audit log: %v", want, names)
			}
		}
		t.Logf("upgrade v1 -> v2 while a 12 s job runs: total %v (asked -> both containers on v2); steps %v", total.Round(time.Millisecond), names)
		// A job runs on v2.
		if j := p.waitJob(t, p.runJob(t, id).ID, 2*time.Minute); j.State != api.JobSucceeded {
			t.Errorf("a job after the upgrade: %+v", j)
		}
		// Healthy, as `podman ps` shows once the check has run (no
		// systemd timer runs it here: run it as the timer would; dockerd
		// runs it on its own).
		for _, n := range []string{"collector-daemon", "collector-runner"} {
			waitFor(t, n+" healthy", time.Minute, func() bool {
				h, err := h.eng.RunHealthCheck(ctx, n)
				return err == nil && h.Status == "healthy"
			})
		}
	})

	t.Run("UnhealthyRunnerRolledBack", func(t *testing.T) {
		if v2Digest == "" {
			t.Skip("needs the upgrade to v2")
		}
		if _, err := upgrade(v3); err != nil {
			t.Fatal(err)
		}
		var c api.Collector
		for deadline := time.Now().Add(4 * time.Minute); ; time.Sleep(time.Second) {
			c = p.collector(t, h.id)
			if u := c.LastHeartbeat; u != nil && u.Upgrade != nil && u.Upgrade.State == api.UpgradeRolledBack {
				break
			}
			if time.Now().After(deadline) {
				dumpLogs(t)
				t.Fatalf("no rollback reported within 4 min: %+v", c.LastHeartbeat)
			}
		}
		if r := c.LastHeartbeat.Upgrade.Reason; !strings.Contains(r, "not healthy") || c.DesiredImage != "" {
			t.Errorf("rollback: reason %q, desired %q", r, c.DesiredImage)
		}
		waitFor(t, "the runner back on v2", time.Minute, func() bool {
			d, r := images()
			return d == v2Digest && r == v2Digest
		})
		id := p.integration(t, h.id, world.exampleImage, map[string]any{"count": 3, "prefix": "after-", "token": "e2e-upgrade-secret"})
		if j := p.waitJob(t, p.runJob(t, id).ID, 2*time.Minute); j.State != api.JobSucceeded {
			t.Errorf("a job after the rollback: %+v", j)
		}
	})

	t.Run("UnsignedRefused", func(t *testing.T) {
		if v2Digest == "" {
			t.Skip("needs the upgrade to v2")
		}
		_, err := upgrade(v4)
		if err == nil || !strings.Contains(err.Error(), "image") {
			t.Fatalf("upgrade to an unsigned image: %v, want refused", err)
		}
		if c := p.collector(t, h.id); c.DesiredImage != "" {
			t.Errorf("an unsigned image was asked for: %s", c.DesiredImage)
		}
		if d, r := images(); d != v2Digest || r != v2Digest {
			t.Errorf("containers changed: %s, %s", d, r)
		}
	})

	// An idle upgrade, timed: from the drain (the runner stops polling) to
	// the new runner running, and in all.
	t.Run("IdleUpgradeTimed", func(t *testing.T) {
		if v2Digest == "" {
			t.Skip("needs the upgrade to v2")
		}
		asked := time.Now()
		res, err := upgrade(v5)
		if err != nil {
			t.Fatal(err)
		}
		// The old runner stops polling when drained (well under a second
		// here: no job runs), and is removed; the new one polls as it
		// starts. Watch the runner container every 100 ms.
		oldLastSeen, runnerAt := asked, time.Time{}
		for deadline := time.Now().Add(3 * time.Minute); runnerAt.IsZero(); time.Sleep(100 * time.Millisecond) {
			r, err := h.eng.InspectContainer(ctx, "collector-runner")
			switch {
			case err == nil && r.Image == v2Digest && r.Running:
				oldLastSeen = time.Now()
			case err == nil && r.Image == res.Image && r.Running:
				runnerAt = time.Now()
			}
			if time.Now().After(deadline) {
				t.Fatal("the new runner did not run within 3 min")
			}
		}
		waitFor(t, "both on v5", 3*time.Minute, func() bool {
			d, r := images()
			return d == res.Image && r == res.Image
		})
		gap := runnerAt.Sub(oldLastSeen)
		t.Logf("idle upgrade v2 -> v5: no runner running for %v (the old one last seen running -> the new one running, 100 ms polls; the drain before it took under a second), total %v",
			gap.Round(time.Millisecond), time.Since(asked).Round(time.Millisecond))
		if gap > 10*time.Second {
			t.Errorf("no runner ran for %v, want at most 10 s", gap)
		}
	})

	// The daemon dies (exit 137, no clean-up) at each step of an upgrade:
	// after the pull, after the drain, after the runner's replacement, and
	// while both daemons exist. The engine's restart policy brings it back;
	// the platform still asks; the collector ends on the new version, with
	// no second daemon left, and runs a job. Each crashing image (its
	// daemon dies in the upgrade away from it, once) is the target of the
	// upgrade before.
	t.Run("DaemonKilledAtEachStep", func(t *testing.T) {
		if v2Digest == "" {
			t.Skip("needs the upgrade to v2")
		}
		steps := []string{"pulled", "drained", "runner", "successor"}
		var chain []string
		for _, st := range steps {
			chain = append(chain, collectorVariant(t, repo, "e2e-crash-"+st, true,
				`LABEL org.opencontainers.image.version="e2e-crash-`+st+`"`, `ENV `+env.TestCrashAt+`=`+st))
		}
		chain = append(chain, collectorVariant(t, repo, "e2e-v6", true, `LABEL org.opencontainers.image.version="e2e-v6"`))
		for i, ref := range chain {
			crashed := ""
			if i > 0 {
				crashed = steps[i-1]
			}
			asked := time.Now()
			res, err := upgrade(ref)
			if err != nil {
				t.Fatal(err)
			}
			// The crash shows as the engine's restart of the old daemon
			// (its container goes when the new daemon takes over).
			restarted := false
			for deadline := time.Now().Add(4 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
				if c, err := h.eng.InspectContainer(ctx, "collector-daemon"); err == nil && c.RestartCount > 0 {
					restarted = true
				}
				d, r := images()
				_, err := h.eng.InspectContainer(ctx, "collector-daemon-next")
				if d == res.Image && r == res.Image && errors.Is(err, engine.ErrNotFound) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("both containers not on %s within 4 min", res.Version)
				}
			}
			waitFor(t, "the platform sees "+res.Version, time.Minute, func() bool {
				c := p.collector(t, h.id)
				return c.LastHeartbeat != nil && c.LastHeartbeat.Image == res.Image && c.DesiredImage == ""
			})
			if crashed == "" {
				continue
			}
			if !restarted {
				t.Errorf("the daemon was not seen restarted after dying at %q", crashed)
			}
			t.Logf("daemon killed at %q: the collector recovered to %s in %v", crashed, res.Version, time.Since(asked).Round(time.Millisecond))
		}
		id := p.integration(t, h.id, world.exampleImage, map[string]any{"count": 2, "prefix": "crashes-", "token": "e2e-upgrade-secret"})
		if j := p.waitJob(t, p.runJob(t, id).ID, 2*time.Minute); j.State != api.JobSucceeded || j.Attempt != 1 {
			t.Errorf("a job after the crashes: %+v", j)
		}
	})

}

// jsonInto decodes a CLI's --json output.
func jsonInto(out string, v any) error {
	if err := json.Unmarshal([]byte(out), v); err != nil {
		return fmt.Errorf("%v\n%s", err, out)
	}
	return nil
}
