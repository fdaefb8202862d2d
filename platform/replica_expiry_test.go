package platform_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/platform"
	"github.com/collectorhq/collector/platform/platformtest"
)

// TestLeaseExpiryCountedOnEveryReplica: two replicas on one PostgreSQL; a
// lease expires and the replica that does not lead (b) finds it passed in
// a Next, which requeues the job and leases it again. The expiry is
// counted once across the replicas (collector_job_lease_expiries_total):
// b counts its Next's expiries at its next lease sweep. Before, only the
// leader's scheduler swept, and b's expiries were never counted.
func TestLeaseExpiryCountedOnEveryReplica(t *testing.T) {
	url := postgresURL(t)
	a := platformtest.Start(t, func(c *platform.Config) {
		c.Database = url
		c.Queue.LeaseTTL = time.Second
		// The leader's sweep comes late enough for b's Next to find the
		// lease passed first.
		c.Jobs.SchedulerTick = 3 * time.Second
	})
	b := platformtest.StartReplica(t, a)
	c := b.EnrollNew(t, "c")
	in := newJobIntegration(t, b, "expiring", c.ID)
	first := runAndLease(t, b, c, in.ID)
	a.Clock.Advance(1200 * time.Millisecond) // the replicas' shared clock: the lease has passed
	again := leaseJob(t, c)
	if again.JobID != first.JobID || again.Attempt != 2 {
		t.Fatalf("lease after expiry: job %s attempt %d, want %s attempt 2", again.JobID, again.Attempt, first.JobID)
	}
	// Finished before its own lease passes: one expiry in all.
	if err := c.Client.Finish(ctx, again.JobID, api.FinishRequest{LeaseID: again.LeaseID}); err != nil {
		t.Fatal(err)
	}
	// Counted within a sweep or two, then still once after a sweep of
	// each more (the sweeps come every 3 s).
	counted := time.Time{}
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		total := expiriesCounted(t, a) + expiriesCounted(t, b)
		if total > 1 {
			break
		}
		if total == 1 && counted.IsZero() {
			counted = time.Now()
		}
		if !counted.IsZero() && time.Since(counted) > 3500*time.Millisecond {
			return
		}
	}
	if total := expiriesCounted(t, a) + expiriesCounted(t, b); total != 1 {
		t.Errorf("the expiry was counted %d times across the replicas, want 1", total)
	}
}

// expiriesCounted reads a replica's collector_job_lease_expiries_total.
func expiriesCounted(t *testing.T, e *platformtest.Env) int {
	t.Helper()
	tok, err := os.ReadFile(filepath.Join(e.DataDir, platform.MetricsTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	st, body := e.Raw(t, "GET", api.PathMetrics, strings.TrimSpace(string(tok)), "", nil)
	if st != 200 {
		t.Fatalf("metrics: %d", st)
	}
	m := regexp.MustCompile(`(?m)^collector_job_lease_expiries_total (\d+)`).FindSubmatch(body)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}
