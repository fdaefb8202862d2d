package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/collectorhq/collector/queue"
	"github.com/collectorhq/collector/queue/queuetest"
	"github.com/collectorhq/collector/queue/sqlite"
)

func newQueue(t *testing.T, cfg queue.Config) queue.Queue {
	t.Helper()
	q, err := sqlite.Open(filepath.Join(t.TempDir(), "queue.db"), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

// suiteBackend runs New on db with a test clock and a park signal, and
// closes the queue when the test ends.
func suiteBackend(t *testing.T, db *sql.DB, cfg queue.Config) queuetest.Backend {
	t.Helper()
	clock := &queuetest.Clock{}
	hook, parked := queuetest.ParkSignal()
	q, err := sqlite.New(db, cfg, sqlite.WithClock(clock.Now), sqlite.WithParkHook(hook))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { q.Close() })
	// What the platform's store runs as it deletes a collector.
	gone := func(ctx context.Context, collectorID, reason string) (canceled, moved int, err error) {
		err = q.Update(ctx, func(t *sqlite.Tx) error {
			canceled, moved, err = t.CollectorGone(ctx, collectorID, reason)
			return err
		})
		return canceled, moved, err
	}
	return queuetest.Backend{Queue: q, Advance: clock.Advance, Parked: parked, CollectorGone: gone}
}

func openDB(t *testing.T, name string) *sql.DB {
	t.Helper()
	db, err := sqlite.OpenDB(filepath.Join(t.TempDir(), name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestConformance(t *testing.T) {
	queuetest.Run(t, func(t *testing.T, cfg queue.Config) queuetest.Backend {
		return suiteBackend(t, openDB(t, "queue.db"), cfg)
	})
}

// The platform shares its database: New on its *sql.DB, next to its tables.
func TestConformanceSharedDB(t *testing.T) {
	queuetest.Run(t, func(t *testing.T, cfg queue.Config) queuetest.Backend {
		db := openDB(t, "platform.db")
		if _, err := db.Exec(`CREATE TABLE collectors (id TEXT PRIMARY KEY)`); err != nil {
			t.Fatal(err)
		}
		return suiteBackend(t, db, cfg)
	})
}

func TestNewMigratesOnceAndKeepsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	q, err := sqlite.Open(path, queue.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	j, _, err := q.Enqueue(context.Background(), queue.EnqueueRequest{IntegrationID: "int-1", CollectorID: "col-a"})
	if err != nil {
		t.Fatal(err)
	}
	q.Close()

	q, err = sqlite.Open(path, queue.DefaultConfig())
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer q.Close()
	got, err := q.Get(context.Background(), j.ID)
	if err != nil || got.State != queue.StateQueued {
		t.Fatalf("Get after reopen = %+v, %v; want the queued job", got, err)
	}
}

// Two queues in two "processes" (two *sql.DB, no shared notifier) on one file:
// the store alone keeps dedupe and single leasing, and the fallback poll
// carries work across.
func TestTwoProcessesOneFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	cfg := queuetest.Config()
	cfg.PollInterval = 50 * time.Millisecond
	clock := &queuetest.Clock{} // one machine: both processes read the same time
	a, err := sqlite.Open(path, cfg, sqlite.WithClock(clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	bParked := make(chan struct{}, 1)
	b, err := sqlite.Open(path, cfg, sqlite.WithClock(clock.Now), sqlite.WithParkHook(func(string) {
		select {
		case bParked <- struct{}{}:
		default:
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()

	var wg sync.WaitGroup
	created := make(chan string, 40)
	for i := range 40 {
		q := a
		if i%2 == 1 {
			q = b
		}
		wg.Go(func() {
			j, existed, err := q.Enqueue(ctx, queue.EnqueueRequest{IntegrationID: "int-1", CollectorID: "col-a"})
			if err != nil {
				t.Errorf("Enqueue: %v", err)
				return
			}
			if !existed {
				created <- j.ID
			}
		})
	}
	wg.Wait()
	close(created)
	if n := len(created); n != 1 {
		t.Fatalf("%d jobs created across two processes, want 1", n)
	}

	// b waits; a leases and lets the lease lapse; b's fallback poll finds
	// the expired lease and takes the job.
	l, err := a.Next(ctx, queue.NextRequest{CollectorID: "col-a"})
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		job *queue.Job
		err error
	}
	res := make(chan result, 1)
	go func() {
		j, err := b.Next(ctx, queue.NextRequest{CollectorID: "col-a", Wait: 5 * time.Second})
		res <- result{j, err}
	}()
	<-bParked // b found nothing and waits
	clock.Advance(cfg.LeaseTTL + time.Millisecond)
	r := <-res
	got, err := r.job, r.err
	if err != nil {
		t.Fatalf("b.Next: %v", err)
	}
	if got.ID != l.ID || got.Attempt != 2 {
		t.Fatalf("b.Next = %s attempt %d, want %s attempt 2", got.ID, got.Attempt, l.ID)
	}
	if _, err := a.Finish(ctx, l.ID, l.LeaseID, queue.Result{Succeeded: true}); !errors.Is(err, queue.ErrLeaseLost) {
		t.Fatalf("a.Finish with the lapsed lease = %v, want ErrLeaseLost", err)
	}
}

func TestNewRejectsBadInput(t *testing.T) {
	if _, err := sqlite.New(nil, queue.DefaultConfig()); err == nil {
		t.Error("New(nil db) succeeded")
	}
	cfg := queue.DefaultConfig()
	cfg.LeaseTTL = 0
	_, err := sqlite.Open(filepath.Join(t.TempDir(), "q.db"), cfg)
	var ce *queue.ConfigError
	if !errors.As(err, &ce) || ce.Field != "LeaseTTL" {
		t.Errorf("Open with LeaseTTL 0 = %v, want a ConfigError on LeaseTTL", err)
	}

	// A database without busy_timeout would make concurrent writers fail.
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "plain.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := sqlite.New(db, queue.DefaultConfig()); err == nil || !strings.Contains(err.Error(), "busy_timeout") {
		t.Errorf("New on a database without busy_timeout = %v, want an error naming busy_timeout", err)
	}
}

func TestOperationsAfterClose(t *testing.T) {
	q := newQueue(t, queue.DefaultConfig())
	q.Close()
	ctx := context.Background()
	if _, _, err := q.Enqueue(ctx, queue.EnqueueRequest{IntegrationID: "i", CollectorID: "c"}); !errors.Is(err, queue.ErrClosed) {
		t.Errorf("Enqueue after Close = %v, want ErrClosed", err)
	}
	if _, err := q.Next(ctx, queue.NextRequest{CollectorID: "c"}); !errors.Is(err, queue.ErrClosed) {
		t.Errorf("Next after Close = %v, want ErrClosed", err)
	}
	if _, err := q.Get(ctx, "job_x"); !errors.Is(err, queue.ErrClosed) {
		t.Errorf("Get after Close = %v, want ErrClosed", err)
	}
}

// The hot paths must use their partial indexes: a collector's history or the
// whole table may hold millions of finished jobs.
func TestQueryPlansUseIndexes(t *testing.T) {
	db, err := sqlite.OpenDB(filepath.Join(t.TempDir(), "q.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := sqlite.New(db, queue.DefaultConfig()); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, query string
		args        []any
		want        []string
	}{
		// A collector's own queue, its pool's queue and its active jobs
		// (what it already runs), each through its partial index.
		{"lease next", sqlite.LeaseNextSQL, sqlite.NextArgs(), []string{"queue_jobs_next", "queue_jobs_next_pool", "queue_jobs_active_collector"}},
		{"may have work", sqlite.MayHaveWorkSQL, sqlite.NextArgs(), []string{"queue_jobs_next", "queue_jobs_next_pool", "queue_jobs_active_collector", "queue_jobs_lease"}},
		{"usage", sqlite.UsageSQL, sqlite.NextArgs(), []string{"queue_jobs_active_collector"}},
		{"expire", sqlite.ExpireSQL, []any{1}, []string{"queue_jobs_lease"}},
		// Metrics scrapes: the active jobs only, never the whole history.
		{"depth", sqlite.DepthSQL, nil, []string{"queue_jobs_next", "queue_jobs_lease"}},
		// A reassignment reads the integration's active jobs; a deleted
		// collector's jobs are its queued and its active ones: never a
		// history.
		{"reassign", sqlite.ReassignSQL, []any{"c", "", "i"}, []string{"queue_jobs_active_integration"}},
		{"cancel a collector's queued jobs", sqlite.CancelCollectorSQL, []any{1, "r", "c"}, []string{"queue_jobs_next"}},
		{"move a deleted collector's jobs", sqlite.LeaveCollectorSQL, []any{"c"}, []string{"queue_jobs_active_collector"}},
		{"cancel a deleted collector's jobs", sqlite.CancelCollectorInFlightSQL, []any{1, "r", "c"}, []string{"queue_jobs_active_collector"}},
	}
	// Console pages of jobs, newest first, by cursor: an index in order,
	// never a sort of the history.
	for _, f := range []struct {
		name string
		f    queue.Filter
		idx  string
	}{
		{"all", queue.Filter{Before: "job_x", Limit: 50}, "queue_jobs_created"},
		{"by state", queue.Filter{States: []queue.State{queue.StateFailed}, Before: "job_x", Limit: 50}, "queue_jobs_state_created"},
		{"by integration", queue.Filter{IntegrationID: "i", Before: "job_x", Limit: 50}, "queue_jobs_integration"},
		{"by collector", queue.Filter{CollectorID: "c", Limit: 50}, "queue_jobs_collector"},
	} {
		q, args := sqlite.ListSQL(f.f)
		cases = append(cases, struct {
			name, query string
			args        []any
			want        []string
		}{"list " + f.name, q, args, []string{f.idx}})
	}
	for _, c := range cases {
		plan := explain(t, db, c.query, c.args...)
		for _, idx := range c.want {
			if !strings.Contains(plan, "INDEX "+idx) {
				t.Errorf("%s: plan %q does not use %s", c.name, plan, idx)
			}
		}
		// The lease picks the older of two candidates (its own queue's
		// oldest, its pool's oldest): a sort of two rows, not of a queue.
		few := c.query == sqlite.LeaseNextSQL && strings.Count(plan, "TEMP B-TREE") == 1
		if strings.Contains(plan, "TEMP B-TREE") && !few {
			t.Errorf("%s: plan %q sorts", c.name, plan)
		}
		t.Logf("%s: %s", c.name, plan)
	}
}

func explain(t *testing.T, db *sql.DB, query string, args ...any) string {
	t.Helper()
	plan, err := sqlite.QueryPlan(context.Background(), db, query, args...)
	if err != nil {
		t.Fatalf("explain: %v", err)
	}
	return plan
}

// The platform may give New a pool of one connection (a common way to run
// SQLite writers): nothing may wait for a second connection while holding the
// first.
func TestConformanceOneConnectionPool(t *testing.T) {
	queuetest.Run(t, func(t *testing.T, cfg queue.Config) queuetest.Backend {
		db := openDB(t, "platform.db")
		db.SetMaxOpenConns(1)
		return suiteBackend(t, db, cfg)
	})
}

// Another process holding the write lock makes a write wait (busy_timeout),
// not fail with SQLITE_BUSY.
func TestWriteWaitsForAnotherWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	q, err := sqlite.Open(path, queue.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	other, err := sqlite.OpenDB(path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	ctx := context.Background()
	j, _, err := q.Enqueue(ctx, queue.EnqueueRequest{IntegrationID: "int-1", CollectorID: "col-a"})
	if err != nil {
		t.Fatal(err)
	}
	// Read first, as Finish does, while the other writer holds the lock.
	l, err := q.Next(ctx, queue.NextRequest{CollectorID: "col-a"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := other.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := q.Finish(ctx, j.ID, l.LeaseID, queue.Result{Succeeded: true})
		done <- err
	}()
	// Nothing can say that Finish is blocked on SQLite's lock, so this
	// watches for hold (real time: busy_timeout is) that it does not return
	// while the other writer holds the lock, then lets the writer go.
	const hold = 300 * time.Millisecond
	select {
	case err := <-done:
		t.Fatalf("Finish returned (err %v) while another process held the write lock, want it to wait for the other writer", err)
	case <-time.After(hold):
	}
	if _, err := c.ExecContext(ctx, `COMMIT`); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Finish while another process writes: %v", err)
	}
}

func TestOpenPathWithURICharacters(t *testing.T) {
	dir := t.TempDir()
	name := "a?b%c#d e.db"
	q, err := sqlite.Open(filepath.Join(dir, name), queue.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	q.Close()
	if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
		t.Errorf("database not created under its literal name: %v", err)
	}
}
