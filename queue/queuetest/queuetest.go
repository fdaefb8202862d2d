package queuetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/collectorhq/collector/queue"
)

// NewQueueFunc returns a fresh, empty queue configured with cfg, and arranges
// (with t.Cleanup) for it to be closed and its storage removed. Close may also
// be called by the suite; it must be safe to call twice.
type NewQueueFunc func(t *testing.T, cfg queue.Config) Backend

// Backend is a queue under test and what the suite needs to drive it without
// sleeping: its clock, and a signal that a Next is parked.
type Backend struct {
	queue.Queue
	// Advance moves the queue's clock (the one behind lease expiry and the
	// stored times) forward by d. The clock otherwise follows real time: a
	// Clock does both.
	Advance func(d time.Duration)
	// Parked receives a collector ID each time a Next of that collector,
	// having found nothing, is about to wait; ParkSignal makes one. Sends
	// must not block Next: the suite reads it only while it waits for one.
	Parked <-chan string
	// CollectorGone is what the platform's store runs, in the transaction
	// that deletes a collector, to end the jobs it holds: it reports how
	// many it canceled and how many it moved elsewhere.
	CollectorGone func(ctx context.Context, collectorID, reason string) (canceled, moved int, err error)
}

// Clock is real time plus an offset that Advance moves forward. Give its Now
// to the queue and its Advance to the Backend.
type Clock struct {
	mu     sync.Mutex
	offset time.Duration
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

// ParkSignal returns a park hook for a backend (a func called as a Next is
// about to wait) and the channel it feeds, for Backend.Parked. The hook
// never blocks; it drops a signal when parkBuffer of them are unread, which
// no case that reads them comes near.
func ParkSignal() (hook func(collectorID string), parked <-chan string) {
	ch := make(chan string, parkBuffer)
	return func(collectorID string) {
		select {
		case ch <- collectorID:
		default:
		}
	}, ch
}

const parkBuffer = 256

// Config returns the configuration the suite's cases start from: the
// defaults, with a 10 s lease. No case waits a lease out: the cases about
// expiry move the queue's clock past it, and 10 s is far longer than the
// real time between two steps of a case on a loaded machine.
func Config() queue.Config {
	cfg := queue.DefaultConfig()
	cfg.LeaseTTL = 10 * time.Second
	return cfg
}

// pastTTL is how far the expiry cases move the clock: just past a lease
// taken at the current time.
func pastTTL(cfg queue.Config) time.Duration { return cfg.LeaseTTL + time.Millisecond }

// Run runs the conformance suite against the backend newQueue creates.
func Run(t *testing.T, newQueue NewQueueFunc) {
	cases := []struct {
		name string
		fn   func(t *testing.T, newQueue NewQueueFunc)
	}{
		{"Lifecycle", testLifecycle},
		{"FinishFailed", testFinishFailed},
		{"NotFound", testNotFound},
		{"InvalidState", testInvalidState},
		{"Dedupe", testDedupe},
		{"DedupeConcurrent", testDedupeConcurrent},
		{"FinishFreesIntegration", testFinishFreesIntegration},
		{"ConcurrentLeasing", testConcurrentLeasing},
		{"OldestFirst", testOldestFirst},
		{"RenewKeepsLease", testRenewKeepsLease},
		{"ExpiryRequeues", testExpiryRequeues},
		{"LazyExpiryInNext", testLazyExpiryInNext},
		{"DeadAfterMaxAttempts", testDeadAfterMaxAttempts},
		{"LateAckRefused", testLateAckRefused},
		{"LongPollWakes", testLongPollWakes},
		{"LongPollTimesOut", testLongPollTimesOut},
		{"LongPollContextCanceled", testLongPollContextCanceled},
		{"CapacityFilter", testCapacityFilter},
		{"Cancel", testCancel},
		{"CollectorIsolation", testCollectorIsolation},
		{"Reassign", testReassign},
		{"ReassignInFlight", testReassignInFlight},
		{"ReassignInFlightLazy", testReassignInFlightLazy},
		{"ReassignInFlightPools", testReassignInFlightPools},
		{"ReassignInFlightThenRequeue", testReassignInFlightThenRequeue},
		{"CollectorGone", testCollectorGone},
		{"Requeue", testRequeue},
		{"ListAndDepth", testListAndDepth},
		{"CloseWakesWaiters", testCloseWakesWaiters},
		{"PoolLeasing", testPoolLeasing},
		{"PoolExpiryMovesJob", testPoolExpiryMovesJob},
		{"PoolCapacity", testPoolCapacity},
		{"PoolFairness", testPoolFairness},
		{"PoolLeastLoaded", testPoolLeastLoaded},
		{"OOMLearned", testOOMLearned},
		{"Validation", testValidation},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.fn(t, newQueue) })
	}
}

// --- helpers ---

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func enqueue(t *testing.T, q queue.Queue, integration, collector string) *queue.Job {
	t.Helper()
	j, existed, err := q.Enqueue(ctxT(t), queue.EnqueueRequest{IntegrationID: integration, CollectorID: collector, RequestedBy: queue.RequestedByScheduler})
	if err != nil {
		t.Fatalf("Enqueue(%s, %s): %v", integration, collector, err)
	}
	if existed {
		t.Fatalf("Enqueue(%s, %s): existed = true, want a new job", integration, collector)
	}
	return j
}

func next(t *testing.T, q queue.Queue, req queue.NextRequest) *queue.Job {
	t.Helper()
	j, err := q.Next(ctxT(t), req)
	if err != nil {
		t.Fatalf("Next(%+v): %v", req, err)
	}
	return j
}

