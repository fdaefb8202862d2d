// Package storetest is the conformance suite every store.Store backend
// runs: Run(t, newStore) checks the rules the platform relies on (one
// transaction per act with its audit entry, one-time enrollment tokens, jti
// replay refusal, bounded heartbeat history, concurrent writers).
package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/collectorhq/collector/crypto"
	"github.com/collectorhq/collector/platform/store"
	"github.com/collectorhq/collector/queue"
)

var ctx = context.Background()

// Backend is a store and the job queue it keeps in its own database.
type Backend struct {
	Store store.Store
	Queue queue.Queue
	// Advance moves the clock of both (lease expiry) forward by d.
	Advance func(d time.Duration)
	// Raw runs a statement on the database behind the store's back, as
	// someone with write access to the database but not the integrity key
	// would (the tampering cases; nil skips them). Statements take no
	// parameters, so that every backend's SQL dialect runs them.
	Raw func(query string) error
}

// Run runs the suite; newBackend returns a fresh, empty store and its queue
// for each test (and closes them when the test ends).
func Run(t *testing.T, newBackend func(t *testing.T) Backend) {
	for name, test := range map[string]func(*testing.T, store.Store){
		"FailedActWritesNothing":     testFailedActWritesNothing,
		"EnrollTokenRules":           testEnrollTokenRules,
		"JTIReplayAndPrune":          testJTIReplayAndPrune,
		"ConcurrentWriters":          testConcurrentWriters,
		"DeleteRefusedWhileAssigned": testDeleteRefusedWhileAssigned,
		"AuditChain":                 testAuditChain,
		"AuditCheckpoints":           testAuditCheckpoints,
		"StaleKeyRefused":            testStaleKeyRefused,
		"Settings":                   testSettings,
		"KeyRotation":                testKeyRotation,
	} {
		t.Run(name, func(t *testing.T) { test(t, newBackend(t).Store) })
	}
	for name, test := range map[string]func(*testing.T, Backend){
		"AssignMovesQueuedJob":         testAssignMovesQueuedJob,
		"AssignThenLeaseExpires":       testAssignThenLeaseExpires,
		"DeleteCollectorCancelsQueued": testDeleteCollectorCancelsQueued,
		"DeleteCollectorEndsInFlight":  testDeleteCollectorEndsInFlight,
		"DeleteIntegrationCancelsJobs": testDeleteIntegrationCancelsJobs,
		"JobActsAudited":               testJobActsAudited,
		"PoolTampered":                 testPoolTampered,
	} {
		t.Run(name, func(t *testing.T) { test(t, newBackend(t)) })
	}
}

func ev(action, target string) store.Event {
	return store.Event{Time: time.Now(), Actor: "test", Action: action, Target: target}
}

func collector(t *testing.T, s store.Store, id string) {
	t.Helper()
	now := time.Now()
	err := s.CreateCollector(ctx, store.Collector{ID: id, Name: id, CreatedAt: now},
		store.EnrollmentToken{Hash: "h-" + id, CollectorID: id, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}, ev("collector.created", id))
	if err != nil {
		t.Fatal(err)
	}
}

// testFailedActWritesNothing: a failing step rolls back the act and its
// audit entry together.
func testFailedActWritesNothing(t *testing.T, s store.Store) {
	collector(t, s, "c1")
	now := time.Now()
	// Same token hash again: the token insert fails after the collector insert.
	err := s.CreateCollector(ctx, store.Collector{ID: "c2", Name: "c2", CreatedAt: now},
		store.EnrollmentToken{Hash: "h-c1", CollectorID: "c2", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}, ev("collector.created", "c2"))
	if err == nil {
		t.Fatal("duplicate token hash accepted")
	}
	if _, err := s.Collector(ctx, "c2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("half-written collector: %v", err)
	}
	es, _ := s.AuditEntries(ctx, 0, 100)
	if len(es) != 1 {
		t.Errorf("audit has %d entries, want 1", len(es))
	}
	// Enrollment with a bad token changes nothing either.
	err = s.Enroll(ctx, store.Enrollment{CollectorID: "c1", TokenHash: "nope", IdentityKey: []byte("k"), Now: now}, ev("collector.enrolled", "c1"))
	if !errors.Is(err, store.ErrTokenInvalid) {
		t.Errorf("enroll with a wrong token: %v", err)
	}
	c, _ := s.Collector(ctx, "c1")
	if !c.EnrolledAt.IsZero() || c.IdentityKey != nil {
		t.Errorf("collector changed by a refused enrollment: %+v", c)
	}
}

