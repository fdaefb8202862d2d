package postgres_test

// River (github.com/riverqueue/river) is here as a benchmark peer only: a
// mature PostgreSQL job queue to measure ours against on the same server in
// the same run. Nothing outside this file imports it.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/collectorhq/collector/internal/pgtest"
	"github.com/collectorhq/collector/internal/testutil"
	"github.com/collectorhq/collector/queue"
)

// versusWorkers is how many jobs each side works at once: eight runners on
// eight collectors for ours, MaxWorkers on one queue for River.
const versusWorkers = 8

// River's fetch timing. With the defaults (100 ms cooldown, 1 s poll) a
// producer fetches at most once per 100 ms, at most eight jobs for eight
// workers: 80 jobs/s, a measure of the defaults rather than of the queue.
// 1 ms is FetchCooldownMin, so River fetches as soon as a worker frees up. The poll is a fallback for missed notifications, set to
// our runners' long-poll Wait.
const (
	riverFetchCooldown     = time.Millisecond
	riverFetchPollInterval = 100 * time.Millisecond
	// riverBatch is the InsertMany batch size of "river-insertmany".
	riverBatch = 1000
)

// versusRun is what one side's harness measured: how many times each job
// (0..n-1) was reported completed, and the time from the first insert to
// the last completion.
type versusRun struct {
	completed []int32
	elapsed   time.Duration
}

// versusSide runs n trivial jobs through one queue on the fresh database
// at url, calling started just before the clock starts (after setup).
type versusSide func(tb testing.TB, url string, n int, started func()) versusRun

var versusSides = []struct {
	name string
	run  versusSide
}{
	{"collector", runCollector},
	{"river", func(tb testing.TB, url string, n int, started func()) versusRun {
		return runRiver(tb, url, n, 1, started)
	}},
	{"river-insertmany", func(tb testing.TB, url string, n int, started func()) versusRun {
		return runRiver(tb, url, n, riverBatch, started)
	}},
}

// BenchmarkVersusRiver measures insert, work and complete of trivial jobs
// with eight workers, ours against River on the same PostgreSQL, and
// reports jobs/s for each: compare "collector" with "river" (one insert
// per job, as Enqueue is). "river-insertmany" inserts in batches of
// riverBatch, which Enqueue has no counterpart of.
//
// Each side also reports what a job cost, from the first insert to the
// last completion: PostgreSQL's execution time (pg-us/job, about its CPU
// with fsync off), its statements and WAL (pgtest.UsageOf), and this
// process's CPU (client-us/job: the queue's side, or River's client), and
// the machine's (machine-us/job: all of it, PostgreSQL included, busy or
// not with this benchmark; the rate of the side that leaves the machine
// idle part of the time is bound by its latency, not by what it costs).
func BenchmarkVersusRiver(b *testing.B) {
	for _, s := range versusSides {
		b.Run(s.name, func(b *testing.B) {
			url := pgtest.NewDB(b)
			var before pgtest.Usage
			var cpuBefore time.Duration
			var machineBefore float64
			r := s.run(b, url, b.N, func() {
				before, cpuBefore, machineBefore = usage(b, url), processCPU(b), testutil.MachineCPUSeconds()
				b.ResetTimer()
			})
			b.StopTimer()
			machine := testutil.MachineCPUSeconds() - machineBefore
			cpu := processCPU(b) - cpuBefore
			u := usage(b, url).Sub(before)
			n := float64(b.N)
			b.ReportMetric(n/r.elapsed.Seconds(), "jobs/s")
			b.ReportMetric(u.ExecMs*1000/n, "pg-us/job")
			b.ReportMetric(float64(u.Statements)/n, "stmts/job")
			b.ReportMetric(float64(u.WALBytes)/n, "wal-B/job")
			b.ReportMetric(float64(cpu.Microseconds())/n, "client-us/job")
			b.ReportMetric(machine*1e6/n, "machine-us/job")
		})
	}
}

