package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/collector/config"
	"github.com/collectorhq/collector/collector/rotation"
)

// TestKeyRotationPodman: an operator rotates a real collector's keys with
// `collector keys rotate` on the host while a job runs. The job finishes
// on its first attempt, the collector stays enrolled and active, and once
// the platform's grace for the old key is over (20 s here) the daemon and
// runner carry on with the new keys: a new job runs, heartbeats arrive,
// and the old key is never refused because nothing uses it any more.
func TestKeyRotationPodman(t *testing.T) {
	need(t)
	const grace = 20 * time.Second
	p := startPlatformFlags(t, "--collector-key-grace", grace.String())
	h := install(t, p, podmanKit(t))
	waitFor(t, "the collector active", 2*time.Minute, func() bool { return p.collector(t, h.id).Status == api.CollectorStatusActive })
	before := p.collector(t, h.id)

	id := p.integration(t, h.id, world.exampleImage, map[string]any{"count": 10, "prefix": "rot-", "sleep_seconds": 10, "token": "e2e-rotate-secret"})
	job := p.runJob(t, id)
	waitFor(t, "the job running", 90*time.Second, func() bool { return p.job(t, job.ID).State == api.JobRunning })

	// As an operator on the host: the RPM's CLI on the config dir.
	cmd := exec.Command(filepath.Join(world.bin, "collector"), "keys", "rotate", "--config-dir", h.etc, "--json")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("collector keys rotate: %v\n%s", err, out)
	}
	rotated := time.Now()
	var res rotation.Result
	if err := jsonInto(string(out), &res); err != nil {
		t.Fatal(err)
	}
	if res.IdentityKeyFingerprint == before.IdentityKeyFingerprint || res.HPKEKeyFingerprint == before.HPKEKeyFingerprint {
		t.Fatalf("rotation result %+v: the keys did not change (were %s, %s)", res, before.IdentityKeyFingerprint, before.HPKEKeyFingerprint)
	}
	for _, f := range []string{config.IdentityFile + config.PreviousSuffix, config.HPKEFile + config.PreviousSuffix} {
		if _, err := os.Stat(filepath.Join(h.etc, f)); err != nil {
			t.Errorf("old key not kept: %v", err)
		}
	}

	if j := p.waitJob(t, job.ID, 2*time.Minute); j.State != api.JobSucceeded || j.Attempt != 1 {
		t.Fatalf("the job during the rotation: %+v, want succeeded on attempt 1", j)
	}
	if keys := p.entityKeys(t, id); len(keys) != 11 {
		t.Errorf("%d entities, want 11 (10 and the secret proof)", len(keys))
	}
	c := p.collector(t, h.id)
	if c.IdentityKeyFingerprint != res.IdentityKeyFingerprint || c.HPKEKeyFingerprint != res.HPKEKeyFingerprint || c.EnrolledAt == nil || !c.EnrolledAt.Equal(*before.EnrolledAt) {
		t.Errorf("collector after the rotation: %+v, want the new keys and the same enrollment", c)
	}

	// Past the grace: only the new keys work, and they are all in use.
	time.Sleep(time.Until(rotated.Add(grace + 2*time.Second)))
	if j := p.waitJob(t, p.runJob(t, id).ID, 2*time.Minute); j.State != api.JobSucceeded {
		t.Errorf("a job after the grace: %+v", j)
	}
	seen := time.Now()
	waitFor(t, "a heartbeat after the grace", time.Minute, func() bool {
		c := p.collector(t, h.id)
		return c.LastHeartbeatAt != nil && c.LastHeartbeatAt.After(seen) && c.Status == api.CollectorStatusActive
	})
	var l api.AuditList
	p.cliJSON(&l, "audit", "list")
	enrolled, rotations := 0, 0
	for _, e := range l.Entries {
		switch {
		case e.Target != h.id:
		case e.Action == "collector.enrolled":
			enrolled++
		case e.Action == "collector.keys_rotated":
			rotations++
		}
	}
	if enrolled != 1 || rotations != 1 {
		t.Errorf("audit: %d enrollments and %d rotations, want 1 and 1", enrolled, rotations)
	}
	if log := p.log.String(); strings.Contains(log, "assertion refused") {
		t.Errorf("an assertion was refused (a key the collector should no longer use):\n%s", log)
	}
}
