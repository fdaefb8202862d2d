package test

import (
	"crypto/ed25519"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/collector/config"
	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/platform"
)

// TestSigningKeyRotationPodman: an operator rotates the platform's
// envelope-signing key on the platform's host while a real collector runs
// a job (docs/auth.md §8). The daemon pins the announced key from a
// heartbeat answer (the runner from a lease, if one comes first); the
// switch happens while a job (signed with the old key) runs, and is pinned
// at once, during the grace;
// that job finishes on its first attempt, the next job, signed with the
// new key, runs too, nothing is re-enrolled or restarted, and after the
// grace the collector accepts the new key alone.
func TestSigningKeyRotationPodman(t *testing.T) {
	need(t)
	const grace = 20 * time.Second
	p := startPlatform(t)
	h := install(t, p, podmanKit(t))
	waitFor(t, "the collector active", 2*time.Minute, func() bool { return p.collector(t, h.id).Status == api.CollectorStatusActive })
	before := p.collector(t, h.id)
	signing := p.keys(t, "signing")
	signing("announce")
	var st platform.SigningStatus
	if err := json.Unmarshal([]byte(signing("status", "--json")), &st); err != nil || st.Next == "" {
		t.Fatalf("status after the announcement: %+v, %v", st, err)
	}
	pinned := h.pinnedKeys
	id := p.integration(t, h.id, world.exampleImage, map[string]any{"count": 10, "prefix": "sig-", "sleep_seconds": 10, "token": "e2e-signing-secret"})
	if j := p.waitJob(t, p.runJob(t, id).ID, 2*time.Minute); j.State != api.JobSucceeded {
		t.Fatalf("the job that carries the announcement: %+v", j)
	}
	if ks := pinned(); ks == nil || len(ks.Next) == 0 || crypto.Fingerprint(ed25519.PublicKey(ks.Next)) != st.Next {
		t.Fatalf("the collector pinned %+v, want the announced key %s as next", ks, st.Next)
	}
	job := p.runJob(t, id)
	waitFor(t, "the job running", 90*time.Second, func() bool { return p.job(t, job.ID).State == api.JobRunning })
	signing("switch", "--force", "--grace", grace.String())
	switched := time.Now()
	// The daemon pins the switch from its next heartbeat answer, the job
	// running or not.
	waitFor(t, "the collector pinning the switch", grace/2, func() bool {
		ks := pinned()
		return ks != nil && crypto.Fingerprint(ed25519.PublicKey(ks.Current)) == st.Next && len(ks.Previous) != 0
	})

	if j := p.waitJob(t, job.ID, 2*time.Minute); j.State != api.JobSucceeded || j.Attempt != 1 {
		t.Fatalf("the job signed with the old key, during the switch: %+v, want succeeded on attempt 1", j)
	}
	if keys := p.entityKeys(t, id); len(keys) != 11 {
		t.Errorf("%d entities, want 11 (10 and the secret proof)", len(keys))
	}
	if j := p.waitJob(t, p.runJob(t, id).ID, 2*time.Minute); j.State != api.JobSucceeded || j.Attempt != 1 {
		t.Fatalf("the job signed with the new key: %+v", j)
	}

	time.Sleep(time.Until(switched.Add(grace + 2*time.Second)))
	if j := p.waitJob(t, p.runJob(t, id).ID, 2*time.Minute); j.State != api.JobSucceeded {
		t.Errorf("a job after the grace: %+v", j)
	}
	if ks := pinned(); ks == nil || len(ks.Previous) != 0 || crypto.Fingerprint(ed25519.PublicKey(ks.Current)) != st.Next {
		t.Errorf("after the grace the collector pinned %+v, want the new key alone", ks)
	}
	// Heartbeats go on (a 3 s window at 1 s intervals: under load one
	// may come late, so wait for the next rather than look once).
	seen := time.Now()
	waitFor(t, "a heartbeat after the grace", time.Minute, func() bool {
		c := p.collector(t, h.id)
		return c.LastHeartbeatAt != nil && c.LastHeartbeatAt.After(seen) && c.Status == api.CollectorStatusActive
	})
	if c := p.collector(t, h.id); c.EnrolledAt == nil || !c.EnrolledAt.Equal(*before.EnrolledAt) {
		t.Errorf("collector after the rotation: %+v, want the same enrollment", c)
	}
	runnerLogs, _ := h.kit.run("logs", "collector-runner")
	daemonLogs, _ := h.kit.run("logs", "collector-daemon")
	if logs := runnerLogs + daemonLogs; !strings.Contains(logs, "pinned the platform's") || strings.Contains(logs, "signed by no key") {
		t.Errorf("the runner's and daemon's logs do not show the keys pinned, or show a set refused:\n%s", logs)
	}
}

// keys returns a runner of `platform keys SUB ARGS` on p's data
// directory, as an operator on the platform's host.
func (p *platformProc) keys(t *testing.T, sub string) func(args ...string) string {
	return func(args ...string) string {
		t.Helper()
		out, err := run("", nil, filepath.Join(world.bin, "platform"), append(append([]string{"keys", sub}, args...), "--data-dir", p.dataDir)...)
		if err != nil {
			t.Fatalf("platform keys %s %v: %v\n%s", sub, args, err, out)
		}
		return out
	}
}

// pinnedKeys is the platform key set the collector pinned in its state
// dir, nil before any.
func (h *host) pinnedKeys() *crypto.KeySet {
	b, err := os.ReadFile(filepath.Join(h.state, config.PlatformKeysFile))
	if err != nil {
		return nil
	}
	var ks crypto.KeySet
	if json.Unmarshal(b, &ks) != nil {
		return nil
	}
	return &ks
}
