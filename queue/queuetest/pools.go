package queuetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/collectorhq/collector/queue"
)

const mib = 1 << 20

// poolReq is a member of pool dc1 asking, with a capacity.
func poolReq(collector string, c queue.Capacity) queue.NextRequest {
	return queue.NextRequest{CollectorID: collector, Pool: "dc1", Capacity: c}
}

func enqueuePool(t *testing.T, q queue.Queue, integration, pool string) *queue.Job {
	t.Helper()
	j, existed, err := q.Enqueue(ctxT(t), queue.EnqueueRequest{IntegrationID: integration, Pool: pool, RequestedBy: queue.RequestedByScheduler})
	if err != nil || existed {
		t.Fatalf("Enqueue(%s, pool %s) = existed %v, %v; want a new job", integration, pool, existed, err)
	}
	return j
}

// teach runs one successful job of integration on collector with the peaks
// given, so that the queue predicts them.
func teach(t *testing.T, q queue.Queue, integration string, mem int64, cpuPercent float64) {
	t.Helper()
	enqueue(t, q, integration, "col-teacher")
	l := next(t, q, req("col-teacher"))
	if _, err := q.Finish(ctxT(t), l.ID, l.LeaseID, queue.Result{Succeeded: true, PeakMemoryBytes: mem, PeakCPUPercent: cpuPercent}); err != nil {
		t.Fatal(err)
	}
}

func finish(t *testing.T, q queue.Queue, j *queue.Job) {
	t.Helper()
	if _, err := q.Finish(ctxT(t), j.ID, j.LeaseID, queue.Result{Succeeded: true}); err != nil {
		t.Fatalf("Finish(%s): %v", j.ID, err)
	}
}

// testPoolLeasing: a pool's job goes to a member of that pool and to no
// other collector; the lessee is recorded; dedupe holds across the pool
// and across targets.
func testPoolLeasing(t *testing.T, newQueue NewQueueFunc) {
	q := newQueue(t, Config())
	ctx := ctxT(t)
	j := enqueuePool(t, q, "int-p", "dc1")
	if j.CollectorID != "" || j.Pool != "dc1" {
		t.Fatalf("queued pool job = collector %q pool %q, want none and dc1", j.CollectorID, j.Pool)
	}
	for _, r := range []queue.NextRequest{req("col-x"), {CollectorID: "col-y", Pool: "dc2"}} {
		noJob(t, q, r)
	}
	// Dedupe across the pool and across targets: one active job per
	// integration wherever it is queued.
	for _, er := range []queue.EnqueueRequest{{IntegrationID: "int-p", Pool: "dc1"}, {IntegrationID: "int-p", Pool: "dc2"}, {IntegrationID: "int-p", CollectorID: "col-a"}} {
		got, existed, err := q.Enqueue(ctx, er)
		if err != nil || !existed || got.ID != j.ID {
			t.Fatalf("Enqueue(%+v) = %s existed %v, %v; want the queued %s", er, describe(got), existed, err, j.ID)
		}
	}
	l := next(t, q, poolReq("col-a", queue.Capacity{}))
	if l.ID != j.ID || l.CollectorID != "col-a" || l.Pool != "dc1" {
		t.Fatalf("Next(col-a of dc1) = %s (collector %q pool %q), want %s leased by col-a in dc1", describe(l), l.CollectorID, l.Pool, j.ID)
	}
	noJob(t, q, poolReq("col-b", queue.Capacity{}))
	if _, existed, err := q.Enqueue(ctx, queue.EnqueueRequest{IntegrationID: "int-p", Pool: "dc1"}); err != nil || !existed {
		t.Fatalf("Enqueue while leased: existed %v, %v; want the leased job", existed, err)
	}
	// A member's own collector queue is served too.
	own := enqueue(t, q, "int-own", "col-b")
	if got := next(t, q, poolReq("col-b", queue.Capacity{})); got.ID != own.ID {
		t.Fatalf("Next(col-b) = %s, want its own %s", describe(got), own.ID)
	}
}

