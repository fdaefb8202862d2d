package platform_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/platform/platformtest"
)

// enrollInPool creates a collector in pool, enrolls it and reports it
// healthy with the capacity given.
func enrollInPool(t *testing.T, e *platformtest.Env, name, pool string, cpus int, mem int64) *platformtest.Collector {
	t.Helper()
	g, err := e.Admin.CreateCollector(ctx, api.CreateCollectorRequest{Name: name, Pool: pool})
	if err != nil {
		t.Fatal(err)
	}
	c := e.Enroll(t, g)
	if err := c.Client.Heartbeat(ctx, api.Heartbeat{Version: "test", RunnerState: api.RunnerRunning, Engine: api.Engine{Kind: "podman", Version: "4.3.1"},
		Capacity: api.Capacity{CPUs: cpus, MemoryTotalBytes: mem, MemoryFreeBytes: mem}}); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestPoolIntegration: an integration on a pool runs on any member and on
// nothing else; its secrets are sealed to the member that leased it; a
// member that leaves the pool gets no more of its jobs; the job shows its
// pool and, when no member has room, why it waits.
func TestPoolIntegration(t *testing.T) {
	e := platformtest.Start(t)
	a := enrollInPool(t, e, "a", "dc1", 2, 8<<30)
	b := enrollInPool(t, e, "b", "dc1", 2, 8<<30)
	outsider := enrollInPool(t, e, "x", "", 2, 8<<30)

	in, err := e.Admin.CreateIntegration(ctx, api.IntegrationRequest{Name: "pooled", Image: jobImage,
		Config: []byte(`{"url":"ldaps://dc.example","password":"` + secretValue + `"}`), SecretFields: []string{"password"},
		IntervalSec: api.MaxIntervalSec, Pool: "dc1"})
	if err != nil {
		t.Fatal(err)
	}
	if in.Pool != "dc1" || in.CollectorID != "" {
		t.Fatalf("integration = collector %q pool %q, want pool dc1", in.CollectorID, in.Pool)
	}
	job, err := e.Admin.RunIntegration(ctx, in.ID)
	if err != nil {
		t.Fatal(err)
	}
	if job.Pool != "dc1" || job.CollectorID != "" {
		t.Fatalf("queued job = collector %q pool %q, want pool dc1", job.CollectorID, job.Pool)
	}
	noJob(t, outsider)
	l := leaseJob(t, b)
	if l.JobID != job.ID {
		t.Fatalf("b leased %s, want %s", l.JobID, job.ID)
	}
	if cfg := openLease(t, e, b, l); cfg["password"] != secretValue {
		t.Errorf("b's envelope has password %v", cfg["password"])
	}
	if got := showJob(t, e, job.ID); got.CollectorID != b.ID || got.Pool != "dc1" {
		t.Errorf("leased job = collector %q pool %q, want b in dc1", got.CollectorID, got.Pool)
	}
	noJob(t, a) // dedupe across the pool: one job, on b
	if err := b.Client.Finish(ctx, l.JobID, api.FinishRequest{LeaseID: l.LeaseID}); err != nil {
		t.Fatal(err)
	}

	// b leaves the pool (through the console's form): the next job is a's.
	if st, _, body := pageAs(t, e, e.AdminToken).post("/collectors/"+b.ID+"/pool", url.Values{"pool": {""}}); st != 200 {
		t.Fatalf("set pool in the console: %d\n%s", st, body)
	}
	if c, err := e.Admin.Collector(ctx, b.ID); err != nil || c.Pool != "" {
		t.Fatalf("b after leaving the pool: %+v, %v", c, err)
	}
	job2, err := e.Admin.RunIntegration(ctx, in.ID)
	if err != nil {
		t.Fatal(err)
	}
	noJob(t, b)
	if l := leaseJob(t, a); l.JobID != job2.ID {
		t.Fatalf("a leased %s, want %s", l.JobID, job2.ID)
	}
	if n := len(auditActions(t, e, "collector.pool_set")); n != 1 {
		t.Errorf("%d collector.pool_set audit entries, want 1", n)
	}
}

// TestPoolWaitingReason: a job no member has room for stays queued and
// says why, with the need and the largest free room.
func TestPoolWaitingReason(t *testing.T) {
	e := platformtest.Start(t)
	// Members far smaller than the 512 MiB, 1 CPU a job may use.
	small := enrollInPool(t, e, "small", "dc1", 1, 300<<20)
	in, err := e.Admin.CreateIntegration(ctx, api.IntegrationRequest{Name: "big", Image: jobImage,
		Config: []byte(`{"url":"ldaps://dc.example"}`), IntervalSec: api.MaxIntervalSec, Pool: "dc1"})
	if err != nil {
		t.Fatal(err)
	}
	// Teach the queue a 400 MiB peak on a collector of its own.
	teacher := enrollInPool(t, e, "teacher", "", 4, 8<<30)
	if _, err := e.Admin.AssignIntegration(ctx, in.ID, teacher.ID); err != nil {
		t.Fatal(err)
	}
	l := runAndLease(t, e, teacher, in.ID)
	if err := teacher.Client.Finish(ctx, l.JobID, api.FinishRequest{LeaseID: l.LeaseID, PeakMemoryBytes: 400 << 20, PeakCPUPercent: 50}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Admin.AssignIntegrationTo(ctx, in.ID, api.AssignRequest{Pool: "dc1"}); err != nil {
		t.Fatal(err)
	}
	job, err := e.Admin.RunIntegration(ctx, in.ID)
	if err != nil {
		t.Fatal(err)
	}
	noJob(t, small)
	got := showJob(t, e, job.ID)
	// The console's job page says it too, escaped.
	_, _, page := pageAs(t, e, e.AdminToken).get("/jobs/" + job.ID)
	mustContain(t, "job page", page, "waiting: needs 400 MiB and 0.5 CPUs", "largest free on pool &#34;dc1&#34;", "(any active member of the pool)")
	for _, want := range []string{"waiting: needs 400 MiB and 0.5 CPUs", `largest free on pool "dc1": 300 MiB and 1 CPU on ` + small.ID} {
		if !strings.Contains(got.Waiting, want) {
			t.Errorf("waiting = %q, want it to contain %q", got.Waiting, want)
		}
	}
	// Lists do not work it out; show does.
	list, err := e.Admin.Jobs(ctx, api.JobFilter{IntegrationID: in.ID})
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range list {
		if j.Waiting != "" {
			t.Errorf("listed job %s has a waiting reason", j.ID)
		}
	}
	// A member with room arrives: the job runs, and says nothing more.
	big := enrollInPool(t, e, "big", "dc1", 4, 4<<30)
	if l := leaseJob(t, big); l.JobID != job.ID {
		t.Fatalf("big leased %s, want %s", l.JobID, job.ID)
	}
	if got := showJob(t, e, job.ID); got.Waiting != "" {
		t.Errorf("leased job still waiting: %q", got.Waiting)
	}
	// Offline members: said so.
	e.Clock.Advance(time.Hour)
	job3, err := e.Admin.RunIntegration(ctx, mustIntegration(t, e, "other", "dc1").ID)
	if err != nil {
		t.Fatal(err)
	}
	if got := showJob(t, e, job3.ID); !strings.Contains(got.Waiting, `pool "dc1" has no active collector`) {
		t.Errorf("waiting with every member offline = %q", got.Waiting)
	}
}

func mustIntegration(t *testing.T, e *platformtest.Env, name, pool string) *api.Integration {
	t.Helper()
	in, err := e.Admin.CreateIntegration(ctx, api.IntegrationRequest{Name: name, Image: jobImage,
		Config: []byte(`{"url":"ldaps://dc.example"}`), IntervalSec: api.MaxIntervalSec, Pool: pool})
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// TestPoolRequestsChecked: a target is one collector or one pool, and a
// pool name is checked.
func TestPoolRequestsChecked(t *testing.T) {
	e := platformtest.Start(t)
	a := e.EnrollNew(t, "a")
	in := newJobIntegration(t, e, "i", a.ID)
	for _, to := range []api.AssignRequest{{CollectorID: a.ID, Pool: "dc1"}, {Pool: "Bad Pool"}, {}} {
		_, err := e.Admin.AssignIntegrationTo(ctx, in.ID, to)
		wantAPIError(t, err, 400, api.CodeInvalidRequest)
	}
	_, err := e.Admin.CreateIntegration(ctx, api.IntegrationRequest{Name: "both", Image: jobImage, Config: []byte(`{}`),
		IntervalSec: api.MaxIntervalSec, CollectorID: a.ID, Pool: "dc1"})
	wantAPIError(t, err, 400, api.CodeInvalidRequest)
	_, err = e.Admin.SetCollectorPool(ctx, a.ID, "no/slash")
	wantAPIError(t, err, 400, api.CodeInvalidRequest)
}

// TestPoolJoinedDuringALongPoll: a collector moved into a pool while its
// runner long-polls gets the pool's job in that same poll (its pool is
// read again every few seconds), not only in its next one.
func TestPoolJoinedDuringALongPoll(t *testing.T) {
	e := platformtest.Start(t)
	a := enrollInPool(t, e, "a", "", 2, 8<<30)
	in := mustIntegration(t, e, "pooled", "dc1")
	job, err := e.Admin.RunIntegration(ctx, in.ID)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *api.Lease, 1)
	go func() {
		l, err := a.Client.Next(ctx, api.NextRequest{WaitSeconds: 20})
		if err != nil {
			t.Errorf("next: %v", err)
		}
		got <- l
	}()
	// The poll is parked (it found nothing: a is in no pool yet).
	for deadline := time.Now().Add(5 * time.Second); e.Store.Queue().Waiting(a.ID) == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("a's long poll did not park")
		}
	}
	if _, err := e.Admin.SetCollectorPool(ctx, a.ID, "dc1"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	l := <-got
	if l == nil || l.JobID != job.ID {
		t.Fatalf("the long poll returned %+v, want the pool's job %s", l, job.ID)
	}
	t.Logf("leased %v after joining the pool", time.Since(start))
}
