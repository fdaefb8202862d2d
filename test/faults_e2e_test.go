package test

// Faults injected into real components (issue P15's campaign): each case
// asserts the outcome, that no record is lost or duplicated, and that the
// collector recovers by itself.

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/internal/testutil"
	qsqlite "github.com/collectorhq/collector/queue/sqlite"
)

// TestPlatformDiskFull: the platform's data directory is on a small tmpfs
// that fills up while a job is under way. Writes answer 503
// storage_full with a reason (heartbeats, ingest, leases), the collector
// backs off and retries, SQLite stays intact, and once space is freed
// everything completes: the job succeeds and its records are all there,
// once each.
func TestPlatformDiskFull(t *testing.T) {
	need(t)
	disk := testutil.SmallDisk(t, 64<<20)
	p := startPlatformIn(t, filepath.Join(disk, "platform"), world.policy)
	k := podmanKit(t)
	h := install(t, p, k)
	waitFor(t, "collector active", 90*time.Second, func() bool { return p.collector(t, h.id).Status == api.CollectorStatusActive })
	const count = 3000
	id := p.integration(t, h.id, world.exampleImage, map[string]any{"count": count, "prefix": "full-", "token": "e2e-full-secret", "sleep_seconds": 3})
	job := p.runJob(t, id)
	free := testutil.Fill(t, disk)
	filled := time.Now()
	// The platform says why, and the collector hears it.
	waitFor(t, "a 503 storage_full answered", time.Minute, func() bool { return strings.Contains(p.log.String(), "storage full") })
	told := func() (bool, string) {
		d, _ := k.run("logs", "collector-daemon")
		r, _ := k.run("logs", "collector-runner")
		return strings.Contains(d+r, "storage_full"), d + r
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Second) {
		ok, logs := told()
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the collector's logs do not say the platform's disk is full:\n%s\nplatform:\n%s", logs, p.log)
		}
	}
	time.Sleep(5 * time.Second) // let it retry a while against the full disk
	free()
	freed := time.Now()
	j := p.waitJob(t, job.ID, 3*time.Minute)
	if j.State != api.JobSucceeded {
		// The lease may have expired while nothing could be written: the
		// next attempt is the job's.
		logs, _ := p.cli("jobs", "logs", j.ID)
		t.Fatalf("the job after the disk was freed: %+v\n%s", j, logs)
	}
	if keys := p.entityKeys(t, id); len(keys) != count+1 {
		t.Errorf("%d entities after the full disk, want %d (the records and the secret proof), once each", len(keys), count+1)
	}
	waitFor(t, "collector active again", time.Minute, func() bool { return p.collector(t, h.id).Status == api.CollectorStatusActive })
	db, err := qsqlite.OpenDB(filepath.Join(p.dataDir, "platform.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var check string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Errorf("integrity_check after the full disk: %q, %v", check, err)
	}
	t.Logf("disk full for %v; the job %s succeeded on attempt %d, %v after space was freed",
		freed.Sub(filled).Round(time.Millisecond), j.ID, j.Attempt, time.Since(freed).Round(time.Millisecond))
}