// testPoolExpiryMovesJob: a member that stops renewing loses the job to
// another member once its lease expires.
func testPoolExpiryMovesJob(t *testing.T, newQueue NewQueueFunc) {
	cfg := Config()
	b := newQueue(t, cfg)
	ctx := ctxT(t)
	j := enqueuePool(t, b, "int-p", "dc1")
	la := next(t, b, poolReq("col-a", queue.Capacity{}))
	noJob(t, b, poolReq("col-b", queue.Capacity{}))
	b.Advance(pastTTL(cfg))
	lb := next(t, b, poolReq("col-b", queue.Capacity{}))
	if lb.ID != j.ID || lb.CollectorID != "col-b" || lb.Attempt != 2 {
		t.Fatalf("after col-a's lease expired, Next(col-b) = %s (collector %q, attempt %d), want %s on col-b, attempt 2", describe(lb), lb.CollectorID, lb.Attempt, j.ID)
	}
	if _, err := b.Renew(ctx, la.ID, la.LeaseID); !errors.Is(err, queue.ErrLeaseLost) {
		t.Fatalf("Renew by col-a after the move = %v, want ErrLeaseLost", err)
	}
	finish(t, b, lb)
}

// testPoolCapacity: a job is leased only where its predicted memory and
// CPU fit beside what the member already runs; MaxJobs bounds it too.
func testPoolCapacity(t *testing.T, newQueue NewQueueFunc) {
	cfg := Config()
	cfg.DefaultPeakMemoryBytes, cfg.DefaultPeakCPUs = 256*mib, 0.5
	q := newQueue(t, cfg)
	ctx := ctxT(t)
	teach(t, q, "int-big", 768*mib, 80) // 768 MiB, 0.8 CPU
	small := queue.Capacity{MemoryBytes: 1024 * mib, CPUs: 1}

	big := enqueuePool(t, q, "int-big", "dc1")
	other := enqueuePool(t, q, "int-new", "dc1") // never ran: 256 MiB, 0.5 CPU
	if n, err := q.Need(ctx, "int-new"); err != nil || n.Known || n.MemoryBytes != 256*mib || n.CPUs != 0.5 {
		t.Fatalf("Need(int-new) = %+v, %v; want the defaults, not known", n, err)
	}
	if n, err := q.Need(ctx, "int-big"); err != nil || !n.Known || n.MemoryBytes != 768*mib || n.CPUs != 0.8 {
		t.Fatalf("Need(int-big) = %+v, %v; want 768 MiB and 0.8 CPU, known", n, err)
	}
	// 512 MiB: the big one does not fit, the other does (fits skip, not
	// block, the older job).
	if got := next(t, q, poolReq("col-tiny", queue.Capacity{MemoryBytes: 512 * mib, CPUs: 4})); got.ID != other.ID {
		t.Fatalf("Next(512 MiB) = %s, want %s", describe(got), other.ID)
	}
	l := next(t, q, poolReq("col-a", small))
	if l.ID != big.ID {
		t.Fatalf("Next(col-a, 1 GiB, 1 CPU) = %s, want %s", describe(l), big.ID)
	}
	if u, err := q.Usage(ctx, "col-a"); err != nil || u.Jobs != 1 || u.MemoryBytes != 768*mib || u.CPUs != 0.8 {
		t.Fatalf("Usage(col-a) = %+v, %v; want 1 job of 768 MiB and 0.8 CPU", u, err)
	}
	// Beside it: 256 MiB fits in memory (768+256 = 1 GiB), 0.5 CPU does not (1.3 > 1).
	third := enqueuePool(t, q, "int-third", "dc1")
	noJob(t, q, poolReq("col-a", small))
	if got := next(t, q, poolReq("col-a", queue.Capacity{MemoryBytes: 1024 * mib, CPUs: 2})); got.ID != third.ID {
		t.Fatalf("Next(col-a with 2 CPUs) = %s, want %s", describe(got), third.ID)
	}
	// Memory: a fourth does not fit beside 768+256 MiB in 1 GiB.
	fourth := enqueuePool(t, q, "int-fourth", "dc1")
	noJob(t, q, poolReq("col-a", queue.Capacity{MemoryBytes: 1024 * mib, CPUs: 8}))
	// MaxJobs: with room, a limit of two jobs still says no.
	noJob(t, q, poolReq("col-a", queue.Capacity{MemoryBytes: 8192 * mib, CPUs: 8, MaxJobs: 2}))
	got := next(t, q, poolReq("col-a", queue.Capacity{MemoryBytes: 8192 * mib, CPUs: 8, MaxJobs: 3}))
	if got.ID != fourth.ID {
		t.Fatalf("Next(col-a, 3 jobs max) = %s, want %s", describe(got), fourth.ID)
	}
	// A collector's own queue is admitted the same way.
	own := enqueue(t, q, "int-own", "col-a")
	noJob(t, q, queue.NextRequest{CollectorID: "col-a", Pool: "dc1", Capacity: queue.Capacity{MaxJobs: 3}})
	if got := next(t, q, queue.NextRequest{CollectorID: "col-a", Capacity: queue.Capacity{MaxJobs: 4}}); got.ID != own.ID {
		t.Fatalf("Next(col-a, own queue) = %s, want %s", describe(got), own.ID)
	}
}

