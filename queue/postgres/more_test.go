package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/collectorhq/collector/internal/pgtest"
	"github.com/collectorhq/collector/queue"
	"github.com/collectorhq/collector/queue/postgres"
	"github.com/collectorhq/collector/queue/queuetest"
)

// Leases of one collector are serialized (an advisory lock), so runners
// racing in two processes never lease more than its capacity.
func TestCapacityHoldsUnderConcurrentNext(t *testing.T) {
	url := pgtest.NewDB(t)
	cfg := queuetest.Config()
	a, b := open(t, url, cfg), open(t, url, cfg)
	ctx := context.Background()
	for i := range 10 {
		if _, _, err := a.Enqueue(ctx, queue.EnqueueRequest{IntegrationID: fmt.Sprintf("int-%d", i), CollectorID: "col-a"}); err != nil {
			t.Fatal(err)
		}
	}
	// Default need 256 MiB and 0.5 CPU: 1 GiB fits four, 1.5 CPUs three,
	// and MaxJobs allows two.
	capacity := queue.Capacity{MemoryBytes: 1 << 30, CPUs: 1.5, MaxJobs: 2}
	var wg sync.WaitGroup
	var mu sync.Mutex
	leased := 0
	for r := range 16 {
		q := a
		if r%2 == 1 {
			q = b
		}
		wg.Go(func() {
			_, err := q.Next(ctx, queue.NextRequest{CollectorID: "col-a", Capacity: capacity})
			if errors.Is(err, queue.ErrNoJob) {
				return
			}
			if err != nil {
				t.Errorf("Next: %v", err)
				return
			}
			mu.Lock()
			leased++
			mu.Unlock()
		})
	}
	wg.Wait()
	if leased != 2 {
		t.Fatalf("%d jobs leased at once to a collector allowed 2", leased)
	}
	u, err := a.Usage(ctx, "col-a")
	if err != nil || u.Jobs != 2 || u.MemoryBytes != 512<<20 || u.CPUs != 1 {
		t.Fatalf("Usage = %+v, %v; want 2 jobs, 512 MiB, 1 CPU", u, err)
	}
}