func testEnrollTokenRules(t *testing.T, s store.Store) {
	collector(t, s, "c1")
	collector(t, s, "c2")
	now := time.Now()
	enroll := func(id, hash string, at time.Time) error {
		return s.Enroll(ctx, store.Enrollment{CollectorID: id, TokenHash: hash, IdentityKey: []byte("k"), HPKEKey: []byte("h"), Now: at}, ev("collector.enrolled", id))
	}
	if err := enroll("c2", "h-c1", now); !errors.Is(err, store.ErrTokenInvalid) {
		t.Errorf("other collector's token: %v", err)
	}
	if err := enroll("c1", "h-c1", now.Add(2*time.Hour)); !errors.Is(err, store.ErrTokenExpired) {
		t.Errorf("expired: %v", err)
	}
	if err := enroll("c1", "h-c1", now); err != nil {
		t.Fatal(err)
	}
	if err := enroll("c1", "h-c1", now); !errors.Is(err, store.ErrTokenUsed) {
		t.Errorf("reused: %v", err)
	}
	if err := s.ReplaceEnrollmentToken(ctx, store.EnrollmentToken{Hash: "h2-c2", CollectorID: "c2", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}, ev("collector.token_issued", "c2")); err != nil {
		t.Fatal(err)
	}
	if err := enroll("c2", "h-c2", now); !errors.Is(err, store.ErrTokenRevoked) {
		t.Errorf("replaced: %v", err)
	}
}

func testJTIReplayAndPrune(t *testing.T, s store.Store) {
	collector(t, s, "c1")
	now := time.Now()
	if err := s.Enroll(ctx, store.Enrollment{CollectorID: "c1", TokenHash: "h-c1", IdentityKey: []byte("k"), Now: now}, ev("e", "c1")); err != nil {
		t.Fatal(err)
	}
	issue := func(jti, hash string, at time.Time) error {
		return s.IssueAccessToken(ctx, jti, at.Add(time.Minute), store.AccessToken{Hash: hash, CollectorID: "c1",
			ExpiresAt: at.Add(15 * time.Minute), KeyFingerprint: crypto.Fingerprint([]byte("k"))}, at)
	}
	if err := issue("j1", "a1", now); err != nil {
		t.Fatal(err)
	}
	if err := issue("j1", "a2", now); !errors.Is(err, store.ErrReplay) {
		t.Errorf("replay: %v", err)
	}
	if id, err := s.AccessTokenCollector(ctx, "a1", now); err != nil || id != "c1" {
		t.Errorf("lookup: %q %v", id, err)
	}
	if _, err := s.AccessTokenCollector(ctx, "a2", now); !errors.Is(err, store.ErrAccessInvalid) {
		t.Errorf("token of a refused exchange exists: %v", err)
	}
	if _, err := s.AccessTokenCollector(ctx, "a1", now.Add(16*time.Minute)); !errors.Is(err, store.ErrAccessInvalid) {
		t.Errorf("expired token still valid: %v", err)
	}
	if err := s.Prune(ctx, now.Add(20*time.Minute)); err != nil {
		t.Fatal(err)
	}
}

