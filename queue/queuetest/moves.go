package queuetest

import (
	"context"
	"strings"
	"testing"

	"github.com/collectorhq/collector/queue"
)

// The cases of jobs in flight when their integration moves or their
// collector is deleted. Reassign moves queued jobs at once; a job already
// leased keeps its lease (the run under way may finish), but if the lease
// ends without a finish the job must go where its integration is now:
// requeued on the old collector, it waited there for a collector that may
// never ask again, and, being the integration's one active job, made every
// later Enqueue return it.

// reassignFirst leases a job of int-1 to col-a, marks it running and
// reassigns the integration to to while it runs. The run's lease keeps
// working.
func reassignFirst(t *testing.T, q queue.Queue, to queue.Target) *queue.Job {
	t.Helper()
	ctx := ctxT(t)
	j := enqueue(t, q, "int-1", "col-a")
	l := next(t, q, req("col-a"))
	if _, err := q.MarkRunning(ctx, l.ID, l.LeaseID); err != nil {
		t.Fatal(err)
	}
	if n, err := q.Reassign(ctx, "int-1", to); err != nil || n != 0 {
		t.Fatalf("Reassign of a running job = %d, %v; want 0 queued jobs moved, nil", n, err)
	}
	r, err := q.Renew(ctx, l.ID, l.LeaseID)
	if err != nil {
		t.Fatalf("Renew by col-a after the reassignment: %v; the run under way keeps its lease", err)
	}
	if r.CollectorID != "col-a" || r.State != queue.StateRunning {
		t.Fatalf("running job after the reassignment = %s on %q, want running on col-a", describe(r), r.CollectorID)
	}
	if j.ID != l.ID {
		t.Fatalf("col-a leased %s, want %s", l.ID, j.ID)
	}
	return l
}

// testReassignInFlight: a running job whose integration moved to col-b
// goes to col-b when its lease expires (the sweep), never back to col-a.
func testReassignInFlight(t *testing.T, newQueue NewQueueFunc) {
	cfg := Config()
	q := newQueue(t, cfg)
	ctx := ctxT(t)
	l := reassignFirst(t, q, queue.Target{CollectorID: "col-b"})
	q.Advance(pastTTL(cfg))
	if n, err := q.ExpireLeases(ctx); err != nil || n != 1 {
		t.Fatalf("ExpireLeases = %d, %v; want 1, nil", n, err)
	}
	g := get(t, q, l.ID)
	if g.State != queue.StateQueued || g.CollectorID != "col-b" || g.Pool != "" || g.Attempt != 2 {
		t.Fatalf("job after its lease expired = %s on %q (pool %q), want queued on col-b, attempt 2", describe(g), g.CollectorID, g.Pool)
	}
	noJob(t, q, req("col-a"))
	if b := next(t, q, req("col-b")); b.ID != l.ID || b.CollectorID != "col-b" {
		t.Fatalf("Next(col-b) = %s, want %s", describe(b), l.ID)
	}
}

// testReassignInFlightLazy: the same through Next's own expiry, with no
// sweep: col-a's Next expires the lease and does not get the job back.
func testReassignInFlightLazy(t *testing.T, newQueue NewQueueFunc) {
	cfg := Config()
	q := newQueue(t, cfg)
	l := reassignFirst(t, q, queue.Target{CollectorID: "col-b"})
	q.Advance(pastTTL(cfg))
	noJob(t, q, req("col-a"))
	if b := next(t, q, req("col-b")); b.ID != l.ID || b.Attempt != 2 {
		t.Fatalf("Next(col-b) = %s, want %s attempt 2", describe(b), l.ID)
	}
}

// testReassignInFlightPools: moves between a collector and a pool. A job
// of a collector moved to a pool goes to the pool; a pool job whose
// integration moved to a collector goes to that collector, not back to
// the pool.
func testReassignInFlightPools(t *testing.T, newQueue NewQueueFunc) {
	cfg := Config()
	q := newQueue(t, cfg)
	ctx := ctxT(t)
	l := reassignFirst(t, q, queue.Target{Pool: "dc1"})
	q.Advance(pastTTL(cfg))
	if n, err := q.ExpireLeases(ctx); err != nil || n != 1 {
		t.Fatalf("ExpireLeases = %d, %v; want 1, nil", n, err)
	}
	if g := get(t, q, l.ID); g.State != queue.StateQueued || g.CollectorID != "" || g.Pool != "dc1" {
		t.Fatalf("job after its lease expired = %s on %q (pool %q), want queued in pool dc1", describe(g), g.CollectorID, g.Pool)
	}
	noJob(t, q, req("col-a"))
	p := next(t, q, poolReq("col-p", queue.Capacity{}))
	if p.ID != l.ID {
		t.Fatalf("Next(col-p of dc1) = %s, want %s", describe(p), l.ID)
	}
	// Leased by a member of dc1, the integration moves to col-c.
	if n, err := q.Reassign(ctx, "int-1", queue.Target{CollectorID: "col-c"}); err != nil || n != 0 {
		t.Fatalf("Reassign of the pool job = %d, %v; want 0, nil", n, err)
	}
	q.Advance(pastTTL(cfg))
	noJob(t, q, poolReq("col-q", queue.Capacity{}))
	if c := next(t, q, req("col-c")); c.ID != l.ID || c.Pool != "" {
		t.Fatalf("Next(col-c) = %s (pool %q), want %s out of the pool", describe(c), c.Pool, l.ID)
	}
}