// The prediction is the maximum of the last PeakSamples successful runs;
// a run that did not measure memory adds no memory sample.
func TestPeakSamplesKeepTheLast(t *testing.T) {
	cfg := queuetest.Config()
	cfg.PeakSamples = 2
	q := open(t, pgtest.NewDB(t), cfg)
	ctx := context.Background()
	run := func(mem int64, cpuPercent float64) queue.Need {
		t.Helper()
		if _, _, err := q.Enqueue(ctx, queue.EnqueueRequest{IntegrationID: "int-1", CollectorID: "col-a"}); err != nil {
			t.Fatal(err)
		}
		j, err := q.Next(ctx, queue.NextRequest{CollectorID: "col-a"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := q.Finish(ctx, j.ID, j.LeaseID, queue.Result{Succeeded: true, PeakMemoryBytes: mem, PeakCPUPercent: cpuPercent}); err != nil {
			t.Fatal(err)
		}
		n, err := q.Need(ctx, "int-1")
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	const mib = 1 << 20
	steps := []struct {
		mem     int64
		cpu     float64
		wantMem int64
		wantCPU float64
	}{
		{100 * mib, 50, 100 * mib, 0.5},
		{300 * mib, 25, 300 * mib, 0.5},
		{200 * mib, 10, 300 * mib, 0.25},
		{150 * mib, 0, 200 * mib, 0.25}, // no CPU sample: CPU keeps [0.25, 0.1]
		{0, 80, 200 * mib, 0.8},         // no memory sample: memory keeps [200, 150]
	}
	for i, s := range steps {
		n := run(s.mem, s.cpu)
		if n.MemoryBytes != s.wantMem || n.CPUs != s.wantCPU || !n.Known {
			t.Fatalf("step %d: Need = %+v, want %d bytes, %v CPUs, known", i, n, s.wantMem, s.wantCPU)
		}
	}
}

// A listener whose connection is cut reconnects: cross-process wake-ups
// work again without waiting for the fallback poll.
func TestListenerReconnects(t *testing.T) {
	url, a, b, parked := twoProcesses(t)
	ctx := context.Background()
	admin, listeners := listenerPIDs(t, url)
	before := listeners()
	if len(before) != 2 {
		t.Fatalf("%d listener sessions, want 2 (one per queue)", len(before))
	}
	if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid`, before); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		now := listeners()
		if len(now) == 2 && now[0] != before[0] && now[0] != before[1] && now[1] != before[0] && now[1] != before[1] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("listeners %v after terminating %v: not reconnected in 10 s", now, before)
		}
		time.Sleep(50 * time.Millisecond)
	}
	res := parkNext(b, parked, queue.NextRequest{CollectorID: "col-a", Wait: 20 * time.Second})
	start := time.Now()
	if _, _, err := a.Enqueue(ctx, queue.EnqueueRequest{IntegrationID: "int-1", CollectorID: "col-a"}); err != nil {
		t.Fatal(err)
	}
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	if d := r.at.Sub(start); d >= 500*time.Millisecond {
		t.Fatalf("b.Next returned %v after the Enqueue, want < 500ms", d)
	}
}

// An Enqueue that leaves its NOTIFY to the debouncer (its key was just
// notified) still wakes a Next parked in another process, through the
// trailing send, well before the fallback poll: on the queue and in a
// transaction (the platform's store enqueues through Tx).
func TestDeferredNotifyWakesOtherProcess(t *testing.T) {
	_, a, b, parked := twoProcesses(t)
	ctx := context.Background()
	enqueues := []struct {
		name    string
		enqueue func(req queue.EnqueueRequest) error
	}{
		{"queue", func(req queue.EnqueueRequest) error {
			_, _, err := a.Enqueue(ctx, req)
			return err
		}},
		{"tx", func(req queue.EnqueueRequest) error {
			return a.Update(ctx, func(tx *postgres.Tx) error {
				_, _, err := tx.Enqueue(ctx, req)
				return err
			})
		}},
	}
	for _, c := range enqueues {
		t.Run(c.name, func(t *testing.T) {
			res := parkNext(b, parked, queue.NextRequest{CollectorID: "col-a", Wait: 20 * time.Second})
			a.HoldNotify()
			start := time.Now()
			if err := c.enqueue(queue.EnqueueRequest{IntegrationID: "int-" + c.name, CollectorID: "col-a"}); err != nil {
				t.Fatal(err)
			}
			r := <-res
			if r.err != nil {
				t.Fatalf("b.Next: %v", r.err)
			}
			if d := r.at.Sub(start); d >= 5*time.Second {
				t.Fatalf("b.Next returned %v after a's Enqueue, want well before the 10 s poll", d)
			} else {
				t.Logf("picked up in %v", d)
			}
			if _, err := b.Finish(ctx, r.job.ID, r.job.LeaseID, queue.Result{Succeeded: true}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// listenerPIDs connects to url's database, as the tests' administrator,
// and returns that connection and a func listing the server processes
// of the queues' listeners there.
func listenerPIDs(t *testing.T, url string) (*pgx.Conn, func() []int32) {
	t.Helper()
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close(ctx) })
	return admin, func() []int32 {
		rows, err := admin.Query(ctx, `SELECT pid FROM pg_stat_activity
			WHERE datname = current_database() AND query LIKE 'LISTEN %' AND pid <> pg_backend_pid() ORDER BY pid`)
		if err != nil {
			t.Fatal(err)
		}
		pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		if err != nil {
			t.Fatal(err)
		}
		return pids
	}
}

// leaseStatements counts the lease statements run so far on url's
// database (pg_stat_statements, which shows constants as parameters).
func leaseStatements(t *testing.T, url string) int64 {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int64
	if err := conn.QueryRow(ctx, `SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_statements
		WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
		  AND query ~ 'UPDATE queue_jobs SET state = \$[0-9]+, lease_id = \$[0-9]+::text'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// A long poll of a collector whose queue a lease found empty waits for a
// notification instead of leasing again: no lease statement until a job
// is enqueued (here by another process), which it then takes at once.
// A lease that leaves more in the queue leaves it not quiet: the next
// Next takes the next job without waiting.
func TestQuietQueueWaitsForANotification(t *testing.T) {
	url, a, b, parked := twoProcesses(t)
	ctx := context.Background()
	usage(t, url) // creates the pg_stat_statements view
	for i := range 2 {
		if _, _, err := a.Enqueue(ctx, queue.EnqueueRequest{IntegrationID: fmt.Sprintf("int-%d", i), CollectorID: "col-a"}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 2 {
		start := time.Now()
		j, err := b.Next(ctx, queue.NextRequest{CollectorID: "col-a", Wait: 20 * time.Second})
		if err != nil {
			t.Fatalf("Next %d: %v", i, err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("Next %d took %v with a job queued", i, d)
		}
		if _, err := b.Finish(ctx, j.ID, j.LeaseID, queue.Result{Succeeded: true}); err != nil {
			t.Fatal(err)
		}
	}
	// The second lease left nothing queued: the queue is quiet.
	before := leaseStatements(t, url)
	res := parkNext(b, parked, queue.NextRequest{CollectorID: "col-a", Wait: 20 * time.Second})
	if n := leaseStatements(t, url) - before; n != 0 {
		t.Fatalf("%d lease statements before parking on a quiet queue, want 0", n)
	}
	start := time.Now()
	j, _, err := a.Enqueue(ctx, queue.EnqueueRequest{IntegrationID: "int-2", CollectorID: "col-a"})
	if err != nil {
		t.Fatal(err)
	}
	r := <-res
	if r.err != nil || r.job.ID != j.ID {
		t.Fatalf("b.Next = %v, %v; want job %s", r.job, r.err, j.ID)
	}
	if d := r.at.Sub(start); d >= 500*time.Millisecond {
		t.Fatalf("b.Next returned %v after the Enqueue, want < 500ms", d)
	}
	if n := leaseStatements(t, url) - before; n != 1 {
		t.Fatalf("%d lease statements for one job, want 1", n)
	}
}

// What a process knew of quiet queues is forgotten when its listener's
// connection is cut (the notifications meanwhile are lost): a job
// enqueued elsewhere while it was down is taken at once after, not at
// the fallback poll.
func TestQuietForgottenWhenTheListenerIsCut(t *testing.T) {
	url := pgtest.NewDB(t)
	cfg := queuetest.Config()
	cfg.PollInterval = 10 * time.Second
	a := open(t, url, cfg)
	ctx := context.Background()
	admin, listeners := listenerPIDs(t, url)
	ofA := listeners()
	b := open(t, url, cfg)
	var ofB []int32
	for _, p := range listeners() {
		if !slices.Contains(ofA, p) {
			ofB = append(ofB, p)
		}
	}
	if len(ofB) != 1 {
		t.Fatalf("listeners of b: %v, want one", ofB)
	}
	if _, err := b.Next(ctx, queue.NextRequest{CollectorID: "col-a"}); !errors.Is(err, queue.ErrNoJob) {
		t.Fatalf("Next on an empty queue: %v", err)
	}
	// Quiet now. Cut b's listener and enqueue while it is away.
	if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend($1)`, ofB[0]); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Enqueue(ctx, queue.EnqueueRequest{IntegrationID: "int-1", CollectorID: "col-a"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for slices.Contains(listeners(), ofB[0]) || len(listeners()) != 2 {
		if time.Now().After(deadline) {
			t.Fatal("b's listener not reconnected in 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	start := time.Now()
	if _, err := b.Next(ctx, queue.NextRequest{CollectorID: "col-a", Wait: 20 * time.Second}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d >= 2*time.Second {
		t.Fatalf("b.Next took %v for a job enqueued while its listener was away, want at once", d)
	}
}
