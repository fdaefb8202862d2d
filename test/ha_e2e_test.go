package test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/collector/runner"
	"github.com/collectorhq/collector/internal/pgtest"
	"github.com/collectorhq/collector/internal/testutil"
	"github.com/collectorhq/collector/queue"
)

// TestReplicasOnPostgres runs two platform replicas on one PostgreSQL
// behind haproxy (TLS passed through, health-checked on /healthz), with
// one real collector enrolled through the load balancer. One replica is
// killed (-9) in the middle of a job's ingest: the job completes through
// the other, heartbeats go on, every entity is stored once, the audit
// chain verifies, and the scheduler, whose leader was the killed
// replica, goes on scheduling from the other.
func TestReplicasOnPostgres(t *testing.T) {
	need(t)
	pgtest.Need(t)
	pg, err := pgtest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Stop)
	db, err := pg.CreateDB()
	if err != nil {
		t.Fatal(err)
	}
	database := "PLATFORM_DATABASE=" + pg.URL(db)
	lbAddr := freeAddr(t)
	lbURL := "https://" + lbAddr

	// Replica A creates the keys and the CA; B is given a copy, as every
	// replica must have the same (docs/scaling.md).
	dirA, dirB := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	a := startReplica(t, dirA, lbURL, "", database)
	if out, err := exec.Command("cp", "-a", dirA, dirB).CombinedOutput(); err != nil {
		t.Fatalf("copy the data directory: %v\n%s", err, out)
	}
	b := startReplica(t, dirB, lbURL, a.token, database)
	lb := testutil.StartHAProxy(t, lbAddr, filepath.Join(dirA, "ca.crt"), a.addr, b.addr)
	front := &platformProc{t: t, dataDir: dirA, addr: lbAddr, url: lbURL, token: a.token, log: a.log}

	waitFor(t, "replica A to lead the scheduler", 30*time.Second, func() bool { return strings.Contains(a.log.String(), "this replica leads") })
	if strings.Contains(b.log.String(), "this replica leads") {
		t.Fatalf("both replicas lead the scheduler:\nA:\n%s\nB:\n%s", a.log, b.log)
	}

	k := podmanKit(t)
	h := install(t, front, k)
	waitFor(t, "collector active", 90*time.Second, func() bool { return front.collector(t, h.id).Status == api.CollectorStatusActive })

	// A scheduled integration (the shortest interval), to see the
	// scheduler move with its leader.
	scheduled := front.integrationEvery(t, h.id, "1m", map[string]any{"count": 3, "prefix": "sched-", "token": "e2e-ha-sched"})

	const count = 40000
	id := front.integration(t, h.id, world.exampleImage, map[string]any{"count": count, "prefix": "ha-", "token": "e2e-ha-secret"})
	job := front.runJob(t, id)
	waitFor(t, "records being ingested", 2*time.Minute, func() bool { return front.job(t, job.ID).Records > 0 })

	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	a.cmd.Wait()
	a.cmd = nil
	killed := time.Now()

	j := front.waitSucceeded(t, job.ID, 5*time.Minute, "the job after replica A's kill")
	if keys := front.entityKeys(t, id); len(keys) != count+1 {
		t.Errorf("%d entities, want %d once each", len(keys), count+1)
	}
	waitFor(t, "a heartbeat through replica B", time.Minute, func() bool {
		at := front.collector(t, h.id).LastHeartbeatAt
		return at != nil && at.After(killed)
	})
	if out, err := front.cli("audit", "verify"); err != nil {
		t.Errorf("audit verify after the kill: %v\n%s", err, out)
	}
	waitFor(t, "replica B to take the scheduler over", 30*time.Second, func() bool { return strings.Contains(b.log.String(), "this replica leads") })
	waitFor(t, "a job scheduled after the kill", 3*time.Minute, func() bool {
		var list api.JobList
		front.cliJSON(&list, "jobs", "list", "--integration", scheduled)
		for _, sj := range list.Jobs {
			if sj.RequestedBy == queue.RequestedByScheduler && sj.CreatedAt.After(killed) {
				return true
			}
		}
		return false
	})
	waitFor(t, "no job container or secret left", time.Minute, func() bool {
		left, err := h.eng.ListContainers(context.Background(), map[string]string{runner.LabelRole: runner.RoleJob})
		files, _ := os.ReadDir(k.secretDir)
		return err == nil && len(left) == 0 && len(files) == 0
	})
	t.Logf("replica A killed mid-ingest; the job succeeded on attempt %d, %v after the kill",
		j.Attempt, j.FinishedAt.Sub(killed).Round(time.Millisecond))
	if testing.Verbose() {
		t.Logf("haproxy:\n%s", lb.Log())
	}
}

// startReplica starts a platform replica on dataDir whose public URL is
// the load balancer's; token, if set, is the admin token an earlier
// replica made (the accounts are in the shared database).
func startReplica(t *testing.T, dataDir, publicURL, token string, env ...string) *platformProc {
	addr := freeAddr(t)
	p := &platformProc{t: t, dataDir: dataDir, addr: addr, url: "https://" + addr, log: &testutil.Buffer{}, env: env, token: token}
	p.args = []string{"--log-format", "json", "serve", "--data-dir", dataDir, "--listen", addr, "--public-url", publicURL,
		"--collector-image", world.collectorImage, "--image-policy", world.policy,
		"--heartbeat-interval", "1s", "--lease-ttl", "4s"}
	p.start()
	t.Cleanup(p.stop)
	return p
}

// integrationEvery creates an example integration that runs every
// interval.
func (p *platformProc) integrationEvery(t *testing.T, collectorID, interval string, cfg map[string]any) string {
	b, _ := json.Marshal(cfg)
	var in api.Integration
	p.cliJSON(&in, "integrations", "create", "--name", fmt.Sprintf("every-%d", time.Now().UnixNano()), "--image", world.exampleImage,
		"--config", string(b), "--secret-field", "token", "--collector", collectorID, "--network", "host", "--interval", interval)
	return in.ID
}