func noJob(t *testing.T, q queue.Queue, req queue.NextRequest) {
	t.Helper()
	j, err := q.Next(ctxT(t), req)
	if !errors.Is(err, queue.ErrNoJob) {
		t.Fatalf("Next(%+v) = %v, %v; want ErrNoJob", req, describe(j), err)
	}
}

func get(t *testing.T, q queue.Queue, id string) *queue.Job {
	t.Helper()
	j, err := q.Get(ctxT(t), id)
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	return j
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: err = %v, want %v", what, err, want)
	}
}

func wantState(t *testing.T, j *queue.Job, want queue.State) {
	t.Helper()
	if j.State != want {
		t.Fatalf("job %s: state = %s, want %s", j.ID, j.State, want)
	}
}

func describe(j *queue.Job) string {
	if j == nil {
		return "<nil>"
	}
	return fmt.Sprintf("%s(%s %s attempt %d)", j.ID, j.IntegrationID, j.State, j.Attempt)
}

func req(collector string) queue.NextRequest { return queue.NextRequest{CollectorID: collector} }

// parkedOrDone reports whether a Next of collector parked (true) or
// returned (false, its result put back on done) first: a Next with a short
// Wait may, on a starved machine, return before it parks.
func parkedOrDone(t *testing.T, b Backend, collector string, done chan error) bool {
	t.Helper()
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for {
		select {
		case c := <-b.Parked:
			if c == collector {
				return true
			}
		case err := <-done:
			done <- err
			return false
		case <-timeout.C:
			t.Fatalf("no Next of %s parked or returned within 10 s", collector)
		}
	}
}

// drainParked forgets the park signals of Next calls that have returned.
func drainParked(b Backend) {
	for {
		select {
		case <-b.Parked:
		default:
			return
		}
	}
}

// waitParked returns once a Next of collector is parked. Callers start a
// Next that waits far longer than this may take.
func waitParked(t *testing.T, b Backend, collector string) {
	t.Helper()
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for {
		select {
		case c := <-b.Parked:
			if c == collector {
				return
			}
		case <-timeout.C:
			t.Fatalf("no Next of %s parked within 10 s", collector)
		}
	}
}

// --- cases ---

func testLifecycle(t *testing.T, newQueue NewQueueFunc) {
	q := newQueue(t, Config())
	ctx := ctxT(t)
	before := time.Now()
	j := enqueue(t, q, "int-1", "col-a")
	if !strings.HasPrefix(j.ID, "job_") || len(j.ID) != len("job_")+32 {
		t.Errorf("ID = %q, want job_ + 32 hex digits", j.ID)
	}
	wantState(t, j, queue.StateQueued)
	if j.IntegrationID != "int-1" || j.CollectorID != "col-a" || j.RequestedBy != queue.RequestedByScheduler {
		t.Errorf("enqueued job = %+v, want int-1 on col-a by scheduler", j)
	}
	if j.Attempt != 1 || j.MaxAttempts != 3 || j.LeaseID != "" {
		t.Errorf("attempt/max/lease = %d/%d/%q, want 1/3/\"\"", j.Attempt, j.MaxAttempts, j.LeaseID)
	}
	if j.CreatedAt.Before(before.Add(-time.Second)) || j.CreatedAt.After(time.Now().Add(time.Second)) {
		t.Errorf("CreatedAt = %v, want about %v", j.CreatedAt, before)
	}
	if g := get(t, q, j.ID); g.ID != j.ID || g.State != queue.StateQueued {
		t.Errorf("Get = %s, want %s queued", describe(g), j.ID)
	}

	l := next(t, q, req("col-a"))
	if l.ID != j.ID {
		t.Fatalf("Next = %s, want %s", describe(l), j.ID)
	}
	wantState(t, l, queue.StateLeased)
	if !strings.HasPrefix(l.LeaseID, "lease_") || len(l.LeaseID) != len("lease_")+32 {
		t.Errorf("LeaseID = %q, want lease_ + 32 hex digits", l.LeaseID)
	}
	if d := time.Until(l.LeaseExpiresAt); d <= 9*time.Second || d > 11*time.Second {
		t.Errorf("lease expires in %v, want about 10s (Config.LeaseTTL)", d)
	}

	r, err := q.MarkRunning(ctx, l.ID, l.LeaseID)
	if err != nil {
		t.Fatalf("MarkRunning: %v", err)
	}
	wantState(t, r, queue.StateRunning)
	if r.StartedAt.IsZero() {
		t.Error("StartedAt is zero after MarkRunning")
	}
	if r2, err := q.MarkRunning(ctx, l.ID, l.LeaseID); err != nil || r2.State != queue.StateRunning {
		t.Fatalf("MarkRunning again = %s, %v; want running, nil (idempotent)", describe(r2), err)
	}

	q.Advance(20 * time.Millisecond)
	rn, err := q.Renew(ctx, l.ID, l.LeaseID)
	if err != nil {
		t.Fatalf("Renew: %v", err)
	}
	if !rn.LeaseExpiresAt.After(l.LeaseExpiresAt) {
		t.Errorf("Renew: lease expires %v, want after %v", rn.LeaseExpiresAt, l.LeaseExpiresAt)
	}

	f, err := q.Finish(ctx, l.ID, l.LeaseID, queue.Result{Succeeded: true, ExitCode: 0, PeakMemoryBytes: 42 << 20, PeakCPUPercent: 87.5})
	if err != nil {
		t.Fatalf("Finish: %v", err)
	}
	wantState(t, f, queue.StateSucceeded)
	if f.FinishedAt.IsZero() || f.PeakMemoryBytes != 42<<20 || f.PeakCPUPercent != 87.5 {
		t.Errorf("finished job = %+v, want FinishedAt set, peaks 42 MiB / 87.5%%", f)
	}
	_, err = q.Finish(ctx, l.ID, l.LeaseID, queue.Result{Succeeded: true})
	wantErr(t, "Finish twice", err, queue.ErrInvalidState)
	_, err = q.Renew(ctx, l.ID, l.LeaseID)
	wantErr(t, "Renew after Finish", err, queue.ErrInvalidState)
	wantState(t, get(t, q, j.ID), queue.StateSucceeded)
}