// testConcurrentWriters: many goroutines writing at once never see
// SQLITE_BUSY, thanks to the one-writer discipline.
func testConcurrentWriters(t *testing.T, s store.Store) {
	for i := 0; i < 8; i++ {
		collector(t, s, fmt.Sprintf("c%d", i))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8*50)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(id string) {
			defer wg.Done()
			for j := 0; j < 50; j++ {
				if err := s.RecordHeartbeat(ctx, id, store.Heartbeat{At: time.Now(), Running: j}, 10); err != nil {
					errs <- err
				}
				if _, err := s.Collectors(ctx); err != nil {
					errs <- err
				}
			}
		}(fmt.Sprintf("c%d", i))
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	hbs, err := s.Heartbeats(ctx, "c3", 100)
	if err != nil || len(hbs) != 10 || hbs[0].Running != 49 {
		t.Errorf("history = %d entries (newest %v), %v; want the newest 10", len(hbs), hbs, err)
	}
}

func testDeleteRefusedWhileAssigned(t *testing.T, s store.Store) {
	collector(t, s, "c1")
	now := time.Now()
	in := store.Integration{ID: "i1", Name: "ldap", Image: "img", SealedConfig: []byte("sealed"), Interval: time.Hour,
		CollectorID: "c1", CreatedAt: now, UpdatedAt: now}
	if err := s.CreateIntegration(ctx, in, ev("integration.created", "i1")); err != nil {
		t.Fatal(err)
	}
	_, err := s.DeleteCollector(ctx, "c1", ev("collector.deleted", "c1"))
	var ae *store.AssignedError
	if !errors.As(err, &ae) || !errors.Is(err, store.ErrConflict) || len(ae.Integrations) != 1 || ae.Integrations[0].Name != "ldap" {
		t.Fatalf("delete while assigned: %v", err)
	}
	in.CollectorID = ""
	if _, err := s.AssignIntegration(ctx, in, ev("integration.assigned", "i1")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteCollector(ctx, "c1", ev("collector.deleted", "c1")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Collector(ctx, "c1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleted collector: %v", err)
	}
	in.CollectorID = "c1"
	if _, err := s.AssignIntegration(ctx, in, ev("integration.assigned", "i1")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("assign to a deleted collector: %v", err)
	}
}

func testAuditChain(t *testing.T, s store.Store) {
	for i := 0; i < 5; i++ {
		collector(t, s, fmt.Sprintf("c%d", i))
	}
	if err := s.AppendAudit(ctx, ev("job.requested", "i1")); err != nil {
		t.Fatal(err)
	}
	es, err := s.AuditEntries(ctx, 2, 2)
	if err != nil || len(es) != 2 || es[0].Seq != 3 || es[1].PrevHash != es[0].Hash {
		t.Fatalf("entries after 2: %+v %v", es, err)
	}
	r, err := s.VerifyAudit(ctx)
	if err != nil || !r.OK || r.Entries != 6 {
		t.Errorf("verify = %+v %v", r, err)
	}
}

// testAuditCheckpoints: a chain must still hold every checkpoint given; one
// past its end means its newest entries were deleted.
func testAuditCheckpoints(t *testing.T, s store.Store) {
	for i := 0; i < 3; i++ {
		collector(t, s, fmt.Sprintf("c%d", i))
	}
	head, err := s.AuditHead(ctx)
	if err != nil || head.Seq != 3 {
		t.Fatalf("head = %+v, %v; want seq 3", head, err)
	}
	if r, err := s.VerifyAudit(ctx, head); err != nil || !r.OK || r.HeadSeq != 3 || r.Head != head.Hash {
		t.Errorf("verify against the head = %+v, %v", r, err)
	}
	if r, _ := s.VerifyAudit(ctx, store.Checkpoint{Seq: 5, Hash: head.Hash}); r.OK {
		t.Errorf("a checkpoint past the end verified: %+v", r)
	}
	if r, _ := s.VerifyAudit(ctx, store.Checkpoint{Seq: 2, Hash: head.Hash}); r.OK || r.BadSeq != 2 {
		t.Errorf("a checkpoint with another hash verified: %+v", r)
	}
}

// testStaleKeyRefused: a token is issued only for the collector's current
// identity key, checked in the issuing transaction, and dies with it.
func testStaleKeyRefused(t *testing.T, s store.Store) {
	collector(t, s, "c1")
	now := time.Now()
	k1, k2 := []byte("identity-key-1"), []byte("identity-key-2")
	if err := s.Enroll(ctx, store.Enrollment{CollectorID: "c1", TokenHash: "h-c1", IdentityKey: k1, Now: now}, ev("e", "c1")); err != nil {
		t.Fatal(err)
	}
	issue := func(jti, hash string, key []byte) error {
		return s.IssueAccessToken(ctx, jti, now.Add(time.Minute), store.AccessToken{Hash: hash, CollectorID: "c1",
			ExpiresAt: now.Add(15 * time.Minute), KeyFingerprint: crypto.Fingerprint(key)}, now)
	}
	if err := issue("j1", "a1", k1); err != nil {
		t.Fatal(err)
	}
	if err := s.ReplaceEnrollmentToken(ctx, store.EnrollmentToken{Hash: "h2-c1", CollectorID: "c1", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}, ev("t", "c1")); err != nil {
		t.Fatal(err)
	}
	if err := s.Enroll(ctx, store.Enrollment{CollectorID: "c1", TokenHash: "h2-c1", IdentityKey: k2, Now: now}, ev("e", "c1")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AccessTokenCollector(ctx, "a1", now); !errors.Is(err, store.ErrAccessInvalid) {
		t.Errorf("a token of the old key still works: %v", err)
	}
	if err := issue("j2", "a2", k1); !errors.Is(err, store.ErrStaleKey) {
		t.Errorf("issue for the old key = %v, want ErrStaleKey", err)
	}
	if err := issue("j3", "a3", nil); !errors.Is(err, store.ErrStaleKey) {
		t.Errorf("issue with no key fingerprint = %v, want ErrStaleKey", err)
	}
	if err := issue("j4", "a4", k2); err != nil {
		t.Fatal(err)
	}
	if id, err := s.AccessTokenCollector(ctx, "a4", now); err != nil || id != "c1" {
		t.Errorf("token of the new key: %q, %v", id, err)
	}
}

func testSettings(t *testing.T, s store.Store) {
	if _, err := s.Setting(ctx, "x"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("missing setting: %v", err)
	}
	e := ev("admin_token.rotated", "admin")
	if err := s.PutSetting(ctx, "x", "v1", nil); err != nil {
		t.Fatal(err)
	}
	if err := s.PutSetting(ctx, "x", "v2", &e); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Setting(ctx, "x"); err != nil || v != "v2" {
		t.Errorf("setting = %q, %v; want v2", v, err)
	}
	es, _ := s.AuditEntries(ctx, 0, 10)
	if len(es) != 1 || es[0].Action != "admin_token.rotated" {
		t.Errorf("audit = %+v, want the one event given", es)
	}
}

func integration(t *testing.T, s store.Store, id, collector string) store.Integration {
	t.Helper()
	now := time.Now()
	in := store.Integration{ID: id, Name: id, Image: "img", SealedConfig: []byte("sealed"), Interval: time.Hour,
		CollectorID: collector, CreatedAt: now, UpdatedAt: now}
	if err := s.CreateIntegration(ctx, in, ev("integration.created", id)); err != nil {
		t.Fatal(err)
	}
	return in
}

func runNow(t *testing.T, s store.Store, integ, collector string) (*queue.Job, bool) {
	t.Helper()
	j, existed, err := s.EnqueueJob(ctx, queue.EnqueueRequest{IntegrationID: integ, CollectorID: collector, RequestedBy: "admin"},
		func(j *queue.Job) store.Event { return ev("job.requested", j.ID) })
	if err != nil {
		t.Fatal(err)
	}
	return j, existed
}

func jobState(t *testing.T, q queue.Queue, id string) *queue.Job {
	t.Helper()
	j, err := q.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// testAssignMovesQueuedJob: the queued job moves with its integration, in
// the assignment's transaction; a leased job stays where it runs.
func testAssignMovesQueuedJob(t *testing.T, b Backend) {
	s, q := b.Store, b.Queue
	collector(t, s, "a")
	collector(t, s, "b")
	in := integration(t, s, "i1", "a")
	j, _ := runNow(t, s, "i1", "a")
	in.CollectorID = "b"
	moved, err := s.AssignIntegration(ctx, in, ev("integration.assigned", "i1"))
	if err != nil || moved != 1 {
		t.Fatalf("assign = %d, %v; want 1 job moved", moved, err)
	}
	if got := jobState(t, q, j.ID); got.CollectorID != "b" || got.State != queue.StateQueued {
		t.Fatalf("job after assign = %s on %s, want queued on b", got.State, got.CollectorID)
	}
	if _, err := q.Next(ctx, queue.NextRequest{CollectorID: "a"}); !errors.Is(err, queue.ErrNoJob) {
		t.Errorf("the old collector leased: %v", err)
	}
	l, err := q.Next(ctx, queue.NextRequest{CollectorID: "b"})
	if err != nil || l.ID != j.ID {
		t.Fatalf("Next(b) = %v, %v", l, err)
	}
	in.CollectorID = "a"
	if moved, err := s.AssignIntegration(ctx, in, ev("integration.assigned", "i1")); err != nil || moved != 0 {
		t.Errorf("assign with a leased job = %d, %v; want 0 moved", moved, err)
	}
	if got := jobState(t, q, j.ID); got.CollectorID != "b" || got.State != queue.StateLeased {
		t.Errorf("leased job = %s on %s, want leased on b", got.State, got.CollectorID)
	}
	// Unassigned: its queued job is canceled (nothing may run it).
	if _, err := q.Cancel(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	j2, _ := runNow(t, s, "i1", "a")
	in.CollectorID = ""
	if _, err := s.AssignIntegration(ctx, in, ev("integration.unassigned", "i1")); err != nil {
		t.Fatal(err)
	}
	if got := jobState(t, q, j2.ID); got.State != queue.StateCanceled {
		t.Errorf("queued job of an unassigned integration is %s, want canceled", got.State)
	}
}

func testDeleteCollectorCancelsQueued(t *testing.T, b Backend) {
	s, q := b.Store, b.Queue
	collector(t, s, "a")
	// A job left on a's queue with no integration assigned to a.
	j, _, err := q.Enqueue(ctx, queue.EnqueueRequest{IntegrationID: "i-gone", CollectorID: "a"})
	if err != nil {
		t.Fatal(err)
	}
	n, err := s.DeleteCollector(ctx, "a", ev("collector.deleted", "a"))
	if err != nil || n != 1 {
		t.Fatalf("delete = %d, %v; want 1 job canceled", n, err)
	}
	if got := jobState(t, q, j.ID); got.State != queue.StateCanceled || got.Error == "" {
		t.Errorf("job of the deleted collector = %s %q, want canceled with a reason", got.State, got.Error)
	}
	// Dedupe no longer blocks the integration.
	if _, existed, err := q.Enqueue(ctx, queue.EnqueueRequest{IntegrationID: "i-gone", CollectorID: "b"}); err != nil || existed {
		t.Errorf("enqueue after the delete: existed=%v, %v", existed, err)
	}
}

// leaseOn leases collector's next job, which must be want.
func leaseOn(t *testing.T, q queue.Queue, collector string, want *queue.Job) *queue.Job {
	t.Helper()
	l, err := q.Next(ctx, queue.NextRequest{CollectorID: collector})
	if err != nil || l.ID != want.ID {
		t.Fatalf("Next(%s) = %v, %v; want %s", collector, l, err, want.ID)
	}
	return l
}

// expire moves the clock past a lease taken now and sweeps.
func expire(t *testing.T, b Backend, want int) {
	t.Helper()
	b.Advance(queue.DefaultConfig().LeaseTTL + time.Second)
	if n, err := b.Queue.ExpireLeases(ctx); err != nil || n != want {
		t.Fatalf("ExpireLeases = %d, %v; want %d", n, err, want)
	}
}

// movedWhileLeased makes collectors a and b, and integration i1 whose job
// a has leased when i1 moves to b; a leased job is not among the queued
// jobs the assignment moves.
func movedWhileLeased(t *testing.T, b Backend) (*queue.Job, *queue.Job) {
	t.Helper()
	s, q := b.Store, b.Queue
	collector(t, s, "a")
	collector(t, s, "b")
	in := integration(t, s, "i1", "a")
	j, _ := runNow(t, s, "i1", "a")
	l := leaseOn(t, q, "a", j)
	in.CollectorID = "b"
	if moved, err := s.AssignIntegration(ctx, in, ev("integration.assigned", "i1")); err != nil || moved != 0 {
		t.Fatalf("assign with a leased job = %d, %v; want 0 queued jobs moved", moved, err)
	}
	return j, l
}

// testAssignThenLeaseExpires: a job running on a when its integration
// moves to b keeps its lease; if the lease expires, the job goes to b,
// never back to a (which may never ask again: the integration would not
// run until it did, every enqueue returning that job).
func testAssignThenLeaseExpires(t *testing.T, b Backend) {
	q := b.Queue
	j, l := movedWhileLeased(t, b)
	if _, err := q.Renew(ctx, l.ID, l.LeaseID); err != nil {
		t.Fatalf("the run under way must keep its lease: %v", err)
	}
	expire(t, b, 1)
	if got := jobState(t, q, j.ID); got.CollectorID != "b" || got.State != queue.StateQueued {
		t.Fatalf("job after its lease expired = %s on %s, want queued on b", got.State, got.CollectorID)
	}
	if _, err := q.Next(ctx, queue.NextRequest{CollectorID: "a"}); !errors.Is(err, queue.ErrNoJob) {
		t.Errorf("the old collector leased: %v", err)
	}
	leaseOn(t, q, "b", j)
}

// testDeleteCollectorEndsInFlight: deleting a collector leaves no job
// bound to it. A job running there for an integration that moved to b
// goes to b at once; one with nowhere else to go is canceled, saying why;
// neither comes back to the deleted collector when its lease would have
// expired, and a new enqueue is not deduped onto either.
func testDeleteCollectorEndsInFlight(t *testing.T, b Backend) {
	s, q := b.Store, b.Queue
	j, l := movedWhileLeased(t, b)
	// A job running on a with no integration assigned to a.
	orphan, _, err := q.Enqueue(ctx, queue.EnqueueRequest{IntegrationID: "i-gone", CollectorID: "a"})
	if err != nil {
		t.Fatal(err)
	}
	lo := leaseOn(t, q, "a", orphan)
	before, _ := s.AuditHead(ctx)
	n, err := s.DeleteCollector(ctx, "a", ev("collector.deleted", "a"))
	if err != nil || n != 1 {
		t.Fatalf("delete = %d, %v; want 1 job canceled", n, err)
	}
	if got := jobState(t, q, orphan.ID); got.State != queue.StateCanceled || !strings.Contains(got.Error, "deleted") {
		t.Errorf("running job of the deleted collector = %s %q, want canceled saying why", got.State, got.Error)
	}
	if got := jobState(t, q, j.ID); got.State != queue.StateQueued || got.CollectorID != "b" {
		t.Errorf("running job of the moved integration = %s on %s, want queued on b", got.State, got.CollectorID)
	}
	for _, x := range []*queue.Job{l, lo} {
		if _, err := q.Renew(ctx, x.ID, x.LeaseID); !errors.Is(err, queue.ErrLeaseLost) {
			t.Errorf("renew on the deleted collector: %v, want ErrLeaseLost", err)
		}
	}
	if es, _ := s.AuditEntries(ctx, before.Seq, 10); len(es) != 1 || !strings.Contains(es[0].Details, `"jobs_moved":1`) {
		t.Errorf("audit of the delete = %+v, want jobs_moved 1", es)
	}
	expire(t, b, 0)
	active, err := q.List(ctx, queue.Filter{CollectorID: "a", States: []queue.State{queue.StateQueued, queue.StateLeased, queue.StateRunning}})
	if err != nil || len(active) != 0 {
		t.Fatalf("active jobs of the deleted collector = %d, %v; want none", len(active), err)
	}
	leaseOn(t, q, "b", j)
	if again, existed, err := q.Enqueue(ctx, queue.EnqueueRequest{IntegrationID: "i-gone", CollectorID: "b"}); err != nil || existed || again.ID == orphan.ID {
		t.Errorf("enqueue after the delete: existed=%v, %v", existed, err)
	}
}

func testDeleteIntegrationCancelsJobs(t *testing.T, b Backend) {
	s, q := b.Store, b.Queue
	collector(t, s, "a")
	integration(t, s, "i1", "a")
	j, _ := runNow(t, s, "i1", "a")
	l, err := q.Next(ctx, queue.NextRequest{CollectorID: "a"})
	if err != nil || l.ID != j.ID {
		t.Fatal(l, err)
	}
	n, err := s.DeleteIntegration(ctx, "i1", true, ev("integration.deleted", "i1"))
	if err != nil || n != 1 {
		t.Fatalf("delete = %d, %v; want 1 job canceled", n, err)
	}
	if _, err := q.Renew(ctx, l.ID, l.LeaseID); !errors.Is(err, queue.ErrLeaseLost) {
		t.Errorf("renew of the deleted integration's job: %v, want ErrLeaseLost", err)
	}
}

// testJobActsAudited: "run now" and cancel are audited with the act; a
// run now that finds a job already there adds nothing.
func testJobActsAudited(t *testing.T, b Backend) {
	s := b.Store
	collector(t, s, "a")
	integration(t, s, "i1", "a")
	before, _ := s.AuditHead(ctx)
	j, existed := runNow(t, s, "i1", "a")
	if _, again := runNow(t, s, "i1", "a"); existed || !again {
		t.Fatalf("run now twice: existed %v then %v", existed, again)
	}
	if _, err := s.CancelJob(ctx, j.ID, func(j *queue.Job) store.Event { return ev("job.canceled", j.ID) }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CancelJob(ctx, j.ID, func(j *queue.Job) store.Event { return ev("job.canceled", j.ID) }); !errors.Is(err, queue.ErrInvalidState) {
		t.Errorf("cancel twice: %v, want ErrInvalidState", err)
	}
	es, _ := s.AuditEntries(ctx, before.Seq, 10)
	if len(es) != 2 || es[0].Action != "job.requested" || es[0].Target != j.ID || es[1].Action != "job.canceled" {
		t.Errorf("audit after = %+v, want job.requested and job.canceled of %s", es, j.ID)
	}
}

// BenchRecordHeartbeat stores heartbeats of 64 collectors on s, from
// parallel goroutines on distinct collectors (a backend with one writer
// serializes them): each backend's BenchmarkRecordHeartbeat.
func BenchRecordHeartbeat(b *testing.B, s store.Store) {
	ctx := context.Background()
	const collectors = 64
	for i := range collectors {
		id := fmt.Sprintf("c%d", i)
		if err := s.CreateCollector(ctx, store.Collector{ID: id, Name: id, CreatedAt: time.Now()},
			store.EnrollmentToken{Hash: "h-" + id, CollectorID: id, CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)},
			ev("collector.created", id)); err != nil {
			b.Fatal(err)
		}
	}
	var next atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		id := fmt.Sprintf("c%d", (next.Add(1)-1)%collectors)
		for pb.Next() {
			if err := s.RecordHeartbeat(ctx, id, store.Heartbeat{At: time.Now(), RunnerState: "running", MemTotal: 1 << 30, MemFree: 1 << 29}, 100); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
