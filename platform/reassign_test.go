package platform_test

import (
	"crypto/ed25519"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/platform/platformtest"
)

// openLease opens a lease's envelope as collector c would, and returns the
// job's config.
func openLease(t *testing.T, e *platformtest.Env, c *platformtest.Collector, l *api.Lease) map[string]any {
	t.Helper()
	job, err := crypto.OpenEnvelope(l.Envelope, c.ID, l.JobID, c.HPKE, ed25519.PublicKey(c.Enrolled.PlatformSigningKey), time.Now())
	if err != nil {
		t.Fatalf("open envelope: %v", err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(job.Config, &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// noJob checks that c gets no job in a short poll.
func noJob(t *testing.T, c *platformtest.Collector) {
	t.Helper()
	l, err := c.Client.Next(ctx, api.NextRequest{WaitSeconds: 1})
	if err != nil {
		t.Fatalf("next: %v", err)
	}
	if l != nil {
		t.Fatalf("collector %s was handed job %s", c.ID, l.JobID)
	}
}

// TestReassignMovesQueuedJob is P6 item 1 as it was reproduced: a job
// queued for A, the integration assigned to B, its password rotated. A
// must get nothing (it used to get the new password), B the job, and A
// can then be deleted without leaving a job queued forever.
func TestReassignMovesQueuedJob(t *testing.T) {
	e := platformtest.Start(t)
	a, b := e.EnrollNew(t, "a"), e.EnrollNew(t, "b")
	in := newJobIntegration(t, e, "ldap", a.ID)
	job, err := e.Admin.RunIntegration(ctx, in.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Admin.AssignIntegration(ctx, in.ID, b.ID); err != nil {
		t.Fatal(err)
	}
	rotated := `{"url":"ldaps://dc.example","password":"rotated-after-the-move"}`
	if _, err := e.Admin.UpdateIntegration(ctx, in.ID, api.IntegrationUpdate{Config: json.RawMessage(rotated)}); err != nil {
		t.Fatal(err)
	}
	noJob(t, a)
	l := leaseJob(t, b)
	if l.JobID != job.ID {
		t.Fatalf("b leased %s, want the moved job %s", l.JobID, job.ID)
	}
	if cfg := openLease(t, e, b, l); cfg["password"] != "rotated-after-the-move" {
		t.Errorf("b's envelope has password %v", cfg["password"])
	}
	if err := e.Admin.DeleteCollector(ctx, a.ID); err != nil {
		t.Errorf("delete a: %v", err)
	}
	if got := showJob(t, e, job.ID); got.CollectorID != b.ID || got.State != api.JobLeased {
		t.Errorf("job after deleting a = %s on %s, want leased on b", got.State, got.CollectorID)
	}
}

// movedWhileLeased starts a platform with collectors a and b, and an
// integration whose job a has leased when the integration moves to b.
func movedWhileLeased(t *testing.T) (e *platformtest.Env, a, b *platformtest.Collector, in *api.Integration, l *api.Lease) {
	t.Helper()
	e = platformtest.Start(t)
	a, b = e.EnrollNew(t, "a"), e.EnrollNew(t, "b")
	in = newJobIntegration(t, e, "ldap", a.ID)
	l = runAndLease(t, e, a, in.ID)
	if _, err := e.Admin.AssignIntegration(ctx, in.ID, b.ID); err != nil {
		t.Fatal(err)
	}
	return e, a, b, in, l
}

// TestLeaseExpiredOnOldCollectorMovesOn: a job running on A when its
// integration moved finishes there if it can; if its lease expires, A's
// next poll does not get it back (the job goes to B), and A's renewals of
// the old lease fail.
func TestLeaseExpiredOnOldCollectorMovesOn(t *testing.T) {
	e, a, b, _, l := movedWhileLeased(t)
	if _, err := a.Client.Renew(ctx, l.JobID, l.LeaseID); err != nil {
		t.Errorf("the running job's own lease must still renew: %v", err)
	}
	e.Clock.Advance(e.Config.Queue.LeaseTTL + time.Second)
	noJob(t, a)
	l2 := leaseJob(t, b)
	if l2.JobID != l.JobID {
		t.Fatalf("b leased %s, want %s", l2.JobID, l.JobID)
	}
	// The job is b's now: to a it does not exist.
	wantAPIError(t, func() error { _, err := a.Client.Renew(ctx, l.JobID, l.LeaseID); return err }(), 404, api.CodeNotFound)
	if got := showJob(t, e, l.JobID); got.Attempt != 2 || got.CollectorID != b.ID {
		t.Errorf("job = attempt %d on %s, want attempt 2 on b", got.Attempt, got.CollectorID)
	}
}

// TestLeaseExpiredOnOfflineCollectorMovesOn: as above with A gone for
// good (it never polls again): B gets the job once the lease expires.
// The job used to be requeued on A and wait there, and, as the
// integration's one active job, be what every scheduled run and "run now"
// returned: the integration never ran again.
func TestLeaseExpiredOnOfflineCollectorMovesOn(t *testing.T) {
	e, _, b, in, l := movedWhileLeased(t)
	e.Clock.Advance(e.Config.Queue.LeaseTTL + time.Second)
	if l2 := leaseJob(t, b); l2.JobID != l.JobID {
		t.Fatalf("b leased %s, want %s", l2.JobID, l.JobID)
	}
	if job, err := e.Admin.RunIntegration(ctx, in.ID); err != nil || job.ID != l.JobID {
		t.Fatalf("run now while b holds the job = %v, %v; want the job b leased", job, err)
	}
}

// TestDeleteCollectorMovesItsRunningJob: A, running a job of an
// integration since moved to B, is deleted: the job goes to B at once
// (A can no longer renew or finish it), never back to A.
func TestDeleteCollectorMovesItsRunningJob(t *testing.T) {
	e, a, b, _, l := movedWhileLeased(t)
	if err := e.Admin.DeleteCollector(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if got := showJob(t, e, l.JobID); got.State != api.JobQueued || got.CollectorID != b.ID {
		t.Fatalf("job after deleting a = %s on %s, want queued on b", got.State, got.CollectorID)
	}
	if l2 := leaseJob(t, b); l2.JobID != l.JobID {
		t.Fatalf("b leased %s, want %s", l2.JobID, l.JobID)
	}
}

// TestDeleteIntegrationCancelsItsJobs: nothing runs for a deleted
// integration and its runner's calls are refused at once.
func TestDeleteIntegrationCancelsItsJobs(t *testing.T) {
	e := platformtest.Start(t)
	a := e.EnrollNew(t, "a")
	in := newJobIntegration(t, e, "ldap", a.ID)
	l := runAndLease(t, e, a, in.ID)
	if err := e.Admin.DeleteIntegration(ctx, in.ID); err != nil {
		t.Fatal(err)
	}
	_, err := a.Client.UploadRecords(ctx, l.JobID, l.LeaseID, 1, entities("late"))
	wantAPIError(t, err, 409, api.CodeLeaseLost)
	if got := showJob(t, e, l.JobID); got.State != api.JobCanceled || !strings.Contains(got.Error, "deleted") {
		t.Errorf("job of the deleted integration = %s %q", got.State, got.Error)
	}
}

// TestReenrollRevokesAtOnce is P6 item 4: tokens exchanged with the old key
// while the collector re-enrolls must all stop working once it has (before
// the fix, 3–37 of ~50 kept working).
func TestReenrollRevokesAtOnce(t *testing.T) {
	e := platformtest.Start(t)
	c := e.EnrollNew(t, "c")
	const n = 50
	var wg sync.WaitGroup
	var mu sync.Mutex
	var tokens []string
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			cl := api.NewCollectorClient(e.URL, c.ID, c.Key, c.Enrolled.Audience, e.HTTP)
			if tr, err := cl.ExchangeAssertion(ctx); err == nil {
				mu.Lock()
				tokens = append(tokens, tr.AccessToken)
				mu.Unlock()
			}
		}()
	}
	g, err := e.Admin.NewEnrollmentToken(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	key, hk := platformtest.NewKeys(t)
	close(start)
	cl := api.NewCollectorClient(e.URL, c.ID, nil, "", e.HTTP)
	if _, err := cl.Enroll(ctx, api.EnrollRequest{CollectorID: c.ID, Token: g.EnrollmentToken,
		IdentityPublicKey: key.Public().(ed25519.PublicKey), HPKEPublicKey: hk.PublicKey()}); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	alive := 0
	for _, tok := range tokens {
		if st, _ := e.Raw(t, "POST", api.PathHeartbeat, tok, "application/json", []byte(`{"runner_state":"running"}`)); st != 401 {
			alive++
		}
	}
	if alive > 0 {
		t.Errorf("%d of %d tokens issued for the old key still work after the re-enrollment", alive, len(tokens))
	}
	t.Logf("%d exchanges with the old key succeeded during the re-enrollment; none works after it", len(tokens))
}

// TestAssertionFailureLabelsRevealNothing: the auth-failure metric does not
// tell an unknown collector ID from a bad signature (P6 item 5).
func TestAssertionFailureLabelsRevealNothing(t *testing.T) {
	e := platformtest.Start(t)
	c := e.EnrollNew(t, "c")
	key, _ := platformtest.NewKeys(t)
	for _, id := range []string{c.ID, "col_aaaaaaaaaaaaaaaaaaaaaaaaaa"} {
		cl := api.NewCollectorClient(e.URL, id, key, c.Enrolled.Audience, e.HTTP)
		if _, err := cl.ExchangeAssertion(ctx); api.StatusOf(err) != 401 {
			t.Fatalf("assertion of %s with a wrong key: %v", id, err)
		}
	}
	_, body := e.Raw(t, "GET", api.PathMetrics, e.AdminToken, "", nil)
	if !strings.Contains(string(body), `platform_auth_failures_total{reason="assertion"} 2`) {
		t.Errorf("both refusals must share one label; metrics:\n%s", grepLines(string(body), "auth_failures"))
	}
	if strings.Contains(string(body), "unknown_collector") {
		t.Error("a metric label tells an unknown collector apart")
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