func testFinishFailed(t *testing.T, newQueue NewQueueFunc) {
	q := newQueue(t, Config())
	j := enqueue(t, q, "int-1", "col-a")
	l := next(t, q, req("col-a"))
	// Finish straight from leased: a runner can fail before the container
	// starts (bad image signature, say).
	f, err := q.Finish(ctxT(t), j.ID, l.LeaseID, queue.Result{ExitCode: 3, Error: "boom"})
	if err != nil {
		t.Fatalf("Finish: %v", err)
	}
	wantState(t, f, queue.StateFailed)
	if f.ExitCode != 3 || f.Error != "boom" {
		t.Errorf("exit/error = %d/%q, want 3/boom", f.ExitCode, f.Error)
	}
	noJob(t, q, req("col-a")) // failed jobs are not retried by the queue
}

func testNotFound(t *testing.T, newQueue NewQueueFunc) {
	q := newQueue(t, Config())
	ctx := ctxT(t)
	_, err := q.Get(ctx, "job_nope")
	wantErr(t, "Get", err, queue.ErrNotFound)
	_, err = q.Renew(ctx, "job_nope", "lease_nope")
	wantErr(t, "Renew", err, queue.ErrNotFound)
	_, err = q.MarkRunning(ctx, "job_nope", "lease_nope")
	wantErr(t, "MarkRunning", err, queue.ErrNotFound)
	_, err = q.Finish(ctx, "job_nope", "lease_nope", queue.Result{})
	wantErr(t, "Finish", err, queue.ErrNotFound)
	_, err = q.Cancel(ctx, "job_nope")
	wantErr(t, "Cancel", err, queue.ErrNotFound)
}

func testInvalidState(t *testing.T, newQueue NewQueueFunc) {
	q := newQueue(t, Config())
	ctx := ctxT(t)
	j := enqueue(t, q, "int-1", "col-a")
	_, err := q.Finish(ctx, j.ID, "", queue.Result{Succeeded: true})
	wantErr(t, "Finish a queued job", err, queue.ErrInvalidState)
	_, err = q.MarkRunning(ctx, j.ID, "")
	wantErr(t, "MarkRunning a queued job", err, queue.ErrInvalidState)
	_, err = q.Renew(ctx, j.ID, "")
	wantErr(t, "Renew a queued job", err, queue.ErrInvalidState)
	_, err = q.Finish(ctx, j.ID, "lease_made_up", queue.Result{Succeeded: true})
	wantErr(t, "Finish with a made-up lease", err, queue.ErrLeaseLost)
	l := next(t, q, req("col-a"))
	_, err = q.Renew(ctx, j.ID, "lease_made_up")
	wantErr(t, "Renew with a made-up lease", err, queue.ErrLeaseLost)
	_, err = q.Renew(ctx, j.ID, "")
	wantErr(t, "Renew without the lease", err, queue.ErrLeaseLost)
	if _, err := q.Finish(ctx, j.ID, l.LeaseID, queue.Result{Succeeded: true}); err != nil {
		t.Fatalf("Finish: %v", err)
	}
	_, err = q.MarkRunning(ctx, j.ID, l.LeaseID)
	wantErr(t, "MarkRunning a finished job", err, queue.ErrInvalidState)
}

func testDedupe(t *testing.T, newQueue NewQueueFunc) {
	q := newQueue(t, Config())
	ctx := ctxT(t)
	j := enqueue(t, q, "int-1", "col-a")
	for _, state := range []string{"queued", "leased", "running"} {
		switch state {
		case "leased":
			next(t, q, req("col-a"))
		case "running":
			l := get(t, q, j.ID)
			if _, err := q.MarkRunning(ctx, j.ID, l.LeaseID); err != nil {
				t.Fatalf("MarkRunning: %v", err)
			}
		}
		// Same integration, even on another collector: no second job.
		d, existed, err := q.Enqueue(ctx, queue.EnqueueRequest{IntegrationID: "int-1", CollectorID: "col-b", RequestedBy: queue.RequestedByAdmin})
		if err != nil {
			t.Fatalf("Enqueue while %s: %v", state, err)
		}
		if !existed || d.ID != j.ID {
			t.Fatalf("Enqueue while %s = %s, existed %v; want %s, true", state, describe(d), existed, j.ID)
		}
		wantState(t, d, queue.State(state))
	}
	jobs, err := q.List(ctx, queue.Filter{IntegrationID: "int-1"})
	if err != nil || len(jobs) != 1 {
		t.Fatalf("List(int-1) = %d jobs, %v; want 1", len(jobs), err)
	}
}