// testPoolFairness: leasing is oldest-queued first within what fits, so an
// integration run often cannot starve the others: with one job per
// integration active at most (dedupe), each queued job waits at most one
// round of the others.
func testPoolFairness(t *testing.T, newQueue NewQueueFunc) {
	b := newQueue(t, Config())
	var order []string
	for _, in := range []string{"int-a", "int-b", "int-c"} {
		enqueuePool(t, b, in, "dc1")
		b.Advance(time.Millisecond)
	}
	for range 6 {
		l := next(t, b, poolReq("col-m", queue.Capacity{MaxJobs: 1}))
		order = append(order, l.IntegrationID)
		finish(t, b, l)
		// The busy integration is due again at once, every time.
		if _, _, err := b.Enqueue(ctxT(t), queue.EnqueueRequest{IntegrationID: "int-a", Pool: "dc1"}); err != nil {
			t.Fatal(err)
		}
		b.Advance(time.Millisecond)
	}
	want := "[int-a int-b int-c int-a int-a int-a]"
	// After int-a's second run only int-a is queued: the others ran once
	// each, in their turn, before int-a ran a second time.
	if got := fmt.Sprint(order); got != want {
		t.Errorf("lease order %s, want %s", got, want)
	}
}

// testPoolLeastLoaded: a young pool job goes to the least loaded of the
// members waiting for it, whichever is woken first; a more loaded member
// takes it once it has waited PoolHandoff.
func testPoolLeastLoaded(t *testing.T, newQueue NewQueueFunc) {
	cfg := Config()
	cfg.DefaultPeakMemoryBytes = 256 * mib
	b := newQueue(t, cfg)
	capa := queue.Capacity{MemoryBytes: 1024 * mib, CPUs: 4}
	// col-busy runs one job (a quarter of its memory).
	enqueue(t, b, "int-running", "col-busy")
	next(t, b, req("col-busy"))

	for round := range 3 {
		ctx, cancel := context.WithCancel(context.Background())
		type res struct {
			j   *queue.Job
			err error
		}
		got := map[string]chan res{"col-busy": make(chan res, 1), "col-idle": make(chan res, 1)}
		for id, ch := range got {
			go func() {
				j, err := b.Next(ctx, queue.NextRequest{CollectorID: id, Pool: "dc1", Capacity: capa, Wait: 20 * time.Second})
				ch <- res{j, err}
			}()
		}
		waitBoth(t, b, "col-busy", "col-idle")
		j := enqueuePool(t, b, fmt.Sprintf("int-young-%d", round), "dc1")
		r := <-got["col-idle"]
		if r.err != nil || r.j.ID != j.ID {
			t.Fatalf("round %d: the idle member got %v, %v; want %s", round, describe(r.j), r.err, j.ID)
		}
		cancel()
		if r := <-got["col-busy"]; r.err == nil {
			t.Fatalf("round %d: the busy member got %s too", round, describe(r.j))
		}
		finish(t, b, r.j)
		drainParked(b)
	}

	// Only the busy member asks while the idle one waits elsewhere: a
	// young job is left for the idle one, an old one is taken.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	idle := make(chan error, 1)
	go func() {
		// The idle member waits with a capacity the job does not fit in.
		_, err := b.Next(ctx, queue.NextRequest{CollectorID: "col-idle", Pool: "dc1", Capacity: queue.Capacity{MemoryBytes: 64 * mib}, Wait: 20 * time.Second})
		idle <- err
	}()
	waitParked(t, b, "col-idle")
	j := enqueuePool(t, b, "int-old", "dc1")
	noJob(t, b, poolReq("col-busy", capa))
	b.Advance(cfg.PoolHandoff + time.Millisecond)
	if got := next(t, b, poolReq("col-busy", capa)); got.ID != j.ID {
		t.Fatalf("after the handoff, Next(col-busy) = %s, want %s", describe(got), j.ID)
	}
	cancel()
	<-idle
}

