package test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/collector/ops"
	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/platform"
)

// TestCARotationPodman: an operator rotates the platform CA the collectors
// pin for TLS while a real collector runs a job (docs/auth.md, "Rotating
// the platform CA"). The daemon pins the announced CA from a heartbeat
// answer; the switch happens while a job runs; that job finishes on its
// first attempt, heartbeats and the next job go over TLS to the new CA,
// nothing is re-enrolled or restarted; during the grace the old CA is
// still accepted, and after it a server with the old CA's certificate is
// refused (the doctor's TLS check, which reads the same pins).
func TestCARotationPodman(t *testing.T) {
	need(t)
	const grace = 25 * time.Second
	p := startPlatform(t)
	h := install(t, p, podmanKit(t))
	waitFor(t, "the collector active", 2*time.Minute, func() bool { return p.collector(t, h.id).Status == api.CollectorStatusActive })
	before := p.collector(t, h.id)
	// The old CA's server certificate, to play a platform that still
	// serves it.
	old := t.TempDir()
	for _, f := range []string{platform.ServerCertFile, platform.ServerKeyFile} {
		b, err := os.ReadFile(filepath.Join(p.dataDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(old, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	oldServer := certProxy(t, p, filepath.Join(old, platform.ServerCertFile), filepath.Join(old, platform.ServerKeyFile), 0)
	oldTLS := func() ops.Check {
		t.Helper()
		etc := copyConfig(t, h.etc, func(m map[string]any) { m["platform_url"] = oldServer })
		rep, _, _ := h.doctor(t, hostRoot(t, true), etc)
		return check(rep, "platform-tls")
	}

	ca := p.keys(t, "ca")
	ca("announce")
	var st platform.CAStatus
	if err := json.Unmarshal([]byte(ca("status", "--json")), &st); err != nil || st.Next == "" {
		t.Fatalf("status after the announcement: %+v, %v", st, err)
	}
	oldPin := st.Current
	pinned := func() *crypto.CAPins {
		if ks := h.pinnedKeys(); ks != nil {
			return ks.CA
		}
		return nil
	}
	// No job: the daemon pins it from its heartbeats.
	waitFor(t, "the daemon pinning the announced CA", time.Minute, func() bool { c := pinned(); return c != nil && c.Next == st.Next })

	id := p.integration(t, h.id, world.exampleImage, map[string]any{"count": 10, "prefix": "ca-", "sleep_seconds": 10, "token": "e2e-ca-secret"})
	job := p.runJob(t, id)
	waitFor(t, "the job running", 90*time.Second, func() bool { return p.job(t, job.ID).State == api.JobRunning })
	ca("switch", "--force", "--grace", grace.String())
	switched := time.Now()
	waitFor(t, "the collector pinning the switch", grace/2, func() bool {
		c := pinned()
		return c != nil && c.Current == st.Next && c.Previous == oldPin
	})
	if c := oldTLS(); c.Result != ops.Pass {
		t.Errorf("during the grace, a server with the old CA: %+v, want accepted", c)
	}

	if j := p.waitJob(t, job.ID, 2*time.Minute); j.State != api.JobSucceeded || j.Attempt != 1 {
		t.Fatalf("the job during the CA switch: %+v, want succeeded on attempt 1", j)
	}
	if keys := p.entityKeys(t, id); len(keys) != 11 {
		t.Errorf("%d entities, want 11 (10 and the secret proof)", len(keys))
	}
	if j := p.waitJob(t, p.runJob(t, id).ID, 2*time.Minute); j.State != api.JobSucceeded || j.Attempt != 1 {
		t.Fatalf("a job after the switch: %+v", j)
	}
	waitFor(t, "a heartbeat over the new CA", time.Minute, func() bool {
		c := p.collector(t, h.id)
		return c.LastHeartbeatAt != nil && c.LastHeartbeatAt.After(switched.Add(2*time.Second)) && c.Status == api.CollectorStatusActive
	})

	time.Sleep(time.Until(switched.Add(grace + 2*time.Second)))
	if c := oldTLS(); c.Result != ops.Fail || !strings.Contains(c.Detail, "does not match the CA pin") {
		t.Errorf("after the grace, a server with the old CA: %+v, want refused", c)
	}
	if j := p.waitJob(t, p.runJob(t, id).ID, 2*time.Minute); j.State != api.JobSucceeded {
		t.Errorf("a job after the grace: %+v", j)
	}
	seen := time.Now()
	waitFor(t, "a heartbeat after the grace", time.Minute, func() bool {
		c := p.collector(t, h.id)
		return c.LastHeartbeatAt != nil && c.LastHeartbeatAt.After(seen) && c.Status == api.CollectorStatusActive
	})
	if c := p.collector(t, h.id); c.EnrolledAt == nil || !c.EnrolledAt.Equal(*before.EnrolledAt) {
		t.Errorf("collector after the rotation: %+v, want the same enrollment", c)
	}
	if logs, _ := h.kit.run("logs", "collector-daemon"); !strings.Contains(logs, "pinned the platform's keys and CA pins") || strings.Contains(logs, "signed by no key") {
		t.Errorf("the daemon's log does not show the CA pinned, or shows a set refused:\n%s", logs)
	}
}
