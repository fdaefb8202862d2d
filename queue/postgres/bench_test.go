package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/collectorhq/collector/internal/pgtest"
	"github.com/collectorhq/collector/internal/testutil"
	"github.com/collectorhq/collector/queue"
	"github.com/collectorhq/collector/queue/postgres"
)

func benchQueue(b *testing.B) *postgres.Queue {
	b.Helper()
	return open(b, pgtest.NewDB(b), queue.DefaultConfig())
}

// BenchmarkEnqueueLeaseAck measures full job round trips (Enqueue, Next,
// Finish) per second, one distinct integration per job, as queue/sqlite's
// does. "serial" runs them one after another; the others have a producer
// and several long-polling runners working at once.
func BenchmarkEnqueueLeaseAck(b *testing.B) {
	b.Run("serial", func(b *testing.B) {
		q := benchQueue(b)
		ctx := context.Background()
		b.ResetTimer()
		start := time.Now()
		for i := range b.N {
			if _, _, err := q.Enqueue(ctx, queue.EnqueueRequest{IntegrationID: fmt.Sprintf("int-%d", i), CollectorID: "col-a"}); err != nil {
				b.Fatal(err)
			}
			j, err := q.Next(ctx, queue.NextRequest{CollectorID: "col-a"})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := q.Finish(ctx, j.ID, j.LeaseID, queue.Result{Succeeded: true, PeakMemoryBytes: 1 << 20}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "jobs/s")
	})
	// Four runners on one collector: they race for every job.
	b.Run("4runners-1collector", func(b *testing.B) { benchRunners(b, 4, 1) })
	// Four collectors, one runner each: the usual shape in production.
	b.Run("4runners-4collectors", func(b *testing.B) { benchRunners(b, 4, 4) })
	b.Run("8runners-8collectors", func(b *testing.B) { benchRunners(b, 8, 8) })
}

// benchRunners has one producer enqueue b.N jobs round-robin over
// collectors while runners (runner i serving collector i%collectors) lease
// and finish them, and reports jobs per second.
func benchRunners(b *testing.B, runners, collectors int) {
	q := benchQueue(b)
	ctx := context.Background()
	var done atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	wg.Go(func() {
		for i := range b.N {
			req := queue.EnqueueRequest{IntegrationID: fmt.Sprintf("int-%d", i), CollectorID: fmt.Sprintf("col-%d", i%collectors)}
			if _, _, err := q.Enqueue(ctx, req); err != nil {
				b.Error(err)
				return
			}
		}
	})
	for r := range runners {
		collector := fmt.Sprintf("col-%d", r%collectors)
		wg.Go(func() {
			for done.Load() < int64(b.N) {
				j, err := q.Next(ctx, queue.NextRequest{CollectorID: collector, Wait: 100 * time.Millisecond})
				if errors.Is(err, queue.ErrNoJob) {
					continue
				}
				if err != nil {
					b.Error(err)
					return
				}
				if _, err := q.Finish(ctx, j.ID, j.LeaseID, queue.Result{Succeeded: true, PeakMemoryBytes: 1 << 20}); err != nil {
					b.Error(err)
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "jobs/s")
}

// BenchmarkLongPollPickup measures the time from the start of Enqueue on
// one process to the return of a Next already waiting on another
// (LISTEN/NOTIFY), and reports its p50 and p99. The fallback poll is set
// to a minute so that only the notification counts.
func BenchmarkLongPollPickup(b *testing.B) {
	cfg := queue.DefaultConfig()
	cfg.PollInterval = time.Minute
	url := pgtest.NewDB(b)
	parked := make(chan struct{}, 1)
	a := open(b, url, cfg)
	q := open(b, url, cfg, postgres.WithParkHook(func(string) {
		select {
		case parked <- struct{}{}:
		default:
		}
	}))
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	type got struct {
		job *queue.Job
		at  time.Time
		err error
	}
	b.ResetTimer()
	for i := range b.N {
		ch := make(chan got, 1)
		go func() {
			j, err := q.Next(ctx, queue.NextRequest{CollectorID: "col-a", Wait: 10 * time.Second})
			ch <- got{j, time.Now(), err}
		}()
		<-parked
		start := time.Now()
		if _, _, err := a.Enqueue(ctx, queue.EnqueueRequest{IntegrationID: fmt.Sprintf("int-%d", i), CollectorID: "col-a"}); err != nil {
			b.Fatal(err)
		}
		g := <-ch
		if g.err != nil {
			b.Fatal(g.err)
		}
		lat = append(lat, g.at.Sub(start))
		if _, err := q.Finish(ctx, g.job.ID, g.job.LeaseID, queue.Result{Succeeded: true}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	ms := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))]) / float64(time.Millisecond)
	}
	b.ReportMetric(ms(0.50), "p50-ms")
	b.ReportMetric(ms(0.99), "p99-ms")
	b.ReportMetric(ms(1), "max-ms")
}

// BenchmarkRoundTripFloor measures what this machine charges for the
// smallest statements a queue could send, with as many clients at once as
// BenchmarkVersusRiver has runners: "select" is SELECT 1, "insert" a
// one-row INSERT into a table with no index but its key, committed alone.
// It reports the machine's CPU per statement (PostgreSQL, this process
// and the kernel together, busy or not with this benchmark) and the jobs
// per second at which three such writes per job (enqueue, lease, finish,
// one transaction each) would use every core: a ceiling no queue that
// writes a job three times can pass here, however little its statements
// do. docs/scaling.md compares it with BenchmarkVersusRiver.
func BenchmarkRoundTripFloor(b *testing.B) {
	for _, c := range []struct{ name, sql string }{
		{"select", "SELECT 1"},
		{"insert", "INSERT INTO floor (v) VALUES (1)"},
	} {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			pool, err := pgxpool.New(ctx, pgtest.NewDB(b))
			if err != nil {
				b.Fatal(err)
			}
			defer pool.Close()
			if _, err := pool.Exec(ctx, "CREATE TABLE floor (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v integer)"); err != nil {
				b.Fatal(err)
			}
			var next atomic.Int64
			var wg sync.WaitGroup
			machine0 := testutil.MachineCPUSeconds()
			b.ResetTimer()
			start := time.Now()
			for range versusWorkers {
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						if _, err := pool.Exec(ctx, c.sql); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			perStmt := (testutil.MachineCPUSeconds() - machine0) / float64(b.N)
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "stmts/s")
			b.ReportMetric(perStmt*1e6, "machine-us/stmt")
			b.ReportMetric(float64(runtime.NumCPU())/(3*perStmt), "jobs/s-ceiling")
		})
	}
}