func usage(tb testing.TB, url string) pgtest.Usage {
	tb.Helper()
	u, err := pgtest.UsageOf(url)
	if err != nil {
		tb.Fatal(err)
	}
	return u
}

// processCPU is the CPU time this process has used, user and system.
func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestVersusRiverHarness checks the benchmark's harness: on each side every
// job is reported completed exactly once, and the database agrees.
func TestVersusRiverHarness(t *testing.T) {
	const n = 300
	final := map[string]struct{ table, state string }{
		"collector":        {"queue_jobs", string(queue.StateSucceeded)},
		"river":            {"river_job", "completed"},
		"river-insertmany": {"river_job", "completed"},
	}
	for _, s := range versusSides {
		t.Run(s.name, func(t *testing.T) {
			url := pgtest.NewDB(t)
			r := s.run(t, url, n, func() {})
			for i, c := range r.completed {
				if c != 1 {
					t.Errorf("job %d completed %d times, want 1", i, c)
				}
			}
			f := final[s.name]
			if got, want := stateCounts(t, url, f.table), map[string]int{f.state: n}; !maps.Equal(got, want) {
				t.Errorf("%s rows by state: got %v, want %v", f.table, got, want)
			}
		})
	}
}

// stateCounts counts the rows of a job table by state.
func stateCounts(t *testing.T, url, table string) map[string]int {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT state::text, count(*) FROM "+pgx.Identifier{table}.Sanitize()+" GROUP BY state")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	var state string
	var count int
	if _, err := pgx.ForEachRow(rows, []any{&state, &count}, func() error { got[state] = count; return nil }); err != nil {
		t.Fatal(err)
	}
	return got
}

// runCollector is benchRunners(b, 8, 8) counting each job's completions:
// one producer enqueues n jobs round-robin over eight collectors while
// eight long-polling runners (one per collector) lease and finish them.
// The clock stops at the nth Finish, not when the parked runners notice.
func runCollector(tb testing.TB, url string, n int, started func()) versusRun {
	q := open(tb, url, queue.DefaultConfig())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fail := func(err error) { tb.Error(err); cancel() }
	completed := make([]atomic.Int32, n)
	var done atomic.Int64
	var end time.Time // written by the runner that finishes the nth job
	var wg sync.WaitGroup
	started()
	start := time.Now()
	wg.Go(func() {
		for i := range n {
			req := queue.EnqueueRequest{IntegrationID: fmt.Sprintf("int-%d", i), CollectorID: fmt.Sprintf("col-%d", i%versusWorkers)}
			if _, existed, err := q.Enqueue(ctx, req); err != nil || existed {
				fail(fmt.Errorf("enqueue job %d: existed %v, %v", i, existed, err))
				return
			}
		}
	})
	for r := range versusWorkers {
		collector := fmt.Sprintf("col-%d", r)
		wg.Go(func() {
			for ctx.Err() == nil {
				finished, err := runOne(ctx, q, collector, completed)
				if err != nil {
					fail(err)
					return
				}
				if finished && done.Add(1) == int64(n) {
					end = time.Now()
					cancel()
				}
			}
		})
	}
	wg.Wait()
	return versusRun{completed: loadAll(completed), elapsed: end.Sub(start)}
}

