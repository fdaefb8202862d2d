package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/collectorhq/collector/queue"
	"github.com/collectorhq/collector/queue/sqlite"
)

func benchQueue(b *testing.B) *sqlite.Queue {
	b.Helper()
	q, err := sqlite.Open(filepath.Join(b.TempDir(), "queue.db"), queue.DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { q.Close() })
	return q
}

// BenchmarkEnqueueLeaseAck measures full job round trips (Enqueue, Next,
// Finish: three write transactions) per second, one distinct integration per
// job. "serial" runs them one after another; the others have a producer
// and four long-polling runners working at once.
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
	// Four runners on one collector: they race for every job (the wake-up
	// reaches all four).
	b.Run("4runners-1collector", func(b *testing.B) { benchRunners(b, 4, 1) })
	// Four collectors, one runner each: the usual shape in production.
	b.Run("4runners-4collectors", func(b *testing.B) { benchRunners(b, 4, 4) })
}

// benchRunners has one producer enqueue b.N jobs round-robin over collectors
// while runners (runner i serving collector i%collectors) lease and finish
// them, and reports jobs per second.
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

// BenchmarkLongPollPickup measures the time from the start of Enqueue to the
// return of a Next already waiting for that collector, and reports its p50 and
// p99. The fallback poll is set to a minute so that only the wake-up counts.
func BenchmarkLongPollPickup(b *testing.B) {
	cfg := queue.DefaultConfig()
	cfg.PollInterval = time.Minute
	parked := make(chan struct{}, 1)
	q, err := sqlite.Open(filepath.Join(b.TempDir(), "queue.db"), cfg, sqlite.WithParkHook(func(string) {
		select {
		case parked <- struct{}{}:
		default:
		}
	}))
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
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
		<-parked // it waits
		start := time.Now()
		if _, _, err := q.Enqueue(ctx, queue.EnqueueRequest{IntegrationID: fmt.Sprintf("int-%d", i), CollectorID: "col-a"}); err != nil {
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