// testReassignInFlightThenRequeue: a Requeue of a job whose integration
// moved while it was leased sends it where the integration is now, not
// where the caller read it was (the platform gives a job it could not seal
// back to the collector that leased it, having read the integration before
// the move); a job moved away and back before its lease expired stays.
func testReassignInFlightThenRequeue(t *testing.T, newQueue NewQueueFunc) {
	cfg := Config()
	q := newQueue(t, cfg)
	ctx := ctxT(t)
	j := enqueue(t, q, "int-1", "col-a")
	l := next(t, q, req("col-a"))
	if _, err := q.Reassign(ctx, "int-1", queue.Target{CollectorID: "col-b"}); err != nil {
		t.Fatal(err)
	}
	back, err := q.Requeue(ctx, l.ID, l.LeaseID, queue.Target{CollectorID: "col-a"})
	if err != nil || back.State != queue.StateQueued || back.CollectorID != "col-b" || back.Attempt != 1 {
		t.Fatalf("Requeue to col-a after a move to col-b = %s on %q, %v; want queued on col-b, attempt 1", describe(back), back.CollectorID, err)
	}
	noJob(t, q, req("col-a"))
	lb := next(t, q, req("col-b"))
	for _, to := range []string{"col-d", "col-b"} {
		if _, err := q.Reassign(ctx, "int-1", queue.Target{CollectorID: to}); err != nil {
			t.Fatal(err)
		}
	}
	q.Advance(pastTTL(cfg))
	noJob(t, q, req("col-d"))
	if g := next(t, q, req("col-b")); g.ID != j.ID || g.ID != lb.ID || g.Attempt != 2 {
		t.Fatalf("Next(col-b) after a move there and back = %s, want %s attempt 2", describe(g), j.ID)
	}
}

// testCollectorGone: what the platform's store runs when it deletes a
// collector (Backend.CollectorGone). The jobs queued for it are canceled;
// a job in flight on it is never requeued onto it: it goes where its
// integration moved, a pool job back to its pool, and one with nowhere to
// go is canceled, at once (the collector can no longer renew, finish or
// send), with the reason. The integration's next Enqueue makes a new job.
func testCollectorGone(t *testing.T, newQueue NewQueueFunc) {
	cfg := Config()
	b := newQueue(t, cfg)
	if b.CollectorGone == nil {
		t.Fatal("Backend.CollectorGone is not set: the suite needs what the store runs when it deletes a collector")
	}
	q, ctx := b.Queue, ctxT(t)
	stay := enqueue(t, q, "int-stay", "col-a")
	ls := next(t, q, req("col-a"))
	if _, err := q.MarkRunning(ctx, ls.ID, ls.LeaseID); err != nil {
		t.Fatal(err)
	}
	moved := enqueue(t, q, "int-moved", "col-a")
	lm := next(t, q, req("col-a"))
	if _, err := q.Reassign(ctx, "int-moved", queue.Target{CollectorID: "col-b"}); err != nil {
		t.Fatal(err)
	}
	pooled := enqueuePool(t, q, "int-pool", "dc1")
	next(t, q, poolReq("col-a", queue.Capacity{}))
	queued := enqueue(t, q, "int-queued", "col-a")
	if ls.ID != stay.ID || lm.ID != moved.ID {
		t.Fatalf("col-a leased %s and %s, want %s and %s", ls.ID, lm.ID, stay.ID, moved.ID)
	}

	const reason = "canceled: its collector was deleted"
	canceled, n, err := b.CollectorGone(ctx, "col-a", reason)
	if err != nil || canceled != 2 || n != 2 {
		t.Fatalf("CollectorGone(col-a) = %d canceled, %d moved, %v; want 2, 2, nil", canceled, n, err)
	}
	for _, id := range []string{stay.ID, queued.ID} {
		if g := get(t, q, id); g.State != queue.StateCanceled || !strings.Contains(g.Error, "deleted") {
			t.Errorf("job %s of the deleted collector = %s %q, want canceled saying why", id, describe(g), g.Error)
		}
	}
	wantErr(t, "Renew on the deleted collector", renewErr(ctx, q, ls), queue.ErrLeaseLost)
	wantErr(t, "Renew of the moved job", renewErr(ctx, q, lm), queue.ErrLeaseLost)

	// Nothing comes back to col-a through expiry.
	b.Advance(pastTTL(cfg))
	if n, err := q.ExpireLeases(ctx); err != nil || n != 0 {
		t.Fatalf("ExpireLeases after CollectorGone = %d, %v; want 0, nil", n, err)
	}
	left, err := q.List(ctx, queue.Filter{CollectorID: "col-a", States: []queue.State{queue.StateQueued, queue.StateLeased, queue.StateRunning}})
	if err != nil || len(left) != 0 {
		t.Fatalf("active jobs of the deleted collector = %d, %v; want none", len(left), err)
	}
	if g := next(t, q, req("col-b")); g.ID != moved.ID {
		t.Errorf("Next(col-b) = %s, want the moved job %s", describe(g), moved.ID)
	}
	if g := next(t, q, poolReq("col-p", queue.Capacity{})); g.ID != pooled.ID {
		t.Errorf("Next(col-p of dc1) = %s, want the pool job %s", describe(g), pooled.ID)
	}
	if j := enqueue(t, q, "int-stay", "col-b"); j.ID == stay.ID {
		t.Fatal("Enqueue after the collector was deleted returned its canceled job")
	}
}

func renewErr(ctx context.Context, q queue.Queue, l *queue.Job) error {
	_, err := q.Renew(ctx, l.ID, l.LeaseID)
	return err
}