// runOne leases one job of collector, if one comes within the long poll,
// finishes it and counts it in completed.
func runOne(ctx context.Context, q queue.Queue, collector string, completed []atomic.Int32) (bool, error) {
	j, err := q.Next(ctx, queue.NextRequest{CollectorID: collector, Wait: 100 * time.Millisecond})
	if errors.Is(err, queue.ErrNoJob) || ctx.Err() != nil {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if _, err := q.Finish(ctx, j.ID, j.LeaseID, queue.Result{Succeeded: true, PeakMemoryBytes: 1 << 20}); err != nil {
		return false, err
	}
	i, err := strconv.Atoi(strings.TrimPrefix(j.IntegrationID, "int-"))
	if err != nil || i < 0 || i >= len(completed) {
		return false, fmt.Errorf("finished a job of integration %q, not one of ours", j.IntegrationID)
	}
	completed[i].Add(1)
	return true, nil
}

func loadAll(counts []atomic.Int32) []int32 {
	out := make([]int32, len(counts))
	for i := range counts {
		out[i] = counts[i].Load()
	}
	return out
}

// versusArgs is River's trivial job: its index among the n.
type versusArgs struct {
	N int `json:"n"`
}

func (versusArgs) Kind() string { return "versus_noop" }

type noopWorker struct {
	river.WorkerDefaults[versusArgs]
}

func (noopWorker) Work(context.Context, *river.Job[versusArgs]) error { return nil }

// runRiver runs River's migrations on url, starts a client with
// versusWorkers workers on the default queue, inserts n jobs (batch at a
// time: 1 is one Insert per job) and waits for n completion events, which
// River emits once its completer has stored the jobs as completed.
func runRiver(tb testing.TB, url string, n, batch int, started func()) versusRun {
	client := startRiver(tb, url)
	// Room for every event: a full subscription channel drops them.
	events, unsubscribe := client.SubscribeConfig(&river.SubscribeConfig{Kinds: []river.EventKind{river.EventKindJobCompleted}, ChanSize: n + 1})
	defer unsubscribe()
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel, which stops the producer on a failure
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	completed := make([]int32, n)
	started()
	start := time.Now()
	wg.Go(func() {
		if err := insertRiver(ctx, client, n, batch); err != nil {
			tb.Error(err)
			cancel()
		}
	})
	for range n {
		select {
		case ev := <-events:
			var a versusArgs
			if err := json.Unmarshal(ev.Job.EncodedArgs, &a); err != nil || a.N < 0 || a.N >= n {
				tb.Fatalf("completed job %d has args %s, not one of ours", ev.Job.ID, ev.Job.EncodedArgs)
			}
			completed[a.N]++
		case <-ctx.Done():
			return versusRun{completed: completed, elapsed: time.Since(start)}
		}
	}
	return versusRun{completed: completed, elapsed: time.Since(start)}
}

func insertRiver(ctx context.Context, client *river.Client[pgx.Tx], n, batch int) error {
	if batch == 1 {
		for i := range n {
			if _, err := client.Insert(ctx, versusArgs{N: i}, nil); err != nil {
				return fmt.Errorf("insert job %d: %w", i, err)
			}
		}
		return nil
	}
	params := make([]river.InsertManyParams, 0, batch)
	for lo := 0; lo < n; lo += batch {
		params = params[:0]
		for i := lo; i < min(n, lo+batch); i++ {
			params = append(params, river.InsertManyParams{Args: versusArgs{N: i}})
		}
		if _, err := client.InsertMany(ctx, params); err != nil {
			return fmt.Errorf("insert jobs %d to %d: %w", lo, lo+len(params)-1, err)
		}
	}
	return nil
}

// startRiver migrates url for River and starts a client on a pool sized
// as Open sizes ours, plus one connection for River's listener (ours
// keeps its listener outside the pool). Cleanup stops both.
func startRiver(tb testing.TB, url string) *river.Client[pgx.Tx] {
	tb.Helper()
	ctx := context.Background()
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		tb.Fatal(err)
	}
	pc.MaxConns = int32(max(8, 2*runtime.NumCPU()) + 1)
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	driver := riverpgxv5.New(pool)
	migrator, err := rivermigrate.New(driver, nil)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		tb.Fatalf("river migrations: %v", err)
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, noopWorker{})
	client, err := river.NewClient(driver, &river.Config{
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: versusWorkers}},
		Workers:           workers,
		FetchCooldown:     riverFetchCooldown,
		FetchPollInterval: riverFetchPollInterval,
		Logger:            slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
		// Only skips the maintenance services' jittered start: untimed.
		TestOnly: true,
	})
	if err != nil {
		tb.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := client.Stop(stopCtx); err != nil {
			tb.Errorf("stop river: %v", err)
		}
	})
	return client
}