// waitBoth returns once a Next of each of two collectors is parked.
func waitBoth(t *testing.T, b Backend, c1, c2 string) {
	t.Helper()
	seen := map[string]bool{}
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for !seen[c1] || !seen[c2] {
		select {
		case c := <-b.Parked:
			seen[c] = true
		case <-timeout.C:
			t.Fatalf("Next of %s and %s not both parked within 10 s (%v)", c1, c2, seen)
		}
	}
}

// testOOMLearned: a run killed at its memory limit predicts the limit.
func testOOMLearned(t *testing.T, newQueue NewQueueFunc) {
	cfg := Config()
	cfg.LimitMemoryBytes, cfg.DefaultPeakMemoryBytes = 512*mib, 128*mib
	q := newQueue(t, cfg)
	ctx := ctxT(t)
	teach(t, q, "int-oom", 100*mib, 0)
	enqueue(t, q, "int-oom", "col-a")
	l := next(t, q, req("col-a"))
	if _, err := q.Finish(ctx, l.ID, l.LeaseID, queue.Result{ExitCode: 137, OOMKilled: true, PeakMemoryBytes: 300 * mib}); err != nil {
		t.Fatal(err)
	}
	if n, err := q.Need(ctx, "int-oom"); err != nil || n.MemoryBytes != 512*mib {
		t.Fatalf("Need after an OOM kill = %+v, %v; want the 512 MiB limit", n, err)
	}
	// A peak reported above the limit is not believed past it.
	teach(t, q, "int-huge", 4096*mib, 0)
	if n, err := q.Need(ctx, "int-huge"); err != nil || n.MemoryBytes != 512*mib {
		t.Fatalf("Need of a run above the limit = %+v, %v; want the 512 MiB limit", n, err)
	}
}

