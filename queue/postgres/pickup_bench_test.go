package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/collectorhq/collector/internal/pgtest"
	"github.com/collectorhq/collector/queue"
	"github.com/collectorhq/collector/queue/postgres"
	"github.com/collectorhq/collector/queue/queuetest"
)

// BenchmarkCrossReplicaPickup measures how long a job enqueued by one
// process (replica A: a `jobs run`) takes to be returned by a Next
// parked in another (replica B: a collector's long poll), on one
// database: the LISTEN/NOTIFY path. The fallback poll is set to 10 s, so
// a lost notification would show. It reports the median and p99.
func BenchmarkCrossReplicaPickup(b *testing.B) {
	url := pgtest.NewDB(b)
	cfg := queuetest.Config()
	cfg.PollInterval = 10 * time.Second
	a := open(b, url, cfg)
	hook, parked := queuetest.ParkSignal()
	r := open(b, url, cfg, postgres.WithParkHook(hook))
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		type result struct {
			job *queue.Job
			at  time.Time
			err error
		}
		res := make(chan result, 1)
		go func() {
			j, err := r.Next(ctx, queue.NextRequest{CollectorID: "col-b", Wait: 20 * time.Second})
			res <- result{j, time.Now(), err}
		}()
		for got := <-parked; got != "col-b"; got = <-parked {
		}
		start := time.Now()
		if _, _, err := a.Enqueue(ctx, queue.EnqueueRequest{IntegrationID: fmt.Sprintf("int-%d", i), CollectorID: "col-b"}); err != nil {
			b.Fatal(err)
		}
		got := <-res
		if got.err != nil {
			b.Fatal(got.err)
		}
		lat = append(lat, got.at.Sub(start))
		if _, err := r.Finish(ctx, got.job.ID, got.job.LeaseID, queue.Result{Succeeded: true}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