func testDedupeConcurrent(t *testing.T, newQueue NewQueueFunc) {
	q := newQueue(t, Config())
	const n = 32
	type res struct {
		job     *queue.Job
		existed bool
		err     error
	}
	results := make([]res, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			j, existed, err := q.Enqueue(context.Background(), queue.EnqueueRequest{IntegrationID: "int-hot", CollectorID: "col-a"})
			results[i] = res{j, existed, err}
		})
	}
	close(start)
	wg.Wait()
	created := 0
	var id string
	for i, r := range results {
		if r.err != nil {
			t.Fatalf("Enqueue #%d: %v", i, r.err)
		}
		if id == "" {
			id = r.job.ID
		}
		if r.job.ID != id {
			t.Errorf("Enqueue #%d = %s, want %s (one job for the integration)", i, r.job.ID, id)
		}
		if !r.existed {
			created++
		}
	}
	if created != 1 {
		t.Errorf("%d Enqueues said they created the job, want exactly 1", created)
	}
	jobs, err := q.List(ctxT(t), queue.Filter{IntegrationID: "int-hot"})
	if err != nil || len(jobs) != 1 {
		t.Fatalf("List(int-hot) = %d jobs, %v; want 1", len(jobs), err)
	}
}

func testFinishFreesIntegration(t *testing.T, newQueue NewQueueFunc) {
	q := newQueue(t, Config())
	ctx := ctxT(t)
	j := enqueue(t, q, "int-1", "col-a")
	l := next(t, q, req("col-a"))
	if _, err := q.Finish(ctx, l.ID, l.LeaseID, queue.Result{Succeeded: true}); err != nil {
		t.Fatalf("Finish: %v", err)
	}
	j2 := enqueue(t, q, "int-1", "col-a")
	if j2.ID == j.ID {
		t.Fatalf("Enqueue after Finish returned the finished job %s", j.ID)
	}
	if l2 := next(t, q, req("col-a")); l2.ID != j2.ID {
		t.Fatalf("Next = %s, want %s", describe(l2), j2.ID)
	}
}