// testValidation: a validation is queued beside its integration's
// collection (one active job per mode), leased before the older
// collections of its queue and of its pool, has one attempt, keeps its
// outcome (bounded), and never teaches the integration's peaks.
func testValidation(t *testing.T, newQueue NewQueueFunc) {
	cfg := Config()
	cfg.DefaultPeakMemoryBytes = 64 * mib
	b := newQueue(t, cfg)
	q := b.Queue
	ctx := ctxT(t)
	older := enqueue(t, q, "int-other", "col-a")
	collect := enqueue(t, q, "int-v", "col-a")
	val, existed, err := q.Enqueue(ctx, queue.EnqueueRequest{IntegrationID: "int-v", CollectorID: "col-a", Mode: queue.ModeValidate, RequestedBy: "admin"})
	if err != nil || existed || val.Mode != queue.ModeValidate || val.ID == collect.ID {
		t.Fatalf("Enqueue(validate) beside a queued collection = %s, existed %v, %v; want a new validation", describe(val), existed, err)
	}
	if val.MaxAttempts != 1 {
		t.Errorf("a validation has %d attempts, want 1", val.MaxAttempts)
	}
	again, existed, err := q.Enqueue(ctx, queue.EnqueueRequest{IntegrationID: "int-v", CollectorID: "col-a", Mode: queue.ModeValidate})
	if err != nil || !existed || again.ID != val.ID {
		t.Fatalf("a second validation = %s, existed %v, %v; want the first", describe(again), existed, err)
	}
	if _, _, err := q.Enqueue(ctx, queue.EnqueueRequest{IntegrationID: "int-v", CollectorID: "col-a", Mode: "bogus"}); err == nil {
		t.Error("Enqueue with an unknown mode succeeded")
	}
	if g := get(t, q, collect.ID); g.Mode != queue.ModeCollect {
		t.Errorf("the collection's mode = %q", g.Mode)
	}
	first := next(t, q, req("col-a"))
	if first.ID != val.ID {
		t.Fatalf("Next leased %s first, want the validation %s (before %s and %s)", first.ID, val.ID, older.ID, collect.ID)
	}
	if second := next(t, q, req("col-a")); second.ID != older.ID {
		t.Errorf("then Next leased %s, want the oldest collection %s", second.ID, older.ID)
	}
	long := strings.Repeat("x", queue.MaxOutcomeBytes+100)
	done, err := q.Finish(ctx, first.ID, first.LeaseID, queue.Result{Succeeded: true, PeakMemoryBytes: 900 * mib, Outcome: long})
	if err != nil {
		t.Fatal(err)
	}
	if done.Outcome != long[:queue.MaxOutcomeBytes] || get(t, q, first.ID).Outcome != done.Outcome {
		t.Errorf("the stored outcome is %d bytes, want the first %d", len(get(t, q, first.ID).Outcome), queue.MaxOutcomeBytes)
	}
	if n, err := q.Need(ctx, "int-v"); err != nil || n.Known || n.MemoryBytes != 64*mib {
		t.Errorf("Need after a validation = %+v, %v; want the default (a validation teaches nothing)", n, err)
	}
	// A collection's outcome is not kept.
	c := next(t, q, req("col-a"))
	if c.ID != collect.ID {
		t.Fatalf("Next leased %s, want %s", c.ID, collect.ID)
	}
	if f, err := q.Finish(ctx, c.ID, c.LeaseID, queue.Result{Succeeded: true, Outcome: "{}"}); err != nil || f.Outcome != "" {
		t.Errorf("a collection's outcome = %q, %v; want none kept", f.Outcome, err)
	}

	// In a pool: a validation goes before an older pool job, and a lost
	// lease makes it dead at once.
	old, _, err := q.Enqueue(ctx, queue.EnqueueRequest{IntegrationID: "int-p", Pool: "pool-v"})
	if err != nil {
		t.Fatal(err)
	}
	pv, _, err := q.Enqueue(ctx, queue.EnqueueRequest{IntegrationID: "int-p", Pool: "pool-v", Mode: queue.ModeValidate})
	if err != nil {
		t.Fatal(err)
	}
	b.Advance(cfg.PoolHandoff + time.Second) // both past the hand-off: any member takes them
	l := next(t, q, queue.NextRequest{CollectorID: "col-p", Pool: "pool-v"})
	if l.ID != pv.ID {
		t.Fatalf("a pool member leased %s first, want the validation %s (before %s)", l.ID, pv.ID, old.ID)
	}
	b.Advance(pastTTL(cfg))
	if _, err := q.ExpireLeases(ctx); err != nil {
		t.Fatal(err)
	}
	wantState(t, get(t, q, pv.ID), queue.StateDead)
}