func testConcurrentLeasing(t *testing.T, newQueue NewQueueFunc) {
	q := newQueue(t, Config())
	const workers, jobs = 8, 200
	ctx := ctxT(t)
	var (
		mu     sync.Mutex
		leased = make(map[string]int)
		wg     sync.WaitGroup
		errs   = make(chan error, workers+1)
	)
	// One producer and eight consumers at once: consumers long-poll, so they
	// also race the producer's wake-ups.
	wg.Go(func() {
		for i := range jobs {
			if _, _, err := q.Enqueue(ctx, queue.EnqueueRequest{IntegrationID: fmt.Sprintf("int-%03d", i), CollectorID: "col-a"}); err != nil {
				errs <- err
				return
			}
		}
	})
	for range workers {
		wg.Go(func() {
			for {
				j, err := q.Next(ctx, queue.NextRequest{CollectorID: "col-a", Wait: 500 * time.Millisecond})
				if errors.Is(err, queue.ErrNoJob) {
					return
				}
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				leased[j.ID]++
				mu.Unlock()
				if _, err := q.Finish(ctx, j.ID, j.LeaseID, queue.Result{Succeeded: true}); err != nil {
					errs <- fmt.Errorf("finish %s: %w", j.ID, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(leased) != jobs {
		t.Errorf("%d distinct jobs leased, want %d", len(leased), jobs)
	}
	for id, n := range leased {
		if n != 1 {
			t.Errorf("job %s leased %d times, want 1", id, n)
		}
	}
	depth, err := q.Depth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(depth) != 0 {
		t.Errorf("Depth = %v, want nothing active once all %d jobs succeeded", depth, jobs)
	}
}

func testOldestFirst(t *testing.T, newQueue NewQueueFunc) {
	q := newQueue(t, Config())
	var want []string
	for i := range 5 {
		want = append(want, enqueue(t, q, fmt.Sprintf("int-%d", i), "col-a").ID)
	}
	for i, id := range want {
		if j := next(t, q, req("col-a")); j.ID != id {
			t.Fatalf("Next #%d = %s, want %s (oldest first)", i, describe(j), id)
		}
	}
}

func testRenewKeepsLease(t *testing.T, newQueue NewQueueFunc) {
	cfg := Config()
	q := newQueue(t, cfg)
	ctx := ctxT(t)
	j := enqueue(t, q, "int-1", "col-a")
	l := next(t, q, req("col-a"))
	for range 8 { // 8 x TTL/6 = 1⅓ TTLs, renewed in time all along.
		q.Advance(cfg.LeaseTTL / 6)
		if _, err := q.Renew(ctx, j.ID, l.LeaseID); err != nil {
			t.Fatalf("Renew: %v", err)
		}
	}
	n, err := q.ExpireLeases(ctx)
	if err != nil || n != 0 {
		t.Fatalf("ExpireLeases = %d, %v; want 0, nil", n, err)
	}
	wantState(t, get(t, q, j.ID), queue.StateLeased)
	if _, err := q.Finish(ctx, j.ID, l.LeaseID, queue.Result{Succeeded: true}); err != nil {
		t.Fatalf("Finish: %v", err)
	}
}

func testExpiryRequeues(t *testing.T, newQueue NewQueueFunc) {
	cfg := Config()
	q := newQueue(t, cfg)
	ctx := ctxT(t)
	j := enqueue(t, q, "int-1", "col-a")
	l := next(t, q, req("col-a"))
	if _, err := q.MarkRunning(ctx, j.ID, l.LeaseID); err != nil {
		t.Fatal(err)
	}
	q.Advance(pastTTL(cfg))
	n, err := q.ExpireLeases(ctx)
	if err != nil || n != 1 {
		t.Fatalf("ExpireLeases = %d, %v; want 1, nil", n, err)
	}
	g := get(t, q, j.ID)
	wantState(t, g, queue.StateQueued)
	if g.Attempt != 2 || g.LeaseID != "" {
		t.Errorf("requeued job attempt/lease = %d/%q, want 2/\"\"", g.Attempt, g.LeaseID)
	}
	if n, err := q.ExpireLeases(ctx); err != nil || n != 0 {
		t.Fatalf("ExpireLeases again = %d, %v; want 0, nil", n, err)
	}
	l2 := next(t, q, req("col-a"))
	if l2.ID != j.ID || l2.Attempt != 2 || l2.LeaseID == l.LeaseID {
		t.Fatalf("Next after expiry = %s lease %s, want %s attempt 2 with a new lease", describe(l2), l2.LeaseID, j.ID)
	}
}

func testLazyExpiryInNext(t *testing.T, newQueue NewQueueFunc) {
	cfg := Config()
	q := newQueue(t, cfg)
	j := enqueue(t, q, "int-1", "col-a")
	next(t, q, req("col-a"))
	noJob(t, q, req("col-a"))
	q.Advance(pastTTL(cfg))
	// No ExpireLeases: Next applies expiry itself.
	l := next(t, q, req("col-a"))
	if l.ID != j.ID || l.Attempt != 2 {
		t.Fatalf("Next = %s, want %s attempt 2", describe(l), j.ID)
	}
}

func testDeadAfterMaxAttempts(t *testing.T, newQueue NewQueueFunc) {
	cfg := Config()
	cfg.MaxAttempts = 2
	q := newQueue(t, cfg)
	ctx := ctxT(t)
	j := enqueue(t, q, "int-1", "col-a")
	if j.MaxAttempts != 2 {
		t.Fatalf("MaxAttempts = %d, want 2", j.MaxAttempts)
	}
	for attempt := 1; attempt <= 2; attempt++ {
		l := next(t, q, req("col-a"))
		if l.Attempt != attempt {
			t.Fatalf("lease #%d: attempt = %d", attempt, l.Attempt)
		}
		q.Advance(pastTTL(cfg))
		if n, err := q.ExpireLeases(ctx); err != nil || n != 1 {
			t.Fatalf("ExpireLeases = %d, %v; want 1, nil", n, err)
		}
	}
	g := get(t, q, j.ID)
	wantState(t, g, queue.StateDead)
	if g.FinishedAt.IsZero() || g.Error == "" {
		t.Errorf("dead job: FinishedAt %v, Error %q; want both set", g.FinishedAt, g.Error)
	}
	noJob(t, q, req("col-a"))
	// A dead job no longer blocks the integration.
	if j2 := enqueue(t, q, "int-1", "col-a"); j2.ID == j.ID {
		t.Fatal("Enqueue after dead returned the dead job")
	}
}

func testLateAckRefused(t *testing.T, newQueue NewQueueFunc) {
	cfg := Config()
	q := newQueue(t, cfg)
	ctx := ctxT(t)
	j := enqueue(t, q, "int-1", "col-a")
	old := next(t, q, req("col-a"))
	q.Advance(pastTTL(cfg))

	// Expired but not yet requeued: already refused.
	_, err := q.Renew(ctx, j.ID, old.LeaseID)
	wantErr(t, "Renew of an expired lease", err, queue.ErrLeaseLost)
	_, err = q.MarkRunning(ctx, j.ID, old.LeaseID)
	wantErr(t, "MarkRunning with an expired lease", err, queue.ErrLeaseLost)

	if n, err := q.ExpireLeases(ctx); err != nil || n != 1 {
		t.Fatalf("ExpireLeases = %d, %v; want 1, nil", n, err)
	}
	_, err = q.Finish(ctx, j.ID, old.LeaseID, queue.Result{Succeeded: true})
	wantErr(t, "Finish of a requeued job with the old lease", err, queue.ErrLeaseLost)

	cur := next(t, q, req("col-a"))
	_, err = q.Finish(ctx, j.ID, old.LeaseID, queue.Result{Succeeded: true})
	wantErr(t, "Finish with the old lease after re-lease", err, queue.ErrLeaseLost)
	_, err = q.Renew(ctx, j.ID, old.LeaseID)
	wantErr(t, "Renew with the old lease after re-lease", err, queue.ErrLeaseLost)
	_, err = q.MarkRunning(ctx, j.ID, old.LeaseID)
	wantErr(t, "MarkRunning with the old lease after re-lease", err, queue.ErrLeaseLost)

	// The current holder is unaffected.
	wantState(t, get(t, q, j.ID), queue.StateLeased)
	if _, err := q.Finish(ctx, j.ID, cur.LeaseID, queue.Result{Succeeded: true}); err != nil {
		t.Fatalf("Finish with the current lease: %v", err)
	}
}

func testLongPollWakes(t *testing.T, newQueue NewQueueFunc) {
	cfg := Config()
	cfg.PollInterval = time.Minute // only the wake-up can deliver in time
	q := newQueue(t, cfg)
	const rounds = 5
	for i := range rounds {
		type result struct {
			job *queue.Job
			err error
			at  time.Time // taken as Next returns, not when this goroutine gets to look
		}
		got := make(chan result, 1)
		go func() {
			j, err := q.Next(context.Background(), queue.NextRequest{CollectorID: "col-a", Wait: 10 * time.Second})
			got <- result{j, err, time.Now()}
		}()
		waitParked(t, q, "col-a")
		start := time.Now()
		j := enqueue(t, q, fmt.Sprintf("int-%d", i), "col-a")
		r := <-got
		if r.err != nil {
			t.Fatalf("Next: %v", r.err)
		}
		l, took := r.job, r.at.Sub(start)
		if l.ID != j.ID {
			t.Fatalf("Next = %s, want %s", describe(l), j.ID)
		}
		// A wake returns in milliseconds; without one the parked Next
		// would only find the job on its 1 s fallback poll. 500 ms tells
		// the two apart on a loaded 2-core CI machine, where a 100 ms bound
		// failed for scheduling alone.
		if took > 500*time.Millisecond {
			t.Errorf("round %d: waiting Next returned %v after Enqueue started, want ≤ 500ms (a wake, not the fallback poll)", i, took)
		}
		t.Logf("round %d: pickup %v", i, took)
		if _, err := q.Finish(ctxT(t), l.ID, l.LeaseID, queue.Result{Succeeded: true}); err != nil {
			t.Fatalf("Finish: %v", err)
		}
	}
}

func testLongPollTimesOut(t *testing.T, newQueue NewQueueFunc) {
	q := newQueue(t, Config())
	const wait = 300 * time.Millisecond
	start := time.Now()
	j, err := q.Next(ctxT(t), queue.NextRequest{CollectorID: "col-a", Wait: wait})
	took := time.Since(start)
	if !errors.Is(err, queue.ErrNoJob) || j != nil {
		t.Fatalf("Next on an empty queue = %s, %v; want nil, ErrNoJob", describe(j), err)
	}
	if took < wait || took > wait+time.Second {
		t.Errorf("Next took %v, want about %v", took, wait)
	}
	// Zero wait: look once.
	start = time.Now()
	noJob(t, q, req("col-a"))
	if took := time.Since(start); took > 200*time.Millisecond {
		t.Errorf("Next with no wait took %v", took)
	}
}

func testLongPollContextCanceled(t *testing.T, newQueue NewQueueFunc) {
	q := newQueue(t, Config())
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := q.Next(ctx, queue.NextRequest{CollectorID: "col-a", Wait: 10 * time.Second})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next with a 150ms context = %v, want context.DeadlineExceeded", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("Next took %v after its context ended", took)
	}
}

func testCapacityFilter(t *testing.T, newQueue NewQueueFunc) {
	q := newQueue(t, Config())
	ctx := ctxT(t)
	const mib = 1 << 20
	// Teach the queue that int-big peaks at 1 GiB, then 100 MiB: the
	// prediction is the maximum of recent runs, 1 GiB.
	for _, peak := range []int64{1024 * mib, 100 * mib} {
		enqueue(t, q, "int-big", "col-a")
		l := next(t, q, req("col-a"))
		if _, err := q.Finish(ctx, l.ID, l.LeaseID, queue.Result{Succeeded: true, PeakMemoryBytes: peak}); err != nil {
			t.Fatal(err)
		}
	}
	// A failed run's peak is not a prediction.
	enqueue(t, q, "int-small", "col-a")
	l := next(t, q, req("col-a"))
	if _, err := q.Finish(ctx, l.ID, l.LeaseID, queue.Result{PeakMemoryBytes: 4096 * mib}); err != nil {
		t.Fatal(err)
	}

	big := enqueue(t, q, "int-big", "col-a")       // older, predicted 1 GiB
	small := enqueue(t, q, "int-small", "col-a")   // unknown: default 256 MiB
	small2 := enqueue(t, q, "int-small2", "col-a") // unknown: default 256 MiB

	got := next(t, q, queue.NextRequest{CollectorID: "col-a", FreeMemoryBytes: 512 * mib})
	if got.ID != small.ID {
		t.Fatalf("Next(512 MiB free) = %s, want %s (the big one does not fit)", describe(got), small.ID)
	}
	noJob(t, q, queue.NextRequest{CollectorID: "col-a", FreeMemoryBytes: 200 * mib}) // not even the default fits
	got = next(t, q, queue.NextRequest{CollectorID: "col-a", FreeMemoryBytes: 512 * mib})
	if got.ID != small2.ID {
		t.Fatalf("Next(512 MiB free) = %s, want %s", describe(got), small2.ID)
	}
	noJob(t, q, queue.NextRequest{CollectorID: "col-a", FreeMemoryBytes: 512 * mib})
	wantState(t, get(t, q, big.ID), queue.StateQueued) // skipped, not dropped
	got = next(t, q, queue.NextRequest{CollectorID: "col-a", FreeMemoryBytes: 2048 * mib})
	if got.ID != big.ID {
		t.Fatalf("Next(2 GiB free) = %s, want %s", describe(got), big.ID)
	}

	// Unknown free memory: no filter.
	if _, err := q.Finish(ctx, got.ID, got.LeaseID, queue.Result{Succeeded: true, PeakMemoryBytes: 1024 * mib}); err != nil {
		t.Fatal(err)
	}
	big2 := enqueue(t, q, "int-big", "col-a")
	if got := next(t, q, req("col-a")); got.ID != big2.ID {
		t.Fatalf("Next(unknown free) = %s, want %s", describe(got), big2.ID)
	}
}

func testCancel(t *testing.T, newQueue NewQueueFunc) {
	cfg := Config()
	q := newQueue(t, cfg)
	ctx := ctxT(t)

	queued := enqueue(t, q, "int-q", "col-a")
	c, err := q.Cancel(ctx, queued.ID)
	if err != nil {
		t.Fatalf("Cancel queued: %v", err)
	}
	wantState(t, c, queue.StateCanceled)
	if c.FinishedAt.IsZero() {
		t.Error("canceled job has no FinishedAt")
	}
	noJob(t, q, req("col-a"))
	_, err = q.Cancel(ctx, queued.ID)
	wantErr(t, "Cancel twice", err, queue.ErrInvalidState)
	if j := enqueue(t, q, "int-q", "col-a"); j.ID == queued.ID {
		t.Fatal("Enqueue after Cancel returned the canceled job")
	}
	l := next(t, q, req("col-a"))
	if _, err := q.Cancel(ctx, l.ID); err != nil {
		t.Fatalf("Cancel leased: %v", err)
	}

	enqueue(t, q, "int-r", "col-a")
	l = next(t, q, req("col-a"))
	if _, err := q.MarkRunning(ctx, l.ID, l.LeaseID); err != nil {
		t.Fatal(err)
	}
	c, err = q.Cancel(ctx, l.ID)
	if err != nil {
		t.Fatalf("Cancel running: %v", err)
	}
	wantState(t, c, queue.StateCanceled)
	// The runner's lease is void.
	_, err = q.Renew(ctx, l.ID, l.LeaseID)
	wantErr(t, "Renew after Cancel", err, queue.ErrLeaseLost)
	_, err = q.MarkRunning(ctx, l.ID, l.LeaseID)
	wantErr(t, "MarkRunning after Cancel", err, queue.ErrLeaseLost)
	_, err = q.Finish(ctx, l.ID, l.LeaseID, queue.Result{Succeeded: true})
	wantErr(t, "Finish after Cancel", err, queue.ErrLeaseLost)
	wantState(t, get(t, q, l.ID), queue.StateCanceled)
	// And it never comes back through expiry.
	q.Advance(pastTTL(cfg))
	if n, err := q.ExpireLeases(ctx); err != nil || n != 0 {
		t.Fatalf("ExpireLeases after Cancel = %d, %v; want 0, nil", n, err)
	}
}

func testCollectorIsolation(t *testing.T, newQueue NewQueueFunc) {
	q := newQueue(t, Config())
	jb := enqueue(t, q, "int-b", "col-b")
	// A waits through B's enqueue and still gets nothing. On a starved
	// machine A's short wait may run out before it parks: then again.
	var done chan error
	for try := 1; ; try++ {
		d := make(chan error, 1)
		go func() {
			j, err := q.Next(context.Background(), queue.NextRequest{CollectorID: "col-a", Wait: 300 * time.Millisecond})
			if err == nil {
				err = fmt.Errorf("collector A got %s", describe(j))
			}
			d <- err
		}()
		done = d
		if parkedOrDone(t, q, "col-a", done) {
			break
		}
		if err := <-done; !errors.Is(err, queue.ErrNoJob) {
			t.Fatalf("Next(col-a) = %v, want ErrNoJob", err)
		}
		if try == 5 {
			t.Fatal("Next(col-a) with a 300ms wait returned before it parked, 5 times")
		}
		drainParked(q)
	}
	enqueue(t, q, "int-b2", "col-b")
	if err := <-done; !errors.Is(err, queue.ErrNoJob) {
		t.Fatalf("Next(col-a) = %v, want ErrNoJob", err)
	}
	if j := next(t, q, req("col-b")); j.ID != jb.ID || j.CollectorID != "col-b" {
		t.Fatalf("Next(col-b) = %s, want %s", describe(j), jb.ID)
	}
}

func testReassign(t *testing.T, newQueue NewQueueFunc) {
	q := newQueue(t, Config())
	ctx := ctxT(t)
	j := enqueue(t, q, "int-1", "col-a")
	// B is already waiting when the integration moves to it.
	got := make(chan *queue.Job, 1)
	go func() {
		l, _ := q.Next(context.Background(), queue.NextRequest{CollectorID: "col-b", Wait: 5 * time.Second})
		got <- l
	}()
	waitParked(t, q, "col-b")
	start := time.Now()
	n, err := q.Reassign(ctx, "int-1", queue.Target{CollectorID: "col-b"})
	if err != nil || n != 1 {
		t.Fatalf("Reassign = %d, %v; want 1, nil", n, err)
	}
	l := <-got
	if l == nil || l.ID != j.ID || l.CollectorID != "col-b" {
		t.Fatalf("Next(col-b) after Reassign = %s, want %s on col-b", describe(l), j.ID)
	}
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Errorf("waiting collector picked the reassigned job after %v", took)
	}
	// In-flight jobs stay where they run.
	if n, err := q.Reassign(ctx, "int-1", queue.Target{CollectorID: "col-c"}); err != nil || n != 0 {
		t.Fatalf("Reassign of a leased job = %d, %v; want 0, nil", n, err)
	}
	noJob(t, q, req("col-a"))
}

// testRequeue: a leased job goes back to another collector's queue without
// an attempt counted; its old lease is void; a running job cannot be
// requeued.
func testRequeue(t *testing.T, newQueue NewQueueFunc) {
	q := newQueue(t, Config())
	ctx := ctxT(t)
	j := enqueue(t, q, "int-1", "col-a")
	l := next(t, q, req("col-a"))
	back, err := q.Requeue(ctx, l.ID, l.LeaseID, queue.Target{CollectorID: "col-b"})
	if err != nil || back.State != queue.StateQueued || back.CollectorID != "col-b" || back.Attempt != 1 || back.LeaseID != "" {
		t.Fatalf("Requeue = %s, %v; want queued on col-b, attempt 1, no lease", describe(back), err)
	}
	if _, err := q.Renew(ctx, l.ID, l.LeaseID); !errors.Is(err, queue.ErrLeaseLost) {
		t.Errorf("Renew under the requeued lease: %v, want ErrLeaseLost", err)
	}
	noJob(t, q, req("col-a"))
	l2 := next(t, q, req("col-b"))
	if l2.ID != j.ID || l2.Attempt != 1 {
		t.Fatalf("col-b leased %s, want %s on attempt 1", describe(l2), j.ID)
	}
	if _, err := q.Requeue(ctx, l2.ID, "lease_wrong", queue.Target{CollectorID: "col-a"}); !errors.Is(err, queue.ErrLeaseLost) {
		t.Errorf("Requeue with a wrong lease: %v, want ErrLeaseLost", err)
	}
	if _, err := q.MarkRunning(ctx, l2.ID, l2.LeaseID); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Requeue(ctx, l2.ID, l2.LeaseID, queue.Target{CollectorID: "col-a"}); !errors.Is(err, queue.ErrInvalidState) {
		t.Errorf("Requeue of a running job: %v, want ErrInvalidState", err)
	}
}

func testListAndDepth(t *testing.T, newQueue NewQueueFunc) {
	q := newQueue(t, Config())
	ctx := ctxT(t)
	var ids []string
	for i := range 4 {
		ids = append(ids, enqueue(t, q, fmt.Sprintf("int-%d", i), "col-a").ID)
	}
	ids = append(ids, enqueue(t, q, "int-9", "col-b").ID)
	l := next(t, q, req("col-a")) // int-0 leased
	if _, err := q.Finish(ctx, l.ID, l.LeaseID, queue.Result{Succeeded: true}); err != nil {
		t.Fatal(err)
	}
	l = next(t, q, req("col-a")) // int-1 leased

	all, err := q.List(ctx, queue.Filter{})
	if err != nil || len(all) != 5 {
		t.Fatalf("List() = %d jobs, %v; want 5", len(all), err)
	}
	if all[0].ID != ids[4] || all[4].ID != ids[0] {
		t.Errorf("List() order = %s … %s, want newest (%s) first", all[0].ID, all[4].ID, ids[4])
	}
	cases := []struct {
		f    queue.Filter
		want int
	}{
		{queue.Filter{CollectorID: "col-a"}, 4},
		{queue.Filter{CollectorID: "col-b"}, 1},
		{queue.Filter{IntegrationID: "int-2"}, 1},
		{queue.Filter{States: []queue.State{queue.StateQueued}}, 3},
		{queue.Filter{States: []queue.State{queue.StateLeased, queue.StateSucceeded}}, 2},
		{queue.Filter{CollectorID: "col-a", States: []queue.State{queue.StateQueued}}, 2},
		{queue.Filter{Limit: 2}, 2},
		{queue.Filter{CollectorID: "col-x"}, 0},
	}
	for _, c := range cases {
		got, err := q.List(ctx, c.f)
		if err != nil || len(got) != c.want {
			t.Errorf("List(%+v) = %d jobs, %v; want %d", c.f, len(got), err, c.want)
		}
	}
	// Pages by cursor: Limit 2, Before the last of the previous page, walk
	// every job once, newest first, whatever the clock's resolution.
	var paged []string
	for before := ""; ; {
		page, err := q.List(ctx, queue.Filter{Before: before, Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, j := range page {
			paged = append(paged, j.ID)
		}
		before = page[len(page)-1].ID
		if len(paged) > len(ids) {
			break
		}
	}
	if len(paged) != len(ids) {
		t.Fatalf("paging by Before gave %d jobs, want %d: %v", len(paged), len(ids), paged)
	}
	for i, id := range paged {
		if id != ids[len(ids)-1-i] {
			t.Errorf("page order [%d] = %s, want %s", i, id, ids[len(ids)-1-i])
		}
	}
	if got, err := q.List(ctx, queue.Filter{Before: "job_gone", Limit: 2}); err != nil || len(got) != 0 {
		t.Errorf("List(Before: unknown job) = %d jobs, %v; want none", len(got), err)
	}
	if got, err := q.List(ctx, queue.Filter{CollectorID: "col-a", Before: ids[2]}); err != nil || len(got) != 2 {
		t.Errorf("List(col-a before the third job) = %d jobs, %v; want 2", len(got), err)
	}
	depth, err := q.Depth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Active states only: the finished job is not counted.
	want := map[queue.State]int{queue.StateQueued: 3, queue.StateLeased: 1}
	if len(depth) != len(want) {
		t.Errorf("Depth = %v, want %v", depth, want)
	}
	for s, n := range want {
		if depth[s] != n {
			t.Errorf("Depth[%s] = %d, want %d (all: %v)", s, depth[s], n, depth)
		}
	}
	_ = l
}

func testCloseWakesWaiters(t *testing.T, newQueue NewQueueFunc) {
	q := newQueue(t, Config())
	done := make(chan error, 1)
	go func() {
		_, err := q.Next(context.Background(), queue.NextRequest{CollectorID: "col-a", Wait: 10 * time.Second})
		done <- err
	}()
	waitParked(t, q, "col-a")
	if err := q.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-done:
		wantErr(t, "Next during Close", err, queue.ErrClosed)
	case <-time.After(2 * time.Second):
		t.Fatal("waiting Next did not return after Close")
	}
	if err := q.Close(); err != nil {
		t.Fatalf("Close twice: %v", err)
	}
}
